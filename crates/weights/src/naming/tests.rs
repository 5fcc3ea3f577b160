use super::*;

fn plans(names: &[&str]) -> Vec<Plan> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    detect(&Names::new(&names), None).plans
}

fn refusals(names: &[&str]) -> Vec<String> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    detect(&Names::new(&names), None).refusals
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
    assert_eq!(p[0].naming, Naming::Keras);
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
    // BasicRNNCell always has a bias: a missing one is reported missing at load.
    let bias = p[0].layers[1][0].b_ih.as_ref().map(|b| b.name.as_str());
    assert_eq!(bias, Some("rnn/multi_rnn_cell/cell_1/basic_rnn_cell/bias"));
    let both = plans(&["weight_ih_l0", "weight_hh_l0", "Wx", "Wy"]);
    let formats: Vec<Naming> = both.iter().map(|p| p.naming).collect();
    assert_eq!(formats, [Naming::Pytorch, Naming::Article]);
}

#[test]
fn names_that_merely_end_alike_are_not_matched() {
    assert!(plans(&["myweight_ih_l0", "notWx", "input", "output"]).is_empty());
}

#[test]
fn every_tf1_scope_is_its_own_rnn() {
    let p = plans(&[
        "bidirectional_rnn/fw/basic_rnn_cell/kernel:0",
        "bidirectional_rnn/fw/basic_rnn_cell/bias:0",
        "bidirectional_rnn/bw/basic_rnn_cell/kernel:0",
        "bidirectional_rnn/bw/basic_rnn_cell/bias:0",
        "uni/rnn/basic_rnn_cell/kernel:0",
        "uni/rnn/basic_rnn_cell/bias:0",
    ]);
    let prefixes: Vec<&str> = p.iter().map(|p| p.prefix.as_str()).collect();
    assert_eq!(prefixes, ["bidirectional_rnn/", "uni/rnn/"]);
    assert_eq!(p[0].layers[0].len(), 2);
    assert_eq!(p[1].layers[0].len(), 1);
    let p = plans(&[
        "layer_0/rnn/basic_rnn_cell/kernel",
        "layer_0/rnn/basic_rnn_cell/bias",
        "layer_1/rnn/basic_rnn_cell/kernel",
        "layer_1/rnn/basic_rnn_cell/bias",
    ]);
    assert_eq!(p.len(), 2);
    // A stack with a layer missing, or a backward cell with no forward one, is refused.
    let gap = refusals(&[
        "rnn/multi_rnn_cell/cell_0/basic_rnn_cell/kernel",
        "rnn/multi_rnn_cell/cell_2/basic_rnn_cell/kernel",
    ]);
    assert!(gap[0].contains("layer 1 has no cell"), "{gap:?}");
    let per_direction = refusals(&[
        "bidirectional_rnn/fw/multi_rnn_cell/cell_0/basic_rnn_cell/kernel",
        "bidirectional_rnn/fw/multi_rnn_cell/cell_1/basic_rnn_cell/kernel",
        "bidirectional_rnn/bw/multi_rnn_cell/cell_0/basic_rnn_cell/kernel",
        "bidirectional_rnn/bw/multi_rnn_cell/cell_1/basic_rnn_cell/kernel",
    ]);
    assert!(
        per_direction[0].contains("its own stack"),
        "{per_direction:?}"
    );
    let stacked = plans(&[
        "stack_bidirectional_rnn/cell_0/bidirectional_rnn/fw/basic_rnn_cell/kernel",
        "stack_bidirectional_rnn/cell_0/bidirectional_rnn/bw/basic_rnn_cell/kernel",
        "stack_bidirectional_rnn/cell_1/bidirectional_rnn/fw/basic_rnn_cell/kernel",
        "stack_bidirectional_rnn/cell_1/bidirectional_rnn/bw/basic_rnn_cell/kernel",
    ]);
    assert_eq!(stacked.len(), 1);
    assert_eq!(stacked[0].layers.len(), 2);
    assert_eq!(stacked[0].layers[1].len(), 2);
    let lone = refusals(&["birnn/bw/basic_rnn_cell/kernel"]);
    assert!(lone[0].contains("no fw cell"), "{lone:?}");
}

#[test]
fn keras_order_comes_only_from_default_names() {
    let layer = |l: &str| {
        ["kernel", "recurrent_kernel", "bias"].map(|k| format!("{l}/simple_rnn_cell/{k}"))
    };
    let names = |layers: &[&str]| -> Vec<String> { layers.iter().flat_map(|l| layer(l)).collect() };
    let detect_names = |n: Vec<String>| detect(&Names::new(&n), None);
    // Default names: one stack, in creation order, with a Bidirectional between.
    let found = detect_names(names(&[
        "seq/simple_rnn_2",
        "seq/bidirectional/forward_simple_rnn_1",
        "seq/bidirectional/backward_simple_rnn_1",
        "seq/simple_rnn",
    ]));
    assert_eq!(found.plans.len(), 1);
    let directions: Vec<usize> = found.plans[0].layers.iter().map(Vec::len).collect();
    assert_eq!(directions, [1, 2, 1]);
    assert!(found.plans[0].layers[2][0]
        .w_ih
        .name
        .starts_with("seq/simple_rnn_2/"));
    // Names chosen by the user: each layer is a candidate of its own.
    let found = detect_names(names(&["rnn_b", "rnn_a"]));
    let prefixes: Vec<&str> = found.plans.iter().map(|p| p.prefix.as_str()).collect();
    assert_eq!(prefixes, ["rnn_a/", "rnn_b/"]);
    // backward_layer= keeps its own name inside the wrapper.
    let found = detect_names(names(&[
        "bidirectional/forward_simple_rnn",
        "bidirectional/bwd",
    ]));
    assert_eq!(found.plans.len(), 1);
    assert_eq!(found.plans[0].layers[0].len(), 2);
    assert!(found.plans[0].layers[0][1]
        .w_ih
        .name
        .starts_with("bidirectional/bwd/"));
    // A wrapper holding three layers, or a cell with no recurrent kernel, is not guessed at.
    let found = detect_names(names(&[
        "bidirectional/forward_simple_rnn",
        "bidirectional/backward_simple_rnn",
        "bidirectional/extra",
    ]));
    assert!(
        found.refusals[0].contains("holds 3"),
        "{:?}",
        found.refusals
    );
    let found = detect_names(vec![
        "simple_rnn/simple_rnn_cell/kernel".into(),
        "simple_rnn/simple_rnn_cell/bias".into(),
    ]);
    assert_eq!(
        found.plans[0].layers[0][0].w_hh.name,
        "simple_rnn/simple_rnn_cell/recurrent_kernel"
    );
}
