//! ONNX models: every `RNN` node of the graph, with its attributes, as one stack under
//! PyTorch's canonical names.
//!
//! A graph runs as one model when its RNN nodes form one stack joined only by the glue that
//! `torch.onnx.export(..., dynamo=False)` writes: the first node fed by a graph input (or its
//! `Transpose` perm `[1, 0, 2]`, batch-first), each next node fed by the one before through
//! `Transpose` perm `[0, 2, 1, 3]` and `Reshape` to `[0, 0, -1]` (bidirectional) or
//! `Squeeze` of axis 1 (one direction), and an initial state of zeros built from the input's
//! `Shape` (`Expand` or `ConstantOfShape`, sliced per layer) or one graph input `h0` sliced
//! per layer (rows `l·D..(l+1)·D`). Any other op between or around the nodes is refused by
//! name, and so is every attribute whose meaning `rnn` does not share exactly.
//!
//! A graph without RNN nodes is read as the default (dynamo) exporter's unrolled `nn.RNN`
//! (`unrolled.rs`): lifted where every node is part of one recurrence, else refused naming
//! the first node that is not. A graph of `Loop` nodes is read as tf2onnx's Keras SimpleRNN
//! (`looped.rs`), each body proven one step of the cell.
//!
//! `initial_h` and `sequence_lens` given as initialisers are part of the model: they are read
//! as the tensors `h0` and `lengths` and the metadata key `model_inputs` names them, so that
//! runs take them from the model and refuse inputs that contradict them. Given as graph
//! inputs, they are inputs like any other: the user passes `h0` and `lengths` at run time.
//!
//! # Sequences of length 0
//!
//! `rnn` gives a sequence of length 0 its initial state as final state (TensorFlow's
//! convention, and the state at its last valid step read literally); ONNX Runtime gives 0.
//! The two agree whenever the initial state is zero. A model whose initialisers fix both a
//! nonzero `initial_h` and a length of 0 is refused, and so are inputs given at run time
//! that do (the metadata key `zero_length_state` marks the model for `crate::Model::prepare`).

mod attributes;
mod convert;
mod graph;
mod looped;
pub(crate) mod proto;
mod tensor;
#[cfg(test)]
mod tests;
mod unrolled;
mod whole;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;
use prost::Message;

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

use graph::Reader;
pub(crate) use unrolled::UNROLLED;

/// Reads the RNN nodes of an ONNX model.
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let decoded = proto::decoded_size(bytes).map_err(|e| malformed(path, e))?;
    let budget = 8 * bytes.len() as u64 + (64 << 20);
    if decoded > budget {
        return Err(malformed(
            path,
            format!(
                "decoded, its messages would take about {decoded} bytes, more than 8 per byte \
                 of the file plus 64 MiB ({budget}): a graph of very many small nodes, \
                 attributes or initialisers, more than rnn reads"
            ),
        ));
    }
    let model = proto::Model::decode(bytes).map_err(|e| WeightsError::Malformed {
        path: path.to_owned(),
        kind: "ONNX",
        reason: e.to_string(),
    })?;
    let Some(graph) = &model.graph else {
        return Err(malformed(path, "a model without a graph".into()));
    };
    // The weights may lie in files beside the model (external data); they count toward what
    // the model may name, each file once.
    let mut external: std::collections::BTreeMap<std::path::PathBuf, u64> = Default::default();
    for t in &graph.initializer {
        let location = t.external_data.iter().find(|e| e.key == "location");
        if let Some(file) = location.and_then(|l| tensor::external_file(path, &l.value).ok()) {
            let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            external.insert(file, len);
        }
    }
    let described = bytes.len() as u64 + external.values().sum::<u64>();
    // The default domain's version (ONNX's 1 where the model names none).
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version);
    let reader = Reader::new(
        path,
        graph,
        usize::try_from(described).unwrap_or(usize::MAX),
        opset,
    );
    let ((mut tensors, mut metadata, recorded), program) = reader.read()?;
    let producer = format!("{} {}", model.producer_name, model.producer_version);
    metadata.insert("producer".into(), producer.trim().to_string());
    // Tensors of the graph, named as rnn names them; sorted for stable messages.
    let tensors: BTreeMap<String, Tensor> = std::mem::take(&mut tensors).into_iter().collect();
    let graph = program.map(crate::config::Graph::onnx);
    Ok(TensorFile::from_tensors(path, tensors, metadata)
        .with_recorded(recorded)
        .with_graph(graph))
}

fn malformed(path: &Path, reason: String) -> WeightsError {
    WeightsError::Malformed {
        path: path.to_owned(),
        kind: "ONNX",
        reason,
    }
}

fn refuse(path: &Path, format: String, advice: &str) -> WeightsError {
    WeightsError::Unsupported {
        path: path.to_owned(),
        format,
        advice: advice.into(),
    }
}

const EXPORT_RNN_ALONE: &str = "export the nn.RNN alone (torch.onnx.export(rnn, ..., \
                                dynamo=False)), or save its state_dict";

/// How messages name a node: its operator, and its name where the exporter gave one.
fn node_name(node: &proto::Node) -> String {
    if node.name.is_empty() {
        format!("{} node", node.op_type)
    } else {
        format!("{} node `{}`", node.op_type, node.name)
    }
}
