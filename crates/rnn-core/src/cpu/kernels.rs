//! The CPU fast path's inner loops: the recurrent product, the fused bias + activation, and
//! the large matrix products handed to the `gemm` crate. This is the one module with `unsafe`:
//! calls into `gemm` (raw pointers) and into functions compiled for AVX2/AVX-512, chosen at run
//! time by feature detection.

#![allow(unsafe_code)]

use super::Element;

/// `out[r][j] += Σ_i lhs[r][i] · rhs[i][j]`, all row-major: `out` `[rows, n]`, `lhs`
/// `[rows, k]`, `rhs` `[k, n]`, with gemm's blocked GEMM on this thread.
pub(crate) fn gemm_acc<T: Element>(
    out: &mut [T],
    lhs: &[T],
    rhs: &[T],
    rows: usize,
    k: usize,
    n: usize,
) {
    assert!(out.len() == rows * n && lhs.len() == rows * k && rhs.len() == k * n);
    // SAFETY: the assert above makes every pointer valid for the row-major extents given
    // (column stride 1, row strides n, k and n); `out` is borrowed mutably, so it does not
    // alias `lhs` or `rhs`. T is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// A right-hand matrix `[k, n]` packed once for [`packed_gemm_acc`], which multiplies by it
/// many times (`W_ih` and `W_hh` in every step): panels of [`NR`] columns, zero-padded, each
/// `k` rows of `NR` contiguous floats. A panel's rows are then one stream for the hardware
/// prefetcher and never collide in the L1 sets, as rows `n` floats apart do.
pub(crate) struct PackedB {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedB {
    /// Packs `rhs`; `None` where the AVX-512 kernel does not run (no AVX-512, not f32).
    pub(crate) fn new<T: Element>(rhs: &[T], k: usize, n: usize) -> Option<Self> {
        let rhs = T::as_f32(rhs)?;
        if !is_x86_feature_detected_avx512() || rhs.len() != k * n || n == 0 {
            return None;
        }
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels * k * NR];
        for p in 0..panels {
            let j = p * NR;
            let width = (n - j).min(NR);
            for i in 0..k {
                let dst = (p * k + i) * NR;
                data[dst..dst + width].copy_from_slice(&rhs[i * n + j..i * n + j + width]);
            }
        }
        Some(Self { data, k, n })
    }
}

/// `out[r][j] += Σ_i lhs[r][i] · b[i][j]` on one thread, with the AVX-512 micro-kernel:
/// `out` `[rows, n]`, `lhs` `[rows, k]`, row-major.
pub(crate) fn packed_gemm_acc<T: Element>(out: &mut [T], lhs: &[T], b: &PackedB) {
    let (Some(out), Some(lhs)) = (T::as_f32_mut(out), T::as_f32(lhs)) else {
        // PackedB exists for f32 only, so neither does a call with another type.
        return;
    };
    assert!(out.len().is_multiple_of(b.n) && lhs.len() == out.len() / b.n * b.k);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a PackedB is only made where AVX-512F is present; the extents are asserted
    // above and the packing's in `PackedB::new`.
    unsafe {
        avx512_f32::packed_gemm_acc(out, lhs, b)
    }
}

/// Columns of a packed panel: two AVX-512 registers.
const NR: usize = 32;

/// Columns handled per register block by [`small_gemm_acc`]: 32 f32 are two AVX-512 or four
/// AVX2 registers of accumulators.
const BLOCK: usize = 32;

/// Like [`gemm_acc`], for the small products of one time step (a few rows, `k = n = H` up to a
/// few hundred), where packing matrices for a blocked GEMM costs more than it saves: for each
/// block of 32 columns, accumulators stay in registers while `k` rows of `rhs` stream past.
pub(crate) fn small_gemm_acc<T: Element>(out: &mut [T], lhs: &[T], rhs: &[T], k: usize, n: usize) {
    assert!(
        n > 0
            && out.len().is_multiple_of(n)
            && lhs.len() == out.len() / n * k
            && rhs.len() == k * n
    );
    if is_x86_feature_detected_avx512() {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        unsafe { small_gemm_avx512(out, lhs, rhs, k, n) }
    } else if is_x86_feature_detected_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { small_gemm_avx2(out, lhs, rhs, k, n) }
    } else {
        small_gemm_generic(out, lhs, rhs, k, n)
    }
}

/// `out = act(out + bias)` elementwise, `bias` repeated over rows of its length.
pub(crate) fn bias_activation<T: Element>(out: &mut [T], bias: Option<&[T]>, relu: bool) {
    if is_x86_feature_detected_avx512() {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        unsafe { bias_activation_avx512(out, bias, relu) }
    } else if is_x86_feature_detected_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { bias_activation_avx2(out, bias, relu) }
    } else {
        bias_activation_generic(out, bias, relu)
    }
}

#[cfg(target_arch = "x86_64")]
fn is_x86_feature_detected_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(target_arch = "x86_64")]
fn is_x86_feature_detected_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn is_x86_feature_detected_avx512() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn is_x86_feature_detected_avx2() -> bool {
    false
}

/// Instantiates a function body once per instruction set: the generic build, and copies the
/// compiler may vectorise with AVX2+FMA or AVX-512 (chosen at run time above).
macro_rules! multiversion {
    ($generic:ident, $avx2:ident, $avx512:ident, ($($arg:ident: $ty:ty),*), $body:item) => {
        #[inline(always)]
        $body

        pub(super) fn $generic<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn $avx2<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn $avx512<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }

        #[cfg(not(target_arch = "x86_64"))]
        pub(super) unsafe fn $avx2<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }

        #[cfg(not(target_arch = "x86_64"))]
        pub(super) unsafe fn $avx512<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }
    };
}

mod gemm_small {
    use super::{Element, BLOCK};

    multiversion!(
        small_gemm_generic,
        small_gemm_avx2,
        small_gemm_avx512,
        (out: &mut [T], lhs: &[T], rhs: &[T], k: usize, n: usize),
        fn inner<T: Element>(out: &mut [T], lhs: &[T], rhs: &[T], k: usize, n: usize) {
            for (out_row, lhs_row) in out.chunks_exact_mut(n).zip(lhs.chunks_exact(k)) {
                let mut start = 0;
                while start + BLOCK <= n {
                    let mut acc = [T::ZERO; BLOCK];
                    acc.copy_from_slice(&out_row[start..start + BLOCK]);
                    for (i, &a) in lhs_row.iter().enumerate() {
                        let r = &rhs[i * n + start..i * n + start + BLOCK];
                        for j in 0..BLOCK {
                            acc[j] += a * r[j];
                        }
                    }
                    out_row[start..start + BLOCK].copy_from_slice(&acc);
                    start += BLOCK;
                }
                if start < n {
                    let width = n - start;
                    let mut acc = [T::ZERO; BLOCK];
                    acc[..width].copy_from_slice(&out_row[start..]);
                    for (i, &a) in lhs_row.iter().enumerate() {
                        let r = &rhs[i * n + start..(i + 1) * n];
                        for (acc, &r) in acc.iter_mut().zip(r) {
                            *acc += a * r;
                        }
                    }
                    out_row[start..].copy_from_slice(&acc[..width]);
                }
            }
        }
    );
}

/// The f32 micro-kernel for AVX-512 on packed weights ([`PackedB`]): blocks of 12 rows × 32
/// columns in 24 accumulators that stay in registers while the shared dimension streams past;
/// each step of it loads two registers of the packed panel and broadcasts 12 values of the
/// left rows. Columns past `n` are masked off in the loads and stores of `out` (the panel is
/// zero-padded there).
#[cfg(target_arch = "x86_64")]
mod avx512_f32 {
    use std::arch::x86_64::*;

    /// Rows of `b` per pass of [`packed_gemm_acc`]: a 256 × 32 panel slice (32 KiB) stays in
    /// L1 while every block of rows passes over it.
    const KC: usize = 256;

    /// Rows per register block of [`packed_gemm_acc`]: 12 rows × 32 columns are 24 of the 32
    /// zmm registers as accumulators; each step of the shared dimension loads 2 registers of
    /// `b` and broadcasts 12 values of `lhs` for 24 multiply-adds, so the FMA units, not the
    /// loads, set the pace.
    const MR: usize = 12;

    /// # Safety
    /// The CPU must support AVX-512F; `out` is `[rows, b.n]` and `lhs` `[rows, b.k]`
    /// (checked by the caller).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn packed_gemm_acc(out: &mut [f32], lhs: &[f32], b: &super::PackedB) {
        // At most MC rows at a time, so that their packed copy stays a few hundred KiB (in L2)
        // however many rows there are (every step's projection at once, say).
        for (out, lhs) in out.chunks_mut(MC * b.n).zip(lhs.chunks(MC * b.k)) {
            packed_rows(out, lhs, b);
        }
    }

    /// Rows per call of [`packed_rows`]: 40 blocks of MR.
    const MC: usize = 40 * MR;

    /// [`packed_gemm_acc`] for at most [`MC`] rows.
    #[target_feature(enable = "avx512f")]
    unsafe fn packed_rows(out: &mut [f32], lhs: &[f32], b: &super::PackedB) {
        let (k, n) = (b.k, b.n);
        let rows = out.len() / n;
        let full = rows / MR * MR;
        let (o, a) = (out.as_mut_ptr(), lhs.as_ptr());
        // The rows of `lhs` in blocks of MR, interleaved (`[block][i][MR]`) for one block of
        // the shared dimension at a time: the 12 values a step broadcasts are then adjacent,
        // one pointer and constant offsets, where 12 rows `k` floats apart cost an address
        // computation each.
        // Taken out of the thread-local rather than borrowed in a closure: a closure would not
        // inherit this function's target features.
        let mut packed_a = PACKED_A.take();
        let mut k0 = 0;
        while k0 < k {
            let k1 = (k0 + KC).min(k);
            let depth = k1 - k0;
            // Written in order, into a buffer each thread keeps: no allocation and no
            // zeroing per call.
            packed_a.clear();
            for block in 0..full / MR {
                let rows: [&[f32]; MR] = std::array::from_fn(|q| {
                    let start = (block * MR + q) * k;
                    &lhs[start + k0..start + k1]
                });
                for ii in 0..depth {
                    packed_a.extend(rows.iter().map(|row| row[ii]));
                }
            }
            for p in 0..n.div_ceil(super::NR) {
                let j = p * super::NR;
                let tile = Tile {
                    o,
                    n,
                    j,
                    depth,
                    masks: (mask(n - j), mask(n.saturating_sub(j + 16))),
                    // SAFETY: panel p holds k rows of NR floats from (p·k)·NR on.
                    bp: b.data.as_ptr().add((p * k + k0) * super::NR),
                };
                let mut r = 0;
                while r < full {
                    // SAFETY: block r / MR of `packed_a` holds MR · depth floats.
                    tile.run::<MR, true>(r, packed_a.as_ptr().add(r * depth), MR);
                    r += MR;
                }
                if r + 8 <= rows {
                    tile.run::<8, false>(r, a.add(r * k + k0), k);
                    r += 8;
                }
                if r + 4 <= rows {
                    tile.run::<4, false>(r, a.add(r * k + k0), k);
                    r += 4;
                }
                while r < rows {
                    tile.run::<1, false>(r, a.add(r * k + k0), k);
                    r += 1;
                }
            }
            k0 = k1;
        }
        PACKED_A.set(packed_a);
    }

    std::thread_local! {
        /// The packed rows of [`packed_gemm_acc`]'s left-hand side, kept between calls.
        static PACKED_A: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// One pass of [`packed_gemm_acc`]: columns `j..j + 32` of `out`, `depth` steps of the
    /// shared dimension from the packed panel `bp`.
    #[derive(Clone, Copy)]
    struct Tile {
        o: *mut f32,
        bp: *const f32,
        n: usize,
        j: usize,
        depth: usize,
        masks: (__mmask16, __mmask16),
    }

    impl Tile {
        /// Rows `r..r + R`, `2·R` accumulators. Row `q`'s value at step `ii` of the shared
        /// dimension is at `a + q + ii·MR` when `PACKED`, else at `a + q·stride + ii`.
        #[inline(always)]
        unsafe fn run<const R: usize, const PACKED: bool>(
            &self,
            r: usize,
            a: *const f32,
            stride: usize,
        ) {
            let Tile {
                o,
                bp,
                n,
                j,
                depth,
                masks: (m0, m1),
            } = *self;
            // SAFETY (all pointer arithmetic below): rows r..r+R are < rows (the caller's
            // loops), columns j..j+32 are masked to < n (the second half's pointer is formed
            // with wrapping_add, since with n - j < 16 it may lie past the end, where its
            // all-zero mask touches nothing), ii < depth; `a` holds R rows of
            // `depth` values in the layout PACKED says; the panel has `depth` rows of 32
            // floats from bp, zero beyond n.
            let mut c0 = [_mm512_setzero_ps(); R];
            let mut c1 = [_mm512_setzero_ps(); R];
            for q in 0..R {
                let row = o.add((r + q) * n + j);
                c0[q] = _mm512_maskz_loadu_ps(m0, row);
                c1[q] = _mm512_maskz_loadu_ps(m1, row.wrapping_add(16));
            }
            for ii in 0..depth {
                let br = bp.add(ii * super::NR);
                let b0 = _mm512_loadu_ps(br);
                let b1 = _mm512_loadu_ps(br.add(16));
                for q in 0..R {
                    let v = if PACKED {
                        *a.add(ii * MR + q)
                    } else {
                        *a.add(q * stride + ii)
                    };
                    let x = _mm512_set1_ps(v);
                    c0[q] = _mm512_fmadd_ps(x, b0, c0[q]);
                    c1[q] = _mm512_fmadd_ps(x, b1, c1[q]);
                }
            }
            for q in 0..R {
                let row = o.add((r + q) * n + j);
                _mm512_mask_storeu_ps(row, m0, c0[q]);
                _mm512_mask_storeu_ps(row.wrapping_add(16), m1, c1[q]);
            }
        }
    }

    /// Lanes of a 16-lane register to use when `left` columns remain.
    #[inline(always)]
    fn mask(left: usize) -> __mmask16 {
        if left >= 16 {
            0xFFFF
        } else {
            ((1u32 << left) - 1) as __mmask16
        }
    }
}
use gemm_small::{small_gemm_avx2, small_gemm_avx512, small_gemm_generic};

mod activation {
    use super::Element;

    multiversion!(
        bias_activation_generic,
        bias_activation_avx2,
        bias_activation_avx512,
        (out: &mut [T], bias: Option<&[T]>, relu: bool),
        fn inner<T: Element>(out: &mut [T], bias: Option<&[T]>, relu: bool) {
            match (bias, relu) {
                (Some(b), true) => {
                    for row in out.chunks_exact_mut(b.len()) {
                        for (v, &b) in row.iter_mut().zip(b) {
                            *v = (*v + b).relu();
                        }
                    }
                }
                (Some(b), false) => {
                    for row in out.chunks_exact_mut(b.len()) {
                        for (v, &b) in row.iter_mut().zip(b) {
                            *v = (*v + b).fast_tanh();
                        }
                    }
                }
                (None, true) => out.iter_mut().for_each(|v| *v = v.relu()),
                (None, false) => out.iter_mut().for_each(|v| *v = v.fast_tanh()),
            }
        }
    );
}
use activation::{bias_activation_avx2, bias_activation_avx512, bias_activation_generic};
