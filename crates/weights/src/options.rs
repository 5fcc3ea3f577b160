//! The reading options, as plain data: what the CLI's reading flags (and the Python module's
//! keywords) say over what a weights file records. The CLI turns its clap structs into
//! [`ReadOptions`]; both then configure a model through [`LoadedWeights::stack_config`], so the
//! flags mean the same everywhere.

use rnn_core::{MaskedSteps, MergeMode, Nonlinearity, TimeOrder};

use crate::config::{one_or_each, StackConfig};
use crate::error::{Result, WeightsError};
use crate::inputs::Form;
use crate::model::LoadedWeights;
use crate::selection::Selection;

/// How to read and configure a model: each field left at its default (empty, `None`, `false`)
/// keeps what the file records, else its framework's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// Activation: one for every layer, or one per layer (`--nonlinearity`).
    pub nonlinearity: Vec<Nonlinearity>,
    /// Every one-direction layer reads its sequence from the end (Keras's `go_backwards`).
    pub go_backwards: bool,
    /// How each bidirectional layer joins its directions: one for every layer, or one per
    /// layer (`--merge-mode`).
    pub merge_mode: Vec<MergeMode>,
    /// What the outputs hold past a sequence's length (`--masked-steps`).
    pub masked_steps: Option<MaskedSteps>,
    /// Keras's `Masking(mask_value)` before the RNN (`--mask-value`).
    pub mask_value: Option<f64>,
    /// ONNX's `clip`: one positive bound for every layer, or one per layer (`--clip`).
    pub clip: Vec<f64>,
    /// `Some(true)`: sequence inputs are `[batch, seq, features]` (`--batch-first`);
    /// `Some(false)`: `[seq, batch, features]` (`--time-major`); `None`: the file's default.
    pub batch_first: Option<bool>,
    /// Which RNN of the file to read (`--weights-format`, `--prefix`, `--stack`).
    pub selection: Selection,
}

/// One value for every layer, or one per layer, from an option that takes either.
fn per_layer<T: Copy>(option: &'static str, values: &[T], layers: usize) -> Result<Vec<T>> {
    one_or_each(values, layers).ok_or_else(|| WeightsError::Option {
        option,
        reason: format!(
            "expected one value or {layers} (one per layer of the model), found {}",
            values.len()
        ),
    })
}

impl LoadedWeights {
    /// The stack's configuration for inputs of `form`: each option, else the file's metadata,
    /// else its framework's default.
    ///
    /// # Errors
    /// [`WeightsError::Option`] when an option does not fit the model: a per-layer list of the
    /// wrong length, `merge_mode` without a bidirectional layer, `go_backwards` with only
    /// bidirectional ones, a `clip` bound that is not positive.
    pub fn stack_config(&self, read: &ReadOptions, form: Form) -> Result<StackConfig> {
        let layers = self.weights.len();
        let mut config = self.recorded_config();
        if !read.nonlinearity.is_empty() {
            // The option names one activation per layer, for both of its directions.
            let each = per_layer("nonlinearity", &read.nonlinearity, layers)?;
            for (layer, n) in config.layers.iter_mut().zip(each) {
                layer.nonlinearity = n;
                layer.nonlinearity_reverse = n;
            }
        }
        if !read.merge_mode.is_empty() {
            if self.weights.iter().all(|l| l.len() == 1) {
                return Err(WeightsError::Option {
                    option: "merge_mode",
                    reason: "this model has no bidirectional layer, whose directions it joins"
                        .into(),
                });
            }
            let modes = per_layer("merge_mode", &read.merge_mode, layers)?;
            for (layer, mode) in config.layers.iter_mut().zip(modes) {
                layer.merge_mode = mode;
            }
        }
        if read.go_backwards {
            if self.weights.iter().all(|l| l.len() == 2) {
                return Err(WeightsError::Option {
                    option: "go_backwards",
                    reason: "every layer of this model is bidirectional; Keras's go_backwards \
                             applies to one-direction layers"
                        .into(),
                });
            }
            for (k, (layer, dirs)) in config.layers.iter_mut().zip(&self.weights).enumerate() {
                if layer.time == TimeOrder::Reverse {
                    return Err(WeightsError::Option {
                        option: "go_backwards",
                        reason: format!(
                            "layer {k} already reads its sequence from the end, as the file \
                             records (ONNX's direction=reverse, outputs in time order); \
                             go_backwards would put its outputs in processing order: choose one"
                        ),
                    });
                }
                if dirs.len() == 1 {
                    layer.time = TimeOrder::GoBackwards;
                }
            }
        }
        if let Some(masked_steps) = read.masked_steps {
            config.masked_steps = masked_steps;
        }
        if read.mask_value.is_some() {
            config.mask_value = read.mask_value;
        }
        if !read.clip.is_empty() {
            if let Some(c) = read.clip.iter().find(|c| c.is_nan() || **c <= 0.0) {
                return Err(WeightsError::Option {
                    option: "clip",
                    reason: format!("expected a positive bound, found {c}"),
                });
            }
            let each = per_layer("clip", &read.clip, layers)?;
            for (layer, clip) in config.layers.iter_mut().zip(each) {
                layer.clip = Some(clip);
            }
        }
        config.batch_first = Some(self.batch_first(read, form));
        Ok(config)
    }

    /// Whether sequence inputs are batch-first: the option, else the file's metadata, else its
    /// framework's default. Step-form inputs are stacked time-major whatever the options say.
    pub fn batch_first(&self, read: &ReadOptions, form: Form) -> bool {
        match (form, read.batch_first) {
            (Form::Steps, _) => false,
            (Form::Sequence, Some(batch_first)) => batch_first,
            (Form::Sequence, None) => self.batch_first_by_default(),
        }
    }
}
