//! Every file the frameworks write, read for [`rnn_core`] (README's table of files): recognises
//! RNN weights by their tensor names, converts every foreign naming and layout to the
//! canonical one (PyTorch's `nn.RNN`) with the model's typed configuration ([`StackConfig`],
//! what the file records: [`Recorded`]), reads the inputs and expected outputs that `rnn run`
//! and `rnn check` use, runs them through the one pipeline the CLI and the Python module share
//! ([`Model`]), and holds results against those references as `numpy.allclose` does
//! ([`compare`]).
//!
//! # Example
//!
//! ```no_run
//! use candle_core::{DType, Device};
//! use rnn_weights::{Form, Inputs, LoadedWeights, Model, ReadOptions, TensorFile};
//!
//! let file = TensorFile::read("models/seed/article.safetensors".as_ref())?;
//! let weights = LoadedWeights::select(&file, DType::F32, &Default::default())?;
//! println!("{} input features, hidden sizes {:?}", weights.input_size(), weights.hidden_sizes());
//! let model = Model::new(&file, &weights, &ReadOptions::default(), Form::Steps, &Device::Cpu)?;
//! let inputs = Inputs::require(&file, DType::F32)?; // the article's X0, X1
//! let inputs = model.prepare(inputs, file.path(), true)?;
//! let run = model.run(&inputs, false).map_err(|error| rnn_weights::WeightsError::Tensor {
//!     path: file.path().to_owned(),
//!     error,
//! })?;
//! for (name, tensor) in &run.named {
//!     println!("{name}: {tensor}"); // Y0, Y1: the article's table
//! }
//! # Ok::<(), rnn_weights::WeightsError>(())
//! ```

mod canonical;
mod chunked;
mod compare;
mod config;
mod convert;
mod dtype;
mod error;
mod expected;
mod file;
mod header_checks;
mod inputs;
mod keras_save;
mod load_plan;
mod model;
mod naming;
mod npy;
mod npz;
mod onnx_program;
mod onnx_save;
mod options;
mod pipeline;
mod readers;
mod selection;
mod text;
mod torch_save;
mod whole;
mod write;

pub use canonical::save_canonical;
pub use chunked::{ArrayFile, ArrayWriter};
pub use compare::{compare, non_finite, Comparison, NonFinite, Tolerance};
pub use config::{
    one_or_each, split_entries, Graph, LayerConfig, Node, OnnxNodes, Part, PartKind, Recorded,
    Source, StackConfig, CANONICAL_LAYOUT,
};
pub use convert::{convert, Converted, Target};
pub use error::{clip, Result, WeightsError, MESSAGE_CHARS, QUOTED_CHARS};
pub use expected::{expected_named, expected_outputs, name_outputs, Expected, F64_SUFFIX};
pub use file::{FileFormat, TensorFile};
pub use inputs::{Form, Inputs, MODEL_INPUTS};
pub use keras_save::{save_keras, save_keras_weights, KerasModel, KERAS_VERSION};
pub use load_plan::TensorMapping;
pub use model::LoadedWeights;
pub use naming::{Naming, Transform};
pub use onnx_save::{save_onnx, OnnxRnn, OPSET};
pub use options::ReadOptions;
pub use pipeline::{keras_last_step_output, Model, Run, Stream};
pub use readers::keras::compute_dtype_note;
pub use readers::notes;
pub use selection::{weight_names, Selection};
pub use text::numpy::{array2string, PrintOptions};
pub use text::{write_json, JSON_SCHEMA_VERSION};
pub use torch_save::{save_torch, torch_rnn, TorchRnn};
pub use write::{write_atomically, write_safetensors, write_tensors};
