//! The layers a Keras model puts around its RNN (`Embedding`, `Masking`, `Dense`,
//! `Activation`, `Flatten`, and the merge layers that join branches), computed with candle's ops on any device, and the RNN run under a
//! step mask as Keras runs it: a masked step is skipped, the state carried over it.
//!
//! Keras's semantics, from its `Embedding`, `Masking`, `Dense` and `rnn` backend function:
//! `Embedding(mask_zero=True)` masks the steps whose id is 0; `Masking(v)` masks the steps
//! whose every feature is `v` and zeroes them; `Dense` and `TimeDistributed(Dense)` are
//! `x·kernel + bias` over the last axis; the mask passes through `Dense`, `Activation` and the
//! dropout layers to the RNN. The RNN skips masked steps wherever they are (padding at the
//! front, as `keras.utils.pad_sequences` pads by default, at the end, or holes between valid
//! steps): [`run_masked`].

use candle_core::{DType, Result, Tensor, D};

use crate::options::{MaskedSteps, TimeOrder};
use crate::{Nonlinearity, Rnn};

/// A step mask, `[batch][steps]`: `true` where the step is valid.
pub type StepMask = Vec<Vec<bool>>;

/// What an activation computes: an elementwise [`Nonlinearity`] (Keras's `linear`, `relu`,
/// `sigmoid`, …), or a softmax over the last axis (`softmax`, `log_softmax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Applied to each element.
    Elementwise(Nonlinearity),
    /// `exp(x) / Σ exp(x)` over the last axis.
    Softmax,
    /// `x − log Σ exp(x)` over the last axis.
    LogSoftmax,
}

impl Activation {
    /// The activation Keras names `name` (`"softmax"`, `"relu"`, `"linear"`, …), `None` for
    /// one `rnn` does not compute.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "softmax" => Some(Activation::Softmax),
            "log_softmax" => Some(Activation::LogSoftmax),
            other => Nonlinearity::from_name(other).map(Activation::Elementwise),
        }
    }

    /// `x` activated.
    ///
    /// # Errors
    /// As candle's ops.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Elementwise(f) => f.apply(x),
            Activation::Softmax => candle_nn::ops::softmax_last_dim(x),
            Activation::LogSoftmax => candle_nn::ops::log_softmax(x, D::Minus1),
        }
    }
}

impl std::fmt::Display for Activation {
    /// Keras's name for it (`softmax`, `relu`, `linear`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Activation::Elementwise(n) => n.fmt(f),
            Activation::Softmax => f.write_str("softmax"),
            Activation::LogSoftmax => f.write_str("log_softmax"),
        }
    }
}

/// One layer around the RNN, its weights on the device it runs on.
#[derive(Debug, Clone)]
pub enum Layer {
    /// Keras's `Embedding`: `table` `[vocabulary, features]`; ids `[batch, steps]` (u32,
    /// checked against the vocabulary by the caller) become `[batch, steps, features]`. With
    /// `mask_zero`, id 0 masks its step.
    Embedding {
        /// `[vocabulary, features]`.
        table: Tensor,
        /// Whether id 0 masks its step.
        mask_zero: bool,
    },
    /// Keras's `Masking`: a step whose every feature is `value` is masked and zeroed.
    Masking {
        /// The mask value, compared in the input's dtype ([`crate::step_mask`]).
        value: f64,
    },
    /// Keras's `Dense` (also inside `TimeDistributed`): `x·kernel + bias` over the last axis,
    /// then the activation.
    Dense {
        /// `[in, out]`, Keras's layout.
        kernel: Tensor,
        /// `[out]`.
        bias: Option<Tensor>,
        /// Applied after the bias.
        activation: Activation,
    },
    /// Keras's `Activation` and `Softmax` layers.
    Activation(Activation),
    /// Keras's `Softmax` with its axis given by number (`Softmax(axis=1)`): a softmax over
    /// the last axis, which `axis` must name (rnn computes a softmax over the last axis
    /// only; a layer's rank is known only from its input, at run time).
    SoftmaxAxis(usize),
    /// Keras's `Flatten`: every axis after the batch's as one.
    Flatten,
}

impl Layer {
    /// The features per step of what the layer outputs, where its weights fix them (an
    /// embedding's, a Dense layer's units); 0 for the others, which keep their input's.
    pub fn width(&self) -> usize {
        match self {
            Layer::Embedding { table, .. } => table.dims().get(1).copied().unwrap_or(0),
            Layer::Dense { kernel, .. } => kernel.dims().get(1).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// The layer applied to `x`, with the step mask it passes on (`mask` is the one it
    /// receives): an `Embedding` with `mask_zero` and a `Masking` make a new one, the others
    /// keep theirs (`Flatten` drops it).
    ///
    /// # Shapes
    /// `Embedding`: `[batch, steps]` u32 in; the others `[batch, features]` or
    /// `[batch, steps, features]`, as Keras's layers take them.
    ///
    /// # Errors
    /// When a shape does not fit the layer's weights.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<StepMask>,
    ) -> Result<(Tensor, Option<StepMask>)> {
        match self {
            Layer::Embedding { table, mask_zero } => {
                let (batch, steps) = x.dims2()?;
                let features = table.dim(1)?;
                let y = table
                    .index_select(&x.flatten_all()?, 0)?
                    .reshape((batch, steps, features))?;
                let mask = if *mask_zero {
                    let ids: Vec<Vec<u32>> = x.to_vec2()?;
                    Some(
                        ids.into_iter()
                            .map(|row| row.into_iter().map(|id| id != 0).collect())
                            .collect(),
                    )
                } else {
                    mask
                };
                Ok((y, mask))
            }
            Layer::Masking { value } => {
                let valid = crate::step_mask(x, *value)?;
                let keep = mask_tensor(&valid, x.dtype(), x.device())?.unsqueeze(2)?;
                Ok((x.broadcast_mul(&keep)?, Some(valid)))
            }
            Layer::Dense {
                kernel,
                bias,
                activation,
            } => {
                let dims = x.dims().to_vec();
                let (inputs, outputs) = kernel.dims2()?;
                let rows = x.elem_count() / inputs.max(1);
                if dims.last() != Some(&inputs) {
                    return Err(candle_core::Error::Msg(format!(
                        "Dense: expected inputs of {inputs} features, found shape {dims:?}"
                    )));
                }
                let mut y = x.reshape((rows, inputs))?.matmul(kernel)?;
                if let Some(bias) = bias {
                    y = y.broadcast_add(bias)?;
                }
                let mut shape = dims;
                if let Some(last) = shape.last_mut() {
                    *last = outputs;
                }
                Ok((activation.apply(&y.reshape(shape)?)?, mask))
            }
            Layer::Activation(activation) => Ok((activation.apply(x)?, mask)),
            Layer::SoftmaxAxis(axis) => {
                let last = x.rank().saturating_sub(1);
                if *axis != last {
                    return Err(candle_core::Error::Msg(format!(
                        "Softmax: axis {axis} of its input of shape {:?} is not the last \
                         ({last}); rnn computes a softmax over the last axis only",
                        x.dims()
                    )));
                }
                Ok((Activation::Softmax.apply(x)?, mask))
            }
            Layer::Flatten => Ok((x.flatten_from(1)?, None)),
        }
    }
}

/// Keras's merge layers, which join the outputs of several layers into one.
///
/// From Keras's `Concatenate`, `Add`, `Subtract`, `Multiply`, `Average`, `Maximum` and
/// `Minimum`: elementwise over inputs of one rank, broadcasting axes of size 1 as numpy does;
/// `Concatenate` joins them along `axis` (Keras counts the batch axis, and `-1` is the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Joined along `axis` (negative: from the end).
    Concatenate {
        /// Keras's `axis`, the batch's axis being 0.
        axis: i64,
    },
    /// The sum of the inputs.
    Add,
    /// The first input less the second (exactly two).
    Subtract,
    /// The product of the inputs.
    Multiply,
    /// The mean of the inputs.
    Average,
    /// The largest of the inputs, elementwise.
    Maximum,
    /// The smallest of the inputs, elementwise.
    Minimum,
}

impl Merge {
    /// The Keras class that computes it.
    pub fn class(self) -> &'static str {
        match self {
            Merge::Concatenate { .. } => "Concatenate",
            Merge::Add => "Add",
            Merge::Subtract => "Subtract",
            Merge::Multiply => "Multiply",
            Merge::Average => "Average",
            Merge::Maximum => "Maximum",
            Merge::Minimum => "Minimum",
        }
    }

    /// The merge of `inputs`.
    ///
    /// # Errors
    /// No inputs; inputs of different ranks, or of shapes that do not broadcast (concatenate:
    /// that differ off `axis`); `Subtract` of other than two; an `axis` outside the rank.
    pub fn forward(self, inputs: &[Tensor]) -> Result<Tensor> {
        let Some(first) = inputs.first() else {
            return Err(candle_core::Error::Msg(format!(
                "{}: expected inputs, found none",
                self.class()
            )));
        };
        let rank = first.rank();
        if let Some(other) = inputs.iter().find(|t| t.rank() != rank) {
            return Err(candle_core::Error::Msg(format!(
                "{}: expected inputs of one rank, found shapes {:?} and {:?}",
                self.class(),
                first.dims(),
                other.dims()
            )));
        }
        let fold = |f: fn(&Tensor, &Tensor) -> Result<Tensor>| -> Result<Tensor> {
            inputs[1..]
                .iter()
                .try_fold(first.clone(), |acc, x| f(&acc, x))
        };
        match self {
            Merge::Concatenate { axis } => {
                let at = if axis < 0 { axis + rank as i64 } else { axis };
                if !(0..rank as i64).contains(&at) {
                    return Err(candle_core::Error::Msg(format!(
                        "Concatenate: axis {axis} is outside inputs of rank {rank}"
                    )));
                }
                Tensor::cat(inputs, at as usize)
            }
            Merge::Add => fold(Tensor::broadcast_add),
            Merge::Subtract => match inputs {
                [a, b] => a.broadcast_sub(b),
                _ => Err(candle_core::Error::Msg(format!(
                    "Subtract: expected two inputs, found {}",
                    inputs.len()
                ))),
            },
            Merge::Multiply => fold(Tensor::broadcast_mul),
            // Keras divides the sum by the count (a product by its inverse rounds otherwise).
            Merge::Average => {
                let count =
                    Tensor::new(inputs.len() as f64, first.device())?.to_dtype(first.dtype())?;
                fold(Tensor::broadcast_add)?.broadcast_div(&count)
            }
            Merge::Maximum => fold(Tensor::broadcast_maximum),
            Merge::Minimum => fold(Tensor::broadcast_minimum),
        }
    }
}

/// `[batch, steps]` of 1 where `mask` is valid, 0 where masked.
fn mask_tensor(mask: &StepMask, dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
    let steps = mask.first().map_or(0, Vec::len);
    let flat: Vec<u8> = mask.iter().flatten().map(|&v| u8::from(v)).collect();
    Tensor::from_vec(flat, (mask.len(), steps), device)?.to_dtype(dtype)
}

/// Runs `rnn` (batch-first) on `input` `[batch, steps, features]` as Keras runs it under
/// `mask`: masked steps are skipped, each sequence's state carried over them. Returns the top
/// layer's output `[batch, steps, out]` and the final states, as [`Rnn::forward_states`].
///
/// A mask that only ends sequences is their `lengths`. Any other (padding at the front, holes)
/// runs each sequence's valid steps gathered at its start, then puts each output back at its
/// step; a masked step's output is what Keras gives there: the last valid output before it in
/// a one-direction layer that repeats it ([`MaskedSteps::RepeatLast`]; zeros before the first),
/// else zeros. This is exact because a skipped step changes nothing: each direction reads the
/// same valid steps in the same order, the reverse one from the last.
///
/// # Errors
/// When `mask` is not `[batch][steps]` of `input`; when a layer reads its sequence from its end
/// (`go_backwards`, ONNX's `reverse`) and the mask does more than end the sequences: its outputs are in the order it read them, where Keras's
/// placement of masked steps is not the one above; and as [`Rnn::forward_states`].
pub fn run_masked(
    rnn: &Rnn,
    input: &Tensor,
    mask: Option<&StepMask>,
) -> Result<(Tensor, Vec<Tensor>)> {
    if !rnn.batch_first() {
        return Err(candle_core::Error::Msg(
            "run_masked: expected a batch-first network, as Keras's are".into(),
        ));
    }
    let Some(mask) = mask else {
        return rnn.forward_states(input, None, None);
    };
    let (batch, steps, _) = input.dims3()?;
    if mask.len() != batch || mask.iter().any(|m| m.len() != steps) {
        return Err(candle_core::Error::Msg(format!(
            "run_masked: expected a mask of [{batch}][{steps}] for an input of shape {:?}",
            input.dims()
        )));
    }
    let lengths: Vec<usize> = mask
        .iter()
        .map(|steps| steps.iter().take_while(|&&v| v).count())
        .collect();
    let ends_only = mask
        .iter()
        .zip(&lengths)
        .all(|(steps, &n)| !steps[n..].iter().any(|&v| v));
    if ends_only {
        return rnn.forward_states(input, None, Some(&lengths));
    }
    if rnn
        .layer_options()
        .iter()
        .any(|o| o.time != TimeOrder::Forward)
    {
        return Err(candle_core::Error::Msg(
            "the mask has masked steps before valid ones (padding at the front, or holes), \
             and a layer reads its sequence from the end (go_backwards): rnn runs such masks \
             through forward and Bidirectional layers only; pad at the end instead"
                .into(),
        ));
    }
    let device = input.device();
    let mut gathered = Vec::with_capacity(batch);
    let mut counts = Vec::with_capacity(batch);
    // Per sequence: where each step's output comes from in the gathered run's output, extended
    // by one row of zeros (index `steps`).
    let mut sources = Vec::with_capacity(batch);
    let top = rnn.layers().last().map_or(1, Vec::len);
    let repeat = rnn.masked_steps() == MaskedSteps::RepeatLast && top == 1;
    for (b, valid) in mask.iter().enumerate() {
        let at: Vec<u32> = (0..steps as u32).filter(|&t| valid[t as usize]).collect();
        let count = at.len();
        // Steps past the valid ones repeat the first step (any values: the run masks them
        // by its lengths).
        let mut order = at;
        order.resize(steps, order.first().copied().unwrap_or(0));
        let x = input.get(b)?;
        gathered.push(x.index_select(&Tensor::new(order.as_slice(), device)?, 0)?);
        let mut seen = 0u32;
        let source: Vec<u32> = valid
            .iter()
            .map(|&v| {
                if v {
                    seen += 1;
                    seen - 1
                } else if repeat && seen > 0 {
                    seen - 1
                } else {
                    steps as u32
                }
            })
            .collect();
        sources.push(source);
        counts.push(count);
    }
    let gathered = Tensor::stack(&gathered, 0)?;
    let (output, states) = rnn.forward_states(&gathered, None, Some(&counts))?;
    let width = output.dim(2)?;
    let zero = Tensor::zeros((1, width), output.dtype(), device)?;
    let placed = sources
        .iter()
        .enumerate()
        .map(|(b, source)| {
            Tensor::cat(&[output.get(b)?, zero.clone()], 0)?
                .index_select(&Tensor::new(source.as_slice(), device)?, 0)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((Tensor::stack(&placed, 0)?, states))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{uniform_weights, InitConfig, LayerOptions, MergeMode};
    use candle_core::Device;

    fn stack(bidirectional: bool, time: TimeOrder) -> Rnn {
        let config = InitConfig {
            input_size: 3,
            hidden_sizes: vec![4, 2],
            bidirectional,
            bias: true,
        };
        let weights = uniform_weights(&config, 7, DType::F64, &Device::Cpu).unwrap();
        let options = LayerOptions {
            time,
            merge_mode: MergeMode::Concat,
        };
        let layers = weights
            .iter()
            .map(|layer| {
                layer
                    .iter()
                    .map(|w| crate::RnnLayer::new(w, Nonlinearity::Tanh).unwrap())
                    .collect()
            })
            .collect();
        Rnn::with_layer_options(layers, vec![options; 2])
            .unwrap()
            .with_batch_first(true)
            .with_masked_steps(MaskedSteps::RepeatLast)
    }

    /// A mask with holes and front padding gives, for each sequence, what running its valid
    /// steps alone gives, each output at its step, masked steps carrying the last output.
    #[test]
    fn masked_steps_are_skipped_wherever_they_are() {
        let x = Tensor::rand(-1f64, 1f64, (3, 6, 3), &Device::Cpu).unwrap();
        let mask: StepMask = vec![
            vec![false, false, true, true, true, true],
            vec![true, false, true, false, true, true],
            vec![false; 6],
        ];
        for bidirectional in [false, true] {
            let rnn = stack(bidirectional, TimeOrder::Forward);
            let (output, _) = run_masked(&rnn, &x, Some(&mask)).unwrap();
            for (b, valid) in mask.iter().enumerate() {
                let at: Vec<u32> = (0..6u32).filter(|&t| valid[t as usize]).collect();
                let got = output.get(b).unwrap().to_vec2::<f64>().unwrap();
                let alone = if at.is_empty() {
                    None
                } else {
                    let steps = x
                        .get(b)
                        .unwrap()
                        .index_select(&Tensor::new(at.as_slice(), &Device::Cpu).unwrap(), 0)
                        .unwrap()
                        .unsqueeze(0)
                        .unwrap();
                    let (y, _) = rnn.forward_states(&steps, None, None).unwrap();
                    Some(y.get(0).unwrap().to_vec2::<f64>().unwrap())
                };
                let mut seen = 0;
                for (t, &v) in valid.iter().enumerate() {
                    let want = match (&alone, v) {
                        (Some(y), true) => y[seen].clone(),
                        // A one-direction top layer repeats its last output; Bidirectional
                        // gives zeros; before any valid step, zeros.
                        (Some(y), false) if !bidirectional && seen > 0 => y[seen - 1].clone(),
                        _ => vec![0.0; got[t].len()],
                    };
                    seen += usize::from(v);
                    assert_eq!(
                        got[t], want,
                        "sequence {b} step {t}, bidirectional {bidirectional}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_go_backwards_layer_under_a_mask_with_holes_is_refused() {
        let rnn = stack(false, TimeOrder::GoBackwards);
        let x = Tensor::zeros((1, 3, 3), DType::F64, &Device::Cpu).unwrap();
        let holes = vec![vec![true, false, true]];
        let err = run_masked(&rnn, &x, Some(&holes)).unwrap_err();
        assert!(err.to_string().contains("go_backwards"), "{err}");
        // A mask that only ends the sequence is its lengths, which go_backwards runs.
        let ends = vec![vec![true, true, false]];
        assert!(run_masked(&rnn, &x, Some(&ends)).is_ok());
    }

    #[test]
    fn merges_compute_keras_s_merge_layers() {
        let d = Device::Cpu;
        let a = Tensor::new(&[[1f32, 5.0], [-2.0, 0.5]], &d).unwrap();
        let b = Tensor::new(&[[3f32, 1.0], [4.0, 0.25]], &d).unwrap();
        let c = Tensor::new(&[[2f32], [0.0]], &d).unwrap();
        let run = |m: Merge, x: &[Tensor]| m.forward(x).unwrap().to_vec2::<f32>().unwrap();
        let abc = [a.clone(), b.clone(), c.clone()];
        assert_eq!(run(Merge::Add, &abc), [[6.0, 8.0], [2.0, 0.75]]);
        assert_eq!(run(Merge::Subtract, &abc[..2]), [[-2.0, 4.0], [-6.0, 0.25]]);
        assert_eq!(run(Merge::Multiply, &abc), [[6.0, 10.0], [0.0, 0.0]]);
        assert_eq!(run(Merge::Maximum, &abc), [[3.0, 5.0], [4.0, 0.5]]);
        assert_eq!(run(Merge::Minimum, &abc), [[1.0, 1.0], [-2.0, 0.0]]);
        // Keras divides the sum by the count: 0.1 + 0.2 + 0.4 over 3 in float32.
        let thirds: Vec<Tensor> = [0.1f32, 0.2, 0.4]
            .iter()
            .map(|&v| Tensor::new(&[[v]], &d).unwrap())
            .collect();
        assert_eq!(
            run(Merge::Average, &thirds),
            [[((0.1f32 + 0.2) + 0.4) / 3.0]]
        );
        assert_eq!(
            run(Merge::Concatenate { axis: -1 }, &[a.clone(), c.clone()]),
            [[1.0, 5.0, 2.0], [-2.0, 0.5, 0.0]]
        );
        assert_eq!(
            run(Merge::Concatenate { axis: 0 }, &[a.clone(), b.clone()]).len(),
            4
        );
        // Refused: Subtract of three, another rank, an axis outside the rank, no inputs.
        let refused = |m: Merge, x: &[Tensor]| m.forward(x).unwrap_err().to_string();
        assert!(refused(Merge::Subtract, &abc).contains("two inputs"));
        let row = Tensor::new(&[1f32, 2.0], &d).unwrap();
        assert!(refused(Merge::Add, &[a.clone(), row]).contains("one rank"));
        assert!(
            refused(Merge::Concatenate { axis: 2 }, std::slice::from_ref(&a)).contains("axis 2")
        );
        assert!(refused(Merge::Maximum, &[]).contains("found none"));
    }
}
