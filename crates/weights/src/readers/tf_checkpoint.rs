//! TensorFlow checkpoints (tensor bundles): TF1 `tf.train.Saver` and TF2
//! `tf.train.Checkpoint`, a `NAME.index` table beside `NAME.data-*` shards.

use std::path::Path;

use crate::error::Result;
use crate::file::TensorFile;

/// Reads the checkpoint with this prefix.
pub(crate) fn read(prefix: &Path) -> Result<TensorFile> {
    Err(super::not_yet(
        prefix,
        "a TensorFlow checkpoint",
        "save the variables as safetensors (safetensors.numpy.save_file)",
    ))
}
