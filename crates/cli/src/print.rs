//! What `rnn` prints: tensors the way numpy prints them, and the JSON forms.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};
use rnn_weights::PrintOptions;
use serde::Serialize;

/// Version of the JSON objects `rnn` prints (`--format json`, `--stream --format json`).
pub const SCHEMA_VERSION: u32 = 1;

/// Writes results to stdout in one piece.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Formats a tensor as numpy's `str()` does under `options` (see
/// [`rnn_weights::array2string`]).
pub fn numpy_string(t: &Tensor, options: &PrintOptions) -> Result<String> {
    Ok(rnn_weights::array2string(t, options)?)
}

/// A tensor in the JSON outputs: name, shape and values in row-major order. f32 values are
/// written in their shortest f32 form; NaN and infinities as `null`.
#[derive(Serialize)]
pub struct JsonTensor {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    values: JsonValues,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonValues {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl JsonTensor {
    /// Reads the tensor's values.
    pub fn new(name: &str, t: &Tensor) -> Result<Self> {
        let flat = t.flatten_all()?;
        let values = if t.dtype() == DType::F64 {
            JsonValues::F64(flat.to_vec1()?)
        } else {
            JsonValues::F32(flat.to_dtype(DType::F32)?.to_vec1()?)
        };
        Ok(Self {
            name: name.to_string(),
            shape: t.dims().to_vec(),
            dtype: format!("{:?}", t.dtype()).to_lowercase(),
            values,
        })
    }
}

#[cfg(test)]
mod tests;
