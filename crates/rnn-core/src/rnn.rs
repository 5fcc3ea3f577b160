//! A stack of Elman layers, one or two directions each: what `torch.nn.RNN` computes.

use candle_core::{DType, Result, Tensor};

use candle_nn::rnn::Direction;

use crate::layer::{LayerWeights, RnnLayer};
use crate::nonlinearity::Nonlinearity;
use crate::options::{LayerOptions, MaskedSteps, MergeMode, TimeOrder};
use crate::shape::{check_dims, ensure};

/// A multi-layer, optionally bidirectional Elman RNN with PyTorch's semantics.
///
/// Layer `k > 0` reads the output of layer `k - 1`, both directions concatenated. Layers may
/// differ in hidden size (Keras stacks often do); an `h0` tensor, and the stacked `h_n`, then
/// need equal sizes, as in PyTorch.
///
/// # Example
///
/// One layer of two neurons with identity input weights and no recurrence:
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use rnn_core::{LayerWeights, Nonlinearity, Rnn};
///
/// let dev = Device::Cpu;
/// let layer0 = LayerWeights {
///     w_ih: Tensor::eye(2, DType::F64, &dev)?,
///     w_hh: Tensor::zeros((2, 2), DType::F64, &dev)?,
///     b_ih: None,
///     b_hh: None,
/// };
/// let rnn = Rnn::from_weights(&[vec![layer0]], Nonlinearity::Relu)?;
/// let input = Tensor::new(&[[[1.0f64, -1.0]], [[3.0, 2.0]]], &dev)?; // [T=2, B=1, I=2]
/// let (output, h_n) = rnn.forward(&input, None)?;
/// assert_eq!(output.to_vec3::<f64>()?, [[[1.0, 0.0]], [[3.0, 2.0]]]);
/// assert_eq!(h_n.dims(), &[1, 1, 2]); // [num_layers · directions, batch, hidden]
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rnn {
    /// `layers[k][d]`: layer `k`, direction `d` (0 forward, 1 reverse).
    layers: Vec<Vec<RnnLayer>>,
    /// `options[k]`: what layer `k` does beyond `torch.nn.RNN`.
    options: Vec<LayerOptions>,
    masked_steps: MaskedSteps,
    batch_first: bool,
    fast_path: bool,
}

/// What [`Rnn::forward_layers`] computed: the output and final states of
/// [`Rnn::forward_states`], and every layer's output.
#[derive(Debug, Clone)]
pub struct StackRun {
    /// The top layer's output, in the input's layout.
    pub output: Tensor,
    /// The final states, one per layer and direction, layer-major.
    pub states: Vec<Tensor>,
    /// Every layer's output, bottom layer first, time-major `[seq_len, batch, features]`.
    pub layer_outputs: Vec<Tensor>,
}

impl Rnn {
    /// Assembles a stack from built layers, checking that they fit together: `layers[k][d]` is
    /// layer `k`, direction `d` (0 forward, 1 reverse). Use it for layers built by
    /// [`crate::rnn_layer`] from a [`candle_nn::VarBuilder`], or with different
    /// nonlinearities.
    ///
    /// # Errors
    /// When `layers` is empty; when a layer has other than 1 or 2 directions (layers may
    /// differ, as in a Keras stack of `SimpleRNN` and `Bidirectional` layers); when the directions of a layer differ in hidden size; when dtypes differ; when
    /// layer `k > 0`'s input size is not `directions ·` layer `k - 1`'s hidden size.
    pub fn new(layers: Vec<Vec<RnnLayer>>) -> Result<Self> {
        let options = vec![LayerOptions::default(); layers.len()];
        Self::with_layer_options(layers, options)
    }

    /// Like [`Rnn::new`], with Keras's options for each layer: `options[k]` for layer `k`.
    /// A layer after one whose directions are summed, averaged or multiplied reads `hidden`
    /// features, not `2 · hidden`.
    ///
    /// # Errors
    /// As [`Rnn::new`]; also when `options` has not one entry per layer, when a bidirectional
    /// layer goes backwards (Keras's `Bidirectional` takes care of the backward direction),
    /// and when a layer below the top, or a one-direction layer, keeps its directions apart
    /// ([`MergeMode::Separate`]).
    pub fn with_layer_options(
        layers: Vec<Vec<RnnLayer>>,
        options: Vec<LayerOptions>,
    ) -> Result<Self> {
        ensure(!layers.is_empty(), || {
            "an RNN needs at least one layer".into()
        })?;
        ensure(options.len() == layers.len(), || {
            format!(
                "layer options: expected {} (one per layer), found {}",
                layers.len(),
                options.len()
            )
        })?;
        let dtype = layers[0].first().map(RnnLayer::dtype);
        for (k, layer) in layers.iter().enumerate() {
            ensure((1..=2).contains(&layer.len()), || {
                format!(
                    "layer {k}: expected 1 or 2 directions, found {}",
                    layer.len()
                )
            })?;
            ensure(
                layer.len() == 1 || options[k].time == TimeOrder::Forward,
                || {
                    format!("layer {k}: {} applies to one-direction layers; a bidirectional layer already reads its sequence both ways", options[k].time.as_str())
                },
            )?;
            ensure(
                options[k].merge_mode != MergeMode::Separate || layer.len() == 2,
                || {
                    format!("layer {k}: merge mode none keeps the two directions of a bidirectional layer apart; layer {k} has one direction")
                },
            )?;
            ensure(
                options[k].merge_mode != MergeMode::Separate || k + 1 == layers.len(),
                || {
                    format!("layer {k}: only the top layer can keep its two directions apart (merge mode none); layer {} reads one input", k + 1)
                },
            )?;
            let hidden = layer[0].hidden_size();
            for (d, cell) in layer.iter().enumerate() {
                ensure(cell.hidden_size() == hidden, || {
                    format!(
                        "layer {k} direction {d}: expected hidden size {hidden} like direction 0, found {}",
                        cell.hidden_size()
                    )
                })?;
                ensure(Some(cell.dtype()) == dtype, || {
                    format!(
                        "layer {k} direction {d}: expected dtype {dtype:?} like layer 0, found {:?}",
                        cell.dtype()
                    )
                })?;
                if k > 0 {
                    let expected = layer_output_size(&layers[k - 1], options[k - 1]);
                    ensure(cell.input_size() == expected, || {
                        format!(
                            "layer {k} direction {d}: expected input size {expected} (the output of layer {}), found {}",
                            k - 1,
                            cell.input_size()
                        )
                    })?;
                }
            }
        }
        Ok(Self {
            layers,
            options,
            masked_steps: MaskedSteps::Zeros,
            batch_first: false,
            fast_path: true,
        })
    }

    /// Builds the stack from PyTorch-layout weights: `weights[k][d]` for layer `k`, direction
    /// `d`, every layer with the same `nonlinearity`.
    ///
    /// # Shapes
    /// Each [`LayerWeights`] as documented there; layer `k > 0` has `input_size` equal to
    /// `directions ·` layer `k - 1`'s `hidden_size`.
    pub fn from_weights(weights: &[Vec<LayerWeights>], nonlinearity: Nonlinearity) -> Result<Self> {
        let layers = weights
            .iter()
            .map(|dirs| {
                dirs.iter()
                    .map(|w| RnnLayer::new(w, nonlinearity))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(layers)
    }

    /// What the outputs hold past each sequence's length (zeros unless set).
    pub fn with_masked_steps(mut self, masked_steps: MaskedSteps) -> Self {
        self.masked_steps = masked_steps;
        self
    }

    /// Each layer's options beyond `torch.nn.RNN` (see [`Rnn::with_layer_options`]).
    pub fn layer_options(&self) -> &[LayerOptions] {
        &self.options
    }

    /// What the outputs hold past each sequence's length.
    pub fn masked_steps(&self) -> MaskedSteps {
        self.masked_steps
    }

    /// Inputs and outputs `[batch, seq_len, ..]` instead of `[seq_len, batch, ..]` (PyTorch's
    /// `batch_first`). `h0` and `h_n` are `[layers · directions, batch, hidden]` either way.
    pub fn with_batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }

    /// Whether to use the fused fast path where there is one (the default), or always the plain
    /// candle-ops reference: for comparisons and benchmarks.
    #[doc(hidden)]
    pub fn with_fast_path(mut self, fast_path: bool) -> Self {
        self.fast_path = fast_path;
        self
    }

    /// The same network with its weights on `device` (CPU or a GPU); on its own device, a
    /// clone that shares every layer's tensors and prepared weights ([`RnnLayer::to_device`]).
    pub fn to_device(&self, device: &candle_core::Device) -> Result<Self> {
        if self.device().same_device(device) {
            return Ok(self.clone());
        }
        let layers = self
            .layers
            .iter()
            .map(|dirs| {
                dirs.iter()
                    .map(|l| l.to_device(device))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            options: self.options.clone(),
            masked_steps: self.masked_steps,
            batch_first: self.batch_first,
            fast_path: self.fast_path,
        })
    }

    /// The device the weights are on.
    pub fn device(&self) -> &candle_core::Device {
        self.layers[0][0].device()
    }

    /// Whether inputs and outputs are batch-first.
    pub fn batch_first(&self) -> bool {
        self.batch_first
    }

    /// The layers: `layers()[k][d]` is layer `k`, direction `d` (0 forward, 1 reverse).
    pub fn layers(&self) -> &[Vec<RnnLayer>] {
        &self.layers
    }

    /// Number of stacked layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// 2 when the layers are bidirectional, else 1: layer 0's count (a PyTorch stack's layers
    /// all have the same; see [`Rnn::num_states`] for a Keras stack that mixes them).
    pub fn num_directions(&self) -> usize {
        self.layers[0].len()
    }

    /// Final states of a run: one per layer and direction, the first dimension of `h0` and
    /// `h_n` (`layers · directions` when every layer has the same directions).
    pub fn num_states(&self) -> usize {
        self.layers.iter().map(Vec::len).sum()
    }

    /// Features per input step.
    pub fn input_size(&self) -> usize {
        self.layers[0][0].input_size()
    }

    /// Hidden size of each layer.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l[0].hidden_size()).collect()
    }

    /// Features per output step: the last layer's hidden size, times 2 when its two
    /// directions are concatenated (or kept apart).
    pub fn output_size(&self) -> usize {
        let top = self.layers.len() - 1;
        layer_output_size(&self.layers[top], self.options[top])
    }

    /// The activation of the first layer (all layers built by `from_weights` share it).
    pub fn nonlinearity(&self) -> Nonlinearity {
        self.layers[0][0].nonlinearity()
    }

    /// Whether the layers add a bias.
    pub fn has_bias(&self) -> bool {
        self.layers[0][0].has_bias()
    }

    /// The element type of the weights; inputs must have the same.
    pub fn dtype(&self) -> DType {
        self.layers[0][0].dtype()
    }

    /// Runs the whole stack.
    ///
    /// # Shapes
    /// - `input`: `[seq_len, batch, input_size]` (`[batch, seq_len, input_size]` when
    ///   batch-first), or unbatched `[seq_len, input_size]`
    /// - `h0`: `[layers · directions, batch, hidden]` (`[layers · directions, hidden]` when
    ///   unbatched), zeros when `None`; needs equal hidden sizes
    /// - returns `output`: like `input` with `directions · hidden` features, and
    ///   `h_n`: like `h0`, ordered layer-major, then direction, as PyTorch orders it
    ///
    /// # Errors
    /// When a shape or dtype does not fit (the message names the tensor, what was expected and
    /// what was found), and when the layers' hidden sizes differ, so `h_n` cannot be one
    /// tensor: use [`Rnn::forward_states`] then.
    pub fn forward(&self, input: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (output, states) = self.forward_states(input, h0, None)?;
        let h_n = self.stack_states(&states)?.ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "h_n: the layers' hidden sizes {:?} differ, so their final states cannot be stacked; use forward_states",
                self.hidden_sizes()
            ))
        })?;
        Ok((output, h_n))
    }

    /// The final states from [`Rnn::forward_states`] stacked as `h_n`
    /// `[layers · directions, batch, hidden]`; `None` when the layers' hidden sizes differ.
    ///
    /// # Shapes
    /// - `states`: `layers · directions` tensors `[batch, hidden]` (`[hidden]` unbatched)
    /// - returns `[layers · directions, batch, hidden]` (`[layers · directions, hidden]`)
    pub fn stack_states(&self, states: &[Tensor]) -> Result<Option<Tensor>> {
        let sizes = self.hidden_sizes();
        if sizes.iter().all(|&h| h == sizes[0]) {
            Tensor::stack(states, 0).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Like [`Rnn::forward`], for sequences of different lengths, returning the final states
    /// as a list, one per layer and direction (layer-major), which also works when hidden sizes
    /// differ between layers.
    ///
    /// With `lengths`, sequence `b` is its first `lengths[b]` steps, as with PyTorch's
    /// `pack_padded_sequence` and TensorFlow's `sequence_length`: outputs past its end are
    /// zero, its final state is the state at its last valid step, and the reverse direction
    /// starts at its own end.
    ///
    /// # Shapes
    /// As [`Rnn::forward`]; `lengths` has one value per batch element, each at most `seq_len`.
    /// The states are `layers · directions` tensors `[batch, hidden_k]` (`[hidden_k]` when
    /// unbatched), layer `k`'s hidden size each.
    pub fn forward_states(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (mut outputs, states) = self.run(input, h0, lengths, false)?;
        let output = outputs
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("no layers".into()))?;
        Ok((self.in_input_layout(output, input.rank())?, states))
    }

    /// Like [`Rnn::forward_states`], keeping every layer's output too: what each layer's
    /// neurons did at each step (what `rnn plot` draws), from the same run.
    ///
    /// # Shapes
    /// Inputs as [`Rnn::forward_states`]; `output` and `states` as it returns them;
    /// `layer_outputs[k]`, bottom layer first, is time-major whatever the input's layout,
    /// `[seq_len, batch, directions · hidden_k]` (batch 1 for an unbatched input).
    ///
    /// # Errors
    /// As [`Rnn::forward_states`].
    pub fn forward_layers(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
    ) -> Result<StackRun> {
        let (layer_outputs, states) = self.run(input, h0, lengths, true)?;
        let top = layer_outputs
            .last()
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg("no layers".into()))?;
        Ok(StackRun {
            output: self.in_input_layout(top, input.rank())?,
            states,
            layer_outputs,
        })
    }

    /// The top layer's time-major output back in the layout of an input of rank
    /// `input_rank`.
    fn in_input_layout(&self, output: Tensor, input_rank: usize) -> Result<Tensor> {
        if input_rank == 2 {
            output.squeeze(1)
        } else if self.batch_first {
            output.transpose(0, 1)?.contiguous()
        } else {
            Ok(output)
        }
    }

    /// Runs the stack; returns the outputs (every layer's with `all_layers`, else the top
    /// one's), time-major `[seq_len, batch, features]`, and the final states.
    fn run(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
        all_layers: bool,
    ) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let rank = input.rank();
        ensure(rank == 2 || rank == 3, || {
            format!(
                "input: expected rank 3 [seq_len, batch, input_size] or 2 [seq_len, input_size], found shape {:?}",
                input.dims()
            )
        })?;
        let unbatched = rank == 2;
        let time_major = if unbatched {
            input.unsqueeze(1)?
        } else if self.batch_first {
            input.transpose(0, 1)?.contiguous()?
        } else {
            input.clone()
        };
        let batch = time_major.dims()[1];
        ensure(batch > 0, || {
            format!(
                "input: the batch is empty (shape {:?}); nothing to run",
                input.dims()
            )
        })?;
        // An input without steps holds no data whatever batch it claims, yet the states are
        // one per sequence: their allocation is checked rather than left to abort.
        if time_major.dims()[0] == 0 {
            let per_sequence: usize = self
                .layers
                .iter()
                .map(|layer| layer.len() * layer[0].hidden_size())
                .sum();
            crate::shape::ensure_allocatable(
                "the states of an input without steps",
                batch.checked_mul(per_sequence),
                self.dtype(),
            )?;
        }
        let features = time_major.dims()[2];
        ensure(features == self.input_size(), || {
            let mut expected = input.dims().to_vec();
            if let Some(last) = expected.last_mut() {
                *last = self.input_size();
            }
            format!(
                "input: expected shape {expected:?} (the model's input_size is {}), found {:?}",
                self.input_size(),
                input.dims()
            )
        })?;
        let h0 = self.split_h0(h0, batch, unbatched)?;

        let mut x = time_major;
        let mut layer_outputs = Vec::new();
        let mut states = Vec::with_capacity(self.num_states());
        for (k, layer) in self.layers.iter().enumerate() {
            let options = self.options[k];
            let mut outputs = Vec::with_capacity(layer.len());
            for (d, cell) in layer.iter().enumerate() {
                let h0 = h0.as_ref().map(|h| &h[states.len()]);
                // A go_backwards layer is the reverse direction with its outputs left in the
                // order it computed them.
                let forward = d == 0 && options.time == TimeOrder::Forward;
                let direction = if forward {
                    Direction::Forward
                } else {
                    Direction::Backward
                };
                let (mut out, h_n) = if self.fast_path {
                    cell.forward_with_lengths(&x, h0, direction, lengths)?
                } else {
                    cell.forward_reference(&x, h0, direction, lengths)?
                };
                // Keras repeats outputs only in a plain one-direction layer: `Bidirectional`
                // zeroes its layers' masked steps.
                if let (Some(lengths), MaskedSteps::RepeatLast, true, 1) =
                    (lengths, self.masked_steps, forward, layer.len())
                {
                    out = repeat_last_valid(&out, lengths)?;
                }
                if options.time == TimeOrder::GoBackwards {
                    out = reverse_time(&out)?;
                }
                outputs.push(out);
                states.push(h_n);
            }
            x = options.merge_mode.merge(outputs)?;
            if all_layers {
                layer_outputs.push(x.clone());
            }
        }
        if !all_layers {
            layer_outputs.push(x);
        }

        if unbatched {
            states = states
                .into_iter()
                .map(|s| s.squeeze(0))
                .collect::<Result<_>>()?;
        }
        Ok((layer_outputs, states))
    }

    /// The last layer's final states, its directions merged as its [`MergeMode`] says
    /// (`[batch, directions · hidden]` concatenated). This is Keras's output with
    /// `return_sequences=False`: for the forward direction the output at the last (valid)
    /// step, for the reverse one (and a `go_backwards` layer) the state after reading step 0.
    ///
    /// # Shapes
    /// `states` as [`Rnn::forward_states`] returns them.
    pub fn merge_final_states(&self, states: &[Tensor]) -> Result<Tensor> {
        let d = self.layers[self.layers.len() - 1].len();
        ensure(states.len() == self.num_states(), || {
            format!(
                "states: expected {} (layers · directions), found {}",
                self.num_states(),
                states.len()
            )
        })?;
        let last = &states[states.len() - d..];
        let rank = last[0].rank();
        let top = self.options[self.layers.len() - 1].merge_mode;
        match (last, top) {
            ([forward, backward], MergeMode::Sum) => forward + backward,
            ([forward, backward], MergeMode::Ave) => (forward + backward)? * 0.5,
            ([forward, backward], MergeMode::Mul) => forward * backward,
            _ => Tensor::cat(last, rank - 1),
        }
    }

    /// Splits `h0` `[layers · directions, batch, hidden]` into one `[batch, hidden]` per layer
    /// and direction.
    pub(crate) fn split_h0(
        &self,
        h0: Option<&Tensor>,
        batch: usize,
        unbatched: bool,
    ) -> Result<Option<Vec<Tensor>>> {
        let Some(h0) = h0 else { return Ok(None) };
        let sizes = self.hidden_sizes();
        ensure(sizes.iter().all(|&h| h == sizes[0]), || {
            format!("h0: the layers' hidden sizes {sizes:?} differ, so one h0 tensor cannot hold their states")
        })?;
        let count = self.num_states();
        let h0 = if unbatched {
            check_dims("h0", h0, &[count, sizes[0]])?;
            h0.unsqueeze(1)?
        } else {
            check_dims("h0", h0, &[count, batch, sizes[0]])?;
            h0.clone()
        };
        Ok(Some((0..count).map(|i| h0.get(i)).collect::<Result<_>>()?))
    }
}

/// Features out of one layer ([`LayerOptions::output_size`]).
fn layer_output_size(layer: &[RnnLayer], options: LayerOptions) -> usize {
    options.output_size(layer.len(), layer[0].hidden_size())
}

/// `output` `[seq_len, batch, hidden]` with its time axis reversed.
fn reverse_time(output: &Tensor) -> Result<Tensor> {
    let seq_len = output.dim(0)?;
    if seq_len < 2 {
        return Ok(output.clone());
    }
    let order: Vec<u32> = (0..seq_len as u32).rev().collect();
    let order = Tensor::from_vec(order, seq_len, output.device())?;
    output.index_select(&order, 0)
}

/// Keras's masked steps: `output[t, b]` for `t >= lengths[b]` becomes
/// `output[lengths[b] - 1, b]`, and stays zero for an empty sequence.
///
/// # Shapes
/// `output` `[seq_len, batch, hidden]`, time-major, zeros past each length (as the layer
/// computes it); `lengths` `[batch]`.
fn repeat_last_valid(output: &Tensor, lengths: &[usize]) -> Result<Tensor> {
    let (seq_len, batch, hidden) = output.dims3()?;
    if lengths.iter().all(|&l| l == seq_len) {
        return Ok(output.clone());
    }
    // Row t·batch + b of the flattened output takes row min(t, len - 1)·batch + b; an empty
    // sequence keeps its own (zero) rows.
    let rows: Vec<u32> = (0..seq_len)
        .flat_map(|t| {
            lengths.iter().enumerate().map(move |(b, &len)| {
                let source = if len == 0 { t } else { t.min(len - 1) };
                (source * batch + b) as u32
            })
        })
        .collect();
    let rows = Tensor::from_vec(rows, seq_len * batch, output.device())?;
    output
        .reshape((seq_len * batch, hidden))?
        .index_select(&rows, 0)?
        .reshape((seq_len, batch, hidden))
}

#[cfg(test)]
mod tests;
