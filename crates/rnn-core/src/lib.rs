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
//! As candle-nn builds an LSTM (`candle_nn::lstm(in_dim, hidden_dim, LSTMConfig, vb)`):
//!
//! - [`rnn`]`(in_dim, hidden_dim, `[`RnnConfig`]`, vb)` builds a whole `torch.nn.RNN` stack
//!   (`num_layers`, `bidirectional`, `batch_first`, `nonlinearity`, `bias`) from a
//!   [`candle_nn::VarBuilder`] with PyTorch's names (`weight_ih_l0`, …): a state_dict saved
//!   as safetensors loads as it is, and a [`candle_nn::VarMap`] gives trainable,
//!   PyTorch-initialised weights. [`Rnn`] runs it with `torch.nn.RNN`'s semantics: `h0`/`h_n`
//!   `[layers · directions, batch, hidden]`, batch-first, unbatched inputs, lengths.
//! - [`rnn_layer`]`(in_dim, hidden_dim, `[`RnnLayerConfig`]`, vb)` builds one layer in one
//!   direction, an [`RnnLayer`]: [`RnnLayer::forward`] runs a whole sequence (time-major),
//!   [`RnnLayer::step`] one step. It implements candle-nn's [`candle_nn::rnn::RNN`] trait
//!   (batch-first, like candle-nn's LSTM and GRU) with [`RnnState`] as its state, so it drops
//!   in where those are used.
//! - [`Stream`] feeds a stack one time step at a time; it owns what it runs, so it can sit
//!   beside its model in a struct or move to another thread.
//! - [`uniform_weights`] draws seeded PyTorch-style weights.
//!
//! # Training
//!
//! The layers keep the weight tensors they are given, so gradients reach them: when the
//! input, `h0` or any weight tracks gradients (a [`candle_core::Var`]), `loss.backward()`
//! gives the gradients torch's autograd gives (the `gradients` example's tests hold them
//! against torch's within 2e-6 in f32 and 3e-15 in f64), and an optimiser's in-place update
//! of the variables changes the next run. On the CPU in f32 and f64 with tanh or relu, such a
//! run computes its forward on the fused path and records each layer's recurrence as one
//! operation whose backward is backpropagation through time in one pass on the same
//! kernels; elsewhere it records plain candle ops, which candle differentiates.
//!
//! The crate's `examples/` show each use whole, and their tests check the numbers:
//! `torch_state_dict` (a PyTorch state_dict, against torch's own outputs), `gradients`
//! (backpropagation, against torch's autograd), `train_sine` (a model trained to predict a
//! sine wave, its loss falling), `stream_steps` (one step at a time) and `in_candle_model`
//! (the layer inside a candle `Module`): `cargo run -p rnn-core --example train_sine`.
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

pub mod around;
mod config;
mod cpu;
mod init;
mod layer;
mod mask;
mod nonlinearity;
mod options;
mod rnn;
mod shape;
mod stream;
mod vocabulary;

pub use candle_nn::rnn::Direction;
pub use config::{rnn, rnn_layer, RnnConfig, RnnLayerConfig};
pub use cpu::level as cpu_kernel;
pub use init::{uniform_weights, InitConfig};
pub use layer::{LayerWeights, RnnLayer, RnnState};
pub use mask::{lengths_from_mask, step_mask};
pub use nonlinearity::{Nonlinearity, Param};
pub use options::{LayerOptions, MaskedSteps, MergeMode, TimeOrder};
pub use rnn::{Rnn, StackRun};
pub use stream::Stream;
pub use vocabulary::Vocabulary;
