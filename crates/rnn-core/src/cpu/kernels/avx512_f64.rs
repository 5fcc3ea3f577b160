//! The f64 micro-kernel for AVX-512 on packed weights ([`PackedB`] with panels of
//! [`NR_F64`] columns), the f32 one's structure at 8 lanes: blocks of 6 rows × 32 columns in
//! 24 accumulators (of the 32 zmm registers: 4 more hold the panel's row, 1 the broadcast)
//! that stay in registers while the shared dimension streams past; each step of it loads four
//! registers of the packed panel and broadcasts 6 values of the left rows for 24
//! multiply-adds. Against 12 × 16 (also 24 accumulators) it loads 4 registers of `b` per 24
//! multiply-adds where that shape loads 2 and broadcasts 12, so fewer loads per multiply-add
//! (10 against 14), and it forms half as many row addresses, as the f32 kernel's note says.
//! Bias and activation are applied in registers before the last store, tanh as
//! [`super::super::tanh::tanh_f64`] computes it.

use std::arch::x86_64::*;

use super::gemm::{spans, Epilogue};
use super::packing::{PackedB, NR_F64 as NR};
use crate::cpu::Fused;

/// Depth of the shared dimension per pass: a 128 × 32 panel slice (32 KiB, as f32's)
/// stays in L1 while every block of rows passes over it.
const KC: usize = 128;

/// Rows per register block (the row tails in `rows_product` are matched for 1 to 5).
const MR: usize = 6;
const _: () = assert!(MR == 6);

/// Registers per row of a block.
const V: usize = NR / 8;

/// Panels per column block: 128 columns, the same bytes of the weights as f32's 256.
const PANELS_PER_BLOCK: usize = 4;

/// Rows per call of [`rows_product`], as in the f32 kernel.
const MC: usize = 80 * MR;

/// # Safety
/// The CPU must support AVX-512F; the extents are those [`super::packed_product`] checks.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn packed_product(
    out: *mut f64,
    len: usize,
    accumulate: bool,
    terms: &[(&[f64], &PackedB<f64>)],
    epilogue: Option<Epilogue<f64>>,
) {
    let n = terms[0].1.n;
    let rows = len / n;
    let panels = n.div_ceil(NR);
    for p0 in (0..panels).step_by(PANELS_PER_BLOCK) {
        let block = p0..(p0 + PANELS_PER_BLOCK).min(panels);
        let mut r0 = 0;
        while r0 < rows {
            let r1 = (r0 + MC).min(rows);
            rows_product(out, r0..r1, block.clone(), accumulate, terms, epilogue);
            r0 = r1;
        }
    }
}

/// [`packed_product`] for rows `rows` of `out` and of the terms' left-hand sides, and for
/// the columns of panels `panels`.
#[target_feature(enable = "avx512f")]
unsafe fn rows_product(
    out: *mut f64,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    accumulate: bool,
    terms: &[(&[f64], &PackedB<f64>)],
    epilogue: Option<Epilogue<f64>>,
) {
    let n = terms[0].1.n;
    let count = rows.len();
    let total: usize = terms.iter().map(|(_, b)| b.k).sum();
    // SAFETY: rows.end ≤ len / n (the caller's loop).
    let o = out.add(rows.start * n);
    let mut start = 0;
    loop {
        let end = (start + KC).min(total);
        let (spans, span_count) = spans(terms, start, end);
        let spans = &spans[..span_count];
        let last = end == total;
        for p in panels.clone() {
            let j = p * NR;
            let mut masks = [0; V];
            for (v, m) in masks.iter_mut().enumerate() {
                *m = mask(n.saturating_sub(j + 8 * v));
            }
            let tile = Tile {
                o,
                n,
                j,
                masks,
                load: accumulate || start > 0,
                epilogue: if last { epilogue } else { None },
            };
            // Each span's operands for rows r..: its term's packed panel p from the span's
            // first row, and its term's rows of `lhs`.
            let operands = |r: usize| {
                spans.iter().map(move |span| {
                    let (lhs, b) = terms[span.term];
                    Operands {
                        // SAFETY: panel p holds b.k rows of NR values from (p·b.k)·NR on;
                        // row rows.start + r of lhs has b.k values.
                        b: b.panels().as_ptr().add((p * b.k + span.k0) * NR),
                        a: lhs.as_ptr().add((rows.start + r) * b.k + span.k0),
                        stride: b.k,
                        depth: span.depth,
                    }
                })
            };
            let mut r = 0;
            while r + MR <= count {
                tile.run::<MR>(r, operands(r));
                r += MR;
            }
            match count - r {
                5 => tile.run::<5>(r, operands(r)),
                4 => tile.run::<4>(r, operands(r)),
                3 => tile.run::<3>(r, operands(r)),
                2 => tile.run::<2>(r, operands(r)),
                1 => tile.run::<1>(r, operands(r)),
                _ => {}
            }
        }
        if last {
            break;
        }
        start = end;
    }
}

/// One span's operands for [`Tile::run`]: its packed panel from the span's first row, and
/// its first row's left-hand values (row `q`'s at `a + q·stride`).
struct Operands {
    b: *const f64,
    a: *const f64,
    stride: usize,
    depth: usize,
}

/// One pass of [`rows_product`] over columns `j..j + NR` of `out` (`o`, `[rows, n]`).
#[derive(Clone, Copy)]
struct Tile<'a> {
    o: *mut f64,
    n: usize,
    j: usize,
    /// The lanes of each register of a row that lie before column `n`.
    masks: [__mmask8; V],
    /// Whether the sums start from `out` (else from zero).
    load: bool,
    epilogue: Option<Epilogue<'a, f64>>,
}

impl Tile<'_> {
    /// Rows `r..r + R`, `V·R` accumulators, summed over the spans' operands in order.
    #[inline(always)]
    unsafe fn run<const R: usize>(&self, r: usize, operands: impl Iterator<Item = Operands>) {
        let Tile { o, n, j, masks, .. } = *self;
        // SAFETY (all pointer arithmetic below): as in the f32 kernel, with registers of
        // 8 values: rows r..r+R are < rows, columns j..j+NR are masked to < n (pointers
        // past the first register formed with wrapping_add), ii < depth; each span's `a`
        // starts R rows of at least `depth` values, `stride` apart; its panel has `depth`
        // rows of NR values from `b`, zero beyond n.
        // Four arrays of R, one per register of a row (a nested array kept a copy of the
        // accumulators on the stack in the f32 kernel).
        let mut c0 = [_mm512_setzero_pd(); R];
        let mut c1 = [_mm512_setzero_pd(); R];
        let mut c2 = [_mm512_setzero_pd(); R];
        let mut c3 = [_mm512_setzero_pd(); R];
        let [m0, m1, m2, m3] = masks;
        if self.load {
            for q in 0..R {
                let row = o.add((r + q) * n + j);
                c0[q] = _mm512_maskz_loadu_pd(m0, row);
                c1[q] = _mm512_maskz_loadu_pd(m1, row.wrapping_add(8));
                c2[q] = _mm512_maskz_loadu_pd(m2, row.wrapping_add(16));
                c3[q] = _mm512_maskz_loadu_pd(m3, row.wrapping_add(24));
            }
        }
        for Operands {
            b,
            a,
            stride,
            depth,
        } in operands
        {
            for ii in 0..depth {
                let br = b.add(ii * NR);
                let b0 = _mm512_loadu_pd(br);
                let b1 = _mm512_loadu_pd(br.add(8));
                let b2 = _mm512_loadu_pd(br.add(16));
                let b3 = _mm512_loadu_pd(br.add(24));
                for q in 0..R {
                    let x = _mm512_set1_pd(*a.add(q * stride + ii));
                    c0[q] = _mm512_fmadd_pd(x, b0, c0[q]);
                    c1[q] = _mm512_fmadd_pd(x, b1, c1[q]);
                    c2[q] = _mm512_fmadd_pd(x, b2, c2[q]);
                    c3[q] = _mm512_fmadd_pd(x, b3, c3[q]);
                }
            }
        }
        if let Some(Epilogue { bias, activation }) = self.epilogue {
            if let Some(bias) = bias {
                // Without a bias nothing is added (adding +0 would turn -0 into +0).
                let at = |v: usize| bias.as_ptr().wrapping_add(j + 8 * v);
                let (bias0, bias1) = (
                    _mm512_maskz_loadu_pd(m0, at(0)),
                    _mm512_maskz_loadu_pd(m1, at(1)),
                );
                let (bias2, bias3) = (
                    _mm512_maskz_loadu_pd(m2, at(2)),
                    _mm512_maskz_loadu_pd(m3, at(3)),
                );
                for q in 0..R {
                    c0[q] = _mm512_add_pd(c0[q], bias0);
                    c1[q] = _mm512_add_pd(c1[q], bias1);
                    c2[q] = _mm512_add_pd(c2[q], bias2);
                    c3[q] = _mm512_add_pd(c3[q], bias3);
                }
            }
            for q in 0..R {
                c0[q] = activate(c0[q], activation);
                c1[q] = activate(c1[q], activation);
                c2[q] = activate(c2[q], activation);
                c3[q] = activate(c3[q], activation);
            }
        }
        for q in 0..R {
            let row = o.add((r + q) * n + j);
            _mm512_mask_storeu_pd(row, m0, c0[q]);
            _mm512_mask_storeu_pd(row.wrapping_add(8), m1, c1[q]);
            _mm512_mask_storeu_pd(row.wrapping_add(16), m2, c2[q]);
            _mm512_mask_storeu_pd(row.wrapping_add(24), m3, c3[q]);
        }
    }
}

/// ReLU or tanh of 8 lanes, each exactly what `Element::relu` or
/// [`super::super::tanh::tanh_f64`] returns for it.
#[inline(always)]
pub(super) unsafe fn activate(x: __m512d, activation: Fused) -> __m512d {
    if activation == Fused::Relu {
        // x < 0 is false for NaN and -0, which pass through.
        let negative = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, _mm512_setzero_pd());
        _mm512_mask_mov_pd(x, negative, _mm512_setzero_pd())
    } else {
        tanh(x)
    }
}

/// [`super::super::tanh::tanh_f64`] on 8 lanes: both of its branches, picked per lane, each
/// with the same operations in the same order (no fused multiply-adds).
#[inline(always)]
unsafe fn tanh(x: __m512d) -> __m512d {
    use super::super::tanh::{
        BIG_F64, EXP_TERMS, INV_FACTORIAL as C, INV_LN2, LN2_HI, LN2_LO, SIGN_F64, SMALL_F64,
        SMALL_TERMS, TINY_F64, TWO_52,
    };
    let s = _mm512_set1_pd;
    let a = _mm512_abs_pd(x);
    // Not NaN where it is used: min(a, BIG) is `a < BIG ? a : BIG`, the scalar's choice.
    let clamped = _mm512_min_pd(a, s(BIG_F64));
    let u = _mm512_add_pd(clamped, clamped);
    // Below SMALL_F64: m = e^u - 1, and m / (m + 2).
    let mut p = s(C[SMALL_TERMS]);
    for k in (1..SMALL_TERMS).rev() {
        p = _mm512_add_pd(_mm512_mul_pd(p, u), s(C[k]));
    }
    let m = _mm512_mul_pd(p, u);
    let (small_num, small_den) = (m, _mm512_add_pd(m, s(2.0)));
    // From it: E = 2^n · e^r, and (E - 1) / (E + 1).
    let n = _mm512_add_pd(_mm512_mul_pd(u, s(INV_LN2)), s(0.5));
    let n = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(n);
    let r = _mm512_sub_pd(
        _mm512_sub_pd(u, _mm512_mul_pd(n, s(LN2_HI))),
        _mm512_mul_pd(n, s(LN2_LO)),
    );
    let mut p = s(C[EXP_TERMS]);
    for k in (0..EXP_TERMS).rev() {
        p = _mm512_add_pd(_mm512_mul_pd(p, r), s(C[k]));
    }
    let two_52 = _mm512_castpd_si512(s(TWO_52));
    let n = _mm512_sub_epi64(_mm512_castpd_si512(_mm512_add_pd(n, s(TWO_52))), two_52);
    let scale = _mm512_slli_epi64::<52>(_mm512_add_epi64(n, _mm512_set1_epi64(1023)));
    let e = _mm512_mul_pd(p, _mm512_castsi512_pd(scale));
    let small = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(clamped, s(SMALL_F64));
    let num = _mm512_mask_mov_pd(_mm512_sub_pd(e, s(1.0)), small, small_num);
    let den = _mm512_mask_mov_pd(_mm512_add_pd(e, s(1.0)), small, small_den);
    let t = _mm512_castpd_si512(_mm512_div_pd(num, den));
    let sign = _mm512_and_si512(_mm512_castpd_si512(x), _mm512_set1_epi64(SIGN_F64 as i64));
    let signed = _mm512_castsi512_pd(_mm512_or_si512(t, sign));
    // x itself where it is NaN or tiny.
    let keep =
        _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(x, x) | _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, s(TINY_F64));
    _mm512_mask_mov_pd(signed, keep, x)
}

/// [`activate`] on 8 values, for the tests.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(test)]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn activate_lanes(x: [f64; 8], activation: Fused) -> [f64; 8] {
    let mut out = [0f64; 8];
    _mm512_storeu_pd(
        out.as_mut_ptr(),
        activate(_mm512_loadu_pd(x.as_ptr()), activation),
    );
    out
}

/// Lanes of an 8-lane register to use when `left` columns remain.
#[inline(always)]
pub(super) fn mask(left: usize) -> __mmask8 {
    if left >= 8 {
        0xFF
    } else {
        ((1u32 << left) - 1) as __mmask8
    }
}
