//! The inputs in a tensor file, in the two forms `rnn` reads: step form (`X0`, `X1`, …, one
//! `[batch, features]` tensor per step, as the tutorial feeds them) and sequence form
//! (`input`), each with optional `h0` and `lengths` (or TF's `sequence_length`). The outputs of
//! each form are named in `expected.rs`.

use std::path::Path;

use candle_core::{DType, Tensor};

use crate::config::StackConfig;
use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

/// How the inputs of a file are laid out, and so how its outputs are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `X<t>` in, `Y<t>` out, each `[batch, features]`.
    Steps,
    /// `input` `[seq, batch, features]` (or batch-first) and `h0` in; `output` and `h_n` out.
    Sequence,
}

/// The inputs found in a file.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Which form they were in.
    pub form: Form,
    /// Step form: the steps stacked time-major, `[seq, batch, features]`. Sequence form: the
    /// `input` tensor as stored (time-major or batch-first, as the user says).
    pub input: Tensor,
    /// The initial state, `[layers · directions, batch, hidden]`, if the file has one.
    pub h0: Option<Tensor>,
    /// Valid steps of each sequence (`lengths` `[batch]`, int64), if the file has them.
    pub lengths: Option<Vec<usize>>,
    /// The names of the tensors used.
    pub names: Vec<String>,
    /// Keras's step mask `[batch][steps]` where it does more than end the sequences (front
    /// padding, holes), for a run under it ([`rnn_core::around::run_masked`]); set by
    /// [`Inputs::apply_masks`].
    pub mask: Option<rnn_core::around::StepMask>,
}

impl Inputs {
    /// Applies the masks `config` records to these inputs, or refuses the run:
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
        &mut self,
        config: &StackConfig,
        batch_first: bool,
    ) -> std::result::Result<(), String> {
        if let Some(mask_value) = config.mask_value {
            match rnn_core::lengths_from_mask(&self.input, mask_value, batch_first) {
                Ok(from_mask) => {
                    if let Some(given) = &self.lengths {
                        if *given != from_mask {
                            return Err(format!(
                                "lengths {given:?} disagree with the mask of value \
                                 {mask_value}, which gives {from_mask:?}"
                            ));
                        }
                    }
                    self.lengths = Some(from_mask);
                }
                // Masked steps before valid ones: Keras skips them with the state carried,
                // which a run under the whole mask does, from a state of zeros.
                Err(_)
                    if batch_first
                        && self.input.rank() == 3
                        && self.h0.is_none()
                        && self.lengths.is_none() =>
                {
                    self.mask = Some(
                        rnn_core::step_mask(&self.input, mask_value).map_err(|e| e.to_string())?,
                    );
                }
                Err(e) => {
                    return Err(format!(
                        "{e} (a run from h0 or given lengths, or with time-major inputs, skips \
                         only those)"
                    ))
                }
            }
        }
        match &config.input_mask {
            Some(layer) if self.lengths.is_none() => Err(format!(
                "the model masks steps before its RNN at {layer}, which the input vectors \
                 cannot show (Keras skips the masked steps); give each sequence's count of \
                 unmasked steps as `lengths` (a tensor beside the input, or lengths= in Python), \
                 which holds where the padding is at the end"
            )),
            _ => Ok(()),
        }
    }

    /// The same inputs on `device`.
    pub fn to_device(&self, device: &candle_core::Device) -> candle_core::Result<Self> {
        Ok(Self {
            input: self.input.to_device(device)?,
            h0: self.h0.as_ref().map(|h| h.to_device(device)).transpose()?,
            ..self.clone()
        })
    }

    /// Finds the inputs in a file: `input` (sequence form) or `X0`, `X1`, … (step form).
    /// `None` when the file has neither.
    pub fn from_file(file: &TensorFile, dtype: DType) -> Result<Option<Self>> {
        // Both forms take an initial state and lengths, as TF1's dynamic_rnn and static_rnn do.
        let h0 = file.float_opt("h0", dtype)?;
        let lengths = read_lengths(file)?;
        let mut extras = Vec::new();
        if h0.is_some() {
            extras.push("h0".to_string());
        }
        if let Some((name, _)) = &lengths {
            extras.push(name.to_string());
        }
        let lengths = lengths.map(|(_, l)| l);
        if file.contains("input") {
            // Integers are token ids, kept as they are for a model that embeds them
            // ([`crate::Model::prepare`] refuses them for any other).
            let input = match file.raw("input") {
                Some(ids) if ids.dtype().is_int() => ids.clone(),
                _ => file.float("input", dtype)?,
            };
            if input.elem_count() == 0 {
                // No steps, no sequences or no features: nothing to run, and a shape that
                // holds no data may claim any batch (the states are one per sequence).
                return Err(file.shape_error(
                    "input",
                    "with at least one step of one sequence (torch.nn.RNN requires one)".into(),
                    input.dims(),
                ));
            }
            let mut names = vec!["input".to_string()];
            names.extend(extras);
            return Ok(Some(Self {
                form: Form::Sequence,
                input,
                h0,
                lengths,
                names,
                mask: None,
            }));
        }
        let mut names = step_names(file, "X");
        if names.is_empty() {
            return Ok(None);
        }
        let steps = names
            .iter()
            .map(|n| file.float(n, dtype))
            .collect::<Result<Vec<_>>>()?;
        for (name, step) in names.iter().zip(&steps) {
            let first = steps[0].dims();
            if step.rank() != 2 || step.dims() != first {
                let expected = if first.len() == 2 {
                    format!("{first:?} like X0 ([batch, features])")
                } else {
                    "[batch, features]".into()
                };
                return Err(file.shape_error(name, expected, step.dims()));
            }
        }
        let input = Tensor::stack(&steps, 0).map_err(|e| file.tensor_error(e))?;
        names.extend(extras);
        Ok(Some(Self {
            form: Form::Steps,
            input,
            h0,
            lengths,
            names,
            mask: None,
        }))
    }

    /// The inputs with those the model's own file fixes (metadata `model_inputs`: an ONNX
    /// model's `initial_h` and `sequence_lens` initialisers, read as `h0` and `lengths`).
    /// Inputs that give one of them too are refused: the model's value is not theirs to
    /// change, and a silently different one would be a wrong number.
    pub fn with_model_inputs(mut self, model: &TensorFile, dtype: DType) -> Result<Self> {
        let Some(fixed) = model.metadata().get(MODEL_INPUTS) else {
            return Ok(self);
        };
        for name in fixed.split(',') {
            let given = match name {
                "h0" => self.h0.is_some(),
                "lengths" => self.lengths.is_some(),
                other => {
                    return Err(WeightsError::Metadata {
                        path: model.path().to_owned(),
                        key: MODEL_INPUTS.into(),
                        expected: "h0 and/or lengths".into(),
                        found: other.into(),
                    })
                }
            };
            if given {
                return Err(WeightsError::Value {
                    path: model.path().to_owned(),
                    name: name.into(),
                    reason: "the model fixes it (an ONNX initialiser), and the inputs give it \
                             too; remove it from the inputs"
                        .into(),
                });
            }
            if name == "h0" {
                self.h0 = Some(model.float("h0", dtype)?);
            } else {
                self.lengths = read_lengths(model)?.map(|(_, l)| l);
            }
        }
        Ok(self)
    }

    /// Like [`Inputs::from_file`], failing when the file has no inputs.
    pub fn require(file: &TensorFile, dtype: DType) -> Result<Self> {
        Self::from_file(file, dtype)?.ok_or_else(|| WeightsError::Unrecognised {
            path: file.path().to_owned(),
            what: "no inputs found: expected `input` [seq, batch, features] (sequence form) \
                   or `X0`, `X1`, … [batch, features] (step form)"
                .into(),
            found: file.names(),
        })
    }
}

/// The metadata key naming the inputs a model file fixes (`h0`, `lengths`).
pub const MODEL_INPUTS: &str = "model_inputs";

/// The valid steps of each sequence, with the name they were found under: `lengths`, or
/// TensorFlow's own name `sequence_length`. Integers, rank 1, none negative.
fn read_lengths(file: &TensorFile) -> Result<Option<(&'static str, Vec<usize>)>> {
    let name = match (file.contains("lengths"), file.contains("sequence_length")) {
        (false, false) => return Ok(None),
        (true, true) => {
            return Err(WeightsError::Unrecognised {
                path: file.path().to_owned(),
                what: "both `lengths` and `sequence_length` give the sequences' lengths; keep one"
                    .into(),
                found: file.names(),
            })
        }
        (true, false) => "lengths",
        (false, true) => "sequence_length",
    };
    match file.raw(name) {
        Some(t) => lengths_from(file.path(), name, t).map(|l| Some((name, l))),
        None => Err(lengths_dtype_error(
            file.path(),
            name,
            file.dtype_name(name).unwrap_or_default(),
        )),
    }
}

/// The counts in tensor `name` (`lengths` or `sequence_length`) read from `path`: integers,
/// rank 1, none negative.
pub(crate) fn lengths_from(path: &Path, name: &str, t: &Tensor) -> Result<Vec<usize>> {
    if t.dtype().is_float() {
        return Err(lengths_dtype_error(
            path,
            name,
            crate::dtype::name(t.dtype()),
        ));
    }
    if t.rank() != 1 {
        return Err(WeightsError::Shape {
            path: path.to_owned(),
            name: name.into(),
            expected: "[batch]".into(),
            found: t.dims().to_vec(),
        });
    }
    let values = t
        .to_dtype(DType::I64)
        .and_then(|t| t.to_vec1::<i64>())
        .map_err(|error| WeightsError::Tensor {
            path: path.to_owned(),
            error,
        })?;
    values
        .iter()
        .enumerate()
        .map(|(b, &v)| {
            usize::try_from(v).map_err(|_| WeightsError::Value {
                path: path.to_owned(),
                name: name.into(),
                reason: format!("element [{b}] is {v}; lengths cannot be negative"),
            })
        })
        .collect()
}

/// The error for a lengths tensor `name` of `path` whose dtype `found` is not an integer one.
pub(crate) fn lengths_dtype_error(path: &Path, name: &str, found: String) -> WeightsError {
    WeightsError::Dtype {
        path: path.to_owned(),
        name: name.into(),
        expected: "an integer dtype (I64, I32, U32, U8)".into(),
        found,
    }
}

/// `prefix0`, `prefix1`, … for as long as they are present.
pub(crate) fn step_names(file: &TensorFile, prefix: &str) -> Vec<String> {
    (0..)
        .map(|t| format!("{prefix}{t}"))
        .take_while(|n| file.contains(n))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn inputs(steps: Vec<f32>) -> Inputs {
        let n = steps.len() / 2;
        Inputs {
            form: Form::Sequence,
            input: Tensor::from_vec(steps, (1, n, 2), &candle_core::Device::Cpu).unwrap(),
            h0: None,
            lengths: None,
            names: vec!["input".into()],
            mask: None,
        }
    }

    /// A Masking mask with a hole runs under the step mask; a mask the input cannot show
    /// (made before the RNN) still needs lengths, hole or not.
    #[test]
    fn a_hole_gives_a_step_mask_and_a_hidden_mask_still_needs_lengths() {
        let holed = vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0];
        let masking = StackConfig {
            mask_value: Some(0.0),
            ..StackConfig::default()
        };
        let mut x = inputs(holed.clone());
        x.apply_masks(&masking, true).unwrap();
        assert_eq!(x.mask, Some(vec![vec![true, false, true]]));
        assert_eq!(x.lengths, None);
        let hidden = StackConfig {
            input_mask: Some("`embedding` (Embedding, mask_zero=True)".into()),
            ..masking.clone()
        };
        let err = inputs(holed).apply_masks(&hidden, true).unwrap_err();
        assert!(err.contains("give each sequence's count"), "{err}");
        // A mask that ends the sequence is its lengths.
        let mut x = inputs(vec![1.0, 1.0, 0.0, 0.0]);
        x.apply_masks(&masking, true).unwrap();
        assert_eq!((x.lengths, x.mask), (Some(vec![1]), None));
    }
}
