//! A `.keras` archive's `config.json`: the RNN's layers in order with their options, checked
//! against the weights' layers and recorded as metadata.

use std::collections::HashMap;

use rnn_core::{MergeMode, Nonlinearity, TimeOrder};
use serde_json::Value;

use super::h5::H5Layer;
use super::{COMPUTE_DTYPE, NOT_RUN, STACK};
use crate::config::{LayerConfig, Recorded};

/// One recurrent layer of a `.keras` config.
#[derive(Debug)]
struct RnnLayer {
    name: String,
    units: u64,
    activation: Nonlinearity,
    go_backwards: bool,
    return_sequences: bool,
    /// A Bidirectional's `merge_mode` (Keras's `merge_mode=None` is [`MergeMode::Separate`]);
    /// a one-direction layer ignores it.
    merge_mode: MergeMode,
}

/// What a `.keras` config says about the model's RNN.
#[derive(Debug)]
pub(super) struct ModelConfig {
    rnn: Vec<RnnLayer>,
    /// The leading `Masking` layer's name and mask value, if there is one.
    mask_value: Option<(String, f64)>,
    /// A layer before a recurrent one whose mask the RNN's input vectors cannot show
    /// (`Embedding(mask_zero=True)`, a `Masking` after another layer), in words.
    input_mask: Option<String>,
    /// The dtypes the recurrent layers compute in, where a layer's dtype policy is not
    /// float32 (`mixed_float16` computes in float16), with the policy's name.
    compute_dtypes: Vec<(String, String)>,
    /// Layers that are not part of the RNN, and why (`dense (Dense)`).
    not_run: Vec<String>,
    /// Whether the RNN layers are one contiguous stack fed by the model's input.
    contiguous: bool,
}

impl ModelConfig {
    /// The metadata keys of the reader's notes (the stack, the layers not run, compute
    /// dtypes) and the model's configuration; checks the config against the weights' layers.
    pub(super) fn metadata(
        &self,
        h5: &[H5Layer],
    ) -> std::result::Result<(HashMap<String, String>, Recorded), String> {
        let mut meta = HashMap::new();
        for layer in &self.rnn {
            if !h5.iter().any(|l| l.recurrent && l.name == layer.name) {
                return Err(format!(
                    "config.json names the recurrent layer `{}`, which model.weights.h5 does not \
                     hold",
                    layer.name
                ));
            }
        }
        if self.rnn.is_empty() {
            return Err("config.json holds no SimpleRNN or Bidirectional(SimpleRNN) layer".into());
        }
        if !self.not_run.is_empty() {
            meta.insert(NOT_RUN.into(), self.not_run.join(", "));
        }
        // A leading Masking masks the model's input, which reaches the RNN as it is only when
        // the stack is contiguous; else its mask is hidden from the stack's input as well.
        let hidden_masking = match &self.mask_value {
            Some((name, value)) if !self.contiguous => {
                Some(format!("`{name}` (Masking, mask_value={value})"))
            }
            _ => None,
        };
        let input_mask = self.input_mask.clone().or(hidden_masking);
        if !self.compute_dtypes.is_empty() {
            let words: Vec<String> = self
                .compute_dtypes
                .iter()
                .map(|(dtype, policy)| format!("{dtype} (dtype policy {policy})"))
                .collect();
            meta.insert(COMPUTE_DTYPE.into(), words.join(", "));
        }
        if !self.contiguous {
            // The user picks the layers; the options of the ones picked come from flags.
            let recorded = Recorded {
                input_mask,
                ..Recorded::default()
            };
            return Ok((meta, recorded));
        }
        meta.insert(
            STACK.into(),
            self.rnn
                .iter()
                .map(|l| format!("{}/", l.name))
                .collect::<Vec<_>>()
                .join(","),
        );
        if let Some(top) = self.rnn.last() {
            meta.insert("return_sequences".into(), top.return_sequences.to_string());
        }
        let layers = self
            .rnn
            .iter()
            .map(|l| LayerConfig {
                time: if l.go_backwards {
                    TimeOrder::GoBackwards
                } else {
                    TimeOrder::Forward
                },
                merge_mode: l.merge_mode,
                ..LayerConfig::new(l.activation)
            })
            .collect();
        let recorded = Recorded {
            layers: Some(layers),
            batch_first: Some(true),
            mask_value: self.mask_value.as_ref().map(|(_, value)| *value),
            input_mask,
            ..Recorded::default()
        };
        Ok((meta, recorded))
    }
}

/// The model's layers from `config.json`: a `Sequential`, or a `Functional` whose layers form
/// one chain.
pub(super) fn model_config(config: &Value) -> std::result::Result<ModelConfig, String> {
    let mut flat = Vec::new();
    flatten(config, "", 0, &mut flat)?;
    let layers = &flat;
    let mut out = ModelConfig {
        rnn: Vec::new(),
        mask_value: None,
        input_mask: None,
        compute_dtypes: Vec::new(),
        not_run: Vec::new(),
        contiguous: true,
    };
    // The RNN must be InputLayer, then at most one Masking, then the recurrent layers in a row;
    // any other layer is listed as not run, and one before or among them breaks the stack.
    let mut after_rnn = false;
    // A mask made by a layer seen so far, hidden from a recurrent layer that comes later.
    let mut pending_mask: Option<String> = None;
    for (scope, layer) in layers {
        let class = layer["class_name"].as_str().unwrap_or("");
        let cfg = &layer["config"];
        let name = format!("{scope}{}", cfg["name"].as_str().unwrap_or(""));
        match class {
            "InputLayer" => {}
            "Masking"
                if out.rnn.is_empty() && out.not_run.is_empty() && out.mask_value.is_none() =>
            {
                let value = cfg["mask_value"].as_f64().ok_or_else(|| {
                    format!("Masking layer `{name}`: expected a numeric mask_value")
                })?;
                out.mask_value = Some((name, value));
            }
            "SimpleRNN" | "RNN" | "Bidirectional" => {
                if out.input_mask.is_none() {
                    out.input_mask = pending_mask.take();
                }
                if after_rnn || !out.not_run.is_empty() {
                    out.contiguous = false;
                }
                let stacked = stacked_cells(class, cfg, &name)?;
                let mut rnns = match stacked {
                    Some(cells) => cells,
                    None => {
                        let mut rnn = rnn_layer(class, cfg, &name)?;
                        rnn.name = name.clone();
                        vec![rnn]
                    }
                };
                for policy in [&cfg["dtype"], &cfg["layer"]["config"]["dtype"]] {
                    if let Some(computed) = compute_dtype(policy) {
                        if !out.compute_dtypes.contains(&computed) {
                            out.compute_dtypes.push(computed);
                        }
                    }
                }
                for rnn in rnns.drain(..) {
                    if let Some(below) = out.rnn.last() {
                        if !below.return_sequences {
                            return Err(format!(
                                "layer `{}` returns its last step only (return_sequences=False) \
                                 but feeds the recurrent layer `{}`",
                                below.name, rnn.name
                            ));
                        }
                    }
                    out.rnn.push(rnn);
                }
            }
            _ => {
                after_rnn = !out.rnn.is_empty();
                if pending_mask.is_none() {
                    pending_mask = mask_made_by(class, cfg, &name);
                }
                out.not_run.push(format!("{name} ({class})"));
            }
        }
    }
    Ok(out)
}

/// Models nested in models, deeper than Keras users build (config.json is bounded in size, and
/// this bounds the walk's recursion).
const MAX_NESTING: usize = 32;

/// The layers of a `Sequential` or `Functional` model in order, each with the scope its
/// weights are named under (`encoder/` for the layers of a nested model `encoder`): a model
/// inside a model is walked in its place, as Keras runs it. A `Functional` model must be one
/// chain (see [`check_chain`]).
fn flatten<'a>(
    model: &'a Value,
    scope: &str,
    depth: usize,
    out: &mut Vec<(String, &'a Value)>,
) -> std::result::Result<(), String> {
    let class = model["class_name"].as_str().unwrap_or("");
    let layers = model["config"]["layers"]
        .as_array()
        .ok_or_else(|| format!("expected config.layers, a list, in a {class:?} model"))?;
    match class {
        "Sequential" => {}
        "Functional" | "Model" => check_chain(layers)?,
        other => {
            return Err(format!(
                "expected a Sequential or Functional model, found class {other:?}"
            ))
        }
    }
    if depth > MAX_NESTING {
        return Err(format!("models nested more than {MAX_NESTING} deep"));
    }
    for layer in layers {
        let nested = matches!(
            layer["class_name"].as_str(),
            Some("Sequential" | "Functional" | "Model")
        );
        if nested {
            let name = layer["config"]["name"].as_str().unwrap_or("");
            flatten(layer, &format!("{scope}{name}/"), depth + 1, out)?;
        } else {
            out.push((scope.to_string(), layer));
        }
    }
    Ok(())
}

/// The mask a layer that rnn does not run makes, in words: Keras's `Embedding(mask_zero=True)`
/// masks id 0, and a `Masking` after another layer masks that layer's outputs, neither of which
/// the RNN's input vectors show.
fn mask_made_by(class: &str, cfg: &Value, name: &str) -> Option<String> {
    match class {
        "Embedding" if cfg["mask_zero"].as_bool() == Some(true) => {
            Some(format!("`{name}` (Embedding, mask_zero=True)"))
        }
        "Masking" => Some(format!(
            "`{name}` (Masking, mask_value={})",
            cfg["mask_value"]
        )),
        _ => None,
    }
}

/// The dtype a layer's dtype policy computes in and the policy's name, where it is not float32:
/// Keras 3 writes `{"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}`, tf-keras
/// `{"class_name": "Policy", …}` or a plain name; a `mixed_` policy keeps float32 variables and
/// computes in the half type.
fn compute_dtype(policy: &Value) -> Option<(String, String)> {
    let name = policy
        .as_str()
        .or_else(|| policy["config"]["name"].as_str())?;
    let computed = name.strip_prefix("mixed_").unwrap_or(name);
    (computed != "float32").then(|| (computed.to_string(), name.to_string()))
}

/// A `Functional` model must be a chain: each layer fed by the one before it only.
fn check_chain(layers: &[Value]) -> std::result::Result<(), String> {
    let mut previous: Option<&str> = None;
    for layer in layers {
        let name = layer["config"]["name"].as_str().unwrap_or("");
        let mut inputs = Vec::new();
        histories(&layer["inbound_nodes"], &mut inputs);
        let fits = match previous {
            None => inputs.is_empty(),
            Some(p) => inputs.len() == 1 && inputs[0] == p,
        };
        if !fits {
            return Err(format!(
                "layer `{name}` is fed by {inputs:?}, not by the layer before it in the list \
                 only; rnn reads Functional models that are one chain of layers"
            ));
        }
        previous = Some(name);
    }
    Ok(())
}

/// The layer names of every `keras_history` in `value` (Keras 3), or of every inbound entry
/// `[name, node_index, tensor_index, kwargs]` (tf-keras's `inbound_nodes: [[[…]]]`).
fn histories<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(h)) = map.get("keras_history") {
                if let Some(name) = h.first().and_then(Value::as_str) {
                    out.push(name);
                }
            }
            map.iter()
                .filter(|(k, _)| k.as_str() != "keras_history")
                .for_each(|(_, v)| histories(v, out));
        }
        Value::Array(items) => match items.as_slice() {
            [Value::String(name), Value::Number(_), Value::Number(_), ..] => out.push(name),
            _ => items.iter().for_each(|v| histories(v, out)),
        },
        _ => {}
    }
}

/// `RNN(StackedRNNCells([SimpleRNNCell, …]))` as the stack of layers it computes: at each step
/// each cell reads the output of the cell below, which is what SimpleRNN layers one above the
/// other compute, each but the top returning every step. Each is named `{layer}/{cell}` (its
/// weights `{layer}/{cell}/simple_rnn_cell/kernel`). `None` for any other layer.
fn stacked_cells(
    class: &str,
    cfg: &Value,
    name: &str,
) -> std::result::Result<Option<Vec<RnnLayer>>, String> {
    if class != "RNN" || cfg["cell"]["class_name"].as_str() != Some("StackedRNNCells") {
        return Ok(None);
    }
    let cells = cfg["cell"]["config"]["cells"]
        .as_array()
        .ok_or_else(|| format!("layer `{name}`: expected StackedRNNCells with a list of cells"))?;
    if cfg["go_backwards"].as_bool() == Some(true) {
        return Err(format!(
            "layer `{name}` runs stacked cells with go_backwards=True, which rnn does not run; \
             build it from SimpleRNN layers instead"
        ));
    }
    let top = cfg["return_sequences"].as_bool().unwrap_or(false);
    let mut layers = Vec::new();
    for (k, cell) in cells.iter().enumerate() {
        let class = cell["class_name"].as_str().unwrap_or("(unknown)");
        if class != "SimpleRNNCell" {
            return Err(format!(
                "layer `{name}` stacks the cell {class:?}, not a SimpleRNNCell, which rnn does \
                 not run"
            ));
        }
        let cell_name = cell["config"]["name"].as_str().unwrap_or("");
        let mut layer = rnn_layer("SimpleRNN", &cell["config"], cell_name)?;
        layer.name = format!("{name}/{cell_name}");
        layer.return_sequences = k + 1 < cells.len() || top;
        layers.push(layer);
    }
    if layers.is_empty() {
        return Err(format!("layer `{name}` stacks no cells"));
    }
    Ok(Some(layers))
}

/// One recurrent layer's options, refused where rnn cannot run it as configured.
fn rnn_layer(class: &str, cfg: &Value, name: &str) -> std::result::Result<RnnLayer, String> {
    let simple = |cfg: &Value, what: &str| -> std::result::Result<RnnLayer, String> {
        let name = cfg["name"].as_str().unwrap_or(what).to_string();
        let flag = |key: &str, default: bool| cfg[key].as_bool().unwrap_or(default);
        let activation = cfg["activation"].as_str().unwrap_or("tanh");
        let activation = Nonlinearity::from_name(activation).ok_or_else(|| {
            format!("layer `{name}`: activation {activation:?} is not one rnn runs")
        })?;
        Ok(RnnLayer {
            units: cfg["units"].as_u64().unwrap_or(0),
            activation,
            go_backwards: flag("go_backwards", false),
            return_sequences: flag("return_sequences", false),
            merge_mode: MergeMode::Concat,
            name,
        })
    };
    match class {
        "SimpleRNN" => simple(cfg, name),
        // `RNN(SimpleRNNCell(…))`, unrolled or not, computes what `SimpleRNN` does: the cell
        // gives units and activation, the RNN layer its direction and what it returns.
        "RNN" if cfg["cell"]["class_name"].as_str() == Some("SimpleRNNCell") => {
            let flag = |key: &str| cfg[key].as_bool().unwrap_or(false);
            Ok(RnnLayer {
                name: name.to_string(),
                go_backwards: flag("go_backwards"),
                return_sequences: flag("return_sequences"),
                ..simple(&cfg["cell"]["config"], name)?
            })
        }
        "RNN" => Err(format!(
            "layer `{name}` is an RNN over {}, which rnn does not read; build it from SimpleRNN \
             layers instead",
            match cfg["cell"] {
                Value::Array(_) => "stacked cells (RNN([cell, cell, …]))".to_string(),
                ref cell => format!(
                    "the cell {:?}",
                    cell["class_name"].as_str().unwrap_or("(unknown)")
                ),
            }
        )),
        _ => {
            let inner = &cfg["layer"];
            let inner_class = inner["class_name"].as_str().unwrap_or("");
            if inner_class != "SimpleRNN" {
                let what = if inner_class == "RNN" && inner["config"]["cell"].is_array() {
                    "Bidirectional(RNN([cell, cell, …])): each direction runs its own stack of \
                     cells, which is not a bidirectional stack and which rnn does not run; build \
                     it from Bidirectional(SimpleRNN(…)) layers instead"
                        .to_string()
                } else {
                    format!("a Bidirectional over {inner_class:?}, not a SimpleRNN")
                };
                return Err(format!("layer `{name}` is {what}"));
            }
            let forward = simple(&inner["config"], "forward")?;
            let backward = match &cfg["backward_layer"] {
                Value::Null => None,
                b => Some(simple(&b["config"], "backward")?),
            };
            if forward.go_backwards || backward.as_ref().is_some_and(|b| !b.go_backwards) {
                return Err(format!(
                    "Bidirectional layer `{name}`: expected a forward layer with \
                     go_backwards=False and a backward layer with go_backwards=True"
                ));
            }
            if let Some(b) = &backward {
                if b.units != forward.units || b.activation != forward.activation {
                    return Err(format!(
                        "Bidirectional layer `{name}`: the backward layer `{}` differs from the \
                         forward one in units or activation, which rnn does not run",
                        b.name
                    ));
                }
            }
            let merge_mode = match &cfg["merge_mode"] {
                Value::Null => MergeMode::Separate,
                mode => mode
                    .as_str()
                    .and_then(MergeMode::from_name)
                    .filter(|m| *m != MergeMode::Separate)
                    .ok_or_else(|| {
                        format!(
                            "Bidirectional layer `{name}`: merge_mode {mode} is not one of \
                             Keras's (\"concat\", \"sum\", \"ave\", \"mul\" or None)"
                        )
                    })?,
            };
            Ok(RnnLayer {
                name: name.to_string(),
                merge_mode,
                go_backwards: false,
                ..forward
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Keras 3 Sequential config (the shapes of `config.json` as Keras 3.15 writes it, cut
    /// to the keys read) of the given layers.
    fn sequential(layers: Value) -> Value {
        serde_json::json!({"class_name": "Sequential", "config": {"layers": layers}})
    }

    fn policy(name: &str) -> Value {
        serde_json::json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}})
    }

    fn simple_rnn(name: &str, dtype: Value) -> Value {
        serde_json::json!({"class_name": "SimpleRNN", "config": {
            "name": name, "units": 5, "activation": "tanh", "return_sequences": false,
            "dtype": dtype}})
    }

    fn metadata(config: &Value) -> (HashMap<String, String>, Recorded) {
        let h5 = [H5Layer {
            name: "simple_rnn".into(),
            recurrent: true,
        }];
        model_config(config).unwrap().metadata(&h5).unwrap()
    }

    #[test]
    fn a_mask_made_before_the_rnn_is_recorded() {
        let embedding = serde_json::json!({"class_name": "Embedding",
            "config": {"name": "embedding", "mask_zero": true}});
        let (_, recorded) = metadata(&sequential(serde_json::json!([
            embedding,
            simple_rnn("simple_rnn", policy("float32"))
        ])));
        assert_eq!(
            recorded.input_mask.as_deref(),
            Some("`embedding` (Embedding, mask_zero=True)")
        );
        // Without mask_zero, no mask; a leading Masking over a contiguous stack is the
        // mask_value the input shows, not a hidden one.
        let plain = serde_json::json!({"class_name": "Embedding",
            "config": {"name": "embedding", "mask_zero": false}});
        let (_, recorded) = metadata(&sequential(serde_json::json!([
            plain,
            simple_rnn("simple_rnn", policy("float32"))
        ])));
        assert_eq!(recorded.input_mask, None);
        let masking = serde_json::json!({"class_name": "Masking",
            "config": {"name": "masking", "mask_value": 0.0}});
        let (_, recorded) = metadata(&sequential(serde_json::json!([
            masking.clone(),
            simple_rnn("simple_rnn", policy("float32"))
        ])));
        assert_eq!(recorded.input_mask, None);
        assert_eq!(recorded.mask_value, Some(0.0));
        // A Masking whose outputs pass through a Dense first: its mask is hidden too.
        let dense = serde_json::json!({"class_name": "Dense", "config": {"name": "dense"}});
        let (_, recorded) = metadata(&sequential(serde_json::json!([
            masking,
            dense,
            simple_rnn("simple_rnn", policy("float32"))
        ])));
        assert_eq!(
            recorded.input_mask.as_deref(),
            Some("`masking` (Masking, mask_value=0)")
        );
    }

    #[test]
    fn a_dtype_policy_other_than_float32_is_recorded() {
        let (meta, _) = metadata(&sequential(serde_json::json!([simple_rnn(
            "simple_rnn",
            policy("mixed_float16")
        )])));
        assert_eq!(
            meta.get(COMPUTE_DTYPE).map(String::as_str),
            Some("float16 (dtype policy mixed_float16)")
        );
        // tf-keras writes a plain name or a `Policy`.
        let (meta, _) = metadata(&sequential(serde_json::json!([simple_rnn(
            "simple_rnn",
            serde_json::json!("float64")
        )])));
        assert_eq!(
            meta.get(COMPUTE_DTYPE).map(String::as_str),
            Some("float64 (dtype policy float64)")
        );
        let (meta, _) = metadata(&sequential(serde_json::json!([simple_rnn(
            "simple_rnn",
            policy("float32")
        )])));
        assert!(!meta.contains_key(COMPUTE_DTYPE));
    }

    #[test]
    fn tf_keras_inbound_nodes_make_a_chain() {
        // tf-keras writes `inbound_nodes: [[[name, node, tensor, kwargs]]]`; Keras 3 a
        // `keras_history` inside its call arguments.
        let layer = |name: &str, inbound: Value| serde_json::json!({"class_name": "X", "config": {"name": name}, "inbound_nodes": inbound});
        let keras2 = [
            layer("in", serde_json::json!([])),
            layer("rnn", serde_json::json!([[["in", 0, 0, {}]]])),
        ];
        assert!(check_chain(&keras2).is_ok());
        let keras3 = [
            layer("in", serde_json::json!([])),
            layer(
                "rnn",
                serde_json::json!([{"args": [{"config": {"keras_history": ["in", 0, 0]}}]}]),
            ),
        ];
        assert!(check_chain(&keras3).is_ok());
        let skipped = [
            layer("in", serde_json::json!([])),
            layer("a", serde_json::json!([[["in", 0, 0, {}]]])),
            layer("b", serde_json::json!([[["in", 0, 0, {}]]])),
        ];
        assert!(check_chain(&skipped).is_err());
    }

    fn stacked(go_backwards: bool, second: &str) -> Value {
        serde_json::json!({"class_name": "RNN", "config": {
            "name": "rnn", "return_sequences": false, "go_backwards": go_backwards,
            "cell": {"class_name": "StackedRNNCells", "config": {"cells": [
                {"class_name": "SimpleRNNCell", "config": {"name": "a", "units": 4,
                 "activation": "relu"}},
                {"class_name": second, "config": {"name": "b", "units": 3}}]}}}})
    }

    #[test]
    fn stacked_cells_become_a_stack_of_layers() {
        let model = model_config(&sequential(serde_json::json!([stacked(
            false,
            "SimpleRNNCell"
        )])))
        .unwrap();
        let names: Vec<&str> = model.rnn.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["rnn/a", "rnn/b"]);
        assert!(model.rnn[0].return_sequences && !model.rnn[1].return_sequences);
        assert_eq!(model.rnn[0].activation.to_string(), "relu");
        let backwards = model_config(&sequential(serde_json::json!([stacked(
            true,
            "SimpleRNNCell"
        )])));
        assert!(backwards.err().unwrap().contains("go_backwards=True"));
        let lstm = model_config(&sequential(serde_json::json!([stacked(false, "LSTMCell")])));
        assert!(lstm
            .err()
            .unwrap()
            .contains("\"LSTMCell\", not a SimpleRNNCell"));
    }
}
