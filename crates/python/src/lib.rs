//! The `rnn` Python module's native part (`rnn._rnn`): `load` reads a weights file through
//! rnn-weights with the CLI's reading options (by their long names, as keywords), and a
//! `Model` runs it on numpy arrays with the GIL released. The pure-Python package around it
//! (`python/rnn/`) re-exports these and adds `rnn.dask`.
//!
//! Copies: an input is copied once into the tensor rnn-core computes on (candle tensors own
//! their storage, and this crate has no `unsafe` to borrow numpy's), and the output once out
//! of it into a vector numpy adopts without copying again.

mod arrays;
mod device;
mod error;
mod model;
mod options;

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::DType;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rnn_weights::TensorFile;

use crate::device::devices;
use crate::error::{message, rnn_error, RnnError};
use crate::model::{build, Model, Stream};
use crate::options::parse_options;

/// Loads the RNN in the file at `path` (safetensors, torch, ONNX, Keras, TF checkpoint, …).
///
/// Keywords: the `rnn` CLI's reading options by their long names: `nonlinearity` (one name, or
/// one per layer), `go_backwards`, `merge_mode`, `masked_steps` (`"zeros"`,
/// `"repeat-last"`), `mask_value`, `clip`, `batch_first`, `time_major`, `weights_format`,
/// `prefix`, `stack`, `dtype` (`"float32"`, `"float64"`; by default each call computes in its
/// input's dtype), `device` (`"cpu"`, `"cuda"`, `"cuda:N"`).
///
/// Raises `TypeError` for a keyword that is none of these, and `rnn.RnnError` (a `ValueError`)
/// with the CLI's message for a file, a structure or an option rnn cannot use.
#[pyfunction]
#[pyo3(signature = (path, **options))]
fn load(py: Python<'_>, path: PathBuf, options: Option<&Bound<'_, PyDict>>) -> PyResult<Model> {
    let options = parse_options(options)?;
    let dtype = options.dtype.unwrap_or(DType::F32);
    let read = options.read;
    let device = options.device;
    let (file, first) = py
        .detach(|| -> Result<_, String> {
            let file =
                TensorFile::read(&path).map_err(|e| format!("cannot read the model: {e}"))?;
            let first = build(&file, dtype, &read, &device)?;
            Ok((file, first))
        })
        .map_err(rnn_error)?;
    warn_notes(py, &file, dtype, &[])?;
    Ok(Model {
        file,
        read,
        dtype: options.dtype,
        device,
        device_name: options.device_name,
        f32: OnceLock::new(),
        f64: OnceLock::new(),
        first,
    })
}

/// Writes the RNN in the file at `path` to `output`, as its extension says
/// ([`rnn_weights::Target`]): `.safetensors` (the canonical layout, every option in its
/// metadata), `.pt`/`.pth` (a `torch.save` state_dict of `torch.nn.RNN`), `.onnx`, `.keras`
/// or `.weights.h5`, in the source's precision where the target keeps it.
///
/// Keywords: `load`'s reading options (not `dtype` or `device`). Returns, for every target but
/// the canonical layout, the Python that loads the file in its framework
/// ([`rnn_weights::Converted::loader`]), else `None`.
///
/// Raises `rnn.RnnError` for a file rnn cannot read and for what the target cannot express
/// (named; nothing is written), `TypeError` for an unknown keyword.
#[pyfunction]
#[pyo3(signature = (path, output, **options))]
fn convert(
    py: Python<'_>,
    path: PathBuf,
    output: PathBuf,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<String>> {
    if let Some(options) = options {
        for (key, value) in options.iter() {
            let key: String = key.extract()?;
            let taken = crate::options::OPTIONS.contains(&key.as_str())
                && !matches!(key.as_str(), "dtype" | "device");
            if !taken && !value.is_none() {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "convert() got an unexpected keyword argument '{key}' (it writes the \
                     source's precision, on no device); the options are load()'s reading options"
                )));
            }
        }
    }
    let read = parse_options(options)?.read;
    let target = rnn_weights::Target::for_path(&output).map_err(rnn_error)?;
    let (file, converted) = py
        .detach(|| -> Result<_, String> {
            let file =
                TensorFile::read(&path).map_err(|e| format!("cannot read the weights: {e}"))?;
            let converted =
                rnn_weights::convert(&file, &read, &output, target).map_err(|e| message(&e))?;
            Ok((file, converted))
        })
        .map_err(rnn_error)?;
    warn_notes(py, &file, converted.dtype, &converted.notes)?;
    Ok(converted.loader(&output))
}

/// What the file's notes say about running it in `dtype` ([`rnn_weights::notes`]), and `more`,
/// as `UserWarning`s (shown once per call site by Python's default filters).
fn warn_notes(py: Python<'_>, file: &TensorFile, dtype: DType, more: &[String]) -> PyResult<()> {
    for note in rnn_weights::notes(file, dtype).iter().chain(more) {
        let note = rnn_weights::clip(note, rnn_weights::MESSAGE_CHARS).into_owned();
        let message = std::ffi::CString::new(note).map_err(rnn_error)?;
        let category = py.get_type::<pyo3::exceptions::PyUserWarning>();
        PyErr::warn(py, &category, &message, 1)?;
    }
    Ok(())
}

/// The `rnn._rnn` extension module.
#[pymodule]
fn _rnn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_class::<Model>()?;
    m.add_class::<Stream>()?;
    m.add("RnnError", m.py().get_type::<RnnError>())?;
    Ok(())
}
