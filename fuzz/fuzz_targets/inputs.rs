//! The input loader: any bytes as a safetensors, .npy, .npz, JSON or CSV file (the first byte
//! chooses), read as inputs and run through a small fixed model in both layouts.
#![no_main]

use std::path::Path;

use candle_core::{DType, Device};
use libfuzzer_sys::fuzz_target;
use rnn_core::{uniform_weights, InitConfig, Nonlinearity, Rnn};
use rnn_weights::{FileFormat, Inputs, TensorFile};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let format = match choice % 5 {
        0 => FileFormat::Npy,
        1 => FileFormat::Safetensors,
        2 => FileFormat::Npz,
        3 => FileFormat::Json,
        _ => FileFormat::Csv,
    };
    let file = TensorFile::from_bytes(Path::new("fuzz.input"), bytes, format);
    let Ok(file) = file else { return };
    let Ok(Some(inputs)) = Inputs::from_file(&file, DType::F32) else {
        return;
    };
    let config = InitConfig {
        input_size: 3,
        hidden_sizes: vec![2, 2],
        bidirectional: choice & 2 == 2,
        bias: true,
    };
    let Ok(weights) = uniform_weights(&config, 1, DType::F32, &Device::Cpu) else {
        return;
    };
    let Ok(rnn) = Rnn::from_weights(&weights, Nonlinearity::Relu) else {
        return;
    };
    let rnn = rnn.with_batch_first(choice & 4 == 4);
    let _ = rnn.forward_states(&inputs.input, inputs.h0.as_ref(), inputs.lengths.as_deref());
});
