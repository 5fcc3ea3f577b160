//! NaN and Inf screening (`--strict` and the warnings) looks only at what a run reads: the
//! padding past each sequence's `lengths` is left out, in the input and in the output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::rnn;

/// A safetensors input of `input` [d0, d1, 3] (NaN where `nan` says) and `lengths`.
fn padded_input(dims: [usize; 2], nan: impl Fn(usize, usize) -> bool, lengths: &[i64]) -> Vec<u8> {
    let n = dims[0] * dims[1] * 3;
    let header = format!(
        "{{\"input\":{{\"dtype\":\"F32\",\"shape\":[{},{},3],\"data_offsets\":[0,{}]}},\
         \"lengths\":{{\"dtype\":\"I64\",\"shape\":[{}],\"data_offsets\":[{},{}]}}}}",
        dims[0],
        dims[1],
        n * 4,
        lengths.len(),
        n * 4,
        n * 4 + lengths.len() * 8
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    for i in 0..dims[0] {
        for j in 0..dims[1] {
            let v = if nan(i, j) { f32::NAN } else { 0.5 };
            bytes.extend([v; 3].iter().flat_map(|v| v.to_le_bytes()));
        }
    }
    bytes.extend(lengths.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

/// NaN only past each sequence's length is never read: --strict passes, nothing is said, in
/// both layouts, whole and a batch at a time; a NaN inside a sequence is still found.
#[test]
fn padding_past_the_lengths_is_not_screened() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.safetensors");
    let y = dir.path().join("y.npy");
    let lengths = [3i64, 1, 2];
    for batch_first in [false, true] {
        // (time, batch) of element [i, j].
        let at = |i, j| if batch_first { (j, i) } else { (i, j) };
        let dims = if batch_first { [3, 4] } else { [4, 3] };
        for inside in [false, true] {
            let nan = |i, j| {
                let (t, b): (usize, usize) = at(i, j);
                let past = t as i64 >= lengths[b];
                past || (inside && t == 0 && b == 1)
            };
            std::fs::write(&x, padded_input(dims, nan, &lengths)).unwrap();
            let mut runs = vec![vec!["run", "--input", x.to_str().unwrap(), "--strict"]];
            runs.push(vec![
                "run",
                "--input",
                x.to_str().unwrap(),
                "--strict",
                "--batch-size",
                "2",
                "-o",
                y.to_str().unwrap(),
            ]);
            for mut args in runs {
                if batch_first {
                    args.push("--batch-first");
                }
                let out = rnn(&args);
                let stderr = String::from_utf8_lossy(&out.stderr);
                if inside {
                    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
                    assert!(
                        stderr.contains("has 3 NaN/Inf values"),
                        "{args:?}: {stderr}"
                    );
                } else {
                    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
                    assert!(!stderr.contains("NaN"), "{args:?}: {stderr}");
                }
            }
        }
    }
}
