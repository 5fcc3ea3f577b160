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
