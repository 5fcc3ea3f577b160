//! Keras's files: Keras 3's `model.save("m.keras")` (a zip of `config.json`, `metadata.json`
//! and `model.weights.h5`) and `model.save_weights("w.weights.h5")` (HDF5); tf-keras's (Keras 2)
//! `model.save("m.keras")` (the same zip, its `vars` groups naming no layer: the config's
//! layers name them by class and place, [`tf_keras_keys`]); and the legacy HDF5 layout both
//! write with `model.save("m.h5")` (`h5.rs`).
//!
//! Keras 3.15 stores a model's weights in HDF5 by the attributes that hold them:
//! `layers/<key>/cell/vars/0` (kernel), `/1` (recurrent_kernel), `/2` (bias) for a
//! `SimpleRNN`, `layers/<key>/forward_layer/cell/vars/…` and `backward_layer/…` for a
//! `Bidirectional`, each `vars` group carrying the layer's `name` as an attribute. `<key>` is
//! numbered per class within the model's list (`simple_rnn`, `simple_rnn_1`, `bidirectional`),
//! which says nothing about the order across classes; the layers' own names do, where they are
//! Keras's defaults. The weights are therefore named by the layers' own names as Keras
//! variable paths (`simple_rnn_1/simple_rnn_cell/kernel`), which `naming.rs` orders by
//! Keras's default numbering only. A `.keras` archive's `config.json` gives the order and the
//! options, recorded as the file's typed configuration ([`crate::Recorded`]).

pub(crate) mod config;
mod h5;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

use config::model_config;
use h5::read_h5;

/// The most a `config.json` may hold: Keras's are a few kilobytes per layer (8 MiB is over a
/// thousand layers). Parsed, JSON takes up to about 16 times its text, so this also bounds
/// what a file built to inflate can make rnn hold (a 272 KB archive inflating to 64 MB).
const MAX_CONFIG: u64 = 8 << 20;

/// Reads a `.keras` archive: weights and the options its config records.
pub(crate) fn read_archive(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_owned(),
        kind: ".keras",
        reason,
    };
    let mut archive = crate::npz::zip_archive(bytes)
        .map_err(|e| malformed(format!("the zip archive does not open: {e}")))?;
    let mut entry = |name: &str, limit: u64| {
        crate::npz::read_entry(&mut archive, name, limit).map_err(malformed)
    };
    let config = entry("config.json", MAX_CONFIG)?;
    // The weights are stored, not deflated, by Keras; a deflated entry still cannot unpack to
    // more than the size its header declares, checked against this bound.
    let weights = entry("model.weights.h5", 16 * bytes.len() as u64 + (1 << 20))?;
    // metadata.json says which Keras wrote the archive (tf-keras writes .keras files too).
    let keras2 = entry("metadata.json", MAX_CONFIG)
        .ok()
        .and_then(|m| serde_json::from_slice::<Value>(&m).ok())
        .is_some_and(|m| written_by_keras2(m["keras_version"].as_str()));
    let config: Value = serde_json::from_slice(&config)
        .map_err(|e| malformed(format!("config.json is not valid JSON: {e}")))?;
    // tf-keras's model.weights.h5 keys each layer's group by its class and place, with no
    // layer names inside: the config's layers, in the same order, name them.
    let keys = if keras2 {
        Some(
            tf_keras_keys(&config).map_err(|reason| WeightsError::NotRun {
                path: path.to_owned(),
                reason: format!("config.json: {reason}"),
            })?,
        )
    } else {
        None
    };
    let model = model_config(&config, keras2).map_err(|reason| WeightsError::NotRun {
        path: path.to_owned(),
        reason: format!("config.json: {reason}"),
    })?;
    let h5 = read_h5(path, &weights, keys.as_ref(), simple_cell_names(&config))?;
    let (metadata, recorded, graph) = model.metadata(&h5.layers).map_err(malformed)?;
    Ok(TensorFile::from_tensors(path, h5.tensors, metadata)
        .with_recorded(recorded)
        .with_graph(graph))
}

/// Reads a Keras HDF5 file: Keras 3's `.weights.h5`, or tf-keras's (Keras 2) `model.save("m.h5")`
/// and `save_weights("w.h5")`; a full model's `model_config` gives the layers' order and
/// options as a `.keras` archive's `config.json` does.
pub(crate) fn read_weights_h5(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let h5::H5Contents {
        tensors,
        layers,
        model_config: config,
        keras_version,
    } = read_h5(path, bytes, None, HashSet::new())?;
    if let Some(config) = config {
        let malformed = |reason: String| WeightsError::Malformed {
            path: path.to_owned(),
            kind: "Keras HDF5",
            reason,
        };
        let model = model_config(&config, written_by_keras2(keras_version.as_deref())).map_err(
            |reason| WeightsError::NotRun {
                path: path.to_owned(),
                reason: format!("model_config: {reason}"),
            },
        )?;
        let (metadata, recorded, graph) = model.metadata(&layers).map_err(malformed)?;
        return Ok(TensorFile::from_tensors(path, tensors, metadata)
            .with_recorded(recorded)
            .with_graph(graph));
    }
    let mut metadata = HashMap::new();
    let others: Vec<&str> = layers
        .iter()
        .filter(|l| !l.recurrent)
        .map(|l| l.name.as_str())
        .collect();
    if !others.is_empty() {
        metadata.insert(NOT_RUN.to_string(), others.join(", "));
    }
    Ok(TensorFile::from_tensors(path, tensors, metadata))
}

/// The notes, configuration and whole model a tf-keras model config (`{"class_name": …,
/// "config": …}`) records, checked against `layers`: the model's layers with weights by name,
/// each with whether it is recurrent and its tensors in the layer's order (a SavedModel's,
/// whose variables the checkpoint's object graph names).
pub(crate) fn config_metadata(
    config: &Value,
    layers: &[(String, bool, Vec<String>)],
) -> std::result::Result<config::Described, String> {
    // A SavedModel with keras_metadata.pb is tf-keras's (Keras 2).
    let model = model_config(config, true)?;
    let layers: Vec<h5::H5Layer> = layers
        .iter()
        .map(|(name, recurrent, weights)| h5::H5Layer {
            weights: weights.clone(),
            name: name.clone(),
            recurrent: *recurrent,
        })
        .collect();
    model.metadata(&layers)
}

/// The group key tf-keras's `.keras` archive gives each layer of the model's `layers` list,
/// mapped to the layer's name: its class in snake case (`SimpleRNN` → `simple_rnn`), then
/// `_1`, `_2`, … for the class's later layers, in the list's order (tf-keras's
/// `saving_lib._save_container_state` and `generic_utils.to_snake_case`); a nested model's
/// layers the same way inside its group (`sequential/simple_rnn` → `encoder/simple_rnn_7`),
/// up to the nesting depth the HDF5 reader follows.
fn tf_keras_keys(config: &Value) -> std::result::Result<TfKerasKeys, String> {
    let mut keys = TfKerasKeys::default();
    tf_keras_list(config, ("", ""), 0, &mut keys)?;
    Ok(keys)
}

/// [`tf_keras_keys`] for the model `config` whose group keys start with `key_scope` and
/// whose layers' names with `name_scope`, `depth` models deep.
fn tf_keras_list(
    config: &Value,
    (key_scope, name_scope): (&str, &str),
    depth: usize,
    keys: &mut TfKerasKeys,
) -> std::result::Result<(), String> {
    if depth > h5::MAX_NESTING {
        return Err(format!("models nested more than {} deep", h5::MAX_NESTING));
    }
    let layers = config["config"]["layers"]
        .as_array()
        .ok_or("expected the model's `layers` list")?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for layer in layers {
        let class = layer["class_name"].as_str().unwrap_or("");
        let cfg = &layer["config"];
        let name = format!("{name_scope}{}", cfg["name"].as_str().unwrap_or(""));
        let base = snake_case(class);
        let count = seen.entry(base.clone()).or_insert(0);
        let key = match *count {
            0 => format!("{key_scope}{base}"),
            n => format!("{key_scope}{base}_{n}"),
        };
        *count += 1;
        let simple = match class {
            "SimpleRNN" => true,
            "RNN" => cfg["cell"]["class_name"] == "SimpleRNNCell",
            // Both directions (a backward_layer= of another class has its own cell).
            "Bidirectional" => {
                cfg["layer"]["class_name"] == "SimpleRNN"
                    && (cfg["backward_layer"].is_null()
                        || cfg["backward_layer"]["class_name"] == "SimpleRNN")
            }
            _ => false,
        };
        if simple {
            keys.simple.insert(name.clone());
        }
        if is_model(layer) {
            tf_keras_list(
                layer,
                (&format!("{key}/"), &format!("{name}/")),
                depth + 1,
                keys,
            )?;
        }
        keys.names.insert(key, name);
    }
    Ok(())
}

/// Each `RNN` layer of `config` (anywhere in the model, by its own name) with the name of
/// each of its cells that the config records as a `SimpleRNNCell`: its `cell`, or each of a
/// `StackedRNNCells`' `cells`. A Keras file names such a cell's weights by the cell's own name
/// (`rnn/my_cell/kernel`), which says nothing of its class.
fn simple_cell_names(config: &Value) -> HashSet<(String, String)> {
    fn walk(value: &Value, pairs: &mut HashSet<(String, String)>, depth: usize) {
        // Deeper than any model's config nests its layers: a bound on the walk, not a limit
        // a real file meets (the config's size is bounded already).
        if depth > 64 {
            return;
        }
        match value {
            Value::Object(map) => {
                if map.get("class_name").and_then(Value::as_str) == Some("RNN") {
                    let config = &value["config"];
                    let layer = config["name"].as_str().unwrap_or("");
                    let cell = &config["cell"];
                    let cells = match cell["class_name"].as_str() {
                        Some("StackedRNNCells") => cell["config"]["cells"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default(),
                        _ => vec![cell.clone()],
                    };
                    for cell in cells {
                        if let (Some("SimpleRNNCell"), Some(name)) =
                            (cell["class_name"].as_str(), cell["config"]["name"].as_str())
                        {
                            pairs.insert((layer.to_string(), name.to_string()));
                        }
                    }
                }
                map.values().for_each(|v| walk(v, pairs, depth + 1));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, pairs, depth + 1)),
            _ => {}
        }
    }
    let mut pairs = HashSet::new();
    walk(config, &mut pairs, 0);
    pairs
}

/// What a tf-keras `.keras` archive's config says of its weights' groups, which name neither
/// their layer nor their cell's class ([`tf_keras_keys`]).
#[derive(Default)]
pub(super) struct TfKerasKeys {
    /// Each layer group's key → its layer's name, both with their nested models' (`a/b`).
    pub names: HashMap<String, String>,
    /// The layers whose cell the config records as a `SimpleRNNCell` (a `SimpleRNN`, an
    /// `RNN(SimpleRNNCell)`, a `Bidirectional(SimpleRNN)`).
    pub simple: HashSet<String>,
}

/// tf-keras's `to_snake_case`, its two substitutions replayed: `(.)([A-Z][a-z]+)` → `\1_\2`,
/// then `([a-z])([A-Z])` → `\1_\2`, each left to right without overlaps; lower-cased;
/// `private` before a leading `_`.
fn snake_case(class: &str) -> String {
    let c: Vec<char> = class.chars().collect();
    let small = |ch: char| ch.is_ascii_lowercase();
    let mut first = String::new();
    let mut i = 0;
    while i < c.len() {
        if i + 2 < c.len() && c[i + 1].is_ascii_uppercase() && small(c[i + 2]) {
            let end = (i + 3..c.len()).find(|&j| !small(c[j])).unwrap_or(c.len());
            first.push(c[i]);
            first.push('_');
            first.extend(&c[i + 1..end]);
            i = end;
        } else {
            first.push(c[i]);
            i += 1;
        }
    }
    let c: Vec<char> = first.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        out.push(c[i]);
        if i + 1 < c.len() && c[i].is_ascii_lowercase() && c[i + 1].is_ascii_uppercase() {
            out.push('_');
            out.push(c[i + 1]);
            i += 2;
        } else {
            i += 1;
        }
    }
    let out = out.to_lowercase();
    if out.starts_with('_') {
        format!("private{out}")
    } else {
        out
    }
}

/// Whether a layer of a model's list is a model nested in it, whose own layers Keras lists
/// in its config (walked in place, named `{its name}/{layer}`).
fn is_model(layer: &Value) -> bool {
    matches!(
        layer["class_name"].as_str(),
        Some("Sequential" | "Functional" | "Model")
    )
}

/// Whether a file's `keras_version` is tf-keras's (2.x); Keras 3 writes 3.x.
fn written_by_keras2(version: Option<&str>) -> bool {
    version.is_some_and(|v| v.starts_with("2."))
}

/// Metadata key: the model's layers with weights that are not part of the RNN (the reader's
/// words, `name (Class)` or `name`); a file that records it is refused unless `--prefix` or
/// `--stack` picks the RNN.
pub const NOT_RUN: &str = "keras_not_run";
/// Metadata key: the dtypes the recurrent layers compute in where their dtype policy is not
/// float32, in words (`float16 (dtype policy mixed_float16)`).
pub(crate) const COMPUTE_DTYPE: &str = "keras_compute_dtype";

/// What to tell a user who computes in `dtype` a model whose file records another compute dtype
/// (a Keras dtype policy such as `mixed_float16`): the numbers differ from the framework's by
/// that rounding, so it is said, never silent. `None` when the file records none or `dtype` is
/// what it records.
pub fn compute_dtype_note(file: &TensorFile, dtype: candle_core::DType) -> Option<String> {
    use candle_core::DType;
    let recorded = file.metadata().get(COMPUTE_DTYPE)?;
    // Keras's names for the dtypes rnn computes in.
    let name = match dtype {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "float64",
        _ => "float32",
    };
    if recorded
        .split(", ")
        .all(|d| d.split(' ').next() == Some(name))
    {
        return None;
    }
    Some(format!(
        "{}: Keras computes layers of this model in {recorded}; rnn computes in {name}, so the \
         numbers differ from Keras's by that rounding (choose the dtype rnn computes in with \
         --dtype, or dtype= in Python)",
        file.path().display()
    ))
}

/// Metadata key: the RNN's layers, bottom first, as `--stack` prefixes.
pub const STACK: &str = "keras_stack";
/// The metadata key of whether the recorded stack's top layer returns every step (`true`) or
/// its last (`false`).
pub const RETURN_SEQUENCES: &str = "return_sequences";

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn file_with(recorded: &str) -> TensorFile {
        let metadata = HashMap::from([(COMPUTE_DTYPE.to_string(), recorded.to_string())]);
        TensorFile::from_tensors(Path::new("m.keras"), Default::default(), metadata)
    }

    /// tf-keras's `to_snake_case` on these names gave these (tf-keras 2.21).
    #[test]
    fn class_names_in_snake_case_as_tf_keras_writes_them() {
        for (class, snake) in [
            ("SimpleRNN", "simple_rnn"),
            ("TimeDistributed", "time_distributed"),
            ("SpatialDropout1D", "spatial_dropout1d"),
            ("GaussianNoise", "gaussian_noise"),
            ("InputLayer", "input_layer"),
            ("RNN", "rnn"),
            ("ABCDef", "abc_def"),
            ("Conv1DTranspose", "conv1d_transpose"),
            ("_Private", "private__private"),
            ("HTTPServer2Go", "http_server2_go"),
            ("A", "a"),
        ] {
            assert_eq!(snake_case(class), snake, "{class}");
        }
    }

    /// A class's later layers take `_1`, `_2`, … in the list's order, whatever their names; a
    /// nested model is refused.
    #[test]
    fn tf_keras_keys_follow_class_and_place() {
        let layer = |class: &str, name: &str| serde_json::json!({"class_name": class, "config": {"name": name}});
        let config = serde_json::json!({"config": {"layers": [
            layer("InputLayer", "input_1"),
            layer("SimpleRNN", "simple_rnn_7"),
            layer("Dense", "probabilities"),
            layer("SimpleRNN", "top"),
        ]}});
        let keys = tf_keras_keys(&config).unwrap();
        for (key, name) in [
            ("input_layer", "input_1"),
            ("simple_rnn", "simple_rnn_7"),
            ("dense", "probabilities"),
            ("simple_rnn_1", "top"),
        ] {
            assert_eq!(keys.names.get(key).map(String::as_str), Some(name), "{key}");
        }
        assert!(keys.simple.contains("top") && !keys.simple.contains("probabilities"));
        // A nested model's layers keyed inside its own group, named inside its own scope.
        let nested = serde_json::json!({"config": {"layers": [
            layer("SimpleRNN", "first"),
            {"class_name": "Sequential", "config": {"name": "encoder", "layers": [
                layer("InputLayer", "input_2"),
                layer("SimpleRNN", "simple_rnn_9"),
            ]}},
        ]}});
        let keys = tf_keras_keys(&nested).unwrap();
        for (key, name) in [
            ("simple_rnn", "first"),
            ("sequential", "encoder"),
            ("sequential/simple_rnn", "encoder/simple_rnn_9"),
        ] {
            assert_eq!(keys.names.get(key).map(String::as_str), Some(name), "{key}");
        }
        assert!(keys.simple.contains("encoder/simple_rnn_9"));
    }

    /// A cell counts as a SimpleRNN's by its config's class, whatever its name, and only in
    /// its own RNN layer.
    #[test]
    fn simple_cells_are_known_by_class_not_by_name() {
        let cell = |class: &str, name: &str| serde_json::json!({"class_name": class, "config": {"name": name}});
        let config = serde_json::json!({"config": {"layers": [
            {"class_name": "RNN", "config": {"name": "rnn", "cell": cell("SimpleRNNCell", "my_cell")}},
            {"class_name": "RNN", "config": {"name": "rnn_1", "cell": {
                "class_name": "StackedRNNCells",
                "config": {"cells": [cell("SimpleRNNCell", "a"), cell("GRUCell", "b")]},
            }}},
            {"class_name": "RNN", "config": {"name": "rnn_2", "cell": cell("GRUCell", "same")}},
            {"class_name": "TimeDistributed", "config": {"name": "td", "layer": cell("Dense", "c")}},
        ]}});
        let pairs = simple_cell_names(&config);
        let mut pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(l, c)| (l.as_str(), c.as_str()))
            .collect();
        pairs.sort_unstable();
        assert_eq!(pairs, [("rnn", "my_cell"), ("rnn_1", "a")]);
    }

    #[test]
    fn a_recorded_compute_dtype_is_said_unless_it_is_the_one_used() {
        let file = file_with("float16 (dtype policy mixed_float16)");
        let note = compute_dtype_note(&file, DType::F32).unwrap();
        assert!(
            note.contains("Keras computes layers of this model in float16")
                && note.contains("rnn computes in float32"),
            "{note}"
        );
        assert_eq!(compute_dtype_note(&file, DType::F16), None);
        let plain =
            TensorFile::from_tensors(Path::new("m.keras"), Default::default(), HashMap::new());
        assert_eq!(compute_dtype_note(&plain, DType::F32), None);
    }
}
