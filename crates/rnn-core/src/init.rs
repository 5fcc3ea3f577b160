//! Seeded random weights, drawn as PyTorch draws them: uniform(−1/√H, 1/√H).

use candle_core::{DType, Device, Result, Tensor};

use crate::layer::LayerWeights;

/// What to draw: the shape of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitConfig {
    /// Features per input step.
    pub input_size: usize,
    /// Hidden size of each layer; its length is the number of layers.
    pub hidden_sizes: Vec<usize>,
    /// Two directions per layer instead of one.
    pub bidirectional: bool,
    /// Draw `b_ih` and `b_hh` too.
    pub bias: bool,
}

impl InitConfig {
    /// Directions per layer: 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Each layer's `(input features, hidden size)`: `input_size` for layer 0, then
    /// `directions · hidden_sizes[k-1]`.
    pub fn layer_sizes(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let inputs = std::iter::once(self.input_size).chain(
            self.hidden_sizes
                .iter()
                .map(|&h| self.directions().saturating_mul(h)),
        );
        inputs.zip(self.hidden_sizes.iter().copied())
    }

    /// Parameters of the stack: per layer and direction `H·I + H·H (+ 2H)`; `None` on
    /// overflow.
    pub fn parameter_count(&self) -> Option<u128> {
        let directions = self.directions() as u128;
        self.layer_sizes()
            .try_fold(0u128, |total, (input, hidden)| {
                let (i, h) = (input as u128, hidden as u128);
                let bias = if self.bias { 2 * h } else { 0 };
                let cell = h
                    .checked_mul(i)?
                    .checked_add(h.checked_mul(h)?)?
                    .checked_add(bias)?;
                total.checked_add(cell.checked_mul(directions)?)
            })
    }
}

/// Draws weights for every layer and direction from a seeded generator, in PyTorch's order
/// (`w_ih`, `w_hh`, `b_ih`, `b_hh`, layer by layer, forward before reverse).
///
/// The same seed gives the same weights on every platform and version: the generator is
/// SplitMix64, written here, not a library's whose stream may change. The values are drawn
/// in f64 and converted to `dtype`.
///
/// # Shapes
/// Returns `weights[k][d]` for layer `k`, direction `d`, with `H = hidden_sizes[k]`:
/// `w_ih` `[H, I]` where `I` is `input_size` for layer 0 and `directions · hidden_sizes[k-1]`
/// after it, `w_hh` `[H, H]`, and with `bias` `b_ih`, `b_hh` `[H]`. Every value is within
/// `±1/√H`.
///
/// # Example
///
/// ```
/// use candle_core::{DType, Device};
/// use rnn_core::{uniform_weights, InitConfig, Nonlinearity, Rnn};
///
/// let config = InitConfig {
///     input_size: 3,
///     hidden_sizes: vec![4, 4],
///     bidirectional: false,
///     bias: true,
/// };
/// let weights = uniform_weights(&config, 7, DType::F32, &Device::Cpu)?;
/// assert_eq!(weights[1][0].w_ih.dims(), &[4, 4]); // layer 1 reads layer 0's 4 features
///
/// // PyTorch's bound for hidden size 4: 1/√4 = 0.5.
/// let largest = weights[0][0].w_ih.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(largest > 0.0 && largest <= 0.5);
///
/// // Same seed, same weights; another seed, other weights.
/// let again = uniform_weights(&config, 7, DType::F32, &Device::Cpu)?;
/// let other = uniform_weights(&config, 8, DType::F32, &Device::Cpu)?;
/// let w = |ws: &[Vec<rnn_core::LayerWeights>]| ws[0][0].w_hh.flatten_all()?.to_vec1::<f32>();
/// assert_eq!(w(&weights)?, w(&again)?);
/// assert_ne!(w(&weights)?, w(&other)?);
///
/// let rnn = Rnn::from_weights(&weights, Nonlinearity::Tanh)?;
/// assert_eq!(rnn.hidden_sizes(), [4, 4]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn uniform_weights(
    config: &InitConfig,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Vec<Vec<LayerWeights>>> {
    let mut rng = SplitMix64(seed);
    let directions = config.directions();
    let mut layers = Vec::with_capacity(config.hidden_sizes.len());
    for (input_size, hidden) in config.layer_sizes() {
        let bound = 1.0 / (hidden.max(1) as f64).sqrt();
        let mut draw = |dims: &[usize]| -> Result<Tensor> {
            let n = dims.iter().product();
            let values: Vec<f64> = (0..n)
                .map(|_| (rng.next_unit() * 2.0 - 1.0) * bound)
                .collect();
            Tensor::from_vec(values, dims, device)?.to_dtype(dtype)
        };
        let mut dirs = Vec::with_capacity(directions);
        for _ in 0..directions {
            let w_ih = draw(&[hidden, input_size])?;
            let w_hh = draw(&[hidden, hidden])?;
            let (b_ih, b_hh) = if config.bias {
                (Some(draw(&[hidden])?), Some(draw(&[hidden])?))
            } else {
                (None, None)
            };
            dirs.push(LayerWeights {
                w_ih,
                w_hh,
                b_ih,
                b_hh,
            });
        }
        layers.push(dirs);
    }
    Ok(layers)
}

/// Steele, Lea and Flood's SplitMix64: small, fast and well distributed for drawing weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `weights` (per layer, per direction) as [`candle_core::Var`]s' tensors, which record
/// gradients: the tests' stacks whose runs track them.
#[cfg(test)]
pub(crate) fn as_variables(weights: &[Vec<LayerWeights>]) -> Vec<Vec<LayerWeights>> {
    let var = |t: &Tensor| {
        candle_core::Var::from_tensor(t)
            .unwrap()
            .as_tensor()
            .clone()
    };
    weights
        .iter()
        .map(|directions| {
            directions
                .iter()
                .map(|w| LayerWeights {
                    w_ih: var(&w.w_ih),
                    w_hh: var(&w.w_hh),
                    b_ih: w.b_ih.as_ref().map(var),
                    b_hh: w.b_hh.as_ref().map(var),
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
