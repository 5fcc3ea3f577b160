//! The register-blocked product where no micro-kernel runs (the generic level, and products
//! too small to pack for), compiled once per instruction set.

use super::dispatch::isa;
use crate::cpu::level::KernelLevel;
use crate::cpu::Element;

/// Columns handled per register block by [`small_gemm_acc`]: 32 f32 are two AVX-512 or four
/// AVX2 registers of accumulators.
const BLOCK: usize = 32;

/// `out[r][j] += Σ_i lhs[r][i] · rhs[i][j]`, all row-major (`out` `[rows, n]`, `lhs`
/// `[rows, k]`, `rhs` `[k, n]`), where no micro-kernel runs: for each block of 32 columns of a
/// row, accumulators stay in registers while `k` rows of `rhs` stream past. Each element is
/// summed from its value in `out`, over `i` in order, with separate multiplies and adds (the
/// compiler does not fuse them), whatever the row count and whichever build runs.
pub(crate) fn small_gemm_acc<T: Element>(
    level: KernelLevel,
    out: &mut [T],
    lhs: &[T],
    rhs: &[T],
    k: usize,
    n: usize,
) {
    assert!(
        n > 0
            && out.len().is_multiple_of(n)
            && lhs.len() == out.len() / n * k
            && rhs.len() == k * n
    );
    if k == 0 {
        return;
    }
    match isa(level) {
        // SAFETY: the CPU supports AVX-512F (`isa`).
        KernelLevel::Avx512 => unsafe { small_gemm_avx512(out, lhs, rhs, k, n) },
        // SAFETY: the CPU supports AVX2 and FMA (`isa`).
        KernelLevel::Avx2 => unsafe { small_gemm_avx2(out, lhs, rhs, k, n) },
        KernelLevel::Generic => small_gemm_generic(out, lhs, rhs, k, n),
    }
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
use gemm_small::{small_gemm_avx2, small_gemm_avx512, small_gemm_generic};
