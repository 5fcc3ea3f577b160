use super::*;

/// The worst error of [`tanh_f32`] in units in the last place, as measured below.
const MAX_ULP: u32 = 8;

/// Distance in ulp between two finite f32 of the same sign (or zero).
fn ulp_distance(a: f32, b: f32) -> u32 {
    let key = |v: f32| {
        let bits = v.to_bits() as i64;
        if bits < 0 {
            i64::from(i32::MIN) - bits
        } else {
            bits
        }
    };
    (key(a) - key(b)).unsigned_abs() as u32
}

#[test]
fn within_max_ulp_of_the_exact_tanh() {
    let mut worst = (0u32, 0f32);
    let mut bits = 0u32;
    // Every 128th f32 from +0 up to 10 and its negative; RNN_TANH_STRIDE=1 makes it every
    // one (the measurement in docs/performance.md, run with --release).
    let stride: u32 = std::env::var("RNN_TANH_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128);
    while f32::from_bits(bits) <= 10.0 {
        for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
            let exact = (x as f64).tanh() as f32;
            let d = ulp_distance(tanh_f32(x), exact);
            if d > worst.0 {
                worst = (d, x);
            }
        }
        bits += stride;
    }
    assert!(worst.0 <= MAX_ULP, "{} ulp at x = {:e}", worst.0, worst.1);
}

#[test]
fn saturates_and_keeps_nan() {
    assert_eq!(tanh_f32(20.0), 1.0);
    assert_eq!(tanh_f32(-1e30), -1.0);
    assert_eq!(tanh_f32(f32::INFINITY), 1.0);
    assert!(tanh_f32(f32::NAN).is_nan());
    assert_eq!(tanh_f32(1e-6), 1e-6);
}

/// Distance in ulp between two finite f64 of the same sign (or zero).
fn ulp_distance_f64(a: f64, b: f64) -> u64 {
    let key = |v: f64| {
        let bits = v.to_bits() as i128;
        if bits >= 1 << 63 {
            (1i128 << 63) - bits
        } else {
            bits
        }
    };
    (key(a) - key(b)).unsigned_abs() as u64
}

/// [`tanh_f64`] against the standard library's tanh (glibc's is within about 2 ulp of the
/// exact value, and so may another libm be): at most 5 ulp apart (4 measured with glibc) on every 2^38th f64 bit pattern in [-25, 25]
/// (16,384 in each binade, 17 million in all), and on 2^22 values spread evenly over [-2, 2].
/// Against the exact tanh (mpmath at 120 bits) it measured at most 2.82 ulp on 250,207
/// points (docs/performance.md).
#[test]
fn tanh_f64_is_within_5_ulp_of_the_library_s() {
    let mut worst = (0u64, 0f64);
    let top = 25f64.to_bits();
    let mut bits = 0u64;
    while bits <= top {
        for x in [f64::from_bits(bits), -f64::from_bits(bits)] {
            let d = ulp_distance_f64(tanh_f64(x), x.tanh());
            if d > worst.0 {
                worst = (d, x);
            }
        }
        bits += 1 << 38;
    }
    for i in 0..1u64 << 22 {
        let x = (i as f64 / (1u64 << 22) as f64 - 0.5) * 4.0;
        let d = ulp_distance_f64(tanh_f64(x), x.tanh());
        if d > worst.0 {
            worst = (d, x);
        }
    }
    assert!(worst.0 <= 5, "{} ulp at x = {:e}", worst.0, worst.1);
}

#[test]
fn tanh_f64_saturates_and_keeps_nan_zero_and_tiny_values() {
    assert_eq!(tanh_f64(22.0), 1.0);
    assert_eq!(tanh_f64(-1e300), -1.0);
    assert_eq!(tanh_f64(f64::INFINITY), 1.0);
    assert_eq!(tanh_f64(f64::NEG_INFINITY), -1.0);
    assert!(tanh_f64(f64::NAN).is_nan());
    assert_eq!(tanh_f64(-0.0).to_bits(), (-0.0f64).to_bits());
    assert_eq!(tanh_f64(1e-10), 1e-10);
    assert_eq!(tanh_f64(5e-324), 5e-324);
    // Both branches meet at 0.625 without a step.
    let below = tanh_f64(0.625f64.next_down());
    let at = tanh_f64(0.625);
    assert!(below <= at && at - below < 4e-16, "{below} {at}");
}
