//! Run-time dispatch: the instruction set a run's [`KernelLevel`] allows on this CPU, and
//! `multiversion!`, which compiles a loop once per instruction set for it to choose from.

use crate::cpu::level::{avx2_detected, avx512_detected, KernelLevel};

/// The instruction set a loop may use: `level`, as far as this CPU supports it. No caller
/// passes a level the CPU lacks ([`super::level::set`] refuses one); this keeps each
/// `unsafe` call's justification next to it all the same.
pub(super) fn isa(level: KernelLevel) -> KernelLevel {
    match level {
        KernelLevel::Avx512 if avx512_detected() => KernelLevel::Avx512,
        KernelLevel::Avx512 | KernelLevel::Avx2 if avx2_detected() => KernelLevel::Avx2,
        _ => KernelLevel::Generic,
    }
}

/// Instantiates a function body once per instruction set: the generic build, and copies the
/// compiler may vectorise with AVX2+FMA or AVX-512, one of which the caller picks by [`isa`].
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
