//! What `rnn` prints: results to stdout in one piece, tensors the way numpy prints them, and
//! the version of the JSON objects it prints (outputs are `rnn_weights::write_json`'s
//! document, versioned there).

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;
use rnn_weights::PrintOptions;

/// Version of the JSON objects `rnn devices`, `rnn bench` and `rnn run --stream` print with
/// `--format json`.
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

#[cfg(test)]
mod tests;
