//! The f32 micro-kernel for AVX2 and FMA on packed weights ([`PackedB`] with panels of
//! [`NR_AVX2`] columns), built as the AVX-512 one is: blocks of 6 rows × 16 columns in 12
//! accumulators (of the 16 ymm registers: 2 more hold the panel's row, 1 the broadcast) that
//! stay in registers while the shared dimension streams past; each step of it loads two
//! registers of the packed panel and broadcasts 6 values of the left rows for 12
//! multiply-adds. The same multiply-adds in the same order as the AVX-512 kernel, and the same
//! tanh, so the two give the same bits.

use std::arch::x86_64::*;

use super::gemm::{spans, Epilogue};
use super::packing::{PackedB, NR_AVX2 as NR};
use crate::cpu::Fused;

/// Depth of the shared dimension per pass: a 256 × 16 panel slice (16 KiB) stays in L1
/// (32 KiB on Zen 3 and Haswell alike) while every block of rows passes over it.
const KC: usize = 256;

/// Rows per register block: 6 rows × 16 columns are 12 of the 16 ymm registers (the
/// classic Haswell shape).
const MR: usize = 6;
// The row tails in `rows_product` are matched for 1 to 5 rows.
const _: () = assert!(MR == 6);

/// Panels per column block: 256 columns, as the AVX-512 kernel's 4 panels of 64.
const PANELS_PER_BLOCK: usize = 16;

/// Rows per call of [`rows_product`], as in the AVX-512 kernel.
const MC: usize = 80 * MR;

/// # Safety
/// The CPU must support AVX2 and FMA; the extents are those [`super::packed_product`]
/// checks.
#[target_feature(enable = "avx2,fma")]
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

/// [`packed_product`] for rows `rows` of `out` and of the terms' left-hand sides, and for
/// the columns of panels `panels`.
#[target_feature(enable = "avx2,fma")]
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
                masks: [mask(n - j), mask(n.saturating_sub(j + 8))],
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

/// Panels [`wide_row`] takes at once: 64 columns, as the AVX-512 block's row.
const WIDE: usize = 4;

/// One row over [`WIDE`] whole panels from panel `p0` (columns `p0·NR..`, all before `n`):
/// 8 independent accumulators, where [`Tile::run`] with one row has 2 per panel and takes
/// the panels one after another. A single sequence's step is a chain of dependent
/// multiply-adds, so the independent chains set its pace (the AVX-512 block has 4 over its
/// 64 columns). Each sum is formed as in [`Tile::run`], so the result is the same bits.
///
/// # Safety
/// As [`Tile::run`], for row `row` of `out` (`o` is its row 0) and of the terms' left
/// sides, with `(p0 + WIDE)·NR ≤ n`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn wide_row(
    o: *mut f32,
    n: usize,
    p0: usize,
    row: usize,
    spans: &[super::gemm::Span],
    terms: &[(&[f32], &PackedB<f32>)],
    load: bool,
    epilogue: Option<Epilogue<f32>>,
) {
    debug_assert!((p0 + WIDE) * NR <= n);
    let j = p0 * NR;
    let o = o.add(j);
    let mut c = [_mm256_setzero_ps(); 2 * WIDE];
    if load {
        for (v, c) in c.iter_mut().enumerate() {
            *c = _mm256_loadu_ps(o.add(8 * v));
        }
    }
    for span in spans {
        let (lhs, b) = terms[span.term];
        let a = lhs.as_ptr().add(row * b.k + span.k0);
        let base = b.panels().as_ptr().add((p0 * b.k + span.k0) * NR);
        let panel = b.k * NR;
        for ii in 0..span.depth {
            let x = _mm256_set1_ps(*a.add(ii));
            for (v, c) in c.iter_mut().enumerate() {
                let bp = base.add((v / 2) * panel + ii * NR + (v % 2) * 8);
                *c = _mm256_fmadd_ps(x, _mm256_loadu_ps(bp), *c);
            }
        }
    }
    if let Some(Epilogue { bias, activation }) = epilogue {
        if let Some(bias) = bias {
            for (v, c) in c.iter_mut().enumerate() {
                *c = _mm256_add_ps(*c, _mm256_loadu_ps(bias.as_ptr().add(j + 8 * v)));
            }
        }
        for c in c.iter_mut() {
            *c = activate(*c, activation);
        }
    }
    for (v, c) in c.iter().enumerate() {
        _mm256_storeu_ps(o.add(8 * v), *c);
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
    /// The lanes of each register of a row that lie before column `n` (all bits of a lane
    /// set, as `vmaskmovps` wants).
    masks: [__m256i; 2],
    /// Whether every column of the tile lies before `n` (plain loads and stores then).
    full: bool,
    /// Whether the sums start from `out` (else from zero).
    load: bool,
    epilogue: Option<Epilogue<'a, f32>>,
}

impl Tile<'_> {
    /// Loads the two registers of `NR` floats at `at` (lanes past `n` as zero).
    #[inline(always)]
    unsafe fn load(&self, at: *const f32) -> (__m256, __m256) {
        if self.full {
            (_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8)))
        } else {
            let [m0, m1] = self.masks;
            (
                _mm256_maskload_ps(at, m0),
                _mm256_maskload_ps(at.wrapping_add(8), m1),
            )
        }
    }

    /// Rows `r..r + R`, `2·R` accumulators, summed over the spans' operands in order.
    #[inline(always)]
    unsafe fn run<const R: usize>(&self, r: usize, operands: impl Iterator<Item = Operands>) {
        let Tile { o, n, j, masks, .. } = *self;
        // SAFETY (all pointer arithmetic below): rows r..r+R are < rows (the caller's
        // loops), columns j..j+NR lie before n where `full`, else are masked to < n (the
        // pointer to the second register is formed with wrapping_add, since with
        // n - j ≤ 8 it may lie past the end, where its all-zero mask touches nothing),
        // ii < depth; each span's `a` starts R rows of at least `depth` values, `stride`
        // apart; its panel has `depth` rows of NR floats from `b`, zero beyond n.
        // Two arrays of R, one per register of a row, as in the AVX-512 kernel (a nested
        // array left a copy of the accumulators on the stack there).
        let mut c0 = [_mm256_setzero_ps(); R];
        let mut c1 = [_mm256_setzero_ps(); R];
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
                let b0 = _mm256_loadu_ps(br);
                let b1 = _mm256_loadu_ps(br.add(8));
                for q in 0..R {
                    let x = _mm256_broadcast_ss(&*a.add(q * stride + ii));
                    c0[q] = _mm256_fmadd_ps(x, b0, c0[q]);
                    c1[q] = _mm256_fmadd_ps(x, b1, c1[q]);
                }
            }
        }
        if let Some(Epilogue { bias, activation }) = self.epilogue {
            if let Some(bias) = bias {
                // Without a bias nothing is added, as in the scalar pass: adding +0 would
                // turn a sum of -0 into +0.
                let (bias0, bias1) = self.load(bias.as_ptr().wrapping_add(j));
                for q in 0..R {
                    c0[q] = _mm256_add_ps(c0[q], bias0);
                    c1[q] = _mm256_add_ps(c1[q], bias1);
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
                _mm256_storeu_ps(row, c0[q]);
                _mm256_storeu_ps(row.add(8), c1[q]);
            } else {
                _mm256_maskstore_ps(row, m0, c0[q]);
                _mm256_maskstore_ps(row.wrapping_add(8), m1, c1[q]);
            }
        }
    }
}

/// ReLU or tanh of 8 lanes, each lane exactly what `Element::relu` or
/// [`super::super::tanh_f32`] returns for it.
#[inline(always)]
pub(super) unsafe fn activate(x: __m256, activation: Fused) -> __m256 {
    if activation == Fused::Relu {
        // x < 0 is false for NaN and -0, which pass through, as in the scalar version.
        let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
        _mm256_blendv_ps(x, _mm256_setzero_ps(), negative)
    } else {
        tanh(x)
    }
}

/// [`super::super::tanh_f32`] on 8 lanes: the same operations in the same order (separate
/// multiplies and adds, no fused ones), so every lane is bit-identical to it.
#[inline(always)]
unsafe fn tanh(x: __m256) -> __m256 {
    use super::super::tanh::{A1, A11, A13, A3, A5, A7, A9, B0, B2, B4, B6, CLAMP, TINY};
    let s = _mm256_set1_ps;
    let above = _mm256_cmp_ps::<_CMP_GT_OQ>(x, s(CLAMP));
    let below = _mm256_cmp_ps::<_CMP_LT_OQ>(x, s(-CLAMP));
    let c = _mm256_blendv_ps(_mm256_blendv_ps(x, s(CLAMP), above), s(-CLAMP), below);
    let x2 = _mm256_mul_ps(c, c);
    // Plain loops, not closures: a closure would not inherit the caller's target features.
    let mut p = s(A13);
    for a in [A11, A9, A7, A5, A3, A1] {
        p = _mm256_add_ps(_mm256_mul_ps(p, x2), s(a));
    }
    let p = _mm256_mul_ps(p, c);
    let mut q = s(B6);
    for b in [B4, B2, B0] {
        q = _mm256_add_ps(_mm256_mul_ps(q, x2), s(b));
    }
    let r = _mm256_div_ps(p, q);
    // |x|: the sign bit cleared.
    let abs = _mm256_andnot_ps(s(-0.0), x);
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(abs, s(TINY));
    _mm256_blendv_ps(r, x, tiny)
}

/// [`activate`] on 8 values, for the tests.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(test)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn activate_lanes(x: [f32; 8], activation: Fused) -> [f32; 8] {
    let mut out = [0f32; 8];
    _mm256_storeu_ps(
        out.as_mut_ptr(),
        activate(_mm256_loadu_ps(x.as_ptr()), activation),
    );
    out
}

/// Lanes of an 8-lane register to use when `left` columns remain: all bits set in each.
#[inline(always)]
pub(super) unsafe fn mask(left: usize) -> __m256i {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(left.min(8) as i32), lanes)
}
