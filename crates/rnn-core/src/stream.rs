//! Inference as data arrives: a stack fed one time step at a time, its states kept between
//! steps.

use candle_core::{Result, Tensor};

use crate::layer::RnnState;
use crate::rnn::Rnn;
use crate::shape::{check_dims, ensure};

/// A one-direction [`Rnn`] fed one time step at a time. It holds each layer's hidden state,
/// so the outputs equal those of [`Rnn::forward`] over the steps fed so far.
///
/// Each step runs [`crate::RnnLayer::step`] on each layer: on the CPU, the fast path of a
/// whole sequence, one step of it, with the same bits.
///
/// The stream owns its copy of the network (a clone of [`Rnn`] shares the weight tensors,
/// it does not copy them), so it can live beside its model in a struct, or move to another
/// thread; [`Stream::from_states`] resumes from saved states.
///
/// # Example
///
/// ```
/// use candle_core::{Device, Tensor};
/// use rnn_core::{uniform_weights, InitConfig, Nonlinearity, Rnn};
///
/// let config = InitConfig { input_size: 3, hidden_sizes: vec![5], bidirectional: false, bias: true };
/// let weights = uniform_weights(&config, 0, candle_core::DType::F32, &Device::Cpu)?;
/// let rnn = Rnn::from_weights(&weights, Nonlinearity::Tanh)?;
/// let xs = Tensor::randn(0f32, 1.0, (4, 1, 3), &Device::Cpu)?; // [seq 4, batch 1, input 3]
///
/// let mut stream = rnn.stream(1, None)?;
/// let mut outputs = Vec::new();
/// for t in 0..4 {
///     outputs.push(stream.step(&xs.get(t)?)?); // [batch, hidden] as each step arrives
/// }
/// let (whole, _) = rnn.forward(&xs, None)?;
/// let diff = (Tensor::stack(&outputs, 0)? - whole)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(diff < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Stream {
    rnn: Rnn,
    /// One `[batch, hidden_k]` state per layer.
    states: Vec<RnnState>,
    steps: usize,
}

impl Rnn {
    /// Starts feeding the stack one time step at a time (see [`Stream`]).
    ///
    /// # Shapes
    /// - `h0`: `[layers, batch, hidden]`, zeros when `None`; needs equal hidden sizes
    ///
    /// # Errors
    /// For a bidirectional stack or a `go_backwards` or `reverse` layer, which need a sequence's last step
    /// first, and when `h0` does not fit.
    pub fn stream(&self, batch: usize, h0: Option<&Tensor>) -> Result<Stream> {
        ensure(self.num_states() == self.num_layers(), || {
            "a bidirectional RNN reads each sequence from its end too, so it cannot be fed one \
             step at a time; run the whole sequence instead"
                .into()
        })?;
        ensure(
            !self.layer_options().iter().any(|o| o.time.from_end()),
            || {
                "a go_backwards or reverse layer reads each sequence from its end, so it cannot be fed one step \
             at a time; run the whole sequence instead"
                .into()
            },
        )?;
        ensure(batch > 0, || "stream: the batch is empty".into())?;
        let elements = self
            .hidden_sizes()
            .iter()
            .try_fold(0usize, |sum, &h| sum.checked_add(batch.checked_mul(h)?));
        crate::shape::ensure_allocatable("stream: the states", elements, self.dtype())?;
        let states = match self.split_h0(h0, batch, false)? {
            Some(states) => states,
            None => self
                .hidden_sizes()
                .into_iter()
                .map(|h| Tensor::zeros((batch, h), self.dtype(), self.device()))
                .collect::<Result<_>>()?,
        };
        let states = states.into_iter().map(|h| RnnState { h }).collect();
        Ok(Stream {
            rnn: self.clone(),
            states,
            steps: 0,
        })
    }
}

impl Stream {
    /// Resumes a stream from each layer's state, bottom layer first (what
    /// [`Stream::states`] gave), with `steps` counted as already fed.
    ///
    /// # Shapes
    /// - `states`: one [`RnnState`] per layer, `h` `[batch, hidden_k]`
    ///
    /// # Errors
    /// As [`Rnn::stream`], and when a state's shape or dtype does not fit its layer.
    pub fn from_states(rnn: &Rnn, states: Vec<RnnState>, steps: usize) -> Result<Self> {
        ensure(states.len() == rnn.num_layers(), || {
            format!(
                "states: expected {} (one per layer), found {}",
                rnn.num_layers(),
                states.len()
            )
        })?;
        let batch = states[0].h.dims().first().copied().unwrap_or(0);
        let mut stream = rnn.stream(batch, None)?;
        for (k, (state, size)) in states.iter().zip(rnn.hidden_sizes()).enumerate() {
            check_dims(&format!("states[{k}].h"), &state.h, &[batch, size])?;
            ensure(state.h.dtype() == rnn.dtype(), || {
                format!(
                    "states[{k}].h: expected dtype {:?} like the weights, found {:?}",
                    rnn.dtype(),
                    state.h.dtype()
                )
            })?;
        }
        stream.states = states;
        stream.steps = steps;
        Ok(stream)
    }

    /// Feeds one time step through every layer; returns the top layer's new state, which is
    /// the stack's output for this step.
    ///
    /// # Shapes
    /// - `x`: `[batch, input_size]`
    /// - returns `[batch, hidden]` of the top layer
    pub fn step(&mut self, x: &Tensor) -> Result<Tensor> {
        let batch = self.states[0].h.dims()[0];
        check_dims("x", x, &[batch, self.rnn.input_size()])?;
        let mut x = x.clone();
        for (layer, state) in self.rnn.layers().iter().zip(&mut self.states) {
            state.h = layer[0].step(&x, &state.h)?;
            x = state.h.clone();
        }
        self.steps += 1;
        Ok(x)
    }

    /// Each layer's state now, `h` `[batch, hidden_k]`, bottom layer first.
    pub fn states(&self) -> &[RnnState] {
        &self.states
    }

    /// The network the stream runs.
    pub fn rnn(&self) -> &Rnn {
        &self.rnn
    }

    /// How many steps have been fed.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

#[cfg(test)]
mod tests;
