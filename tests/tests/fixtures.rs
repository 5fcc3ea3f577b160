//! rnn-core and rnn-weights, used as a library, against the fixtures the real frameworks wrote.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use candle_core::DType;
use rnn_core::{compare, Nonlinearity, Rnn, Tolerance};
use rnn_weights::{expected_outputs, name_outputs, Inputs, Model, TensorFile};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files
}

/// Runs the fixture's model on its inputs and returns the worst (max abs error, tensor name).
fn worst_error(path: &Path, dtype: DType) -> (f64, String) {
    let file = TensorFile::read(path).unwrap();
    let model = Model::from_file(&file, dtype).unwrap();
    let inputs = Inputs::require(&file, dtype).unwrap();
    let rnn = Rnn::from_weights(
        &model.weights,
        model.nonlinearity.unwrap_or(Nonlinearity::Tanh),
    )
    .unwrap();
    let (output, h_n) = rnn.forward(&inputs.input, inputs.h0.as_ref()).unwrap();
    let got = name_outputs(inputs.form, &output, Some(&h_n)).unwrap();
    let expected = expected_outputs(&file, inputs.form, dtype).unwrap();
    assert!(!expected.is_empty(), "{}", path.display());
    let mut worst = (0.0, String::new());
    for (name, want) in expected {
        let (_, g) = got.iter().find(|(n, _)| *n == name).unwrap();
        let c = compare(g, &want, Tolerance::default()).unwrap();
        assert!(c.passed(), "{}: {name}: {c:?}", path.display());
        if c.max_abs > worst.0 {
            worst = (c.max_abs, name);
        }
    }
    worst
}

#[test]
fn tensorflow_article_fixtures_pass_in_f32() {
    let files = fixtures();
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        let (worst, name) = worst_error(&path, DType::F32);
        // TF and candle both round each op to float32: a few ulp apart, no more.
        assert!(worst < 1e-6, "{}: {name} off by {worst:e}", path.display());
    }
}

#[test]
fn computing_in_f64_stays_within_float32_rounding_of_tensorflow() {
    for path in fixtures() {
        let (worst, name) = worst_error(&path, DType::F64);
        assert!(worst < 1e-6, "{}: {name} off by {worst:e}", path.display());
    }
}

#[test]
fn canonical_save_round_trips_weights_and_configuration() {
    let dir = std::env::temp_dir().join(format!("rnn-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = fixtures().remove(0);
    let model = Model::read(&source, DType::F32).unwrap();
    let saved = dir.join("canonical.safetensors");
    rnn_weights::save_canonical(&saved, &model.weights, Nonlinearity::Relu, Some(true), &[])
        .unwrap();
    let back = Model::read(&saved, DType::F32).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(back.format, rnn_weights::Format::Pytorch);
    assert_eq!(back.nonlinearity, Some(Nonlinearity::Relu));
    assert_eq!(back.batch_first, Some(true));
    let values = |m: &Model| {
        m.weights[0][0]
            .w_ih
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(values(&back), values(&model));
    let file = TensorFile::read(&source).unwrap();
    assert_eq!(file.metadata()["nonlinearity"], "tanh");
}
