//! What `rnn run` prints: numpy's `str()` of each output (summarised over 1000 elements, rows
//! wrapped at 75 characters), everything with `--print-all`, and the JSON document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

mod common;
use common::rnn;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The printed floats in `text` (the labels' shapes hold no point).
fn numbers(text: &str) -> usize {
    text.split_whitespace()
        .map(|w| w.trim_matches(['[', ']']))
        .filter(|w| w.contains('.') && w != &"..." && w.parse::<f64>().is_ok())
        .count()
}

/// A model of 400 hidden units and an input of 3 steps: `output` [3, 1, 400] has 1200
/// elements (over numpy's threshold), `h_n` [1, 1, 400] 400.
fn wide_run(dir: &Path) -> (String, String) {
    let model = dir.join("m.safetensors");
    let model = model.to_str().unwrap();
    ok(&rnn(&[
        "init",
        "--input-size",
        "2",
        "--hidden-size",
        "400",
        "--seed",
        "3",
        "-o",
        model,
    ]));
    let input = dir.join("x.json");
    std::fs::write(
        &input,
        r#"{"input": [[[0.5, -1.0]], [[1.5, 0.25]], [[-2.0, 1.0]]]}"#,
    )
    .unwrap();
    (model.to_string(), input.to_str().unwrap().to_string())
}

#[test]
fn large_outputs_are_summarised_and_wrapped_as_numpy_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let (model, input) = wide_run(dir.path());
    let text = ok(&rnn(&["run", &model, "--input", &input]));
    let (output, h_n) = text.split_once("\nh_n [1, 1, 400]\n").unwrap();
    assert!(output.starts_with("output [3, 1, 400]\n[[["), "{output}");
    // 1200 elements: 3 at each end of the long axis, around `...`, in each of the 3 rows.
    assert_eq!(output.matches("...").count(), 3, "{output}");
    assert_eq!(numbers(output), 3 * 6, "{output}");
    // 400 elements: every one, wrapped.
    assert!(!h_n.contains("..."), "{h_n}");
    assert_eq!(numbers(h_n), 400, "{h_n}");
    assert!(text.lines().all(|l| l.len() <= 75), "{text}");
}

#[test]
fn print_all_prints_every_element() {
    let dir = tempfile::tempdir().unwrap();
    let (model, input) = wide_run(dir.path());
    let text = ok(&rnn(&["run", &model, "--input", &input, "--print-all"]));
    assert!(!text.contains("..."), "{text}");
    assert_eq!(numbers(&text), 1200 + 400, "{text}");
}

#[test]
fn json_on_stdout_and_in_files_is_one_document_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (model, input) = wide_run(dir.path());
    let stdout = ok(&rnn(&[
        "run", &model, "--input", &input, "--format", "json",
    ]));
    let file = dir.path().join("y.json");
    let safetensors = dir.path().join("y.safetensors");
    for path in [&file, &safetensors] {
        ok(&rnn(&[
            "run",
            &model,
            "--input",
            &input,
            "-o",
            path.to_str().unwrap(),
        ]));
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout);
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(document["schema_version"], rnn_weights::JSON_SCHEMA_VERSION);

    // Read back, the document holds the very numbers of the safetensors file.
    let read = |path: &Path| rnn_weights::TensorFile::read(path).unwrap();
    let (from_json, from_safetensors) = (read(&file), read(&safetensors));
    for name in ["output", "h_n"] {
        let values = |f: &rnn_weights::TensorFile| -> Vec<f32> {
            let t = f.float(name, candle_core::DType::F32).unwrap();
            t.flatten_all().unwrap().to_vec1().unwrap()
        };
        assert_eq!(values(&from_json), values(&from_safetensors), "{name}");
    }

    // A document is an input too: the same input as a document gives the same outputs.
    let x = rnn_weights::TensorFile::read(Path::new(&input))
        .unwrap()
        .float("input", candle_core::DType::F32)
        .unwrap();
    let as_document = dir.path().join("x_document.json");
    std::fs::write(
        &as_document,
        rnn_weights::write_json(&[("input".to_string(), x)]).unwrap(),
    )
    .unwrap();
    let again = ok(&rnn(&[
        "run",
        &model,
        "--input",
        as_document.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(again, stdout);
}
