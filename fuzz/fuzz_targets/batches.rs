//! The batch reader (`rnn run --batch-size`): any bytes as a .npy or safetensors file (the
//! first byte chooses), its header read, then every array a slice of one axis at a time and
//! its `lengths`, as a batch run reads them. `ArrayFile` reads from disk, so the bytes go to a
//! temporary file first.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use rnn_weights::{ArrayFile, FileFormat};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let format = if choice % 2 == 0 {
        FileFormat::Npy
    } else {
        FileFormat::Safetensors
    };
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(bytes).and_then(|()| file.flush()).is_err() {
        return;
    }
    let Ok(mut arrays) = ArrayFile::open(file.path(), format) else {
        return;
    };
    let _ = arrays.lengths();
    for name in arrays.names() {
        let _ = arrays.float_shape(&name);
        let Some((shape, _)) = arrays.describe(&name) else {
            continue;
        };
        let shape = shape.to_vec();
        for (axis, &len) in shape.iter().enumerate() {
            // The first two entries one at a time, then the rest at once.
            for range in [0..len.min(1), len.min(1)..len.min(2), len.min(2)..len] {
                let _ = arrays.read(&name, axis, range);
            }
        }
        // Out of range: an error, never a panic.
        let _ = arrays.read(&name, shape.len(), 0..1);
        let _ = arrays.read(&name, 0, 0..usize::MAX);
    }
});
