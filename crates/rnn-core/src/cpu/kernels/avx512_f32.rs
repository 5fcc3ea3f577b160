//! The f32 micro-kernel for AVX-512 on packed weights ([`PackedB`]): blocks of 6 rows × 64
//! columns in 24 accumulators that stay in registers while the shared dimension streams past;
//! each step of it loads four registers of the packed panel and broadcasts 6 values of the
//! left rows. Columns past `n` are masked off in the loads and stores of `out` (the panel is
//! zero-padded there).

use std::arch::x86_64::*;

use super::gemm::{spans, Epilogue};
use super::packing::{PackedB, NR};
use crate::cpu::Fused;

/// Depth of the shared dimension per pass: a 128 × 64 panel slice (32 KiB) stays in L1
/// while every block of rows passes over it.
const KC: usize = 128;

/// Rows per register block: 6 rows × 64 columns are 24 of the 32 zmm registers as
/// accumulators; each step of the shared dimension loads 4 registers of `b` and
/// broadcasts 6 values of `lhs` for 24 multiply-adds, so the FMA units, not the loads,
/// set the pace. Against 12 rows × 32 columns this forms half as many row addresses per
/// step (integer work that competes with the multiply-adds for issue slots) and reads
/// the left rows half as often; a C model of both loops ran 1.15× faster this way.
const MR: usize = 6;
// The row tails in `rows_product` are matched for 1 to 5 rows.
const _: () = assert!(MR == 6);

/// Registers per row of a block.
const V: usize = NR / 16;

/// # Safety
/// The CPU must support AVX-512F; the extents are those [`super::packed_product`] checks.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn packed_product(
    out: *mut f32,
    len: usize,
    accumulate: bool,
    terms: &[(&[f32], &PackedB<f32>)],
    epilogue: Option<Epilogue<f32>>,
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

/// Panels per column block: [`packed_product`] finishes every pass over 256 columns of
/// `out` before it starts the next 256 (on the benchmark's large shape, half the
/// weights: 768 rows × 256 columns, 768 KiB), so less of them is in use at a time.
/// Against all the columns in each pass it ran the large shape faster relative to torch
/// in each of four sessions (docs/performance.md, item 10).
const PANELS_PER_BLOCK: usize = 4;

/// Rows per call of [`rows_product`]: 80 blocks of MR. Each pass re-reads the rows' left
/// values once per panel, so they must stay in L2 however many rows there are (every
/// step's projection at once for a long single sequence, say).
const MC: usize = 80 * MR;

/// [`packed_product`] for rows `rows` of `out` and of the terms' left-hand sides, and for
/// the columns of panels `panels`.
#[target_feature(enable = "avx512f")]
unsafe fn rows_product(
    out: *mut f32,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    accumulate: bool,
    terms: &[(&[f32], &PackedB<f32>)],
    epilogue: Option<Epilogue<f32>>,
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
                *m = mask(n.saturating_sub(j + 16 * v));
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
                        // SAFETY: panel p holds b.k rows of NR floats from (p·b.k)·NR on;
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
    b: *const f32,
    a: *const f32,
    stride: usize,
    depth: usize,
}

/// One pass of [`rows_product`] over columns `j..j + NR` of `out` (`o`, `[rows, n]`).
#[derive(Clone, Copy)]
struct Tile<'a> {
    o: *mut f32,
    n: usize,
    j: usize,
    /// The lanes of each register of a row that lie before column `n`.
    masks: [__mmask16; V],
    /// Whether the sums start from `out` (else from zero).
    load: bool,
    epilogue: Option<Epilogue<'a, f32>>,
}

impl Tile<'_> {
    /// Rows `r..r + R`, `V·R` accumulators, summed over the spans' operands in order.
    #[inline(always)]
    unsafe fn run<const R: usize>(&self, r: usize, operands: impl Iterator<Item = Operands>) {
        let Tile { o, n, j, masks, .. } = *self;
        // SAFETY (all pointer arithmetic below): rows r..r+R are < rows (the caller's
        // loops), columns j..j+NR are masked to < n (pointers past the first register are
        // formed with wrapping_add, since with n - j ≤ 16·v they may lie past the end,
        // where their all-zero masks touch nothing), ii < depth; each span's `a` starts R
        // rows of at least `depth` values, `stride` apart; its panel has `depth` rows of
        // NR floats from `b`, zero beyond n.
        // Four arrays of R, one per register of a row, rather than one [[_; V]; R]: with
        // the nested array LLVM kept a copy of the accumulators on the stack, stored on
        // every multiply-add. (With V other than 4, `let [m0, m1, m2, m3]` below does not
        // compile.)
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        let mut c2 = [_mm512_setzero_ps(); R];
        let mut c3 = [_mm512_setzero_ps(); R];
        let [m0, m1, m2, m3] = masks;
        if self.load {
            for q in 0..R {
                let row = o.add((r + q) * n + j);
                c0[q] = _mm512_maskz_loadu_ps(m0, row);
                c1[q] = _mm512_maskz_loadu_ps(m1, row.wrapping_add(16));
                c2[q] = _mm512_maskz_loadu_ps(m2, row.wrapping_add(32));
                c3[q] = _mm512_maskz_loadu_ps(m3, row.wrapping_add(48));
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
                let b0 = _mm512_loadu_ps(br);
                let b1 = _mm512_loadu_ps(br.add(16));
                let b2 = _mm512_loadu_ps(br.add(32));
                let b3 = _mm512_loadu_ps(br.add(48));
                for q in 0..R {
                    let x = _mm512_set1_ps(*a.add(q * stride + ii));
                    c0[q] = _mm512_fmadd_ps(x, b0, c0[q]);
                    c1[q] = _mm512_fmadd_ps(x, b1, c1[q]);
                    c2[q] = _mm512_fmadd_ps(x, b2, c2[q]);
                    c3[q] = _mm512_fmadd_ps(x, b3, c3[q]);
                }
            }
        }
        if let Some(Epilogue { bias, activation }) = self.epilogue {
            if let Some(bias) = bias {
                // Without a bias nothing is added, as in the scalar pass: adding +0 would
                // turn a sum of -0 into +0.
                let at = |v: usize| bias.as_ptr().wrapping_add(j + 16 * v);
                let (bias0, bias1) = (
                    _mm512_maskz_loadu_ps(m0, at(0)),
                    _mm512_maskz_loadu_ps(m1, at(1)),
                );
                let (bias2, bias3) = (
                    _mm512_maskz_loadu_ps(m2, at(2)),
                    _mm512_maskz_loadu_ps(m3, at(3)),
                );
                for q in 0..R {
                    c0[q] = _mm512_add_ps(c0[q], bias0);
                    c1[q] = _mm512_add_ps(c1[q], bias1);
                    c2[q] = _mm512_add_ps(c2[q], bias2);
                    c3[q] = _mm512_add_ps(c3[q], bias3);
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
            _mm512_mask_storeu_ps(row, m0, c0[q]);
            _mm512_mask_storeu_ps(row.wrapping_add(16), m1, c1[q]);
            _mm512_mask_storeu_ps(row.wrapping_add(32), m2, c2[q]);
            _mm512_mask_storeu_ps(row.wrapping_add(48), m3, c3[q]);
        }
    }
}

/// ReLU or tanh of 16 lanes, each lane exactly what `Element::relu` or
/// [`super::super::tanh_f32`] returns for it.
#[inline(always)]
pub(super) unsafe fn activate(x: __m512, activation: Fused) -> __m512 {
    if activation == Fused::Relu {
        // x < 0 is false for NaN and -0, which pass through, as in the scalar version.
        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
        _mm512_mask_mov_ps(x, negative, _mm512_setzero_ps())
    } else {
        tanh(x)
    }
}

/// [`super::super::tanh_f32`] on 16 lanes: the same operations in the same order
/// (separate multiplies and adds, no fused ones), so every lane is bit-identical to it.
#[inline(always)]
unsafe fn tanh(x: __m512) -> __m512 {
    use super::super::tanh::{A1, A11, A13, A3, A5, A7, A9, B0, B2, B4, B6, CLAMP, TINY};
    let s = _mm512_set1_ps;
    let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, s(CLAMP));
    let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, s(-CLAMP));
    let c = _mm512_mask_mov_ps(_mm512_mask_mov_ps(x, above, s(CLAMP)), below, s(-CLAMP));
    let x2 = _mm512_mul_ps(c, c);
    // Plain loops, not closures: a closure would not inherit the caller's target features.
    let mut p = s(A13);
    for a in [A11, A9, A7, A5, A3, A1] {
        p = _mm512_add_ps(_mm512_mul_ps(p, x2), s(a));
    }
    let p = _mm512_mul_ps(p, c);
    let mut q = s(B6);
    for b in [B4, B2, B0] {
        q = _mm512_add_ps(_mm512_mul_ps(q, x2), s(b));
    }
    let r = _mm512_div_ps(p, q);
    let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(x), s(TINY));
    _mm512_mask_mov_ps(r, tiny, x)
}

/// [`activate`] on 16 values, for the tests.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(test)]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn activate_lanes(x: [f32; 16], activation: Fused) -> [f32; 16] {
    let mut out = [0f32; 16];
    _mm512_storeu_ps(
        out.as_mut_ptr(),
        activate(_mm512_loadu_ps(x.as_ptr()), activation),
    );
    out
}

/// Lanes of a 16-lane register to use when `left` columns remain.
#[inline(always)]
pub(super) fn mask(left: usize) -> __mmask16 {
    if left >= 16 {
        0xFFFF
    } else {
        ((1u32 << left) - 1) as __mmask16
    }
}
