//! One recurrent layer in one direction: the Elman cell unrolled over time.

use std::sync::Mutex;

use candle_core::{DType, Result, Tensor};
use candle_nn::rnn::Direction;

use crate::cpu;
use crate::nonlinearity::Nonlinearity;
use crate::shape::{check_dims, ensure};

/// Fails unless there is one length per batch element, none above `seq_len`.
fn check_lengths(lengths: &[usize], seq_len: usize, batch: usize) -> Result<()> {
    ensure(lengths.len() == batch, || {
        format!(
            "lengths: expected {batch} values (one per batch element), found {}",
            lengths.len()
        )
    })?;
    if let Some((b, &len)) = lengths.iter().enumerate().find(|(_, &l)| l > seq_len) {
        return Err(candle_core::Error::Msg(format!(
            "lengths[{b}]: expected at most {seq_len} (the number of time steps), found {len}"
        )));
    }
    Ok(())
}

/// `[seq_len, batch, 1]` u8 mask: 1 where step `t` is within sequence `b`.
fn valid_steps(
    lengths: &[usize],
    seq_len: usize,
    batch: usize,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let mask: Vec<u8> = (0..seq_len)
        .flat_map(|t| lengths.iter().map(move |&len| u8::from(t < len)))
        .collect();
    Tensor::from_vec(mask, (seq_len, batch, 1), device)
}

/// The weights of one layer and direction in PyTorch's layout, as `torch.nn.RNN` names them
/// (`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`).
///
/// # Shapes
/// - `w_ih`: `[hidden_size, input_size]`
/// - `w_hh`: `[hidden_size, hidden_size]`
/// - `b_ih`, `b_hh`: `[hidden_size]`, each optional (absent means zero)
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// Input-to-hidden weights, `[hidden_size, input_size]`.
    pub w_ih: Tensor,
    /// Hidden-to-hidden weights, `[hidden_size, hidden_size]`.
    pub w_hh: Tensor,
    /// Input-side bias, `[hidden_size]`.
    pub b_ih: Option<Tensor>,
    /// Hidden-side bias, `[hidden_size]`.
    pub b_hh: Option<Tensor>,
}

/// One Elman layer in one direction:
/// `h_t = act(x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh)`.
///
/// The layer keeps the weight tensors it was given, so gradients reach them and an
/// optimiser's in-place update of a [`candle_core::Var`] changes the next run. Weights that
/// track no gradient are also kept transposed and with the biases summed, once, for
/// inference.
///
/// Build it with [`crate::rnn_layer`] from a [`candle_nn::VarBuilder`] (PyTorch's names, a
/// [`crate::RnnLayerConfig`]) or with [`RnnLayer::new`] from [`LayerWeights`]. Run it over a whole
/// sequence with [`RnnLayer::forward`], or one step at a time with [`RnnLayer::step`],
/// feeding the state back (streaming). It also implements candle-nn's
/// [`candle_nn::rnn::RNN`] trait, batch-first, with [`RnnState`] as its state.
///
/// # Training
///
/// On the CPU in f32 and f64 with tanh or relu and no clip, the layer takes the fused fast
/// path. When the input, `h0` or any weight tracks gradients (a [`candle_core::Var`], or a
/// tensor computed from one), that path is recorded as one operation per direction whose
/// `backward()` is backpropagation through time in one pass (`cpu/bptt.rs`), giving the
/// gradients of the weights, the input and `h0` (checked against torch's autograd by the
/// `gradients` example's tests); otherwise it records nothing. Every other case (another
/// device, dtype or activation, a clip) runs in plain candle ops, which record their own
/// graph.
///
/// # Example
///
/// Two neurons with `W_ih = I`, `W_hh = 0.5·I` and no bias, so
/// `h_1 = tanh(x_0)` and `h_2 = tanh(x_1 + 0.5·h_1)`, element by element. The whole sequence
/// at once, then the same sequence streamed step by step:
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use rnn_core::{LayerWeights, Nonlinearity, RnnLayer};
///
/// let dev = Device::Cpu;
/// let weights = LayerWeights {
///     w_ih: Tensor::eye(2, DType::F32, &dev)?, // [hidden 2, input 2]
///     w_hh: (Tensor::eye(2, DType::F32, &dev)? * 0.5)?, // [hidden, hidden]
///     b_ih: None,
///     b_hh: None,
/// };
/// let layer = RnnLayer::new(&weights, Nonlinearity::Tanh)?;
/// let input = Tensor::new(&[[[0.5f32, -1.0]], [[2.0, 0.0]]], &dev)?; // [T=2, B=1, I=2]
///
/// // The whole sequence: output [T, B, H] and the last state h_n [B, H].
/// let (output, h_n) = layer.forward(&input, None)?;
/// assert_eq!(output.dims(), &[2, 1, 2]);
/// let h1 = [0.5f32.tanh(), (-1.0f32).tanh()];
/// let h2 = [(2.0 + 0.5 * h1[0]).tanh(), (0.0 + 0.5 * h1[1]).tanh()];
/// let got: Vec<f32> = h_n.flatten_all()?.to_vec1()?;
/// assert!((got[0] - h2[0]).abs() < 1e-6 && (got[1] - h2[1]).abs() < 1e-6);
///
/// // Streaming: one step at a time, the state fed back in.
/// let mut h = Tensor::zeros((1, 2), DType::F32, &dev)?; // [B, H]
/// for t in 0..input.dim(0)? {
///     h = layer.step(&input.get(t)?, &h)?; // x_t: [B, I]
/// }
/// let streamed: Vec<f32> = h.flatten_all()?.to_vec1()?;
/// assert!((streamed[0] - h2[0]).abs() < 1e-6 && (streamed[1] - h2[1]).abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RnnLayer {
    /// The weights as given: what a run that tracks gradients reads.
    weights: LayerWeights,
    /// The same weights prepared for inference; `None` when a weight tracks gradients (a
    /// copy would not follow an optimiser's update of the variable).
    prepared: Option<Prepared>,
    nonlinearity: Nonlinearity,
    /// ONNX's `clip`: the pre-activation clamped to `[-clip, clip]`.
    clip: Option<f64>,
}

/// A layer's weights made ready for inference, once: transposed and contiguous, the biases
/// summed, and the packing for the CPU micro-kernel.
#[derive(Debug, Clone)]
struct Prepared {
    /// `W_ihᵀ`, `[input_size, hidden_size]`.
    w_ih_t: Tensor,
    /// `W_hhᵀ`, `[hidden_size, hidden_size]`.
    w_hh_t: Tensor,
    /// `b_ih + b_hh`, `[hidden_size]`; `None` when the layer has no bias.
    bias: Option<Tensor>,
    /// The weights packed for the CPU micro-kernel, made by the first fast-path run and kept,
    /// so that a stream of one-step runs does not repack them every step.
    packed: std::sync::Arc<cpu::PackedWeights>,
}

impl Prepared {
    /// `W_ihᵀ` and `W_hhᵀ` contiguous: a copy for PyTorch's layout, none where the weights are
    /// transposed views of a file's `[input, hidden]` kernels (Keras, TF1: `load_plan`), whose
    /// transpose is their stored layout.
    fn new(weights: &LayerWeights) -> Result<Self> {
        Ok(Self {
            w_ih_t: weights.w_ih.t()?.contiguous()?,
            w_hh_t: weights.w_hh.t()?.contiguous()?,
            bias: summed_bias(weights)?,
            packed: Default::default(),
        })
    }
}

/// `b_ih + b_hh`, either one, or `None` without a bias.
fn summed_bias(weights: &LayerWeights) -> Result<Option<Tensor>> {
    Ok(match (&weights.b_ih, &weights.b_hh) {
        (Some(a), Some(b)) => Some((a + b)?),
        (Some(b), None) | (None, Some(b)) => Some(b.clone()),
        (None, None) => None,
    })
}

/// The weights one run multiplies by: `W_ihᵀ`, `W_hhᵀ` and the summed bias, views of the
/// layer's own tensors where gradients are tracked.
struct RunWeights {
    w_ih_t: Tensor,
    w_hh_t: Tensor,
    bias: Option<Tensor>,
}

/// Whether candle records the operations on `t` for `backward()`.
fn tracks(t: &Tensor) -> bool {
    t.track_op()
}

impl RnnLayer {
    /// Builds the layer from PyTorch-layout weights, checking every shape and dtype. The
    /// layer keeps these tensors (see [`RnnLayer`]).
    ///
    /// # Shapes
    /// As [`LayerWeights`]: `w_ih` `[hidden_size, input_size]`, `w_hh`
    /// `[hidden_size, hidden_size]`, `b_ih` and `b_hh` `[hidden_size]`; all of one dtype.
    ///
    /// # Errors
    /// When a shape or dtype does not fit; the message names the tensor, what was expected
    /// and what was found.
    pub fn new(weights: &LayerWeights, nonlinearity: Nonlinearity) -> Result<Self> {
        let (hidden_size, _input_size) = weights.w_ih.dims2().map_err(|_| {
            candle_core::Error::Msg(format!(
                "w_ih: expected rank 2 [hidden_size, input_size], found shape {:?}",
                weights.w_ih.dims()
            ))
        })?;
        check_dims("w_hh", &weights.w_hh, &[hidden_size, hidden_size])?;
        let dtype = weights.w_ih.dtype();
        ensure(weights.w_hh.dtype() == dtype, || {
            format!(
                "w_hh: expected dtype {dtype:?} like w_ih, found {:?}",
                weights.w_hh.dtype()
            )
        })?;
        for (name, b) in [("b_ih", &weights.b_ih), ("b_hh", &weights.b_hh)] {
            if let Some(b) = b {
                check_dims(name, b, &[hidden_size])?;
                ensure(b.dtype() == dtype, || {
                    format!("{name}: expected dtype {dtype:?}, found {:?}", b.dtype())
                })?;
            }
        }
        let tracked = [&weights.w_ih, &weights.w_hh]
            .into_iter()
            .chain(weights.b_ih.iter())
            .chain(weights.b_hh.iter())
            .any(tracks);
        let prepared = if tracked {
            None
        } else {
            Some(Prepared::new(weights)?)
        };
        Ok(Self {
            weights: weights.clone(),
            prepared,
            nonlinearity,
            clip: None,
        })
    }

    /// The same layer with ONNX's `clip`: each step's pre-activation
    /// `x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh` clamped to `[-clip, clip]` before the activation
    /// (`None`: no clamp). A clipped layer takes the plain candle-ops loop.
    ///
    /// # Errors
    /// When `clip` is not a positive number.
    pub fn with_clip(mut self, clip: Option<f64>) -> Result<Self> {
        if let Some(c) = clip {
            ensure(c > 0.0, || {
                format!("clip: expected a positive number, found {c}")
            })?;
        }
        self.clip = clip;
        Ok(self)
    }

    /// The clamp of the pre-activation ([`RnnLayer::with_clip`]), if there is one.
    pub fn clip(&self) -> Option<f64> {
        self.clip
    }

    /// The same layer with its weights on `device` (CPU or a GPU). On another device, copies:
    /// gradients of the copy's weights do not reach this layer's. On its own device, this
    /// layer (tensors shared, its prepared and packed weights kept, nothing rebuilt).
    pub fn to_device(&self, device: &candle_core::Device) -> Result<Self> {
        if self.device().same_device(device) {
            return Ok(self.clone());
        }
        let moved = |t: &Tensor| t.to_device(device);
        let weights = LayerWeights {
            w_ih: moved(&self.weights.w_ih)?,
            w_hh: moved(&self.weights.w_hh)?,
            b_ih: self.weights.b_ih.as_ref().map(moved).transpose()?,
            b_hh: self.weights.b_hh.as_ref().map(moved).transpose()?,
        };
        let mut layer = Self::new(&weights, self.nonlinearity)?;
        layer.clip = self.clip;
        Ok(layer)
    }

    /// The device the weights are on; inputs must be on it too.
    pub fn device(&self) -> &candle_core::Device {
        self.weights.w_ih.device()
    }

    /// Features per input step.
    pub fn input_size(&self) -> usize {
        self.weights.w_ih.dims()[1]
    }

    /// Neurons in the layer.
    pub fn hidden_size(&self) -> usize {
        self.weights.w_ih.dims()[0]
    }

    /// The activation of the layer.
    pub fn nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity
    }

    /// Whether the layer adds a bias.
    pub fn has_bias(&self) -> bool {
        self.weights.b_ih.is_some() || self.weights.b_hh.is_some()
    }

    /// The element type of the weights; inputs must have the same.
    pub fn dtype(&self) -> DType {
        self.weights.w_ih.dtype()
    }

    /// The weights in PyTorch's layout, the tensors the layer was built from (the same
    /// storage: a [`candle_core::Var`]'s update shows here too).
    pub fn weights(&self) -> &LayerWeights {
        &self.weights
    }

    /// One time step: `h' = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)` (clamped first where the
    /// layer clips).
    ///
    /// Call it in a loop, feeding each `h'` back as the next `h`, to stream a sequence that
    /// arrives one step at a time; the states equal [`RnnLayer::forward`]'s outputs (bit for
    /// bit where the fused CPU path runs: tanh or ReLU, f32 or f64, no clip). Start from zeros
    /// (`Tensor::zeros((batch, hidden_size), ..)`) or from a saved state.
    ///
    /// # Shapes
    /// - `x`: `[batch, input_size]`
    /// - `h`: `[batch, hidden_size]`
    /// - returns `h'`: `[batch, hidden_size]`
    ///
    /// # Errors
    /// When a shape or dtype does not fit.
    pub fn step(&self, x: &Tensor, h: &Tensor) -> Result<Tensor> {
        let batch = x.dims().first().copied().unwrap_or(0);
        check_dims("x", x, &[batch, self.input_size()])?;
        check_dims("h", h, &[batch, self.hidden_size()])?;
        self.check_dtype("x", x)?;
        self.check_dtype("h", h)?;
        let fused = self
            .nonlinearity
            .fused()
            .filter(|_| cpu::supports(x.device(), self.dtype()) && self.clip.is_none());
        match (&self.prepared, fused) {
            (Some(p), Some(activation)) if !tracks(x) && !tracks(h) => {
                let run = self.cpu_run(p, activation, &[1, batch], Direction::Forward, None);
                cpu::step(&run, x, &p.w_ih_t, &p.w_hh_t, p.bias.as_ref(), h)
            }
            // A step that records gradients: a one-step run of the fused path that records
            // them, with its bits.
            (_, Some(_)) => Ok(self.forward(&x.unsqueeze(0)?, Some(h))?.1),
            _ => {
                let w = self.run_weights()?;
                let projected = project(&w, x)?;
                self.recur(&w, &projected, h)
            }
        }
    }

    /// Runs the layer over a whole sequence, time-major.
    ///
    /// # Shapes
    /// - `input`: `[seq_len, batch, input_size]`
    /// - `h0`: `[batch, hidden_size]`, zeros when `None`
    /// - returns `(output [seq_len, batch, hidden_size], h_n [batch, hidden_size])`
    ///
    /// # Errors
    /// When a shape or dtype does not fit; the message names the tensor.
    pub fn forward(&self, input: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        self.forward_with_lengths(input, h0, Direction::Forward, None)
    }

    /// Like [`RnnLayer::forward`], with time running backwards: step `T-1` first. The output
    /// is still indexed by time (`output[t]` is the state after reading `input[t]`), as in the
    /// reverse half of a bidirectional PyTorch RNN.
    ///
    /// # Shapes
    /// - `input`: `[seq_len, batch, input_size]`
    /// - `h0`: `[batch, hidden_size]`, zeros when `None`
    /// - returns `(output [seq_len, batch, hidden_size], h_n [batch, hidden_size])`, where
    ///   `h_n` is the state after reading `input[0]`
    ///
    /// # Errors
    /// As [`RnnLayer::forward`].
    pub fn forward_reversed(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        self.forward_with_lengths(input, h0, Direction::Backward, None)
    }

    /// Runs the layer in either direction over sequences of different lengths, as PyTorch's
    /// packed sequences and TensorFlow's `sequence_length` do: sequence `b` is
    /// `input[..lengths[b], b]`; its outputs past that are zero, its `h_n` is the state at its
    /// last valid step, and backwards it starts at its own end.
    ///
    /// # Shapes
    /// - `input`: `[seq_len, batch, input_size]`
    /// - `h0`: `[batch, hidden_size]`, zeros when `None`
    /// - `lengths`: `batch` values, each at most `seq_len`; `None` means all `seq_len`
    /// - returns `(output [seq_len, batch, hidden_size], h_n [batch, hidden_size])`
    ///
    /// # Errors
    /// When a shape or dtype does not fit, or a length is over `seq_len`.
    pub fn forward_with_lengths(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        direction: Direction,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, Tensor)> {
        let (seq_len, _batch) = self.check_sequence(input, h0, lengths)?;
        let activation = self
            .nonlinearity
            .fused()
            .filter(|_| cpu::supports(input.device(), self.dtype()) && self.clip.is_none());
        let Some(activation) = activation.filter(|_| seq_len > 0) else {
            return self.forward_reference(input, h0, direction, lengths);
        };
        match &self.prepared {
            Some(p) if !tracks(input) && !h0.is_some_and(tracks) => {
                self.forward_fused(p, activation, input, h0, direction, lengths)
            }
            _ => self.forward_recorded(activation, input, h0, direction, lengths),
        }
    }

    /// The fused CPU path on prepared weights; records no gradient.
    fn forward_fused(
        &self,
        prepared: &Prepared,
        activation: cpu::Fused,
        input: &Tensor,
        h0: Option<&Tensor>,
        direction: Direction,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, Tensor)> {
        let run = self.cpu_run(prepared, activation, input.dims(), direction, lengths);
        cpu::forward(
            &run,
            input,
            &prepared.w_ih_t,
            &prepared.w_hh_t,
            prepared.bias.as_ref(),
            h0,
        )
    }

    /// What the fused CPU path runs on: this layer's sizes and `prepared` weights, the
    /// sequence length and batch of an input of `dims` `[seq_len, batch, input_size]`.
    fn cpu_run<'a>(
        &self,
        prepared: &'a Prepared,
        activation: cpu::Fused,
        dims: &[usize],
        direction: Direction,
        lengths: Option<&'a [usize]>,
    ) -> cpu::Run<'a> {
        cpu::Run {
            seq: dims[0],
            batch: dims[1],
            input_size: self.input_size(),
            hidden: self.hidden_size(),
            direction,
            activation,
            lengths,
            threads: cpu::threads(),
            level: cpu::level::get(),
            packed: &prepared.packed,
        }
    }

    /// The fused CPU path for a run that tracks gradients: the forward as inference computes
    /// it, recorded as one operation whose backward is backpropagation through time in one
    /// pass (`cpu/bptt.rs`), and `h_n` as a second one on its outputs and `h0`.
    fn forward_recorded(
        &self,
        activation: cpu::Fused,
        input: &Tensor,
        h0: Option<&Tensor>,
        direction: Direction,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, Tensor)> {
        let w = &self.weights;
        let detached = LayerWeights {
            w_ih: w.w_ih.detach(),
            w_hh: w.w_hh.detach(),
            b_ih: w.b_ih.as_ref().map(Tensor::detach),
            b_hh: w.b_hh.as_ref().map(Tensor::detach),
        };
        let prepared = Prepared::new(&detached)?;
        let run = self.cpu_run(&prepared, activation, input.dims(), direction, lengths);
        let (output, h_n) = cpu::forward_storage(
            &run,
            &input.detach(),
            &prepared.w_ih_t,
            &prepared.w_hh_t,
            prepared.bias.as_ref(),
            h0.map(Tensor::detach).as_ref(),
        )?;
        let hidden = self.hidden_size();
        let h0 = match h0 {
            Some(h0) => h0.clone(),
            None => Tensor::zeros((run.batch, hidden), input.dtype(), input.device())?,
        };
        let mut columns = vec![w.w_ih.clone(), w.w_hh.clone()];
        for b in w.b_ih.iter().chain(w.b_hh.iter()) {
            columns.push(b.unsqueeze(1)?);
        }
        let lengths = lengths.map(<[usize]>::to_vec);
        let recurrence = cpu::bptt::Recurrence {
            output: Mutex::new(Some(output)),
            input_size: self.input_size(),
            hidden,
            bias_columns: columns.len() - 2,
            direction,
            activation,
            lengths: lengths.clone(),
            level: run.level,
        };
        let output = input.apply_op3(&h0, &Tensor::cat(&columns, 1)?, recurrence)?;
        let last = cpu::bptt::LastState {
            h_n: Mutex::new(Some(h_n)),
            hidden,
            direction,
            lengths,
        };
        let h_n = output.apply_op2(&h0, last)?;
        Ok((output, h_n))
    }

    /// Checks the shapes and dtypes of a sequence run; returns `(seq_len, batch)`.
    fn check_sequence(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
    ) -> Result<(usize, usize)> {
        let dims = input.dims();
        ensure(dims.len() == 3, || {
            format!("input: expected rank 3 [seq_len, batch, input_size], found shape {dims:?}")
        })?;
        let (seq_len, batch) = (dims[0], dims[1]);
        check_dims("input", input, &[seq_len, batch, self.input_size()])?;
        self.check_dtype("input", input)?;
        if let Some(h0) = h0 {
            check_dims("h0", h0, &[batch, self.hidden_size()])?;
            self.check_dtype("h0", h0)?;
        }
        if let Some(lengths) = lengths {
            check_lengths(lengths, seq_len, batch)?;
        }
        Ok((seq_len, batch))
    }

    /// [`RnnLayer::forward_with_lengths`] in plain candle ops, one matmul, add and activation
    /// per step: the path that records gradients, the reference the fused fast paths are
    /// tested against, and the path for devices and dtypes they do not cover. Public for
    /// benchmarks and tests; [`RnnLayer::forward_with_lengths`] chooses it where it must.
    ///
    /// # Shapes
    /// As [`RnnLayer::forward_with_lengths`].
    #[doc(hidden)]
    pub fn forward_reference(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        direction: Direction,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, Tensor)> {
        let (seq_len, batch) = self.check_sequence(input, h0, lengths)?;
        let hidden = self.hidden_size();
        let mut h = match h0 {
            Some(h0) => h0.clone(),
            None => Tensor::zeros((batch, hidden), self.dtype(), input.device())?,
        };
        let valid = match lengths {
            Some(lengths) => Some(valid_steps(lengths, seq_len, batch, input.device())?),
            None => None,
        };
        if seq_len == 0 {
            let output = Tensor::zeros((0, batch, hidden), self.dtype(), input.device())?;
            return Ok((output, h));
        }
        let w = self.run_weights()?;
        let projected = project(&w, &input.reshape((seq_len * batch, self.input_size()))?)?
            .reshape((seq_len, batch, hidden))?;
        let zeros = Tensor::zeros((batch, hidden), self.dtype(), input.device())?;
        let mut outputs = Vec::with_capacity(seq_len);
        for i in 0..seq_len {
            let t = match direction {
                Direction::Forward => i,
                Direction::Backward => seq_len - 1 - i,
            };
            let next = self.recur(&w, &projected.get(t)?, &h)?;
            match &valid {
                Some(valid) => {
                    let mask = valid.get(t)?.broadcast_as((batch, hidden))?;
                    outputs.push(mask.where_cond(&next, &zeros)?);
                    h = mask.where_cond(&next, &h)?;
                }
                None => {
                    outputs.push(next.clone());
                    h = next;
                }
            }
        }
        if matches!(direction, Direction::Backward) {
            outputs.reverse();
        }
        Ok((Tensor::stack(&outputs, 0)?, h))
    }

    /// The weights a run multiplies by: the prepared copies for inference, else views of
    /// the layer's own tensors, so that gradients reach them.
    fn run_weights(&self) -> Result<RunWeights> {
        Ok(match &self.prepared {
            Some(p) => RunWeights {
                w_ih_t: p.w_ih_t.clone(),
                w_hh_t: p.w_hh_t.clone(),
                bias: p.bias.clone(),
            },
            None => RunWeights {
                w_ih_t: self.weights.w_ih.t()?,
                w_hh_t: self.weights.w_hh.t()?,
                bias: summed_bias(&self.weights)?,
            },
        })
    }

    /// `act(projected + h·W_hhᵀ)`, the sum clamped first where the layer clips.
    fn recur(&self, w: &RunWeights, projected: &Tensor, h: &Tensor) -> Result<Tensor> {
        let mut pre = (projected + h.matmul(&w.w_hh_t)?)?;
        if let Some(c) = self.clip {
            pre = pre.clamp(-c, c)?;
        }
        self.nonlinearity.apply(&pre)
    }

    fn check_dtype(&self, name: &str, t: &Tensor) -> Result<()> {
        ensure(t.dtype() == self.dtype(), || {
            format!(
                "{name}: expected dtype {:?} like the weights, found {:?}",
                self.dtype(),
                t.dtype()
            )
        })
    }
}

/// `x·W_ihᵀ + b` for any number of rows.
fn project(w: &RunWeights, x: &Tensor) -> Result<Tensor> {
    let xw = x.matmul(&w.w_ih_t)?;
    match &w.bias {
        Some(b) => xw.broadcast_add(b),
        None => Ok(xw),
    }
}

/// The state of one layer between steps, as candle-nn's [`candle_nn::rnn::GRUState`] is
/// for a GRU: the hidden state, which is also the layer's output.
#[derive(Debug, Clone)]
pub struct RnnState {
    /// The hidden state, `[batch, hidden_size]`.
    pub h: Tensor,
}

impl RnnState {
    /// The hidden state, `[batch, hidden_size]`.
    pub fn h(&self) -> &Tensor {
        &self.h
    }
}

/// candle-nn's recurrent interface, batch-first as candle-nn's LSTM and GRU are.
///
/// `seq` and `seq_init` run the whole sequence through [`RnnLayer::forward`] (one projection
/// matmul, the fast path where there is one), not step by step.
///
/// # Shapes
/// - `seq(input)`, `seq_init(input, state)`: `input` `[batch, seq_len, input_size]`; return
///   one state per step, the last being `h_n`
/// - `step(input, state)`: `input` `[batch, input_size]`
/// - `states_to_tensor(states)`: `[batch, seq_len, hidden_size]`
impl candle_nn::rnn::RNN for RnnLayer {
    type State = RnnState;

    fn zero_state(&self, batch_dim: usize) -> Result<RnnState> {
        let h = Tensor::zeros((batch_dim, self.hidden_size()), self.dtype(), self.device())?;
        Ok(RnnState { h })
    }

    fn step(&self, input: &Tensor, state: &RnnState) -> Result<RnnState> {
        let h = RnnLayer::step(self, input, &state.h)?;
        Ok(RnnState { h })
    }

    fn seq_init(&self, input: &Tensor, init_state: &RnnState) -> Result<Vec<RnnState>> {
        let time_major = input.transpose(0, 1)?.contiguous()?;
        let (output, _) = self.forward(&time_major, Some(&init_state.h))?;
        let seq_len = output.dim(0)?;
        (0..seq_len)
            .map(|t| Ok(RnnState { h: output.get(t)? }))
            .collect()
    }

    fn states_to_tensor(&self, states: &[RnnState]) -> Result<Tensor> {
        // Batch-first like the input: [batch, seq_len, hidden_size].
        let hs: Vec<Tensor> = states.iter().map(|s| s.h.clone()).collect();
        Tensor::stack(&hs, 1)
    }
}

#[cfg(test)]
mod tests;
