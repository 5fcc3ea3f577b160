//! Keras 3's files: `model.save("m.keras")` (a zip of `config.json` and `model.weights.h5`)
//! and `model.save_weights("w.weights.h5")` (HDF5).

use std::path::Path;

use crate::error::Result;
use crate::file::TensorFile;

/// Reads a `.keras` archive: weights and the options its config records.
pub(crate) fn read_archive(path: &Path, _bytes: &[u8]) -> Result<TensorFile> {
    Err(super::not_yet(
        path,
        "a Keras .keras archive",
        "save the weights as safetensors: safetensors.numpy.save_file({w.path: w.numpy() for w \
         in model.weights}, \"model.safetensors\")",
    ))
}

/// Reads a `.weights.h5` file.
pub(crate) fn read_weights_h5(path: &Path, _bytes: &[u8]) -> Result<TensorFile> {
    Err(super::not_yet(
        path,
        "an HDF5 file",
        "save the weights as safetensors: safetensors.numpy.save_file({w.path: w.numpy() for w \
         in model.weights}, \"model.safetensors\")",
    ))
}
