use super::*;

#[test]
fn draws_within_pytorch_bounds_and_repeats_per_seed() {
    let config = InitConfig {
        input_size: 3,
        hidden_sizes: vec![4, 4],
        bidirectional: true,
        bias: true,
    };
    let a = uniform_weights(&config, 7, DType::F64, &Device::Cpu).unwrap();
    let b = uniform_weights(&config, 7, DType::F64, &Device::Cpu).unwrap();
    let c = uniform_weights(&config, 8, DType::F64, &Device::Cpu).unwrap();
    assert_eq!(a[1][1].w_ih.dims(), &[4, 8]);
    let values = |w: &LayerWeights| w.w_hh.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(values(&a[1][0]), values(&b[1][0]));
    assert_ne!(values(&a[1][0]), values(&c[1][0]));
    assert!(values(&a[0][0]).iter().all(|v| v.abs() <= 0.5));
}
