//! The Elman (vanilla) recurrent network on [candle](https://github.com/huggingface/candle)
//! tensors: the RNN that candle-nn, which has LSTM and GRU, lacks.
//!
//! Each layer computes `h_t = act(x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh)` with `act` tanh or
//! relu, exactly as `torch.nn.RNN`, Keras `SimpleRNN` and TensorFlow's `BasicRNNCell` do. The
//! weights are kept in PyTorch's layout ([`LayerWeights`]); a stack of layers, one or two
//! directions each, is an [`Rnn`].
//!
//! This crate does tensor math only: no files, no printing. Reading weights from PyTorch,
//! Keras or TensorFlow exports is the `rnn-weights` crate's job.
//!
//! # In a candle program
//!
//! - [`RnnLayer`] is one layer in one direction: [`RnnLayer::forward`] runs a whole sequence
//!   (time-major), [`RnnLayer::step`] one step, for streaming. It implements candle-nn's
//!   [`candle_nn::rnn::RNN`] trait (batch-first, like candle-nn's LSTM and GRU), so it drops
//!   in where those are used.
//! - [`rnn_layer`] builds a layer from a [`candle_nn::VarBuilder`] with PyTorch's names
//!   (`weight_ih_l0`, …): a `torch.nn.RNN` state_dict saved as safetensors loads as it is, and
//!   a [`candle_nn::VarMap`] gives trainable, PyTorch-initialised weights.
//! - [`Rnn`] stacks layers and directions with `torch.nn.RNN`'s semantics: `h0`/`h_n`
//!   `[layers · directions, batch, hidden]`, batch-first, unbatched inputs, lengths.
//! - [`uniform_weights`] draws seeded PyTorch-style weights.
//!
//! The crate's `examples/` show each use whole, and their tests check the numbers:
//! `torch_state_dict` (a PyTorch state_dict, against torch's own outputs), `stream_steps`
//! (one step at a time) and `in_candle_model` (the layer inside a candle `Module`):
//! `cargo run -p rnn-core --example torch_state_dict`.
//!
//! With the `cuda` feature the layers run on NVIDIA GPUs ([`RnnLayer::to_device`]); on the
//! CPU, f32 and f64 take a fused fast path, other dtypes and devices plain candle ops.
//!
//! # Example
//!
//! The tutorial cell this project began with, `Y0 = tanh(X0·Wx + b)`,
//! `Y1 = tanh(Y0·Wy + X1·Wx + b)`, is a one-layer RNN with `W_ih = Wxᵀ`, `W_hh = Wyᵀ`:
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use rnn_core::{LayerWeights, Nonlinearity, Rnn};
//!
//! let dev = Device::Cpu;
//! let wx = Tensor::new(&[[0.5f32, -0.5], [0.25, 1.0]], &dev)?; // [input 2, hidden 2]
//! let wy = Tensor::new(&[[0.1f32, 0.2], [-0.3, 0.4]], &dev)?; // [hidden, hidden]
//! let weights = LayerWeights { w_ih: wx.t()?, w_hh: wy.t()?, b_ih: None, b_hh: None };
//! let rnn = Rnn::from_weights(&[vec![weights]], Nonlinearity::Tanh)?;
//!
//! let x = Tensor::new(&[[[1.0f32, 2.0]], [[3.0, 4.0]]], &dev)?; // [T=2, batch=1, input=2]
//! let (y, _h_n) = rnn.forward(&x, None)?;
//!
//! let y0 = x.get(0)?.matmul(&wx)?.tanh()?;
//! let y1 = (y0.matmul(&wy)? + x.get(1)?.matmul(&wx)?)?.tanh()?;
//! let diff = (y.get(1)? - y1)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-6);
//! # Ok::<(), candle_core::Error>(())
//! ```

mod cpu;
mod init;
mod layer;
mod mask;
mod rnn;
mod shape;
mod stream;

pub use cpu::level as cpu_kernel;
pub use init::{uniform_weights, InitConfig};
pub use layer::{rnn_layer, Direction, LayerWeights, Nonlinearity, Param, RnnLayer};
pub use mask::lengths_from_mask;
pub use rnn::{LayerOptions, MaskedSteps, MergeMode, Rnn};
pub use stream::Stream;
