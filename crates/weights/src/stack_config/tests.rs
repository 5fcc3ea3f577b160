use super::*;
use crate::file::TensorFile;
use crate::model::LoadedWeights;
use candle_core::DType;
use rnn_core::{uniform_weights, InitConfig, Param};

#[test]
fn per_layer_keeps_commas_inside_parentheses() {
    let affine = Nonlinearity::Affine {
        alpha: Param::new(2.0),
        beta: Param::new(0.5),
    };
    let parse = Nonlinearity::from_name;
    assert_eq!(
        per_layer("affine(2,0.5), tanh", 2, parse),
        Some(vec![affine, Nonlinearity::Tanh])
    );
    assert_eq!(per_layer("affine(2,0.5)", 3, parse), Some(vec![affine; 3]));
    for bad in ["affine(2,0.5", "tanh)", "affine(2,0.5),tanh,relu"] {
        assert_eq!(per_layer(bad, 2, parse), None, "{bad}");
    }
}

/// Two bidirectional layers whose directions differ, one of them clipped: what
/// `save_canonical` writes reads back as the same configuration.
#[test]
fn reverse_activations_parameters_and_clips_round_trip() {
    let init = InitConfig {
        input_size: 2,
        hidden_sizes: vec![3, 3],
        bidirectional: true,
        bias: true,
    };
    let weights = uniform_weights(&init, 1, DType::F32, &candle_core::Device::Cpu).unwrap();
    let leaky = Nonlinearity::LeakyRelu {
        alpha: Param::new(f64::from(0.1f32)),
    };
    let config = StackConfig {
        nonlinearity: vec![Nonlinearity::Tanh, leaky],
        nonlinearity_reverse: vec![Nonlinearity::Relu, leaky],
        clip: vec![None, Some(1.5)],
        ..StackConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    save_canonical(&path, &weights, &config, &[]).unwrap();
    let file = TensorFile::read(&path).unwrap();
    assert_eq!(
        file.metadata()[key::NONLINEARITY],
        "tanh,leaky_relu(0.10000000149011612)"
    );
    assert_eq!(
        file.metadata()[key::NONLINEARITY_REVERSE],
        "relu,leaky_relu(0.10000000149011612)"
    );
    assert_eq!(file.metadata()[key::CLIP], "none,1.5");
    let back = LoadedWeights::from_file(&file, DType::F32, None).unwrap();
    let recorded = back.recorded_config();
    assert_eq!(recorded.nonlinearity, config.nonlinearity);
    assert_eq!(recorded.nonlinearity_reverse, config.nonlinearity_reverse);
    assert_eq!(recorded.clip, config.clip);
    let rnn = recorded.build(&back.weights).unwrap();
    assert_eq!(rnn.layers()[0][1].nonlinearity(), Nonlinearity::Relu);
    assert_eq!(rnn.layers()[1][1].clip(), Some(1.5));
    assert_eq!(rnn.layers()[0][0].clip(), None);
}
