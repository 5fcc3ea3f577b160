//! Recognising RNN weights by their tensor names and bringing them to the canonical layout
//! (PyTorch's), with the options the file records.

use std::path::Path;

use candle_core::DType;
use rnn_core::{LayerOptions, LayerWeights, MaskedSteps, MergeMode, Nonlinearity};

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;
use crate::load_plan::{load_plan, Loaded, TensorMapping};
use crate::naming::{Naming, Plan};
use crate::selection::Selection;
use crate::stack_config::{key, per_layer, StackConfig};

/// RNN weights read from a file, in the canonical layout, with the options the file records.
#[derive(Debug, Clone)]
pub struct LoadedWeights {
    /// The naming scheme the file was recognised by.
    pub naming: Naming,
    /// `weights[k][d]`: layer `k`, direction `d` (0 forward, 1 reverse).
    pub weights: Vec<Vec<LayerWeights>>,
    /// Each layer's activation, if the file's metadata records it.
    pub nonlinearity: Option<Vec<Nonlinearity>>,
    /// Each layer's activation of its reverse direction, where the metadata records one
    /// (ONNX's `activations` per direction); else the reverse direction has the forward's.
    pub nonlinearity_reverse: Option<Vec<Nonlinearity>>,
    /// Each layer's clamp of the pre-activation (ONNX's `clip`), if the metadata records it.
    pub clip: Option<Vec<Option<f64>>>,
    /// Each layer's Keras `go_backwards`, if the file's metadata records it.
    pub go_backwards: Option<Vec<bool>>,
    /// Each layer's ONNX `direction=reverse`, if the file's metadata records it.
    pub reverse: Option<Vec<bool>>,
    /// Each layer's Keras `merge_mode`, if the file's metadata records it.
    pub merge_mode: Option<Vec<MergeMode>>,
    /// What the outputs hold past a sequence's length, if the file's metadata records it.
    pub masked_steps: Option<MaskedSteps>,
    /// Keras's `Masking(mask_value)` before the RNN, if the file's metadata records one: a
    /// step whose features all equal it is masked.
    pub mask_value: Option<f64>,
    /// A mask made before the RNN that its input cannot show, if the file's metadata records
    /// one ([`StackConfig::input_mask`]).
    pub input_mask: Option<String>,
    /// Whether the file's metadata says inputs are batch-first, if it says.
    pub batch_first: Option<bool>,
    /// Where each canonical tensor came from.
    pub mapping: Vec<TensorMapping>,
}

/// Where the user picks no RNN, what a Keras file records: the stack of a `.keras` config,
/// bottom first (`Some`), or a refusal when the model has layers rnn does not run.
fn recorded_selection(file: &TensorFile, selection: &Selection) -> Result<Option<Selection>> {
    use crate::readers::keras::{NOT_RUN, STACK};
    if selection.prefix.is_some() || !selection.stack.is_empty() {
        return Ok(None);
    }
    let meta = file.metadata();
    let stack = meta.get(STACK);
    if let Some(not_run) = meta.get(NOT_RUN) {
        let pick = match stack {
            Some(stack) => format!("--stack {stack}"),
            None => "--prefix LAYER/ (or --stack LAYER/,LAYER/)".into(),
        };
        return Err(WeightsError::Unrecognised {
            path: file.path().to_owned(),
            what: format!(
                "the Keras model has layers with weights that are not a SimpleRNN stack fed by \
                 its input, which rnn does not run ({not_run}); to run its recurrent layers \
                 alone, pick them: {pick}"
            ),
            found: file.names(),
        });
    }
    Ok(stack.map(|stack| Selection {
        stack: stack.split(',').map(str::to_string).collect(),
        ..selection.clone()
    }))
}

impl LoadedWeights {
    /// Reads a weights file and recognises its format by tensor names.
    pub fn read(path: &Path, dtype: DType) -> Result<Self> {
        Self::from_file(&TensorFile::read(path)?, dtype, None)
    }

    /// Recognises the naming scheme of an already read file (only `naming`, when given) and
    /// loads the weights converted to `dtype`. More than one possible reading is an error that
    /// lists them.
    pub fn from_file(file: &TensorFile, dtype: DType, naming: Option<Naming>) -> Result<Self> {
        let selection = Selection {
            naming,
            ..Selection::default()
        };
        Self::select(file, dtype, &selection)
    }

    /// Reads the RNN that `selection` picks from an already read file, converted to `dtype`.
    ///
    /// # Errors
    /// When the names (under the selection) hold no RNN, more than one, or one whose
    /// structure they do not settle: [`WeightsError::Ambiguous`] lists each candidate with the
    /// flags that pick it. Also when a tensor is missing, of the wrong shape or dtype, or the
    /// metadata cannot be read.
    pub fn select(file: &TensorFile, dtype: DType, selection: &Selection) -> Result<Self> {
        let recorded = recorded_selection(file, selection)?;
        let plan = crate::selection::choose(file, recorded.as_ref().unwrap_or(selection))?;
        let Loaded { weights, mapping } = load_plan(file, &plan, dtype)?;
        let mut model = LoadedWeights {
            naming: plan.naming,
            weights,
            nonlinearity: None,
            nonlinearity_reverse: None,
            clip: None,
            go_backwards: None,
            reverse: None,
            merge_mode: None,
            masked_steps: None,
            mask_value: None,
            input_mask: None,
            batch_first: None,
            mapping,
        };
        check_leftovers(file, &plan, &model)?;
        model.read_metadata(file)?;
        Ok(model)
    }

    /// The names of the file's tensors that this model uses.
    pub fn source_names(&self) -> Vec<&str> {
        self.mapping.iter().map(|m| m.source.as_str()).collect()
    }

    /// Features per input step.
    pub fn input_size(&self) -> usize {
        self.weights[0][0].w_ih.dims()[1]
    }

    /// Hidden size of each layer.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        self.weights.iter().map(|l| l[0].w_hh.dims()[0]).collect()
    }

    /// 2 when layer 0 is bidirectional, else 1.
    pub fn num_directions(&self) -> usize {
        self.weights[0].len()
    }

    /// The configuration the file records, with its framework's defaults for the rest:
    /// what runs when the user adds no flag. Sequence inputs are batch-first as
    /// [`LoadedWeights::batch_first_by_default`] says.
    pub fn recorded_config(&self) -> StackConfig {
        let layers = self.weights.len();
        let go_backwards = self
            .go_backwards
            .clone()
            .unwrap_or_else(|| vec![false; layers]);
        let merge_mode = self
            .merge_mode
            .clone()
            .unwrap_or_else(|| vec![MergeMode::Concat; layers]);
        let reverse = self.reverse.clone().unwrap_or_else(|| vec![false; layers]);
        StackConfig {
            nonlinearity: self.nonlinearity.clone().unwrap_or_default(),
            nonlinearity_reverse: self.nonlinearity_reverse.clone().unwrap_or_default(),
            clip: self.clip.clone().unwrap_or_default(),
            layer_options: go_backwards
                .into_iter()
                .zip(merge_mode)
                .zip(reverse)
                .map(|((go_backwards, merge_mode), reverse)| LayerOptions {
                    go_backwards,
                    merge_mode,
                    reverse,
                })
                .collect(),
            masked_steps: self.masked_steps_by_default(),
            batch_first: Some(self.batch_first_by_default()),
            mask_value: self.mask_value,
            input_mask: self.input_mask.clone(),
        }
    }

    /// What the outputs hold past a sequence's length unless the user says otherwise: as the
    /// file's metadata says, else as its framework does (Keras repeats the last valid output;
    /// PyTorch and TensorFlow give zeros).
    pub fn masked_steps_by_default(&self) -> MaskedSteps {
        self.masked_steps.unwrap_or(match self.naming {
            Naming::Keras => MaskedSteps::RepeatLast,
            _ => MaskedSteps::Zeros,
        })
    }

    /// Whether the layers have a bias.
    pub fn has_bias(&self) -> bool {
        self.weights[0][0].b_ih.is_some() || self.weights[0][0].b_hh.is_some()
    }

    /// Whether sequence inputs are batch-first unless the user says otherwise: as the file's
    /// metadata says, else as its framework does by default.
    pub fn batch_first_by_default(&self) -> bool {
        self.batch_first
            .unwrap_or(self.naming.batch_first_by_default())
    }

    fn read_metadata(&mut self, file: &TensorFile) -> Result<()> {
        let meta = file.metadata();
        let bad = |key: &str, expected: &str, found: &str| WeightsError::Metadata {
            path: file.path().to_owned(),
            key: key.into(),
            expected: expected.into(),
            found: found.into(),
        };
        let layers = self.weights.len();
        let names = Nonlinearity::ALL.map(|n| format!("\"{n}\""));
        let expected = format!(
            "one of {}, or a parametrised one such as \"leaky_relu(0.1)\" (or one per layer)",
            names.join(", ")
        );
        if let Some(v) = meta.get(key::NONLINEARITY) {
            self.nonlinearity = Some(
                per_layer(v, layers, Nonlinearity::from_name)
                    .ok_or_else(|| bad(key::NONLINEARITY, &expected, v))?,
            );
        }
        if let Some(v) = meta.get(key::NONLINEARITY_REVERSE) {
            self.nonlinearity_reverse = Some(
                per_layer(v, layers, Nonlinearity::from_name)
                    .ok_or_else(|| bad(key::NONLINEARITY_REVERSE, &expected, v))?,
            );
        }
        if let Some(v) = meta.get(key::CLIP) {
            let expected = "a positive number or \"none\" (or one per layer)";
            let parse = |c: &str| match c {
                "none" => Some(None),
                c => c.parse::<f64>().ok().filter(|c| *c > 0.0).map(Some),
            };
            self.clip =
                Some(per_layer(v, layers, parse).ok_or_else(|| bad(key::CLIP, expected, v))?);
        }
        if let Some(v) = meta.get(key::GO_BACKWARDS) {
            let expected = "\"true\" or \"false\" (or one per layer)";
            self.go_backwards = Some(
                per_layer(v, layers, |b| b.parse().ok())
                    .ok_or_else(|| bad(key::GO_BACKWARDS, expected, v))?,
            );
        }
        if let Some(v) = meta.get(key::REVERSE) {
            let expected = "\"true\" or \"false\" (or one per layer)";
            self.reverse = Some(
                per_layer(v, layers, |b| b.parse().ok())
                    .ok_or_else(|| bad(key::REVERSE, expected, v))?,
            );
        }
        if let Some(v) = meta.get(key::MERGE_MODE) {
            let expected = "concat, sum, ave, mul or none (or one per layer)";
            self.merge_mode = Some(
                per_layer(v, layers, MergeMode::from_name)
                    .ok_or_else(|| bad(key::MERGE_MODE, expected, v))?,
            );
        }
        if let Some(v) = meta.get(key::MASK_VALUE) {
            let m: f64 = v.parse().map_err(|_| bad(key::MASK_VALUE, "a number", v))?;
            self.mask_value = Some(m);
        }
        self.input_mask = meta.get(key::INPUT_MASK).cloned();
        if let Some(v) = meta.get(key::MASKED_STEPS) {
            let m = MaskedSteps::from_name(v)
                .ok_or_else(|| bad(key::MASKED_STEPS, "\"zeros\" or \"repeat-last\"", v))?;
            self.masked_steps = Some(m);
        }
        if let Some(v) = meta.get(key::BATCH_FIRST) {
            let b = v
                .parse()
                .map_err(|_| bad(key::BATCH_FIRST, "\"true\" or \"false\"", v))?;
            self.batch_first = Some(b);
        }
        Ok(())
    }
}

/// PyTorch names are regular enough to spot one that the plan did not use (`weight_ih_l1_reverse`
/// in a file whose layer 0 has no reverse direction): such a file is refused, not half read.
fn check_leftovers(file: &TensorFile, plan: &Plan, model: &LoadedWeights) -> Result<()> {
    check_biases(file, plan)?;
    if plan.naming != Naming::Pytorch {
        return Ok(());
    }
    let used: std::collections::HashSet<&str> = model.source_names().into_iter().collect();
    let stray = file.names().into_iter().find(|n| {
        n.strip_prefix(plan.prefix.as_str())
            .is_some_and(|rest| rest.starts_with("weight_") || rest.starts_with("bias_"))
            && !used.contains(&n.as_str())
    });
    match stray {
        None => Ok(()),
        Some(name) => Err(WeightsError::Unrecognised {
            path: file.path().to_owned(),
            what: format!(
                "tensor `{name}` does not fit the {}-layer, {}-direction PyTorch RNN that \
                 weight_ih_l0{} describe",
                model.weights.len(),
                model.num_directions(),
                if model.num_directions() == 2 {
                    " and weight_ih_l0_reverse"
                } else {
                    ""
                }
            ),
            found: file.names(),
        }),
    }
}

/// A bias missing from some cells and not others is a tensor lost, not a structure:
/// `torch.nn.RNN`'s `bias` is one flag for every layer and direction, and the two directions
/// of a Keras `Bidirectional` layer share their `use_bias`. (One cell with `bias_ih` alone is
/// a structure of its own: this crate's canonical files keep Keras's one bias that way.)
fn check_biases(file: &TensorFile, plan: &Plan) -> Result<()> {
    let has = |c: &crate::naming::CellPlan| (c.b_ih.is_some(), c.b_hh.is_some());
    let uneven = match plan.naming {
        Naming::Pytorch => {
            let first = has(&plan.layers[0][0]);
            plan.layers.iter().flatten().find(|c| has(c) != first)
        }
        _ => plan
            .layers
            .iter()
            .find(|l| l.iter().any(|c| has(c) != has(&l[0])))
            .and_then(|l| l.iter().find(|c| has(c).0)),
    };
    let Some(cell) = uneven else {
        return Ok(());
    };
    Err(WeightsError::Unrecognised {
        path: file.path().to_owned(),
        what: format!(
            "the {} RNN that `{}` belongs to has a bias in some cells and not in others; a \
             bias tensor is missing",
            plan.naming.as_str(),
            cell.w_ih.name
        ),
        found: file.names(),
    })
}
