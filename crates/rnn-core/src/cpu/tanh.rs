//! Vectorisable tanh for f32 and f64, with the same operations in the same order in their
//! scalar forms here and their vector forms in the micro-kernels, so that every path gives
//! the same bits.
//!
//! f32: `tanh(x) ≈ x·P(x²) / Q(x²)` with P of degree 6 and Q of degree 3 in x², on x clamped to
//! ±7.905311 (beyond it tanh rounds to ±1 in f32). The coefficients are the published ones of
//! Eigen's `ptanh_float` (a minimax fit). Its accuracy, measured by the test below against
//! f64's tanh over every f32 in [-10, 10], is at most 8 ulp (at x ≈ 5.9, 4.8e-7); the worst case and
//! the method are in docs/performance.md.
//!
//! f64 ([`tanh_f64`]): from `e^(2|x|)` by its series, no table and no fitted coefficient.
//! Below |x| = 0.625, `tanh = m / (m + 2)` with `m = e^(2|x|) - 1` summed directly (terms to
//! `u^19/19!`, `u = 2|x|`); from there, `tanh = (E - 1) / (E + 1)` with `E = 2^n · e^r`,
//! `r = u - n·ln 2` (ln 2 in two parts, so that `n·ln2_hi` is exact) and `e^r` summed to
//! `r^13/13!`. |x| is clamped to 22 (where tanh rounds to 1), below 2^-28 tanh(x) = x, and
//! NaN passes through. Within 3 ulp of the exact tanh (docs/performance.md); the tests hold
//! it to the standard library's.

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

/// Past this |x| tanh rounds to ±1 in f64 (`1 - tanh(22) ≈ 1.6e-19`).
pub(super) const BIG_F64: f64 = 22.0;
/// Below this |x|, tanh(x) = x to f64 precision (`x³/3` is under half an ulp of x).
pub(super) const TINY_F64: f64 = 1.0 / (1u64 << 28) as f64;
/// Below this |x|, tanh is `m / (m + 2)` with `m = e^(2|x|) - 1` summed directly; from it,
/// `(E - 1) / (E + 1)`, whose `E - 1` loses at most about one bit there (`E ≥ 3.49`).
pub(super) const SMALL_F64: f64 = 0.625;
/// ln 2 in two parts: the low 21 bits of `LN2_HI`'s mantissa are zero (32 significant bits),
/// so `n · LN2_HI` is exact for the `n ≤ 64` used here; `LN2_LO` is the rest (fdlibm's
/// split).
pub(super) const LN2_HI: f64 = 0.693_147_180_369_123_8;
pub(super) const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
pub(super) const INV_LN2: f64 = std::f64::consts::LOG2_E;
/// `2^52`: `n + 2^52` holds the integer `n` in its low mantissa bits.
pub(super) const TWO_52: f64 = (1u64 << 52) as f64;
/// The sign bit of an f64.
pub(super) const SIGN_F64: u64 = 1 << 63;
/// Terms of the series of `e^u - 1` below [`SMALL_F64`] (`u < 1.25`: the first left out,
/// `u^20/20!`, is under 1e-16 of the sum) and of `e^r` above it (`|r| ≤ 0.35`: `r^14/14!`
/// is under 1e-17).
pub(super) const SMALL_TERMS: usize = 19;
pub(super) const EXP_TERMS: usize = 13;
/// `1/k!` for k = 0..=19, each the correctly rounded quotient (every `k!` here is exact in
/// f64).
pub(super) const INV_FACTORIAL: [f64; 20] = {
    let mut c = [1.0; 20];
    let mut factorial = 1.0;
    let mut k = 1;
    while k < 20 {
        factorial *= k as f64;
        c[k] = 1.0 / factorial;
        k += 1;
    }
    c
};

/// tanh of an f64, within 3 ulp (see the module docs); NaN stays NaN. The vector forms in
/// the f64 micro-kernels compute both branches and pick per lane; each lane is these bits.
#[inline(always)]
pub(crate) fn tanh_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < TINY_F64 {
        return x;
    }
    let a = if a < BIG_F64 { a } else { BIG_F64 };
    let u = a + a;
    let (num, den) = if a < SMALL_F64 {
        let mut p = INV_FACTORIAL[SMALL_TERMS];
        for k in (1..SMALL_TERMS).rev() {
            p = p * u + INV_FACTORIAL[k];
        }
        let m = p * u;
        (m, m + 2.0)
    } else {
        let n = (u * INV_LN2 + 0.5).floor();
        let r = (u - n * LN2_HI) - n * LN2_LO;
        let mut p = INV_FACTORIAL[EXP_TERMS];
        for k in (0..EXP_TERMS).rev() {
            p = p * r + INV_FACTORIAL[k];
        }
        // 2^n from n's bits: n + 2^52 holds n in its low bits (2 ≤ n ≤ 64).
        let n = (n + TWO_52).to_bits() - TWO_52.to_bits();
        let e = p * f64::from_bits((n + 1023) << 52);
        (e - 1.0, e + 1.0)
    };
    f64::from_bits((num / den).to_bits() | (x.to_bits() & SIGN_F64))
}

#[cfg(test)]
mod tests;
