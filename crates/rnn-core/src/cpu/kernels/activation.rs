//! Bias and activation in one pass over a step's rows, compiled once per instruction set.

use super::dispatch::isa;
use crate::cpu::level::KernelLevel;
use crate::cpu::Element;
use crate::cpu::Fused;

/// `out = act(out + bias)` elementwise, `bias` repeated over rows of its length.
pub(crate) fn bias_activation<T: Element>(
    level: KernelLevel,
    out: &mut [T],
    bias: Option<&[T]>,
    activation: Fused,
) {
    match isa(level) {
        // SAFETY: the CPU supports AVX-512F (`isa`).
        KernelLevel::Avx512 => unsafe { bias_activation_avx512(out, bias, activation) },
        // SAFETY: the CPU supports AVX2 and FMA (`isa`).
        KernelLevel::Avx2 => unsafe { bias_activation_avx2(out, bias, activation) },
        KernelLevel::Generic => bias_activation_generic(out, bias, activation),
    }
}

multiversion!(
    bias_activation_generic,
    bias_activation_avx2,
    bias_activation_avx512,
    (out: &mut [T], bias: Option<&[T]>, activation: Fused),
    fn inner<T: Element>(out: &mut [T], bias: Option<&[T]>, activation: Fused) {
        match (bias, activation) {
            (Some(b), Fused::Relu) => {
                for row in out.chunks_exact_mut(b.len()) {
                    for (v, &b) in row.iter_mut().zip(b) {
                        *v = (*v + b).relu();
                    }
                }
            }
            (Some(b), Fused::Tanh) => {
                for row in out.chunks_exact_mut(b.len()) {
                    for (v, &b) in row.iter_mut().zip(b) {
                        *v = (*v + b).fast_tanh();
                    }
                }
            }
            (None, Fused::Relu) => out.iter_mut().for_each(|v| *v = v.relu()),
            (None, Fused::Tanh) => out.iter_mut().for_each(|v| *v = v.fast_tanh()),
        }
    }
);
