//! The recurrence of a graph that runs a Keras `SimpleRNN` in ONNX `Loop` nodes, as tf2onnx
//! converts it, lifted back into one stack of layers.
//!
//! tf2onnx writes, per layer: the input made time-major (`Transpose` perm `[1, 0, 2]`), a zero
//! state (`Expand` of 0 to the batch's shape), and a `Loop` without a trip count whose carried
//! values are the step counter `time` (from 0), the state, the number of steps and the weights
//! (passed through unchanged), and whose body computes `act(Gather(x, time) · W + b + h · R)`,
//! carries it as the next state and emits it as the scan output, adds 1 to `time` and goes on
//! while `time < steps`. The layer above reads the scan output made batch-major and back; the
//! model's output is the top scan output made batch-major (`return_sequences=True`) or its last
//! step (`Slice` then `Squeeze`).
//!
//! Every part of that is checked: the body's every node, the counter starting at 0 and adding
//! 1, the condition comparing it with the number of steps, that number being the input's
//! length (or a constant, said as a note), the state starting from zeros, the weights stored
//! in the file. Any node that is not part of the pattern is named and the graph refused.

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Tensor};

use super::graph::{input, Lifted, Reader, Used, GLUE};
use super::proto::{Graph, Node, TensorProto};
use super::tensor::to_tensor;
use super::unrolled::UNROLLED;
use super::whole::Boundary;
use super::{node_name, refuse};
use crate::config::{LayerConfig, Recorded};
use crate::error::{Result, WeightsError};
use crate::onnx_program::Provided;
use rnn_core::Nonlinearity;

const ADVICE: &str = "give rnn the model it was converted from: a Keras model saved with \
                      model.save(\"m.keras\") (Keras 3) or model.save(\"m.h5\") (tf-keras)";

/// One layer lifted from a `Loop`.
struct Layer<'g> {
    activation: Nonlinearity,
    w: &'g TensorProto,
    b: Option<&'g TensorProto>,
    r: &'g TensorProto,
    /// The time-major sequence the body gathers from.
    sequence: &'g str,
    /// The constant number of steps the loop runs, where the graph fixes one.
    fixed_steps: Option<i64>,
}

struct Lifter<'r, 'g> {
    reader: &'r Reader<'g>,
    used: Used,
    /// The inputs of the lifted loops that steer them rather than carry data (the first
    /// condition, the counter's start, the number of steps, the state's start), each checked.
    controls: HashSet<&'g str>,
}

/// The tensors under PyTorch's names, the notes and the configuration of the stack `reader`'s
/// `Loop` nodes run.
pub(super) fn lift(reader: &Reader) -> Result<Lifted> {
    let mut lifter = Lifter {
        reader,
        used: Used::default(),
        controls: HashSet::new(),
    };
    lifter.run()
}

/// The recurrence of a whole model's graph, where `Loop` nodes run it (tf2onnx's Keras model
/// with layers around its SimpleRNN): the lifted stack, and where it meets the rest of the
/// graph (its bottom layer's time-major input, each layer's scan output). None where the
/// graph has no `Loop` to lift; where none lifts, why the first did not.
pub(super) fn lift_whole<'g>(reader: &Reader<'g>) -> Result<Vec<(Lifted, Boundary<'g>)>> {
    let loops: Vec<&'g Node> = reader
        .graph
        .node
        .iter()
        .filter(|n| n.op_type == "Loop" && n.domain.is_empty())
        .collect();
    if loops.len() > MAX_LOOPS {
        return Err(refuse(
            reader.path,
            format!(
                "an ONNX graph of {} Loop nodes, more than rnn tries ({MAX_LOOPS})",
                loops.len()
            ),
            ADVICE,
        ));
    }
    let is_loop = |name: &str| {
        reader
            .producer
            .get(name)
            .is_some_and(|n| n.op_type == "Loop" && n.domain.is_empty())
    };
    // The stack is the longest chain of layers from one loop's scan output down.
    let mut best: Option<(Lifter, Vec<Layer>, Vec<&'g str>)> = None;
    let mut tie = false;
    // Why the first loop tried did not lift, said where none does.
    let mut first_error = None;
    for node in loops {
        let carried = node.input.len().saturating_sub(2);
        for top in node.output.iter().skip(carried).map(String::as_str) {
            let mut lifter = Lifter {
                reader,
                used: Used::default(),
                controls: HashSet::new(),
            };
            let (mut layers, mut scans) = (Vec::new(), vec![top]);
            let mut scan = top;
            let lifted = loop {
                let layer = match lifter.layer(scan) {
                    Ok(layer) => layer,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        break false;
                    }
                };
                let sequence = layer.sequence;
                layers.push(layer);
                // The layer below: its scan output made batch-major and back.
                let below = lifter
                    .peek_swap(sequence)
                    .and_then(|inner| lifter.peek_swap(inner))
                    .filter(|&b| is_loop(b));
                match below {
                    Some(b) if layers.len() <= reader.graph.node.len() => {
                        let inner = lifter.swap(sequence).unwrap_or_default();
                        lifter.swap(inner);
                        scans.push(b);
                        scan = b;
                    }
                    _ => break true,
                }
            };
            if !lifted {
                continue;
            }
            match &best {
                Some((_, b, _)) if b.len() == layers.len() => tie = true,
                Some((_, b, _)) if b.len() > layers.len() => {}
                _ => {
                    tie = false;
                    best = Some((lifter, layers, scans));
                }
            }
        }
    }
    let Some((lifter, mut layers, mut scans)) = best else {
        return first_error.map_or(Ok(Vec::new()), Err);
    };
    if tie {
        return Err(lifter.plain("a graph of two stacks of Loop nodes".into()));
    }
    layers.reverse();
    scans.reverse();
    let (tensors, mut metadata, mut recorded) = lifter.canonical(&layers)?;
    // Time-major at the bottom loop's sequence: the graph's own nodes transpose it there.
    recorded.batch_first = Some(false);
    let steps = layers.iter().find_map(|l| l.fixed_steps);
    if let Some(k) = steps {
        metadata.insert(
            UNROLLED.into(),
            format!(
                "the graph's Loop runs {k} steps, a number tf2onnx fixed from the model's \
                 input shape: rnn runs it whole on inputs of {k} steps"
            ),
        );
    }
    let mut widths = Vec::new();
    for layer in &layers {
        widths.push(layer.r.dims.first().copied().unwrap_or(0).max(0) as usize);
    }
    let provided = scans
        .iter()
        .enumerate()
        .map(|(k, &scan)| (scan, Provided::Layer(k)))
        .collect();
    let boundary = Boundary {
        x: layers[0].sequence,
        provided,
        // The lifted steps are plain ops: where the graph reads a value of theirs that the
        // stack does not give (a row of a projection another recurrence shares), the
        // evaluator computes it as the graph says.
        inside: Box::new(|_: &Node| false),
        directions: vec![1; layers.len()],
        widths,
        steps: steps.and_then(|k| usize::try_from(k).ok()),
        state: None,
        advice: super::whole::KERAS_ADVICE,
    };
    Ok(vec![((tensors, metadata, recorded), boundary)])
}

/// The most `Loop` nodes a whole model's graph may hold: rnn lifts from each.
const MAX_LOOPS: usize = 64;

impl<'r, 'g> Lifter<'r, 'g> {
    /// The input of a `Transpose` perm `[1, 0, 2]`, not marked.
    fn peek_swap(&self, name: &str) -> Option<&'g str> {
        let node = self.producer_of(name, "Transpose")?;
        (super::attributes::Attributes::ints_of(node, "perm") == [1, 0, 2]).then(|| input(node, 0))
    }

    fn run(&mut self) -> Result<Lifted> {
        let graph = self.reader.graph;
        let x = match self.reader.inputs[..] {
            [x] => x,
            _ => return Err(self.plain("a graph of other than one input".into())),
        };
        let output = match &graph.output[..] {
            [o] => o.name.as_str(),
            _ => return Err(self.plain("a graph of other than one output".into())),
        };
        // The top layer's scan output: its last step, or all steps made batch-major.
        let mut scan = match self.last_step(output) {
            Some(scan) => scan,
            None => self
                .swap(output)
                .ok_or_else(|| self.plain(format!("a graph whose output `{output}` is neither the last step nor every step of a Loop's scan output")))?,
        };
        let mut layers = Vec::new();
        loop {
            if layers.len() > graph.node.len() {
                return Err(self.plain("a cycle in the graph".into()));
            }
            let layer = self.layer(scan)?;
            let sequence = layer.sequence;
            layers.push(layer);
            // The sequence a layer reads: the input made time-major, or the scan output of the
            // layer below made batch-major and back.
            let Some(inner) = self.swap(sequence) else {
                return Err(self.plain(format!(
                    "a graph whose Loop reads `{sequence}`, not a time-major Transpose"
                )));
            };
            if inner == x {
                break;
            }
            scan = self.swap(inner).ok_or_else(|| {
                self.plain(format!(
                    "a graph whose Loop reads `{inner}`, neither the input nor a Loop's output"
                ))
            })?;
        }
        layers.reverse();
        self.accounted()?;
        self.canonical(&layers)
    }

    /// `Squeeze(Slice(scan, [-1], [≥ i32::MAX], [0]), [0])`: the scan output's name.
    fn last_step(&mut self, name: &str) -> Option<&'g str> {
        let squeeze = self.producer_of(name, "Squeeze")?;
        if self.ints(squeeze.input.get(1)).as_deref() != Some(&[0]) {
            return None;
        }
        let slice = self.producer_of(input(squeeze, 0), "Slice")?;
        let ints = |i| self.ints(slice.input.get(i));
        let last = ints(1).as_deref() == Some(&[-1])
            && ints(2).is_some_and(|e| e.len() == 1 && e[0] >= i64::from(i32::MAX))
            && ints(3).as_deref() == Some(&[0])
            && slice
                .input
                .get(4)
                .is_none_or(|s| s.is_empty() || ints(4).as_deref() == Some(&[1]));
        if !last {
            return None;
        }
        self.used.mark(squeeze);
        self.used.mark(slice);
        Some(input(slice, 0))
    }

    /// The input of a `Transpose` perm `[1, 0, 2]`, marked as used.
    fn swap(&mut self, name: &str) -> Option<&'g str> {
        let node = self.producer_of(name, "Transpose")?;
        if super::attributes::Attributes::ints_of(node, "perm") != [1, 0, 2] {
            return None;
        }
        self.used.mark(node);
        Some(input(node, 0))
    }

    /// The layer whose `Loop` emits `scan` as a scan output.
    fn layer(&mut self, scan: &'g str) -> Result<Layer<'g>> {
        let node = self
            .reader
            .producer
            .get(scan)
            .copied()
            .filter(|n| n.op_type == "Loop" && n.domain.is_empty())
            .ok_or_else(|| self.plain(format!("a graph whose `{scan}` is not a Loop's output")))?;
        self.used.mark(node);
        let body = node
            .attribute
            .iter()
            .find(|a| a.name == "body")
            .and_then(|a| a.g.as_ref())
            .ok_or_else(|| self.breaks(node, "expected a body graph".into()))?;
        if !input(node, 0).is_empty() {
            return Err(self.breaks(node, "expected no trip count (M)".into()));
        }
        let carried = node.input.len().saturating_sub(2);
        let scan_index = node.output.iter().position(|o| o == scan).unwrap_or(0);
        if scan_index < carried
            || body.input.len() != carried + 2
            || body.output.len() != node.output.len() + 1
        {
            return Err(self.breaks(
                node,
                "expected its output to be a scan output and its body to carry what it is \
                 given"
                    .into(),
            ));
        }
        let body_in: Vec<&str> = body.input.iter().map(|v| v.name.as_str()).collect();
        let body_out: Vec<&str> = body.output.iter().map(|v| v.name.as_str()).collect();
        let inner = Body::new(body);
        // The activation the scan output and one carried value hold.
        let emitted = inner.through_identity(body_out[1 + scan_index]);
        let act =
            inner.producer.get(emitted).copied().ok_or_else(|| {
                self.body_breaks(node, "emits a value it does not compute".into())
            })?;
        let activation = match act.op_type.as_str() {
            "Tanh" => Nonlinearity::Tanh,
            "Relu" => Nonlinearity::Relu,
            "Sigmoid" => Nonlinearity::Sigmoid,
            other => {
                return Err(
                    self.body_breaks(node, format!("applies {other}, not tanh, relu or sigmoid"))
                )
            }
        };
        let state = (0..carried)
            .find(|&j| inner.through_identity(body_out[1 + j]) == emitted)
            .ok_or_else(|| self.body_breaks(node, "does not carry the state it emits".into()))?;
        let state_in = body_in[2 + state];
        let add = inner.op(input(act, 0), "Add").ok_or_else(|| {
            self.body_breaks(node, "expected an Add before the activation".into())
        })?;
        let (mut recurrent, mut projected) = (input(add, 0), input(add, 1));
        let reads_state = |name: &str| {
            inner
                .op(name, "MatMul")
                .is_some_and(|m| input(m, 0) == state_in)
        };
        if !reads_state(recurrent) {
            std::mem::swap(&mut recurrent, &mut projected);
        }
        let matmul_r = inner
            .op(recurrent, "MatMul")
            .filter(|m| input(m, 0) == state_in)
            .ok_or_else(|| {
                self.body_breaks(node, "does not multiply the state it carries".into())
            })?;
        let (matmul_w, bias) = match inner.producer.get(projected) {
            Some(n) if n.op_type == "Add" => {
                let (a, b) = (input(n, 0), input(n, 1));
                let (m, bias) = if inner.op(a, "MatMul").is_some() {
                    (a, b)
                } else {
                    (b, a)
                };
                (inner.op(m, "MatMul"), Some(bias))
            }
            Some(n) if n.op_type == "MatMul" => (Some(*n), None),
            _ => (None, None),
        };
        let matmul_w = matmul_w
            .ok_or_else(|| self.body_breaks(node, "does not project the step's input".into()))?;
        let gather = inner.op(input(matmul_w, 0), "Gather").ok_or_else(|| {
            self.body_breaks(node, "does not read the step's input with a Gather".into())
        })?;
        let axis = gather
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .map_or(0, |a| a.i);
        let sequence = input(gather, 0);
        if axis != 0 || inner.producer.contains_key(sequence) || body_in.contains(&sequence) {
            return Err(self.body_breaks(
                node,
                "does not gather the steps of a sequence outside it".into(),
            ));
        }
        let time_in = input(gather, 1);
        let time = body_in
            .iter()
            .skip(2)
            .position(|&n| n == time_in)
            .ok_or_else(|| self.body_breaks(node, "gathers by a value it does not carry".into()))?;
        // The weights: carried unchanged from initialisers, or initialisers of the graph.
        let weight = |name: &str| -> Option<&'g TensorProto> {
            match body_in.iter().skip(2).position(|&n| n == name) {
                Some(j) if body_out[1 + j] == name => {
                    self.reader.initializers.get(input(node, 2 + j)).copied()
                }
                Some(_) => None,
                None => self.reader.initializers.get(name).copied(),
            }
        };
        let w = weight(input(matmul_w, 1)).ok_or_else(|| {
            self.body_breaks(node, "projects by a weight not stored in the file".into())
        })?;
        let r = weight(input(matmul_r, 1)).ok_or_else(|| {
            self.body_breaks(
                node,
                "multiplies the state by a weight not stored in the file".into(),
            )
        })?;
        let b = match bias {
            Some(name) => Some(weight(name).ok_or_else(|| {
                self.body_breaks(node, "adds a bias not stored in the file".into())
            })?),
            None => None,
        };
        // The counter: from 0, plus 1 each step; the loop goes on while it is below `steps`.
        let next = inner
            .op(body_out[1 + time], "Add")
            .filter(|a| {
                input(a, 0) == time_in && inner.scalar(input(a, 1)).is_some_and(|one| one == 1.0)
            })
            .ok_or_else(|| self.body_breaks(node, "does not add 1 to its step counter".into()))?;
        let less = inner
            .op(inner.through_casts(body_out[0]), "Less")
            .ok_or_else(|| {
                self.body_breaks(
                    node,
                    "does not compare its counter with the number of steps".into(),
                )
            })?;
        if inner.through_casts(input(less, 0)) != next.output.first().map_or("", String::as_str) {
            return Err(self.body_breaks(node, "compares another value than its next step".into()));
        }
        let limit_in = inner.through_casts(input(less, 1));
        let limit = body_in
            .iter()
            .skip(2)
            .position(|&n| n == limit_in)
            .filter(|&j| body_out[1 + j] == limit_in)
            .ok_or_else(|| {
                self.body_breaks(
                    node,
                    "compares its counter with a value it does not carry unchanged".into(),
                )
            })?;
        if self.reader.scalar(input(node, 2 + time)) != Some(0.0) {
            return Err(self.breaks(node, "expected its step counter to start at 0".into()));
        }
        let fixed_steps = self.steps(node, input(node, 2 + limit), sequence)?;
        // The first condition: 0 < steps.
        let first = input(node, 1);
        let starts = match self.producer_of(first, "Less") {
            Some(l) => {
                let (a, b) = (input(l, 0), input(l, 1));
                let zero = self.reader.scalar(a) == Some(0.0);
                let steps_ok = match fixed_steps {
                    Some(k) => self.reader.scalar(b) == Some(k as f64) && k > 0,
                    None => self.steps(node, b, sequence)?.is_none(),
                };
                self.used.mark(l);
                zero && steps_ok
            }
            None => false,
        };
        if !starts {
            return Err(self.breaks(node, "expected its first condition to be 0 < steps".into()));
        }
        // The state starts from zeros.
        if !self.reader.zeros(input(node, 2 + state)) {
            return Err(self.breaks(node, "expected its state to start from zeros".into()));
        }
        self.used.mark_glue(self.reader, input(node, 2 + state));
        for control in [1, 2 + time, 2 + limit, 2 + state] {
            self.controls.insert(input(node, control));
        }
        // Every other carried value is one of these; every body node is part of the step.
        let known = [time, state, limit];
        for j in 0..carried {
            let passthrough = body_out[1 + j] == body_in[2 + j];
            if !known.contains(&j) && !passthrough {
                return Err(self.body_breaks(
                    node,
                    format!("carries `{}`, which is not part of a step", body_in[2 + j]),
                ));
            }
        }
        let step: HashSet<*const Node> = [add, act, matmul_r, matmul_w, gather, next, less]
            .into_iter()
            .chain(inner.producer.get(projected).copied())
            .map(|n| n as *const Node)
            .collect();
        for n in &body.node {
            let plumbing = matches!(n.op_type.as_str(), "Identity" | "Cast" | "Constant");
            if !plumbing && !step.contains(&(n as *const Node)) {
                return Err(self.body_breaks(
                    node,
                    format!("holds a {} that is not part of a step", node_name(n)),
                ));
            }
        }
        Ok(Layer {
            activation,
            w,
            b,
            r,
            sequence,
            fixed_steps,
        })
    }

    /// The number of steps a loop is given (`limit`): a constant (returned), or the length of
    /// `sequence` (axis 0 of its `Shape`, sliced and squeezed, cast or not; `None`).
    fn steps(&mut self, node: &Node, limit: &str, sequence: &str) -> Result<Option<i64>> {
        if let Some(k) = self.reader.scalar(limit) {
            self.used.mark_constant(self.reader, limit);
            return Ok(Some(k as i64));
        }
        let mut name = self.through_casts(limit);
        if let Some(squeeze) = self.producer_of(name, "Squeeze") {
            if self.ints(squeeze.input.get(1)).as_deref() == Some(&[0]) {
                self.used.mark(squeeze);
                name = self.through_casts(input(squeeze, 0));
            }
        }
        let dim0 = self.producer_of(name, "Slice").and_then(|slice| {
            let ints = |i| self.ints(slice.input.get(i));
            let ok = ints(1).as_deref() == Some(&[0]) && ints(2).as_deref() == Some(&[1]);
            ok.then_some(slice)
        });
        let shape = dim0.and_then(|slice| {
            let shape = self.producer_of(self.through_casts(input(slice, 0)), "Shape")?;
            (input(shape, 0) == sequence).then_some((slice, shape))
        });
        match shape {
            Some((slice, shape)) => {
                self.used.mark(slice);
                self.used.mark(shape);
                self.mark_casts(limit);
                Ok(None)
            }
            None => Err(self.breaks(
                node,
                format!("expected it to run as many steps as `{sequence}` has"),
            )),
        }
    }

    /// Refuses a node of the graph that the stack does not account for. Shape ops left over
    /// may feed only other shape ops and the lifted loops' control inputs (values checked
    /// above); each value's readers are listed once, so this is linear in the graph.
    fn accounted(&self) -> Result<()> {
        let shape_op = |op: &str| GLUE.contains(&op) || matches!(op, "Cast" | "Less");
        let mut readers: HashMap<&str, Vec<&Node>> = HashMap::new();
        for node in &self.reader.graph.node {
            for name in &node.input {
                readers.entry(name.as_str()).or_default().push(node);
            }
        }
        for node in &self.reader.graph.node {
            if self.used.contains(node) {
                continue;
            }
            if !shape_op(&node.op_type) {
                return Err(self.breaks(node, "it is not part of the recurrence".into()));
            }
            for output in &node.output {
                let control = self.controls.contains(output.as_str());
                let fed_data = readers.get(output.as_str()).is_some_and(|readers| {
                    readers.iter().any(|n| match n.op_type.as_str() {
                        "Loop" => !(self.used.contains(n) && control),
                        op => !shape_op(op),
                    })
                });
                let is_output = self.reader.graph.output.iter().any(|o| &o.name == output);
                if fed_data || is_output {
                    return Err(
                        self.breaks(node, "it computes a value the recurrence reads".into())
                    );
                }
            }
        }
        Ok(())
    }

    fn canonical(&self, layers: &[Layer]) -> Result<Lifted> {
        let mut tensors = HashMap::new();
        let tensor_error = |error| WeightsError::Tensor {
            path: self.reader.path.to_owned(),
            error,
        };
        let mut named = 0usize;
        let budget = self.reader.weight_budget();
        for (l, layer) in layers.iter().enumerate() {
            let w = to_tensor(self.reader.path, layer.w)?;
            let r = to_tensor(self.reader.path, layer.r)?;
            let hidden = r.dims().last().copied().unwrap_or(0);
            let matrix = |t: Tensor, what: &str| -> Result<Tensor> {
                if t.rank() != 2 || t.dims()[1] != hidden {
                    return Err(WeightsError::Shape {
                        path: self.reader.path.to_owned(),
                        name: format!("{what} of layer {l}"),
                        expected: format!("a matrix of {hidden} columns"),
                        found: t.dims().to_vec(),
                    });
                }
                t.t().and_then(|t| t.contiguous()).map_err(tensor_error)
            };
            let mut put = |kind: &str, t: Tensor| -> Result<()> {
                named = named.saturating_add(t.elem_count() * t.dtype().size_in_bytes());
                if named > budget {
                    return Err(self.plain(format!(
                        "a graph whose loops name more than 4 bytes of weights per byte of the \
                         file plus 64 MiB ({budget})"
                    )));
                }
                tensors.insert(format!("{kind}_l{l}"), t);
                Ok(())
            };
            put("weight_ih", matrix(w, "W")?)?;
            put("weight_hh", matrix(r, "R")?)?;
            if let Some(b) = layer.b {
                let b = to_tensor(self.reader.path, b)?;
                if b.dims() != [hidden] {
                    return Err(WeightsError::Shape {
                        path: self.reader.path.to_owned(),
                        name: format!("bias of layer {l}"),
                        expected: format!("[{hidden}]"),
                        found: b.dims().to_vec(),
                    });
                }
                put("bias_hh", b.zeros_like().map_err(tensor_error)?)?;
                put("bias_ih", b)?;
            }
        }
        let mut metadata = HashMap::new();
        let recorded = Recorded {
            layers: Some(
                layers
                    .iter()
                    .map(|l| LayerConfig::new(l.activation))
                    .collect(),
            ),
            batch_first: Some(true),
            ..Recorded::default()
        };
        if let Some(k) = layers.iter().find_map(|l| l.fixed_steps) {
            metadata.insert(
                UNROLLED.into(),
                format!(
                    "the graph's Loop runs {k} steps, a number tf2onnx fixed from the model's \
                     input shape; rnn runs the recurrence it lifted from the loop for any \
                     length"
                ),
            );
        }
        Ok((tensors, metadata, recorded))
    }

    fn producer_of(&self, name: &str, op: &str) -> Option<&'g Node> {
        self.reader
            .producer
            .get(name)
            .copied()
            .filter(|n| n.op_type == op && n.domain.is_empty())
    }

    fn through_casts(&self, name: &'g str) -> &'g str {
        let mut name = name;
        for _ in 0..self.reader.graph.node.len() {
            match self.producer_of(name, "Cast") {
                Some(cast) => name = input(cast, 0),
                None => break,
            }
        }
        name
    }

    fn mark_casts(&mut self, name: &str) {
        let mut name = name.to_string();
        while let Some(cast) = self.producer_of(&name, "Cast") {
            if !self.used.mark(cast) {
                break;
            }
            name = input(cast, 0).to_string();
        }
    }

    fn ints(&self, name: Option<&String>) -> Option<Vec<i64>> {
        self.reader.constant_ints(name)
    }

    fn body_breaks(&self, node: &Node, why: String) -> WeightsError {
        self.breaks(node, format!("its body {why}"))
    }

    fn breaks(&self, node: &Node, why: String) -> WeightsError {
        self.plain(format!("its {} breaks the pattern: {why}", node_name(node)))
    }

    fn plain(&self, what: String) -> WeightsError {
        refuse(
            self.reader.path,
            format!(
                "an ONNX graph that runs its recurrence in Loop nodes, read as tf2onnx's Keras \
                 SimpleRNN: {what}"
            ),
            ADVICE,
        )
    }
}

/// A `Loop` body: its values by the node that computes them.
struct Body<'g> {
    producer: HashMap<&'g str, &'g Node>,
    initializers: HashMap<&'g str, &'g TensorProto>,
}

impl<'g> Body<'g> {
    fn new(graph: &'g Graph) -> Self {
        let mut producer = HashMap::new();
        for node in &graph.node {
            for output in &node.output {
                producer.insert(output.as_str(), node);
            }
        }
        let initializers = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        Self {
            producer,
            initializers,
        }
    }

    fn op(&self, name: &str, op: &str) -> Option<&'g Node> {
        self.producer
            .get(name)
            .copied()
            .filter(|n| n.op_type == op && n.domain.is_empty())
    }

    fn through(&self, name: &'g str, op: &str) -> &'g str {
        let mut name = name;
        for _ in 0..self.producer.len() {
            match self.op(name, op) {
                Some(node) => name = input(node, 0),
                None => break,
            }
        }
        name
    }

    fn through_identity(&self, name: &'g str) -> &'g str {
        self.through(name, "Identity")
    }

    fn through_casts(&self, name: &'g str) -> &'g str {
        self.through(name, "Cast")
    }

    /// The one number of a scalar initialiser or `Constant` of the body.
    fn scalar(&self, name: &str) -> Option<f64> {
        let t = match self.initializers.get(name) {
            Some(t) => *t,
            None => {
                let node = self.op(name, "Constant")?;
                node.attribute
                    .iter()
                    .find(|a| a.name == "value")?
                    .t
                    .as_ref()?
            }
        };
        scalar_of(t)
    }
}

impl Reader<'_> {
    /// The one number of a scalar (or one-element) initialiser or `Constant`.
    pub(super) fn scalar(&self, name: &str) -> Option<f64> {
        scalar_of(self.constant(name)?)
    }
}

fn scalar_of(t: &TensorProto) -> Option<f64> {
    let t = to_tensor(std::path::Path::new(""), t).ok()?;
    let values: Vec<f64> = t
        .to_dtype(DType::F64)
        .ok()?
        .flatten_all()
        .ok()?
        .to_vec1()
        .ok()?;
    match values[..] {
        [v] => Some(v),
        _ => None,
    }
}
