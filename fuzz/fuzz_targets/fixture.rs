//! `rnn check`'s fixture reader: any bytes as a fixture holding the article's model, its inputs
//! and expected outputs, run and compared.
#![no_main]

use std::path::Path;

use candle_core::DType;
use libfuzzer_sys::fuzz_target;
use rnn_weights::{
    compare, expected_outputs, name_outputs, Inputs, LoadedWeights, TensorFile, Tolerance,
};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = TensorFile::from_safetensors_bytes(Path::new("fuzz.safetensors"), data) else {
        return;
    };
    let Ok(inputs) = Inputs::require(&file, DType::F32) else {
        return;
    };
    let Ok(expected) = expected_outputs(&file, inputs.form, false) else {
        return;
    };
    let Ok(model) = LoadedWeights::from_file(&file, DType::F32, None) else {
        return;
    };
    // The options the file's metadata records, as `rnn check` runs it without flags.
    let Ok(rnn) = model.recorded_config().build(&model.weights) else {
        return;
    };
    let Ok((output, states)) =
        rnn.forward_states(&inputs.input, inputs.h0.as_ref(), inputs.lengths.as_deref())
    else {
        return;
    };
    let h_n = rnn.stack_states(&states).ok().flatten();
    let Ok(got) = name_outputs(inputs.form, &output, h_n.as_ref()) else {
        return;
    };
    for e in expected {
        if let Some((_, g)) = got.iter().find(|(n, _)| *n == e.name) {
            let _ = compare(g, &e.tensor, Tolerance::default());
        }
    }
});
