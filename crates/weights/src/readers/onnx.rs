//! ONNX models: every `RNN` node of the graph, with its attributes, as one stack under
//! PyTorch's canonical names.
//!
//! A graph runs as one model when its RNN nodes form one stack joined only by the glue that
//! `torch.onnx.export(..., dynamo=False)` writes: the first node fed by a graph input (or its
//! `Transpose` perm `[1, 0, 2]`, batch-first), each next node fed by the one before through
//! `Transpose` perm `[0, 2, 1, 3]` and `Reshape` to `[0, 0, -1]` (bidirectional) or
//! `Squeeze` of axis 1 (one direction), and a zero initial state built by `Expand` from the
//! input's `Shape`. Any other op between or around the nodes is refused by name, and so is
//! every attribute whose meaning `rnn` does not share exactly.
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
//! nonzero `initial_h` and a length of 0 is refused; lengths given at run time follow `rnn`'s
//! convention.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use prost::Message;
use rnn_core::{Nonlinearity, Param};

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

/// The subset of `onnx.proto` (onnx 1.x, field numbers as published) this reader needs;
/// every other field is skipped by the decoder.
mod proto {
    /// `ModelProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Model {
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<Graph>,
    }

    /// `GraphProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Graph {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<Node>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfo>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfo>,
    }

    /// `NodeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Node {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<Attribute>,
        #[prost(string, tag = "7")]
        pub domain: String,
    }

    /// `AttributeProto` (without subgraphs: an op that carries one is refused anyway).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Attribute {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        #[prost(float, repeated, tag = "7")]
        pub floats: Vec<f32>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    /// `TensorProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
        #[prost(message, repeated, tag = "13")]
        pub external_data: Vec<StringStringEntry>,
        #[prost(int32, tag = "14")]
        pub data_location: i32,
    }

    /// `StringStringEntryProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntry {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `ValueInfoProto` (its name only).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfo {
        #[prost(string, tag = "1")]
        pub name: String,
    }
}

use proto::{Graph, Node, TensorProto};

/// Ops that may join the RNN nodes of a stack (shape bookkeeping, as the exporter writes it).
const GLUE: [&str; 12] = [
    "Transpose",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Slice",
    "Shape",
    "Gather",
    "Constant",
    "ConstantOfShape",
    "Expand",
    "Identity",
];

/// Reads the RNN nodes of an ONNX model.
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let model = proto::Model::decode(bytes).map_err(|e| WeightsError::Malformed {
        path: path.to_owned(),
        kind: "ONNX",
        reason: e.to_string(),
    })?;
    let Some(graph) = &model.graph else {
        return Err(malformed(path, "a model without a graph".into()));
    };
    let reader = Reader::new(path, graph);
    let (mut tensors, mut metadata) = reader.read()?;
    let producer = format!("{} {}", model.producer_name, model.producer_version);
    metadata.insert("producer".into(), producer.trim().to_string());
    // Tensors of the graph, named as rnn names them; sorted for stable messages.
    let tensors: BTreeMap<String, Tensor> = std::mem::take(&mut tensors).into_iter().collect();
    Ok(TensorFile::from_tensors(path, tensors, metadata))
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

/// Where a node's `initial_h` or `sequence_lens` comes from.
enum Feed<'g> {
    Absent,
    /// A zero state made by `Expand` of a zero `Constant` (the exporter's `h0=None`).
    Zero,
    Initializer(&'g TensorProto),
    GraphInput,
}

struct Reader<'g> {
    path: &'g Path,
    graph: &'g Graph,
    /// Output name → the node that produces it.
    producer: HashMap<&'g str, &'g Node>,
    initializers: HashMap<&'g str, &'g TensorProto>,
    inputs: Vec<&'g str>,
}

impl<'g> Reader<'g> {
    fn new(path: &'g Path, graph: &'g Graph) -> Self {
        let mut producer = HashMap::new();
        for node in &graph.node {
            for output in &node.output {
                producer.insert(output.as_str(), node);
            }
        }
        let initializers: HashMap<&str, &TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let inputs = graph
            .input
            .iter()
            .map(|v| v.name.as_str())
            .filter(|n| !initializers.contains_key(n))
            .collect();
        Self {
            path,
            graph,
            producer,
            initializers,
            inputs,
        }
    }

    fn node_name(node: &Node) -> String {
        if node.name.is_empty() {
            format!("{} node", node.op_type)
        } else {
            format!("{} node `{}`", node.op_type, node.name)
        }
    }

    fn read(&self) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
        let rnns: Vec<&Node> = self
            .graph
            .node
            .iter()
            .filter(|n| n.op_type == "RNN" && (n.domain.is_empty() || n.domain == "ai.onnx"))
            .collect();
        if rnns.is_empty() {
            let mut ops: Vec<&str> = self.graph.node.iter().map(|n| n.op_type.as_str()).collect();
            ops.sort_unstable();
            ops.dedup();
            return Err(refuse(
                self.path,
                format!(
                    "an ONNX graph without an RNN node (its ops: {})",
                    if ops.is_empty() {
                        "none".into()
                    } else {
                        ops.join(", ")
                    }
                ),
                "torch.onnx.export's default (dynamo) exporter unrolls nn.RNN into such ops: \
                 export with torch.onnx.export(..., dynamo=False), or save the state_dict",
            ));
        }
        for node in &self.graph.node {
            let glue = GLUE.contains(&node.op_type.as_str()) && node.domain.is_empty();
            if node.op_type == "RNN" && (node.domain.is_empty() || node.domain == "ai.onnx") {
                continue;
            }
            let gather_on_shape = node.op_type != "Gather"
                || node
                    .input
                    .first()
                    .and_then(|i| self.producer.get(i.as_str()))
                    .is_some_and(|p| p.op_type == "Shape");
            if !glue || !gather_on_shape {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX graph with a {} between or around its RNN nodes",
                        Self::node_name(node)
                    ),
                    EXPORT_RNN_ALONE,
                ));
            }
        }
        let stack = self.order(&rnns)?;
        let mut tensors = HashMap::new();
        let mut metadata = HashMap::new();
        let mut nonlinearities: Vec<Vec<Nonlinearity>> = Vec::new();
        let mut clips = Vec::new();
        let mut reversed = Vec::new();
        let mut h0s = Vec::new();
        let mut lens: Vec<Feed> = Vec::new();
        let mut batch_first = false;
        let mut directions = 0;
        for (k, (node, path)) in stack.iter().enumerate() {
            let attrs = Attributes::new(self.path, node)?;
            let (d, reverse) = attrs.directions()?;
            reversed.push(reverse);
            if k == 0 {
                batch_first = self.first_path(node, path)?;
            } else {
                self.between_path(node, path, directions)?;
            }
            directions = d;
            let layout = attrs.int("layout", 0);
            if layout != 0 && (stack.len() > 1 || batch_first) {
                return Err(self.attribute(node, "layout", &layout.to_string()));
            }
            if layout == 1 {
                batch_first = true;
            }
            nonlinearities.push(attrs.nonlinearities(d)?);
            clips.push(attrs.clip()?);
            let w = self.weight(node, 1, "W")?;
            let r = self.weight(node, 2, "R")?;
            let b = self.optional_weight(node, 3, "B")?;
            let hidden = r.dims().get(1).copied().unwrap_or(0);
            let expect = |t: &Tensor, what: &str, shape: &[usize]| {
                if t.dims() != shape
                    && !(what == "W" && t.rank() == 3 && t.dims()[..2] == shape[..2])
                {
                    return Err(WeightsError::Shape {
                        path: self.path.to_owned(),
                        name: format!("{what} of {}", Self::node_name(node)),
                        expected: format!("{shape:?} (directions, hidden_size, ...)"),
                        found: t.dims().to_vec(),
                    });
                }
                Ok(())
            };
            expect(&r, "R", &[d, hidden, hidden])?;
            expect(&w, "W", &[d, hidden, 0])?;
            if let Some(b) = &b {
                expect(b, "B", &[d, 2 * hidden])?;
            }
            let declared = attrs.int("hidden_size", hidden as i64);
            if declared != hidden as i64 {
                return Err(self.attribute(node, "hidden_size", &declared.to_string()));
            }
            let tensor_error = |error| WeightsError::Tensor {
                path: self.path.to_owned(),
                error,
            };
            for dir in 0..d {
                let suffix = if dir == 1 { "_reverse" } else { "" };
                let mut put = |kind: &str, t: candle_core::Result<Tensor>| -> Result<()> {
                    let t = t.and_then(|t| t.contiguous()).map_err(tensor_error)?;
                    tensors.insert(format!("{kind}_l{k}{suffix}"), t);
                    Ok(())
                };
                put("weight_ih", w.get(dir))?;
                put("weight_hh", r.get(dir))?;
                if let Some(b) = &b {
                    put("bias_ih", b.get(dir).and_then(|b| b.narrow(0, 0, hidden)))?;
                    put(
                        "bias_hh",
                        b.get(dir).and_then(|b| b.narrow(0, hidden, hidden)),
                    )?;
                }
            }
            h0s.push(self.feed(node, 5, "initial_h")?);
            lens.push(self.feed(node, 4, "sequence_lens")?);
        }
        let forward: Vec<String> = nonlinearities.iter().map(|n| n[0].to_string()).collect();
        let reverse: Vec<String> = nonlinearities
            .iter()
            .map(|n| n[n.len() - 1].to_string())
            .collect();
        metadata.insert("nonlinearity".into(), forward.join(","));
        if reverse != forward {
            metadata.insert("nonlinearity_reverse".into(), reverse.join(","));
        }
        if clips.iter().any(Option::is_some) {
            let clips: Vec<String> = clips
                .iter()
                .map(|c| c.map_or("none".into(), |c| c.to_string()))
                .collect();
            metadata.insert("clip".into(), clips.join(","));
        }
        if reversed.contains(&true) {
            let values: Vec<String> = reversed.iter().map(bool::to_string).collect();
            metadata.insert("reverse".into(), values.join(","));
        }
        metadata.insert("batch_first".into(), batch_first.to_string());
        let mut fixed = Vec::new();
        if let Some(h0) = self.initial_state(&stack, &h0s)? {
            tensors.insert("h0".into(), h0);
            fixed.push("h0");
        }
        if let Some(lengths) = self.lengths(&stack, &lens)? {
            if let Some(h0) = tensors.get("h0") {
                let nonzero = h0
                    .abs()
                    .and_then(|a| a.max_all())
                    .and_then(|m| m.to_dtype(DType::F64))
                    .and_then(|m| m.to_scalar::<f64>())
                    .map_err(|error| WeightsError::Tensor {
                        path: self.path.to_owned(),
                        error,
                    })?
                    > 0.0;
                let empty = lengths
                    .to_vec1::<i64>()
                    .map_err(|error| WeightsError::Tensor {
                        path: self.path.to_owned(),
                        error,
                    })?
                    .contains(&0);
                if nonzero && empty {
                    return Err(refuse(
                        self.path,
                        "an ONNX RNN whose initialisers fix a nonzero initial_h and a \
                         sequence_lens of 0 (ONNX Runtime gives such a sequence a final state \
                         of 0, rnn its initial state)"
                            .into(),
                        "drop the empty sequence, or give initial_h at run time",
                    ));
                }
            }
            tensors.insert("lengths".into(), lengths);
            fixed.push("lengths");
        }
        if !fixed.is_empty() {
            metadata.insert("model_inputs".into(), fixed.join(","));
        }
        Ok((tensors, metadata))
    }

    fn attribute(&self, node: &Node, name: &str, value: &str) -> WeightsError {
        refuse(
            self.path,
            format!("an ONNX {} with {name}={value}", Self::node_name(node)),
            EXPORT_RNN_ALONE,
        )
    }

    /// The RNN nodes in stack order, each with the glue nodes between its `X` and the node
    /// (or graph input) before it, nearest first.
    fn order(&self, rnns: &[&'g Node]) -> Result<Vec<(&'g Node, Vec<&'g Node>)>> {
        let mut by_source: HashMap<Option<&str>, (&Node, Vec<&Node>)> = HashMap::new();
        for &node in rnns {
            let x = node.input.first().map(String::as_str).unwrap_or("");
            let (source, path) = self.trace(x)?;
            let key = source.map(|s| s.output.first().map(String::as_str).unwrap_or(""));
            if key.is_none() && !self.inputs.contains(&self.origin(x, &path)) {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX graph whose {} is fed by `{}`, neither a graph input nor an \
                         RNN",
                        Self::node_name(node),
                        self.origin(x, &path)
                    ),
                    EXPORT_RNN_ALONE,
                ));
            }
            if by_source.insert(key, (node, path)).is_some() {
                return Err(refuse(
                    self.path,
                    "an ONNX graph whose RNN nodes do not form one stack (two read the same \
                     input)"
                        .into(),
                    EXPORT_RNN_ALONE,
                ));
            }
        }
        let mut stack = Vec::new();
        let mut key: Option<&str> = None;
        while let Some((node, path)) = by_source.remove(&key) {
            key = Some(node.output.first().map(String::as_str).unwrap_or(""));
            stack.push((node, path));
        }
        if !by_source.is_empty() || stack.is_empty() {
            return Err(refuse(
                self.path,
                "an ONNX graph whose RNN nodes do not form one stack".into(),
                EXPORT_RNN_ALONE,
            ));
        }
        Ok(stack)
    }

    /// Follows `name` back through glue nodes (their first input) to an RNN node's output
    /// (`Some`) or to a value no node produces (`None`): the glue nodes on the way, nearest
    /// first.
    fn trace(&self, name: &str) -> Result<(Option<&'g Node>, Vec<&'g Node>)> {
        let mut path = Vec::new();
        let mut name = name;
        while let Some(&node) = self.producer.get(name) {
            if node.op_type == "RNN" {
                if node.output.first().map(String::as_str) != Some(name) {
                    return Err(refuse(
                        self.path,
                        format!(
                            "an ONNX graph whose RNN reads the final state `{name}` of the {} \
                             as its input",
                            Self::node_name(node)
                        ),
                        EXPORT_RNN_ALONE,
                    ));
                }
                return Ok((Some(node), path));
            }
            if path.len() > self.graph.node.len() {
                return Err(malformed(self.path, "a cycle in the graph".into()));
            }
            path.push(node);
            name = node.input.first().map(String::as_str).unwrap_or("");
        }
        Ok((None, path))
    }

    fn origin<'a>(&self, x: &'a str, path: &[&'a Node]) -> &'a str {
        path.last()
            .and_then(|n| n.input.first())
            .map(String::as_str)
            .unwrap_or(x)
    }

    /// The first node's input: the graph input itself, or its batch-first Transpose.
    fn first_path(&self, node: &Node, path: &[&Node]) -> Result<bool> {
        match path {
            [] => Ok(false),
            [t] if t.op_type == "Transpose" && Attributes::ints_of(t, "perm") == [1, 0, 2] => {
                Ok(true)
            }
            _ => Err(self.glue_error(node, path)),
        }
    }

    /// Between two nodes: `[seq, D, batch, H]` to `[seq, batch, D·H]`.
    fn between_path(&self, node: &Node, path: &[&Node], directions: usize) -> Result<()> {
        // `path` is nearest first: the Reshape, then the Transpose.
        let fits = match (directions, path) {
            (2, [reshape, transpose]) => {
                transpose.op_type == "Transpose"
                    && Attributes::ints_of(transpose, "perm") == [0, 2, 1, 3]
                    && reshape.op_type == "Reshape"
                    && self.constant_ints(reshape.input.get(1)) == Some(vec![0, 0, -1])
            }
            (1, [squeeze]) => {
                squeeze.op_type == "Squeeze"
                    && (Attributes::ints_of(squeeze, "axes") == [1]
                        || self.constant_ints(squeeze.input.get(1)) == Some(vec![1]))
            }
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(self.glue_error(node, path))
        }
    }

    fn glue_error(&self, node: &Node, path: &[&Node]) -> WeightsError {
        let ops: Vec<String> = path.iter().rev().map(|n| Self::node_name(n)).collect();
        refuse(
            self.path,
            format!(
                "an ONNX graph whose {} is fed through {}, not the layout torch.onnx.export \
                 writes between stacked RNNs",
                Self::node_name(node),
                ops.join(" then ")
            ),
            EXPORT_RNN_ALONE,
        )
    }

    /// The integers of an initialiser or `Constant` named `name`.
    fn constant_ints(&self, name: Option<&String>) -> Option<Vec<i64>> {
        let t = self.constant(name?)?;
        let t = to_tensor(self.path, t).ok()?;
        t.to_dtype(DType::I64)
            .ok()?
            .flatten_all()
            .ok()?
            .to_vec1()
            .ok()
    }

    fn constant(&self, name: &str) -> Option<&'g TensorProto> {
        if let Some(t) = self.initializers.get(name) {
            return Some(t);
        }
        let node = self.producer.get(name)?;
        if node.op_type != "Constant" {
            return None;
        }
        node.attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref())
    }

    fn weight(&self, node: &Node, index: usize, what: &str) -> Result<Tensor> {
        self.optional_weight(node, index, what)?.ok_or_else(|| {
            malformed(
                self.path,
                format!("the {} has no {what} input", Self::node_name(node)),
            )
        })
    }

    fn optional_weight(&self, node: &Node, index: usize, what: &str) -> Result<Option<Tensor>> {
        let name = match node.input.get(index) {
            None => return Ok(None),
            Some(n) if n.is_empty() => return Ok(None),
            Some(n) => n,
        };
        match self.constant(name) {
            Some(t) => {
                let t = to_tensor(self.path, t)?;
                if !t.dtype().is_float() || t.rank() < 2 {
                    return Err(WeightsError::Shape {
                        path: self.path.to_owned(),
                        name: format!("{what} of {}", Self::node_name(node)),
                        expected: "a floating-point tensor of rank 2 or 3".into(),
                        found: t.dims().to_vec(),
                    });
                }
                Ok(Some(t))
            }
            None => Err(refuse(
                self.path,
                format!(
                    "an ONNX {} whose {what} `{name}` is computed or given at run time, not \
                     stored in the file",
                    Self::node_name(node)
                ),
                "export with the weights as initialisers (torch.onnx.export's default \
                 do_constant_folding=True)",
            )),
        }
    }

    fn feed(&self, node: &'g Node, index: usize, what: &str) -> Result<Feed<'g>> {
        let name = match node.input.get(index) {
            None => return Ok(Feed::Absent),
            Some(n) if n.is_empty() => return Ok(Feed::Absent),
            Some(n) => n.as_str(),
        };
        if let Some(t) = self.initializers.get(name) {
            return Ok(Feed::Initializer(t));
        }
        if self.inputs.contains(&name) {
            return Ok(Feed::GraphInput);
        }
        if let Some(expand) = self.producer.get(name).filter(|n| n.op_type == "Expand") {
            let zero = expand
                .input
                .first()
                .and_then(|v| self.constant(v))
                .and_then(|t| to_tensor(self.path, t).ok())
                .and_then(|t| {
                    t.to_dtype(DType::F64)
                        .ok()?
                        .flatten_all()
                        .ok()?
                        .to_vec1()
                        .ok()
                })
                .is_some_and(|v: Vec<f64>| v.iter().all(|&x| x == 0.0));
            if zero {
                return Ok(Feed::Zero);
            }
        }
        Err(refuse(
            self.path,
            format!(
                "an ONNX {} whose {what} `{name}` is computed in the graph",
                Self::node_name(node)
            ),
            "give it as an initialiser or a graph input",
        ))
    }

    /// `h0` `[layers · directions, batch, hidden]` when initialisers fix every node's.
    fn initial_state(
        &self,
        stack: &[(&Node, Vec<&Node>)],
        feeds: &[Feed],
    ) -> Result<Option<Tensor>> {
        if feeds.iter().all(|f| matches!(f, Feed::Absent | Feed::Zero)) {
            return Ok(None);
        }
        if let ([_], [Feed::GraphInput]) = (stack, feeds) {
            // A run-time input: the user gives `h0`.
            return Ok(None);
        }
        let mut parts = Vec::new();
        for ((node, _), feed) in stack.iter().zip(feeds) {
            match feed {
                Feed::Initializer(t) => parts.push(to_tensor(self.path, t)?),
                _ => {
                    return Err(refuse(
                        self.path,
                        format!(
                            "an ONNX stack whose initial_h is fixed for some RNN nodes and not \
                             for the {}",
                            Self::node_name(node)
                        ),
                        "give every node's initial_h as an initialiser, or none",
                    ))
                }
            }
        }
        Tensor::cat(&parts, 0)
            .map(Some)
            .map_err(|error| WeightsError::Tensor {
                path: self.path.to_owned(),
                error,
            })
    }

    /// `lengths` `[batch]` (int64) when an initialiser fixes them, the same for every node.
    fn lengths(&self, stack: &[(&Node, Vec<&Node>)], feeds: &[Feed]) -> Result<Option<Tensor>> {
        match feeds {
            [] => Ok(None),
            [Feed::Initializer(t), rest @ ..]
                if rest
                    .iter()
                    .all(|f| matches!(f, Feed::Initializer(o) if o.name == t.name)) =>
            {
                let lengths = to_tensor(self.path, t)?
                    .to_dtype(DType::I64)
                    .map_err(|error| WeightsError::Tensor {
                        path: self.path.to_owned(),
                        error,
                    })?;
                Ok(Some(lengths))
            }
            _ if feeds.iter().all(|f| matches!(f, Feed::Absent)) => Ok(None),
            [Feed::GraphInput] => Ok(None),
            _ => Err(refuse(
                self.path,
                format!(
                    "an ONNX stack of {} RNN nodes whose sequence_lens are not one initialiser \
                     for all",
                    stack.len()
                ),
                "give the lengths at run time",
            )),
        }
    }
}

/// A node's attributes, checked against what `rnn` runs.
struct Attributes<'n> {
    path: &'n Path,
    node: &'n Node,
}

impl<'n> Attributes<'n> {
    fn new(path: &'n Path, node: &'n Node) -> Result<Self> {
        let known = [
            "activations",
            "activation_alpha",
            "activation_beta",
            "clip",
            "direction",
            "hidden_size",
            "layout",
        ];
        if let Some(a) = node
            .attribute
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            return Err(refuse(
                path,
                format!(
                    "an ONNX {} with attribute {}, which the RNN op does not define",
                    Reader::node_name(node),
                    a.name
                ),
                EXPORT_RNN_ALONE,
            ));
        }
        Ok(Self { path, node })
    }

    fn find(&self, name: &str) -> Option<&'n proto::Attribute> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn int(&self, name: &str, default: i64) -> i64 {
        self.find(name).map_or(default, |a| a.i)
    }

    fn ints_of(node: &Node, name: &str) -> Vec<i64> {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.clone())
            .unwrap_or_default()
    }

    fn refuse(&self, name: &str, value: &str, advice: &str) -> WeightsError {
        refuse(
            self.path,
            format!(
                "an ONNX {} with {name}={value}",
                Reader::node_name(self.node)
            ),
            advice,
        )
    }

    /// The node's directions, and whether its one direction is ONNX's `reverse` (read from
    /// the end, outputs indexed by time: rnn's `reverse` layer option).
    fn directions(&self) -> Result<(usize, bool)> {
        let direction = self.find("direction").map_or("forward".into(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        });
        match direction.as_str() {
            "forward" => Ok((1, false)),
            "reverse" => Ok((1, true)),
            "bidirectional" => Ok((2, false)),
            other => Err(self.refuse(
                "direction",
                other,
                "rnn runs forward, reverse and bidirectional nodes",
            )),
        }
    }

    /// ONNX's `clip`, a positive bound on the pre-activation, if the node has one.
    fn clip(&self) -> Result<Option<f64>> {
        match self.find("clip") {
            None => Ok(None),
            Some(a) if a.f > 0.0 => Ok(Some(f64::from(a.f))),
            Some(a) => Err(self.refuse(
                "clip",
                &a.f.to_string(),
                "the spec's clip is a positive bound",
            )),
        }
    }

    /// The activation of each direction, as ONNX Runtime computes it. `activation_alpha` and
    /// `activation_beta` are consumed in order by the activations that take them (ONNX
    /// Runtime's reading of the spec's "in the order of activation functions"; the reference
    /// implementation indexes them by direction instead): a list of another length than the
    /// activations that take it is refused, since the two readings differ there. A parameter
    /// left out takes the spec's default where ONNX Runtime agrees with it (LeakyRelu 0.01,
    /// HardSigmoid 0.2 and 0.5, Elu 1) and is refused where it does not (ThresholdedRelu,
    /// ScaledTanh and Affine, which ONNX Runtime runs with 0).
    fn nonlinearities(&self, directions: usize) -> Result<Vec<Nonlinearity>> {
        let names: Vec<String> = match self.find("activations") {
            Some(a) => a
                .strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
            None => vec!["Tanh".into(); directions],
        };
        if names.len() != directions {
            return Err(self.refuse(
                "activations",
                &format!("{names:?} ({directions} direction(s), one activation each)"),
                "give one activation per direction",
            ));
        }
        const ALPHA: [&str; 6] = [
            "LeakyRelu",
            "ThresholdedRelu",
            "ScaledTanh",
            "HardSigmoid",
            "Elu",
            "Affine",
        ];
        const BETA: [&str; 3] = ["ScaledTanh", "HardSigmoid", "Affine"];
        let params = |attr: &str, takers: &[&str]| -> Result<Vec<Option<f64>>> {
            let taking = names
                .iter()
                .filter(|n| takers.contains(&n.as_str()))
                .count();
            let Some(values) = self.find(attr).map(|a| a.floats.clone()) else {
                return Ok(vec![None; directions]);
            };
            if values.len() != taking {
                return Err(self.refuse(
                    attr,
                    &format!(
                        "{values:?} for activations {names:?}, of which {taking} take one (ONNX \
                         Runtime gives them in order to those that take one, the spec's \
                         reference by direction)"
                    ),
                    "give one value per activation that takes one",
                ));
            }
            let mut values = values.into_iter().map(f64::from);
            Ok(names
                .iter()
                .map(|n| {
                    takers
                        .contains(&n.as_str())
                        .then(|| values.next())
                        .flatten()
                })
                .collect())
        };
        let alphas = params("activation_alpha", &ALPHA)?;
        let betas = params("activation_beta", &BETA)?;
        names
            .iter()
            .zip(alphas.into_iter().zip(betas))
            .map(|(name, (alpha, beta))| {
                let given = |p: Option<f64>, what: &str| {
                    p.map(Param::new).ok_or_else(|| {
                        self.refuse(
                            "activations",
                            &format!(
                                "{name} without {what} (ONNX Runtime runs it with 0, not the \
                                 spec's default)"
                            ),
                            "give its parameters explicitly",
                        )
                    })
                };
                let or = |p: Option<f64>, default: f64| Param::new(p.unwrap_or(default));
                Ok(match name.as_str() {
                    "Tanh" => Nonlinearity::Tanh,
                    "Relu" => Nonlinearity::Relu,
                    "Sigmoid" => Nonlinearity::Sigmoid,
                    "Softsign" => Nonlinearity::Softsign,
                    "Softplus" => Nonlinearity::Softplus,
                    "Elu" if alpha.is_none_or(|a| a == 1.0) => Nonlinearity::Elu,
                    "Elu" => Nonlinearity::ScaledElu {
                        alpha: or(alpha, 1.0),
                    },
                    "LeakyRelu" => Nonlinearity::LeakyRelu {
                        alpha: or(alpha, 0.01f32.into()),
                    },
                    "HardSigmoid" => Nonlinearity::LinearHardSigmoid {
                        alpha: or(alpha, 0.2f32.into()),
                        beta: or(beta, 0.5),
                    },
                    "ThresholdedRelu" => Nonlinearity::ThresholdedRelu {
                        alpha: given(alpha, "activation_alpha")?,
                    },
                    "ScaledTanh" => Nonlinearity::ScaledTanh {
                        alpha: given(alpha, "activation_alpha")?,
                        beta: given(beta, "activation_beta")?,
                    },
                    "Affine" => Nonlinearity::Affine {
                        alpha: given(alpha, "activation_alpha")?,
                        beta: given(beta, "activation_beta")?,
                    },
                    other => {
                        return Err(self.refuse(
                            "activations",
                            other,
                            "the RNN op's activations are Relu, Tanh, Sigmoid, Affine, \
                             LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, \
                             Softsign and Softplus",
                        ))
                    }
                })
            })
            .collect()
    }
}

/// A tensor stored in the file, its length checked against its shape before anything is
/// allocated for it.
fn to_tensor(path: &Path, t: &TensorProto) -> Result<Tensor> {
    let name = if t.name.is_empty() {
        "(unnamed)"
    } else {
        &t.name
    };
    let bad = |reason: String| malformed(path, format!("tensor `{name}`: {reason}"));
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(refuse(
            path,
            format!("an ONNX model whose tensor `{name}` is stored in an external file"),
            "save it whole: onnx.save(model, path, save_as_external_data=False)",
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
        .collect::<Result<Vec<usize>>>()?;
    let numel = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
    let (dtype, size) = match t.data_type {
        1 => (DType::F32, 4),
        11 => (DType::F64, 8),
        10 => (DType::F16, 2),
        16 => (DType::BF16, 2),
        6 => (DType::I64, 4),
        7 => (DType::I64, 8),
        other => {
            return Err(bad(format!(
                "ONNX data type {other}, which rnn does not read"
            )))
        }
    };
    let count = |found: usize| {
        if found == numel {
            Ok(())
        } else {
            Err(bad(format!(
                "shape {dims:?} holds {numel} elements, the data {found}"
            )))
        }
    };
    let device = &Device::Cpu;
    let tensor = if !t.raw_data.is_empty() || numel == 0 {
        if t.raw_data.len() != numel.saturating_mul(size) {
            return Err(bad(format!(
                "shape {dims:?} needs {} bytes, raw_data has {}",
                numel.saturating_mul(size),
                t.raw_data.len()
            )));
        }
        if t.data_type == 6 {
            let v: Vec<i64> = t
                .raw_data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            Tensor::from_vec(v, dims.as_slice(), device)
        } else {
            Tensor::from_raw_buffer(&t.raw_data, dtype, &dims, device)
        }
    } else {
        match t.data_type {
            1 => {
                count(t.float_data.len())?;
                Tensor::from_vec(t.float_data.clone(), dims.as_slice(), device)
            }
            11 => {
                count(t.double_data.len())?;
                Tensor::from_vec(t.double_data.clone(), dims.as_slice(), device)
            }
            6 => {
                count(t.int32_data.len())?;
                let v: Vec<i64> = t.int32_data.iter().map(|&x| i64::from(x)).collect();
                Tensor::from_vec(v, dims.as_slice(), device)
            }
            7 => {
                count(t.int64_data.len())?;
                Tensor::from_vec(t.int64_data.clone(), dims.as_slice(), device)
            }
            _ => return Err(bad("16-bit floats outside raw_data".into())),
        }
    };
    tensor.map_err(|error| WeightsError::Tensor {
        path: path.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::proto::*;
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
            input: vec![ValueInfo { name: "X".into() }],
            output: vec![ValueInfo { name: "Y".into() }],
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

    #[test]
    fn a_plain_node_reads_under_pytorch_names() {
        let file = read_bytes(&model(vec![])).unwrap();
        assert_eq!(file.names(), ["weight_hh_l0", "weight_ih_l0"]);
        assert_eq!(file.metadata()["nonlinearity"], "tanh");
        assert_eq!(file.metadata()["batch_first"], "false");
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
        assert_eq!(reverse.metadata()["reverse"], "true");
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
        assert_eq!(file.metadata()["clip"], "2.5");
        let file = read_bytes(&model(vec![])).unwrap();
        assert!(!file.metadata().contains_key("clip"));
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
        assert_eq!(file.metadata()["nonlinearity"], "tanh");
        assert_eq!(file.metadata()["nonlinearity_reverse"], "relu");
        let same = read_bytes(&model_with(2, vec![attr_s("direction", "bidirectional")])).unwrap();
        assert!(!same.metadata().contains_key("nonlinearity_reverse"));
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
        let meta = |dirs, attrs| read_bytes(&model_with(dirs, attrs)).map(|f| f.metadata().clone());
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
}
