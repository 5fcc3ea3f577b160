use candle_core::{DType, Device, Tensor};

use crate::{uniform_weights, InitConfig, Nonlinearity, Rnn};

fn stack(hidden_sizes: Vec<usize>, bidirectional: bool, dtype: DType) -> Rnn {
    let config = InitConfig {
        input_size: 3,
        hidden_sizes,
        bidirectional,
        bias: true,
    };
    let weights = uniform_weights(&config, 7, dtype, &Device::Cpu).unwrap();
    Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn streaming_equals_the_whole_sequence_with_layers_of_different_sizes() {
    for dtype in [DType::F32, DType::F64] {
        let rnn = stack(vec![4, 6, 2], false, dtype);
        let xs = Tensor::randn(0f32, 1.0, (9, 2, 3), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let mut stream = rnn.stream(2, None).unwrap();
        let outputs: Vec<Tensor> = (0..9)
            .map(|t| stream.step(&xs.get(t).unwrap()).unwrap())
            .collect();
        let (whole, states) = rnn.forward_states(&xs, None, None).unwrap();
        assert_eq!(max_diff(&Tensor::stack(&outputs, 0).unwrap(), &whole), 0.0);
        for (streamed, whole) in stream.states().iter().map(|s| &s.h).zip(&states) {
            assert_eq!(max_diff(streamed, whole), 0.0);
        }
        assert_eq!(stream.steps(), 9);
    }
}

#[test]
fn h0_is_where_the_stream_starts() {
    let rnn = stack(vec![5, 5], false, DType::F32);
    let xs = Tensor::randn(0f32, 1.0, (3, 1, 3), &Device::Cpu).unwrap();
    let h0 = Tensor::randn(0f32, 1.0, (2, 1, 5), &Device::Cpu).unwrap();
    let mut stream = rnn.stream(1, Some(&h0)).unwrap();
    let last = (0..3)
        .map(|t| stream.step(&xs.get(t).unwrap()).unwrap())
        .last()
        .unwrap();
    let (whole, _) = rnn.forward(&xs, Some(&h0)).unwrap();
    assert_eq!(max_diff(&last, &whole.get(2).unwrap()), 0.0);
}

#[test]
fn what_cannot_stream_is_refused_with_a_reason() {
    let bidirectional = stack(vec![4], true, DType::F32);
    let err = bidirectional.stream(1, None).unwrap_err().to_string();
    assert!(err.contains("bidirectional"), "{err}");
    let rnn = stack(vec![4], false, DType::F32);
    let mut stream = rnn.stream(2, None).unwrap();
    let wrong = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    let err = stream.step(&wrong).unwrap_err().to_string();
    assert_eq!(err, "x: expected shape [2, 3], found [2, 4]");
}

/// Each step takes `RnnLayer::step`'s path, not a one-step sequence's: one sequence, the
/// batches whose whole run projects its inputs ahead (under 12 rows) or not, one whose whole
/// run of 3 steps is split between threads where a step is not (64, 128, 128: 6.3 M
/// multiply-adds against 2.1 M; on a machine of two cores or more, as candle counts them),
/// and one large enough for a step to be split too, in both activations and dtypes, give
/// the whole run's bits.
#[test]
fn every_batch_path_streams_the_whole_runs_bits() {
    let shapes = [
        (1, 64, 64),
        (5, 3, 7),
        (13, 20, 33),
        (64, 128, 128),
        (256, 128, 128),
    ];
    for (batch, input_size, hidden) in shapes {
        for nonlinearity in [Nonlinearity::Tanh, Nonlinearity::Relu] {
            for dtype in [DType::F32, DType::F64] {
                let config = InitConfig {
                    input_size,
                    hidden_sizes: vec![hidden],
                    bidirectional: false,
                    bias: true,
                };
                let weights = uniform_weights(&config, 3, dtype, &Device::Cpu).unwrap();
                let rnn = Rnn::from_weights(&weights, nonlinearity).unwrap();
                let xs = Tensor::randn(0f32, 1.0, (3, batch, input_size), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let mut stream = rnn.stream(batch, None).unwrap();
                let outputs: Vec<Tensor> = (0..3)
                    .map(|t| stream.step(&xs.get(t).unwrap()).unwrap())
                    .collect();
                let (whole, _) = rnn.forward(&xs, None).unwrap();
                assert_eq!(
                    max_diff(&Tensor::stack(&outputs, 0).unwrap(), &whole),
                    0.0,
                    "batch {batch}, {nonlinearity}, {dtype:?}"
                );
            }
        }
    }
}

/// A stream of a network whose weights record gradients (a `Var`'s) gives the whole run's
/// bits too: its steps run the fused path that records them.
#[test]
fn a_stream_of_variables_gives_the_whole_runs_bits() {
    for dtype in [DType::F32, DType::F64] {
        let config = InitConfig {
            input_size: 3,
            hidden_sizes: vec![4, 5],
            bidirectional: false,
            bias: true,
        };
        let weights = uniform_weights(&config, 9, dtype, &Device::Cpu).unwrap();
        let vars = crate::init::as_variables(&weights);
        let rnn = Rnn::from_weights(&vars, Nonlinearity::Tanh).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (4, 2, 3), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let mut stream = rnn.stream(2, None).unwrap();
        let outputs: Vec<Tensor> = (0..4)
            .map(|t| stream.step(&xs.get(t).unwrap()).unwrap())
            .collect();
        let (whole, _) = rnn.forward_states(&xs, None, None).unwrap();
        assert_eq!(
            max_diff(&Tensor::stack(&outputs, 0).unwrap(), &whole),
            0.0,
            "{dtype:?}"
        );
    }
}
