//! The CPU fast path's inner loops, behind a safe façade: the f32 and f64 micro-kernels on
//! packed weights for AVX-512 and for AVX2 + FMA (a step's products with bias and activation
//! fused in), the register-blocked loops where none runs (the generic level), the separate
//! bias + activation pass, and the output buffer written where it is used. This folder is the
//! one place with `unsafe`: functions compiled for AVX2/AVX-512, chosen by the run's
//! [`KernelLevel`](crate::cpu::level::KernelLevel) as far as run-time feature detection allows
//! (`dispatch.rs`), and the uninitialised output (`uninit.rs`). Every function exported here is
//! safe to call; each checks what its `unsafe` calls rely on.
//!
//! - `gemm.rs`: the products on packed weights, extents checked before the micro-kernel runs.
//! - `packing.rs`: `PackedB`, weights packed in panels for one level's micro-kernel.
//! - `kernel.rs`: `Kernel`, each element type's micro-kernels by level.
//! - `avx512_f32.rs`, `avx2_f32.rs`, `avx512_f64.rs`, `avx2_f64.rs`: the micro-kernels.
//! - `sequence.rs`: one sequence's whole recurrence in one call, on the same lanes.
//! - `small.rs`: the register-blocked loops where no micro-kernel runs.
//! - `activation.rs`: the bias + activation pass.
//! - `uninit.rs`: the output written where it is used.
//! - `dispatch.rs`: the instruction set a level allows here, and `multiversion!`.

#![allow(unsafe_code)]

#[macro_use]
mod dispatch;
mod activation;
mod gemm;
mod kernel;
mod packing;
mod small;
mod uninit;

#[cfg(target_arch = "x86_64")]
mod avx2_f32;
#[cfg(target_arch = "x86_64")]
mod avx2_f64;
#[cfg(target_arch = "x86_64")]
mod avx512_f32;
#[cfg(target_arch = "x86_64")]
mod avx512_f64;
#[cfg(target_arch = "x86_64")]
mod sequence;

#[cfg(all(test, target_arch = "x86_64"))]
mod tests;

pub(crate) use activation::bias_activation;
#[cfg(test)]
pub(crate) use gemm::SEQUENCE_RUNS;
pub(crate) use gemm::{packed_gemm, packed_gemm_acc, packed_step, Epilogue, Sequence};
pub(crate) use kernel::Kernel;
pub(crate) use packing::PackedB;
pub(crate) use small::small_gemm_acc;
pub(crate) use uninit::{written_where_used, Blank};
