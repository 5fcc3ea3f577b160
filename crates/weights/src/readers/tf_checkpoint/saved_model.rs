//! A tf-keras SavedModel (`model.save("dir")` of tf-keras, Keras 2): its `variables/`
//! checkpoint names every variable by number (`variables/3/.ATTRIBUTES/VARIABLE_VALUE`); the
//! checkpoint's object graph (`_CHECKPOINTABLE_OBJECT_GRAPH`, a `TrackableObjectGraph`) ties
//! each to the objects that hold it (`root → layer_with_weights-0 → cell → kernel`), and
//! `keras_metadata.pb` beside `variables/` (a `SavedMetadata`) gives each object's Keras name
//! and class and the model's config. The variables are named as tf-keras's `.h5` names them
//! (`simple_rnn/simple_rnn_cell/kernel`) and the config read as that file's `model_config`.
//!
//! Keras 3's `model.export("dir")` writes no `keras_metadata.pb`: its variables are tied to no
//! layer rnn can name, and it is refused with what to save instead.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

use candle_core::Tensor;
use prost::Message;
use serde_json::Value;

use crate::error::{Result, WeightsError};

/// The most `keras_metadata.pb` may hold (a few kilobytes of JSON per layer).
const MAX_METADATA: u64 = 8 << 20;
/// The most the object graph may hold: decoded, its many small messages take up to about 16
/// times their bytes.
pub(super) const MAX_OBJECT_GRAPH: usize = 4 << 20;

#[derive(Clone, PartialEq, prost::Message)]
struct TrackableObjectGraph {
    #[prost(message, repeated, tag = "1")]
    nodes: Vec<TrackableObject>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TrackableObject {
    #[prost(message, repeated, tag = "1")]
    children: Vec<ObjectReference>,
    #[prost(message, repeated, tag = "2")]
    attributes: Vec<SerializedTensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ObjectReference {
    #[prost(int32, tag = "1")]
    node_id: i32,
    #[prost(string, tag = "2")]
    local_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SerializedTensor {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "3")]
    checkpoint_key: String,
}

/// The deepest a variable may lie below the root: Keras's are 3 to 5 objects deep, and models
/// nested in models add one or two each.
const MAX_DEPTH: usize = 32;

/// `keras_metadata.pb`.
#[derive(Clone, PartialEq, prost::Message)]
struct SavedMetadata {
    #[prost(message, repeated, tag = "1")]
    nodes: Vec<SavedObject>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SavedObject {
    #[prost(string, tag = "3")]
    node_path: String,
    #[prost(string, tag = "5")]
    metadata: String,
}

/// The Keras metadata file of the SavedModel whose variables' prefix is `prefix`
/// (`DIR/variables/variables` → `DIR/keras_metadata.pb`), where there is one.
pub(super) fn keras_metadata_beside(prefix: &Path) -> Option<std::path::PathBuf> {
    if prefix.file_name()? != "variables" {
        return None;
    }
    let dir = prefix.parent()?.parent()?;
    let path = dir.join("keras_metadata.pb");
    path.is_file().then_some(path)
}

/// The variables under tf-keras's names, the reader's notes as metadata, and the model's
/// configuration.
type Named = (
    BTreeMap<String, Tensor>,
    HashMap<String, String>,
    crate::Recorded,
    Option<crate::Graph>,
);

/// The variables named as tf-keras's `.h5` names them, with the notes and configuration the
/// model's config gives.
pub(super) fn keras_names(
    index: &Path,
    object_graph: &[u8],
    metadata_path: &Path,
    tensors: BTreeMap<String, Tensor>,
) -> Result<Named> {
    let malformed = |kind: &'static str, path: &Path, reason: String| WeightsError::Malformed {
        path: path.to_owned(),
        kind,
        reason,
    };
    let graph = TrackableObjectGraph::decode(object_graph).map_err(|e| {
        malformed(
            "TensorFlow checkpoint index",
            index,
            format!("the object graph does not decode: {e}"),
        )
    })?;
    let size = std::fs::metadata(metadata_path)
        .map(|m| m.len())
        .unwrap_or(0);
    if size > MAX_METADATA {
        return Err(malformed(
            "Keras SavedModel metadata",
            metadata_path,
            format!("expected at most {MAX_METADATA} bytes, found {size}"),
        ));
    }
    let bytes =
        crate::readers::read_regular_file(metadata_path).map_err(|error| WeightsError::Io {
            path: metadata_path.to_owned(),
            error,
        })?;
    let saved = SavedMetadata::decode(bytes.as_slice()).map_err(|e| {
        malformed(
            "Keras SavedModel metadata",
            metadata_path,
            format!("does not decode: {e}"),
        )
    })?;
    let objects: HashMap<&str, &str> = saved
        .nodes
        .iter()
        .map(|n| (n.node_path.as_str(), n.metadata.as_str()))
        .collect();
    let json = |path: &str| -> Result<Option<Value>> {
        match objects.get(path) {
            None => Ok(None),
            Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                malformed(
                    "Keras SavedModel metadata",
                    metadata_path,
                    format!("the metadata of `{path}` is not JSON: {e}"),
                )
            }),
        }
    };
    let paths = variable_paths(&graph, Root::Model);
    // Each object's Keras name and class, read once.
    let mut described: HashMap<String, (String, String)> = HashMap::new();
    let mut renamed = BTreeMap::new();
    // Each layer with weights: whether it is recurrent, and its tensors.
    let mut layers: Vec<(String, bool, Vec<String>)> = Vec::new();
    for (key, tensor) in tensors {
        if training_state(&key) {
            continue;
        }
        if let Some(layer) = stateful_state(&key) {
            // A stateful RNN's state between calls: zeros until the model has run, and a
            // reloaded tf-keras model starts from what is stored. rnn starts from zeros, so a
            // state of zeros is what it runs anyway; any other is refused.
            let zero = tensor
                .abs()
                .and_then(|a| a.max_all())
                .and_then(|m| m.to_dtype(candle_core::DType::F64))
                .and_then(|m| m.to_scalar::<f64>())
                .is_ok_and(|m| m == 0.0);
            if zero {
                continue;
            }
            return Err(WeightsError::Unsupported {
                path: index.to_owned(),
                format: format!(
                    "a stateful RNN whose SavedModel stores a state that is not zeros \
                     (`{layer}/keras_api/states`), from which tf-keras's reloaded model goes on \
                     (rnn starts from zeros or the h0 given)"
                ),
                advice: "call model.reset_states() before model.save, or give the state as \
                         h0"
                .into(),
            });
        }
        let Some(path) = paths.get(key.as_str()) else {
            return Err(malformed(
                "TensorFlow checkpoint index",
                index,
                format!(
                    "the object graph ties `{key}` to no layer (layer_with_weights-K) of the \
                     model"
                ),
            ));
        };
        let mut names = Vec::new();
        let mut layer: Option<String> = None;
        for depth in 1..path.len() {
            let object = format!("root.{}", path[..depth].join("."));
            if !described.contains_key(&object) {
                let Some(meta) = json(&object)? else {
                    return Err(malformed(
                        "Keras SavedModel metadata",
                        metadata_path,
                        format!("expected the object `{object}`, which holds `{key}`"),
                    ));
                };
                let field = |f: &str| {
                    meta.get(f)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                described.insert(object.clone(), (field("name"), field("class_name")));
            }
            let (name, class) = &described[&object];
            names.push(name.clone());
            if layer.is_none() && matches!(class.as_str(), "SimpleRNN" | "Bidirectional" | "RNN") {
                layer = Some(names.join("/"));
            }
        }
        let var = path.last().map_or("", String::as_str);
        let recurrent = layer.is_some();
        let layer = layer.unwrap_or_else(|| names.first().cloned().unwrap_or_default());
        let name = format!("{}/{var}", names.join("/"));
        match layers.iter_mut().find(|(l, ..)| *l == layer) {
            Some((.., weights)) => weights.push(name.clone()),
            None => layers.push((layer, recurrent, vec![name.clone()])),
        }
        renamed.insert(name, tensor);
    }
    // A layer's tensors in Keras's order (its kernel or table, then its bias), as an HDF5 file
    // lists them; the checkpoint's keys come sorted by name.
    let rank = |name: &String| match name.rsplit('/').next() {
        Some("kernel" | "embeddings") => 0,
        Some("recurrent_kernel") => 1,
        Some("bias") => 2,
        _ => 3,
    };
    for (.., weights) in &mut layers {
        weights.sort_by_key(|w| (rank(w), w.clone()));
    }
    let root = json("root")?.unwrap_or(Value::Null);
    let Some(config) = root.get("model_config") else {
        return Err(malformed(
            "Keras SavedModel metadata",
            metadata_path,
            "expected the model's config (`model_config` of the object `root`), found none".into(),
        ));
    };
    let (metadata, recorded, graph) = crate::readers::keras::config_metadata(config, &layers)
        .map_err(|e| malformed("Keras SavedModel metadata", metadata_path, e))?;
    Ok((renamed, metadata, recorded, graph))
}

/// Whether `key` is training state that a compiled model's SavedModel stores beside the
/// model: its optimizer's variables (`optimizer/_iterations`, `optimizer/_variables/3`, the
/// slots) and its compiled metrics' (`keras_api/metrics/0/count`), none of which the forward
/// pass reads. tf-keras writes them whenever the model was compiled (`include_optimizer=False`
/// drops the optimizer's only).
fn training_state(key: &str) -> bool {
    key.starts_with("optimizer/") || key.starts_with("keras_api/metrics/")
}

/// The object holding a stateful RNN's state variable (`layer_with_weights-0` of
/// `layer_with_weights-0/keras_api/states/0/.ATTRIBUTES/VARIABLE_VALUE`), where `key` is one.
fn stateful_state(key: &str) -> Option<&str> {
    let object = key.strip_suffix("/.ATTRIBUTES/VARIABLE_VALUE")?;
    let (holder, index) = object.rsplit_once("/keras_api/states/")?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then_some(holder)
}

/// What the object graph's root is.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Root {
    /// A SavedModel's: the Keras model itself.
    Model,
    /// A `tf.train.Checkpoint(model=…, optimizer=…)`'s: objects the user named, of which
    /// `optimizer` (and `save_counter`) hold no layer.
    Checkpoint,
}

/// A `tf.train.Checkpoint`'s variables that its object graph ties to a Keras model under
/// another key (Keras 3 with an optimizer: `optimizer/_trainable_variables/0` is the model's
/// `model/_functional/_operations/1/cell/kernel`): checkpoint key → the key of that path.
pub(super) fn model_keys(index: &Path, object_graph: &[u8]) -> Result<HashMap<String, String>> {
    let graph =
        TrackableObjectGraph::decode(object_graph).map_err(|e| WeightsError::Malformed {
            path: index.to_owned(),
            kind: "TensorFlow checkpoint index",
            reason: format!("the object graph does not decode: {e}"),
        })?;
    Ok(variable_paths(&graph, Root::Checkpoint)
        .into_iter()
        .map(|(key, path)| {
            let keyed = format!("{}/.ATTRIBUTES/VARIABLE_VALUE", path.join("/"));
            (key.to_string(), keyed)
        })
        .filter(|(key, keyed)| key != keyed)
        .collect())
}

/// Each variable's checkpoint key → the local names from the root to it through the objects
/// of a Keras model only (its layers `layer_with_weights-K` or Keras 3's
/// `_functional/_operations/K` and `_layers/K`, cells, a `Bidirectional`'s two layers): the
/// shortest such path, each object visited once. TensorFlow keys each variable by its shortest
/// path through any objects (`variables/3`, `optimizer/_trainable_variables/3`), which says
/// nothing about its layer.
fn variable_paths(graph: &TrackableObjectGraph, root: Root) -> HashMap<&str, Vec<String>> {
    let mut paths = HashMap::new();
    let mut seen = vec![false; graph.nodes.len()];
    let mut queue = VecDeque::from([(0usize, Vec::<String>::new())]);
    if let Some(s) = seen.first_mut() {
        *s = true;
    }
    while let Some((id, path)) = queue.pop_front() {
        let Some(node) = graph.nodes.get(id).filter(|_| path.len() < MAX_DEPTH) else {
            continue;
        };
        for child in &node.children {
            let Some(target) = usize::try_from(child.node_id)
                .ok()
                .filter(|&t| t < graph.nodes.len())
            else {
                continue;
            };
            let mut next = path.clone();
            next.push(child.local_name.clone());
            let variable = graph.nodes[target]
                .attributes
                .iter()
                .find(|a| a.name == "VARIABLE_VALUE");
            if let Some(variable) = variable {
                paths
                    .entry(variable.checkpoint_key.as_str())
                    .or_insert(next);
                continue;
            }
            let name = child.local_name.as_str();
            let list = path
                .last()
                .is_some_and(|p| matches!(p.as_str(), "_operations" | "_layers" | "layers"));
            let through = name.starts_with("layer_with_weights-")
                || matches!(
                    name,
                    "cell"
                        | "layer"
                        | "forward_layer"
                        | "backward_layer"
                        | "_functional"
                        | "_operations"
                        | "_layers"
                        | "layers"
                )
                || (list && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()))
                || (root == Root::Checkpoint
                    && path.is_empty()
                    && !matches!(name, "optimizer" | "save_counter"));
            if through && !seen[target] {
                seen[target] = true;
                queue.push_back((target, next));
            }
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object: its children (id, local name), and its checkpoint key if it is a variable.
    type Object<'a> = (Vec<(usize, &'a str)>, Option<&'a str>);

    /// Nodes `(children (id, local name), checkpoint key of a variable)`, in id order.
    fn graph(nodes: &[Object]) -> TrackableObjectGraph {
        let nodes = nodes
            .iter()
            .map(|(children, key)| TrackableObject {
                children: children
                    .iter()
                    .map(|(id, name)| ObjectReference {
                        node_id: *id as i32,
                        local_name: (*name).into(),
                    })
                    .collect(),
                attributes: key
                    .iter()
                    .map(|k| SerializedTensor {
                        name: "VARIABLE_VALUE".into(),
                        checkpoint_key: (*k).into(),
                    })
                    .collect(),
            })
            .collect();
        TrackableObjectGraph { nodes }
    }

    /// root → layer_with_weights-0 → cell → kernel, with the numbered list beside it.
    #[test]
    fn variables_are_named_by_the_path_through_layers_and_cells() {
        let graph = graph(&[
            (vec![(1, "variables"), (2, "layer_with_weights-0")], None),
            (vec![(4, "0")], None),
            (vec![(3, "cell")], None),
            (vec![(4, "kernel")], None),
            (vec![], Some("variables/0/.ATTRIBUTES/VARIABLE_VALUE")),
        ]);
        let paths = variable_paths(&graph, Root::Model);
        assert_eq!(
            paths["variables/0/.ATTRIBUTES/VARIABLE_VALUE"],
            ["layer_with_weights-0", "cell", "kernel"]
        );
    }

    /// Objects that name each other in a cycle, and a chain deeper than any Keras model: each
    /// object is visited once and nothing below depth 32 is named.
    #[test]
    fn cycles_and_deep_chains_end() {
        let mut nodes: Vec<Object> = (0..1000)
            .map(|i| (vec![(i + 1, "cell"), (0, "cell")], None))
            .collect();
        nodes.push((vec![], Some("deep")));
        assert!(variable_paths(&graph(&nodes), Root::Model).is_empty());
        // The same variable 31 objects down is named.
        let mut nodes: Vec<Object> = (0..31).map(|i| (vec![(i + 1, "cell")], None)).collect();
        nodes.push((vec![], Some("shallow")));
        assert_eq!(
            variable_paths(&graph(&nodes), Root::Model)["shallow"].len(),
            31
        );
    }

    /// A checkpoint's root names the model and its optimizer; the model's kernel is keyed
    /// through the optimizer (the shorter path) and found through the model's layers.
    #[test]
    fn a_checkpoint_finds_the_model_path_not_the_optimizers() {
        let key = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE";
        let graph = graph(&[
            (vec![(1, "model"), (2, "optimizer")], None),
            (vec![(3, "_functional"), (2, "optimizer")], None),
            (vec![(6, "_trainable_variables")], None),
            (vec![(4, "_operations")], None),
            (vec![(5, "1")], None),
            (vec![(7, "cell")], None),
            (vec![(8, "0")], None),
            (vec![(8, "kernel")], None),
            (vec![], Some(key)),
        ]);
        let paths = variable_paths(&graph, Root::Checkpoint);
        assert_eq!(
            paths[key].join("/"),
            "model/_functional/_operations/1/cell/kernel"
        );
        assert!(variable_paths(&graph, Root::Model).is_empty());
    }
}
