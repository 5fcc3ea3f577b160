//! The canonical file: weights in PyTorch's layout under PyTorch's names, with the stack's
//! configuration in `__metadata__` ([`Recorded::to_metadata`]).

use std::path::Path;

use candle_core::Tensor;
use rnn_core::LayerWeights;

use crate::config::{key, StackConfig, CANONICAL_LAYOUT};
use crate::error::{Result, WeightsError};
use crate::write::write_safetensors;

#[cfg(doc)]
use crate::config::Recorded;

/// The stack's tensors under `torch.nn.RNN`'s names, in its order (`weight_ih_l0`,
/// `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, then `_reverse`, then the next layer). A cell
/// without a bias has none, or zeros where `fill_biases` (`nn.RNN`'s `bias` is one flag).
pub(crate) fn state_dict(
    weights: &[Vec<LayerWeights>],
    fill_biases: bool,
) -> candle_core::Result<Vec<(String, Tensor)>> {
    let mut tensors = Vec::new();
    for (k, dirs) in weights.iter().enumerate() {
        for (d, w) in dirs.iter().enumerate() {
            let suffix = if d == 1 { "_reverse" } else { "" };
            tensors.push((format!("weight_ih_l{k}{suffix}"), w.w_ih.clone()));
            tensors.push((format!("weight_hh_l{k}{suffix}"), w.w_hh.clone()));
            let zeros = || w.w_hh.narrow(1, 0, 1)?.flatten_all()?.zeros_like();
            for (kind, bias) in [("ih", &w.b_ih), ("hh", &w.b_hh)] {
                let bias = match bias {
                    Some(b) => b.clone(),
                    None if fill_biases => zeros()?,
                    None => continue,
                };
                tensors.push((format!("bias_{kind}_l{k}{suffix}"), bias));
            }
        }
    }
    Ok(tensors)
}

/// Saves weights in the canonical layout (PyTorch's names) with the configuration in
/// `__metadata__`: `layout`, `input_size`, `hidden_size` (comma-separated, one per layer),
/// `num_layers`, `bidirectional`, `bias`, and what [`Recorded::to_metadata`] writes
/// (`nonlinearity`, `masked_steps`, and where they are set `nonlinearity_reverse`, `clip`,
/// `go_backwards`, `reverse`, `merge_mode`, `batch_first`, `mask_value`, `input_mask`).
/// Extra tensors (inputs, expected outputs) may be stored beside them.
///
/// # Errors
/// When the weights and configuration do not form a valid stack
/// ([`StackConfig::build`]), and when the file cannot be written.
pub fn save_canonical(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
    extra: &[(String, Tensor)],
) -> Result<()> {
    // Built to check that the configuration fits the weights before anything is written.
    config.check_writable(path, weights)?;
    let first = &weights[0][0]; // a valid Rnn has at least one layer and direction
    let mut tensors = state_dict(weights, false).map_err(|error| WeightsError::Tensor {
        path: path.to_owned(),
        error,
    })?;
    tensors.extend(extra.iter().cloned());
    let hidden: Vec<String> = weights
        .iter()
        .map(|l| l[0].w_hh.dims()[0].to_string())
        .collect();
    let mut meta = config.recorded(weights).to_metadata();
    meta.extend([
        (key::LAYOUT.to_string(), CANONICAL_LAYOUT.to_string()),
        (key::INPUT_SIZE.into(), first.w_ih.dims()[1].to_string()),
        (key::HIDDEN_SIZE.into(), hidden.join(",")),
        (key::NUM_LAYERS.into(), weights.len().to_string()),
        (
            key::BIDIRECTIONAL.into(),
            (weights[0].len() == 2).to_string(),
        ),
        (
            key::BIAS.into(),
            (first.b_ih.is_some() || first.b_hh.is_some()).to_string(),
        ),
    ]);
    if weights.iter().any(|l| l.len() != weights[0].len()) {
        let directions: Vec<String> = weights.iter().map(|l| l.len().to_string()).collect();
        meta.insert(key::DIRECTIONS.into(), directions.join(","));
    }
    write_safetensors(path, &tensors, meta)
}
