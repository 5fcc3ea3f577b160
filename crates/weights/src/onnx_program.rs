//! An ONNX graph's own nodes around its recurrence (a whole model: an embedding's `Gather`, the
//! exporter's shape glue, a `Gemm` or `MatMul` head and its activation), evaluated on candle
//! tensors as the ONNX operator specification defines each op, with the recurrence run as one
//! stack by the caller ([`crate::Model`], on the CPU fast path). The recurrence is the graph's
//! RNN nodes, or what the readers lift from an unrolled `nn.RNN` (the default exporter's) or
//! from tf2onnx's `Loop` nodes. The ONNX reader builds a [`Program`] (`readers/onnx/whole.rs`);
//! only the ops listed in [`Op`] exist, so any other is refused by name there.
//!
//! Why our own evaluator rather than a kept one: candle-onnx needs `protoc` installed at build
//! time and runs the RNN node in its own candle ops (no place for rnn's fast path), and tract
//! is a second tensor engine beside candle; the ops these models need are about thirty, each a
//! few lines over candle's.
//!
//! Every value a run makes is bounded before it is allocated: at most the input's elements
//! times the widest tensor dimension the model stores (or its RNN's widest output), plus its
//! largest stored tensor, so a small graph cannot ask for memory out of proportion to its
//! input (a `ConstantOfShape` of `[10¹²]`); and the values held at once, at most 8 such.

use std::collections::HashMap;

use candle_core::{DType, Device, Error, Result, Tensor, D};
use rnn_core::around::Activation;
use rnn_core::Nonlinearity;

/// How many values of the largest size a run may hold at once (the bound on each value is in
/// the module's description).
const LIVE_VALUES: usize = 8;

/// How [`Program::labels`] names the step where the RNN nodes run.
pub(crate) const STACK_LABEL: &str = "the RNN nodes";

/// The ops rnn evaluates, their attributes read.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `Gather(data, indices)` along `axis`; negative indices count from the end.
    Gather {
        axis: i64,
    },
    /// `Shape(data)`: its dimensions `start..end` as int64.
    Shape {
        start: i64,
        end: Option<i64>,
    },
    /// `ConstantOfShape(shape)`: `value` (one element) everywhere.
    ConstantOfShape {
        value: Tensor,
    },
    /// `Unsqueeze(data, axes)`; `axes` here where an attribute gave them (before opset 13).
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    /// `Squeeze(data, axes?)`; without axes, every dimension of 1.
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Concat {
        axis: i64,
    },
    /// `Transpose(data)`; without `perm`, the dimensions reversed.
    Transpose {
        perm: Option<Vec<i64>>,
    },
    /// `Reshape(data, shape)`: 0 copies the input's dimension (unless `allowzero`), -1 is
    /// inferred.
    Reshape {
        allowzero: bool,
    },
    /// `Slice(data, starts, ends, axes?, steps?)`, any step but 0 (-1 reverses).
    Slice,
    /// `Expand(data, shape)`: broadcast both ways, as numpy does.
    Expand,
    /// `Cast(x)` to float32 (the model's float type: rnn computes in one) or to an integer
    /// type (int64).
    Cast {
        float: bool,
    },
    Identity,
    /// `MatMul(a, b)`, numpy's `matmul`.
    MatMul,
    /// `Gemm(a, b, c?)`: `alpha·a'·b' + beta·c`.
    Gemm {
        alpha: f64,
        beta: f64,
        trans_a: bool,
        trans_b: bool,
    },
    /// `Add`, `Sub`, `Mul`, `Div`, broadcast as numpy does.
    Binary(Binary),
    /// `Softmax` or `LogSoftmax` over `axis`; `coerced` (before opset 13): over every axis
    /// from `axis` on, the input read as a matrix.
    Softmax {
        axis: i64,
        coerced: bool,
        log: bool,
    },
    /// `Sigmoid`, `Tanh`, `Relu`.
    Elementwise(Nonlinearity),
    /// `Flatten(x)`: the axes before `axis` as one, the rest as another.
    Flatten {
        axis: i64,
    },
    /// `Equal(a, b)`, broadcast: booleans (1 or 0, as u8).
    Equal,
    /// `Where(condition, x, y)`, broadcast.
    Where,
    /// `ReduceSum`, `ReduceMean`, `ReduceMax`, `ReduceMin` of floats over `axes` (an attribute
    /// before the opset that made them an input; none: every axis, or none with
    /// `noop_with_empty_axes`), the axes kept as 1 with `keepdims`.
    Reduce {
        kind: Reduce,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

/// One node of the graph: how messages name it (`Gemm node '/fc/Gemm'`), its op, its inputs
/// (`""` for an absent optional one) and its one output.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) label: String,
    pub(crate) op: Op,
    pub(crate) inputs: Vec<String>,
    pub(crate) output: String,
}

/// What a run does in order: a node, or the RNN stack.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Node(Node),
    Stack,
}

/// What runs the RNN stack for [`Program::run`]: given the bottom layer's input (time-major),
/// every layer's output `[seq_len, batch, directions · hidden]`, time-major, and every
/// layer's and direction's final state `[batch, hidden]`, layer-major.
pub(crate) type StackRun<'a> = dyn Fn(&Tensor) -> Result<(Vec<Tensor>, Vec<Tensor>)> + 'a;

/// A value of the graph that the stack's run gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Provided {
    /// Layer `k`'s ONNX RNN node's `Y`, `[seq_len, directions, batch, hidden]`.
    NodeY(usize),
    /// Layer `k`'s ONNX RNN node's `Y_h`, `[directions, batch, hidden]`.
    NodeYh(usize),
    /// Layer `k`'s output, `[seq_len, batch, directions · hidden]`.
    Layer(usize),
    /// Direction `d` of layer `k`, `[seq_len, batch, hidden]`.
    Direction(usize, usize),
    /// The state that direction `d` of layer `k` computes at its `j`-th step,
    /// `[1, batch, hidden]` (the backward direction's first step is the sequence's last).
    State(usize, usize, usize),
}

/// Where the RNN stack meets the graph.
#[derive(Debug, Clone)]
pub(crate) struct StackIo {
    /// The bottom layer's input, `[seq_len, batch, input_size]`.
    pub(crate) x: String,
    /// The values the graph reads from the stack.
    pub(crate) provided: Vec<(String, Provided)>,
    /// Each layer's directions.
    pub(crate) directions: Vec<usize>,
    /// The steps a graph that unrolls its RNN was written for; its other values were
    /// computed for them.
    pub(crate) steps: Option<usize>,
    /// The graph input that gives the stack its initial state (`forward(x, h0)` exported):
    /// the run's `h0`, `[layers · directions, batch, hidden]`, zeros where it is not given.
    pub(crate) state: Option<String>,
}

/// The graph around the RNN nodes, as a run evaluates it.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// In the graph's order (topological, as ONNX requires), only what the outputs need.
    pub(crate) steps: Vec<Step>,
    /// Initialisers and `Constant`s that the steps read, by name.
    pub(crate) constants: Vec<(String, Tensor)>,
    /// The graph's one input.
    pub(crate) input: String,
    /// The input's dimensions where the graph fixes them (`None` for a named one).
    pub(crate) input_dims: Option<Vec<Option<usize>>>,
    /// The graph's outputs, in its order.
    pub(crate) outputs: Vec<String>,
    pub(crate) stack: StackIo,
    /// Rows of the embedding table that the input indexes, where the input is token ids.
    pub(crate) vocabulary: Option<usize>,
    /// The widest dimension of any stored tensor or of the RNN's outputs.
    pub(crate) widest: usize,
    /// For each step, the values no later step reads (dropped after it).
    pub(crate) last_reads: Vec<Vec<String>>,
    /// The model's floating-point type (the constants' once [`Program::on`] placed them).
    pub(crate) float: DType,
}

impl Program {
    /// How messages name each step, in order.
    pub(crate) fn labels(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Node(n) => n.label.clone(),
                Step::Stack => STACK_LABEL.to_string(),
            })
            .collect()
    }

    /// The program with its floating-point constants in `dtype`, every constant on `device`.
    pub(crate) fn on(&self, dtype: DType, device: &Device) -> Result<Self> {
        let mut built = self.clone();
        built.float = dtype;
        let place = |t: &Tensor| -> Result<Tensor> {
            let t = if t.dtype().is_float() {
                t.to_dtype(dtype)?
            } else {
                t.clone()
            };
            t.to_device(device)
        };
        for (_, t) in &mut built.constants {
            *t = place(t)?;
        }
        for step in &mut built.steps {
            if let Step::Node(Node {
                op: Op::ConstantOfShape { value },
                ..
            }) = step
            {
                *value = place(value)?;
            }
        }
        Ok(built)
    }

    /// The graph's outputs, by name, for `input`; `stack` runs the recurrence on its bottom
    /// layer's input (see [`StackRun`]).
    ///
    /// # Errors
    /// An op given values it does not take (the message names the node), or a value larger
    /// than the bound in the module's description.
    pub(crate) fn run<'a>(
        &'a self,
        input: &Tensor,
        stack: &StackRun,
    ) -> Result<Vec<(String, Tensor)>> {
        self.check_input(input)?;
        let largest = self
            .constants
            .iter()
            .map(|(_, t)| t.elem_count())
            .max()
            .unwrap_or(0);
        let limit = input
            .elem_count()
            .max(1)
            .saturating_mul(self.widest.max(1))
            .saturating_add(largest);
        let mut values: HashMap<&str, Tensor> = self
            .constants
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        values.insert(self.input.as_str(), input.clone());
        // The elements of the values computed and still held, bounded as a whole too: many
        // values of the largest size alive at once (several outputs) would be out of
        // proportion all the same.
        let mut held: HashMap<&str, usize> = HashMap::new();
        let mut total = 0usize;
        let hold =
            |held: &mut HashMap<&'a str, usize>, total: &mut usize, name: &'a str, t: &Tensor| {
                let replaced = held.insert(name, t.elem_count()).unwrap_or(0);
                *total = total
                    .saturating_sub(replaced)
                    .saturating_add(t.elem_count());
                if *total > LIVE_VALUES.saturating_mul(limit) {
                    return fail(format!(
                        "the values held at `{name}` hold {} elements, more than rnn holds for \
                     this input ({LIVE_VALUES} times {limit})",
                        *total
                    ));
                }
                Ok(())
            };
        for (step, dropped) in self.steps.iter().zip(&self.last_reads) {
            match step {
                Step::Node(node) => {
                    let read = |name: &str| -> Result<Option<&Tensor>> {
                        if name.is_empty() {
                            return Ok(None);
                        }
                        values.get(name).map(Some).ok_or_else(|| {
                            Error::Msg(format!(
                                "the {} reads `{name}`, which no node before it computes",
                                node.label
                            ))
                        })
                    };
                    let inputs = node
                        .inputs
                        .iter()
                        .map(|n| read(n))
                        .collect::<Result<Vec<_>>>()?;
                    let out = evaluate(&node.op, &inputs, limit, self.float)
                        .map_err(|e| Error::Msg(format!("the {}: {}", node.label, clean(&e))))?;
                    hold(&mut held, &mut total, node.output.as_str(), &out)?;
                    values.insert(node.output.as_str(), out);
                }
                Step::Stack => {
                    let x = values.get(self.stack.x.as_str()).cloned().ok_or_else(|| {
                        Error::Msg(format!(
                            "the RNN's input `{}` is not computed",
                            self.stack.x
                        ))
                    })?;
                    self.run_stack(&x, stack, &mut values)?;
                    for (name, _) in &self.stack.provided {
                        if let Some(t) = values.get(name.as_str()) {
                            hold(&mut held, &mut total, name.as_str(), t)?;
                        }
                    }
                }
            }
            for name in dropped {
                values.remove(name.as_str());
                total = total.saturating_sub(held.remove(name.as_str()).unwrap_or(0));
            }
        }
        self.outputs
            .iter()
            .map(|name| {
                let t = values.get(name.as_str()).ok_or_else(|| {
                    Error::Msg(format!("the graph's output `{name}` is not computed"))
                })?;
                Ok((name.clone(), t.clone()))
            })
            .collect()
    }

    fn run_stack<'a>(
        &'a self,
        x: &Tensor,
        stack: &StackRun<'_>,
        values: &mut HashMap<&'a str, Tensor>,
    ) -> Result<()> {
        if !x.dtype().is_float() || x.rank() != 3 {
            return Err(Error::Msg(format!(
                "the RNN's input `{}`: expected floats [seq_len, batch, input_size], found {:?} \
                 of {:?}",
                self.stack.x,
                x.dtype(),
                x.dims()
            )));
        }
        if let Some(steps) = self.stack.steps.filter(|&s| s != x.dims()[0]) {
            return Err(Error::Msg(format!(
                "the graph unrolls its RNN over {steps} steps, and computes its other values \
                 for them; the input has {} (export the model with the length you run, or with \
                 dynamo=False)",
                x.dims()[0]
            )));
        }
        let (layers, states) = stack(x)?;
        let layer = |k: usize| {
            layers
                .get(k)
                .ok_or_else(|| Error::Msg(format!("the RNN has no layer {k}")))
        };
        let directions = |k: usize| self.stack.directions.get(k).copied().unwrap_or(1);
        let direction = |k: usize, d: usize| -> Result<Tensor> {
            let out = layer(k)?;
            let hidden = out.dim(2)? / directions(k);
            out.narrow(2, d * hidden, hidden)?.contiguous()
        };
        for (name, provided) in &self.stack.provided {
            let value = match *provided {
                Provided::NodeY(k) => {
                    let (seq, batch, features) = layer(k)?.dims3()?;
                    let d = directions(k);
                    layer(k)?
                        .reshape((seq, batch, d, features / d))?
                        .permute((0, 2, 1, 3))?
                        .contiguous()?
                }
                Provided::NodeYh(k) => {
                    let row: usize = (0..k).map(directions).sum();
                    let parts = states.get(row..row + directions(k)).ok_or_else(|| {
                        Error::Msg("the RNN gave fewer final states than its layers".into())
                    })?;
                    Tensor::stack(parts, 0)?
                }
                Provided::Layer(k) => layer(k)?.clone(),
                Provided::Direction(k, d) => direction(k, d)?,
                Provided::State(k, d, j) => {
                    let sequence = direction(k, d)?;
                    let seq = sequence.dim(0)?;
                    let t = if d == 1 {
                        seq.checked_sub(j + 1)
                    } else {
                        Some(j)
                    };
                    match t.filter(|&t| t < seq) {
                        Some(t) => sequence.narrow(0, t, 1)?,
                        None => {
                            return Err(Error::Msg(format!(
                                "the graph reads `{name}`, step {j} of a sequence of {seq}"
                            )))
                        }
                    }
                }
            };
            values.insert(name.as_str(), value);
        }
        Ok(())
    }

    /// Refuses an input whose shape the graph does not take.
    fn check_input(&self, input: &Tensor) -> Result<()> {
        let Some(dims) = &self.input_dims else {
            return Ok(());
        };
        let fits = dims.len() == input.rank()
            && dims
                .iter()
                .zip(input.dims())
                .all(|(want, &found)| want.is_none_or(|w| w == found));
        if fits {
            return Ok(());
        }
        let wanted: Vec<String> = dims
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        let any = if dims.iter().any(Option::is_none) {
            ", ? any size"
        } else {
            ""
        };
        Err(Error::Msg(format!(
            "input `{}`: the graph takes shape [{}]{any}, found {:?}",
            self.input,
            wanted.join(", "),
            input.dims()
        )))
    }
}

/// A candle error's message without its backtrace.
fn clean(e: &Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or("").to_string()
}

fn fail<T>(message: String) -> Result<T> {
    Err(Error::Msg(message))
}

/// `axis` (negative from the end) as an index into `rank` dimensions.
fn axis_of(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return fail(format!("axis {axis} for a value of rank {rank}"));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// A value's integers (a shape, axes, indices).
fn ints(t: &Tensor) -> Result<Vec<i64>> {
    if t.dtype().is_float() {
        return fail(format!(
            "expected integers, found {}",
            crate::dtype::name(t.dtype())
        ));
    }
    t.to_dtype(DType::I64)?.flatten_all()?.to_vec1()
}

/// The dimensions a shape value gives, each at least 0, their product within `limit`.
fn dims_within(shape: &[i64], limit: usize) -> Result<Vec<usize>> {
    let dims = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::Msg(format!("dimension {d}"))))
        .collect::<Result<Vec<usize>>>()?;
    within(&dims, limit)?;
    Ok(dims)
}

fn within(dims: &[usize], limit: usize) -> Result<()> {
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .unwrap_or(usize::MAX);
    if count > limit {
        return fail(format!(
            "a value of shape {dims:?} ({count} elements), more than rnn makes for this input \
             (the input's elements times the model's widest dimension: {limit})"
        ));
    }
    Ok(())
}

/// numpy's broadcast of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], k: usize| (k + s.len()).checked_sub(rank).map_or(1, |i| s[i]);
    (0..rank)
        .map(|k| match (at(a, k), at(b, k)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            (x, y) => fail(format!(
                "shapes {a:?} and {b:?} do not broadcast ({x} and {y})"
            )),
        })
        .collect()
}

fn required<'a>(inputs: &[Option<&'a Tensor>], k: usize) -> Result<&'a Tensor> {
    inputs
        .get(k)
        .copied()
        .flatten()
        .ok_or_else(|| Error::Msg(format!("input {k} is missing")))
}

/// `op` on `inputs`; `float` is the model's floating-point type (what a `Cast` to float gives).
fn evaluate(op: &Op, inputs: &[Option<&Tensor>], limit: usize, float: DType) -> Result<Tensor> {
    let x = required(inputs, 0)?;
    match op {
        Op::Gather { axis } => gather(x, required(inputs, 1)?, *axis, limit),
        Op::Shape { start, end } => {
            let rank = x.rank() as i64;
            let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
            let (s, e) = (clamp(*start), clamp(end.unwrap_or(rank)));
            let dims: Vec<i64> = x.dims()[s..e.max(s)].iter().map(|&d| d as i64).collect();
            Tensor::new(dims, x.device())
        }
        Op::ConstantOfShape { value } => {
            let dims = dims_within(&ints(x)?, limit)?;
            value
                .flatten_all()?
                .reshape(vec![1; dims.len()])?
                .broadcast_as(dims)?
                .contiguous()
        }
        Op::Unsqueeze { axes } => {
            let axes = match axes {
                Some(a) => a.clone(),
                None => ints(required(inputs, 1)?)?,
            };
            let rank = x.rank() + axes.len();
            let mut at = axes
                .iter()
                .map(|&a| axis_of(a, rank))
                .collect::<Result<Vec<_>>>()?;
            at.sort_unstable();
            if at.windows(2).any(|w| w[0] == w[1]) {
                return fail(format!("axes {axes:?} repeat"));
            }
            let mut dims = x.dims().to_vec();
            for a in at {
                dims.insert(a, 1);
            }
            x.reshape(dims)
        }
        Op::Squeeze { axes } => {
            let axes = match (axes, inputs.get(1).copied().flatten()) {
                (Some(a), _) => Some(a.clone()),
                (None, Some(t)) if t.elem_count() == 0 => {
                    // The spec leaves an empty list unsaid (ONNX Runtime squeezes every axis
                    // of 1, shape inference none): refused rather than guessed.
                    return fail("an empty list of axes, which ONNX reads two ways".into());
                }
                (None, Some(t)) => Some(ints(t)?),
                (None, None) => None,
            };
            let dims = x.dims();
            let drop: Vec<usize> = match axes {
                Some(axes) => axes
                    .iter()
                    .map(|&a| axis_of(a, dims.len()))
                    .collect::<Result<_>>()?,
                None => (0..dims.len()).filter(|&k| dims[k] == 1).collect(),
            };
            if let Some(&k) = drop.iter().find(|&&k| dims[k] != 1) {
                return fail(format!("axis {k} of shape {dims:?} is not 1"));
            }
            let kept: Vec<usize> = (0..dims.len())
                .filter(|k| !drop.contains(k))
                .map(|k| dims[k])
                .collect();
            x.reshape(kept)
        }
        Op::Concat { axis } => {
            let parts = (0..inputs.len())
                .map(|k| required(inputs, k))
                .collect::<Result<Vec<_>>>()?;
            let axis = axis_of(*axis, x.rank())?;
            let mut dims = x.dims().to_vec();
            dims[axis] = parts
                .iter()
                .map(|t| t.dims().get(axis).copied().unwrap_or(0))
                .sum();
            within(&dims, limit)?;
            if parts.iter().any(|t| t.dtype() != x.dtype()) {
                return fail("inputs of different types".into());
            }
            Tensor::cat(&parts, axis)
        }
        Op::Transpose { perm } => {
            let rank = x.rank();
            let perm: Vec<usize> = match perm {
                Some(p) => p.iter().map(|&a| axis_of(a, rank)).collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            let mut seen = perm.clone();
            seen.sort_unstable();
            if perm.len() != rank || seen.iter().enumerate().any(|(k, &a)| k != a) {
                return fail(format!("perm {perm:?} for a value of rank {rank}"));
            }
            x.permute(perm)?.contiguous()
        }
        Op::Reshape { allowzero } => {
            let shape = ints(required(inputs, 1)?)?;
            let mut dims = Vec::with_capacity(shape.len());
            let mut inferred = None;
            for (k, &d) in shape.iter().enumerate() {
                match d {
                    0 if !allowzero => dims.push(*x.dims().get(k).ok_or_else(|| {
                        Error::Msg(format!(
                            "shape {shape:?} copies a dimension the input lacks"
                        ))
                    })?),
                    -1 if inferred.is_none() => {
                        inferred = Some(k);
                        dims.push(1);
                    }
                    d if d >= 0 => dims.push(d as usize),
                    _ => return fail(format!("shape {shape:?}")),
                }
            }
            if let Some(k) = inferred {
                let rest: usize = dims.iter().product();
                if rest == 0 || x.elem_count() % rest != 0 {
                    return fail(format!("shape {shape:?} for {:?}", x.dims()));
                }
                dims[k] = x.elem_count() / rest;
            }
            x.reshape(dims)
        }
        Op::Slice => {
            let starts = ints(required(inputs, 1)?)?;
            let ends = ints(required(inputs, 2)?)?;
            let rank = x.rank();
            let axes = match inputs.get(3).copied().flatten() {
                Some(a) => ints(a)?,
                None => (0..starts.len() as i64).collect(),
            };
            let steps = match inputs.get(4).copied().flatten() {
                Some(s) => ints(s)?,
                None => vec![1; starts.len()],
            };
            if ends.len() != starts.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
            {
                return fail("starts, ends, axes and steps of different lengths".into());
            }
            let mut out = x.clone();
            let mut seen = Vec::with_capacity(axes.len());
            for k in 0..starts.len() {
                let axis = axis_of(axes[k], rank)?;
                if seen.contains(&axis) {
                    return fail(format!("axis {axis} sliced twice"));
                }
                seen.push(axis);
                let n = x.dims()[axis] as i64;
                if n == 0 {
                    // Nothing to take, whatever the bounds and step (other than 0).
                    if steps[k] == 0 {
                        return fail("a step of 0".into());
                    }
                    continue;
                }
                let step = steps[k];
                let from_end = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
                if step == 1 {
                    let s = from_end(starts[k]).clamp(0, n);
                    let e = from_end(ends[k]).clamp(0, n);
                    out = out.narrow(axis, s as usize, (e - s).max(0) as usize)?;
                    continue;
                }
                // ONNX's clamping: [0, n] going forward, [0, n - 1] and [-1, n - 1] backward.
                let (s, e) = match step {
                    0 => return fail("a step of 0".into()),
                    s if s > 0 => (
                        from_end(starts[k]).clamp(0, n),
                        from_end(ends[k]).clamp(0, n),
                    ),
                    _ => (
                        from_end(starts[k]).clamp(0, n - 1),
                        from_end(ends[k]).clamp(-1, n - 1),
                    ),
                };
                let mut at = Vec::new();
                let mut i = s;
                while (step > 0 && i < e) || (step < 0 && i > e) {
                    at.push(i as u32);
                    i = i.saturating_add(step);
                }
                let count = at.len();
                let index = Tensor::from_vec(at, count, x.device())?;
                out = out.contiguous()?.index_select(&index, axis)?;
            }
            out.contiguous()
        }
        Op::Expand => {
            let shape = dims_within(&ints(required(inputs, 1)?)?, limit)?;
            let dims = broadcast(x.dims(), &shape)?;
            within(&dims, limit)?;
            x.broadcast_as(dims)?.contiguous()
        }
        Op::Cast { float: to_float } => match (to_float, x.dtype().is_float()) {
            (true, true) => Ok(x.clone()),
            (true, false) => x.to_dtype(float),
            (false, _) => x.to_dtype(DType::I64),
        },
        Op::Identity => Ok(x.clone()),
        Op::MatMul => matmul(x, required(inputs, 1)?, limit),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let b = required(inputs, 1)?;
            let a = if *trans_a { x.t()? } else { x.clone() };
            let b = if *trans_b { b.t()? } else { b.clone() };
            if a.rank() != 2 || b.rank() != 2 {
                return fail(format!(
                    "expected matrices, found {:?} and {:?}",
                    a.dims(),
                    b.dims()
                ));
            }
            within(&[a.dims()[0], b.dims()[1]], limit)?;
            let mut y = a.contiguous()?.matmul(&b.contiguous()?)?;
            if *alpha != 1.0 {
                y = y.affine(*alpha, 0.0)?;
            }
            if let Some(c) = inputs.get(2).copied().flatten() {
                // C broadcasts to the product's shape, not beyond it.
                if broadcast(y.dims(), c.dims())? != y.dims() {
                    return fail(format!(
                        "C of shape {:?} for a product of shape {:?}",
                        c.dims(),
                        y.dims()
                    ));
                }
                let c = if *beta != 1.0 {
                    c.affine(*beta, 0.0)?
                } else {
                    c.clone()
                };
                y = y.broadcast_add(&c)?;
            }
            Ok(y)
        }
        Op::Binary(kind) => {
            let b = required(inputs, 1)?;
            within(&broadcast(x.dims(), b.dims())?, limit)?;
            if x.dtype() != b.dtype() {
                return fail("inputs of different types".into());
            }
            match kind {
                Binary::Add => x.broadcast_add(b),
                Binary::Sub => x.broadcast_sub(b),
                Binary::Mul => x.broadcast_mul(b),
                Binary::Div if x.dtype().is_float() => x.broadcast_div(b),
                Binary::Div => fail("integer division, which rnn does not evaluate".into()),
            }
        }
        Op::Softmax { .. } | Op::Elementwise(_) if !x.dtype().is_float() => fail(format!(
            "expected floats, found {}",
            crate::dtype::name(x.dtype())
        )),
        Op::Softmax { axis, coerced, log } => {
            let activation = if *log {
                Activation::LogSoftmax
            } else {
                Activation::Softmax
            };
            let axis = axis_of(*axis, x.rank())?;
            let last = x.rank() - 1;
            if *coerced {
                let rows: usize = x.dims()[..axis].iter().product();
                let y = activation.apply(&x.reshape((rows, x.elem_count() / rows.max(1)))?)?;
                y.reshape(x.dims())
            } else if axis == last {
                activation.apply(x)
            } else {
                let y = activation.apply(&x.transpose(axis, last)?.contiguous()?)?;
                y.transpose(axis, last)?.contiguous()
            }
        }
        Op::Elementwise(f) => f.apply(x),
        Op::Flatten { axis } => {
            let rank = x.rank() as i64;
            if *axis < -rank || *axis > rank {
                return fail(format!("axis {axis} for a value of rank {rank}"));
            }
            let axis = if *axis < 0 { axis + rank } else { *axis } as usize;
            let rows: usize = x.dims()[..axis].iter().product();
            x.reshape((rows, x.elem_count() / rows.max(1)))
        }
        Op::Equal => {
            let b = required(inputs, 1)?;
            within(&broadcast(x.dims(), b.dims())?, limit)?;
            if x.dtype() != b.dtype() {
                return fail("inputs of different types".into());
            }
            x.broadcast_eq(b)
        }
        Op::Reduce {
            kind,
            axes,
            keepdims,
            noop_with_empty_axes,
        } => {
            if !x.dtype().is_float() {
                return fail(format!("a reduction of {:?}, not floats", x.dtype()));
            }
            let axes = match (axes, inputs.get(1).copied().flatten()) {
                (Some(a), _) => a.clone(),
                (None, Some(t)) => ints(t)?,
                (None, None) => Vec::new(),
            };
            if axes.is_empty() && *noop_with_empty_axes {
                return Ok(x.clone());
            }
            let mut at = if axes.is_empty() {
                (0..x.rank()).collect()
            } else {
                axes.iter()
                    .map(|&a| axis_of(a, x.rank()))
                    .collect::<Result<Vec<_>>>()?
            };
            at.sort_unstable();
            if at.windows(2).any(|w| w[0] == w[1]) {
                return fail(format!("axes {axes:?} repeat"));
            }
            if let Some(&k) = at.iter().find(|&&k| x.dims()[k] == 0) {
                return fail(format!("a reduction over axis {k}, which is empty"));
            }
            let mut y = x.clone();
            for &k in at.iter().rev() {
                y = match kind {
                    Reduce::Sum | Reduce::Mean => y.sum_keepdim(k)?,
                    Reduce::Max => y.max_keepdim(k)?,
                    Reduce::Min => y.min_keepdim(k)?,
                };
            }
            if *kind == Reduce::Mean {
                let count: usize = at.iter().map(|&k| x.dims()[k]).product();
                let count = Tensor::new(count as f64, x.device())?.to_dtype(x.dtype())?;
                y = y.broadcast_div(&count)?;
            }
            if *keepdims {
                Ok(y)
            } else {
                let kept: Vec<usize> = (0..x.rank())
                    .filter(|k| !at.contains(k))
                    .map(|k| x.dims()[k])
                    .collect();
                y.reshape(kept)
            }
        }
        Op::Where => {
            let (on_true, on_false) = (required(inputs, 1)?, required(inputs, 2)?);
            if x.dtype() != DType::U8 || on_true.dtype() != on_false.dtype() {
                return fail("expected a boolean condition and two values of one type".into());
            }
            let dims = broadcast(&broadcast(x.dims(), on_true.dims())?, on_false.dims())?;
            within(&dims, limit)?;
            x.broadcast_as(dims.clone())?.where_cond(
                &on_true.broadcast_as(dims.clone())?,
                &on_false.broadcast_as(dims)?,
            )
        }
    }
}

fn gather(data: &Tensor, indices: &Tensor, axis: i64, limit: usize) -> Result<Tensor> {
    let axis = axis_of(axis, data.rank())?;
    let n = data.dims()[axis] as i64;
    let wanted = ints(indices)?;
    let mut at = Vec::with_capacity(wanted.len());
    for (k, &i) in wanted.iter().enumerate() {
        let j = if i < 0 { i + n } else { i };
        if !(0..n).contains(&j) {
            return fail(format!(
                "index {i} (element {k} of its indices) outside the {n} rows of axis {axis}"
            ));
        }
        at.push(j as u32);
    }
    let mut dims = data.dims()[..axis].to_vec();
    dims.extend_from_slice(indices.dims());
    dims.extend_from_slice(&data.dims()[axis + 1..]);
    within(&dims, limit)?;
    let count = at.len();
    let index = Tensor::from_vec(at, count, data.device())?;
    data.contiguous()?.index_select(&index, axis)?.reshape(dims)
}

fn matmul(a: &Tensor, b: &Tensor, limit: usize) -> Result<Tensor> {
    // numpy: a vector is a matrix of one row (left) or one column (right), dropped after.
    if a.rank() == 0 || b.rank() == 0 {
        return fail(format!(
            "a scalar operand ({:?} and {:?}), which MatMul does not take",
            a.dims(),
            b.dims()
        ));
    }
    let (a1, b1) = (a.rank() == 1, b.rank() == 1);
    let a = if a1 { a.unsqueeze(0)? } else { a.clone() };
    let b = if b1 { b.unsqueeze(1)? } else { b.clone() };
    if a.rank() < 2 {
        return fail(format!("a value of shape {:?}", a.dims()));
    }
    let (m, k) = (a.dims()[a.rank() - 2], a.dims()[a.rank() - 1]);
    let n = b.dims()[b.rank() - 1];
    if b.dims()[b.rank() - 2] != k {
        return fail(format!(
            "shapes {:?} and {:?} do not multiply",
            a.dims(),
            b.dims()
        ));
    }
    let batch = broadcast(&a.dims()[..a.rank() - 2], &b.dims()[..b.rank() - 2])?;
    let mut dims = batch.clone();
    dims.extend([m, n]);
    within(&dims, limit)?;
    let y = if b.rank() == 2 {
        // Every row of every batch times one matrix: one product.
        let rows = a.elem_count() / k.max(1);
        a.contiguous()?
            .reshape((rows, k))?
            .matmul(&b.contiguous()?)?
            .reshape(dims)?
    } else {
        a.contiguous()?.broadcast_matmul(&b.contiguous()?)?
    };
    match (a1, b1) {
        (true, true) => y.squeeze(D::Minus1)?.squeeze(D::Minus1),
        (true, false) => y.squeeze(D::Minus2),
        (false, true) => y.squeeze(D::Minus1),
        (false, false) => Ok(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: Op, inputs: &[&str], output: &str) -> Step {
        Step::Node(Node {
            label: "a test node".into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.into(),
        })
    }

    /// A program of `steps` (no RNN) from `x` to `y`, with `constants`.
    fn program(steps: Vec<Step>, constants: Vec<(&str, Tensor)>) -> Program {
        let outputs = vec!["y".to_string()];
        Program {
            last_reads: vec![Vec::new(); steps.len()],
            steps,
            constants: constants
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect(),
            input: "x".into(),
            outputs,
            stack: StackIo {
                x: "x".into(),
                provided: Vec::new(),
                directions: Vec::new(),
                steps: None,
                state: None,
            },
            input_dims: None,
            vocabulary: None,
            widest: 4,
            float: DType::F32,
        }
    }

    fn no_stack(_: &Tensor) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        Err(Error::Msg("no stack here".into()))
    }

    fn error_of(p: &Program, x: &Tensor) -> String {
        match p.run(x, &no_stack) {
            Ok(y) => panic!("expected an error, found {y:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_value_larger_than_the_input_warrants_is_refused_before_it_is_allocated() {
        let cpu = Device::Cpu;
        let shape = Tensor::new(&[1_000_000i64, 1_000_000], &cpu).unwrap();
        let p = program(
            vec![node(
                Op::ConstantOfShape {
                    value: Tensor::new(&[0f32], &cpu).unwrap(),
                },
                &["shape"],
                "y",
            )],
            vec![("shape", shape)],
        );
        let x = Tensor::zeros((2, 3), DType::F32, &cpu).unwrap();
        let message = error_of(&p, &x);
        assert!(
            message.contains("a test node") && message.contains("more than rnn makes"),
            "{message}"
        );
        // Expand is bounded the same way.
        let p = program(
            vec![node(Op::Expand, &["x", "shape"], "y")],
            vec![("shape", Tensor::new(&[1_000_000i64, 3], &cpu).unwrap())],
        );
        assert!(error_of(&p, &x).contains("more than rnn makes"));
    }

    #[test]
    fn ops_of_floats_refuse_integers_and_an_empty_axis_slices_to_nothing() {
        let cpu = Device::Cpu;
        let ints = Tensor::new(&[[1i64, 2]], &cpu).unwrap();
        for op in [
            Op::Elementwise(Nonlinearity::Tanh),
            Op::Softmax {
                axis: -1,
                coerced: false,
                log: true,
            },
        ] {
            let p = program(vec![node(op, &["x"], "y")], vec![]);
            assert!(error_of(&p, &ints).contains("expected floats"));
        }
        // A step of -1 over an axis of length 0 takes nothing (its clamp range is empty).
        let p = program(
            vec![node(Op::Slice, &["x", "s", "e", "a", "t"], "y")],
            vec![
                ("s", Tensor::new(&[-1i64], &cpu).unwrap()),
                ("e", Tensor::new(&[i64::MIN], &cpu).unwrap()),
                ("a", Tensor::new(&[1i64], &cpu).unwrap()),
                ("t", Tensor::new(&[-1i64], &cpu).unwrap()),
            ],
        );
        let empty = Tensor::zeros((2, 0), DType::F32, &cpu).unwrap();
        assert_eq!(p.run(&empty, &no_stack).unwrap()[0].1.dims(), [2, 0]);
    }

    #[test]
    fn reductions_follow_the_spec_s_axes_keepdims_and_noop() {
        let cpu = Device::Cpu;
        let x = Tensor::new(&[[[1f32, -2.0], [3.0, 4.0], [5.0, 0.5]]], &cpu).unwrap();
        let reduce = |kind: Reduce, axes: Option<Vec<i64>>, keepdims: bool, noop: bool| {
            let op = Op::Reduce {
                kind,
                axes,
                keepdims,
                noop_with_empty_axes: noop,
            };
            program(vec![node(op, &["x"], "y")], vec![])
        };
        let run = |p: &Program| p.run(&x, &no_stack).map(|y| y[0].1.clone());
        let mean = run(&reduce(Reduce::Mean, Some(vec![1]), false, false)).unwrap();
        assert_eq!(mean.to_vec2::<f32>().unwrap(), [[3.0, 2.5 / 3.0]]);
        let max = run(&reduce(Reduce::Max, Some(vec![-2]), true, false)).unwrap();
        assert_eq!(max.dims(), [1, 1, 2]);
        assert_eq!(
            max.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [5.0, 4.0]
        );
        let min = run(&reduce(Reduce::Min, Some(vec![2, 1]), false, false)).unwrap();
        assert_eq!(min.to_vec1::<f32>().unwrap(), [-2.0]);
        // No axes: every axis, or none with noop_with_empty_axes.
        let sum = run(&reduce(Reduce::Sum, None, false, false)).unwrap();
        assert_eq!(sum.to_scalar::<f32>().unwrap(), 11.5);
        assert_eq!(
            run(&reduce(Reduce::Sum, None, true, true)).unwrap().dims(),
            [1, 3, 2]
        );
        // Refused: a repeated axis, an empty axis, integers.
        let message = error_of(&reduce(Reduce::Sum, Some(vec![1, -2]), true, false), &x);
        assert!(message.contains("repeat"), "{message}");
        let empty = Tensor::zeros((2, 0), DType::F32, &cpu).unwrap();
        let message = error_of(&reduce(Reduce::Max, Some(vec![1]), true, false), &empty);
        assert!(message.contains("empty"), "{message}");
        let ints = Tensor::new(&[[1i64, 2]], &cpu).unwrap();
        let message = error_of(&reduce(Reduce::Mean, None, true, false), &ints);
        assert!(message.contains("not floats"), "{message}");
    }

    #[test]
    fn many_values_each_within_bounds_are_refused_together() {
        let cpu = Device::Cpu;
        let x = Tensor::zeros(4, DType::F32, &cpu).unwrap();
        // Each value 16 elements (the bound: 4 input elements times widest 4), held as
        // outputs: the ninth passes 8 times the bound.
        let shape = Tensor::new(&[16i64], &cpu).unwrap();
        let value = Tensor::new(&[0f32], &cpu).unwrap();
        let steps: Vec<Step> = (0..10)
            .map(|k| {
                node(
                    Op::ConstantOfShape {
                        value: value.clone(),
                    },
                    &["shape"],
                    &format!("y{k}"),
                )
            })
            .collect();
        let mut p = program(steps, vec![("shape", shape)]);
        p.outputs = (0..10).map(|k| format!("y{k}")).collect();
        let message = error_of(&p, &x);
        assert!(message.contains("values held"), "{message}");
    }

    #[test]
    fn an_index_outside_the_table_is_refused_with_its_place() {
        let cpu = Device::Cpu;
        let table = Tensor::zeros((5, 2), DType::F32, &cpu).unwrap();
        let p = program(
            vec![node(Op::Gather { axis: 0 }, &["table", "x"], "y")],
            vec![("table", table)],
        );
        let ids = Tensor::new(&[[1i64, -5], [4, 5]], &cpu).unwrap();
        let message = error_of(&p, &ids);
        assert!(
            message.contains("index 5 (element 3") && message.contains("5 rows"),
            "{message}"
        );
        // -5 is row 0, counted from the end.
        let ids = Tensor::new(&[[1i64, -5]], &cpu).unwrap();
        let y = p.run(&ids, &no_stack).unwrap();
        assert_eq!(y[0].1.dims(), [1, 2, 2]);
    }

    #[test]
    fn values_an_op_does_not_take_are_refused_naming_the_node() {
        let cpu = Device::Cpu;
        let x = Tensor::zeros((2, 3), DType::F32, &cpu).unwrap();
        let cases = [
            (
                Op::Reshape { allowzero: false },
                vec![("s", Tensor::new(&[4i64, -1], &cpu))],
                "shape [4, -1]",
            ),
            (
                Op::Transpose {
                    perm: Some(vec![0, 0]),
                },
                vec![],
                "perm",
            ),
            (
                Op::Squeeze {
                    axes: Some(vec![0]),
                },
                vec![],
                "is not 1",
            ),
            (
                Op::Softmax {
                    axis: 2,
                    coerced: false,
                    log: false,
                },
                vec![],
                "axis 2",
            ),
            (
                Op::Where,
                vec![
                    ("s", Tensor::new(&[1f32], &cpu)),
                    ("t", Tensor::new(&[1f32], &cpu)),
                ],
                "boolean",
            ),
            (
                Op::MatMul,
                vec![("s", Tensor::new(2f32, &cpu))],
                "scalar operand",
            ),
            (
                Op::Squeeze { axes: None },
                vec![("s", Tensor::new(&[0i64; 0], &cpu))],
                "empty list of axes",
            ),
            (
                Op::Slice,
                vec![
                    ("s", Tensor::new(&[0i64, 0], &cpu)),
                    ("e", Tensor::new(&[1i64, 1], &cpu)),
                    ("a", Tensor::new(&[0i64, 0], &cpu)),
                ],
                "sliced twice",
            ),
        ];
        for (op, constants, says) in cases {
            let constants: Vec<(&str, Tensor)> = constants
                .into_iter()
                .map(|(n, t)| (n, t.unwrap()))
                .collect();
            let inputs: Vec<&str> = std::iter::once("x")
                .chain(constants.iter().map(|(n, _)| *n))
                .collect();
            let p = program(vec![node(op, &inputs, "y")], constants);
            let message = error_of(&p, &x);
            assert!(
                message.contains("a test node") && message.contains(says),
                "{says}: {message}"
            );
        }
    }
}
