//! The recurrence of a graph that unrolls `nn.RNN` step by step, as torch.onnx.export's
//! default (dynamo) exporter writes it, lifted back into one stack of layers.
//!
//! The exporter writes, for each layer and direction: the input projection of every step at
//! once (`MatMul` of the layer's input sequence by `W_ihᵀ`, `Add` of `b_ih`), reversed along
//! time for the backward direction (`Slice` with step -1); then per step `t` the projection's
//! row `t` (`Slice` then `Squeeze` of axis 0), added to the recurrent term (`MatMul` of the
//! state before by `W_hhᵀ`, `Add` of `b_hh`) and passed through `Tanh` or `Relu`. The states are
//! gathered by `Concat` along time (in reverse for the backward direction), the two directions
//! by `Concat` along features, and the final states (`Squeeze`, `Unsqueeze`) by `Concat` into
//! `h_n`. The first step's recurrent term is computed from a zero or given `h0`, or folded into
//! a constant when `h0` is zero (then it must equal `b_hh` in every row, as `0 · W_hhᵀ + b_hh`
//! does).
//!
//! Every step must read the same weights (the same initialisers), the same activation, the
//! state of the step before and the next row of the same projection; every node of the graph
//! must be part of that pattern, else the first that is not is named and the graph refused.
//! What is lifted runs for any sequence length and batch; the length (and batch) the graph
//! fixed is said as a note (metadata key [`UNROLLED`]).

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Tensor};

use super::graph::{input, Lifted, Reader, Used};
use super::proto::Node;
use super::tensor::to_tensor;
use super::whole::Boundary;
use super::{node_name, refuse};
use crate::config::{LayerConfig, Recorded};
use crate::error::{Result, WeightsError};
use crate::onnx_program::Provided;
use rnn_core::Nonlinearity;

/// Metadata key: what the graph that unrolled the recurrence had fixed, in words.
pub(crate) const UNROLLED: &str = "onnx_unrolled";

const ADVICE: &str = "export with torch.onnx.export(..., dynamo=False), which writes ONNX RNN \
                      nodes, or save the state_dict";

/// How a direction's first step gets its state.
#[derive(PartialEq)]
enum Start<'g> {
    Zero,
    /// Row `index` of the graph input `name` (the stack's `h0`).
    Row {
        name: &'g str,
        index: i64,
    },
}

/// One direction of one layer.
struct Chain<'g> {
    /// The states in the order they are computed (the backward direction's first is the last
    /// step's).
    states: Vec<&'g str>,
    activation: Nonlinearity,
    w_ih: &'g str,
    b_ih: Option<&'g str>,
    w_hh: &'g str,
    b_hh: Option<&'g str>,
    /// The sequence the projection reads.
    input: &'g str,
    start: Start<'g>,
    /// The `Concat` of its states along time, in time order: the direction's sequence (`""`
    /// where the graph does not join them).
    sequence: &'g str,
    /// Whether its projection reads the sequence reversed (the backward direction).
    reversed: bool,
}

struct Lifter<'r, 'g> {
    reader: &'r Reader<'g>,
    used: Used,
    /// The batch a folded first recurrent term fixes (`[1, batch, hidden]`).
    batch: Option<usize>,
}

/// The tensors under PyTorch's names, the notes and the configuration of the recurrence
/// `reader`'s graph unrolls.
pub(super) fn lift(reader: &Reader) -> Result<Lifted> {
    let mut lifter = Lifter {
        reader,
        used: Used::default(),
        batch: None,
    };
    lifter.run()
}

/// The recurrence of a whole model's graph, where one is unrolled in it: the lifted stack,
/// and where it meets the rest of the graph (its bottom layer's input; each layer's output,
/// each direction's, each step's state), for each stack that lifts, most layers first; none
/// where the graph has no sequence of states; where none lifts, why the first did not.
pub(super) fn lift_whole<'g>(reader: &Reader<'g>) -> Result<Vec<(Lifted, Boundary<'g>)>> {
    let is_chain = |node: &Node| {
        node.op_type == "Concat"
            && node.domain.is_empty()
            && node.input.len() >= 2
            && node.attribute.iter().all(|a| a.name != "axis" || a.i == 0)
            && node.input.iter().all(|i| {
                reader
                    .producer
                    .get(i.as_str())
                    .is_some_and(|p| p.op_type == "Tanh" || p.op_type == "Relu")
            })
    };
    let is_layer = |node: &Node| {
        node.op_type == "Concat"
            && node.input.len() == 2
            && node.attribute.iter().any(|a| a.name == "axis" && a.i == 2)
            && node
                .input
                .iter()
                .all(|i| reader.producer.get(i.as_str()).is_some_and(|p| is_chain(p)))
    };
    // The sequences a layer may end in: two directions joined, or one not joined to another.
    let joined: HashSet<&str> = reader
        .graph
        .node
        .iter()
        .filter(|n| is_layer(n))
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let tops: Vec<&'g str> = reader
        .graph
        .node
        .iter()
        .filter(|n| {
            is_layer(n) || (is_chain(n) && !n.output.iter().any(|o| joined.contains(o.as_str())))
        })
        .filter_map(|n| n.output.first().map(String::as_str))
        .collect();
    let mut candidates: Vec<Candidate> = Vec::new();
    // Why the first sequence tried did not lift, said where none does.
    let mut first_error = None;
    // The final states of directions whose states the graph never joins (a head that reads
    // h_n alone): a step's activation that no later step reads, in no sequence above.
    let in_sequence: HashSet<&str> = reader
        .graph
        .node
        .iter()
        .filter(|n| is_chain(n))
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let probe = Lifter {
        reader,
        used: Used::default(),
        batch: None,
    };
    let mut previous: HashSet<&str> = HashSet::new();
    let mut finals = Vec::new();
    for node in &reader.graph.node {
        if !matches!(node.op_type.as_str(), "Tanh" | "Relu") {
            continue;
        }
        let Some(state) = node.output.first().map(String::as_str) else {
            continue;
        };
        if let Some(before) = probe.previous_state(state) {
            previous.insert(before);
        }
        finals.push(state);
    }
    finals.retain(|s| {
        !previous.contains(s) && !in_sequence.contains(s) && probe.recurrent_input(s).is_some()
    });
    if tops.len() + finals.len() > MAX_SEQUENCES {
        return Err(refuse(
            reader.path,
            format!(
                "an ONNX graph of {} sequences of RNN states, more than rnn tries ({MAX_SEQUENCES})",
                tops.len() + finals.len()
            ),
            ADVICE,
        ));
    }
    // Those final states by the sequence their directions read: one layer each (a forward and
    // a backward direction reading the same sequence are one bidirectional layer).
    let mut unjoined: Vec<(&'g str, Vec<(bool, &'g str)>)> = Vec::new();
    for &last in &finals {
        let mut lifter = Lifter {
            reader,
            used: Used::default(),
            batch: None,
        };
        let Some(states) = lifter.states_before(last) else {
            continue;
        };
        let Some(&at) = reader.producer.get(last) else {
            continue;
        };
        match lifter.chain_of(states, at, None) {
            // A group is one layer: at most one direction each way over one sequence.
            Ok(chain) => match unjoined.iter_mut().find(|(i, group)| {
                *i == chain.input && group.iter().all(|(r, _)| *r != chain.reversed)
            }) {
                Some((_, group)) => group.push((chain.reversed, last)),
                None => unjoined.push((chain.input, vec![(chain.reversed, last)])),
            },
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut attempts: Vec<Top<'g>> = tops.into_iter().map(Top::Sequence).collect();
    for (_, mut group) in unjoined {
        group.sort();
        attempts.push(Top::Finals(group.into_iter().map(|(_, s)| s).collect()));
    }
    // The stack is the longest chain of layers from one of them down.
    for top in attempts {
        let mut lifter = Lifter {
            reader,
            used: Used::default(),
            batch: None,
        };
        let (mut layers, mut outputs) = (Vec::new(), Vec::new());
        let mut next = Some(top);
        let lifted = loop {
            let layer = match next.take() {
                Some(Top::Sequence(sequence)) => lifter.layer(sequence).map(|l| (l, sequence)),
                Some(Top::Finals(finals)) => lifter.unjoined_layer(&finals).map(|l| (l, "")),
                None => break true,
            };
            match layer {
                Ok((chains, output)) => {
                    let below = chains[0].input;
                    layers.push(chains);
                    outputs.push(output);
                    // The layer below joins the stack where it has as many directions; else
                    // its steps are the graph's, evaluated as they are.
                    let directions = layers[0].len();
                    if let Some(n) = reader.producer.get(below) {
                        let same =
                            (is_layer(n) && directions == 2) || (is_chain(n) && directions == 1);
                        if same && layers.len() <= reader.graph.node.len() {
                            next = Some(Top::Sequence(below));
                        }
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    break false;
                }
            }
        };
        if !lifted {
            continue;
        }
        candidates.push((lifter, layers, outputs));
    }
    if candidates.is_empty() {
        return first_error.map_or(Ok(Vec::new()), Err);
    }
    // The stacks of most layers first; among equals, the graph's order. The caller runs the
    // first whose boundary the rest of the graph respects; any other recurrence in the graph
    // is evaluated as its nodes say (slower, the same numbers).
    candidates.sort_by_key(|(_, layers, _)| std::cmp::Reverse(layers.len()));
    let mut lifted = Vec::new();
    for candidate in candidates {
        match boundary_of(candidate) {
            Ok(stack) => lifted.push(stack),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (lifted.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(lifted),
    }
}

/// A lifted stack as the canonical tensors and where it meets the rest of the graph.
fn boundary_of<'g>(candidate: Candidate<'_, 'g>) -> Result<(Lifted, Boundary<'g>)> {
    let (lifter, mut layers, mut outputs) = candidate;
    layers.reverse();
    outputs.reverse();
    let directions = layers[0].len();
    if layers.iter().any(|l| l.len() != directions) {
        return Err(
            lifter.plain("a graph whose layers differ in their number of directions".into())
        );
    }
    let (tensors, mut metadata, recorded) = lifter.canonical(&layers, false)?;
    let steps = layers[0][0].states.len();
    metadata.insert(
        UNROLLED.into(),
        format!(
            "the graph unrolls the RNN over {steps} steps and computes the rest of the model \
             for them: rnn runs it whole on inputs of {steps} steps"
        ),
    );
    // Each layer's output (the sequence it was lifted from), each direction's sequence (the
    // Concat its states were read from) and each state.
    let mut provided = HashMap::new();
    let mut widths = Vec::new();
    for (k, (chains, &output)) in layers.iter().zip(&outputs).enumerate() {
        let mut hidden = 0;
        for (d, chain) in chains.iter().enumerate() {
            for (j, &state) in chain.states.iter().enumerate() {
                provided.insert(state, Provided::State(k, d, j));
            }
            if chains.len() == 2 && !chain.sequence.is_empty() {
                provided.insert(chain.sequence, Provided::Direction(k, d));
            }
            hidden = lifter
                .stored(chain.w_hh)?
                .dims()
                .last()
                .copied()
                .unwrap_or(0);
        }
        if !output.is_empty() {
            provided.insert(output, Provided::Layer(k));
        }
        widths.push(chains.len() * hidden);
    }
    let x = layers[0][0].input;
    // `canonical` checked that every direction starts from zeros or from its row of one
    // graph input, the run's h0.
    let state = match layers[0][0].start {
        Start::Row { name, .. } => Some(name),
        Start::Zero => None,
    };
    let boundary = Boundary {
        x,
        provided,
        // The lifted steps are plain ops: where the graph reads a value of theirs that the
        // stack does not give (a row of a projection another recurrence shares), the
        // evaluator computes it as the graph says.
        inside: Box::new(|_: &Node| false),
        directions: layers.iter().map(Vec::len).collect(),
        widths,
        steps: Some(steps),
        state,
        advice: super::whole::TORCH_ADVICE,
    };
    Ok(((tensors, metadata, recorded), boundary))
}

/// Where a whole model's top layer is lifted from: the sequence its states are joined in, or
/// the final states of its directions (forward first) where the graph does not join them.
enum Top<'g> {
    Sequence(&'g str),
    Finals(Vec<&'g str>),
}

/// A stack lifted from one sequence of states: the lifter (what it marked), each layer's
/// directions bottom last, and each layer's output, top first.
type Candidate<'r, 'g> = (Lifter<'r, 'g>, Vec<Vec<Chain<'g>>>, Vec<&'g str>);

/// The most sequences of states a whole model's graph may end layers in: rnn lifts from each.
const MAX_SEQUENCES: usize = 64;

impl<'r, 'g> Lifter<'r, 'g> {
    fn run(&mut self) -> Result<Lifted> {
        let graph = self.reader.graph;
        let x = match self.reader.inputs.first() {
            Some(&x) => x,
            None => return Err(self.plain("a graph without inputs".into())),
        };
        let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        let (output, h_n) = match outputs[..] {
            [output] => (output, None),
            [output, h_n] => (output, Some(h_n)),
            _ => {
                return Err(self.plain(format!(
                    "a graph of {} outputs (an unrolled nn.RNN has output and h_n)",
                    outputs.len()
                )))
            }
        };
        // Batch-first: a Transpose of axes 0 and 1 on the way in and out.
        let (mut sequence, batch_first) = match self.batch_swap(output) {
            Some(inner) => (inner, true),
            None => (output, false),
        };
        let mut layers: Vec<Vec<Chain<'g>>> = Vec::new();
        loop {
            if layers.len() > graph.node.len() {
                return Err(self.plain("a cycle in the graph".into()));
            }
            let chains = self.layer(sequence)?;
            let input = chains[0].input;
            layers.push(chains);
            let first_in = if batch_first {
                self.batch_swap(input).filter(|&i| i == x)
            } else {
                Some(input).filter(|&i| i == x)
            };
            if first_in.is_some() {
                break;
            }
            if input == x || self.batch_swap(input) == Some(x) {
                return Err(self.plain(format!(
                    "a graph whose input `{x}` is {} but whose output is {}",
                    if batch_first {
                        "not transposed"
                    } else {
                        "transposed"
                    },
                    if batch_first { "transposed" } else { "not" }
                )));
            }
            sequence = input;
        }
        layers.reverse();
        let directions = layers[0].len();
        if layers.iter().any(|l| l.len() != directions) {
            return Err(
                self.plain("a graph whose layers differ in their number of directions".into())
            );
        }
        if let Some(h_n) = h_n {
            self.final_states(h_n, &layers)?;
        }
        self.accounted()?;
        self.canonical(&layers, batch_first)
    }

    /// The sequences a layer's directions compute, from its output.
    fn layer(&mut self, sequence: &'g str) -> Result<Vec<Chain<'g>>> {
        if let Some(step) = self
            .reader
            .producer
            .get(sequence)
            .filter(|n| n.op_type == "Tanh" || n.op_type == "Relu")
        {
            return Err(self.plain(format!(
                "a graph whose output is the {} of one step: the exporter folded h0·W_hhᵀ \
                 into a constant, so W_hh is not in the file (export with a sequence of two \
                 steps or more)",
                node_name(step)
            )));
        }
        let node = self.producer(sequence, "Concat")?;
        let axis = self.axis(node);
        match (axis, &node.input[..]) {
            (2, [forward, backward]) => {
                let forward = self.producer(forward, "Concat")?;
                let backward = self.producer(backward, "Concat")?;
                let forward = self.chain(forward, false)?;
                let backward = self.chain(backward, true)?;
                if forward.input != backward.input {
                    return Err(
                        self.breaks(node, "its two directions read different sequences".into())
                    );
                }
                Ok(vec![forward, backward])
            }
            (0, _) => Ok(vec![self.chain(node, false)?]),
            _ => Err(self.breaks(
                node,
                "expected the states of each step joined along time (axis 0), or two \
                 directions along features (axis 2)"
                    .into(),
            )),
        }
    }

    /// One direction from the `Concat` of its states along time.
    fn chain(&mut self, concat: &'g Node, backward: bool) -> Result<Chain<'g>> {
        if self.axis(concat) != 0 {
            return Err(self.breaks(concat, "expected states joined along time (axis 0)".into()));
        }
        let mut states: Vec<&'g str> = concat.input.iter().map(String::as_str).collect();
        if backward {
            states.reverse();
        }
        let chain = self.chain_of(states, concat, Some(backward))?;
        self.used.mark(concat);
        Ok(Chain {
            sequence: concat.output.first().map_or("", String::as_str),
            ..chain
        })
    }

    /// The states computed before `last` (a step's `Tanh` or `Relu`), each the state its next
    /// step's recurrent term reads, in the order they are computed: a direction whose states
    /// the graph never joins (a head that reads its final state alone). `None` where `last`
    /// is not a step's activation.
    fn states_before(&self, last: &'g str) -> Option<Vec<&'g str>> {
        let node = self.reader.producer.get(last)?;
        if !matches!(node.op_type.as_str(), "Tanh" | "Relu") {
            return None;
        }
        let mut states = vec![last];
        while let Some(previous) = states
            .last()
            .and_then(|&s| self.previous_state(s))
            .filter(|_| states.len() <= self.reader.graph.node.len())
        {
            states.push(previous);
        }
        states.reverse();
        Some(states)
    }

    /// The state the step computing `state` reads as the state before (its recurrent term's
    /// `MatMul` input), where that is another step's activation.
    fn previous_state(&self, state: &str) -> Option<&'g str> {
        let producer = |name: &str| self.reader.producer.get(name).copied();
        let activation =
            |name: &str| producer(name).filter(|n| matches!(n.op_type.as_str(), "Tanh" | "Relu"));
        let term = self.recurrent_input(state)?;
        let mut node = producer(term)?;
        if node.op_type == "Add" {
            let (a, b) = (input(node, 0), input(node, 1));
            node = producer(if self.reader.constant(b).is_some() {
                a
            } else {
                b
            })?;
        }
        let previous = input(node, 0);
        (node.op_type == "MatMul" && activation(previous).is_some()).then_some(previous)
    }

    /// The term a step adds to its row of the projection, where `state` is a step's
    /// activation (`Tanh` or `Relu` of an `Add` of a row and another term).
    fn recurrent_input(&self, state: &str) -> Option<&'g str> {
        let producer = |name: &str| self.reader.producer.get(name).copied();
        let activation =
            producer(state).filter(|n| matches!(n.op_type.as_str(), "Tanh" | "Relu"))?;
        let add = producer(input(activation, 0)).filter(|n| n.op_type == "Add")?;
        let (a, b) = (input(add, 0), input(add, 1));
        if self.is_step_row(a) {
            Some(b)
        } else if self.is_step_row(b) {
            Some(a)
        } else {
            None
        }
    }

    /// A layer whose directions' states the graph does not join: from each direction's final
    /// state (forward first), its states walked back step by step.
    fn unjoined_layer(&mut self, finals: &[&'g str]) -> Result<Vec<Chain<'g>>> {
        let mut chains = Vec::new();
        for (d, &last) in finals.iter().enumerate() {
            let states = self.states_before(last).unwrap_or_default();
            let at = self.node(last)?;
            chains.push(self.chain_of(states, at, Some(d == 1))?);
        }
        match chains.as_slice() {
            [_] => Ok(chains),
            [forward, backward] if forward.input == backward.input => Ok(chains),
            _ => Err(self.plain(format!(
                "a graph of {} unjoined directions reading one sequence",
                chains.len()
            ))),
        }
    }

    /// One direction from its states in the order they are computed; `at` names it in
    /// messages; `backward`, where known, the order its projection must read.
    fn chain_of(
        &mut self,
        states: Vec<&'g str>,
        at: &'g Node,
        backward: Option<bool>,
    ) -> Result<Chain<'g>> {
        let concat = at;
        if states.len() < 2 {
            return Err(self.breaks(
                concat,
                "a recurrence of one step: the exporter folded h0·W_hhᵀ into a constant, so \
                 W_hh is not in the file (export with a sequence of two steps or more)"
                    .into(),
            ));
        }
        let mut activation = Nonlinearity::Tanh;
        let mut projection: Option<&'g str> = None;
        let mut recurrent: Option<(&'g str, Option<&'g str>)> = None;
        let mut first_term = "";
        for (k, &state) in states.iter().enumerate() {
            let node = self.node(state)?;
            let op = match node.op_type.as_str() {
                "Tanh" => Nonlinearity::Tanh,
                "Relu" => Nonlinearity::Relu,
                _ => {
                    return Err(
                        self.breaks(node, "expected the step's activation (Tanh or Relu)".into())
                    )
                }
            };
            if k > 0 && op != activation {
                return Err(self.breaks(node, format!("step {k} differs in its activation")));
            }
            activation = op;
            self.used.mark(node);
            let add = self.producer(node.input.first().map_or("", |s| s), "Add")?;
            let (a, b) = (input(add, 0), input(add, 1));
            let (step, term) = if self.is_step_row(a) { (a, b) } else { (b, a) };
            let rows = self.step_row(add, step, k)?;
            if *projection.get_or_insert(rows) != rows {
                return Err(self.breaks(add, format!("step {k} reads another projection")));
            }
            if k == 0 {
                first_term = term;
                continue;
            }
            let (previous, w_hh, b_hh) = self.recurrent_term(add, term)?;
            if previous != states[k - 1] {
                return Err(self.breaks(
                    add,
                    format!("step {k} does not read the state of the step before"),
                ));
            }
            if *recurrent.get_or_insert((w_hh, b_hh)) != (w_hh, b_hh) {
                return Err(self.breaks(add, format!("step {k} reads other weights")));
            }
        }
        let (w_hh, b_hh) = recurrent.unwrap_or_default();
        let start = self.first_term(concat, first_term, w_hh, b_hh)?;
        let rows = projection.unwrap_or_default();
        let (w_ih, b_ih, input, reversed) = self.projection(concat, rows)?;
        if backward.is_some_and(|b| b != reversed) {
            return Err(self.breaks(
                concat,
                "the order of its states does not match the direction its projection reads".into(),
            ));
        }
        Ok(Chain {
            states,
            activation,
            w_ih,
            b_ih,
            w_hh,
            b_hh,
            input,
            start,
            sequence: "",
            reversed,
        })
    }

    /// Whether `name` is a row of a sequence (`Squeeze` of a `Slice`), without marking.
    fn is_step_row(&self, name: &str) -> bool {
        self.reader
            .producer
            .get(name)
            .filter(|n| n.op_type == "Squeeze")
            .and_then(|n| self.reader.producer.get(input(n, 0)))
            .is_some_and(|n| n.op_type == "Slice")
    }

    /// Row `k` of a sequence, `Squeeze(Slice(rows, [k], [k+1], axes [0]), [0])`: `rows`.
    fn step_row(&mut self, add: &Node, name: &'g str, k: usize) -> Result<&'g str> {
        let squeeze = self.producer(name, "Squeeze")?;
        if self.axes(squeeze) != Some(vec![0]) {
            return Err(self.breaks(squeeze, "expected axis 0".into()));
        }
        let slice = self.producer(input(squeeze, 0), "Slice")?;
        let k = k as i64;
        if self.slice(slice) != Some((k, k + 1, 0, 1)) {
            return Err(self.breaks(
                slice,
                format!(
                    "expected step {k} of the sequence the {} reads",
                    node_name(add)
                ),
            ));
        }
        Ok(input(slice, 0))
    }

    /// `MatMul(previous, W_hhᵀ)`, with `Add` of `b_hh` where there is one.
    fn recurrent_term(
        &mut self,
        add: &Node,
        term: &'g str,
    ) -> Result<(&'g str, &'g str, Option<&'g str>)> {
        let node = self.node(term)?;
        let (matmul, weight, bias) = self.affine(node, || {
            format!("expected the recurrent term the {} adds", node_name(add))
        })?;
        Ok((input(matmul, 0), weight, bias))
    }

    /// How the first step's recurrent term starts: from zeros (folded to `b_hh` or computed)
    /// or from a row of the graph input `h0`.
    fn first_term(
        &mut self,
        concat: &Node,
        term: &'g str,
        w_hh: &'g str,
        b_hh: Option<&'g str>,
    ) -> Result<Start<'g>> {
        if let Some(folded) = self.reader.constant(term) {
            // 0 · W_hhᵀ + b_hh is b_hh in every row, bit for bit.
            self.used.mark_constant(self.reader, term);
            let rows = self.tensor(folded)?;
            if rows.rank() >= 2 {
                self.batch = Some(rows.dims()[rows.rank() - 2]);
            }
            let bias = match b_hh {
                Some(b) => Some(self.stored(b)?),
                None => None,
            };
            let equal = folded_equals_bias(&rows, bias.as_ref()).unwrap_or(false);
            if !equal {
                return Err(self.plain(format!(
                    "a graph whose first step of the recurrence ending in the {} adds a \
                     constant `{term}` that is not b_hh: an h0 other than zeros folded in",
                    node_name(concat)
                )));
            }
            return Ok(Start::Zero);
        }
        let (previous, w, b) = self.recurrent_term(concat, term)?;
        if w != w_hh || b != b_hh {
            return Err(self.plain(format!(
                "a graph whose first step of the recurrence ending in the {} reads other \
                 weights than the steps after it",
                node_name(concat)
            )));
        }
        if self.reader.zeros(previous) {
            self.used.mark_glue(self.reader, previous);
            return Ok(Start::Zero);
        }
        // Unsqueeze(Squeeze(Slice(h0, [i], [i+1], axes [0]), [0]), [0]), or the Slice alone.
        let name = self.row(previous)?;
        let slice = self.producer(name, "Slice")?;
        let h0 = input(slice, 0);
        match self.slice(slice) {
            Some((index, end, 0, 1)) if end == index + 1 && self.reader.inputs.contains(&h0) => {
                Ok(Start::Row { name: h0, index })
            }
            _ => Err(self.breaks(slice, "expected one row of the graph input h0".into())),
        }
    }

    /// `Add(MatMul(input, W_ihᵀ), b_ih)` or the `MatMul` alone, reversed along time by
    /// `Slice(…, [-1], [-∞], [0], [-1])` for the backward direction.
    fn projection(
        &mut self,
        concat: &Node,
        rows: &'g str,
    ) -> Result<(&'g str, Option<&'g str>, &'g str, bool)> {
        let mut name = rows;
        let mut reversed = false;
        if let Some(flip) = self
            .reader
            .producer
            .get(rows)
            .filter(|n| n.op_type == "Slice")
        {
            match self.slice(flip) {
                Some((-1, end, 0, -1)) if end <= i64::from(i32::MIN) => {}
                _ => return Err(self.breaks(flip, "expected a reversal along time".into())),
            }
            self.used.mark(flip);
            reversed = true;
            name = input(flip, 0);
        }
        let node = self.node(name)?;
        let (matmul, weight, bias) = self.affine(node, || {
            format!(
                "expected the input projection the steps of the {} read",
                node_name(concat)
            )
        })?;
        Ok((weight, bias, input(matmul, 0), reversed))
    }

    /// `MatMul(x, W)` with `Add` of a stored bias, or the `MatMul` alone (`node` is the one or
    /// the other): the `MatMul`, `W` and the bias, all stored in the file.
    fn affine(
        &mut self,
        node: &'g Node,
        expected: impl Fn() -> String,
    ) -> Result<(&'g Node, &'g str, Option<&'g str>)> {
        let (matmul, bias) = match node.op_type.as_str() {
            "Add" => {
                self.used.mark(node);
                let (a, b) = (input(node, 0), input(node, 1));
                let (m, bias) = if self.reader.constant(b).is_some() {
                    (a, b)
                } else {
                    (b, a)
                };
                (
                    self.producer(m, "MatMul")?,
                    Some(self.weight(node, bias, 1)?),
                )
            }
            "MatMul" => (node, None),
            _ => return Err(self.breaks(node, expected())),
        };
        self.used.mark(matmul);
        let weight = self.weight(matmul, input(matmul, 1), 2)?;
        Ok((matmul, weight, bias))
    }

    /// `h_n`: the last state of each layer and direction, in PyTorch's order, each
    /// `Unsqueeze(Squeeze(state, [0]), [0])` or the state itself, joined along axis 0.
    fn final_states(&mut self, h_n: &'g str, layers: &[Vec<Chain<'g>>]) -> Result<()> {
        let last: Vec<&str> = layers
            .iter()
            .flatten()
            .map(|c| c.states.last().copied().unwrap_or_default())
            .collect();
        let parts: Vec<&'g str> = match self.reader.producer.get(h_n) {
            Some(n) if n.op_type == "Concat" && last.len() > 1 => {
                if self.axis(n) != 0 {
                    return Err(self.breaks(n, "expected final states joined along axis 0".into()));
                }
                self.used.mark(n);
                n.input.iter().map(String::as_str).collect()
            }
            _ => vec![h_n],
        };
        if parts.len() != last.len() {
            return Err(self.plain(format!(
                "a graph whose h_n `{h_n}` joins {} states, not the {} final ones",
                parts.len(),
                last.len()
            )));
        }
        for (j, (&part, &state)) in parts.iter().zip(&last).enumerate() {
            let name = self.row(part)?;
            if name != state {
                return Err(self.plain(format!(
                    "a graph whose h_n `{h_n}` does not hold the final state of layer {} at \
                     row {j}",
                    j / layers[0].len()
                )));
            }
        }
        Ok(())
    }

    /// `name` without the `Unsqueeze` and `Squeeze` of axis 0 around it (`[1, batch, hidden]`
    /// to `[batch, hidden]` and back), each marked as used.
    fn row(&mut self, name: &'g str) -> Result<&'g str> {
        let mut name = name;
        for op in ["Unsqueeze", "Squeeze"] {
            if let Some(node) = self.reader.producer.get(name).filter(|n| n.op_type == op) {
                if self.axes(node) != Some(vec![0]) {
                    return Err(self.breaks(node, "expected axis 0".into()));
                }
                self.used.mark(node);
                name = input(node, 0);
            }
        }
        Ok(name)
    }

    /// Refuses a node of the graph that the recurrence does not account for.
    fn accounted(&self) -> Result<()> {
        for node in &self.reader.graph.node {
            if node.op_type != "Constant" && !self.used.contains(node) {
                return Err(self.breaks(
                    node,
                    "it is not part of the recurrence the graph unrolls".into(),
                ));
            }
        }
        Ok(())
    }

    /// The canonical tensors, notes and configuration of the lifted stack.
    fn canonical(&self, layers: &[Vec<Chain<'g>>], batch_first: bool) -> Result<Lifted> {
        let mut tensors = HashMap::new();
        let tensor_error = |error| WeightsError::Tensor {
            path: self.reader.path.to_owned(),
            error,
        };
        let mut named = 0usize;
        let budget = self.reader.weight_budget();
        let directions = layers[0].len();
        let mut starts = Vec::new();
        let mut activations: [Vec<Nonlinearity>; 2] = [Vec::new(), Vec::new()];
        for (l, chains) in layers.iter().enumerate() {
            for (d, chain) in chains.iter().enumerate() {
                let suffix = if d == 1 { "_reverse" } else { "" };
                activations[d].push(chain.activation);
                starts.push(&chain.start);
                let get = |name: &str| self.stored(name);
                let w_ih = get(chain.w_ih)?;
                let w_hh = get(chain.w_hh)?;
                let hidden = w_hh.dims().last().copied().unwrap_or(0);
                let mut put = |kind: &str, t: Tensor| -> Result<()> {
                    named = named.saturating_add(t.elem_count() * t.dtype().size_in_bytes());
                    if named > budget {
                        return Err(self.plain(format!(
                            "a graph whose steps name more than 4 bytes of weights per byte of \
                             the file plus 64 MiB ({budget})"
                        )));
                    }
                    tensors.insert(format!("{kind}_l{l}{suffix}"), t);
                    Ok(())
                };
                let transposed = |t: Tensor, what: &str, rows: Option<usize>| {
                    if t.rank() != 2 || rows.is_some_and(|r| t.dims()[1] != r) {
                        return Err(WeightsError::Shape {
                            path: self.reader.path.to_owned(),
                            name: what.to_string(),
                            expected: format!("a matrix of {hidden} columns"),
                            found: t.dims().to_vec(),
                        });
                    }
                    t.t().and_then(|t| t.contiguous()).map_err(tensor_error)
                };
                put("weight_ih", transposed(w_ih, chain.w_ih, Some(hidden))?)?;
                put("weight_hh", transposed(w_hh, chain.w_hh, Some(hidden))?)?;
                let vector = |name: Option<&str>| -> Result<Option<Tensor>> {
                    let Some(name) = name else { return Ok(None) };
                    let t = get(name)?;
                    if t.dims() != [hidden] {
                        return Err(WeightsError::Shape {
                            path: self.reader.path.to_owned(),
                            name: name.to_string(),
                            expected: format!("[{hidden}] (a bias)"),
                            found: t.dims().to_vec(),
                        });
                    }
                    Ok(Some(t))
                };
                let (b_ih, b_hh) = (vector(chain.b_ih)?, vector(chain.b_hh)?);
                // One bias alone (the exporter folds a bias into another term): the other is 0.
                if let Some(some) = b_ih.as_ref().or(b_hh.as_ref()) {
                    let zeros = some.zeros_like().map_err(tensor_error)?;
                    put("bias_ih", b_ih.unwrap_or_else(|| zeros.clone()))?;
                    put("bias_hh", b_hh.unwrap_or(zeros))?;
                }
            }
        }
        // h0: zeros everywhere, or row l·D + d of one graph input for each direction.
        if starts.iter().any(|s| **s != Start::Zero) {
            let name = match starts[0] {
                Start::Row { name, .. } => *name,
                Start::Zero => "",
            };
            for (row, start) in starts.iter().enumerate() {
                let fits = matches!(start, Start::Row { name: n, index } if *n == name && *index == row as i64);
                if !fits {
                    return Err(self.plain(format!(
                        "a graph whose recurrence at row {row} of h0 (layer {}) does not start \
                         from row {row} of one graph input h0",
                        row / directions
                    )));
                }
            }
        }
        let mut metadata = HashMap::new();
        let configs = activations[0]
            .iter()
            .enumerate()
            .map(|(l, &forward)| LayerConfig {
                nonlinearity_reverse: activations[1].get(l).copied().unwrap_or(forward),
                ..LayerConfig::new(forward)
            })
            .collect();
        let recorded = Recorded {
            layers: Some(configs),
            batch_first: Some(batch_first),
            ..Recorded::default()
        };
        let steps = layers[0][0].states.len();
        let batch = self
            .batch
            .map_or(String::new(), |b| format!(" for a batch of {b}"));
        metadata.insert(
            UNROLLED.into(),
            format!(
                "the graph unrolls the RNN over {steps} steps{batch} (torch.onnx.export's \
                 default exporter fixes what it was exported with); rnn runs the recurrence \
                 it lifted from those steps, for any length and batch"
            ),
        );
        Ok((tensors, metadata, recorded))
    }

    fn tensor(&self, t: &super::proto::TensorProto) -> Result<Tensor> {
        to_tensor(self.reader.path, t)
    }

    /// The initialiser or `Constant` `name`, which [`Self::weight`] found.
    fn stored(&self, name: &str) -> Result<Tensor> {
        match self.reader.constant(name) {
            Some(t) => self.tensor(t),
            None => Err(self.plain(format!("a graph without the weight `{name}`"))),
        }
    }

    /// The producer of `name`, which must be a `op` of the default domain; marked as used.
    fn producer(&mut self, name: &str, op: &str) -> Result<&'g Node> {
        let node = self.node(name)?;
        if node.op_type != op || !node.domain.is_empty() {
            return Err(self.breaks(node, format!("expected a {op}")));
        }
        self.used.mark(node);
        Ok(node)
    }

    fn node(&self, name: &str) -> Result<&'g Node> {
        self.reader.producer.get(name).copied().ok_or_else(|| {
            self.plain(format!(
                "a graph whose value `{name}` is not computed where the recurrence needs it"
            ))
        })
    }

    /// A float initialiser or `Constant` of `rank` dimensions named `name`.
    fn weight(&mut self, node: &Node, name: &'g str, rank: usize) -> Result<&'g str> {
        match self.reader.constant(name) {
            Some(t) if t.dims.len() == rank => {
                self.used.mark_constant(self.reader, name);
                Ok(name)
            }
            _ => Err(self.breaks(
                node,
                format!("expected `{name}` to be a weight of {rank} dimensions stored in the file"),
            )),
        }
    }

    /// `(start, end, axis, step)` of a `Slice` of one axis whose bounds are constants.
    fn slice(&mut self, node: &Node) -> Option<(i64, i64, i64, i64)> {
        let ints = |i: usize| match node.input.get(i).filter(|n| !n.is_empty()) {
            Some(n) => self.reader.constant_ints(Some(n)),
            None => None,
        };
        let one = |v: Option<Vec<i64>>, default: i64| match v.as_deref() {
            Some([x]) => Some(*x),
            None => Some(default),
            _ => None,
        };
        let start = one(ints(1), i64::MAX)?;
        let end = one(ints(2), i64::MAX)?;
        if ints(1).is_none() || ints(2).is_none() {
            return None;
        }
        let axis = one(ints(3), 0)?;
        let step = one(ints(4), 1)?;
        for i in 1..node.input.len() {
            let name = node.input[i].clone();
            self.used.mark_constant(self.reader, &name);
        }
        Some((start, end, axis, step))
    }

    /// The axes of a `Squeeze` or `Unsqueeze` (an input since opset 13, an attribute before).
    fn axes(&mut self, node: &Node) -> Option<Vec<i64>> {
        if let Some(name) = node.input.get(1).filter(|n| !n.is_empty()) {
            let axes = self.reader.constant_ints(Some(name));
            let name = name.clone();
            self.used.mark_constant(self.reader, &name);
            return axes;
        }
        let axes = super::attributes::Attributes::ints_of(node, "axes");
        (!axes.is_empty()).then_some(axes)
    }

    fn axis(&self, node: &Node) -> i64 {
        node.attribute
            .iter()
            .find(|a| a.name == "axis")
            .map_or(0, |a| a.i)
    }

    /// The input of a `Transpose` that swaps axes 0 and 1 (batch-first), marked as used.
    fn batch_swap(&mut self, name: &str) -> Option<&'g str> {
        let node = self.reader.producer.get(name).copied()?;
        if node.op_type != "Transpose"
            || super::attributes::Attributes::ints_of(node, "perm") != [1, 0, 2]
        {
            return None;
        }
        self.used.mark(node);
        Some(input(node, 0))
    }

    fn breaks(&self, node: &Node, why: String) -> WeightsError {
        self.plain(format!(
            "a graph whose {} breaks the pattern: {why}",
            node_name(node)
        ))
    }

    fn plain(&self, what: String) -> WeightsError {
        refuse(
            self.reader.path,
            format!(
                "an ONNX graph without RNN nodes, read as the steps of an unrolled nn.RNN \
                 (torch.onnx.export's default exporter): {what}"
            ),
            ADVICE,
        )
    }
}

/// Whether every row of `folded` (`[1, batch, hidden]` or `[batch, hidden]`) is `bias` (or
/// zeros without one), bit for bit.
fn folded_equals_bias(folded: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<bool> {
    let hidden = folded.dims().last().copied().unwrap_or(0);
    let rows = folded.to_dtype(DType::F64)?.reshape(((), hidden))?;
    let want = match bias {
        Some(b) => b.to_dtype(DType::F64)?,
        None => Tensor::zeros(hidden, DType::F64, folded.device())?,
    };
    if want.dims() != [hidden] {
        return Ok(false);
    }
    let want: Vec<f64> = want.to_vec1()?;
    Ok(rows.to_vec2::<f64>()?.iter().all(|row| *row == want))
}
