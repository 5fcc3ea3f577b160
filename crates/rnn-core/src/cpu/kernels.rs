//! The CPU fast path's inner loops: the recurrent product, the fused bias + activation, and
//! the large matrix products handed to the `gemm` crate. This is the one module with `unsafe`:
//! calls into `gemm` (raw pointers) and into functions compiled for AVX2/AVX-512, chosen at run
//! time by feature detection.

#![allow(unsafe_code)]

use super::Element;

/// `out[r][j] += Σ_i lhs[r][i] · rhs[i][j]` (or `=` without `accumulate`), all row-major: `out` `[rows, n]`, `lhs`
/// `[rows, k]`, `rhs` `[k, n]`, using up to `threads` threads.
#[allow(clippy::too_many_arguments)] // gemm's own call takes nineteen
pub(crate) fn gemm_acc<T: Element>(
    out: &mut [T],
    lhs: &[T],
    rhs: &[T],
    rows: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    threads: usize,
) {
    assert!(out.len() == rows * n && lhs.len() == rows * k && rhs.len() == k * n);
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
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
            accumulate,
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
            parallelism,
        )
    }
}

/// Like [`gemm_acc`] (accumulating), for f32 on AVX-512 with this crate's micro-kernel, the
/// rows split over `threads` scoped threads; `false` (and nothing done) where that kernel does
/// not apply, so the caller uses gemm. gemm's own f32 kernels are AVX2 on a stable toolchain:
/// on an AVX-512 CPU they reach half the arithmetic rate (docs/performance.md).
pub(crate) fn avx512_gemm_acc<T: Element>(
    out: &mut [T],
    lhs: &[T],
    rhs: &[T],
    k: usize,
    n: usize,
    threads: usize,
) -> bool {
    if !is_x86_feature_detected_avx512() || T::as_f32(rhs).is_none() {
        return false;
    }
    let rows = out.len() / n;
    let per_thread = rows.div_ceil(threads.max(1)).next_multiple_of(4);
    if threads <= 1 || rows < 8 {
        small_gemm_acc(out, lhs, rhs, k, n);
        return true;
    }
    std::thread::scope(|scope| {
        for (out, lhs) in out
            .chunks_mut(per_thread * n)
            .zip(lhs.chunks(per_thread * k))
        {
            scope.spawn(move || small_gemm_acc(out, lhs, rhs, k, n));
        }
    });
    true
}

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
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected_avx512() {
        if let (Some(out), Some(lhs), Some(rhs)) =
            (T::as_f32_mut(out), T::as_f32(lhs), T::as_f32(rhs))
        {
            // SAFETY: AVX-512F is present (checked above); the extents were asserted above.
            unsafe { avx512_f32::gemm_acc(out, lhs, rhs, k, n) };
            return;
        }
    }
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

/// The f32 micro-kernel for AVX-512: blocks of 4 rows × 32 columns, eight 16-lane accumulators
/// that stay in registers while `k` rows of `rhs` stream past; each row of `rhs` loaded feeds
/// eight multiply-adds. Column tails use masked loads and stores.
#[cfg(target_arch = "x86_64")]
mod avx512_f32 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512F; `out` is `[rows, n]`, `lhs` `[rows, k]`, `rhs` `[k, n]`,
    /// row-major (checked by the caller).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm_acc(out: &mut [f32], lhs: &[f32], rhs: &[f32], k: usize, n: usize) {
        if n == 0 {
            return;
        }
        let rows = out.len() / n;
        // Column panels outermost, and at most KB rows of `rhs` at a time: a panel of `rhs`
        // (KB × 32 floats, 16 KiB) stays in L1 while every block of rows passes over it,
        // instead of all of `rhs` streaming from L2 once per block of rows.
        // The panel is copied into a contiguous buffer first: read in place, its rows lie n
        // floats apart, and with n a multiple of 512 they all fall into the same few L1 sets.
        // With a few rows (a single sequence) there is too little reuse to pay for the copy:
        // the panel is read in place.
        let pack = rows >= 8;
        let mut packed = if pack {
            vec![0f32; KB * 32]
        } else {
            Vec::new()
        };
        let mut j = 0;
        while j < n {
            let width = (n - j).min(32);
            let mut k0 = 0;
            while k0 < k {
                let k1 = (k0 + KB).min(k);
                let (b, stride) = if pack {
                    for i in k0..k1 {
                        let dst = &mut packed[(i - k0) * 32..(i - k0 + 1) * 32];
                        dst[..width].copy_from_slice(&rhs[i * n + j..i * n + j + width]);
                        dst[width..].fill(0.0);
                    }
                    (packed.as_ptr(), 32)
                } else {
                    (rhs.as_ptr().add(k0 * n + j), n)
                };
                let mut r = 0;
                while r + 4 <= rows {
                    panel::<4>(out, lhs, b, stride, k, n, r, j, k0, k1);
                    r += 4;
                }
                while r < rows {
                    panel::<1>(out, lhs, b, stride, k, n, r, j, k0, k1);
                    r += 1;
                }
                k0 = k1;
            }
            j += 32;
        }
    }

    /// Rows of `rhs` per pass (see `gemm_acc`).
    const KB: usize = 128;

    /// Rows `r..r + R`, columns `j..j + 32` (masked at the edge), adding the products of
    /// `lhs` columns `k0..k1` and the panel `b` (rows `k0..k1` of `rhs`, columns `j..j + 32`,
    /// `stride` floats apart: packed or in place): `2·R` accumulators.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel<const R: usize>(
        out: &mut [f32],
        lhs: &[f32],
        b: *const f32,
        stride: usize,
        k: usize,
        n: usize,
        r: usize,
        j: usize,
        k0: usize,
        k1: usize,
    ) {
        let (o, a) = (out.as_mut_ptr(), lhs.as_ptr());
        let m0 = mask(n - j);
        let m1 = mask(n.saturating_sub(j + 16));
        // SAFETY (all pointer arithmetic below): rows r..r+R are within `rows` (the caller's
        // loop), columns j..j+32 are masked to < n, i < k, and the panel `b` has k1 - k0 rows
        // of `stride` floats (32 packed, or n in place starting at column j).
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        for q in 0..R {
            let row = o.add((r + q) * n + j);
            c0[q] = _mm512_maskz_loadu_ps(m0, row);
            c1[q] = _mm512_maskz_loadu_ps(m1, row.add(16));
        }
        for i in k0..k1 {
            let br = b.add((i - k0) * stride);
            let b0 = _mm512_maskz_loadu_ps(m0, br);
            let b1 = _mm512_maskz_loadu_ps(m1, br.add(16));
            for q in 0..R {
                let x = _mm512_set1_ps(*a.add((r + q) * k + i));
                c0[q] = _mm512_fmadd_ps(x, b0, c0[q]);
                c1[q] = _mm512_fmadd_ps(x, b1, c1[q]);
            }
        }
        for q in 0..R {
            let row = o.add((r + q) * n + j);
            _mm512_mask_storeu_ps(row, m0, c0[q]);
            _mm512_mask_storeu_ps(row.add(16), m1, c1[q]);
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
