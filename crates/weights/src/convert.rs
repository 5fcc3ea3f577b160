//! `rnn convert` and `rnn.convert`: the RNN a file holds, configured with the user's options,
//! written as another file by the output's extension ([`Target`]): the canonical safetensors
//! layout, a PyTorch state_dict, an ONNX graph or a Keras model. The CLI and the Python
//! module both call [`convert`].

use std::path::Path;

use candle_core::DType;

use crate::canonical::save_canonical;
use crate::error::{Result, WeightsError};
use crate::file::TensorFile;
use crate::inputs::{Form, MODEL_INPUTS};
use crate::keras_save::{save_keras, save_keras_weights, KerasModel};
use crate::model::LoadedWeights;
use crate::naming::Naming;
use crate::onnx_save::{save_onnx, OnnxRnn};
use crate::options::ReadOptions;
use crate::torch_save::{save_torch, TorchRnn};

/// What a conversion writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `.safetensors`: the canonical layout, every option in its metadata.
    Canonical,
    /// `.pt`, `.pth`: a `torch.save` state_dict of `torch.nn.RNN`.
    Torch,
    /// `.onnx`: a graph of ONNX `RNN` nodes with PyTorch's inputs and outputs.
    Onnx,
    /// `.keras`: a Keras 3 `Sequential` model of `SimpleRNN` and `Bidirectional` layers.
    Keras,
    /// `.weights.h5`: that model's weights alone, as `model.save_weights` writes them.
    KerasWeights,
}

impl Target {
    /// The target an output's extension names (case-insensitive).
    ///
    /// # Errors
    /// For any other extension, or none: the message lists what is written.
    pub fn for_path(path: &Path) -> std::result::Result<Self, String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if name.ends_with(".weights.h5") {
            return Ok(Target::KerasWeights);
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("safetensors") => Ok(Target::Canonical),
            Some("pt" | "pth") => Ok(Target::Torch),
            Some("onnx") => Ok(Target::Onnx),
            Some("keras") => Ok(Target::Keras),
            _ => Err(format!(
                "{}: rnn convert writes .safetensors (the canonical layout, every option \
                 recorded), .pt or .pth (a torch.save state_dict of nn.RNN), .onnx (a graph of \
                 ONNX RNN nodes), .keras (a Keras 3 model) and .weights.h5 (its weights); name \
                 the output so",
                path.display()
            )),
        }
    }
}

/// What [`convert`] wrote.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The naming the source was read by.
    pub naming: Naming,
    /// Canonical tensors written.
    pub tensors: usize,
    /// The element type written: float64 where the source holds float64 weights, else float32.
    pub dtype: DType,
    /// For a PyTorch target, the module the state_dict fits.
    pub torch: Option<TorchRnn>,
    /// For an ONNX target, the graph's inputs and outputs.
    pub onnx: Option<OnnxRnn>,
    /// For a Keras target, the model's input and outputs.
    pub keras: Option<KerasModel>,
    /// What the user should know about the file written (one sentence each, naming the
    /// source): a layout taken from the framework's default where the source records none.
    pub notes: Vec<String>,
}

impl Converted {
    /// The Python that loads the file written at `output` into its framework (`torch`, or
    /// `onnxruntime`), where the target is one.
    pub fn loader(&self, output: &Path) -> Option<String> {
        if let Some(module) = &self.torch {
            return Some(format!(
                "import torch\nrnn = {module}\nrnn.load_state_dict(torch.load({:?}, weights_only=True))",
                output.display().to_string()
            ));
        }
        if let Some(model) = &self.keras {
            return Some(model.loader(output));
        }
        self.onnx.as_ref().map(|graph| graph.loader(output))
    }
}

/// Writes the RNN that `read` picks and configures from `file` at `output`, as `target`, in
/// the source's precision (float64 where the file holds float64 weights, else float32).
///
/// # Errors
/// [`WeightsError::Unwritable`] for a file that fixes inputs (an ONNX graph's `initial_h` or
/// `sequence_lens` initialisers), which neither target keeps; as [`LoadedWeights::select`]
/// and [`LoadedWeights::stack_config`]; when the weights and
/// options do not form a valid stack; what the target cannot express
/// ([`crate::torch_rnn`]); an I/O error.
pub fn convert(
    file: &TensorFile,
    read: &ReadOptions,
    output: &Path,
    target: Target,
) -> Result<Converted> {
    let format = match target {
        Target::Canonical => "the canonical layout",
        Target::Torch => "a PyTorch nn.RNN state_dict",
        Target::Onnx => "an ONNX graph of RNN nodes",
        Target::Keras | Target::KerasWeights => "a Keras model",
    };
    if let (Some(graph), false) = (file.graph(), read.selection.picks_layers()) {
        // The converted file would hold the RNN alone: run as the model, a wrong number.
        return Err(WeightsError::Unwritable {
            path: output.to_owned(),
            format,
            reason: format!(
                "{} is a whole model, with layers around its RNN ({}) that rnn convert does \
                 not write yet; to convert the RNN alone, {}",
                file.path().display(),
                graph.around().join(", "),
                graph.alone()
            ),
        });
    }
    if let Some(fixed) = file.metadata().get(MODEL_INPUTS) {
        // Neither file keeps an ONNX graph's fixed h0 or sequence_lens: the converted model
        // would start from zeros, a wrong number with nothing said.
        return Err(WeightsError::Unwritable {
            path: output.to_owned(),
            format,
            reason: format!(
                "{} fixes {fixed} (ONNX initialisers), which the converted file would not keep; \
                 export the graph with h0 and sequence_lens as inputs, or run the .onnx file itself",
                file.path().display()
            ),
        });
    }
    let model = LoadedWeights::select(file, DType::F32, &read.selection)?;
    let wide = model
        .mapping
        .iter()
        .any(|m| file.raw(&m.source).is_some_and(|t| t.dtype() == DType::F64));
    let model = if wide {
        LoadedWeights::select(file, DType::F64, &read.selection)?
    } else {
        model
    };
    let config = model.stack_config(read, Form::Sequence)?;
    let mut notes = Vec::new();
    let unrecorded = model.recorded.batch_first.is_none() && read.batch_first.is_none();
    if unrecorded && model.naming == Naming::Pytorch {
        // nn.RNN's batch_first is the constructor's, which a state_dict does not record.
        notes.push(format!(
            "{} records no batch_first: the converted model takes [seq_len, batch, features] \
             (nn.RNN's default); convert with --batch-first if the source was built with \
             batch_first=True",
            file.path().display()
        ));
    }
    // Each writer builds the stack first, refusing weights that do not form it; a layer that
    // does not take the output of the one below is named as the source file holds it.
    let misfit = |e| match e {
        WeightsError::Tensor { .. } => model.misfit(file, &config).unwrap_or(e),
        e => e,
    };
    let (mut torch, mut onnx, mut keras) = (None, None, None);
    match target {
        Target::Canonical => {
            save_canonical(output, &model.weights, &config, &[]).map_err(misfit)?
        }
        Target::Torch => torch = Some(save_torch(output, &model.weights, &config).map_err(misfit)?),
        Target::Onnx => onnx = Some(save_onnx(output, &model.weights, &config).map_err(misfit)?),
        Target::Keras => keras = Some(save_keras(output, &model.weights, &config).map_err(misfit)?),
        Target::KerasWeights => {
            keras = Some(save_keras_weights(output, &model.weights, &config).map_err(misfit)?)
        }
    }
    Ok(Converted {
        naming: model.naming,
        tensors: model.mapping.len(),
        dtype: if wide { DType::F64 } else { DType::F32 },
        torch,
        onnx,
        keras,
        notes,
    })
}
