//! A whole model around the RNN nodes (an embedding's `Gather`, a `Gemm` head, the exporter's
//! glue): the graph's other nodes read into a [`Program`] that `crate::Model` evaluates around
//! the stack, from the graph's one input to its outputs.
//!
//! The stack meets the graph at its bottom node's `X` (time-major, as the node reads it), its
//! top node's `Y` and every node's `Y_h`; the glue between the nodes and the nodes'
//! `initial_h` are the stack's own (zeros built in the graph; a state given or fixed otherwise
//! is refused), and a node that reads a lower node's `Y` other than through that glue is
//! refused. Every node the outputs need must be one of the ops [`Op`] lists.

use std::collections::{BTreeSet, HashMap, HashSet};

use candle_core::{DType, Tensor};
use rnn_core::Nonlinearity;

use super::graph::{Feed, Reader, GLUE};
use super::proto::Node;
use super::tensor::to_tensor;
use super::{malformed, node_name, refuse};
use crate::error::{Result, WeightsError};
use crate::onnx_program::{Binary, Op, Program, Provided, Reduce, StackIo, Step};

/// Where the recurrence meets the rest of a whole model's graph.
pub(super) struct Boundary<'g> {
    /// The bottom layer's input (time-major).
    pub(super) x: &'g str,
    /// The values the stack's run gives, by name.
    pub(super) provided: HashMap<&'g str, Provided>,
    /// Whether a node is part of the recurrence in a way the evaluator cannot compute (an RNN
    /// node: its values other than `provided` are not the graph's to read).
    pub(super) inside: Box<dyn Fn(&Node) -> bool + 'g>,
    /// Each layer's directions, and its output's width (directions · hidden).
    pub(super) directions: Vec<usize>,
    pub(super) widths: Vec<usize>,
    /// The steps an unrolled recurrence was written for.
    pub(super) steps: Option<usize>,
    /// The graph input the stack's initial state is read from (its rows per layer), which
    /// the run takes as `h0`, not as the model's input.
    pub(super) state: Option<&'g str>,
    /// What a refusal advises instead.
    pub(super) advice: &'static str,
}

/// The ops rnn evaluates around a recurrence, in words.
macro_rules! whole_ops {
    () => {
        "rnn runs Gather, Shape, Constant, ConstantOfShape, Unsqueeze, Squeeze, Concat, \
         Transpose, Reshape, Slice, Expand, Cast, Identity, MatMul, Gemm, Add, Sub, Mul, Div, \
         Softmax, LogSoftmax, Sigmoid, Tanh, Relu, Flatten, Equal, Where, ReduceSum, \
         ReduceMean, ReduceMax and ReduceMin around the recurrence"
    };
}

/// What a refusal of a whole model's extra inputs or its RNN's state advises.
const ONE_INPUT: &str = "export the model with its input and at most the RNN's h0 as graph \
                         inputs (forward(x) or forward(x, h0)), no lengths, or export the nn.RNN \
                         alone (torch.onnx.export(rnn, ...)), whose h0 and lengths rnn takes as \
                         inputs";

/// What a refusal of a PyTorch export's whole model advises.
pub(super) const TORCH_ADVICE: &str = concat!(
    whole_ops!(),
    "; export the nn.RNN alone (torch.onnx.export(rnn, ..., dynamo=False)) to run its \
     recurrence"
);

/// What a refusal of tf2onnx's whole model advises.
pub(super) const KERAS_ADVICE: &str = concat!(
    whole_ops!(),
    "; or give rnn the Keras model that tf2onnx converted, saved with model.save(\"m.keras\") \
     (Keras 3) or model.save(\"m.h5\") (tf-keras), which rnn runs whole"
);

impl<'g> Reader<'g> {
    /// The first node that makes the graph more than an RNN stack with its exporter's glue:
    /// an op outside the glue, or a `Gather` from anything but a `Shape` (a lookup in a table,
    /// a step of the output). `capping`: the nodes of `sequence_lens` capped at the length.
    pub(super) fn foreign(&self, capping: &[&Node]) -> Option<&'g Node> {
        self.graph.node.iter().find(|&node| {
            if node.op_type == "RNN" && (node.domain.is_empty() || node.domain == "ai.onnx") {
                return false;
            }
            let glue = (GLUE.contains(&node.op_type.as_str()) && node.domain.is_empty())
                || capping.iter().any(|&c| std::ptr::eq(c, node))
                || self.merge_of(node).is_some();
            let gather_on_shape = node.op_type != "Gather"
                || node
                    .input
                    .first()
                    .and_then(|i| self.producer.get(i.as_str()))
                    .is_some_and(|p| p.op_type == "Shape");
            !glue || !gather_on_shape
        })
    }

    /// Refuses an `initial_h` or `sequence_lens` a whole model's stack does not run with:
    /// rnn runs it over every step, from zeros or from the rows of a graph input (the run's
    /// `h0`; `initial_state` checks that the layers read it in order).
    /// `feed`: `None` where it is computed in a way rnn does not read at all.
    pub(super) fn whole_feed(&self, node: &Node, feed: Option<&Feed>, what: &str) -> Result<()> {
        match feed {
            Some(Feed::Absent) => Ok(()),
            Some(Feed::Zero | Feed::GraphInput { .. }) if what == "initial_h" => Ok(()),
            _ => Err(refuse(
                self.path,
                format!(
                    "an ONNX whole model whose {} has its {what} given, fixed or computed (rnn \
                     runs a whole model's RNN over every step, from zeros or from a graph \
                     input's h0)",
                    node_name(node)
                ),
                ONE_INPUT,
            )),
        }
    }

    /// The graph input every node of `stack` reads its `initial_h` from (whole, or its rows
    /// per layer), where there is one.
    pub(super) fn state_input(&self, stack: &[&'g Node]) -> Option<&'g str> {
        let mut names = stack
            .iter()
            .map(|node| match self.feed(node, 5, "initial_h") {
                Ok(Feed::GraphInput { name, .. }) => Some(name),
                _ => None,
            });
        let first = names.next()??;
        names.all(|n| n == Some(first)).then_some(first)
    }

    /// Where a stack of RNN nodes (`stack`, bottom first) meets the graph: the bottom node's
    /// `X`, the top node's `Y` and every node's `Y_h`; the nodes' other outputs (a lower
    /// node's `Y`) are inside.
    pub(super) fn rnn_boundary(&self, stack: &[&'g Node]) -> Result<Boundary<'g>> {
        let Some(&top) = stack.last() else {
            return Err(malformed(self.path, "no RNN node".into()));
        };
        let output = |node: &'g Node, k: usize| -> Option<&'g str> {
            node.output
                .get(k)
                .filter(|n| !n.is_empty())
                .map(String::as_str)
        };
        let mut provided = HashMap::new();
        if let Some(y) = output(top, 0) {
            provided.insert(y, Provided::NodeY(stack.len() - 1));
        }
        for (k, node) in stack.iter().enumerate() {
            if let Some(y_h) = output(node, 1) {
                provided.insert(y_h, Provided::NodeYh(k));
            }
        }
        let mut directions = Vec::new();
        let mut widths = Vec::new();
        for node in stack {
            let (d, _) = super::attributes::Attributes::new(self.path, node)?.directions()?;
            let hidden = self
                .constant(super::graph::input(node, 2))
                .map_or(0, |r| r.dims.get(1).copied().unwrap_or(0).max(0) as usize);
            directions.push(d);
            widths.push(d * hidden);
        }
        let nodes: HashSet<*const Node> = stack.iter().map(|&n| n as *const Node).collect();
        Ok(Boundary {
            x: super::graph::input(stack[0], 0),
            provided,
            inside: Box::new(move |n: &Node| nodes.contains(&(n as *const Node))),
            directions,
            widths,
            steps: None,
            state: self.state_input(stack),
            advice: TORCH_ADVICE,
        })
    }

    /// The graph's nodes other than the recurrence's, as a run evaluates them around it, from
    /// its one input to its outputs; `opset`: the graph's version of the default domain.
    pub(super) fn program(&self, boundary: &Boundary<'g>, opset: i64) -> Result<Program> {
        let x = boundary.x;
        let inputs: Vec<&str> = self
            .inputs
            .iter()
            .copied()
            .filter(|&i| Some(i) != boundary.state)
            .collect();
        let input = match inputs.as_slice() {
            [one] => *one,
            other => {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX whole model of {} inputs ({}){}; rnn runs a whole model from \
                         one input and the RNN's h0",
                        other.len(),
                        other.join(", "),
                        boundary
                            .state
                            .map(|s| format!(" besides the RNN's h0 `{s}`"))
                            .unwrap_or_default()
                    ),
                    ONE_INPUT,
                ))
            }
        };
        // The nodes the outputs and the stack's input need, walked back from them.
        let mut needed: HashSet<*const Node> = HashSet::new();
        let mut read_from_stack: HashSet<&str> = HashSet::new();
        let mut pending: Vec<&str> = self.graph.output.iter().map(|o| o.name.as_str()).collect();
        pending.push(x);
        let mut seen: HashSet<&str> = HashSet::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name) {
                continue;
            }
            if boundary.provided.contains_key(name) {
                read_from_stack.insert(name);
                continue;
            }
            if Some(name) == boundary.state {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX whole model that reads its RNN's initial state `{name}` \
                         elsewhere too (rnn gives it to the RNN alone)"
                    ),
                    boundary.advice,
                ));
            }
            let Some(&node) = self.producer.get(name) else {
                if name == input || self.initializers.contains_key(name) {
                    continue;
                }
                return Err(malformed(
                    self.path,
                    format!("`{name}` is read but neither computed, given nor stored"),
                ));
            };
            if (boundary.inside)(node) {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX whole model that reads `{name}`, computed inside its RNN by the \
                         {} (rnn gives the top RNN node's Y and each node's Y_h)",
                        node_name(node)
                    ),
                    boundary.advice,
                ));
            }
            if node.op_type == "RNN" {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX whole model whose {} is not part of its one RNN stack",
                        node_name(node)
                    ),
                    boundary.advice,
                ));
            }
            if needed.insert(node as *const Node) {
                pending.extend(
                    node.input
                        .iter()
                        .map(String::as_str)
                        .filter(|n| !n.is_empty()),
                );
            }
        }
        // Each needed node as an op, the constants they read, in an order that computes every
        // value before it is read (Kahn's, the file's order among the ready).
        let mut constants: Vec<(String, Tensor)> = Vec::new();
        let mut stored = 0usize;
        let budget = self.weight_budget();
        let mut keep = |name: &str, t: Tensor, constants: &mut Vec<(String, Tensor)>| {
            stored = stored.saturating_add(t.elem_count() * t.dtype().size_in_bytes());
            if stored > budget {
                return Err(malformed(
                    self.path,
                    format!(
                        "the nodes around the RNN name {stored} bytes of constants, more than 4 \
                         per byte of the file plus 64 MiB"
                    ),
                ));
            }
            constants.push((name.to_string(), t));
            Ok(())
        };
        let mut ops: Vec<crate::onnx_program::Node> = Vec::new();
        for node in &self.graph.node {
            if !needed.contains(&(node as *const Node)) {
                continue;
            }
            if node.op_type == "Constant" && node.domain.is_empty() {
                let name = node.output.first().map(String::as_str).unwrap_or("");
                keep(
                    name,
                    self.constant_value(node, boundary.advice)?,
                    &mut constants,
                )?;
                continue;
            }
            let op = self.op(node, opset, boundary.advice)?;
            if node.output.len() != 1 {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX {} with {} outputs, where rnn evaluates it with one",
                        node_name(node),
                        node.output.len()
                    ),
                    boundary.advice,
                ));
            }
            ops.push(crate::onnx_program::Node {
                label: node_name(node),
                op,
                inputs: node.input.clone(),
                output: node.output[0].clone(),
            });
        }
        let mut initialisers_read: BTreeSet<&str> = BTreeSet::new();
        for node in &ops {
            for name in &node.inputs {
                if self.initializers.contains_key(name.as_str()) && name != input {
                    initialisers_read.insert(name);
                }
            }
        }
        if self.initializers.contains_key(x) {
            initialisers_read.insert(x);
        }
        for name in initialisers_read {
            keep(
                name,
                to_tensor(self.path, self.initializers[name])?,
                &mut constants,
            )?;
        }
        let steps = self.schedule(ops, x, &read_from_stack, input, &constants)?;
        let vocabulary = self.vocabulary(&steps, input, &constants);
        // A dimension of a constant that holds nothing costs the file nothing: not counted.
        let widest = constants
            .iter()
            .filter(|(_, t)| t.elem_count() > 0)
            .flat_map(|(_, t)| t.dims().to_vec())
            .chain(boundary.widths.iter().copied())
            .max()
            .unwrap_or(1);
        let outputs: Vec<String> = self.graph.output.iter().map(|o| o.name.clone()).collect();
        let last_reads = last_reads(&steps, &outputs, x);
        Ok(Program {
            steps,
            constants,
            input: input.to_string(),
            outputs,
            stack: StackIo {
                x: x.to_string(),
                provided: boundary
                    .provided
                    .iter()
                    .filter(|(name, _)| read_from_stack.contains(*name))
                    .map(|(name, p)| (name.to_string(), *p))
                    .collect(),
                directions: boundary.directions.clone(),
                steps: boundary.steps,
                state: boundary.state.map(str::to_string),
            },
            input_dims: self
                .graph
                .input
                .iter()
                .find(|v| v.name == input)
                .and_then(|v| v.fixed_dims()),
            vocabulary,
            widest,
            last_reads,
            float: DType::F32,
        })
    }

    /// The steps in an order that computes each value before it is read: the nodes in the
    /// file's order where it allows (ONNX requires it), the stack where its input is ready.
    fn schedule(
        &self,
        ops: Vec<crate::onnx_program::Node>,
        x: &str,
        from_stack: &HashSet<&str>,
        input: &str,
        constants: &[(String, Tensor)],
    ) -> Result<Vec<Step>> {
        let mut ready: HashSet<String> = constants.iter().map(|(n, _)| n.clone()).collect();
        ready.insert(input.to_string());
        ready.insert(String::new());
        // Which nodes read each value not yet computed, and how many such each node reads.
        let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
        let mut missing: Vec<usize> = Vec::with_capacity(ops.len());
        for (k, node) in ops.iter().enumerate() {
            let unread: HashSet<&String> =
                node.inputs.iter().filter(|i| !ready.contains(*i)).collect();
            for name in &unread {
                readers.entry((*name).clone()).or_default().push(k);
            }
            missing.push(unread.len());
        }
        let mut waiting: Vec<Option<crate::onnx_program::Node>> =
            ops.into_iter().map(Some).collect();
        let mut queue: BTreeSet<usize> = (0..waiting.len()).filter(|&k| missing[k] == 0).collect();
        let mut stack_pending = true;
        let mut steps = Vec::with_capacity(waiting.len() + 1);
        let done = |name: &str, queue: &mut BTreeSet<usize>, missing: &mut Vec<usize>| {
            for &k in readers.get(name).map(Vec::as_slice).unwrap_or(&[]) {
                missing[k] -= 1;
                if missing[k] == 0 {
                    queue.insert(k);
                }
            }
        };
        let mut computed: HashSet<String> = ready;
        loop {
            if stack_pending && computed.contains(x) {
                stack_pending = false;
                steps.push(Step::Stack);
                for name in from_stack {
                    computed.insert((*name).to_string());
                    done(name, &mut queue, &mut missing);
                }
                continue;
            }
            let Some(k) = queue.pop_first() else { break };
            let Some(node) = waiting[k].take() else {
                continue;
            };
            if computed.insert(node.output.clone()) {
                done(&node.output, &mut queue, &mut missing);
            }
            steps.push(Step::Node(node));
        }
        if let Some(node) = waiting.iter().flatten().next() {
            return Err(malformed(
                self.path,
                format!(
                    "the {} reads a value that no node computes before it (a cycle)",
                    node.label
                ),
            ));
        }
        if stack_pending {
            return Err(malformed(
                self.path,
                format!("the RNN's input `{x}` is never computed"),
            ));
        }
        Ok(steps)
    }

    /// The embedding's rows, where the graph's input (or its cast to another integer type) is
    /// the indices of a `Gather` on a stored table (token ids).
    fn vocabulary(
        &self,
        steps: &[Step],
        input: &str,
        constants: &[(String, Tensor)],
    ) -> Option<usize> {
        let table = |name: &str| constants.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        let nodes = steps.iter().filter_map(|s| match s {
            Step::Node(n) => Some(n),
            Step::Stack => None,
        });
        // The input, and what casts it to another integer type (int32 ids made int64).
        let mut ids: HashSet<&str> = HashSet::from([input]);
        for n in nodes.clone() {
            if matches!(n.op, Op::Cast { float: false })
                && n.inputs.first().is_some_and(|i| ids.contains(i.as_str()))
            {
                ids.insert(n.output.as_str());
            }
        }
        nodes
            .filter(|n| {
                matches!(n.op, Op::Gather { axis: 0 })
                    && n.inputs.get(1).is_some_and(|i| ids.contains(i.as_str()))
            })
            .filter_map(|n| table(&n.inputs[0]).map(|t| t.dims().first().copied().unwrap_or(0)))
            .min()
    }

    /// A `Constant` node's value.
    fn constant_value(&self, node: &Node, advice: &str) -> Result<Tensor> {
        let bad = |what: String| {
            refuse(
                self.path,
                format!("an ONNX {} whose value is {what}", node_name(node)),
                advice,
            )
        };
        let [attribute] = node.attribute.as_slice() else {
            return Err(bad(format!("given by {} attributes", node.attribute.len())));
        };
        let device = &candle_core::Device::Cpu;
        let tensor_error = |error| WeightsError::Tensor {
            path: self.path.to_owned(),
            error,
        };
        match attribute.name.as_str() {
            "value" => match &attribute.t {
                Some(t) => to_tensor(self.path, t),
                None => Err(bad("missing".into())),
            },
            "value_float" => Tensor::new(attribute.f, device).map_err(tensor_error),
            "value_floats" => {
                Tensor::new(attribute.floats.as_slice(), device).map_err(tensor_error)
            }
            "value_int" => Tensor::new(attribute.i, device).map_err(tensor_error),
            "value_ints" => Tensor::new(attribute.ints.as_slice(), device).map_err(tensor_error),
            other => Err(bad(format!("a {other}"))),
        }
    }

    /// `node` as an op rnn evaluates, its attributes read; refused by name otherwise.
    fn op(&self, node: &Node, opset: i64, advice: &str) -> Result<Op> {
        let unsupported = || {
            refuse(
                self.path,
                format!(
                    "an ONNX graph with a {} around its recurrence",
                    node_name(node)
                ),
                advice,
            )
        };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(unsupported());
        }
        let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let int = |name: &str, default: i64| attribute(name).map_or(default, |a| a.i);
        let float = |name: &str, default: f64| attribute(name).map_or(default, |a| f64::from(a.f));
        let ints = |name: &str| attribute(name).map(|a| a.ints.clone());
        let known = |names: &[&str]| -> Result<()> {
            match node
                .attribute
                .iter()
                .find(|a| !names.contains(&a.name.as_str()))
            {
                Some(a) => Err(refuse(
                    self.path,
                    format!(
                        "an ONNX {} with the attribute {}, which rnn does not evaluate",
                        node_name(node),
                        a.name
                    ),
                    advice,
                )),
                None => Ok(()),
            }
        };
        let op = match node.op_type.as_str() {
            "Gather" => {
                known(&["axis"])?;
                Op::Gather {
                    axis: int("axis", 0),
                }
            }
            "Shape" => {
                known(&["start", "end"])?;
                Op::Shape {
                    start: int("start", 0),
                    end: attribute("end").map(|a| a.i),
                }
            }
            "ConstantOfShape" => {
                known(&["value"])?;
                let value = match attribute("value").and_then(|a| a.t.as_ref()) {
                    Some(t) => to_tensor(self.path, t)?,
                    None => Tensor::new(&[0f32], &candle_core::Device::Cpu).map_err(|error| {
                        WeightsError::Tensor {
                            path: self.path.to_owned(),
                            error,
                        }
                    })?,
                };
                if value.elem_count() != 1 {
                    return Err(WeightsError::Shape {
                        path: self.path.to_owned(),
                        name: format!("value of {}", node_name(node)),
                        expected: "one element".into(),
                        found: value.dims().to_vec(),
                    });
                }
                Op::ConstantOfShape { value }
            }
            // Axes as an attribute before opset 13, as an input since.
            "Unsqueeze" | "Squeeze" => {
                let attribute = ints("axes");
                let input = node.input.get(1).is_some_and(|n| !n.is_empty());
                if (opset >= 13 && attribute.is_some()) || (opset < 13 && input) {
                    return Err(refuse(
                        self.path,
                        format!(
                            "an ONNX {} whose axes are {} in a graph of opset {opset}, which \
                             gives them {}",
                            node_name(node),
                            if input { "an input" } else { "an attribute" },
                            if opset >= 13 {
                                "as an input"
                            } else {
                                "as an attribute"
                            }
                        ),
                        advice,
                    ));
                }
                known(&["axes"])?;
                if node.op_type == "Squeeze" {
                    Op::Squeeze { axes: attribute }
                } else {
                    Op::Unsqueeze { axes: attribute }
                }
            }
            "Concat" => {
                known(&["axis"])?;
                Op::Concat {
                    axis: int("axis", 0),
                }
            }
            "Transpose" => {
                known(&["perm"])?;
                Op::Transpose { perm: ints("perm") }
            }
            "Reshape" => {
                known(&["allowzero"])?;
                Op::Reshape {
                    allowzero: int("allowzero", 0) != 0,
                }
            }
            "Slice" if opset >= 10 => {
                known(&[])?;
                Op::Slice
            }
            "Expand" => {
                known(&[])?;
                Op::Expand
            }
            "Cast" => {
                known(&["to", "saturate"])?;
                let to = int("to", 0);
                // float32 (rnn's float type; a cast to another would compute otherwise than
                // ONNX Runtime) or an integer type (int64 holds every int32).
                match to {
                    1 => Op::Cast { float: true },
                    6 | 7 => Op::Cast { float: false },
                    _ => {
                        return Err(refuse(
                            self.path,
                            format!(
                                "an ONNX {} to the ONNX data type {to}, which rnn does not \
                                 compute in",
                                node_name(node)
                            ),
                            advice,
                        ))
                    }
                }
            }
            "Identity" => {
                known(&[])?;
                Op::Identity
            }
            "MatMul" => {
                known(&[])?;
                Op::MatMul
            }
            "Gemm" => {
                known(&["alpha", "beta", "transA", "transB"])?;
                Op::Gemm {
                    alpha: float("alpha", 1.0),
                    beta: float("beta", 1.0),
                    trans_a: int("transA", 0) != 0,
                    trans_b: int("transB", 0) != 0,
                }
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                known(&[])?;
                Op::Binary(match node.op_type.as_str() {
                    "Add" => Binary::Add,
                    "Sub" => Binary::Sub,
                    "Mul" => Binary::Mul,
                    _ => Binary::Div,
                })
            }
            "Softmax" | "LogSoftmax" => {
                known(&["axis"])?;
                let coerced = opset < 13;
                Op::Softmax {
                    axis: int("axis", if coerced { 1 } else { -1 }),
                    coerced,
                    log: node.op_type == "LogSoftmax",
                }
            }
            "Sigmoid" | "Tanh" | "Relu" => {
                known(&[])?;
                Op::Elementwise(match node.op_type.as_str() {
                    "Sigmoid" => Nonlinearity::Sigmoid,
                    "Tanh" => Nonlinearity::Tanh,
                    _ => Nonlinearity::Relu,
                })
            }
            "Flatten" => {
                known(&["axis"])?;
                Op::Flatten {
                    axis: int("axis", 1),
                }
            }
            "Equal" => {
                known(&[])?;
                Op::Equal
            }
            "Where" => {
                known(&[])?;
                Op::Where
            }
            "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" => {
                // Axes as an attribute until ReduceSum's opset 13 and the others' 18, as an
                // input since.
                let since = if node.op_type == "ReduceSum" { 13 } else { 18 };
                let input = node.input.get(1).is_some_and(|n| !n.is_empty());
                let attribute = ints("axes");
                if (opset >= since && attribute.is_some()) || (opset < since && input) {
                    return Err(refuse(
                        self.path,
                        format!(
                            "an ONNX {} whose axes are {} in a graph of opset {opset}",
                            node_name(node),
                            if input { "an input" } else { "an attribute" },
                        ),
                        advice,
                    ));
                }
                // `noop_with_empty_axes` came with the axes as an input.
                if opset < since {
                    known(&["axes", "keepdims"])?;
                } else {
                    known(&["axes", "keepdims", "noop_with_empty_axes"])?;
                }
                Op::Reduce {
                    kind: match node.op_type.as_str() {
                        "ReduceSum" => Reduce::Sum,
                        "ReduceMean" => Reduce::Mean,
                        "ReduceMax" => Reduce::Max,
                        _ => Reduce::Min,
                    },
                    axes: attribute,
                    keepdims: int("keepdims", 1) != 0,
                    noop_with_empty_axes: int("noop_with_empty_axes", 0) != 0,
                }
            }
            _ => return Err(unsupported()),
        };
        Ok(op)
    }
}

/// For each step, the values that no later step reads and the graph does not output.
fn last_reads(steps: &[Step], outputs: &[String], x: &str) -> Vec<Vec<String>> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (k, step) in steps.iter().enumerate() {
        match step {
            Step::Node(node) => {
                for name in &node.inputs {
                    last.insert(name, k);
                }
            }
            Step::Stack => {
                last.insert(x, k);
            }
        }
    }
    let mut reads = vec![Vec::new(); steps.len()];
    for (name, k) in last {
        if !name.is_empty() && !outputs.iter().any(|o| o == name) {
            reads[k].push(name.to_string());
        }
    }
    reads
}
