use super::*;
use candle_core::Device;

fn scalar(v: f64) -> Tensor {
    Tensor::new(&[[v]], &Device::Cpu).unwrap()
}

fn cell(w_ih: Tensor, w_hh: f64) -> LayerWeights {
    LayerWeights {
        w_ih,
        w_hh: scalar(w_hh),
        b_ih: None,
        b_hh: None,
    }
}

/// Two layers, bidirectional, one neuron per direction, relu, input x = [1, 2]:
/// layer 0 forward (w_ih 1, w_hh 1): 1, 3; reverse (w_ih 2, w_hh 0): 2, 4.
/// layer 1 reads [1, 2] then [3, 4] with w_ih [1, -1]:
/// forward (w_hh 0): relu(-1) = 0, relu(-1) = 0; reverse (w_hh 1): relu(-1 + 0) = 0 at
/// t = 1, relu(-1 + 0) = 0 at t = 0. h_n = [3, 2, 0, 0] (layer-major, then direction).
#[test]
fn bidirectional_two_layers_by_hand() {
    let dev = Device::Cpu;
    let w1 = Tensor::new(&[[1.0f64, -1.0]], &dev).unwrap();
    let weights = vec![
        vec![cell(scalar(1.0), 1.0), cell(scalar(2.0), 0.0)],
        vec![cell(w1.clone(), 0.0), cell(w1, 1.0)],
    ];
    let rnn = Rnn::from_weights(&weights, Nonlinearity::Relu).unwrap();
    let input = Tensor::new(&[[[1.0f64]], [[2.0]]], &dev).unwrap();
    let (out, h_n) = rnn.forward(&input, None).unwrap();
    assert_eq!(out.dims(), &[2, 1, 2]);
    assert_eq!(
        h_n.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        [3.0, 2.0, 0.0, 0.0]
    );
}

#[test]
fn batch_first_and_unbatched_agree_with_time_major() {
    let dev = Device::Cpu;
    let w_ih = Tensor::new(&[[0.5f64, -0.25], [0.1, 0.3]], &dev).unwrap();
    let w_hh = Tensor::new(&[[0.2f64, -0.4], [0.6, 0.1]], &dev).unwrap();
    let weights = vec![vec![LayerWeights {
        w_ih,
        w_hh,
        b_ih: Some(Tensor::new(&[0.1f64, -0.2], &dev).unwrap()),
        b_hh: None,
    }]];
    let rnn = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
    let seq = Tensor::new(&[[1.0f64, 2.0], [-1.0, 0.5], [0.0, 3.0]], &dev).unwrap(); // [T, I]
    let (unbatched, _) = rnn.forward(&seq, None).unwrap();
    let (time_major, _) = rnn.forward(&seq.unsqueeze(1).unwrap(), None).unwrap();
    let bf = rnn.clone().with_batch_first(true);
    let (batch_first, _) = bf.forward(&seq.unsqueeze(0).unwrap(), None).unwrap();
    let want = unbatched.to_vec2::<f64>().unwrap();
    assert_eq!(
        time_major.squeeze(1).unwrap().to_vec2::<f64>().unwrap(),
        want
    );
    assert_eq!(
        batch_first.squeeze(0).unwrap().to_vec2::<f64>().unwrap(),
        want
    );
}

#[test]
fn mismatched_layer_sizes_are_rejected() {
    let dev = Device::Cpu;
    let weights = vec![
        vec![cell(scalar(1.0), 1.0)],
        vec![cell(Tensor::new(&[[1.0f64, 1.0]], &dev).unwrap(), 1.0)],
    ];
    let err = Rnn::from_weights(&weights, Nonlinearity::Tanh)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected input size 1") && err.contains("found 2"),
        "{err}"
    );
}

/// The same stack as `bidirectional_two_layers_by_hand`, batch-first: layer 0's outputs are
/// [1, 2] then [3, 4] (forward, reverse), layer 1's are zeros; each comes time-major.
#[test]
fn layer_outputs_are_each_layers_states_time_major() {
    let dev = Device::Cpu;
    let w1 = Tensor::new(&[[1.0f64, -1.0]], &dev).unwrap();
    let weights = vec![
        vec![cell(scalar(1.0), 1.0), cell(scalar(2.0), 0.0)],
        vec![cell(w1.clone(), 0.0), cell(w1, 1.0)],
    ];
    let rnn = Rnn::from_weights(&weights, Nonlinearity::Relu)
        .unwrap()
        .with_batch_first(true);
    let input = Tensor::new(&[[[1.0f64], [2.0]]], &dev).unwrap(); // [batch 1, seq 2, 1]
    let layers = rnn.layer_outputs(&input, None, None).unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[0].to_vec3::<f64>().unwrap(),
        [[[1.0, 2.0]], [[3.0, 4.0]]]
    );
    let (output, _) = rnn.forward(&input, None).unwrap();
    assert_eq!(
        layers[1].transpose(0, 1).unwrap().to_vec3::<f64>().unwrap(),
        output.to_vec3::<f64>().unwrap()
    );
}
