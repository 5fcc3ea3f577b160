//! A stack of Elman layers, one or two directions each: what `torch.nn.RNN` computes.

use candle_core::{DType, Result, Tensor};

use crate::layer::{Direction, LayerWeights, Nonlinearity, RnnLayer};
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
    batch_first: bool,
    fast_path: bool,
}

impl Rnn {
    /// Assembles a stack from built layers, checking that they fit together: `layers[k][d]` is
    /// layer `k`, direction `d` (0 forward, 1 reverse). Use it for layers built by
    /// [`crate::rnn_layer`] from a [`candle_nn::VarBuilder`], or with different
    /// nonlinearities.
    ///
    /// # Errors
    /// When `layers` is empty; when a layer has other than 1 or 2 directions, or not as many as
    /// layer 0; when the directions of a layer differ in hidden size; when dtypes differ; when
    /// layer `k > 0`'s input size is not `directions ·` layer `k - 1`'s hidden size.
    pub fn new(layers: Vec<Vec<RnnLayer>>) -> Result<Self> {
        ensure(!layers.is_empty(), || {
            "an RNN needs at least one layer".into()
        })?;
        let directions = layers[0].len();
        let dtype = layers[0].first().map(RnnLayer::dtype);
        for (k, layer) in layers.iter().enumerate() {
            ensure(
                layer.len() == directions && (1..=2).contains(&directions),
                || {
                    format!(
                    "layer {k}: expected {directions} direction(s) like layer 0 (1 or 2), found {}",
                    layer.len()
                )
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
                    let expected = directions * layers[k - 1][0].hidden_size();
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

    /// Inputs and outputs `[batch, seq_len, ..]` instead of `[seq_len, batch, ..]` (PyTorch's
    /// `batch_first`). `h0` and `h_n` are `[layers · directions, batch, hidden]` either way.
    pub fn with_batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }

    /// Whether to use the fused fast path where there is one (the default), or always the plain
    /// candle-ops reference ([`RnnLayer::forward_reference`]): for comparisons and benchmarks.
    pub fn with_fast_path(mut self, fast_path: bool) -> Self {
        self.fast_path = fast_path;
        self
    }

    /// The same network with its weights on `device` (CPU or a GPU).
    pub fn to_device(&self, device: &candle_core::Device) -> Result<Self> {
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

    /// 2 when bidirectional, else 1.
    pub fn num_directions(&self) -> usize {
        self.layers[0].len()
    }

    /// Features per input step.
    pub fn input_size(&self) -> usize {
        self.layers[0][0].input_size()
    }

    /// Hidden size of each layer.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l[0].hidden_size()).collect()
    }

    /// Features per output step: directions × the last layer's hidden size.
    pub fn output_size(&self) -> usize {
        self.num_directions() * self.layers[self.layers.len() - 1][0].hidden_size()
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
        // Back to the input's layout.
        let output = if input.rank() == 2 {
            output.squeeze(1)?
        } else if self.batch_first {
            output.transpose(0, 1)?.contiguous()?
        } else {
            output
        };
        Ok((output, states))
    }

    /// Every layer's output, bottom layer first: what each layer's neurons did at each step.
    ///
    /// # Shapes
    /// Inputs as [`Rnn::forward_states`]; layer `k`'s output is time-major whatever the input's
    /// layout, `[seq_len, batch, directions · hidden_k]` (batch 1 for an unbatched input).
    pub fn layer_outputs(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
    ) -> Result<Vec<Tensor>> {
        Ok(self.run(input, h0, lengths, true)?.0)
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
        let h0 = self.split_h0(h0, batch, unbatched)?;

        let mut x = time_major;
        let mut layer_outputs = Vec::new();
        let mut states = Vec::with_capacity(self.layers.len() * self.num_directions());
        for (k, layer) in self.layers.iter().enumerate() {
            let mut outputs = Vec::with_capacity(layer.len());
            for (d, cell) in layer.iter().enumerate() {
                let h0 = h0.as_ref().map(|h| &h[k * layer.len() + d]);
                let direction = if d == 0 {
                    Direction::Forward
                } else {
                    Direction::Reverse
                };
                let (out, h_n) = if self.fast_path {
                    cell.forward_with(&x, h0, direction, lengths)?
                } else {
                    cell.forward_reference(&x, h0, direction, lengths)?
                };
                outputs.push(out);
                states.push(h_n);
            }
            x = if outputs.len() == 1 {
                outputs.remove(0)
            } else {
                Tensor::cat(&outputs, 2)?
            };
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

    /// The last layer's final states, directions concatenated: `[batch, directions · hidden]`.
    /// This is Keras's output with `return_sequences=False`: for the forward direction the
    /// output at the last (valid) step, for the reverse one the state after reading step 0.
    ///
    /// # Shapes
    /// `states` as [`Rnn::forward_states`] returns them.
    pub fn last_output(&self, states: &[Tensor]) -> Result<Tensor> {
        let d = self.num_directions();
        ensure(states.len() == self.layers.len() * d, || {
            format!(
                "states: expected {} (layers · directions), found {}",
                self.layers.len() * d,
                states.len()
            )
        })?;
        let last = &states[states.len() - d..];
        let rank = last[0].rank();
        Tensor::cat(last, rank - 1)
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
        let count = self.layers.len() * self.num_directions();
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

#[cfg(test)]
mod tests;
