use super::*;
use candle_core::Device;

/// The first rows of the article's Y0 and Y1 as numpy ≥ 1.14 prints those float32 values.
/// (The article's older numpy printed 8 significant digits: 0.99999022 where the shortest
/// form of the same float32 is 0.9999902.)
#[test]
#[allow(clippy::excessive_precision)] // the article's digits, as printed
fn prints_rows_as_numpy_does() {
    let row = [
        -0.2964572f32,
        0.82874775,
        -0.34216955,
        -0.75720584,
        0.19011548,
    ];
    let t = Tensor::new(&[row], &Device::Cpu).unwrap();
    assert_eq!(
        numpy_string(&t, &PrintOptions::default()).unwrap(),
        "[[-0.2964572   0.82874775 -0.34216955 -0.75720584  0.19011548]]"
    );
    let row = [0.51955646f32, 1.0, 0.99999022, -0.99984968, -0.24616946];
    let t = Tensor::new(&[row], &Device::Cpu).unwrap();
    assert_eq!(
        numpy_string(&t, &PrintOptions::default()).unwrap(),
        "[[ 0.51955646  1.          0.9999902  -0.9998497  -0.24616946]]"
    );
}

#[test]
fn nests_rank_three_with_blank_lines_and_switches_to_scientific() {
    let t = Tensor::new(&[[[1.0f64, 2.0]], [[3.0, 4.5]]], &Device::Cpu).unwrap();
    assert_eq!(
        numpy_string(&t, &PrintOptions::default()).unwrap(),
        "[[[1.  2. ]]\n\n [[3.  4.5]]]"
    );
    let t = Tensor::new(&[1e-5f64, 0.5], &Device::Cpu).unwrap();
    assert_eq!(
        numpy_string(&t, &PrintOptions::default()).unwrap(),
        "[1.e-05 5.e-01]"
    );
}
