//! Every file the frameworks write, read for [`rnn_core`] (README's table of files): recognises
//! RNN weights by their tensor names,
//! converts every foreign naming and layout to the canonical one (PyTorch's `nn.RNN`), and
//! reads the inputs and expected outputs that `rnn run` and `rnn check` use, and holds results
//! against those references as `numpy.allclose` does ([`compare`]).
//!
//! # Example
//!
//! ```no_run
//! use candle_core::DType;
//! use rnn_weights::LoadedWeights;
//!
//! let model = LoadedWeights::read("models/seed/article.safetensors".as_ref(), DType::F32)?;
//! println!("{} input features, hidden sizes {:?}", model.input_size(), model.hidden_sizes());
//! # Ok::<(), rnn_weights::WeightsError>(())
//! ```

mod canonical;
mod chunked;
mod compare;
mod config;
mod dtype;
mod error;
mod expected;
mod file;
mod header_checks;
mod inputs;
mod load_plan;
mod model;
mod naming;
mod npy;
mod npz;
mod options;
mod pipeline;
mod readers;
mod selection;
mod text;
mod write;

pub use canonical::save_canonical;
pub use chunked::{ArrayFile, ArrayWriter};
pub use compare::{compare, non_finite, Comparison, NonFinite, Tolerance};
pub use config::{
    one_or_each, split_entries, LayerConfig, Recorded, StackConfig, CANONICAL_LAYOUT,
};
pub use error::{clip, Result, WeightsError, MESSAGE_CHARS, QUOTED_CHARS};
pub use expected::{expected_outputs, name_outputs, Expected, F64_SUFFIX};
pub use file::{FileFormat, TensorFile};
pub use inputs::{Form, Inputs, MODEL_INPUTS};
pub use load_plan::TensorMapping;
pub use model::LoadedWeights;
pub use naming::{Naming, Transform};
pub use options::ReadOptions;
pub use pipeline::{Model, Run};
pub use readers::keras::compute_dtype_note;
pub use readers::notes;
pub use selection::{weight_names, Selection};
pub use text::numpy::{array2string, PrintOptions};
pub use text::{write_json, JSON_SCHEMA_VERSION};
pub use write::{write_atomically, write_safetensors, write_tensors};
