//! Each element type's micro-kernels on packed weights ([`Kernel`]): f32 and f64 each have
//! one for AVX-512 and one for AVX2 + FMA, chosen by the level the weights are packed for.

use super::gemm::{Epilogue, Sequence};
use super::packing::{PackedB, NR, NR_AVX2, NR_AVX2_F64, NR_F64};
#[cfg(target_arch = "x86_64")]
use super::{avx2_f32, avx2_f64, avx512_f32, avx512_f64, sequence};
use crate::cpu::level::KernelLevel;

/// The micro-kernels of an element type on packed weights: f32 and f64 each have one for
/// AVX-512 and one for AVX2 + FMA.
pub(crate) trait Kernel: Sized + 'static {
    /// Columns of a panel packed for `isa`'s micro-kernel; `None` where it has none.
    fn panel_width(isa: KernelLevel) -> Option<usize>;

    /// [`packed_product`] on `out` (`len` elements), by the micro-kernel the terms are packed
    /// for.
    ///
    /// # Safety
    /// `out` must be valid for `len` writes, and for reads where `accumulate`; the extents
    /// must have passed [`check_extents`].
    unsafe fn packed_kernel(
        out: *mut Self,
        len: usize,
        accumulate: bool,
        terms: &[(&[Self], &PackedB<Self>)],
        epilogue: Option<Epilogue<Self>>,
    );

    /// One sequence's whole recurrence ([`super::gemm::fresh_sequence`]) by the kernel for
    /// the weights' level, if it has one; returns whether it ran (nothing is written if not).
    ///
    /// # Safety
    /// `out` must be valid for `seq · s.w_hh.n` writes, `seq ≥ 1`; the extents must have
    /// passed `fresh_sequence`'s checks.
    unsafe fn sequence_kernel(out: *mut Self, seq: usize, s: &Sequence<Self>) -> bool {
        let _ = (out, seq, s);
        false
    }
}

impl Kernel for f32 {
    fn panel_width(isa: KernelLevel) -> Option<usize> {
        match isa {
            KernelLevel::Avx512 => Some(NR),
            KernelLevel::Avx2 => Some(NR_AVX2),
            KernelLevel::Generic => None,
        }
    }

    unsafe fn sequence_kernel(out: *mut f32, seq: usize, s: &Sequence<f32>) -> bool {
        match s.w_hh.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `packed_kernel`; the caller's extents and `out`.
            KernelLevel::Avx512 => unsafe { sequence::avx512_f32(out, seq, s) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2 and FMA.
            KernelLevel::Avx2 => unsafe { sequence::avx2_f32(out, seq, s) },
            _ => {
                let _ = (out, seq);
                return false;
            }
        }
        true
    }

    unsafe fn packed_kernel(
        out: *mut f32,
        len: usize,
        accumulate: bool,
        terms: &[(&[f32], &PackedB<f32>)],
        epilogue: Option<Epilogue<f32>>,
    ) {
        match terms[0].1.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a PackedB for AVX-512 is only made where AVX-512F is present (`isa`);
            // the extents are checked by the caller and the packing's in `PackedB::new`.
            KernelLevel::Avx512 => unsafe {
                avx512_f32::packed_product(out, len, accumulate, terms, epilogue)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2 and FMA.
            KernelLevel::Avx2 => unsafe {
                avx2_f32::packed_product(out, len, accumulate, terms, epilogue)
            },
            // No PackedB is made for the generic level, nor for any level off x86-64.
            _ => {
                let _ = (out, len, accumulate, epilogue);
                unreachable!("weights packed for no micro-kernel")
            }
        }
    }
}

impl Kernel for f64 {
    fn panel_width(isa: KernelLevel) -> Option<usize> {
        match isa {
            KernelLevel::Avx512 => Some(NR_F64),
            KernelLevel::Avx2 => Some(NR_AVX2_F64),
            KernelLevel::Generic => None,
        }
    }

    unsafe fn sequence_kernel(out: *mut f64, seq: usize, s: &Sequence<f64>) -> bool {
        match s.w_hh.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for f32.
            KernelLevel::Avx512 => unsafe { sequence::avx512_f64(out, seq, s) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for f32.
            KernelLevel::Avx2 => unsafe { sequence::avx2_f64(out, seq, s) },
            _ => {
                let _ = (out, seq);
                return false;
            }
        }
        true
    }

    unsafe fn packed_kernel(
        out: *mut f64,
        len: usize,
        accumulate: bool,
        terms: &[(&[f64], &PackedB<f64>)],
        epilogue: Option<Epilogue<f64>>,
    ) {
        match terms[0].1.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for f32.
            KernelLevel::Avx512 => unsafe {
                avx512_f64::packed_product(out, len, accumulate, terms, epilogue)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for f32.
            KernelLevel::Avx2 => unsafe {
                avx2_f64::packed_product(out, len, accumulate, terms, epilogue)
            },
            _ => {
                let _ = (out, len, accumulate, epilogue);
                unreachable!("weights packed for no micro-kernel")
            }
        }
    }
}
