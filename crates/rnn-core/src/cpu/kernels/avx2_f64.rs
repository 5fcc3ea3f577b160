//! The f64 micro-kernel for AVX2 and FMA on packed weights ([`PackedB`] with panels of
//! [`NR_AVX2_F64`] columns), the f32 one's structure at 4 lanes: blocks of 6 rows × 8 columns
//! in 12 accumulators (of the 16 ymm registers: 2 more hold the panel's row, 1 the
//! broadcast), the Haswell shape; a single row over 4 panels at once. The same multiply-adds
//! in the same order as the AVX-512 f64 kernel and the same epilogue, so the two give the same
//! bits.

use std::arch::x86_64::*;

use super::gemm::{spans, Epilogue};
use super::packing::{PackedB, NR_AVX2_F64 as NR};
use crate::cpu::Fused;

/// Depth of the shared dimension per pass: a 256 × 8 panel slice (16 KiB, as f32's).
const KC: usize = 256;

/// Rows per register block (the row tails in `rows_product` are matched for 1 to 5).
const MR: usize = 6;
const _: () = assert!(MR == 6);

/// Panels per column block: 128 columns, as the AVX-512 f64 kernel's 4 panels of 32.
const PANELS_PER_BLOCK: usize = 16;

/// Rows per call of [`rows_product`], as in the AVX-512 kernel.
const MC: usize = 80 * MR;

/// # Safety
/// The CPU must support AVX2 and FMA; the extents are those [`super::packed_product`]
/// checks.
#[target_feature(enable = "avx2,fma")]
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
#[target_feature(enable = "avx2,fma")]
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
        let mut first = panels.start;
        if count == 1 {
            while first + WIDE <= panels.end && (first + WIDE) * NR <= n {
                let load = accumulate || start > 0;
                let epilogue = if last { epilogue } else { None };
                wide_row(o, n, first, rows.start, spans, terms, load, epilogue);
                first += WIDE;
            }
        }
        for p in first..panels.end {
            let j = p * NR;
            let tile = Tile {
                o,
                n,
                j,
                masks: [mask(n - j), mask(n.saturating_sub(j + 4))],
                full: n - j >= NR,
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

/// Panels [`wide_row`] takes at once: 32 columns, as the AVX-512 f64 block's row.
const WIDE: usize = 4;

/// One row over [`WIDE`] whole panels from panel `p0` (columns `p0·NR..`, all before `n`):
/// 8 independent accumulators where [`Tile::run`] with one row has 2 per panel, as in the
/// f32 kernel (a single sequence's step is a chain of dependent multiply-adds). Each sum
/// is formed as in [`Tile::run`], so the result is the same bits.
///
/// # Safety
/// As [`Tile::run`], for row `row` of `out` (`o` is its row 0) and of the terms' left
/// sides, with `(p0 + WIDE)·NR ≤ n`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn wide_row(
    o: *mut f64,
    n: usize,
    p0: usize,
    row: usize,
    spans: &[super::gemm::Span],
    terms: &[(&[f64], &PackedB<f64>)],
    load: bool,
    epilogue: Option<Epilogue<f64>>,
) {
    debug_assert!((p0 + WIDE) * NR <= n);
    let j = p0 * NR;
    let o = o.add(j);
    let mut c = [_mm256_setzero_pd(); 2 * WIDE];
    if load {
        for (v, c) in c.iter_mut().enumerate() {
            *c = _mm256_loadu_pd(o.add(4 * v));
        }
    }
    for span in spans {
        let (lhs, b) = terms[span.term];
        let a = lhs.as_ptr().add(row * b.k + span.k0);
        let base = b.panels().as_ptr().add((p0 * b.k + span.k0) * NR);
        let panel = b.k * NR;
        for ii in 0..span.depth {
            let x = _mm256_set1_pd(*a.add(ii));
            for (v, c) in c.iter_mut().enumerate() {
                let bp = base.add((v / 2) * panel + ii * NR + (v % 2) * 4);
                *c = _mm256_fmadd_pd(x, _mm256_loadu_pd(bp), *c);
            }
        }
    }
    if let Some(Epilogue { bias, activation }) = epilogue {
        if let Some(bias) = bias {
            for (v, c) in c.iter_mut().enumerate() {
                *c = _mm256_add_pd(*c, _mm256_loadu_pd(bias.as_ptr().add(j + 4 * v)));
            }
        }
        for c in c.iter_mut() {
            *c = activate(*c, activation);
        }
    }
    for (v, c) in c.iter().enumerate() {
        _mm256_storeu_pd(o.add(4 * v), *c);
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
    /// The lanes of each register of a row that lie before column `n` (all bits of a lane
    /// set, as `vmaskmovpd` wants).
    masks: [__m256i; 2],
    /// Whether every column of the tile lies before `n` (plain loads and stores then).
    full: bool,
    /// Whether the sums start from `out` (else from zero).
    load: bool,
    epilogue: Option<Epilogue<'a, f64>>,
}

impl Tile<'_> {
    /// Loads the two registers of `NR` values at `at` (lanes past `n` as zero).
    #[inline(always)]
    unsafe fn load(&self, at: *const f64) -> (__m256d, __m256d) {
        if self.full {
            (_mm256_loadu_pd(at), _mm256_loadu_pd(at.add(4)))
        } else {
            let [m0, m1] = self.masks;
            (
                _mm256_maskload_pd(at, m0),
                _mm256_maskload_pd(at.wrapping_add(4), m1),
            )
        }
    }

    /// Rows `r..r + R`, `2·R` accumulators, summed over the spans' operands in order.
    #[inline(always)]
    unsafe fn run<const R: usize>(&self, r: usize, operands: impl Iterator<Item = Operands>) {
        let Tile { o, n, j, masks, .. } = *self;
        // SAFETY (all pointer arithmetic below): as in the f32 AVX2 kernel, with
        // registers of 4 values: rows r..r+R are < rows, columns j..j+NR lie before n
        // where `full`, else are masked to < n (the second register's pointer formed with
        // wrapping_add), ii < depth; each span's `a` starts R rows of at least `depth`
        // values, `stride` apart; its panel has `depth` rows of NR values from `b`, zero
        // beyond n.
        let mut c0 = [_mm256_setzero_pd(); R];
        let mut c1 = [_mm256_setzero_pd(); R];
        if self.load {
            for q in 0..R {
                (c0[q], c1[q]) = self.load(o.add((r + q) * n + j));
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
                let b0 = _mm256_loadu_pd(br);
                let b1 = _mm256_loadu_pd(br.add(4));
                for q in 0..R {
                    let x = _mm256_broadcast_sd(&*a.add(q * stride + ii));
                    c0[q] = _mm256_fmadd_pd(x, b0, c0[q]);
                    c1[q] = _mm256_fmadd_pd(x, b1, c1[q]);
                }
            }
        }
        if let Some(Epilogue { bias, activation }) = self.epilogue {
            if let Some(bias) = bias {
                // Without a bias nothing is added (adding +0 would turn -0 into +0).
                let (bias0, bias1) = self.load(bias.as_ptr().wrapping_add(j));
                for q in 0..R {
                    c0[q] = _mm256_add_pd(c0[q], bias0);
                    c1[q] = _mm256_add_pd(c1[q], bias1);
                }
            }
            for q in 0..R {
                c0[q] = activate(c0[q], activation);
                c1[q] = activate(c1[q], activation);
            }
        }
        let [m0, m1] = masks;
        for q in 0..R {
            let row = o.add((r + q) * n + j);
            if self.full {
                _mm256_storeu_pd(row, c0[q]);
                _mm256_storeu_pd(row.add(4), c1[q]);
            } else {
                _mm256_maskstore_pd(row, m0, c0[q]);
                _mm256_maskstore_pd(row.wrapping_add(4), m1, c1[q]);
            }
        }
    }
}

/// ReLU or tanh of 4 lanes, each exactly what `Element::relu` or
/// [`super::super::tanh::tanh_f64`] returns for it.
#[inline(always)]
pub(super) unsafe fn activate(x: __m256d, activation: Fused) -> __m256d {
    if activation == Fused::Relu {
        // x < 0 is false for NaN and -0, which pass through.
        let negative = _mm256_cmp_pd::<_CMP_LT_OQ>(x, _mm256_setzero_pd());
        _mm256_blendv_pd(x, _mm256_setzero_pd(), negative)
    } else {
        tanh(x)
    }
}

/// [`super::super::tanh::tanh_f64`] on 4 lanes, as the AVX-512 kernel's `tanh` computes it.
#[inline(always)]
unsafe fn tanh(x: __m256d) -> __m256d {
    use super::super::tanh::{
        BIG_F64, EXP_TERMS, INV_FACTORIAL as C, INV_LN2, LN2_HI, LN2_LO, SIGN_F64, SMALL_F64,
        SMALL_TERMS, TINY_F64, TWO_52,
    };
    let s = _mm256_set1_pd;
    let sign_bit = _mm256_castsi256_pd(_mm256_set1_epi64x(SIGN_F64 as i64));
    let a = _mm256_andnot_pd(sign_bit, x);
    // Not NaN where it is used: min(a, BIG) is `a < BIG ? a : BIG`, the scalar's choice.
    let clamped = _mm256_min_pd(a, s(BIG_F64));
    let u = _mm256_add_pd(clamped, clamped);
    let mut p = s(C[SMALL_TERMS]);
    for k in (1..SMALL_TERMS).rev() {
        p = _mm256_add_pd(_mm256_mul_pd(p, u), s(C[k]));
    }
    let m = _mm256_mul_pd(p, u);
    let (small_num, small_den) = (m, _mm256_add_pd(m, s(2.0)));
    let n = _mm256_floor_pd(_mm256_add_pd(_mm256_mul_pd(u, s(INV_LN2)), s(0.5)));
    let r = _mm256_sub_pd(
        _mm256_sub_pd(u, _mm256_mul_pd(n, s(LN2_HI))),
        _mm256_mul_pd(n, s(LN2_LO)),
    );
    let mut p = s(C[EXP_TERMS]);
    for k in (0..EXP_TERMS).rev() {
        p = _mm256_add_pd(_mm256_mul_pd(p, r), s(C[k]));
    }
    let two_52 = _mm256_castpd_si256(s(TWO_52));
    let n = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, s(TWO_52))), two_52);
    let scale = _mm256_slli_epi64::<52>(_mm256_add_epi64(n, _mm256_set1_epi64x(1023)));
    let e = _mm256_mul_pd(p, _mm256_castsi256_pd(scale));
    let small = _mm256_cmp_pd::<_CMP_LT_OQ>(clamped, s(SMALL_F64));
    let num = _mm256_blendv_pd(_mm256_sub_pd(e, s(1.0)), small_num, small);
    let den = _mm256_blendv_pd(_mm256_add_pd(e, s(1.0)), small_den, small);
    let t = _mm256_div_pd(num, den);
    let signed = _mm256_or_pd(t, _mm256_and_pd(x, sign_bit));
    // x itself where it is NaN or tiny.
    let keep = _mm256_or_pd(
        _mm256_cmp_pd::<_CMP_UNORD_Q>(x, x),
        _mm256_cmp_pd::<_CMP_LT_OQ>(a, s(TINY_F64)),
    );
    _mm256_blendv_pd(signed, x, keep)
}

/// [`activate`] on 4 values, for the tests.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(test)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn activate_lanes(x: [f64; 4], activation: Fused) -> [f64; 4] {
    let mut out = [0f64; 4];
    _mm256_storeu_pd(
        out.as_mut_ptr(),
        activate(_mm256_loadu_pd(x.as_ptr()), activation),
    );
    out
}

/// Lanes of a 4-lane register to use when `left` columns remain: all bits set in each.
#[inline(always)]
pub(super) unsafe fn mask(left: usize) -> __m256i {
    let lanes = _mm256_setr_epi64x(0, 1, 2, 3);
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(left.min(4) as i64), lanes)
}
