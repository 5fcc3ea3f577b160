//! TensorFlow checkpoints: the input's first 4 bytes (little-endian) give the length of the
//! `.index` table that follows; the rest is the one data shard. Both are written beside each
//! other and read by their prefix, then recognised, loaded and built. Seeds: the fixtures in
//! `tests/fixtures/files/` in this form.
#![no_main]

use candle_core::DType;
use libfuzzer_sys::fuzz_target;
use rnn_weights::{LoadedWeights, TensorFile};

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (index, shard) = rest.split_at(len);
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let prefix = dir.path().join("ck");
    let written = std::fs::write(dir.path().join("ck.index"), index)
        .and_then(|()| std::fs::write(dir.path().join("ck.data-00000-of-00001"), shard));
    if written.is_err() {
        return;
    }
    let Ok(file) = TensorFile::read(&prefix) else {
        return;
    };
    let Ok(model) = LoadedWeights::from_file(&file, DType::F32, None) else {
        return;
    };
    let _ = rnn_core::Rnn::from_weights(&model.weights, rnn_core::Nonlinearity::Tanh);
});
