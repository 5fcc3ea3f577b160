//! The graph walked from each RNN node back to the graph input: the exporter's glue between
//! the nodes of one stack, the stack's order, and where each node's inputs come from.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Tensor};

use super::attributes::Attributes;
use super::proto::{Graph, Node, TensorProto};
use super::tensor::to_tensor;
use super::{malformed, node_name, refuse, EXPORT_RNN_ALONE};
use crate::config::Recorded;
use crate::error::{Result, WeightsError};
use rnn_core::MergeMode;

/// What a reader of an ONNX graph finds: the tensors under rnn's names, the notes it records
/// as metadata, and the model's configuration.
pub(super) type Lifted = (HashMap<String, Tensor>, HashMap<String, String>, Recorded);

/// Ops that may join the RNN nodes of a stack (shape bookkeeping, as the exporter writes it).
pub(super) const GLUE: [&str; 12] = [
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

/// A node's input `index` by name, `""` where it has none (ONNX's absent optional input).
pub(super) fn input(node: &Node, index: usize) -> &str {
    node.input.get(index).map_or("", String::as_str)
}

/// The nodes a lifter (`unrolled.rs`, `looped.rs`) has accounted for, by address.
#[derive(Default)]
pub(super) struct Used(HashSet<*const Node>);

impl Used {
    /// Marks `node`; `false` if it was marked before.
    pub(super) fn mark(&mut self, node: &Node) -> bool {
        self.0.insert(node as *const Node)
    }

    pub(super) fn contains(&self, node: &Node) -> bool {
        self.0.contains(&(node as *const Node))
    }

    /// Marks the node that computes `name`, if one does (a `Constant`).
    pub(super) fn mark_constant(&mut self, reader: &Reader, name: &str) {
        if let Some(&node) = reader.producer.get(name) {
            self.mark(node);
        }
    }

    /// Marks the shape ops that build `name` (a value of zeros), not what their `Shape`
    /// measures.
    pub(super) fn mark_glue(&mut self, reader: &Reader, name: &str) {
        let mut pending = vec![name.to_string()];
        while let Some(name) = pending.pop() {
            let Some(&node) = reader.producer.get(name.as_str()) else {
                continue;
            };
            let glue = GLUE.contains(&node.op_type.as_str()) || node.op_type == "Cast";
            if !glue || !self.mark(node) {
                continue;
            }
            if node.op_type != "Shape" {
                pending.extend(node.input.iter().cloned());
            }
        }
    }
}

/// Where a node's `initial_h` or `sequence_lens` comes from.
pub(super) enum Feed<'g> {
    Absent,
    /// A state of zeros built in the graph (the exporter's `h0=None`): `ConstantOfShape` or
    /// `Expand` of zeros, then shaped or sliced, whatever the shape it is given.
    Zero,
    Initializer(&'g TensorProto),
    /// A graph input, whole (`range` is `None`) or its rows `range` along axis 0 (one
    /// layer's part of a stack's `h0`, as `forward(x, h0)` exports it).
    GraphInput {
        name: &'g str,
        range: Option<(i64, i64)>,
    },
}

pub(super) struct Reader<'g> {
    pub(super) path: &'g Path,
    pub(super) graph: &'g Graph,
    /// Output name → the node that produces it.
    pub(super) producer: HashMap<&'g str, &'g Node>,
    pub(super) initializers: HashMap<&'g str, &'g TensorProto>,
    pub(super) inputs: Vec<&'g str>,
    /// Graph inputs that are initialisers too: ONNX's overridable defaults (what
    /// `rnn convert -o X.onnx` writes for `h0` and `lengths`), by name.
    pub(super) defaults: HashMap<&'g str, &'g TensorProto>,
    /// The file's length in bytes, against which the weights the nodes name are bounded.
    pub(super) file_len: usize,
    /// The version of the default operator set the graph is written in.
    pub(super) opset: i64,
}

impl<'g> Reader<'g> {
    pub(super) fn new(path: &'g Path, graph: &'g Graph, file_len: usize, opset: i64) -> Self {
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
        let defaults = graph
            .input
            .iter()
            .filter_map(|v| Some((v.name.as_str(), *initializers.get(v.name.as_str())?)))
            .collect();
        Self {
            path,
            graph,
            producer,
            initializers,
            inputs,
            defaults,
            file_len,
            opset,
        }
    }
}

impl<'g> Reader<'g> {
    /// The bytes of weights the graph's nodes may name: 4 per byte of the file (and its
    /// external data) plus 64 MiB, since nodes that share initialisers would make a small file
    /// a large model.
    pub(super) fn weight_budget(&self) -> usize {
        self.file_len.saturating_mul(4).saturating_add(64 << 20)
    }

    /// The RNN nodes in stack order, each with the glue nodes between its `X` and the node
    /// (or graph input) before it, nearest first. In a whole model the bottom node's `X` may
    /// be computed by any node.
    pub(super) fn order(
        &self,
        rnns: &[&'g Node],
        whole: bool,
    ) -> Result<Vec<(&'g Node, Vec<&'g Node>)>> {
        let mut by_source: HashMap<Option<&str>, (&Node, Vec<&Node>)> = HashMap::new();
        for &node in rnns {
            let x = node.input.first().map(String::as_str).unwrap_or("");
            let (source, path) = self.trace(x)?;
            if source.is_some_and(|s| std::ptr::eq(s, node)) {
                return Err(malformed(
                    self.path,
                    format!(
                        "the {}'s input is computed from its own output (a cycle)",
                        node_name(node)
                    ),
                ));
            }
            let key = source.map(|s| s.output.first().map(String::as_str).unwrap_or(""));
            if key.is_none() && !whole && !self.inputs.contains(&self.origin(x, &path)) {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX graph whose {} is fed by `{}`, neither a graph input nor an \
                         RNN",
                        node_name(node),
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

    /// Follows `name` back through glue nodes ([`Reader::followed`]: `Add(bias, x)` to `x`)
    /// to an RNN node's output (`Some`) or to a value no node produces (`None`): the glue
    /// nodes on the way, nearest first.
    pub(super) fn trace(&self, name: &str) -> Result<(Option<&'g Node>, Vec<&'g Node>)> {
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
                            node_name(node)
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
            name = self.followed(node);
        }
        Ok((None, path))
    }

    /// The input of a glue node that [`Reader::trace`] follows: its first that is computed
    /// or given, not stored (`Add(bias, x)`: `x`); else its first.
    fn followed<'a>(&self, node: &'a Node) -> &'a str {
        let computed = |input: &&str| {
            !self.initializers.contains_key(input)
                && (self.inputs.contains(input)
                    || self
                        .producer
                        .get(input)
                        .is_some_and(|p| p.op_type != "Constant"))
        };
        let mut inputs = node.input.iter().map(String::as_str);
        inputs
            .clone()
            .find(computed)
            .or_else(|| inputs.next())
            .unwrap_or("")
    }

    /// Where a [`Reader::trace`] of `x` that found no RNN ended: the input its last glue node
    /// follows, or `x` itself.
    fn origin<'a>(&self, x: &'a str, path: &[&'a Node]) -> &'a str {
        path.last().map_or(x, |n| self.followed(n))
    }

    /// The first node's input: the graph input itself, or its batch-first Transpose.
    pub(super) fn first_path(&self, node: &Node, path: &[&Node]) -> Result<bool> {
        match path {
            [] => Ok(false),
            [t] if t.op_type == "Transpose" && Attributes::ints_of(t, "perm") == [1, 0, 2] => {
                Ok(true)
            }
            _ => Err(self.glue_error(node, path)),
        }
    }

    /// Between two nodes: `[seq, D, batch, H]` to `[seq, batch, D·H]` (Transpose and Reshape:
    /// the directions concatenated) or to `[seq, batch, H]` (a bidirectional node's `Y` merged
    /// by [`Reader::merge_of`]; Squeeze of axis 1 for one direction). How the node below
    /// joins its directions.
    pub(super) fn between_path(
        &self,
        node: &Node,
        path: &[&Node],
        directions: usize,
    ) -> Result<MergeMode> {
        // `path` is nearest first: the Reshape, then the Transpose.
        let merge = match (directions, path) {
            (2, [reshape, transpose]) => (transpose.op_type == "Transpose"
                && Attributes::ints_of(transpose, "perm") == [0, 2, 1, 3]
                && reshape.op_type == "Reshape"
                && self.constant_ints(reshape.input.get(1)) == Some(vec![0, 0, -1]))
            .then_some(MergeMode::Concat),
            (2, [reduce]) => self.merge_of(reduce),
            (1, [squeeze]) => (squeeze.op_type == "Squeeze"
                && (Attributes::ints_of(squeeze, "axes") == [1]
                    || self.constant_ints(squeeze.input.get(1)) == Some(vec![1])))
            .then_some(MergeMode::Concat),
            _ => None,
        };
        merge.ok_or_else(|| self.glue_error(node, path))
    }

    /// Keras's merge of a bidirectional node's directions as `rnn convert` writes it: its `Y`
    /// `[seq, 2, batch, H]` reduced over axis 1 without keeping it, by `ReduceSum` (sum),
    /// `ReduceMean` (ave) or `ReduceProd` (mul). `None` for any other node.
    pub(super) fn merge_of(&self, node: &Node) -> Option<MergeMode> {
        let merge = match node.op_type.as_str() {
            "ReduceSum" => MergeMode::Sum,
            "ReduceMean" => MergeMode::Ave,
            "ReduceProd" => MergeMode::Mul,
            _ => return None,
        };
        let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let axes = match attribute("axes") {
            Some(a) => Some(a.ints.clone()),
            None => self.constant_ints(node.input.get(1)),
        };
        let of_bidirectional_y = node.input.first().and_then(|y| {
            let rnn = self.producer.get(y.as_str())?;
            Some(
                rnn.op_type == "RNN"
                    && rnn.output.first() == Some(y)
                    && rnn
                        .attribute
                        .iter()
                        .any(|a| a.name == "direction" && a.s == b"bidirectional"),
            )
        });
        let fits = node.domain.is_empty()
            && axes == Some(vec![1])
            && attribute("keepdims").is_some_and(|a| a.i == 0)
            && attribute("noop_with_empty_axes").is_none_or(|a| a.i == 0)
            && of_bidirectional_y == Some(true);
        fits.then_some(merge)
    }

    fn glue_error(&self, node: &Node, path: &[&Node]) -> WeightsError {
        let ops: Vec<String> = path.iter().rev().map(|n| node_name(n)).collect();
        refuse(
            self.path,
            format!(
                "an ONNX graph whose {} is fed through {}, not the layout torch.onnx.export \
                 writes between stacked RNNs",
                node_name(node),
                ops.join(" then ")
            ),
            EXPORT_RNN_ALONE,
        )
    }

    /// The integers of an initialiser or `Constant` named `name`.
    pub(super) fn constant_ints(&self, name: Option<&String>) -> Option<Vec<i64>> {
        let t = self.constant(name?)?;
        let t = to_tensor(self.path, t).ok()?;
        t.to_dtype(DType::I64)
            .ok()?
            .flatten_all()
            .ok()?
            .to_vec1()
            .ok()
    }

    pub(super) fn constant(&self, name: &str) -> Option<&'g TensorProto> {
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

    pub(super) fn weight(&self, node: &Node, index: usize, what: &str) -> Result<Tensor> {
        self.optional_weight(node, index, what)?.ok_or_else(|| {
            malformed(
                self.path,
                format!("the {} has no {what} input", node_name(node)),
            )
        })
    }

    pub(super) fn optional_weight(
        &self,
        node: &Node,
        index: usize,
        what: &str,
    ) -> Result<Option<Tensor>> {
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
                        name: format!("{what} of {}", node_name(node)),
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
                    node_name(node)
                ),
                "export with the weights as initialisers (torch.onnx.export's default \
                 do_constant_folding=True)",
            )),
        }
    }

    pub(super) fn feed(&self, node: &'g Node, index: usize, what: &str) -> Result<Feed<'g>> {
        let name = match node.input.get(index) {
            None => return Ok(Feed::Absent),
            Some(n) if n.is_empty() => return Ok(Feed::Absent),
            Some(n) => n.as_str(),
        };
        // An initial state that defaults to zeros is the user's, absent by default; lengths
        // that default to zeros are not (every sequence empty): those are fixed.
        if let Some(input) = self.zero_default(name).filter(|_| what == "initial_h") {
            return Ok(Feed::GraphInput {
                name: input,
                range: None,
            });
        }
        if let Some(t) = self.initializers.get(name) {
            return Ok(Feed::Initializer(t));
        }
        if let Some((input, _)) = self.capped_lengths(name) {
            return Ok(Feed::GraphInput {
                name: input,
                range: None,
            });
        }
        if let Some(&input) = self.inputs.iter().find(|&&i| i == name) {
            return Ok(Feed::GraphInput {
                name: input,
                range: None,
            });
        }
        if self.zeros(name) {
            return Ok(Feed::Zero);
        }
        if let Some(slice) = self.producer.get(name).filter(|n| n.op_type == "Slice") {
            let data = slice.input.first().map(String::as_str).unwrap_or("");
            let ints = |i: usize| self.constant_ints(slice.input.get(i));
            let axes = match slice.input.get(3) {
                Some(a) if !a.is_empty() => ints(3),
                _ => Some(vec![0]),
            };
            let steps = match slice.input.get(4) {
                Some(s) if !s.is_empty() => ints(4),
                _ => Some(vec![1]),
            };
            // The input itself, or its default broadcast to the batch (`Expand`: the same
            // values for an input of the full shape).
            let expanded = self
                .producer
                .get(data)
                .filter(|n| n.op_type == "Expand" && n.domain.is_empty())
                .and_then(|n| self.zero_default(n.input.first()?));
            if let (Some(input), Some([start]), Some([end]), Some([0]), Some([1])) = (
                self.inputs
                    .iter()
                    .find(|&&i| i == data)
                    .copied()
                    .or(expanded),
                ints(1).as_deref(),
                ints(2).as_deref(),
                axes.as_deref(),
                steps.as_deref(),
            ) {
                return Ok(Feed::GraphInput {
                    name: input,
                    range: Some((*start, *end)),
                });
            }
        }
        let source = self
            .producer
            .get(name)
            .map_or_else(|| "an op".to_string(), |n| node_name(n));
        Err(refuse(
            self.path,
            format!(
                "an ONNX {} whose {what} `{name}` is computed in the graph by a {source} that \
                 is neither zeros nor a part of a graph input",
                node_name(node)
            ),
            "export with h0 given as a graph input or left out (zeros)",
        ))
    }

    /// `name` when it is a graph input whose default (an initialiser of the same name) is all
    /// zeros: absent, it is what rnn gives an absent `h0`.
    fn zero_default(&self, name: &str) -> Option<&'g str> {
        let (&input, t) = self.defaults.get_key_value(name)?;
        all_zero(self.path, t).then_some(input)
    }

    /// `lengths` capped at the sequence length, as `rnn convert -o X.onnx` writes an optional
    /// `sequence_lens`: `Min(Expand(lengths, batch), Cast(Gather(Shape(X), [0]), int32))`
    /// where `lengths` is a graph input whose default is all `2³¹ − 1` (absent, every sequence
    /// runs to its end) and `X` an RNN node's input (`[seq_len, batch, …]`). The input's name,
    /// and the `Min` and `Cast` nodes, which are glue only here.
    pub(super) fn capped_lengths(&self, name: &str) -> Option<(&'g str, [&'g Node; 2])> {
        let min = *self.producer.get(name)?;
        let op = |n: &Node, op: &str| n.op_type == op && n.domain.is_empty();
        let [a, b] = min.input.as_slice() else {
            return None;
        };
        if !op(min, "Min") {
            return None;
        }
        let expand = *self.producer.get(a.as_str())?;
        let cast = *self.producer.get(b.as_str())?;
        let (&input, _) = self
            .defaults
            .get_key_value(expand.input.first()?.as_str())?;
        // The default's values (an initialiser by the input's name).
        let never = self
            .constant_ints(expand.input.first())
            .is_some_and(|v| !v.is_empty() && v.iter().all(|&l| l == i64::from(i32::MAX)));
        let int32 = cast.attribute.iter().any(|a| a.name == "to" && a.i == 6);
        let gather = *self.producer.get(cast.input.first()?.as_str())?;
        let shape = *self.producer.get(gather.input.first()?.as_str())?;
        let measured = shape.input.first()?;
        // Time-major: an RNN node's `X` with the default `layout` 0.
        let of_rnn_input = self.graph.node.iter().any(|n| {
            op(n, "RNN")
                && n.input.first() == Some(measured)
                && Attributes::ints_of(n, "layout").is_empty()
                && n.attribute.iter().all(|a| a.name != "layout" || a.i == 0)
        });
        let fits = op(expand, "Expand")
            && never
            && op(cast, "Cast")
            && int32
            && op(gather, "Gather")
            && gather
                .attribute
                .iter()
                .all(|a| a.name != "axis" || a.i == 0)
            && self.constant_ints(gather.input.get(1)) == Some(vec![0])
            && op(shape, "Shape")
            && shape.attribute.is_empty()
            && of_rnn_input;
        fits.then_some((input, [min, cast]))
    }

    /// Whether the value `name` is zeros in every element whatever the graph's inputs: a
    /// `ConstantOfShape` of 0, an initialiser or `Constant` of zeros, or what shape ops make
    /// of one (`Expand`, `Slice`, `Reshape`, `Squeeze`, `Unsqueeze`, `Transpose`,
    /// `Identity`, `Cast`, `Gather` from it, `Concat` of such).
    pub(super) fn zeros(&self, name: &str) -> bool {
        self.zeros_within(name, &mut HashMap::new(), 0)
    }

    /// [`Self::zeros`], each value decided once (`known`): a graph that names one value many
    /// times takes one visit per node, not one per path.
    fn zeros_within<'n>(
        &self,
        name: &'n str,
        known: &mut HashMap<&'n str, bool>,
        depth: usize,
    ) -> bool
    where
        'g: 'n,
    {
        if let Some(&zero) = known.get(name) {
            return zero;
        }
        if depth > self.graph.node.len() {
            return false;
        }
        let zero = self.zeros_step(name, known, depth);
        known.insert(name, zero);
        zero
    }

    fn zeros_step<'n>(
        &self,
        name: &'n str,
        known: &mut HashMap<&'n str, bool>,
        depth: usize,
    ) -> bool
    where
        'g: 'n,
    {
        let all_zero = |t: &TensorProto| all_zero(self.path, t);
        if self.defaults.contains_key(name) {
            // A graph input: its default is only what it holds when not given.
            return false;
        }
        if let Some(t) = self.initializers.get(name) {
            return all_zero(t);
        }
        let Some(node) = self.producer.get(name) else {
            return false;
        };
        if !node.domain.is_empty() {
            return false;
        }
        let mut first = || {
            node.input
                .first()
                .is_some_and(|i| self.zeros_within(i, known, depth + 1))
        };
        match node.op_type.as_str() {
            "Constant" => self.constant(name).is_some_and(all_zero),
            // Without a `value` the op fills with float 0.
            "ConstantOfShape" => node
                .attribute
                .iter()
                .find(|a| a.name == "value")
                .is_none_or(|a| a.t.as_ref().is_some_and(all_zero)),
            "Expand" | "Slice" | "Reshape" | "Squeeze" | "Unsqueeze" | "Transpose" | "Identity"
            | "Cast" | "Gather" => first(),
            "Concat" => {
                !node.input.is_empty()
                    && node
                        .input
                        .iter()
                        .all(|i| self.zeros_within(i, known, depth + 1))
            }
            _ => false,
        }
    }
}

/// Whether every element of `t` is zero (`false` where it cannot be read).
fn all_zero(path: &Path, t: &TensorProto) -> bool {
    to_tensor(path, t)
        .ok()
        .and_then(|t| {
            t.to_dtype(DType::F64)
                .ok()?
                .flatten_all()
                .ok()?
                .to_vec1()
                .ok()
        })
        .is_some_and(|v: Vec<f64>| v.iter().all(|&x| x == 0.0))
}
