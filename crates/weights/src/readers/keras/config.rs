//! A `.keras` archive's `config.json`: the RNN's layers in order with their options, checked
//! against the weights' layers and recorded as metadata.

use std::collections::HashMap;

use rnn_core::Nonlinearity;
use serde_json::Value;

use super::h5::H5Layer;
use super::{NOT_RUN, STACK};

/// One recurrent layer of a `.keras` config.
#[derive(Debug)]
struct RnnLayer {
    name: String,
    units: u64,
    activation: Nonlinearity,
    go_backwards: bool,
    return_sequences: bool,
    /// `Some(merge_mode)` (`None` for Keras's `merge_mode=None`) for a Bidirectional.
    merge_mode: Option<Option<String>>,
}

/// What a `.keras` config says about the model's RNN.
#[derive(Debug)]
pub(super) struct ModelConfig {
    rnn: Vec<RnnLayer>,
    mask_value: Option<f64>,
    /// Layers that are not part of the RNN, and why (`dense (Dense)`).
    not_run: Vec<String>,
    /// Whether the RNN layers are one contiguous stack fed by the model's input.
    contiguous: bool,
}

impl ModelConfig {
    /// The metadata keys that record the config; checks the config against the weights'
    /// layers.
    pub(super) fn metadata(
        &self,
        h5: &[H5Layer],
    ) -> std::result::Result<HashMap<String, String>, String> {
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
        if !self.contiguous {
            // The user picks the layers; the options of the ones picked come from flags.
            return Ok(meta);
        }
        let join =
            |f: &dyn Fn(&RnnLayer) -> String| self.rnn.iter().map(f).collect::<Vec<_>>().join(",");
        meta.insert(STACK.into(), join(&|l| format!("{}/", l.name)));
        meta.insert(
            "nonlinearity".into(),
            join(&|l| l.activation.as_str().into()),
        );
        meta.insert("go_backwards".into(), join(&|l| l.go_backwards.to_string()));
        meta.insert(
            "merge_mode".into(),
            join(&|l| match &l.merge_mode {
                Some(Some(mode)) => mode.clone(),
                Some(None) => "none".into(),
                None => "concat".into(),
            }),
        );
        meta.insert("batch_first".into(), "true".into());
        if let Some(top) = self.rnn.last() {
            meta.insert("return_sequences".into(), top.return_sequences.to_string());
        }
        if let Some(value) = self.mask_value {
            meta.insert("mask_value".into(), value.to_string());
        }
        Ok(meta)
    }
}

/// The model's layers from `config.json`: a `Sequential`, or a `Functional` whose layers form
/// one chain.
pub(super) fn model_config(config: &Value) -> std::result::Result<ModelConfig, String> {
    let class = config["class_name"].as_str().unwrap_or("");
    let layers = config["config"]["layers"]
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
    let mut out = ModelConfig {
        rnn: Vec::new(),
        mask_value: None,
        not_run: Vec::new(),
        contiguous: true,
    };
    // The RNN must be InputLayer, then at most one Masking, then the recurrent layers in a row;
    // any other layer is listed as not run, and one before or among them breaks the stack.
    let mut after_rnn = false;
    for layer in layers {
        let class = layer["class_name"].as_str().unwrap_or("");
        let cfg = &layer["config"];
        let name = cfg["name"].as_str().unwrap_or("").to_string();
        match class {
            "InputLayer" => {}
            "Masking"
                if out.rnn.is_empty() && out.not_run.is_empty() && out.mask_value.is_none() =>
            {
                out.mask_value = Some(cfg["mask_value"].as_f64().ok_or_else(|| {
                    format!("Masking layer `{name}`: expected a numeric mask_value")
                })?);
            }
            "SimpleRNN" | "RNN" | "Bidirectional" => {
                if after_rnn || !out.not_run.is_empty() {
                    out.contiguous = false;
                }
                let rnn = rnn_layer(class, cfg, &name)?;
                if let Some(below) = out.rnn.last() {
                    if !below.return_sequences {
                        return Err(format!(
                            "layer `{}` returns its last step only (return_sequences=False) but \
                             feeds the recurrent layer `{name}`",
                            below.name
                        ));
                    }
                }
                out.rnn.push(rnn);
            }
            _ => {
                after_rnn = !out.rnn.is_empty();
                out.not_run.push(format!("{name} ({class})"));
            }
        }
    }
    Ok(out)
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

/// The layer names of every `keras_history` in `value`.
fn histories<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(h)) = map.get("keras_history") {
                if let Some(name) = h.first().and_then(Value::as_str) {
                    out.push(name);
                }
            }
            map.values().for_each(|v| histories(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| histories(v, out)),
        _ => {}
    }
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
            merge_mode: None,
            name,
        })
    };
    match class {
        "SimpleRNN" => simple(cfg, name),
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
            let merge_mode = cfg["merge_mode"].as_str().map(str::to_string);
            Ok(RnnLayer {
                name: name.to_string(),
                merge_mode: Some(merge_mode),
                go_backwards: false,
                ..forward
            })
        }
    }
}
