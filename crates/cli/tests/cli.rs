//! The `rnn` binary as a user runs it: exit codes, stdout and stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

mod common;
use common::{check_args, fixtures, repo, rnn};

/// The table the article printed (float32, numpy's print): the reference `rnn run` must
/// reproduce, taken from shared/seed/ARTICLE.md, not from this project's code.
const ARTICLE_Y0: [[f64; 5]; 4] = [
    [-0.2964572, 0.82874775, -0.34216955, -0.75720584, 0.19011548],
    [-0.12842922, 0.99981797, 0.84704727, -0.99570125, 0.38665548],
    [0.04731077, 0.99999976, 0.99330056, -0.999933, 0.55339795],
    [0.70323634, 0.99309105, 0.99909431, -0.85363263, 0.7472108],
];
const ARTICLE_Y1: [[f64; 5]; 4] = [
    [0.51955646, 1., 0.99999022, -0.99984968, -0.24616946],
    [
        -0.70553327,
        -0.11918639,
        0.48885304,
        0.08917919,
        -0.26579669,
    ],
    [-0.32477224, 0.99996376, 0.99933046, -0.99711186, 0.10981458],
    [-0.43738723, 0.91517633, 0.97817528, -0.91763324, 0.11047263],
];
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
/// Writes f32 tensors as a safetensors file.
fn write_f32(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (n.to_string(), s.clone(), b)
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Reads every tensor of a safetensors file as (shape, f32 values).
fn read_f32(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            assert_eq!(v.dtype(), Dtype::F32, "{n}");
            let values = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, (v.shape().to_vec(), values))
        })
        .collect()
}

fn json_tensors(out: &str) -> HashMap<String, Vec<f64>> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    assert_eq!(v["schema_version"], 1);
    v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let values = t["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap());
            (t["name"].as_str().unwrap().to_string(), values.collect())
        })
        .collect()
}

#[test]
fn run_without_arguments_reproduces_the_article_table() {
    let out = rnn(&["run", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = json_tensors(&stdout(&out));
    let mut worst: f64 = 0.0;
    for (name, table) in [("Y0", ARTICLE_Y0), ("Y1", ARTICLE_Y1)] {
        let values = &got[name];
        assert_eq!(values.len(), 20, "{name}");
        for (g, w) in values.iter().zip(table.iter().flatten()) {
            worst = worst.max((g - w).abs());
        }
    }
    assert!(
        worst <= 1e-6,
        "max |rnn − article| = {worst:e} over 40 values"
    );
}

#[test]
fn run_prints_the_table_as_numpy_does() {
    let out = rnn(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // The layout; the values to 1e-6 are the JSON test's job.
    assert!(text.starts_with("Y0 (t = 0)\n[[-0.296457"), "{text}");
    assert!(text.contains("\n\nY1 (t = 1)\n[[ 0.51955"), "{text}");
    assert!(text.contains(" 1.          0.99999"), "{text}");
    assert_eq!(text.lines().count(), 11, "{text}");
}
fn check(fixture: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["check".to_string(), fixture.to_str().unwrap().to_string()];
    args.extend(check_args(fixture));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rnn(&args)
}

#[test]
fn check_passes_on_every_committed_fixture() {
    let all = fixtures();
    assert!(
        all.len() >= 15,
        "expected the committed fixtures, found {all:?}"
    );
    for fixture in all {
        let out = check(&fixture, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}{}",
            fixture.display(),
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("within tolerance"));
    }
}

/// Every fixture that holds the framework's float64 results matches them within 1e-12 when
/// run in f64 (weights and inputs widened on load, before the biases are summed).
#[test]
fn f64_runs_match_the_frameworks_float64_results_within_1e12() {
    let mut checked = 0;
    for fixture in fixtures() {
        let out = check(
            &fixture,
            &["--dtype", "f64", "--atol", "1e-12", "--rtol", "0"],
        );
        let text = stdout(&out);
        if !text.contains("_f64 ") {
            continue; // f32 references only (the article's program)
        }
        checked += 1;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {text}{}",
            fixture.display(),
            stderr(&out)
        );
    }
    assert!(
        checked >= 10,
        "only {checked} fixtures have float64 references"
    );
}

#[test]
fn check_holds_the_shipped_model_to_the_article_within_1e6() {
    let model = repo("models/seed/article.safetensors");
    let out = rnn(&[
        "check",
        model.to_str().unwrap(),
        "--atol",
        "1e-6",
        "--rtol",
        "0",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn check_exits_1_when_an_expected_value_moves_by_1e3() {
    let dir = tempfile::tempdir().unwrap();
    let source = repo("tests/fixtures/tf1_article_seed0.safetensors");
    let mut tensors = read_f32(&source);
    tensors.get_mut("Y1").unwrap().1[7] += 1e-3;
    let list: Vec<(&str, Vec<usize>, Vec<f32>)> = tensors
        .iter()
        .map(|(n, (s, v))| (n.as_str(), s.clone(), v.clone()))
        .collect();
    let moved = dir.path().join("moved.safetensors");
    write_f32(&moved, &list);
    let out = rnn(&["check", moved.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("MISMATCH Y1"), "{text}");
    assert!(text.contains("worst at [1, 2]"), "{text}");
    assert!(text.contains("ok       Y0"), "{text}");
}

#[test]
fn check_exits_2_naming_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(repo("tests/fixtures/tf1_article_seed1.safetensors")).unwrap();
    for cut in [0, 5, 40, bytes.len() / 2, bytes.len() - 1] {
        let truncated = dir.path().join(format!("cut{cut}.safetensors"));
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        let out = rnn(&["check", truncated.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "cut at {cut}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(&format!("cut{cut}.safetensors")), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn check_with_a_separate_fixture_and_tight_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let source = read_f32(&repo("tests/fixtures/tf1_article_seed2.safetensors"));
    let pick = |names: &[&'static str]| -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
        names
            .iter()
            .map(|n| (*n, source[*n].0.clone(), source[*n].1.clone()))
            .collect()
    };
    let model = dir.path().join("model.safetensors");
    let fixture = dir.path().join("fixture.safetensors");
    write_f32(&model, &pick(&["Wx", "Wy", "b"]));
    write_f32(&fixture, &pick(&["X0", "X1", "Y0", "Y1", "Wx"]));
    let out = rnn(&[
        "check",
        model.to_str().unwrap(),
        "--fixture",
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // The weights in the fixture are not used from there: listed and ignored.
    assert!(stdout(&out).contains("ignored: Wx"), "{}", stdout(&out));
    let strict = rnn(&[
        "check",
        model.to_str().unwrap(),
        "--fixture",
        fixture.to_str().unwrap(),
        "--atol",
        "0",
        "--rtol",
        "1e-12",
    ]);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
}

#[test]
fn run_writes_step_outputs_to_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("y.safetensors");
    let out = rnn(&["run", "--output", out_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = read_f32(&out_path);
    let mut names: Vec<&String> = written.keys().collect();
    names.sort();
    assert_eq!(names, ["Y0", "Y1"]);
    assert_eq!(written["Y1"].0, [4, 5]);
    let worst = written["Y1"]
        .1
        .iter()
        .zip(ARTICLE_Y1.iter().flatten())
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 1e-6, "{worst:e}");
}

/// A sequence-form input, batch-first, against the same data in step form: the same numbers.
#[test]
fn sequence_form_and_batch_first_match_step_form() {
    let dir = tempfile::tempdir().unwrap();
    let steps = read_f32(&repo("models/seed/article.safetensors"));
    let (x0, x1) = (&steps["X0"].1, &steps["X1"].1);
    // [B=4, T=2, I=3]: row b holds X0[b] then X1[b].
    let mut batch_first = Vec::new();
    for b in 0..4 {
        batch_first.extend_from_slice(&x0[b * 3..b * 3 + 3]);
        batch_first.extend_from_slice(&x1[b * 3..b * 3 + 3]);
    }
    let input = dir.path().join("seq.safetensors");
    write_f32(&input, &[("input", vec![4, 2, 3], batch_first)]);
    let out_path = dir.path().join("out.safetensors");
    let out = rnn(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--batch-first",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seq = read_f32(&out_path);
    assert_eq!(seq["output"].0, [4, 2, 5]);
    assert_eq!(seq["h_n"].0, [1, 4, 5]);
    let step = json_tensors(&stdout(&rnn(&["run", "--format", "json"])));
    for b in 0..4 {
        for h in 0..5 {
            let y1 = step["Y1"][b * 5 + h] as f32;
            assert_eq!(seq["output"].1[b * 10 + 5 + h], y1);
            assert_eq!(seq["h_n"].1[b * 5 + h], y1);
        }
    }
}

#[test]
fn npy_input_in_sequence_form() {
    let dir = tempfile::tempdir().unwrap();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<117}\n");
    bytes.extend((padded.len() as u16).to_le_bytes());
    bytes.extend(padded.as_bytes());
    for v in [0f32, 1., 2., 9., 8., 7.] {
        bytes.extend(v.to_le_bytes());
    }
    let npy = dir.path().join("x.npy");
    std::fs::write(&npy, bytes).unwrap();
    let out = rnn(&["run", "--input", npy.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = json_tensors(&stdout(&out));
    // Instance 0 of the article, alone: its Y1 is the table's first row.
    for (g, w) in got["output"][5..].iter().zip(ARTICLE_Y1[0]) {
        assert!((g - w).abs() <= 1e-6, "{g} vs {w}");
    }
}

#[test]
fn inspect_shows_format_configuration_and_mapping() {
    let out = rnn(&[
        "inspect",
        repo("models/seed/article.safetensors").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("format:        article"), "{text}");
    assert!(text.contains("input size:    3"), "{text}");
    assert!(text.contains("hidden size:   [5]"), "{text}");
    assert!(text.contains("-> weight_ih_l0 (transposed)"), "{text}");
    assert!(
        text.contains("X0") && text.contains("not used: an input"),
        "{text}"
    );
}

#[test]
fn init_writes_canonical_weights_that_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let out = rnn(&[
        "init",
        "--input-size",
        "3",
        "--hidden-size",
        "4",
        "--seed",
        "5",
        "--nonlinearity",
        "relu",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&rnn(&["inspect", model.to_str().unwrap()]));
    assert!(text.contains("format:        pytorch"), "{text}");
    assert!(text.contains("nonlinearity:  relu"), "{text}");
    let tensors = read_f32(&model);
    assert_eq!(tensors["weight_ih_l0"].0, [4, 3]);
    assert!(tensors["weight_hh_l0"].1.iter().all(|v| v.abs() <= 0.5));
    // relu recorded in the metadata is applied: no negative output.
    let x = dir.path().join("x.safetensors");
    write_f32(
        &x,
        &[(
            "input",
            vec![3, 2, 3],
            vec![
                -1., 2., 0.5, 3., -4., 1., 0., 1., -2., 5., 5., -5., 1., 1., 1., -3., 0., 2.,
            ],
        )],
    );
    let run = rnn(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(json_tensors(&stdout(&run))["output"]
        .iter()
        .all(|v| *v >= 0.0));
}

#[test]
fn missing_tensor_lists_what_the_file_has() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("half.safetensors");
    write_f32(
        &model,
        &[
            ("weight_ih_l0", vec![4, 3], vec![0.0; 12]),
            ("junk", vec![1], vec![0.0]),
        ],
    );
    let out = rnn(&["run", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("half.safetensors"), "{err}");
    assert!(
        err.contains("`weight_hh_l0` is missing; the file has: junk, weight_ih_l0"),
        "{err}"
    );
}

#[test]
fn shape_mismatch_names_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bad.safetensors");
    write_f32(
        &model,
        &[
            ("Wx", vec![3, 5], vec![0.0; 15]),
            ("Wy", vec![5, 4], vec![0.0; 20]),
        ],
    );
    let out = rnn(&["inspect", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("tensor `Wy`: expected shape [5, 5] (hidden size from Wx), found [5, 4]"),
        "{err}"
    );
}

#[test]
fn input_of_the_wrong_feature_size_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.safetensors");
    write_f32(&x, &[("input", vec![2, 1, 4], vec![0.0; 8])]);
    let out = rnn(&["run", "--input", x.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("x.safetensors") && err.contains("[2, 1, 3]") && err.contains("[2, 1, 4]"),
        "{err}"
    );
}

#[test]
fn missing_file_and_usage_errors_exit_2() {
    let out = rnn(&["check", "/nonexistent/model.safetensors"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/model.safetensors"),
        "{}",
        stderr(&out)
    );
    assert_eq!(rnn(&["run", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(rnn(&["check"]).status.code(), Some(2));
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnn"))
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn two_readings_are_an_error_until_the_format_is_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("both.safetensors");
    write_f32(
        &both,
        &[
            ("weight_ih_l0", vec![2, 3], vec![0.1; 6]),
            ("weight_hh_l0", vec![2, 2], vec![0.1; 4]),
            ("Wx", vec![3, 5], vec![0.2; 15]),
            ("Wy", vec![5, 5], vec![0.2; 25]),
            ("b", vec![1, 5], vec![0.3; 5]),
        ],
    );
    let out = rnn(&["inspect", both.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("pytorch RNN, 1 one-direction layer (--weights-format pytorch); article RNN"),
        "{err}"
    );
    let out = rnn(&[
        "inspect",
        both.to_str().unwrap(),
        "--weights-format",
        "article",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("hidden size:   [5]"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn inspect_shows_how_a_tf1_kernel_is_split() {
    let out = rnn(&[
        "inspect",
        repo("tests/fixtures/tf1_multi_rnn_cell.safetensors")
            .to_str()
            .unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("format:        tf1"), "{text}");
    assert!(text.contains("layers:        2"), "{text}");
    assert!(text.contains("-> weight_ih_l1 (input rows (first I of I + H), transposed); -> weight_hh_l1 (recurrent rows (last H of I + H), transposed)"), "{text}");
}

/// Keras weights imply batch-first inputs; --time-major reads the same tensor the other way.
#[test]
fn keras_weights_imply_batch_first_unless_told_otherwise() {
    let fixture = repo("tests/fixtures/keras_simple_rnn_sequences.safetensors");
    assert_eq!(check(&fixture, &[]).status.code(), Some(0));
    // input is [4, 6, 3]: read time-major it is 4 steps of 6 sequences, and no longer matches.
    let out = check(&fixture, &["--time-major"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn convert_writes_canonical_weights_that_give_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "keras_bidirectional",
        "tf1_multi_rnn_cell",
        "torch_l3_bidir_relu_batch_first_h0",
    ] {
        let fixture = repo(&format!("tests/fixtures/{name}.safetensors"));
        let canonical = dir.path().join(format!("{name}.safetensors"));
        let mut args = vec!["convert".to_string(), fixture.to_str().unwrap().into()];
        args.extend(check_args(&fixture));
        args.extend(["-o".to_string(), canonical.to_str().unwrap().into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rnn(&args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let text = stdout(&rnn(&["inspect", canonical.to_str().unwrap()]));
        assert!(text.contains("format:        pytorch"), "{name}: {text}");
        // The configuration travels in the metadata: no flags needed any more.
        let out = rnn(&[
            "check",
            canonical.to_str().unwrap(),
            "--fixture",
            fixture.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn lengths_out_of_range_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let source = repo("tests/fixtures/torch_bidir_lengths.safetensors");
    let bytes = std::fs::read(&source).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let lengths: Vec<u8> = [9i64, 5, 10, 7]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut views: Vec<(String, TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "lengths")
        .collect();
    views.push((
        "lengths".into(),
        TensorView::new(Dtype::I64, vec![4], &lengths).unwrap(),
    ));
    let bad = dir.path().join("bad_lengths.safetensors");
    std::fs::write(&bad, safetensors::serialize(views, None).unwrap()).unwrap();
    let out = rnn(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bad_lengths.safetensors") && err.contains("lengths[2]: expected at most 9"),
        "{err}"
    );
}

/// A fixture's `__metadata__` value.
fn metadata(path: &Path, key: &str) -> Option<String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().as_ref()?.get(key).cloned()
}

/// Files whose names do not settle the structure (two RNNs, a stack in no known order) are
/// refused until the flags in their `check_args` choose; then they give the framework's
/// numbers (`check_passes_on_every_committed_fixture`).
#[test]
fn ambiguous_fixtures_are_refused_without_their_flags() {
    let mut refused = 0;
    for fixture in fixtures() {
        if metadata(&fixture, "ambiguous_without_args").as_deref() != Some("true") {
            continue;
        }
        let out = rnn(&["check", fixture.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", fixture.display());
        let err = stderr(&out);
        assert!(err.contains("--prefix"), "{}: {err}", fixture.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        refused += 1;
    }
    assert!(refused >= 4, "only {refused} ambiguous fixtures");
}

/// Structures rnn does not run, exported by the real framework: exit 2 whatever the flags.
#[test]
fn refused_fixtures_are_refused() {
    let dir = repo("tests/fixtures/refused");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let why = metadata(&path, "why").unwrap_or_default();
        let out = rnn(&["check", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{} ({why})", path.display());
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
        seen += 1;
    }
    assert!(seen >= 1);
}

/// `convert` writes what the flags said into the metadata: the converted file needs none,
/// and Keras's masked-step convention travels with it.
#[test]
fn convert_records_go_backwards_merge_mode_activation_and_masking() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "keras_go_backwards",
        "keras_merge_sum",
        "keras_merge_none",
        "keras_activation_hard_sigmoid",
        "keras_masking",
        "keras_masking_bidirectional",
    ] {
        let fixture = repo(&format!("tests/fixtures/{name}.safetensors"));
        let canonical = dir.path().join(format!("{name}.safetensors"));
        let mut args = vec!["convert".to_string(), fixture.to_str().unwrap().into()];
        args.extend(check_args(&fixture));
        args.extend(["-o".to_string(), canonical.to_str().unwrap().into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rnn(&args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let out = rnn(&[
            "check",
            canonical.to_str().unwrap(),
            "--fixture",
            fixture.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

/// The step form takes h0 and lengths (or TF's sequence_length) as the sequence form does.
#[test]
fn step_form_honours_h0_and_lengths() {
    for name in ["tf1_step_form_h0", "tf1_step_form_sequence_length"] {
        let fixture = repo(&format!("tests/fixtures/{name}.safetensors"));
        let out = rnn(&["check", fixture.to_str().unwrap(), "--atol", "1e-6"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stdout(&out));
        assert!(!stdout(&out).contains("ignored"), "{}", stdout(&out));
    }
}

/// Keras's Masking layer, said with --mask-value: the lengths come from the inputs (steps whose
/// features are all the mask value end each sequence) and the numbers are Keras's; a hole in
/// the mask is skipped.
#[test]
fn mask_value_derives_lengths_as_keras_masking_does() {
    let dir = tempfile::tempdir().unwrap();
    let source = repo("tests/fixtures/keras_masking.safetensors");
    let bytes = std::fs::read(&source).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "lengths")
        .collect();
    let unmasked = dir.path().join("no_lengths.safetensors");
    std::fs::write(&unmasked, safetensors::serialize(kept, None).unwrap()).unwrap();
    let path = unmasked.to_str().unwrap();
    let out = rnn(&["check", path, "--mask-value", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Without the mask the padding is read as input: other numbers.
    assert_eq!(rnn(&["check", path]).status.code(), Some(1));
    // A masked step before a valid one is a hole, skipped with the state carried as Keras
    // skips it: the final states are those of the same steps without the hole.
    let h_n = |input: Vec<f32>| {
        let x = dir.path().join("x.safetensors");
        write_f32(&x, &[("input", vec![2, 4, 3], input)]);
        let out = rnn(&[
            "run",
            path,
            "--input",
            x.to_str().unwrap(),
            "--mask-value",
            "0",
            "--format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let outputs = v["outputs"].as_array().unwrap();
        let h_n = outputs.iter().find(|o| o["name"] == "h_n").unwrap();
        h_n["values"].clone()
    };
    let steps: Vec<f32> = (0..24).map(|k| 0.1 + k as f32 / 24.0).collect();
    let mut hole = steps.clone();
    hole[3..6].fill(0.0); // sequence 0, step 1
    let mut gap = steps.clone();
    gap[3..9].copy_from_slice(&steps[6..12]); // its steps 2 and 3 moved up
    gap[9..12].fill(0.0);
    assert_eq!(h_n(hole), h_n(gap));
    assert_ne!(h_n(steps.clone()), h_n(gap_free(&steps)));
}

/// The same steps with sequence 0's step 1 changed: other final states.
fn gap_free(steps: &[f32]) -> Vec<f32> {
    let mut other = steps.to_vec();
    other[3..6].fill(0.5);
    other
}

/// `rnn` with `RNN_CPU_KERNEL` set to `level`.
fn rnn_at(level: &str, args: &[&str]) -> Output {
    Command::new(common::bin())
        .env("RNN_CPU_KERNEL", level)
        .args(args)
        .output()
        .expect("cannot start rnn")
}

/// `RNN_CPU_KERNEL` forces each level this CPU runs (as `rnn devices` lists them): `devices`
/// and `bench` say which ran, in text and JSON, and every level checks the committed
/// fixtures within the default tolerances.
#[test]
fn every_available_cpu_kernel_can_be_forced_and_says_so() {
    let out = rnn(&["devices", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let levels: Vec<String> = v["cpu"]["kernels_available"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(levels[0], "generic");
    assert_eq!(
        v["cpu"]["kernel"],
        *levels.last().unwrap(),
        "the default is the best"
    );
    for level in &levels {
        let out = rnn_at(level, &["devices", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["cpu"]["kernel"], level.as_str());
        let out = rnn_at(level, &["devices"]);
        assert!(
            stdout(&out).contains(&format!("; {level} kernels (available: ")),
            "{}",
            stdout(&out)
        );
        let bench = [
            "bench",
            "--batch",
            "3",
            "--seq",
            "4",
            "--input-size",
            "20",
            "--hidden-size",
            "70",
            "--runs",
            "2",
        ];
        let out = rnn_at(level, &[&bench[..], &["--format", "json"]].concat());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["kernel"], level.as_str());
        let out = rnn_at(level, &bench);
        assert!(
            stdout(&out).contains(&format!("fused path, {level} kernels")),
            "{}",
            stdout(&out)
        );
        let out = rnn_at(
            level,
            &[&bench[..], &["--reference", "--format", "json"]].concat(),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["kernel"].is_null(), "{v}");
        for fixture in fixtures() {
            let mut args = vec!["check".to_string(), fixture.to_str().unwrap().into()];
            args.extend(check_args(&fixture));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = rnn_at(level, &args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{level} {}: {}{}",
                fixture.display(),
                stdout(&out),
                stderr(&out)
            );
        }
    }
}

/// A value of `RNN_CPU_KERNEL` that names no level, or one this CPU lacks, is an error
/// (exit 2) that names the variable and what it may be; an empty one is no choice.
#[test]
fn an_unknown_or_unavailable_cpu_kernel_is_refused() {
    let out = rnn_at("sse9", &["devices"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: RNN_CPU_KERNEL=\"sse9\" is not a CPU kernel level: expected generic, avx2, avx512\n"
    );
    let out = rnn_at("", &["devices"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = rnn(&["devices", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let available = v["cpu"]["kernels_available"].as_array().unwrap();
    for level in ["avx2", "avx512"] {
        if available.iter().any(|l| l == level) {
            continue;
        }
        let out = rnn_at(level, &["run"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).starts_with(&format!(
                "error: RNN_CPU_KERNEL={level}: the CPU kernel level {level} needs "
            )),
            "{}",
            stderr(&out)
        );
    }
}

/// A Keras 3.15 text classifier, `Embedding(12, 4, mask_zero=True) → SimpleRNN(5) → Dense(1)`
/// (copied from shared/cases/keras3-embedding-mask-zero, as Keras saved it), its SimpleRNN fed
/// the embedded vectors of post-padded ids: with each sequence's unmasked steps as `lengths`
/// ([7, 4, 2], the rows that are not id 0's embedding), `rnn check` gives Keras's own final
/// states; without them it refuses (errors.rs), never running over the padding.
#[test]
fn a_keras_embedding_mask_is_honoured_through_lengths() {
    let files = repo("tests/fixtures/files");
    let out = rnn(&[
        "check",
        files
            .join("keras_embedding_mask_zero.keras")
            .to_str()
            .unwrap(),
        "--stack",
        "simple_rnn/",
        "--fixture",
        files
            .join("keras_embedding_mask_zero_lengths.npz")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 of 1 tensors within tolerance"));
}

/// torch.save of a plain state_dict as `model_checkpoint_best.pt` (torch 2.15, copied from
/// shared/cases/torch-21-character-name): the 21-character stem makes torch's alignment padding
/// leave an empty extra-field record, on which the zip crate's guess of a prepended offset
/// failed ("Invalid Central Directory header"). Read as the archive it is, torch's numbers.
#[test]
fn a_torch_zip_with_an_empty_padding_record_is_read() {
    let files = repo("tests/fixtures/files");
    let out = rnn(&[
        "check",
        files.join("model_checkpoint_best.pt").to_str().unwrap(),
        "--fixture",
        files.join("model_checkpoint_best.npz").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 of 2 tensors within tolerance"));
}

/// `rnn bench --model --input` times a model file (a whole Keras model here) on its inputs;
/// without --model the random model's sizes are required.
#[test]
fn bench_times_a_model_file_on_its_inputs() {
    let model = repo("tests/fixtures/files/keras_whole_classifier.keras");
    let input = repo("tests/fixtures/files/keras_whole_classifier.safetensors");
    let out = rnn(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--runs",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"], 2);
    assert!(v["median_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{v}");
    let out = rnn(&["bench", "--seq", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--batch"), "{}", stderr(&out));
}
