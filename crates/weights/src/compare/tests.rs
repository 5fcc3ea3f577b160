use super::*;
use candle_core::Device;

#[test]
fn finds_the_worst_element_and_applies_numpy_rule() {
    let want = Tensor::new(&[[1.0f64, 100.0], [0.0, -2.0]], &Device::Cpu).unwrap();
    // Element [0,1] is off by 0.011: allowed 1e-5 + 1e-4·100 = 0.01001, so it fails.
    let got = Tensor::new(&[[1.0f64, 100.011], [0.000005, -2.0]], &Device::Cpu).unwrap();
    let c = compare(&got, &want, Tolerance::default()).unwrap();
    assert_eq!(c.mismatches, 1);
    assert_eq!(c.worst.as_ref().unwrap().0, vec![0, 1]);
    assert!((c.max_abs - 0.011).abs() < 1e-9);
    assert!(!c.passed());
}

#[test]
fn nan_is_never_close_and_equal_infinities_are() {
    let want = Tensor::new(&[f64::INFINITY, 1.0], &Device::Cpu).unwrap();
    let got = Tensor::new(&[f64::INFINITY, f64::NAN], &Device::Cpu).unwrap();
    let c = compare(&got, &want, Tolerance::default()).unwrap();
    assert_eq!(c.mismatches, 1);
    assert_eq!(c.worst.unwrap().0, vec![1]);
}

#[test]
fn non_finite_counts_and_locates() {
    let t = Tensor::new(&[[1.0f32, f32::NAN], [f32::INFINITY, 2.0]], &Device::Cpu).unwrap();
    let n = non_finite(&t).unwrap().unwrap();
    assert_eq!((n.count, n.first_index.clone()), (2, vec![0, 1]));
    assert!(n.first_value.is_nan());
    assert_eq!(
        non_finite(&Tensor::new(&[1.0f32], &Device::Cpu).unwrap()).unwrap(),
        None
    );
}

#[test]
fn shape_mismatch_is_an_error() {
    let a = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(compare(&a, &b, Tolerance::default()).is_err());
}
