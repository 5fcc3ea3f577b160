//! The stack's nodes converted to canonical weights under PyTorch's names, with the options
//! their attributes record as metadata and the initialisers that fix `h0` and `lengths`.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use rnn_core::{MergeMode, Nonlinearity, TimeOrder};

use super::attributes::Attributes;
use super::graph::{Feed, Lifted, Reader};
use super::proto::Node;
use super::tensor::to_tensor;
use super::whole::Boundary;
use super::{malformed, node_name, refuse, EXPORT_RNN_ALONE};
use crate::config::{LayerConfig, Recorded};
use crate::error::{Result, WeightsError};
use crate::onnx_program::Program;

impl<'g> Reader<'g> {
    /// The stack, and for a whole model the graph around it.
    pub(super) fn read(&self) -> Result<(Lifted, Option<Program>)> {
        let rnns: Vec<&Node> = self
            .graph
            .node
            .iter()
            .filter(|n| n.op_type == "RNN" && (n.domain.is_empty() || n.domain == "ai.onnx"))
            .collect();
        if rnns.is_empty() && self.graph.node.iter().any(|n| n.op_type == "Loop") {
            return self.alone_or_whole(super::looped::lift, super::looped::lift_whole);
        }
        if let Some(scan) = self.graph.node.iter().find(|n| n.op_type == "Scan") {
            return Err(refuse(
                self.path,
                format!(
                    "an ONNX graph that runs its recurrence in a {}",
                    node_name(scan)
                ),
                "give rnn the model it was converted from: a Keras model saved with \
                 model.save(\"m.keras\") (Keras 3) or model.save(\"m.h5\") (tf-keras), or a \
                 PyTorch nn.RNN exported with torch.onnx.export or saved as a state_dict",
            ));
        }
        let unrolls = self.graph.node.iter().any(|n| n.op_type == "MatMul");
        if rnns.is_empty() && unrolls {
            return self.alone_or_whole(super::unrolled::lift, super::unrolled::lift_whole);
        }
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
                "export the nn.RNN with torch.onnx.export, or save the state_dict",
            ));
        }
        // The Min and Cast of an optional sequence_lens (capped_lengths) are glue there.
        let capping: Vec<&Node> = rnns
            .iter()
            .filter_map(|n| self.capped_lengths(n.input.get(4)?))
            .flat_map(|(_, nodes)| nodes)
            .collect();
        // A graph with other ops is a whole model (`whole.rs`): the stack read the same way,
        // run from its bottom node's X, the rest evaluated around it.
        let whole = self.foreign(&capping).is_some();
        let stack = self.order(&rnns, whole)?;
        // A whole model's other nodes first: an op rnn does not evaluate is the first thing
        // to say.
        let program = if whole {
            let nodes: Vec<&Node> = stack.iter().map(|(n, _)| *n).collect();
            Some(self.program(&self.rnn_boundary(&nodes)?, self.opset)?)
        } else {
            None
        };
        let mut tensors = HashMap::new();
        // The weights the nodes name, in bytes: each initialiser is stored once, so nodes that
        // all name the same ones would make a small file a large model.
        let mut named = 0usize;
        let budget = self.weight_budget();
        let mut metadata = HashMap::new();
        let mut nonlinearities: Vec<Vec<Nonlinearity>> = Vec::new();
        let mut clips = Vec::new();
        let mut reversed = Vec::new();
        let mut h0s = Vec::new();
        let mut lens: Vec<Feed> = Vec::new();
        let mut batch_first = false;
        // Whether the graph transposes its batch-first input (and so its output back).
        let mut transposed = false;
        let mut directions = 0;
        let mut node_directions = Vec::new();
        // How each layer below the top joins its directions, from the glue above it.
        let mut merges = Vec::new();
        for (k, (node, path)) in stack.iter().enumerate() {
            let attrs = Attributes::new(self.path, node)?;
            let (d, reverse) = attrs.directions()?;
            reversed.push(reverse);
            if k == 0 && whole {
                // Time-major at the node's X: the graph's own nodes transpose it there.
            } else if k == 0 {
                batch_first = self.first_path(node, path)?;
                transposed = batch_first;
            } else {
                merges.push(self.between_path(node, path, directions)?);
            }
            directions = d;
            node_directions.push(d);
            let layout = attrs.int("layout", 0);
            if layout != 0 && (stack.len() > 1 || batch_first || whole) {
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
            for t in [Some(&w), Some(&r), b.as_ref()].into_iter().flatten() {
                named = named.saturating_add(t.elem_count() * t.dtype().size_in_bytes());
            }
            if named > budget {
                return Err(malformed(
                    self.path,
                    format!(
                        "the RNN nodes up to the {} name {named} bytes of weights, more than 4 \
                         per byte of the file plus 64 MiB: nodes that share their initialisers",
                        node_name(node)
                    ),
                ));
            }
            let hidden = r.dims().get(1).copied().unwrap_or(0);
            let expect = |t: &Tensor, what: &str, shape: &[usize]| {
                if t.dims() != shape
                    && !(what == "W" && t.rank() == 3 && t.dims()[..2] == shape[..2])
                {
                    return Err(WeightsError::Shape {
                        path: self.path.to_owned(),
                        name: format!("{what} of {}", node_name(node)),
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
            let (h0, lengths) = (
                self.feed(node, 5, "initial_h"),
                self.feed(node, 4, "sequence_lens"),
            );
            if whole {
                // A whole model's RNN runs from zeros over every step, whatever else the
                // graph would have given it.
                self.whole_feed(node, h0.as_ref().ok(), "initial_h")?;
                self.whole_feed(node, lengths.as_ref().ok(), "sequence_lens")?;
            }
            h0s.push(h0?);
            lens.push(lengths?);
        }
        let top_directions = node_directions.last().copied().unwrap_or(1);
        merges.push(if whole {
            // The graph reads the top node's Y [seq, directions, batch, hidden] itself.
            MergeMode::Concat
        } else {
            self.outputs(&stack, top_directions, transposed)?
        });
        let layers = nonlinearities
            .iter()
            .zip(&clips)
            .zip(&reversed)
            .zip(&merges)
            .map(|(((n, &clip), &reverse), &merge_mode)| LayerConfig {
                nonlinearity: n[0],
                nonlinearity_reverse: n[n.len() - 1],
                clip,
                time: if reverse {
                    TimeOrder::Reverse
                } else {
                    TimeOrder::Forward
                },
                merge_mode,
            })
            .collect();
        let recorded = Recorded {
            layers: Some(layers),
            batch_first: Some(batch_first),
            ..Recorded::default()
        };
        let mut fixed = Vec::new();
        if let Some(h0) = self.initial_state(&stack, &node_directions, &h0s)? {
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
            metadata.insert(crate::MODEL_INPUTS.into(), fixed.join(","));
        }
        // ONNX Runtime's RNN gives a sequence of length 0 a final state of 0 (checked when
        // inputs are prepared: crate::pipeline).
        metadata.insert(crate::pipeline::ZERO_LENGTH_STATE.into(), "0".into());
        if node_directions.iter().any(|&d| d != node_directions[0]) {
            let directions: Vec<String> = node_directions.iter().map(usize::to_string).collect();
            metadata.insert(crate::config::key::DIRECTIONS.into(), directions.join(","));
        }
        Ok(((tensors, metadata, recorded), program))
    }

    /// A recurrence a lifter finds (`alone`: the graph is that recurrence), or, where the graph
    /// is more, the whole model around the recurrence `whole` finds in it; where neither
    /// lifts, why the recurrence alone did not.
    fn alone_or_whole(
        &self,
        alone: impl Fn(&Self) -> Result<Lifted>,
        whole: impl Fn(&Self) -> Result<Vec<(Lifted, Boundary<'g>)>>,
    ) -> Result<(Lifted, Option<Program>)> {
        let lifted = alone(self);
        if lifted.is_ok() {
            return lifted.map(|l| (l, None));
        }
        // The first recurrence whose boundary the rest of the graph respects.
        let mut first_error = None;
        for (stack, boundary) in whole(self)? {
            match self.program(&boundary, self.opset) {
                Ok(program) => return Ok((stack, Some(program))),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => lifted.map(|l| (l, None)),
        }
    }

    /// Every graph output is what rnn computes, in one of the layouts the exporters write: an
    /// RNN node's own `Y` or `Y_h`; the top node's `Y` through the glue between stacked
    /// nodes (`[seq, batch, D·H]`), transposed back where the input was batch-first; the
    /// nodes' `Y_h` concatenated in stack order (`h_n`). Glue that computes anything else
    /// from them (a slice of the steps, another transpose) is refused: rnn would give the
    /// RNN's outputs where the model gives others. How the top node joins its directions:
    /// as its outputs do (concatenated where they do not say).
    fn outputs(
        &self,
        stack: &[(&Node, Vec<&Node>)],
        top_directions: usize,
        transposed: bool,
    ) -> Result<MergeMode> {
        let rnn_outputs: Vec<&str> = stack
            .iter()
            .flat_map(|(n, _)| n.output.iter().map(String::as_str))
            .collect();
        let finals: Vec<&str> = stack
            .iter()
            .filter_map(|(n, _)| n.output.get(1).map(String::as_str))
            .collect();
        let Some((top, _)) = stack.last() else {
            return Ok(MergeMode::Concat);
        };
        let mut merges = Vec::new();
        for output in &self.graph.output {
            let name = output.name.as_str();
            if rnn_outputs.contains(&name) {
                continue;
            }
            let producer = self.producer.get(name).copied();
            let stacked_finals = producer.is_some_and(|p| {
                p.op_type == "Concat"
                    && p.attribute.iter().any(|a| a.name == "axis" && a.i == 0)
                    && p.input
                        .iter()
                        .map(String::as_str)
                        .eq(finals.iter().copied())
            });
            if stacked_finals {
                continue;
            }
            let (source, path) = self.trace(name)?;
            let path = match (transposed, path.split_first()) {
                (true, Some((t, rest)))
                    if t.op_type == "Transpose"
                        && super::attributes::Attributes::ints_of(t, "perm") == [1, 0, 2] =>
                {
                    rest.to_vec()
                }
                _ => path,
            };
            let merge = source
                .filter(|s| std::ptr::eq(*s, *top))
                .and_then(|_| self.between_path(top, &path, top_directions).ok());
            if let Some(merge) = merge {
                merges.push(merge);
            } else {
                return Err(refuse(
                    self.path,
                    format!(
                        "an ONNX graph whose output `{name}` is computed from its RNN nodes by {}, not \
                         the layout torch.onnx.export writes",
                        producer.map_or_else(|| "no node".to_string(), node_name)
                    ),
                    EXPORT_RNN_ALONE,
                ));
            }
        }
        merges.dedup();
        match merges.as_slice() {
            [] => Ok(MergeMode::Concat),
            [one] => Ok(*one),
            _ => Err(refuse(
                self.path,
                format!(
                    "an ONNX graph whose outputs join the directions of its top RNN node in \
                     different ways ({})",
                    merges
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                EXPORT_RNN_ALONE,
            )),
        }
    }

    fn attribute(&self, node: &Node, name: &str, value: &str) -> WeightsError {
        refuse(
            self.path,
            format!("an ONNX {} with {name}={value}", node_name(node)),
            EXPORT_RNN_ALONE,
        )
    }

    /// `h0` `[layers · directions, batch, hidden]` when initialisers fix every node's; `None`
    /// when every node starts from zeros or from its part of one graph input (the user's
    /// `h0`, in the same layout).
    fn initial_state(
        &self,
        stack: &[(&Node, Vec<&Node>)],
        directions: &[usize],
        feeds: &[Feed],
    ) -> Result<Option<Tensor>> {
        if feeds.iter().all(|f| matches!(f, Feed::Absent | Feed::Zero)) {
            return Ok(None);
        }
        if let [Feed::GraphInput { range: None, .. }] = feeds {
            return Ok(None);
        }
        if let Some(Feed::GraphInput { name, .. }) = feeds.first() {
            // Each node must read the next rows of the same input, in stack order.
            let mut row = 0i64;
            for (((node, _), feed), &d) in stack.iter().zip(feeds).zip(directions) {
                let next = row + d as i64;
                let fits = matches!(feed, Feed::GraphInput { name: n, range: Some((start, end)) }
                    if n == name && *start == row && *end == next);
                if !fits {
                    return Err(refuse(
                        self.path,
                        format!(
                            "an ONNX stack whose {} does not read rows {row}..{next} of the \
                             graph input `{name}` as its initial_h, as the layers before it \
                             lead to expect",
                            node_name(node)
                        ),
                        "export with h0 given as one graph input sliced per layer, or left \
                         out",
                    ));
                }
                row = next;
            }
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
                            node_name(node)
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
            [Feed::GraphInput { name, range: None }, rest @ ..]
                if rest.iter().all(
                    |f| matches!(f, Feed::GraphInput { name: n, range: None } if n == name),
                ) =>
            {
                Ok(None)
            }
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
