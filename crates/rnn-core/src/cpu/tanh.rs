//! A vectorisable tanh for f32: a rational function, branch-free, so that loops over it
//! compile to AVX2/AVX-512 code.
//!
//! `tanh(x) ≈ x·P(x²) / Q(x²)` with P of degree 6 and Q of degree 3 in x², on x clamped to
//! ±7.905311 (beyond it tanh rounds to ±1 in f32). The coefficients are the published ones of
//! Eigen's `ptanh_float` (a minimax fit). Its accuracy, measured by the test below against
//! f64's tanh over every f32 in [-10, 10], is at most 8 ulp (at x ≈ 5.9, 4.8e-7); the worst case and
//! the method are in docs/performance.md.

pub(super) const CLAMP: f32 = 7.905_311;
/// Below this |x|, tanh(x) = x to f32 precision.
pub(super) const TINY: f32 = 0.0004;

pub(super) const A1: f32 = 4.893_524_6e-3;
pub(super) const A3: f32 = 6.372_619_3e-4;
pub(super) const A5: f32 = 1.485_722_4e-5;
pub(super) const A7: f32 = 5.122_297e-8;
pub(super) const A9: f32 = -8.604_672e-11;
pub(super) const A11: f32 = 2.000_188e-13;
pub(super) const A13: f32 = -2.760_768_5e-16;
pub(super) const B0: f32 = 4.893_525e-3;
pub(super) const B2: f32 = 2.268_434_6e-3;
pub(super) const B4: f32 = 1.185_347_1e-4;
pub(super) const B6: f32 = 1.198_258_4e-6;

/// tanh of an f32, to within a few ulp (see the module docs); NaN stays NaN.
#[inline(always)]
#[allow(clippy::manual_clamp)] // f32::clamp would not let NaN through as NaN here
pub(crate) fn tanh_f32(x: f32) -> f32 {
    // Comparisons, not f32::clamp: NaN fails both and passes through.
    let c = if x > CLAMP {
        CLAMP
    } else if x < -CLAMP {
        -CLAMP
    } else {
        x
    };
    let x2 = c * c;
    let p = ((((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1) * c;
    let q = ((B6 * x2 + B4) * x2 + B2) * x2 + B0;
    let r = p / q;
    if x.abs() < TINY {
        x
    } else {
        r
    }
}

#[cfg(test)]
mod tests;
