//! tf-keras SavedModel folders: the input's first 8 bytes (two little-endian u32) give the
//! lengths of the `variables/variables.index` table and of `keras_metadata.pb` that follow; the
//! rest is the one data shard. They are laid out as tf-keras writes them (with an empty
//! `saved_model.pb`) and the folder read: the object graph walked, the Keras metadata parsed,
//! the model config read, then the weights loaded and built. Seeds: the SavedModel fixtures of
//! `tests/fixtures/files/` in this form.
#![no_main]

use candle_core::DType;
use libfuzzer_sys::fuzz_target;
use rnn_weights::{LoadedWeights, TensorFile};

fuzz_target!(|data: &[u8]| {
    let Some((index_len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Some((metadata_len, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let index_len = (u32::from_le_bytes(*index_len) as usize).min(rest.len());
    let (index, rest) = rest.split_at(index_len);
    let metadata_len = (u32::from_le_bytes(*metadata_len) as usize).min(rest.len());
    let (metadata, shard) = rest.split_at(metadata_len);
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let folder = dir.path();
    let variables = folder.join("variables");
    let written = std::fs::create_dir(&variables)
        .and_then(|()| std::fs::write(folder.join("saved_model.pb"), b""))
        .and_then(|()| std::fs::write(folder.join("keras_metadata.pb"), metadata))
        .and_then(|()| std::fs::write(variables.join("variables.index"), index))
        .and_then(|()| std::fs::write(variables.join("variables.data-00000-of-00001"), shard));
    if written.is_err() {
        return;
    }
    let Ok(file) = TensorFile::read(folder) else {
        return;
    };
    let Ok(model) = LoadedWeights::from_file(&file, DType::F32, None) else {
        return;
    };
    let _ = rnn_core::Rnn::from_weights(&model.weights, rnn_core::Nonlinearity::Tanh);
});
