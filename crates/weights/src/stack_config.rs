//! A stack's configuration beyond its weights (activations, Keras's and ONNX's options,
//! masking, layout), as the canonical file's metadata records it, and the canonical file's
//! writer.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use rnn_core::{LayerOptions, LayerWeights, MaskedSteps, MergeMode, Nonlinearity};

use crate::error::{Result, WeightsError};
use crate::inputs::Inputs;
use crate::write::write_safetensors;

/// A stack's configuration beyond its weights, as [`save_canonical`] records it.
#[derive(Debug, Clone, Default)]
pub struct StackConfig {
    /// One activation per layer (or one for every layer).
    pub nonlinearity: Vec<Nonlinearity>,
    /// The activation of each layer's reverse direction, one per layer (or one for every
    /// layer); empty: the same as [`StackConfig::nonlinearity`]. One-direction layers ignore
    /// it.
    pub nonlinearity_reverse: Vec<Nonlinearity>,
    /// Each layer's clamp of the pre-activation to `[-clip, clip]` (ONNX's `clip`), one per
    /// layer (or one for every layer); empty: none.
    pub clip: Vec<Option<f64>>,
    /// One entry per layer (or none: PyTorch's behaviour throughout).
    pub layer_options: Vec<LayerOptions>,
    /// What the outputs hold past a sequence's length.
    pub masked_steps: MaskedSteps,
    /// Whether sequence inputs are batch-first, when known.
    pub batch_first: Option<bool>,
    /// Keras's `Masking(mask_value)` before the RNN, if there is one.
    pub mask_value: Option<f64>,
    /// A mask made before the RNN that its input vectors cannot show, if the file records one:
    /// the layer that makes it, in the reader's words (`embedding (Embedding, mask_zero=True)`).
    /// Keras skips the masked steps; a run must be given each sequence's `lengths`
    /// ([`StackConfig::apply_masks`]).
    pub input_mask: Option<String>,
}

/// Metadata keys written by [`save_canonical`] and read back by
/// [`crate::LoadedWeights::from_file`].
pub(crate) mod key {
    pub const LAYOUT: &str = "layout";
    pub const INPUT_SIZE: &str = "input_size";
    pub const HIDDEN_SIZE: &str = "hidden_size";
    pub const NUM_LAYERS: &str = "num_layers";
    pub const BIDIRECTIONAL: &str = "bidirectional";
    pub const BIAS: &str = "bias";
    pub const NONLINEARITY: &str = "nonlinearity";
    pub const NONLINEARITY_REVERSE: &str = "nonlinearity_reverse";
    pub const CLIP: &str = "clip";
    pub const BATCH_FIRST: &str = "batch_first";
    pub const GO_BACKWARDS: &str = "go_backwards";
    pub const REVERSE: &str = "reverse";
    pub const MERGE_MODE: &str = "merge_mode";
    pub const MASKED_STEPS: &str = "masked_steps";
    pub const MASK_VALUE: &str = "mask_value";
    pub const INPUT_MASK: &str = "input_mask";
}

/// The value of the `layout` metadata key in files this crate writes.
pub const CANONICAL_LAYOUT: &str = "rnn/pytorch-v1";

/// The entries of a comma-separated list, trimmed; commas inside parentheses
/// (`affine(2,0.5)`) belong to the entry. `None` where the parentheses do not pair.
pub fn split_entries(value: &str) -> Option<Vec<&str>> {
    let mut entries = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in value.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                entries.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(value[start..].trim());
    (depth == 0).then_some(entries)
}

/// A comma-separated metadata value with one entry for every layer, or one for all of them
/// ([`split_entries`]).
pub(crate) fn per_layer<T: Clone>(
    value: &str,
    layers: usize,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<Vec<T>> {
    let entries = split_entries(value)?;
    let values: Vec<T> = entries.into_iter().map(parse).collect::<Option<_>>()?;
    match values.len() {
        1 => Some(vec![values[0].clone(); layers]),
        n if n == layers => Some(values),
        _ => None,
    }
}

/// `values` as one metadata value: the one value when all are equal, else one per layer.
fn joined<T: PartialEq>(values: &[T], name: impl Fn(&T) -> String) -> String {
    match values.first() {
        Some(first) if values.iter().all(|v| v == first) => name(first),
        _ => values.iter().map(name).collect::<Vec<_>>().join(","),
    }
}

impl StackConfig {
    /// Applies the masks the configuration records to a run's `inputs`, or refuses the run:
    /// Keras's `Masking` ([`StackConfig::mask_value`]) gives each sequence's `lengths` from
    /// its mask ([`rnn_core::lengths_from_mask`], which refuses masks with holes; `lengths` the
    /// inputs also give must agree with it), and a mask the input cannot show
    /// ([`StackConfig::input_mask`]) needs `lengths` given, else the RNN would run over the
    /// padding and give other numbers than the framework, silently. The CLI's and the Python
    /// module's runs both come here.
    ///
    /// # Errors
    /// The refusal in words, without the file's name (the caller adds where the inputs came
    /// from).
    pub fn apply_masks(
        &self,
        inputs: &mut Inputs,
        batch_first: bool,
    ) -> std::result::Result<(), String> {
        if let Some(mask_value) = self.mask_value {
            let from_mask = rnn_core::lengths_from_mask(&inputs.input, mask_value, batch_first)
                .map_err(|e| e.to_string())?;
            if let Some(given) = &inputs.lengths {
                if *given != from_mask {
                    return Err(format!(
                        "lengths {given:?} disagree with the mask of value {mask_value}, which \
                         gives {from_mask:?}"
                    ));
                }
            }
            inputs.lengths = Some(from_mask);
        }
        match &self.input_mask {
            Some(layer) if inputs.lengths.is_none() => Err(format!(
                "the model masks steps before its RNN at {layer}, which the input vectors \
                 cannot show (Keras skips the masked steps); give each sequence's count of \
                 unmasked steps as `lengths` (a tensor beside the input, or lengths= in Python), \
                 which holds where the padding is at the end"
            )),
            _ => Ok(()),
        }
    }

    /// Refuses to feed a stack one step at a time (`--stream`, `--batch-size`,
    /// `Model.stream`) where it masks steps: a mask needs each whole sequence.
    ///
    /// # Errors
    /// The refusal in words, naming the mask.
    pub fn check_stepwise(&self) -> std::result::Result<(), String> {
        let ways = "--stream, --batch-size, Model.stream";
        if let Some(value) = self.mask_value {
            return Err(format!(
                "the model masks steps by their values (a Keras Masking layer, mask value \
                 {value}), which a stream does not apply, nor a run batch by batch ({ways}); \
                 run it on whole inputs"
            ));
        }
        if let Some(layer) = &self.input_mask {
            return Err(format!(
                "the model masks steps before its RNN at {layer}, which a stream cannot apply, \
                 nor a run batch by batch ({ways}); run it on whole inputs with each sequence's \
                 `lengths`"
            ));
        }
        Ok(())
    }

    /// PyTorch's `nn.RNN` with one activation for every layer: no Keras options, zeros past
    /// each sequence's length.
    pub fn uniform(nonlinearity: Nonlinearity, batch_first: Option<bool>) -> Self {
        Self {
            nonlinearity: vec![nonlinearity],
            batch_first,
            ..Self::default()
        }
    }

    /// The stack that `weights` (`weights[k][d]`) make with this configuration; batch-first
    /// when [`StackConfig::batch_first`] says so.
    ///
    /// # Errors
    /// When the activations, clips or layer options are not one for all layers or one per
    /// layer, when a clip is not positive, and as [`rnn_core::Rnn::with_layer_options`].
    pub fn build(&self, weights: &[Vec<LayerWeights>]) -> candle_core::Result<rnn_core::Rnn> {
        let per_layer = |what: &str, n: usize| {
            candle_core::Error::Msg(format!(
                "{what}: expected one value or {} (one per layer), found {n}",
                weights.len()
            ))
        };
        let nonlinearity = match self.nonlinearity.as_slice() {
            [] => vec![Nonlinearity::default(); weights.len()],
            [one] => vec![*one; weights.len()],
            many if many.len() == weights.len() => many.to_vec(),
            many => return Err(per_layer("nonlinearity", many.len())),
        };
        let reverse = match self.nonlinearity_reverse.as_slice() {
            [] => nonlinearity.clone(),
            [one] => vec![*one; weights.len()],
            many if many.len() == weights.len() => many.to_vec(),
            many => return Err(per_layer("nonlinearity_reverse", many.len())),
        };
        let clip = match self.clip.as_slice() {
            [] => vec![None; weights.len()],
            [one] => vec![*one; weights.len()],
            many if many.len() == weights.len() => many.to_vec(),
            many => return Err(per_layer("clip", many.len())),
        };
        let options = match self.layer_options.as_slice() {
            [] => vec![LayerOptions::default(); weights.len()],
            many if many.len() == weights.len() => many.to_vec(),
            many => return Err(per_layer("layer options", many.len())),
        };
        let layers = weights
            .iter()
            .enumerate()
            .map(|(k, dirs)| {
                dirs.iter()
                    .enumerate()
                    .map(|(d, w)| {
                        let n = if d == 1 { reverse[k] } else { nonlinearity[k] };
                        rnn_core::RnnLayer::new(w, n)?.with_clip(clip[k])
                    })
                    .collect::<candle_core::Result<Vec<_>>>()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(rnn_core::Rnn::with_layer_options(layers, options)?
            .with_masked_steps(self.masked_steps)
            .with_batch_first(self.batch_first.unwrap_or(false)))
    }
}

/// Saves weights in the canonical layout (PyTorch's names) with the configuration in
/// `__metadata__`: `layout`, `input_size`, `hidden_size` (comma-separated, one per layer),
/// `num_layers`, `bidirectional`, `bias`, `nonlinearity`, `masked_steps`, and where they are
/// set `nonlinearity_reverse` (where a reverse direction's differs), `clip` (a number or
/// `none`), `go_backwards`, `reverse`, `merge_mode` (one value for all layers, or one per layer),
/// `batch_first`, `mask_value` and `input_mask`. Extra tensors (inputs, expected outputs) may be stored beside them.
pub fn save_canonical(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
    extra: &[(String, Tensor)],
) -> Result<()> {
    let rnn = config
        .build(weights)
        .map_err(|error| WeightsError::Tensor {
            path: path.to_owned(),
            error,
        })?;
    let nonlinearity: Vec<Nonlinearity> =
        rnn.layers().iter().map(|l| l[0].nonlinearity()).collect();
    let reverse: Vec<Nonlinearity> = rnn
        .layers()
        .iter()
        .map(|l| l[l.len() - 1].nonlinearity())
        .collect();
    let clip: Vec<Option<f64>> = rnn.layers().iter().map(|l| l[0].clip()).collect();
    let options = rnn.layer_options();
    let first = &weights[0][0]; // a valid Rnn has at least one layer and direction
    let mut tensors = Vec::new();
    for (k, dirs) in weights.iter().enumerate() {
        for (d, w) in dirs.iter().enumerate() {
            let suffix = if d == 1 { "_reverse" } else { "" };
            tensors.push((format!("weight_ih_l{k}{suffix}"), w.w_ih.clone()));
            tensors.push((format!("weight_hh_l{k}{suffix}"), w.w_hh.clone()));
            if let Some(b) = &w.b_ih {
                tensors.push((format!("bias_ih_l{k}{suffix}"), b.clone()));
            }
            if let Some(b) = &w.b_hh {
                tensors.push((format!("bias_hh_l{k}{suffix}"), b.clone()));
            }
        }
    }
    tensors.extend(extra.iter().cloned());
    let hidden: Vec<String> = weights
        .iter()
        .map(|l| l[0].w_hh.dims()[0].to_string())
        .collect();
    let mut meta = HashMap::from([
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
        (
            key::NONLINEARITY.into(),
            joined(&nonlinearity, Nonlinearity::to_string),
        ),
        (
            key::MASKED_STEPS.into(),
            rnn.masked_steps().as_str().to_string(),
        ),
    ]);
    if reverse != nonlinearity {
        meta.insert(
            key::NONLINEARITY_REVERSE.into(),
            joined(&reverse, Nonlinearity::to_string),
        );
    }
    if clip.iter().any(Option::is_some) {
        let name = |c: &Option<f64>| c.map_or("none".into(), |c| c.to_string());
        meta.insert(key::CLIP.into(), joined(&clip, name));
    }
    if options.iter().any(|o| o.go_backwards) {
        let values: Vec<bool> = options.iter().map(|o| o.go_backwards).collect();
        meta.insert(key::GO_BACKWARDS.into(), joined(&values, bool::to_string));
    }
    if options.iter().any(|o| o.reverse) {
        let values: Vec<bool> = options.iter().map(|o| o.reverse).collect();
        meta.insert(key::REVERSE.into(), joined(&values, bool::to_string));
    }
    if options.iter().any(|o| o.merge_mode != MergeMode::Concat) {
        let values: Vec<MergeMode> = options.iter().map(|o| o.merge_mode).collect();
        meta.insert(
            key::MERGE_MODE.into(),
            joined(&values, |m| m.as_str().to_string()),
        );
    }
    if let Some(b) = config.batch_first {
        meta.insert(key::BATCH_FIRST.into(), b.to_string());
    }
    if let Some(m) = config.mask_value {
        meta.insert(key::MASK_VALUE.into(), m.to_string());
    }
    if let Some(layer) = &config.input_mask {
        meta.insert(key::INPUT_MASK.into(), layer.clone());
    }
    write_safetensors(path, &tensors, meta)
}

#[cfg(test)]
mod tests;
