//! Layers and stacks from a [`candle_nn::VarBuilder`] with PyTorch's names, as candle-nn
//! builds its LSTM (`candle_nn::lstm(in_dim, hidden_dim, LSTMConfig, vb)`): the configs, with
//! `torch.nn.RNN`'s defaults, and the two constructors.

use candle_core::Result;
use candle_nn::rnn::Direction;

use crate::layer::{LayerWeights, RnnLayer};
use crate::nonlinearity::Nonlinearity;
use crate::rnn::Rnn;
use crate::shape::ensure;

/// How [`rnn_layer`] builds one layer: candle-nn's [`candle_nn::LSTMConfig`] for an Elman
/// layer, with `torch.nn.RNN`'s defaults.
#[derive(Debug, Clone, Copy)]
pub struct RnnLayerConfig {
    /// The activation; tanh by default.
    pub nonlinearity: Nonlinearity,
    /// Whether the layer has `b_ih` and `b_hh`; true by default.
    pub bias: bool,
    /// Which of a bidirectional layer's weights to read: [`Direction::Backward`] reads the
    /// `_reverse` ones. The direction a layer runs in is chosen when it runs
    /// ([`crate::RnnLayer::forward_reversed`]; [`crate::Rnn`] runs a layer's second direction
    /// backwards), as for candle-nn's LSTM.
    pub direction: Direction,
    /// The layer's index in the stack, `k` in `weight_ih_l{k}`; 0 by default.
    pub layer_idx: usize,
}

impl Default for RnnLayerConfig {
    fn default() -> Self {
        Self {
            nonlinearity: Nonlinearity::Tanh,
            bias: true,
            direction: Direction::Forward,
            layer_idx: 0,
        }
    }
}

/// Builds one layer from a [`candle_nn::VarBuilder`] with PyTorch's names, as
/// [`candle_nn::lstm`] builds an LSTM: `weight_ih_l{k}{suffix}`, `weight_hh_l{k}{suffix}`,
/// and, with `config.bias`, `bias_ih_l{k}{suffix}` and `bias_hh_l{k}{suffix}`, where `k` is
/// `config.layer_idx` and `suffix` is `""` or, for [`Direction::Backward`], `"_reverse"`.
///
/// A `torch.nn.RNN` state_dict saved as safetensors loads directly
/// ([`candle_nn::VarBuilder::from_buffered_safetensors`] or `from_mmaped_safetensors`); a
/// prefix such as `rnn.` is [`candle_nn::VarBuilder::pp`]'s job. With a
/// [`candle_nn::VarMap`] behind the builder, missing tensors are created with PyTorch's
/// initialisation, uniform(−1/√H, 1/√H), and are trainable: the layer reads the variables
/// themselves, so an optimiser's step changes its next run.
///
/// # Shapes
/// The tensors read from `vb`, for `in_dim` I and `hidden_dim` H:
/// - `weight_ih_l{k}{suffix}`: `[H, I]`
/// - `weight_hh_l{k}{suffix}`: `[H, H]`
/// - `bias_ih_l{k}{suffix}`, `bias_hh_l{k}{suffix}`: `[H]`
///
/// # Errors
/// When a tensor is missing from `vb` or has another shape, as [`candle_nn::VarBuilder`]
/// reports it.
///
/// # Example
///
/// A one-layer state_dict of a module that held the RNN as `self.rnn`, with one input
/// feature and two neurons:
///
/// ```
/// use std::collections::HashMap;
///
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::VarBuilder;
/// use rnn_core::{rnn_layer, RnnLayerConfig};
///
/// let dev = Device::Cpu;
/// let mut state_dict = HashMap::new();
/// for (name, shape, values) in [
///     ("rnn.weight_ih_l0", vec![2, 1], vec![0.5f32, -1.0]), // [H=2, I=1]
///     ("rnn.weight_hh_l0", vec![2, 2], vec![0.25, 0.0, 0.0, 0.25]),
///     ("rnn.bias_ih_l0", vec![2], vec![0.1, 0.2]),
///     ("rnn.bias_hh_l0", vec![2], vec![0.0, -0.4]),
/// ] {
///     state_dict.insert(name.to_string(), Tensor::from_vec(values, shape, &dev)?);
/// }
/// let vb = VarBuilder::from_tensors(state_dict, DType::F32, &dev);
/// let layer = rnn_layer(1, 2, RnnLayerConfig::default(), vb.pp("rnn"))?;
///
/// // x_0 = 2 from h = 0: h_1 = tanh(2·W_ih + b_ih + b_hh).
/// let x = Tensor::new(&[[2.0f32]], &dev)?; // [B=1, I=1]
/// let h = layer.step(&x, &Tensor::zeros((1, 2), DType::F32, &dev)?)?;
/// let want = [(2.0f32 * 0.5 + 0.1 + 0.0).tanh(), (2.0f32 * -1.0 + 0.2 - 0.4).tanh()];
/// let got: Vec<f32> = h.flatten_all()?.to_vec1()?;
/// assert!((got[0] - want[0]).abs() < 1e-6 && (got[1] - want[1]).abs() < 1e-6);
///
/// // A name that is not there is an error, not a silent zero.
/// let layer_1 = RnnLayerConfig { layer_idx: 1, ..Default::default() };
/// assert!(rnn_layer(1, 2, layer_1, vb.pp("rnn")).is_err());
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn rnn_layer(
    in_dim: usize,
    hidden_dim: usize,
    config: RnnLayerConfig,
    vb: candle_nn::VarBuilder,
) -> Result<RnnLayer> {
    let suffix = match config.direction {
        Direction::Forward => "",
        Direction::Backward => "_reverse",
    };
    let k = config.layer_idx;
    let bound = 1.0 / (hidden_dim.max(1) as f64).sqrt();
    let init = candle_nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let get = |shape: &[usize], name: &str| {
        vb.get_with_hints(shape, &format!("{name}_l{k}{suffix}"), init)
    };
    let w_ih = get(&[hidden_dim, in_dim], "weight_ih")?;
    let w_hh = get(&[hidden_dim, hidden_dim], "weight_hh")?;
    let (b_ih, b_hh) = if config.bias {
        (
            Some(get(&[hidden_dim], "bias_ih")?),
            Some(get(&[hidden_dim], "bias_hh")?),
        )
    } else {
        (None, None)
    };
    let weights = LayerWeights {
        w_ih,
        w_hh,
        b_ih,
        b_hh,
    };
    RnnLayer::new(&weights, config.nonlinearity)
}

/// The options of a whole stack, as `torch.nn.RNN` takes them (its defaults too), for
/// [`rnn`].
#[derive(Debug, Clone, Copy)]
pub struct RnnConfig {
    /// Stacked layers; 1 by default.
    pub num_layers: usize,
    /// Every layer's activation; tanh by default.
    pub nonlinearity: Nonlinearity,
    /// Whether each layer has `b_ih` and `b_hh`; true by default.
    pub bias: bool,
    /// Inputs and outputs `[batch, seq_len, ..]`; false by default.
    pub batch_first: bool,
    /// Two directions per layer, their outputs concatenated; false by default.
    pub bidirectional: bool,
}

impl Default for RnnConfig {
    fn default() -> Self {
        Self {
            num_layers: 1,
            nonlinearity: Nonlinearity::Tanh,
            bias: true,
            batch_first: false,
            bidirectional: false,
        }
    }
}

/// Builds a whole stack from a [`candle_nn::VarBuilder`] with PyTorch's names, as
/// `torch.nn.RNN(in_dim, hidden_dim, num_layers, nonlinearity, bias, batch_first,
/// bidirectional)` names its state_dict: layer `k`, direction `d` is
/// [`rnn_layer`]`(in_dim or directions · hidden_dim, hidden_dim, {layer_idx: k, direction: d})`.
///
/// A state_dict saved with safetensors loads as it is; with a [`candle_nn::VarMap`] behind
/// `vb` the weights are created with PyTorch's initialisation and are trainable (see
/// [`crate::RnnLayer`]'s Training section).
///
/// # Errors
/// When `num_layers` is 0, or a tensor is missing from `vb` or has another shape.
///
/// # Example
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use rnn_core::{rnn, RnnConfig};
///
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
/// let config = RnnConfig { num_layers: 2, bidirectional: true, ..Default::default() };
/// let net = rnn(3, 4, config, vb.pp("rnn"))?;
/// assert_eq!(varmap.all_vars().len(), 2 * 2 * 4); // layers · directions · 4 tensors
///
/// let x = Tensor::zeros((5, 2, 3), DType::F32, &Device::Cpu)?; // [seq, batch, input]
/// let (output, h_n) = net.forward(&x, None)?;
/// assert_eq!(output.dims(), &[5, 2, 8]); // directions · hidden features
/// assert_eq!(h_n.dims(), &[4, 2, 4]); // [layers · directions, batch, hidden]
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn rnn(
    in_dim: usize,
    hidden_dim: usize,
    config: RnnConfig,
    vb: candle_nn::VarBuilder,
) -> Result<Rnn> {
    ensure(config.num_layers > 0, || {
        "num_layers: expected at least 1, found 0".into()
    })?;
    let directions: &[Direction] = if config.bidirectional {
        &[Direction::Forward, Direction::Backward]
    } else {
        &[Direction::Forward]
    };
    let layers = (0..config.num_layers)
        .map(|k| {
            let input = if k == 0 {
                in_dim
            } else {
                directions.len() * hidden_dim
            };
            directions
                .iter()
                .map(|&direction| {
                    let layer = RnnLayerConfig {
                        nonlinearity: config.nonlinearity,
                        bias: config.bias,
                        direction,
                        layer_idx: k,
                    };
                    rnn_layer(input, hidden_dim, layer, vb.clone())
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Rnn::new(layers)?.with_batch_first(config.batch_first))
}
