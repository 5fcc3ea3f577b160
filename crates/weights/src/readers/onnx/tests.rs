use super::proto::*;
use super::tensor::to_tensor;
use super::*;

fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn attr_s(name: &str, value: &str) -> Attribute {
    Attribute {
        name: name.into(),
        s: value.as_bytes().to_vec(),
        r#type: 3,
        ..Default::default()
    }
}

/// One RNN node of 1 input and hidden 1, with `attrs`.
fn model(attrs: Vec<Attribute>) -> Vec<u8> {
    model_with(1, attrs)
}

/// One node of `dirs` directions, one input feature and one neuron.
fn model_with(dirs: i64, attrs: Vec<Attribute>) -> Vec<u8> {
    let node = Node {
        input: vec!["X".into(), "W".into(), "R".into()],
        output: vec!["Y".into()],
        op_type: "RNN".into(),
        attribute: attrs,
        ..Default::default()
    };
    let graph = Graph {
        node: vec![node],
        initializer: vec![
            tensor("W", &[dirs, 1, 1], &vec![0.5; dirs as usize]),
            tensor("R", &[dirs, 1, 1], &vec![0.25; dirs as usize]),
        ],
        input: vec![ValueInfo { name: "X".into() }],
        output: vec![ValueInfo { name: "Y".into() }],
    };
    proto::Model {
        producer_name: "test".into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn read_bytes(bytes: &[u8]) -> Result<TensorFile> {
    read(Path::new("m.onnx"), bytes)
}

#[test]
fn a_plain_node_reads_under_pytorch_names() {
    let file = read_bytes(&model(vec![])).unwrap();
    assert_eq!(file.names(), ["weight_hh_l0", "weight_ih_l0"]);
    assert_eq!(file.metadata()["nonlinearity"], "tanh");
    assert_eq!(file.metadata()["batch_first"], "false");
}

fn attr_f(name: &str, value: f32) -> Attribute {
    Attribute {
        name: name.into(),
        f: value,
        ..Default::default()
    }
}

fn attr_strings(name: &str, values: &[&str]) -> Attribute {
    Attribute {
        name: name.into(),
        strings: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

fn attr_floats(name: &str, values: &[f32]) -> Attribute {
    Attribute {
        name: name.into(),
        floats: values.to_vec(),
        ..Default::default()
    }
}

#[test]
fn bad_directions_clips_and_foreign_activations_are_refused_by_name() {
    let reverse = read_bytes(&model(vec![attr_s("direction", "reverse")])).unwrap();
    assert_eq!(reverse.metadata()["reverse"], "true");
    let sideways = read_bytes(&model(vec![attr_s("direction", "sideways")])).unwrap_err();
    assert!(
        sideways.to_string().contains("direction=sideways"),
        "{sideways}"
    );
    for bad in [0.0, -1.0, f32::NAN] {
        let clip = read_bytes(&model(vec![attr_f("clip", bad)])).unwrap_err();
        assert!(clip.to_string().contains("clip="), "{clip}");
    }
    let act = read_bytes(&model(vec![attr_strings("activations", &["Gelu"])])).unwrap_err();
    assert!(act.to_string().contains("activations=Gelu"), "{act}");
}

#[test]
fn clip_is_recorded() {
    let file = read_bytes(&model(vec![attr_f("clip", 2.5)])).unwrap();
    assert_eq!(file.metadata()["clip"], "2.5");
    let file = read_bytes(&model(vec![])).unwrap();
    assert!(!file.metadata().contains_key("clip"));
}

#[test]
fn activations_per_direction_are_recorded_per_direction() {
    let file = read_bytes(&model_with(
        2,
        vec![
            attr_s("direction", "bidirectional"),
            attr_strings("activations", &["Tanh", "Relu"]),
        ],
    ))
    .unwrap();
    assert_eq!(file.metadata()["nonlinearity"], "tanh");
    assert_eq!(file.metadata()["nonlinearity_reverse"], "relu");
    let same = read_bytes(&model_with(2, vec![attr_s("direction", "bidirectional")])).unwrap();
    assert!(!same.metadata().contains_key("nonlinearity_reverse"));
    let one = read_bytes(&model_with(
        2,
        vec![
            attr_s("direction", "bidirectional"),
            attr_strings("activations", &["Tanh"]),
        ],
    ))
    .unwrap_err();
    assert!(one.to_string().contains("activations="), "{one}");
}

/// Alphas go in order to the activations that take one: Tanh takes none, so 0.25 is
/// LeakyRelu's. ONNX's defaults where ONNX Runtime has them; a refusal where it does not.
#[test]
fn activation_parameters_are_consumed_in_order_with_onnx_runtime_defaults() {
    let meta = |dirs, attrs| read_bytes(&model_with(dirs, attrs)).map(|f| f.metadata().clone());
    let m = meta(
        2,
        vec![
            attr_s("direction", "bidirectional"),
            attr_strings("activations", &["Tanh", "LeakyRelu"]),
            attr_floats("activation_alpha", &[0.25]),
        ],
    )
    .unwrap();
    assert_eq!(m["nonlinearity_reverse"], "leaky_relu(0.25)");
    let m = meta(
        2,
        vec![
            attr_s("direction", "bidirectional"),
            attr_strings("activations", &["Affine", "ScaledTanh"]),
            attr_floats("activation_alpha", &[2.0, 0.5]),
            attr_floats("activation_beta", &[0.25, 1.5]),
        ],
    )
    .unwrap();
    assert_eq!(m["nonlinearity"], "affine(2,0.25)");
    assert_eq!(m["nonlinearity_reverse"], "scaled_tanh(0.5,1.5)");
    let m = meta(1, vec![attr_strings("activations", &["HardSigmoid"])]).unwrap();
    assert_eq!(
        m["nonlinearity"],
        format!("hard_sigmoid({},0.5)", f64::from(0.2f32))
    );
    let m = meta(1, vec![attr_strings("activations", &["Elu"])]).unwrap();
    assert_eq!(m["nonlinearity"], "elu");
    let m = meta(
        1,
        vec![
            attr_strings("activations", &["Elu"]),
            attr_floats("activation_alpha", &[0.5]),
        ],
    )
    .unwrap();
    assert_eq!(m["nonlinearity"], "elu(0.5)");
    // Two alphas for one activation that takes one: ONNX Runtime and the spec's
    // reference disagree on which it gets.
    let err = meta(
        2,
        vec![
            attr_s("direction", "bidirectional"),
            attr_strings("activations", &["Tanh", "LeakyRelu"]),
            attr_floats("activation_alpha", &[0.7, 0.3]),
        ],
    )
    .unwrap_err();
    assert!(err.to_string().contains("activation_alpha="), "{err}");
    let err = meta(
        1,
        vec![
            attr_strings("activations", &["Tanh"]),
            attr_floats("activation_beta", &[1.0]),
        ],
    )
    .unwrap_err();
    assert!(err.to_string().contains("activation_beta="), "{err}");
    for no_default in ["ThresholdedRelu", "ScaledTanh", "Affine"] {
        let err = meta(1, vec![attr_strings("activations", &[no_default])]).unwrap_err();
        assert!(err.to_string().contains(no_default), "{err}");
    }
}

#[test]
fn tensor_lengths_are_checked_before_use() {
    let mut t = tensor("W", &[1 << 40, 1 << 30], &[]);
    t.raw_data = vec![0; 4];
    assert!(to_tensor(Path::new("m.onnx"), &t).is_err());
    let t = tensor("W", &[-1], &[]);
    assert!(to_tensor(Path::new("m.onnx"), &t).is_err());
    let t = tensor("W", &[2, 2], &[1.0]);
    assert!(to_tensor(Path::new("m.onnx"), &t).is_err());
    let mut t = tensor("W", &[1], &[1.0]);
    t.data_location = 1;
    assert!(to_tensor(Path::new("m.onnx"), &t).is_err());
}

#[test]
fn garbage_is_an_error() {
    assert!(read_bytes(b"\xff\xff\xff\xff").is_err());
    assert!(read_bytes(b"").is_err());
}
