//! The activation of a layer: PyTorch's two, Keras's others, ONNX's parametrised ones.

use candle_core::{Result, Tensor};

/// The activation applied to each new hidden state.
///
/// `Tanh` and `Relu` are `torch.nn.RNN`'s two; the next ten are the other elementwise
/// activations Keras's `SimpleRNN` accepts, each computed as Keras 3 (3.15) defines it
/// ([`Nonlinearity::ALL`]). The last six carry parameters: the activations of ONNX's `RNN` op
/// that Keras does not have, or has with other constants, as the ONNX operator spec defines
/// them; their parameters are [`Param`]s, so that the enum stays `Copy + Eq`. Only `Tanh` and
/// `Relu` run on the fused CPU path; the others take the plain candle-ops loop.
///
/// Names ([`Nonlinearity::from_name`], `Display`) are Keras's for the first twelve, and
/// `name(α)` or `name(α,β)` for the parametrised ones: `leaky_relu(0.1)`, `hard_sigmoid(0.2,0.5)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nonlinearity {
    /// `tanh`, the default of PyTorch, Keras and TensorFlow.
    #[default]
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Keras 3's `relu6(x + 3) / 6`: 0 below −3, 1 above 3, `x/6 + 0.5` between (Keras 2 used
    /// `0.2·x + 0.5` clipped; files written by Keras 3 mean this one).
    HardSigmoid,
    /// The identity (Keras's `"linear"`, also `None`).
    Linear,
    /// `x` for `x > 0`, `e^x − 1` otherwise (α = 1).
    Elu,
    /// `λ·x` for `x > 0`, `λ·α·(e^x − 1)` otherwise, with Keras's α = 1.67326324 and
    /// λ = 1.05070098.
    Selu,
    /// `x / (|x| + 1)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x·Φ(x)` with the exact normal CDF (Keras's default `approximate=False`).
    Gelu,
    /// `x·sigmoid(x)` (Keras's `"silu"`, also `"swish"`).
    Silu,
    /// `e^x`.
    Exponential,
    /// ONNX's `LeakyRelu`: `x` for `x ≥ 0`, `α·x` otherwise.
    LeakyRelu {
        /// The slope below 0.
        alpha: Param,
    },
    /// ONNX's `ThresholdedRelu`: `x` for `x > α`, 0 otherwise.
    ThresholdedRelu {
        /// The threshold.
        alpha: Param,
    },
    /// ONNX's `Affine`: `α·x + β`.
    Affine {
        /// The scale.
        alpha: Param,
        /// The offset.
        beta: Param,
    },
    /// ONNX's `ScaledTanh`: `α·tanh(β·x)`.
    ScaledTanh {
        /// The scale of the output.
        alpha: Param,
        /// The scale of the input.
        beta: Param,
    },
    /// ONNX's `HardSigmoid`: `max(0, min(1, α·x + β))` (ONNX's defaults are α = 0.2,
    /// β = 0.5; [`Nonlinearity::HardSigmoid`] is Keras 3's, `x/6 + 0.5` clipped).
    LinearHardSigmoid {
        /// The slope.
        alpha: Param,
        /// The value at 0.
        beta: Param,
    },
    /// ONNX's `Elu` with any α: `x` for `x ≥ 0`, `α·(e^x − 1)` otherwise
    /// ([`Nonlinearity::Elu`] is α = 1).
    ScaledElu {
        /// The scale below 0.
        alpha: Param,
    },
}

/// A parameter of a [`Nonlinearity`], kept as the bits of its `f64` so that `Nonlinearity`
/// stays `Copy + Eq`: two parameters are equal when their bits are.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Param(u64);

impl Param {
    /// The parameter `value`.
    pub fn new(value: f64) -> Self {
        Self(value.to_bits())
    }

    /// Its value.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.get())
    }
}

/// Shortest round-trip decimal (`0.5`, `0.10000000149011612` for ONNX's f32 `0.1`).
impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// SELU's constants, as Keras (and Klambauer et al., 2017) give them.
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

impl Nonlinearity {
    /// Every activation, in the order `--help` lists them.
    pub const ALL: [Nonlinearity; 12] = [
        Nonlinearity::Tanh,
        Nonlinearity::Relu,
        Nonlinearity::Sigmoid,
        Nonlinearity::HardSigmoid,
        Nonlinearity::Linear,
        Nonlinearity::Elu,
        Nonlinearity::Selu,
        Nonlinearity::Softsign,
        Nonlinearity::Softplus,
        Nonlinearity::Gelu,
        Nonlinearity::Silu,
        Nonlinearity::Exponential,
    ];

    /// The name PyTorch or Keras uses for it (`"tanh"`, `"hard_sigmoid"`, …); for a
    /// parametrised one, the name without its parameters (`"leaky_relu"`), which `Display`
    /// adds.
    pub fn as_str(self) -> &'static str {
        match self {
            Nonlinearity::Tanh => "tanh",
            Nonlinearity::Relu => "relu",
            Nonlinearity::Sigmoid => "sigmoid",
            Nonlinearity::HardSigmoid => "hard_sigmoid",
            Nonlinearity::Linear => "linear",
            Nonlinearity::Elu => "elu",
            Nonlinearity::Selu => "selu",
            Nonlinearity::Softsign => "softsign",
            Nonlinearity::Softplus => "softplus",
            Nonlinearity::Gelu => "gelu",
            Nonlinearity::Silu => "silu",
            Nonlinearity::Exponential => "exponential",
            Nonlinearity::LeakyRelu { .. } => "leaky_relu",
            Nonlinearity::ThresholdedRelu { .. } => "thresholded_relu",
            Nonlinearity::Affine { .. } => "affine",
            Nonlinearity::ScaledTanh { .. } => "scaled_tanh",
            Nonlinearity::LinearHardSigmoid { .. } => "hard_sigmoid",
            Nonlinearity::ScaledElu { .. } => "elu",
        }
    }

    /// The parameters of a parametrised activation, in the order its name gives them.
    pub fn params(self) -> Vec<f64> {
        match self {
            Nonlinearity::LeakyRelu { alpha }
            | Nonlinearity::ThresholdedRelu { alpha }
            | Nonlinearity::ScaledElu { alpha } => vec![alpha.get()],
            Nonlinearity::Affine { alpha, beta }
            | Nonlinearity::ScaledTanh { alpha, beta }
            | Nonlinearity::LinearHardSigmoid { alpha, beta } => vec![alpha.get(), beta.get()],
            _ => Vec::new(),
        }
    }

    /// Parses PyTorch's and Keras's names for the activation (`"swish"` is Keras's other name
    /// for `silu`), and the parametrised ones as `Display` writes them: `leaky_relu(α)`,
    /// `thresholded_relu(α)`, `elu(α)`, `affine(α,β)`, `scaled_tanh(α,β)`,
    /// `hard_sigmoid(α,β)`.
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "swish" {
            return Some(Nonlinearity::Silu);
        }
        if let Some((base, rest)) = name.split_once('(') {
            let params: Vec<Param> = rest
                .strip_suffix(')')?
                .split(',')
                .map(|p| p.trim().parse::<f64>().ok().map(Param::new))
                .collect::<Option<_>>()?;
            return match (base.trim(), params.as_slice()) {
                ("leaky_relu", &[alpha]) => Some(Nonlinearity::LeakyRelu { alpha }),
                ("thresholded_relu", &[alpha]) => Some(Nonlinearity::ThresholdedRelu { alpha }),
                // elu(1) is Keras's elu, one activation under one name.
                ("elu", &[alpha]) if alpha.get() == 1.0 => Some(Nonlinearity::Elu),
                ("elu", &[alpha]) => Some(Nonlinearity::ScaledElu { alpha }),
                ("affine", &[alpha, beta]) => Some(Nonlinearity::Affine { alpha, beta }),
                ("scaled_tanh", &[alpha, beta]) => Some(Nonlinearity::ScaledTanh { alpha, beta }),
                ("hard_sigmoid", &[alpha, beta]) => {
                    Some(Nonlinearity::LinearHardSigmoid { alpha, beta })
                }
                _ => None,
            };
        }
        Self::ALL.into_iter().find(|n| n.as_str() == name)
    }

    /// How the fused CPU path computes it, where it does (tanh and relu, `torch.nn.RNN`'s
    /// two).
    pub(crate) fn fused(self) -> Option<crate::cpu::Fused> {
        match self {
            Nonlinearity::Tanh => Some(crate::cpu::Fused::Tanh),
            Nonlinearity::Relu => Some(crate::cpu::Fused::Relu),
            _ => None,
        }
    }

    /// `x` with the activation applied to each element, in candle's ops (the reference path's
    /// activation, and Keras's `Dense` activations in [`crate::around`]).
    ///
    /// # Errors
    /// As candle's ops (a dtype an op lacks).
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Nonlinearity::Tanh => x.tanh(),
            Nonlinearity::Relu => x.relu(),
            Nonlinearity::Sigmoid => candle_nn::ops::sigmoid(x),
            Nonlinearity::HardSigmoid => (x + 3.0)?.clamp(0.0, 6.0)? / 6.0,
            Nonlinearity::Linear => Ok(x.clone()),
            Nonlinearity::Elu => x.elu(1.0),
            Nonlinearity::Selu => x.elu(SELU_ALPHA)? * SELU_SCALE,
            Nonlinearity::Softsign => x / (x.abs()? + 1.0)?,
            // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|), which neither overflows nor loses the
            // small values.
            Nonlinearity::Softplus => x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?),
            Nonlinearity::Gelu => x.gelu_erf(),
            Nonlinearity::Silu => x.silu(),
            Nonlinearity::Exponential => x.exp(),
            // relu(x) − α·relu(−x): x above 0, exactly α·x below.
            Nonlinearity::LeakyRelu { alpha } => x.relu()? - (x.neg()?.relu()? * alpha.get())?,
            Nonlinearity::ThresholdedRelu { alpha } => {
                x.gt(alpha.get())?.where_cond(x, &x.zeros_like()?)
            }
            Nonlinearity::Affine { alpha, beta } => x.affine(alpha.get(), beta.get()),
            Nonlinearity::ScaledTanh { alpha, beta } => (x * beta.get())?.tanh()? * alpha.get(),
            Nonlinearity::LinearHardSigmoid { alpha, beta } => {
                x.affine(alpha.get(), beta.get())?.clamp(0.0, 1.0)
            }
            Nonlinearity::ScaledElu { alpha } => x.elu(alpha.get()),
        }
    }
}

/// Its name, with the parameters of a parametrised one: `tanh`, `leaky_relu(0.5)`.
impl std::fmt::Display for Nonlinearity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())?;
        let params = self.params();
        if !params.is_empty() {
            let params: Vec<String> = params.iter().map(f64::to_string).collect();
            write!(f, "({})", params.join(","))?;
        }
        Ok(())
    }
}

/// PyTorch's and Keras's names (`-` and `_` alike: `hard-sigmoid`), and the parametrised
/// ones as `Display` writes them ([`Nonlinearity::from_name`]); the one parser the command
/// line, the Python module and file metadata share.
impl std::str::FromStr for Nonlinearity {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        // `hard-sigmoid` is `hard_sigmoid`; a parameter keeps its sign (`affine(1,-0.5)`).
        let text = text.trim();
        let (name, params) = text.split_at(text.find('(').unwrap_or(text.len()));
        let normalised = format!("{}{params}", name.replace('-', "_"));
        Nonlinearity::from_name(&normalised).ok_or_else(|| {
            let names: Vec<&str> = Nonlinearity::ALL.iter().map(|n| n.as_str()).collect();
            format!(
                "`{text}` is not one of the accepted values: {} (swish for silu), or \
                 leaky_relu(α), thresholded_relu(α), elu(α), affine(α,β), scaled_tanh(α,β), \
                 hard_sigmoid(α,β)",
                names.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests;
