use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use super::names::{article_names, is_bookkeeping, keras_object_path, numbered};

fn t(dims: &[usize]) -> Tensor {
    Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn the_articles_variables_are_named_by_their_shapes() {
    let mut m = BTreeMap::from([
        ("Variable".to_string(), t(&[3, 5])),
        ("Variable_1".to_string(), t(&[5, 5])),
        ("Variable_2".to_string(), t(&[1, 5])),
    ]);
    article_names(&mut m).unwrap();
    assert_eq!(m.keys().collect::<Vec<_>>(), ["Wx", "Wy", "b"]);
    assert_eq!(m["Wx"].dims(), [3, 5]);
}

#[test]
fn the_articles_variables_are_refused_when_input_and_hidden_sizes_agree() {
    let mut m = BTreeMap::from([
        ("Variable".to_string(), t(&[5, 5])),
        ("Variable_1".to_string(), t(&[5, 5])),
        ("Variable_2".to_string(), t(&[1, 5])),
    ]);
    let err = article_names(&mut m).unwrap_err();
    assert!(err.contains("more than one way"), "{err}");
}

#[test]
fn keras_object_paths_map_in_layer_order() {
    let k = |p: &str, d: &[usize]| keras_object_path(p, &t(d));
    assert_eq!(
        k("model/_functional/_operations/2/cell/kernel", &[5, 4]).unwrap(),
        Some("model/simple_rnn_2/simple_rnn_cell/kernel".into())
    );
    assert_eq!(
        k("model/layer_with_weights-1/backward_layer/cell/bias", &[4]).unwrap(),
        Some("model/bidirectional_1/backward_simple_rnn_1/simple_rnn_cell/bias".into())
    );
    assert_eq!(
        k("model/layer_with_weights-2/kernel", &[4, 2]).unwrap(),
        None
    );
    assert!(k("model/encoder/cell/kernel", &[3, 4])
        .unwrap_err()
        .contains("no layer number"));
    assert!(
        k("model/layer_with_weights-0/cell/recurrent_kernel", &[4, 16])
            .unwrap_err()
            .contains("LSTM or GRU")
    );
}

#[test]
fn bookkeeping_is_recognised() {
    for name in [
        "_CHECKPOINTABLE_OBJECT_GRAPH",
        "global_step",
        "rnn/basic_rnn_cell/kernel/Adam_1",
        "model/layer_with_weights-0/cell/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE",
        "save_counter/.ATTRIBUTES/VARIABLE_VALUE",
    ] {
        assert!(is_bookkeeping(name), "{name}");
    }
    assert!(!is_bookkeeping("rnn/basic_rnn_cell/kernel"));
}

/// A SavedModel's numbered variables, also as Keras 3's `model.export` lists them again
/// (`_all_variables/0/…`, 2026's Keras 3.15): nothing names their layers.
#[test]
fn numbered_variables_are_recognised_in_either_list() {
    let named = |names: &[&str]| -> BTreeMap<String, Tensor> {
        names
            .iter()
            .map(|n| (format!("{n}/.ATTRIBUTES/VARIABLE_VALUE"), t(&[2])))
            .collect()
    };
    assert!(numbered(&named(&["variables/0", "variables/12"])));
    assert!(numbered(&named(&["variables/0", "_all_variables/0"])));
    assert!(!numbered(&named(&[
        "variables/0",
        "model/layer_with_weights-0/kernel"
    ])));
    assert!(!numbered(&named(&["variables/x"])));
    assert!(!numbered(&BTreeMap::new()));
}
