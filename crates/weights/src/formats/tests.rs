use super::*;

fn plans(names: &[&str]) -> Vec<Plan> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    detect(&Names::new(&names), None)
}

#[test]
fn pytorch_with_prefix_layers_and_reverse() {
    let p = plans(&[
        "model.rnn.weight_ih_l0",
        "model.rnn.weight_hh_l0",
        "model.rnn.weight_ih_l0_reverse",
        "model.rnn.weight_hh_l0_reverse",
        "model.rnn.weight_ih_l1",
        "model.rnn.weight_hh_l1",
        "model.rnn.weight_ih_l1_reverse",
        "model.rnn.weight_hh_l1_reverse",
        "model.fc.weight",
    ]);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].prefix, "model.rnn.");
    assert_eq!(p[0].layers.len(), 2);
    assert_eq!(
        p[0].layers[1][1].w_hh.name,
        "model.rnn.weight_hh_l1_reverse"
    );
    assert!(p[0].layers[0][0].b_ih.is_none());
}

#[test]
fn keras_stack_in_creation_order_and_bidirectional() {
    let p = plans(&[
        "seq/simple_rnn_10/simple_rnn_cell/kernel",
        "seq/simple_rnn_10/simple_rnn_cell/recurrent_kernel",
        "seq/simple_rnn_9/simple_rnn_cell/kernel",
        "seq/simple_rnn_9/simple_rnn_cell/recurrent_kernel",
        "seq/simple_rnn_9/simple_rnn_cell/bias",
    ]);
    assert_eq!(p[0].format, Format::Keras);
    assert_eq!(
        p[0].layers[0][0].w_ih.name,
        "seq/simple_rnn_9/simple_rnn_cell/kernel"
    );
    let p = plans(&[
        "bidirectional/backward_simple_rnn/recurrent_kernel:0",
        "bidirectional/backward_simple_rnn/kernel:0",
        "bidirectional/forward_simple_rnn/recurrent_kernel:0",
        "bidirectional/forward_simple_rnn/kernel:0",
    ]);
    assert_eq!(p[0].layers.len(), 1);
    assert_eq!(
        p[0].layers[0][1].w_ih.name,
        "bidirectional/backward_simple_rnn/kernel:0"
    );
}

#[test]
fn tf1_multi_cell_and_ambiguity() {
    let p = plans(&[
        "rnn/multi_rnn_cell/cell_1/basic_rnn_cell/kernel:0",
        "rnn/multi_rnn_cell/cell_0/basic_rnn_cell/kernel:0",
        "rnn/multi_rnn_cell/cell_0/basic_rnn_cell/bias:0",
    ]);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].layers.len(), 2);
    assert_eq!(p[0].layers[1][0].w_hh.transform, Transform::RecurrentRows);
    assert!(p[0].layers[1][0].b_ih.is_none());
    let both = plans(&["weight_ih_l0", "weight_hh_l0", "Wx", "Wy"]);
    let formats: Vec<Format> = both.iter().map(|p| p.format).collect();
    assert_eq!(formats, [Format::Pytorch, Format::Article]);
}

#[test]
fn names_that_merely_end_alike_are_not_matched() {
    assert!(plans(&["myweight_ih_l0", "notWx", "input", "output"]).is_empty());
}
