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
        input: vec![ValueInfo {
            name: "X".into(),
            r#type: None,
        }],
        output: vec![ValueInfo {
            name: "Y".into(),
            r#type: None,
        }],
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

/// What the reader found the file to record of its model, as a canonical file's metadata
/// writes it.
fn recorded(file: &TensorFile) -> std::collections::HashMap<String, String> {
    file.recorded()
        .expect("a recorded configuration")
        .to_metadata()
}

#[test]
fn a_plain_node_reads_under_pytorch_names() {
    let file = read_bytes(&model(vec![])).unwrap();
    assert_eq!(file.names(), ["weight_hh_l0", "weight_ih_l0"]);
    assert_eq!(recorded(&file)["nonlinearity"], "tanh");
    assert_eq!(recorded(&file)["batch_first"], "false");
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
    assert_eq!(recorded(&reverse)["reverse"], "true");
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
    assert_eq!(recorded(&file)["clip"], "2.5");
    let file = read_bytes(&model(vec![])).unwrap();
    assert!(!recorded(&file).contains_key("clip"));
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
    assert_eq!(recorded(&file)["nonlinearity"], "tanh");
    assert_eq!(recorded(&file)["nonlinearity_reverse"], "relu");
    let same = read_bytes(&model_with(2, vec![attr_s("direction", "bidirectional")])).unwrap();
    assert!(!recorded(&same).contains_key("nonlinearity_reverse"));
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
    let meta = |dirs, attrs| read_bytes(&model_with(dirs, attrs)).map(|f| recorded(&f));
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

/// The default exporter's unrolled 2-layer graph (tests/fixtures/files), decoded for editing.
fn unrolled() -> proto::Model {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/files/onnx_dynamo_2l.onnx"
    );
    proto::Model::decode(std::fs::read(path).unwrap().as_slice()).unwrap()
}

fn unrolled_error(edit: impl FnOnce(&mut Graph)) -> String {
    let mut model = unrolled();
    edit(model.graph.as_mut().unwrap());
    match read_bytes(&model.encode_to_vec()) {
        Ok(_) => panic!("the edited graph was read"),
        Err(e) => e.to_string(),
    }
}

/// The node whose output is `name`.
fn producing<'a>(graph: &'a mut Graph, name: &str) -> &'a mut Node {
    graph
        .node
        .iter_mut()
        .find(|n| n.output.iter().any(|o| o == name))
        .unwrap()
}

#[test]
fn an_unrolled_graph_is_lifted_into_canonical_weights() {
    let file = read_bytes(&unrolled().encode_to_vec()).unwrap();
    assert_eq!(
        file.names(),
        [
            "bias_hh_l0",
            "bias_hh_l1",
            "bias_ih_l0",
            "bias_ih_l1",
            "weight_hh_l0",
            "weight_hh_l1",
            "weight_ih_l0",
            "weight_ih_l1"
        ]
    );
    assert_eq!(recorded(&file)["nonlinearity"], "tanh");
    assert!(file.metadata()[UNROLLED].contains("over 4 steps for a batch of 2"));
}

#[test]
fn a_step_that_reads_other_weights_is_refused() {
    let error = unrolled_error(|g| {
        // The third step's recurrent MatMul reads a copy of W_hhᵀ with one number changed.
        let matmul = producing(g, "val_38");
        let original = matmul.input[1].clone();
        matmul.input[1] = "other".into();
        let mut copy = g
            .initializer
            .iter()
            .find(|t| t.name == original)
            .unwrap()
            .clone();
        copy.name = "other".into();
        copy.raw_data[0] ^= 1;
        g.initializer.push(copy);
    });
    assert!(error.contains("reads other weights"), "{error}");
}

#[test]
fn a_step_that_skips_the_state_before_is_refused() {
    let error = unrolled_error(|g| {
        // The fourth step reads the state of the second, not of the third.
        producing(g, "val_40").input[0] = "tanh".into();
    });
    assert!(
        error.contains("does not read the state of the step before"),
        "{error}"
    );
}

#[test]
fn a_folded_first_term_other_than_the_bias_is_refused() {
    let error = unrolled_error(|g| {
        let folded = g
            .initializer
            .iter_mut()
            .find(|t| t.name == "linear_1")
            .unwrap();
        folded.raw_data[0] ^= 1;
    });
    assert!(error.contains("that is not b_hh"), "{error}");
}

#[test]
fn a_node_outside_the_recurrence_is_refused_by_name() {
    // Read as a whole model (the recurrence with a node after it), whose op rnn does not run.
    let error = unrolled_error(|g| {
        g.node.push(Node {
            input: vec!["output".into()],
            output: vec!["extra".into()],
            op_type: "Neg".into(),
            name: "stray".into(),
            ..Default::default()
        });
        g.output[0].name = "extra".into();
    });
    assert!(
        error.contains("Neg node `stray` around its recurrence"),
        "{error}"
    );
}

#[test]
fn steps_out_of_order_are_refused() {
    let error = unrolled_error(|g| {
        // The first layer's states gathered in another order than they were computed.
        let concat = producing(g, "cat");
        concat.input.swap(1, 2);
    });
    assert!(error.contains("breaks the pattern"), "{error}");
}

#[test]
fn a_layer_that_reads_another_part_of_the_graph_input_h0_is_refused() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/files/onnx_legacy_h0_input.onnx"
    );
    let bytes = std::fs::read(path).unwrap();
    assert!(read_bytes(&bytes).is_ok());
    let mut model = proto::Model::decode(bytes.as_slice()).unwrap();
    let graph = model.graph.as_mut().unwrap();
    // The second layer reads the first layer's rows 0..2 of h0 again, not rows 2..4.
    let slice = producing(graph, "/Slice_1_output_0");
    slice.input[1] = "/Constant_1_output_0".into();
    slice.input[2] = "/Constant_2_output_0".into();
    let error = read_bytes(&model.encode_to_vec())
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("does not read rows 2..4 of the graph input `h0`"),
        "{error}"
    );
}

/// An initial_h of zeros built by 80 Concats that each name the one before twice: decided in
/// one visit per node (2^80 paths would never end).
#[test]
fn zeros_named_along_many_paths_are_decided_once_per_node() {
    let mut nodes = vec![Node {
        input: vec!["shape".into()],
        output: vec!["c0".into()],
        op_type: "ConstantOfShape".into(),
        ..Default::default()
    }];
    for i in 1..=80 {
        let before = format!("c{}", i - 1);
        nodes.push(Node {
            input: vec![before.clone(), before],
            output: vec![format!("c{i}")],
            op_type: "Concat".into(),
            attribute: vec![Attribute {
                name: "axis".into(),
                i: 0,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    nodes.push(Node {
        input: vec![
            "X".into(),
            "W".into(),
            "R".into(),
            "".into(),
            "".into(),
            "c80".into(),
        ],
        output: vec!["Y".into()],
        op_type: "RNN".into(),
        ..Default::default()
    });
    let graph = Graph {
        node: nodes,
        initializer: vec![
            tensor("W", &[1, 1, 1], &[0.5]),
            tensor("R", &[1, 1, 1], &[0.25]),
            TensorProto {
                name: "shape".into(),
                dims: vec![3],
                data_type: 7,
                int64_data: vec![1, 1, 1],
                ..Default::default()
            },
        ],
        input: vec![ValueInfo {
            name: "X".into(),
            r#type: None,
        }],
        output: vec![ValueInfo {
            name: "Y".into(),
            r#type: None,
        }],
    };
    let bytes = proto::Model {
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec();
    let file = read_bytes(&bytes).unwrap();
    assert!(!file.names().contains(&"h0".to_string()));
}

/// tf2onnx's Keras stack in Loop nodes (tests/fixtures/files), decoded for editing.
fn looped_error(edit: impl FnOnce(&mut Graph)) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/files/tf2onnx_stack.onnx"
    );
    let bytes = std::fs::read(path).unwrap();
    assert!(read_bytes(&bytes).is_ok());
    let mut model = proto::Model::decode(bytes.as_slice()).unwrap();
    edit(model.graph.as_mut().unwrap());
    match read_bytes(&model.encode_to_vec()) {
        Ok(_) => panic!("the edited graph was read"),
        Err(e) => e.to_string(),
    }
}

/// The first Loop's body.
fn first_body(graph: &mut Graph) -> &mut Graph {
    let node = graph.node.iter_mut().find(|n| n.op_type == "Loop").unwrap();
    node.attribute
        .iter_mut()
        .find(|a| a.name == "body")
        .and_then(|a| a.g.as_mut())
        .unwrap()
}

#[test]
fn a_loop_whose_counter_adds_other_than_one_is_refused() {
    let error = looped_error(|g| {
        let body = first_body(g);
        let one = body
            .initializer
            .iter_mut()
            .find(|t| t.name.ends_with("while/add/y:0"))
            .unwrap();
        *one = TensorProto {
            name: one.name.clone(),
            data_type: 1,
            float_data: vec![2.0],
            ..Default::default()
        };
    });
    assert!(
        error.contains("does not add 1 to its step counter"),
        "{error}"
    );
}

#[test]
fn a_loop_whose_counter_starts_elsewhere_is_refused() {
    let error = looped_error(|g| {
        let start = g
            .initializer
            .iter_mut()
            .find(|t| t.name.ends_with("/time:0"))
            .unwrap();
        *start = TensorProto {
            name: start.name.clone(),
            data_type: 1,
            float_data: vec![1.0],
            ..Default::default()
        };
    });
    assert!(error.contains("step counter to start at 0"), "{error}");
}

#[test]
fn a_loop_body_with_more_than_a_step_is_refused_by_name() {
    let error = looped_error(|g| {
        let body = first_body(g);
        let act = body.node.iter().position(|n| n.op_type == "Tanh").unwrap();
        // The activation's input negated first.
        let added = body.node[act].input[0].clone();
        body.node.push(Node {
            input: vec![added],
            output: vec!["negated".into()],
            op_type: "Neg".into(),
            name: "stray".into(),
            ..Default::default()
        });
        body.node[act].input[0] = "negated".into();
    });
    assert!(error.contains("breaks the pattern"), "{error}");
}

/// Graphs nested in attributes deeper than exporters write are refused before decoding.
#[test]
fn deeply_nested_subgraphs_are_refused() {
    let mut graph = Graph::default();
    for _ in 0..20 {
        graph = Graph {
            node: vec![Node {
                op_type: "Loop".into(),
                attribute: vec![Attribute {
                    name: "body".into(),
                    g: Some(graph),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
    }
    let bytes = proto::Model {
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec();
    let error = read_bytes(&bytes).err().unwrap().to_string();
    assert!(error.contains("nested more than"), "{error}");
}

/// The graph `rnn convert -o X.onnx` writes for one layer of 2 neurons over 3 features,
/// decoded as this reader's messages (which keep what the reader reads).
fn converted_graph() -> proto::Model {
    let device = candle_core::Device::Cpu;
    let w = |rows: usize, cols: usize| {
        let values: Vec<f32> = (0..rows * cols).map(|i| 0.1 * i as f32 - 0.2).collect();
        Tensor::from_vec(values, (rows, cols), &device).unwrap()
    };
    let weights = vec![vec![rnn_core::LayerWeights {
        w_ih: w(2, 3),
        w_hh: w(2, 2),
        b_ih: Some(w(1, 2).flatten_all().unwrap()),
        b_hh: None,
    }]];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    crate::onnx_save::save_onnx(&path, &weights, &crate::StackConfig::default()).unwrap();
    proto::Model::decode(std::fs::read(&path).unwrap().as_slice()).unwrap()
}

fn initializer<'m>(model: &'m mut proto::Model, name: &str) -> &'m mut TensorProto {
    let graph = model.graph.as_mut().unwrap();
    graph
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap()
}

#[test]
fn a_converted_graph_takes_h0_and_lengths_at_run_time() {
    let file = read_bytes(&converted_graph().encode_to_vec()).unwrap();
    assert_eq!(
        file.names(),
        ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]
    );
    // Neither is fixed by the model: both are the user's, absent by default.
    assert!(file.metadata().get(crate::MODEL_INPUTS).is_none());
}

/// The defaults are read as absent inputs only where absent means what rnn does without them:
/// an `h0` default of zeros, a `lengths` default longer than any sequence, capped at the
/// length of the sequence the RNN reads. Any other graph is refused, never read as if it were.
#[test]
fn a_converted_graph_whose_defaults_differ_is_refused() {
    let mut nonzero_h0 = converted_graph();
    initializer(&mut nonzero_h0, "h0").raw_data[0..4].copy_from_slice(&1f32.to_le_bytes());
    let mut short_lengths = converted_graph();
    initializer(&mut short_lengths, "lengths").raw_data = 5i32.to_le_bytes().to_vec();
    let mut capped_by_batch = converted_graph();
    let graph = capped_by_batch.graph.as_mut().unwrap();
    let seq_len = graph.node.iter_mut().find(|n| n.name == "seq_len").unwrap();
    seq_len.input[1] = "axis1".into();
    let mut capped_by_other = converted_graph();
    let graph = capped_by_other.graph.as_mut().unwrap();
    graph.input.push(ValueInfo {
        name: "other".into(),
        r#type: None,
    });
    let shape = graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "Shape")
        .unwrap();
    shape.input = vec!["other".into()];
    // The cap is recognised only as written, so a changed one is not a cap: the graph is read
    // as a whole model (its h0 input the RNN's), whose RNN takes no lengths.
    let cast = "RNN node `rnn_l0` has its sequence_lens given, fixed or computed";
    for (what, model, says) in [
        (
            "h0 default not zeros",
            nonzero_h0,
            "initial_h `h0_l0` is computed in the graph",
        ),
        ("lengths default 5", short_lengths, cast),
        ("lengths capped at the batch", capped_by_batch, cast),
        (
            "lengths capped by another input",
            capped_by_other,
            "whole model of 2 inputs",
        ),
    ] {
        match read_bytes(&model.encode_to_vec()) {
            Ok(file) => panic!("{what}: read as {:?}", file.names()),
            Err(e) => assert!(e.to_string().contains(says), "{what}: {e}"),
        }
    }
}

/// A graph whose output is glue over the RNN's (here its steps transposed to batch-first
/// while the input is time-major) is refused: rnn would give the RNN's output instead.
#[test]
fn an_output_rnn_does_not_compute_is_refused() {
    let mut model = converted_graph();
    let graph = model.graph.as_mut().unwrap();
    graph.node.push(Node {
        input: vec!["output".into()],
        output: vec!["output_batch_first".into()],
        op_type: "Transpose".into(),
        attribute: vec![Attribute {
            name: "perm".into(),
            ints: vec![1, 0, 2],
            r#type: 7,
            ..Default::default()
        }],
        ..Default::default()
    });
    graph.output[0].name = "output_batch_first".into();
    let e = read_bytes(&model.encode_to_vec()).unwrap_err().to_string();
    assert!(
        e.contains("output `output_batch_first` is computed from its RNN nodes by Transpose"),
        "{e}"
    );
    // The graph as written reads.
    assert!(read_bytes(&converted_graph().encode_to_vec()).is_ok());
}

/// Lengths that default to zeros, read directly by the node, are every sequence empty: fixed
/// by the model, not an input that may be left out.
#[test]
fn lengths_that_default_to_zeros_are_the_model_s() {
    let mut model = converted_graph();
    let lengths = initializer(&mut model, "lengths");
    lengths.dims = vec![2];
    lengths.raw_data = [0i32, 0].iter().flat_map(|l| l.to_le_bytes()).collect();
    let graph = model.graph.as_mut().unwrap();
    let rnn = graph.node.iter_mut().find(|n| n.op_type == "RNN").unwrap();
    rnn.input[4] = "lengths".into();
    graph
        .node
        .retain(|n| n.op_type != "Min" && n.name != "seq_len_i32");
    let file = read_bytes(&model.encode_to_vec()).unwrap();
    assert_eq!(file.metadata()[crate::MODEL_INPUTS], "lengths");
}

/// Keras's merge modes are read from the reduction `rnn convert` writes over the directions
/// axis, and from nothing else: a graph whose reduction keeps the axis, or runs over another,
/// is not an RNN with a merge mode; read as a whole model (whose ReduceSum rnn evaluates), it
/// is refused for its `lengths` input.
#[test]
fn a_merge_is_read_only_from_a_reduction_over_the_directions() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/converted_onnx/keras_merge_sum.onnx"
    );
    let model = proto::Model::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    let file = read_bytes(&model.encode_to_vec()).unwrap();
    assert_eq!(recorded(&file)["merge_mode"], "sum");
    let tamper = |change: &dyn Fn(&mut Node)| {
        let mut model = model.clone();
        let graph = model.graph.as_mut().unwrap();
        let reduce = graph
            .node
            .iter_mut()
            .find(|n| n.op_type == "ReduceSum")
            .unwrap();
        change(reduce);
        read_bytes(&model.encode_to_vec()).unwrap_err().to_string()
    };
    let kept = tamper(&|n| n.attribute[0].i = 1);
    assert!(kept.contains("sequence_lens given"), "{kept}");
    let other_axis = tamper(&|n| n.input[1] = "axis0".into());
    assert!(other_axis.contains("sequence_lens given"), "{other_axis}");
}

/// A whole model whose nodes read each other (the embedding's lookup reads the model's own
/// output as its ids) is refused as a cycle, without recursion; the graph as exported reads.
#[test]
fn a_whole_model_whose_nodes_read_each_other_is_refused() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/files/onnx_whole_classifier.onnx"
    );
    let model = proto::Model::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    let file = read_bytes(&model.encode_to_vec()).unwrap();
    assert!(file.graph().is_some_and(|g| g.onnx.is_some()));
    let mut cyclic = model.clone();
    let graph = cyclic.graph.as_mut().unwrap();
    let output = graph.output[0].name.clone();
    let lookup = graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "Gather" && n.input[0] == "embedding.weight")
        .unwrap();
    lookup.input[1] = output;
    let e = read_bytes(&cyclic.encode_to_vec()).unwrap_err().to_string();
    assert!(e.contains("a cycle"), "{e}");
}

/// Before ReduceMean's opset 18 its axes are an attribute and it has no `noop_with_empty_axes`
/// (ONNX Runtime rejects such a graph); rnn reads the attribute form and refuses the
/// attribute there, where ReduceSum (axes an input since opset 13) keeps it.
#[test]
fn noop_with_empty_axes_is_read_only_where_its_opset_has_it() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/files/onnx_whole_pooled.onnx"
    );
    let mut model = proto::Model::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    // The same graph as opset 17 writes it: ReduceMean, Max and Min take `axes = [1]`.
    model.opset_import[0].version = 17;
    let graph = model.graph.as_mut().unwrap();
    for node in &mut graph.node {
        if ["ReduceMean", "ReduceMax", "ReduceMin"].contains(&node.op_type.as_str()) {
            node.input.truncate(1);
            node.attribute.push(Attribute {
                name: "axes".into(),
                ints: vec![1],
                r#type: 7,
                ..Default::default()
            });
        }
    }
    let noop = Attribute {
        name: "noop_with_empty_axes".into(),
        r#type: 2,
        ..Default::default()
    };
    let with_noop = |op: &str| {
        let mut model = model.clone();
        let graph = model.graph.as_mut().unwrap();
        let node = graph.node.iter_mut().find(|n| n.op_type == op).unwrap();
        node.attribute.push(noop.clone());
        read_bytes(&model.encode_to_vec())
    };
    assert!(read_bytes(&model.encode_to_vec()).is_ok());
    assert!(with_noop("ReduceSum").is_ok());
    let e = with_noop("ReduceMean").unwrap_err().to_string();
    assert!(e.contains("noop_with_empty_axes"), "{e}");
}
