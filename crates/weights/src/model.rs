//! Recognising RNN weights by their tensor names and bringing them to the canonical layout
//! (PyTorch's), with the options the file records.

use std::path::Path;

use candle_core::DType;
use rnn_core::{LayerWeights, MaskedSteps};

use crate::config::{LayerConfig, Recorded, StackConfig};
use crate::error::{Result, WeightsError};
use crate::file::TensorFile;
use crate::load_plan::{in_file_layout, load_plan, Loaded, TensorMapping};
use crate::naming::{Naming, Plan};
use crate::selection::Selection;

/// RNN weights read from a file, in the canonical layout, with the options the file records.
#[derive(Debug, Clone)]
pub struct LoadedWeights {
    /// The naming scheme the file was recognised by.
    pub naming: Naming,
    /// `weights[k][d]`: layer `k`, direction `d` (0 forward, 1 reverse).
    pub weights: Vec<Vec<LayerWeights>>,
    /// What the file records of the model beyond its weights, one layer configuration per
    /// layer picked (where it records them).
    pub recorded: Recorded,
    /// Where each canonical tensor came from.
    pub mapping: Vec<TensorMapping>,
}

/// Where the user picks no RNN, what a Keras file records: the stack of a `.keras` config,
/// bottom first (`Some`), or a refusal when the model has layers rnn does not run.
fn recorded_selection(file: &TensorFile, selection: &Selection) -> Result<Option<Selection>> {
    use crate::readers::keras::{NOT_RUN, STACK};
    if selection.picks_layers() {
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
                "rnn does not run this Keras model whole, for its layers {not_run}; to run its \
                 recurrent layers alone, pick them: {pick}"
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
        let recorded = match file.recorded() {
            Some(recorded) => recorded.for_layers(file.path(), weights.len())?,
            None => Recorded::from_metadata(file.path(), file.metadata(), weights.len())?,
        };
        let model = LoadedWeights {
            naming: plan.naming,
            weights,
            recorded,
            mapping,
        };
        check_leftovers(file, &plan, &model)?;
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

    /// The stack these weights make with `config` ([`StackConfig::build`], which checks each
    /// layer's input against the output of the layer below, merge modes known).
    ///
    /// # Errors
    /// [`WeightsError::Shape`] naming the file's tensor, in the file's layout, when a layer's
    /// input size is not what the layer below gives; [`WeightsError::Tensor`] for the other
    /// ways weights and configuration fail to form a stack.
    pub fn build(&self, file: &TensorFile, config: &StackConfig) -> Result<rnn_core::Rnn> {
        config.build(&self.weights).map_err(|e| {
            self.misfit(file, config).unwrap_or_else(|| {
                let why = format!("the weights do not form a valid RNN: {e}");
                file.tensor_error(candle_core::Error::Msg(why))
            })
        })
    }

    /// After [`StackConfig::build`] failed: the file's tensor to blame when the failure is a
    /// layer whose `W_ih` does not take the output of the layer below (the sizes are checked in
    /// `rnn_core::Rnn::with_layer_options`; this only finds the tensor behind them).
    pub(crate) fn misfit(&self, file: &TensorFile, config: &StackConfig) -> Option<WeightsError> {
        let options = config.layers_for(self.weights.len())?;
        let below = self.weights.iter().zip(&options);
        for (k, ((below, config), layer)) in below.zip(self.weights.iter().skip(1)).enumerate() {
            let want = config
                .options()
                .output_size(below.len(), below[0].w_hh.dims()[0]);
            for (d, cell) in layer.iter().enumerate() {
                let &[hidden, inputs] = cell.w_ih.dims() else {
                    continue;
                };
                if inputs == want {
                    continue;
                }
                let target = format!("weight_ih_l{}{}", k + 1, ["", "_reverse"][d.min(1)]);
                let source = self.mapping.iter().find(|m| m.target == target)?;
                let why = format!("{want} input features, the output of layer {k}");
                let expected = in_file_layout(hidden, want, source.transform, &why);
                let found = file.raw(&source.source).map(|t| t.dims().to_vec());
                return Some(file.shape_error(
                    &source.source,
                    expected,
                    &found.unwrap_or_default(),
                ));
            }
        }
        None
    }

    /// The configuration the file records, with its framework's defaults for the rest:
    /// what runs when the user adds no flag. Sequence inputs are batch-first as
    /// [`LoadedWeights::batch_first_by_default`] says.
    pub fn recorded_config(&self) -> StackConfig {
        let recorded = &self.recorded;
        StackConfig {
            layers: recorded
                .layers
                .clone()
                .unwrap_or_else(|| vec![LayerConfig::default(); self.weights.len()]),
            masked_steps: self.masked_steps_by_default(),
            batch_first: Some(self.batch_first_by_default()),
            mask_value: recorded.mask_value,
            input_mask: recorded.input_mask.clone(),
        }
    }

    /// What the outputs hold past a sequence's length unless the user says otherwise: as the
    /// file's metadata says, else as its framework does (Keras repeats the last valid output;
    /// PyTorch and TensorFlow give zeros).
    pub fn masked_steps_by_default(&self) -> MaskedSteps {
        self.recorded.masked_steps.unwrap_or(match self.naming {
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
        self.recorded
            .batch_first
            .unwrap_or(self.naming.batch_first_by_default())
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
