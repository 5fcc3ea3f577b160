//! The weights loader: any bytes as a safetensors file, recognised, loaded and built.
#![no_main]

use std::path::Path;

use candle_core::DType;
use libfuzzer_sys::fuzz_target;
use rnn_weights::{LoadedWeights, TensorFile};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = TensorFile::from_safetensors_bytes(Path::new("fuzz.safetensors"), data) else {
        return;
    };
    let Ok(model) = LoadedWeights::from_file(&file, DType::F32, None) else {
        return;
    };
    let _ = (model.input_size(), model.hidden_sizes(), model.num_directions(), model.has_bias());
    let _ = rnn_core::Rnn::from_weights(&model.weights, rnn_core::Nonlinearity::Tanh);
});
