use super::*;
use crate::canonical::save_canonical;
use crate::file::TensorFile;
use crate::model::LoadedWeights;
use candle_core::DType;
use rnn_core::{uniform_weights, InitConfig, Param};

#[test]
fn entries_keep_commas_inside_parentheses() {
    let affine = Nonlinearity::Affine {
        alpha: Param::new(2.0),
        beta: Param::new(0.5),
    };
    let parse = Nonlinearity::from_name;
    assert_eq!(
        entries("affine(2,0.5), tanh", parse),
        Some(vec![affine, Nonlinearity::Tanh])
    );
    assert_eq!(
        entries("affine(2,0.5)", parse).and_then(|v| one_or_each(&v, 3)),
        Some(vec![affine; 3])
    );
    for bad in ["affine(2,0.5", "tanh)"] {
        assert_eq!(entries(bad, parse), None, "{bad}");
    }
    assert_eq!(one_or_each(&[1, 2, 3], 2), None);
}

/// Every option of the typed description survives typed → text → typed: activations with
/// parameters and a reverse direction's own, clips, each way of reading time, each merge
/// mode, and the stack's masking and layout.
#[test]
fn every_option_survives_metadata() {
    let leaky = Nonlinearity::LeakyRelu {
        alpha: Param::new(0.1),
    };
    let affine = Nonlinearity::Affine {
        alpha: Param::new(2.0),
        beta: Param::new(0.5),
    };
    let layers = vec![
        LayerConfig {
            nonlinearity: Nonlinearity::Sigmoid,
            nonlinearity_reverse: Nonlinearity::Relu,
            clip: Some(2.5),
            time: TimeOrder::Forward,
            merge_mode: MergeMode::Sum,
        },
        LayerConfig {
            time: TimeOrder::GoBackwards,
            merge_mode: MergeMode::Mul,
            ..LayerConfig::new(leaky)
        },
        LayerConfig {
            time: TimeOrder::Reverse,
            merge_mode: MergeMode::Ave,
            ..LayerConfig::new(Nonlinearity::ScaledElu {
                alpha: Param::new(0.5),
            })
        },
        LayerConfig {
            nonlinearity: affine,
            nonlinearity_reverse: Nonlinearity::LinearHardSigmoid {
                alpha: Param::new(0.25),
                beta: Param::new(0.5),
            },
            clip: Some(1.0),
            time: TimeOrder::Forward,
            merge_mode: MergeMode::Separate,
        },
    ];
    let recorded = Recorded {
        layers: Some(layers.clone()),
        masked_steps: Some(MaskedSteps::RepeatLast),
        batch_first: Some(true),
        mask_value: Some(-1.5),
        input_mask: Some("`embedding` (Embedding, mask_zero=True)".into()),
    };
    let path = Path::new("m.safetensors");
    let back = Recorded::from_metadata(path, &recorded.to_metadata(), layers.len()).unwrap();
    assert_eq!(back, recorded);
    // One value for every layer where they agree; a file without layer keys records none.
    let alike = Recorded {
        layers: Some(vec![layers[1]; 3]),
        ..Recorded::default()
    };
    let meta = alike.to_metadata();
    assert_eq!(meta[key::GO_BACKWARDS], "true");
    assert_eq!(Recorded::from_metadata(path, &meta, 3).unwrap(), alike);
    let none = Recorded::default();
    assert_eq!(
        Recorded::from_metadata(path, &none.to_metadata(), 2).unwrap(),
        none
    );
    // go_backwards and reverse both true for one layer is no way of reading time.
    let both = HashMap::from([
        (key::GO_BACKWARDS.to_string(), "true".to_string()),
        (key::REVERSE.to_string(), "true".to_string()),
    ]);
    let err = Recorded::from_metadata(path, &both, 1).unwrap_err();
    assert!(err.to_string().contains("go_backwards is true"), "{err}");
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
        layers: vec![
            LayerConfig {
                nonlinearity_reverse: Nonlinearity::Relu,
                ..LayerConfig::new(Nonlinearity::Tanh)
            },
            LayerConfig {
                clip: Some(1.5),
                ..LayerConfig::new(leaky)
            },
        ],
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
    assert_eq!(recorded.layers, config.layers);
    let rnn = recorded.build(&back.weights).unwrap();
    assert_eq!(rnn.layers()[0][1].nonlinearity(), Nonlinearity::Relu);
    assert_eq!(rnn.layers()[1][1].clip(), Some(1.5));
    assert_eq!(rnn.layers()[0][0].clip(), None);
}
