//! Keras 3's files: any bytes written to a file and read as `rnn` reads a model (the first
//! bytes pick the reader: HDF5 for `.weights.h5`, a zip with `config.json` for `.keras`),
//! then recognised, loaded and built. Seeds: the fixtures in `tests/fixtures/files/`.
#![no_main]

use candle_core::DType;
use libfuzzer_sys::fuzz_target;
use rnn_weights::{LoadedWeights, TensorFile};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("m.keras");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(file) = TensorFile::read(&path) else {
        return;
    };
    let Ok(model) = LoadedWeights::from_file(&file, DType::F32, None) else {
        return;
    };
    let _ = rnn_core::Rnn::from_weights(&model.weights, rnn_core::Nonlinearity::Tanh);
});
