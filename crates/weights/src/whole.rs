//! The whole model a file records around its RNN ([`Graph`], described in `config.rs`) built
//! on a device into `rnn_core::around` layers ([`Whole`]), which `pipeline.rs` runs from the
//! model's own inputs to its own output; and the token ids such a model takes.

use candle_core::{DType, Device, Tensor};
use rnn_core::around::Layer;

use crate::config::{Graph, Part, PartKind, Source};

use crate::error::Result;
use crate::file::TensorFile;
use crate::onnx_program::Program;

/// What a layer after the RNN computes, built ([`PartKind`] on a device).
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Layer(Layer),
    Merge(rnn_core::around::Merge),
    /// A dropout or noise layer: its input.
    Identity,
}

/// A [`Graph`] built on a device: what [`crate::Model`] runs around the RNN.
#[derive(Debug, Clone)]
pub(crate) struct Whole {
    pub(crate) before: Vec<Layer>,
    /// The layers after the RNN, each with what it reads ([`crate::config::Node`]).
    pub(crate) after: Vec<(Op, Vec<Source>)>,
    pub(crate) return_sequences: bool,
    /// The model's outputs, by name, in its order.
    pub(crate) outputs: Vec<String>,
    /// Where each output's value comes from (a Keras model's; an ONNX graph's are its own).
    pub(crate) sources: Vec<Source>,
    /// The embedding's vocabulary where the model takes token ids.
    pub(crate) vocabulary: Option<usize>,
    /// An ONNX graph's nodes, evaluated around the RNN in place of `before` and `after`.
    pub(crate) onnx: Option<Program>,
}

impl Whole {
    /// How the user runs the RNN alone instead ([`Graph::alone`]).
    pub(crate) fn alone(&self) -> &'static str {
        crate::config::run_alone(self.onnx.is_some())
    }

    /// The layers before the RNN applied to `x`, with the step mask they make.
    pub(crate) fn front(
        &self,
        x: &Tensor,
    ) -> candle_core::Result<(Tensor, Option<rnn_core::around::StepMask>)> {
        let (mut x, mut mask) = (x.clone(), None);
        for layer in &self.before {
            (x, mask) = layer.forward(&x, mask)?;
        }
        Ok((x, mask))
    }

    /// The model's outputs, in its order, from the RNN's `output` (its last step, or every
    /// step) and final `states` (as [`rnn_core::Rnn::forward_states`] gives them): the layers
    /// after the RNN evaluated in order, each value held until the outputs are taken.
    ///
    /// `budget`: the elements the layers' values may hold together, checked before each is
    /// computed (a small config can join a value with itself again and again).
    ///
    /// # Errors
    /// A state the run does not give; values past `budget`; as each layer's `forward`.
    pub(crate) fn head(
        &self,
        output: &Tensor,
        states: &[Tensor],
        budget: usize,
    ) -> candle_core::Result<Vec<Tensor>> {
        let mut values: Vec<Tensor> = Vec::with_capacity(self.after.len());
        let mut held = 0usize;
        let read = |values: &[Tensor], source: Source| -> candle_core::Result<Tensor> {
            match source {
                Source::Output => Ok(output.clone()),
                Source::State(k) => states.get(k).cloned().ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "state {k}: the run gives {} final states",
                        states.len()
                    ))
                }),
                Source::Layer(k) => values.get(k).cloned().ok_or_else(|| {
                    candle_core::Error::Msg(format!("layer {k} is read before it is computed"))
                }),
            }
        };
        for (op, inputs) in &self.after {
            let x = inputs
                .iter()
                .map(|&s| read(&values, s))
                .collect::<candle_core::Result<Vec<_>>>()?;
            held = held.saturating_add(elements(op, &x)?);
            if held > budget {
                return Err(candle_core::Error::Msg(format!(
                    "the layers after the RNN would hold {held} values, more than {budget} \
                     (the widest layer's output at each step of each sequence, four times and \
                     once more for each input those layers read)"
                )));
            }
            let y = match (op, x.as_slice()) {
                (Op::Merge(merge), _) => merge.forward(&x)?,
                (Op::Layer(layer), [x]) => layer.forward(x, None)?.0,
                (Op::Identity, [x]) => x.clone(),
                _ => {
                    return Err(candle_core::Error::Msg(format!(
                        "a layer of one input is given {}",
                        x.len()
                    )))
                }
            };
            values.push(y);
        }
        self.sources.iter().map(|&s| read(&values, s)).collect()
    }

    /// Whether the outputs can be computed one step at a time from the top layer's output: no
    /// layer reading a final state (known only at a sequence's end).
    pub(crate) fn stepwise(&self) -> bool {
        let reads_state = |s: &Source| matches!(s, Source::State(_));
        !self.sources.iter().any(reads_state)
            && !self
                .after
                .iter()
                .any(|(_, inputs)| inputs.iter().any(reads_state))
    }
}

/// The elements `op` allocates for its output from `inputs`, from their shapes alone.
fn elements(op: &Op, inputs: &[Tensor]) -> candle_core::Result<usize> {
    let count = |t: &Tensor| t.elem_count();
    Ok(match op {
        Op::Identity => 0,
        Op::Merge(rnn_core::around::Merge::Concatenate { .. }) => inputs.iter().map(count).sum(),
        Op::Merge(merge) => {
            let Some(first) = inputs.first() else {
                return Ok(0);
            };
            let mut shape = first.shape().clone();
            for x in &inputs[1..] {
                shape = shape.broadcast_shape_binary_op(x.shape(), merge.class())?;
            }
            shape.elem_count()
        }
        Op::Layer(Layer::Dense { kernel, .. }) => inputs.first().map_or(0, |x| {
            let (rows, units) = (kernel.dims()[0].max(1), kernel.dims()[1]);
            (x.elem_count() / rows).saturating_mul(units)
        }),
        Op::Layer(_) => inputs.first().map_or(0, count),
    })
}

impl Graph {
    /// The layers built from `file`'s tensors in `dtype` on `device`.
    ///
    /// # Errors
    /// A tensor missing or of the wrong dtype, or shaped other than its layer needs
    /// ([`WeightsError::Shape`] naming it).
    pub(crate) fn build(&self, file: &TensorFile, dtype: DType, device: &Device) -> Result<Whole> {
        if let Some(nodes) = &self.onnx {
            let program = nodes
                .0
                .on(dtype, device)
                .map_err(|e| file.tensor_error(e))?;
            return Ok(Whole {
                before: Vec::new(),
                after: Vec::new(),
                return_sequences: false,
                outputs: program.outputs.clone(),
                sources: Vec::new(),
                vocabulary: program.vocabulary,
                onnx: Some(program),
            });
        }
        let load = |name: &str| -> Result<Tensor> {
            file.float(name, dtype)?
                .to_device(device)
                .map_err(|e| file.tensor_error(e))
        };
        let build = |part: &Part| -> Result<Op> {
            Ok(Op::Layer(match &part.kind {
                PartKind::Embedding { table, mask_zero } => {
                    let table_tensor = load(table)?;
                    if table_tensor.rank() != 2 {
                        return Err(file.shape_error(
                            table,
                            format!("[vocabulary, features] (the table of `{}`)", part.name),
                            table_tensor.dims(),
                        ));
                    }
                    Layer::Embedding {
                        table: table_tensor,
                        mask_zero: *mask_zero,
                    }
                }
                PartKind::Masking { value } => Layer::Masking { value: *value },
                PartKind::Dense {
                    kernel,
                    bias,
                    activation,
                } => {
                    let kernel_tensor = load(kernel)?;
                    let (_, units) = kernel_tensor.dims2().map_err(|_| {
                        file.shape_error(
                            kernel,
                            format!("[in, units] (the kernel of `{}`)", part.name),
                            kernel_tensor.dims(),
                        )
                    })?;
                    let bias = match bias {
                        Some(name) => {
                            let b = load(name)?;
                            if b.dims() != [units] {
                                return Err(file.shape_error(
                                    name,
                                    format!("[{units}] (the bias of `{}`)", part.name),
                                    b.dims(),
                                ));
                            }
                            Some(b)
                        }
                        None => None,
                    };
                    Layer::Dense {
                        kernel: kernel_tensor,
                        bias,
                        activation: *activation,
                    }
                }
                PartKind::Activation(activation) => Layer::Activation(*activation),
                PartKind::SoftmaxAxis(axis) => Layer::SoftmaxAxis(*axis),
                PartKind::Flatten => Layer::Flatten,
                PartKind::Identity => return Ok(Op::Identity),
                PartKind::Merge(merge) => return Ok(Op::Merge(*merge)),
            }))
        };
        let mut before = Vec::new();
        for part in &self.before {
            match build(part)? {
                Op::Layer(layer) => before.push(layer),
                Op::Identity => {}
                Op::Merge(merge) => {
                    return Err(crate::WeightsError::Unsupported {
                        path: file.path().to_owned(),
                        format: format!("a {} layer before the RNN", merge.class()),
                        advice: self.alone().into(),
                    })
                }
            }
        }
        let after = self
            .after
            .iter()
            .map(|node| Ok((build(&node.part)?, node.inputs.clone())))
            .collect::<Result<Vec<_>>>()?;
        let vocabulary = match before.first() {
            Some(Layer::Embedding { table, .. }) => Some(table.dims()[0]),
            _ => None,
        };
        Ok(Whole {
            before,
            after,
            return_sequences: self.return_sequences,
            outputs: self.outputs.iter().map(|(name, _)| name.clone()).collect(),
            sources: self.outputs.iter().map(|&(_, source)| source).collect(),
            vocabulary,
            onnx: None,
        })
    }
}

/// The token ids of `input` (any integer dtype, or floats that are whole numbers) as u32 for
/// an embedding of `vocabulary` rows, on `input`'s device.
///
/// # Errors
/// The first id outside `[0, vocabulary)` or not a whole number, with its place, in words.
pub(crate) fn token_ids(input: &Tensor, vocabulary: usize) -> std::result::Result<Tensor, String> {
    if input.rank() != 2 {
        return Err(format!(
            "input: expected token ids [batch, steps] (the model's first layer is an \
             Embedding), found shape {:?}",
            input.dims()
        ));
    }
    let steps = input.dims()[1];
    // Above this, the float type does not hold every whole number: the id read may not be the
    // one written (a JSON or CSV file is read as float32).
    let exact = match input.dtype() {
        DType::F16 => Some(1u64 << 11),
        DType::BF16 => Some(1 << 8),
        DType::F32 => Some(1 << 24),
        DType::F64 => Some(1 << 53),
        _ => None,
    };
    let values: Vec<f64> = input
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all()?.to_vec1())
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(values.len());
    for (k, &v) in values.iter().enumerate() {
        if exact.is_some_and(|limit| v >= limit as f64) {
            return Err(format!(
                "input: token id {v} at [{}, {}] is {} or more, past which {} does not hold \
                 every whole number; store the ids as integers (an int64 .npy or safetensors)",
                k / steps.max(1),
                k % steps.max(1),
                exact.unwrap_or_default(),
                crate::dtype::name(input.dtype())
            ));
        }
        if v.fract() != 0.0 || !(0.0..vocabulary as f64).contains(&v) {
            return Err(format!(
                "input: expected token ids, whole numbers in [0, {vocabulary}) (the embedding's \
                 vocabulary), found {v} at [{}, {}]",
                k / steps.max(1),
                k % steps.max(1)
            ));
        }
        ids.push(v as u32);
    }
    Tensor::from_vec(ids, input.dims(), input.device()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rnn_core::around::Merge;

    /// A head that joins the RNN's output with itself `times` times over.
    fn doubling(times: usize) -> Whole {
        let concat = Op::Merge(Merge::Concatenate { axis: -1 });
        let mut after = vec![(concat.clone(), vec![Source::Output, Source::Output])];
        for k in 1..times {
            after.push((
                concat.clone(),
                vec![Source::Layer(k - 1), Source::Layer(k - 1)],
            ));
        }
        Whole {
            before: Vec::new(),
            after,
            return_sequences: false,
            outputs: vec!["y".into()],
            sources: vec![Source::Layer(times - 1)],
            vocabulary: None,
            onnx: None,
        }
    }

    #[test]
    fn a_head_that_joins_a_value_with_itself_is_held_to_its_budget() {
        let output = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
        // 12 + 24 + 48 elements held.
        let y = doubling(3).head(&output, &[], 84).unwrap();
        assert_eq!(y[0].dims(), [2, 24]);
        // Forty doublings of a small config would hold terabytes: refused before allocating.
        let err = doubling(40).head(&output, &[], 1000).unwrap_err();
        assert!(err.to_string().contains("more than 1000"), "{err}");
        // A state the run does not give.
        let mut whole = doubling(1);
        whole.sources = vec![Source::State(2)];
        assert!(whole.head(&output, &[], 1000).is_err());
    }
}
