//! The graph that TF1's `tf.compat.v1.train.Saver` writes beside a checkpoint by default
//! (`PREFIX.meta`, a `MetaGraphDef`): the checkpoint holds a `BasicRNNCell`'s kernel and bias
//! only, and this graph is where its activation is recorded, as the op the cell applies
//! (`rnn/basic_rnn_cell/Relu`; under TF2's control flow, `basic_rnn_cell/Relu` in the while
//! loop's body, a function of the graph's library).

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;

use crate::error::{Result, WeightsError};

/// The most a `.meta` file may hold: a TF1 graph of a few cells is tens of kilobytes to a few
/// megabytes; decoded, its small messages take a few times their bytes.
const MAX_META: u64 = 64 << 20;

#[derive(Clone, PartialEq, prost::Message)]
struct MetaGraphDef {
    #[prost(message, optional, tag = "2")]
    graph_def: Option<GraphDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GraphDef {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeDef>,
    #[prost(message, optional, tag = "2")]
    library: Option<FunctionDefLibrary>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FunctionDefLibrary {
    #[prost(message, repeated, tag = "1")]
    function: Vec<FunctionDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FunctionDef {
    #[prost(message, repeated, tag = "3")]
    node_def: Vec<NodeDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeDef {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    op: String,
}

/// TensorFlow's activation ops and rnn's names for them; `None`: an activation rnn does not
/// compute.
fn activation(op: &str) -> Option<Option<&'static str>> {
    Some(match op {
        "Tanh" => Some("tanh"),
        "Relu" => Some("relu"),
        "Sigmoid" => Some("sigmoid"),
        "Elu" => Some("elu"),
        "Selu" => Some("selu"),
        "Softplus" => Some("softplus"),
        "Softsign" => Some("softsign"),
        "Relu6" | "LeakyRelu" | "Exp" | "Softmax" => None,
        _ => return None,
    })
}

/// The activation that the `BasicRNNCell`s of the checkpoint at `prefix` apply, as the graph
/// beside it records it (`PREFIX.meta`), where it is not `tanh` (the cell's default, which
/// rnn runs when nothing says otherwise). `Ok(None)` without a `.meta` file, or where its
/// cells apply tanh or none is found.
///
/// # Errors
/// When the `.meta` file does not decode or exceeds [`MAX_META`], when its cells apply
/// different activations (rnn takes one per layer from `--nonlinearity`), or one rnn does not
/// compute; each names the file and the ops.
pub(super) fn cell_activation(prefix: &Path) -> Result<Option<&'static str>> {
    let path = super::with_suffix(prefix, ".meta");
    if !path.is_file() {
        return Ok(None);
    }
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.clone(),
        kind: "TensorFlow MetaGraphDef (the graph saved beside the checkpoint)",
        reason,
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_META {
        return Err(malformed(format!(
            "expected at most {MAX_META} bytes, found {size}"
        )));
    }
    let bytes = crate::readers::read_regular_file(&path).map_err(|error| WeightsError::Io {
        path: path.clone(),
        error,
    })?;
    let meta = MetaGraphDef::decode(bytes.as_slice())
        .map_err(|e| malformed(format!("does not decode: {e}")))?;
    let Some(graph) = meta.graph_def else {
        return Ok(None);
    };
    let functions = graph.library.iter().flat_map(|l| &l.function);
    let nodes = graph.node.iter().chain(functions.flat_map(|f| &f.node_def));
    // Each activation op found in a cell's scope, with the first node that applies it.
    let mut found: BTreeMap<&str, &str> = BTreeMap::new();
    for node in nodes {
        let in_cell = node
            .name
            .split('/')
            .any(|part| part == "basic_rnn_cell" || part.starts_with("basic_rnn_cell_"));
        if in_cell && activation(&node.op).is_some() {
            found.entry(node.op.as_str()).or_insert(node.name.as_str());
        }
    }
    let listed = || {
        found
            .iter()
            .map(|(op, node)| format!("{op} (`{node}`)"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut ops = found.keys();
    let (Some(op), None) = (ops.next(), ops.next()) else {
        return match found.len() {
            0 => Ok(None),
            _ => Err(WeightsError::Unsupported {
                path: path.clone(),
                format: format!(
                    "a graph whose RNN cells apply different activations: {}",
                    listed()
                ),
                advice: "give each layer's with --nonlinearity (one per layer, comma-separated, \
                         bottom first)"
                    .into(),
            }),
        };
    };
    match activation(op).flatten() {
        Some("tanh") => Ok(None),
        Some(name) => Ok(Some(name)),
        None => Err(WeightsError::Unsupported {
            path: path.clone(),
            format: format!(
                "a graph whose RNN cells apply {}, an activation rnn does not compute",
                listed()
            ),
            advice: "see `rnn run --help` for the activations --nonlinearity takes".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.meta` beside `dir/ck` whose graph holds `nodes` (name, op), the second half in a
    /// library function as TF2's control flow puts a while loop's body.
    fn meta(dir: &Path, nodes: &[(&str, &str)]) -> std::path::PathBuf {
        let node = |&(name, op): &(&str, &str)| NodeDef {
            name: name.into(),
            op: op.into(),
        };
        let (main, body) = nodes.split_at(nodes.len() / 2);
        let graph = MetaGraphDef {
            graph_def: Some(GraphDef {
                node: main.iter().map(node).collect(),
                library: Some(FunctionDefLibrary {
                    function: vec![FunctionDef {
                        node_def: body.iter().map(node).collect(),
                    }],
                }),
            }),
        };
        let prefix = dir.join("ck");
        std::fs::write(dir.join("ck.meta"), graph.encode_to_vec()).unwrap();
        prefix
    }

    #[test]
    fn the_cells_activation_is_read_from_the_graph_beside_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cell_activation(&dir.path().join("none")).unwrap(), None);
        let relu = meta(
            dir.path(),
            &[("x/Relu", "Relu"), ("basic_rnn_cell/Relu", "Relu")],
        );
        assert_eq!(cell_activation(&relu).unwrap(), Some("relu"));
        let tanh = meta(
            dir.path(),
            &[("other/Relu", "Relu"), ("rnn/basic_rnn_cell/Tanh", "Tanh")],
        );
        assert_eq!(cell_activation(&tanh).unwrap(), None);
        let mixed = meta(
            dir.path(),
            &[
                ("rnn/multi_rnn_cell/cell_0/basic_rnn_cell/Relu", "Relu"),
                ("cell_1/basic_rnn_cell_1/Tanh", "Tanh"),
            ],
        );
        let error = cell_activation(&mixed).unwrap_err().to_string();
        assert!(error.contains("Relu") && error.contains("Tanh"), "{error}");
        assert!(error.contains("--nonlinearity"), "{error}");
        let six = meta(
            dir.path(),
            &[("a", "MatMul"), ("basic_rnn_cell/Relu6", "Relu6")],
        );
        let error = cell_activation(&six).unwrap_err().to_string();
        assert!(error.contains("Relu6"), "{error}");
        std::fs::write(dir.path().join("ck.meta"), b"\xff\xff\xff").unwrap();
        assert!(cell_activation(&dir.path().join("ck")).is_err());
    }
}
