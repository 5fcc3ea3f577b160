//! The torch.save reader (zip and legacy pickle): any bytes as a `.pt` file, sniffed, read, recognised and built.
//! The readers take the bytes from a file, so each input is written to one first.
#![no_main]

use candle_core::DType;
use libfuzzer_sys::fuzz_target;
use rnn_weights::{LoadedWeights, TensorFile};

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("rnn-fuzz-{}.pt", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(file) = TensorFile::read(&path) else {
        return;
    };
    let Ok(model) = LoadedWeights::from_file(&file, DType::F32, None) else {
        return;
    };
    let _ = (model.input_size(), model.hidden_sizes(), model.num_directions());
    let _ = rnn_core::Rnn::from_weights(&model.weights, rnn_core::Nonlinearity::Tanh);
});
