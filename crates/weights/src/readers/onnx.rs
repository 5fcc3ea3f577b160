//! ONNX models: every `RNN` node, with its attributes.

use std::path::Path;

use crate::error::Result;
use crate::file::TensorFile;

/// Reads the RNN nodes of an ONNX model.
pub(crate) fn read(path: &Path, _bytes: &[u8]) -> Result<TensorFile> {
    Err(super::not_yet(
        path,
        "an ONNX model",
        "export the weights as a PyTorch state_dict in safetensors",
    ))
}
