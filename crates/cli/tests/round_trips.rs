//! Round trips: a file of each kind `rnn` reads, converted to each target `rnn convert` writes,
//! runs to the same bits as the file it came from. The weights are copied, not computed, so
//! nothing but the layout changes: `rnn run` of the source and of each converted file on the
//! source's inputs must agree exactly (the numbers themselves are the frameworks', held by the
//! fixtures of the other tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{repo, rnn};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

/// A source under tests/fixtures, the flags it runs with, the targets it converts to, and the
/// flags a `.pt` needs to run as the source does (a state_dict records no options). `.keras`
/// only for batch-first sources with one bias per cell (Keras's one bias is `b_ih + b_hh`, a
/// sum that may round).
type Source = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const SOURCES: &[Source] = &[
    (
        "torch_l3_bidir_relu_batch_first_h0.safetensors",
        &["--nonlinearity", "relu", "--batch-first"],
        &["safetensors", "pt", "onnx"],
        &["--nonlinearity", "relu", "--batch-first"],
    ),
    (
        "torch_bidir_lengths.safetensors",
        &[],
        &["safetensors", "pt", "onnx"],
        &[],
    ),
    (
        "keras_bidirectional.safetensors",
        &["--masked-steps", "zeros"],
        &["safetensors", "pt", "onnx", "keras"],
        &["--batch-first"],
    ),
    (
        "keras_mixed_stack.safetensors",
        &["--masked-steps", "zeros"],
        &["safetensors", "onnx", "keras"],
        &[],
    ),
    (
        "keras_merge_sum.safetensors",
        &["--merge-mode", "sum", "--masked-steps", "zeros"],
        &["safetensors", "onnx", "keras"],
        &[],
    ),
    (
        "keras_go_backwards.safetensors",
        &["--go-backwards"],
        &["safetensors", "keras"],
        &[],
    ),
    (
        "tf1_multi_rnn_cell.safetensors",
        &[],
        &["safetensors", "pt", "onnx", "keras"],
        &["--batch-first"],
    ),
    (
        "tf1_dynamic_rnn_lengths.safetensors",
        &[],
        &["safetensors", "pt", "onnx"],
        &["--batch-first"],
    ),
    (
        "files/onnx_export_bidir.onnx",
        &[],
        &["safetensors", "pt", "onnx"],
        &[],
    ),
    (
        "files/onnx_softsign_elu_clip.onnx",
        &[],
        &["safetensors", "onnx"],
        &[],
    ),
    (
        "files/onnx_reverse.onnx",
        &[],
        &["safetensors", "onnx"],
        &[],
    ),
    (
        "files/torch_export_f64.pt2",
        &[],
        &["safetensors", "pt"],
        &["--dtype", "f64"],
    ),
    (
        "files/keras3_stacked_cells.keras",
        &["--masked-steps", "zeros"],
        &["safetensors", "onnx", "keras"],
        &[],
    ),
    (
        "files/tfkeras_full.h5",
        &["--masked-steps", "zeros"],
        &["safetensors", "onnx", "keras"],
        &[],
    ),
    (
        "files/torch_zip_bidir.pt",
        &[],
        &["safetensors", "pt", "onnx"],
        &[],
    ),
    (
        "files/torch_legacy.pth",
        &["--nonlinearity", "relu"],
        &["safetensors", "pt", "onnx"],
        &["--nonlinearity", "relu"],
    ),
    (
        "files/torch_nested.bin",
        &["--batch-first"],
        &["safetensors", "pt", "onnx"],
        &["--batch-first"],
    ),
    (
        "files/torch_weight_norm.pt",
        &[],
        &["safetensors", "pt", "onnx"],
        &[],
    ),
    (
        "files/tf1_saver_bidirectional.index",
        &[],
        &["safetensors", "onnx", "keras"],
        &[],
    ),
    (
        "files/tf2_checkpoint_keras.index",
        &["--masked-steps", "zeros"],
        &["safetensors", "onnx", "keras"],
        &[],
    ),
    (
        "files/tfkeras_savedmodel_bidir",
        &[],
        &["safetensors", "keras"],
        &[],
    ),
];

/// The inputs a source runs on: its own fixture (the file itself, or the `.safetensors` or
/// `.npz` beside a model file).
fn inputs_of(source: &Path) -> PathBuf {
    if source.extension().is_some_and(|e| e == "safetensors") {
        return source.to_owned();
    }
    ["safetensors", "npz"]
        .iter()
        .map(|e| source.with_extension(e))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no inputs beside {}", source.display()))
}

/// One output of a run: its name, dtype, shape and bytes.
type Output = (String, String, Vec<usize>, Vec<u8>);

/// `rnn run MODEL --input INPUTS FLAGS -o OUT`: the outputs, by name.
fn run(model: &Path, inputs: &Path, flags: &[&str], out: &Path) -> Vec<Output> {
    let mut args = vec![
        "run",
        model.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(flags);
    let done = rnn(&args);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let bytes = std::fs::read(out).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    // The RNN's outputs: what a conversion keeps. (A Keras model of recurrent layers alone
    // whose top returns its last step also gives that under its own name, which the
    // canonical file, a state_dict or an ONNX graph of the RNN does not record.)
    let mut tensors: Vec<_> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "output" | "h_n" | "output_forward" | "output_backward"
            )
        })
        .map(|(name, t)| {
            (
                name,
                format!("{:?}", t.dtype()),
                t.shape().to_vec(),
                t.data().to_vec(),
            )
        })
        .collect();
    assert!(
        tensors.iter().any(|(name, ..)| name.starts_with("output")),
        "{}: no output",
        model.display()
    );
    tensors.sort();
    tensors
}

#[test]
fn every_source_runs_to_the_same_bits_after_every_conversion() {
    let scratch = tempfile::tempdir().unwrap();
    let mut trips = 0;
    for &(source, flags, targets, pt_flags) in SOURCES {
        let source = repo("tests/fixtures").join(source);
        let inputs = inputs_of(&source);
        let wide = pt_flags.contains(&"f64");
        let mut source_flags = flags.to_vec();
        if wide {
            source_flags.extend(["--dtype", "f64"]);
        }
        let want = run(
            &source,
            &inputs,
            &source_flags,
            &scratch.path().join("want.safetensors"),
        );
        assert!(!want.is_empty());
        for target in targets {
            let converted = scratch.path().join(format!("m.{target}"));
            let mut args = vec![
                "convert",
                source.to_str().unwrap(),
                "-o",
                converted.to_str().unwrap(),
            ];
            args.extend(flags);
            let done = rnn(&args);
            assert_eq!(
                done.status.code(),
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&done.stderr)
            );
            // The canonical file and the ONNX graph record every option they keep; a
            // state_dict needs its constructor's flags.
            let run_flags: Vec<&str> = match *target {
                "pt" => pt_flags.to_vec(),
                _ if wide => vec!["--dtype", "f64"],
                _ => vec![],
            };
            let got = run(
                &converted,
                &inputs,
                &run_flags,
                &scratch.path().join("got.safetensors"),
            );
            assert!(
                got == want,
                "{} → .{target}: the outputs differ in their bits",
                source.display()
            );
            trips += 1;
        }
    }
    assert!(trips >= 55, "{trips} round trips");
}
