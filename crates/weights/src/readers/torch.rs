//! PyTorch's `torch.save` files: state_dicts, zip (since 1.6) and legacy pickle.

use std::path::Path;

use crate::error::Result;
use crate::file::TensorFile;

/// Reads a state_dict saved by `torch.save`.
pub(crate) fn read(path: &Path, _bytes: &[u8]) -> Result<TensorFile> {
    Err(super::not_yet(
        path,
        "a PyTorch torch.save file",
        "save the state_dict as safetensors (safetensors.torch.save_file(model.state_dict(), \
         \"model.safetensors\"))",
    ))
}
