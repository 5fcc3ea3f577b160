use super::*;
use candle_core::Device;

fn scalar_layer(w_ih: f64, w_hh: f64, b_ih: f64, b_hh: f64, act: Nonlinearity) -> RnnLayer {
    let dev = Device::Cpu;
    let t = |v: f64| Tensor::new(&[[v]], &dev).unwrap();
    let weights = LayerWeights {
        w_ih: t(w_ih),
        w_hh: t(w_hh),
        b_ih: Some(Tensor::new(&[b_ih], &dev).unwrap()),
        b_hh: Some(Tensor::new(&[b_hh], &dev).unwrap()),
    };
    RnnLayer::new(&weights, act).unwrap()
}

/// One neuron, worked by hand: W_ih = 2, W_hh = 0.5, b_ih = 0.25, b_hh = -0.75, relu.
/// x = [1, -3, 4], h0 = 0:
/// h_0 = relu(2·1 + 0.25 - 0.75 + 0.5·0)   = relu(1.5)  = 1.5
/// h_1 = relu(2·-3 - 0.5 + 0.5·1.5)        = relu(-5.75) = 0
/// h_2 = relu(2·4 - 0.5 + 0.5·0)           = 7.5
#[test]
fn relu_by_hand() {
    let layer = scalar_layer(2.0, 0.5, 0.25, -0.75, Nonlinearity::Relu);
    let input = Tensor::new(&[[[1.0f64]], [[-3.0]], [[4.0]]], &Device::Cpu).unwrap();
    let (out, h_n) = layer.forward(&input, None).unwrap();
    assert_eq!(
        out.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        [1.5, 0.0, 7.5]
    );
    assert_eq!(h_n.flatten_all().unwrap().to_vec1::<f64>().unwrap(), [7.5]);
}

/// Reversed, the same neuron reads x = [1, -3, 4] as 4, -3, 1:
/// h(t=2) = relu(8 - 0.5) = 7.5; h(t=1) = relu(-6.5 + 3.75) = 0; h(t=0) = relu(1.5) = 1.5.
#[test]
fn reversed_by_hand() {
    let layer = scalar_layer(2.0, 0.5, 0.25, -0.75, Nonlinearity::Relu);
    let input = Tensor::new(&[[[1.0f64]], [[-3.0]], [[4.0]]], &Device::Cpu).unwrap();
    let (out, h_n) = layer.forward_reversed(&input, None).unwrap();
    assert_eq!(
        out.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        [1.5, 0.0, 7.5]
    );
    assert_eq!(h_n.flatten_all().unwrap().to_vec1::<f64>().unwrap(), [1.5]);
}

#[test]
fn zero_steps_returns_h0() {
    let layer = scalar_layer(1.0, 1.0, 0.0, 0.0, Nonlinearity::Tanh);
    let input = Tensor::zeros((0, 2, 1), DType::F64, &Device::Cpu).unwrap();
    let h0 = Tensor::new(&[[0.5f64], [-0.5]], &Device::Cpu).unwrap();
    let (out, h_n) = layer.forward(&input, Some(&h0)).unwrap();
    assert_eq!(out.dims(), &[0, 2, 1]);
    assert_eq!(h_n.to_vec2::<f64>().unwrap(), [[0.5], [-0.5]]);
}

#[test]
fn wrong_input_size_names_expected_and_found() {
    let layer = scalar_layer(1.0, 1.0, 0.0, 0.0, Nonlinearity::Tanh);
    let input = Tensor::zeros((2, 1, 3), DType::F64, &Device::Cpu).unwrap();
    let err = layer.forward(&input, None).unwrap_err().to_string();
    assert!(
        err.contains("[2, 1, 1]") && err.contains("[2, 1, 3]"),
        "{err}"
    );
}

#[test]
fn step_matches_forward() {
    let layer = scalar_layer(0.3, -0.7, 0.1, 0.2, Nonlinearity::Tanh);
    let input = Tensor::new(&[[[1.0f64], [2.0]], [[-1.0], [0.5]]], &Device::Cpu).unwrap();
    let (out, _) = layer.forward(&input, None).unwrap();
    let h0 = Tensor::zeros((2, 1), DType::F64, &Device::Cpu).unwrap();
    let h1 = layer.step(&input.get(0).unwrap(), &h0).unwrap();
    let h2 = layer.step(&input.get(1).unwrap(), &h1).unwrap();
    // Both take the fused CPU path, which gives a step the bits of the whole run.
    let (a, b) = (
        out.get(1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap(),
        h2.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
    );
    assert_eq!(a, b);
}

/// The relu neuron of `relu_by_hand`, clipped at 1: each pre-activation clamped to [-1, 1]
/// first. x = [1, -3, 4], h0 = 0:
/// h_0 = relu(clamp(1.5))            = 1
/// h_1 = relu(clamp(-6.5 + 0.5·1))   = 0
/// h_2 = relu(clamp(7.5))            = 1
/// The f32 run takes the fused path without a clip, so the clip also keeps it off that path.
#[test]
fn clip_clamps_the_pre_activation() {
    let layer = scalar_layer(2.0, 0.5, 0.25, -0.75, Nonlinearity::Relu)
        .with_clip(Some(1.0))
        .unwrap();
    let input = Tensor::new(&[[[1.0f64]], [[-3.0]], [[4.0]]], &Device::Cpu).unwrap();
    let (out, h_n) = layer.forward(&input, None).unwrap();
    assert_eq!(
        out.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        [1.0, 0.0, 1.0]
    );
    assert_eq!(h_n.flatten_all().unwrap().to_vec1::<f64>().unwrap(), [1.0]);
    let f32_layer = layer.weights();
    let f32 = |b: &Option<Tensor>| b.as_ref().map(|b| b.to_dtype(DType::F32).unwrap());
    let f32_layer = LayerWeights {
        w_ih: f32_layer.w_ih.to_dtype(DType::F32).unwrap(),
        w_hh: f32_layer.w_hh.to_dtype(DType::F32).unwrap(),
        b_ih: f32(&f32_layer.b_ih),
        b_hh: f32(&f32_layer.b_hh),
    };
    let f32_layer = RnnLayer::new(&f32_layer, Nonlinearity::Relu)
        .unwrap()
        .with_clip(Some(1.0))
        .unwrap();
    let (out, _) = f32_layer
        .forward(&input.to_dtype(DType::F32).unwrap(), None)
        .unwrap();
    assert_eq!(
        out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [1.0, 0.0, 1.0]
    );
    assert!(layer.clone().with_clip(Some(0.0)).is_err());
    assert!(layer.with_clip(Some(f64::NAN)).is_err());
}
