//! The files people have and the output people see, through the real binary: every input
//! format gives the same numbers, outputs read back as written, `--stream` equals a whole run,
//! plots are real pictures, and the shell gets completions and a man page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use candle_core::{DType, Tensor};
use rnn_weights::TensorFile;

mod common;
use common::{bin, repo, rnn};

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn article() -> String {
    repo("models/seed/article.safetensors")
        .display()
        .to_string()
}

/// Tensors as (name, shape, f32 bit patterns).
type Bits = Vec<(String, Vec<usize>, Vec<u32>)>;

/// Every tensor of a file, as bits.
fn bits(path: &Path) -> Bits {
    let file = TensorFile::read(path).unwrap();
    file.names()
        .into_iter()
        .map(|name| {
            let t = file.float(&name, DType::F32).unwrap();
            let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (
                name,
                t.dims().to_vec(),
                values.iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect()
}

/// Runs the article's model on each file (time-major) and returns each run's outputs.
fn outputs_for(inputs: &[&str], dir: &Path) -> Vec<(String, Bits)> {
    inputs
        .iter()
        .map(|name| {
            let input = repo(&format!("tests/fixtures/formats/{name}"));
            let out = dir.join(format!("{name}.out.safetensors"));
            ok(&rnn(&[
                "run",
                &article(),
                "--input",
                input.to_str().unwrap(),
                "--time-major",
                "-o",
                out.to_str().unwrap(),
            ]));
            (name.to_string(), bits(&out))
        })
        .collect()
}

#[test]
fn every_input_format_numpy_wrote_gives_bit_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    for group in [
        &[
            "batch.safetensors",
            "batch.npz",
            "batch_compressed.npz",
            "batch.json",
        ][..],
        &[
            "sequence.safetensors",
            "sequence.npy",
            "sequence.json",
            "sequence.csv",
        ][..],
    ] {
        let runs = outputs_for(group, dir.path());
        let (first, want) = &runs[0];
        assert!(!want.is_empty());
        for (name, got) in &runs[1..] {
            assert_eq!(got, want, "{name} differs from {first}");
        }
    }
}

#[test]
fn every_output_format_reads_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let run_to = |input: &str, out: &PathBuf, extra: &[&str]| {
        let input = repo(&format!("tests/fixtures/formats/{input}"));
        let (model, input, out) = (
            article(),
            input.display().to_string(),
            out.display().to_string(),
        );
        let mut args = vec!["run", &model, "--input", &input, "--time-major", "-o", &out];
        args.extend(extra);
        let o = rnn(&args);
        ok(&o);
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Named outputs: every format that holds several arrays has output and h_n.
    let reference = dir.path().join("batch.safetensors");
    run_to("batch.safetensors", &reference, &[]);
    let want = bits(&reference);
    assert_eq!(
        want.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        ["h_n", "output"]
    );
    for name in ["batch.npz", "batch.json"] {
        let path = dir.path().join(name);
        run_to("batch.safetensors", &path, &[]);
        assert_eq!(bits(&path), want, "{name}");
    }
    // --output-format wins over the extension.
    let odd = dir.path().join("batch.out");
    run_to("batch.safetensors", &odd, &["--output-format", "npz"]);
    assert!(std::fs::read(&odd).unwrap().starts_with(b"PK\x03\x04"));

    // One array: `output` alone, and the user is told that h_n was left out.
    let reference = dir.path().join("sequence.safetensors");
    run_to("sequence.csv", &reference, &[]);
    let output = bits(&reference)
        .into_iter()
        .find(|t| t.0 == "output")
        .unwrap();
    for name in ["sequence.npy", "sequence.csv"] {
        let path = dir.path().join(name);
        let stderr = run_to("sequence.csv", &path, &[]);
        assert!(stderr.contains("h_n left out"), "{stderr}");
        let got = bits(&path);
        assert_eq!(got.len(), 1);
        assert_eq!((&got[0].1, &got[0].2), (&output.1, &output.2), "{name}");
    }
}

/// A deterministic pseudo-random sequence of `steps` rows of 3 values, as CSV.
fn long_sequence(steps: usize) -> String {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut text = String::new();
    for _ in 0..steps {
        let row: Vec<String> = (0..3)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (state >> 40) as f64 / (1u64 << 24) as f64;
                format!("{:.6}", 4.0 * unit - 2.0)
            })
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    text
}

fn stream(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let text = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn streaming_10000_steps_equals_the_whole_sequence_within_1e6() {
    let dir = tempfile::tempdir().unwrap();
    let csv = long_sequence(10_000);
    let input = dir.path().join("seq.csv");
    std::fs::write(&input, &csv).unwrap();
    let whole = dir.path().join("whole.safetensors");
    ok(&rnn(&[
        "run",
        &article(),
        "--input",
        input.to_str().unwrap(),
        "-o",
        whole.to_str().unwrap(),
    ]));
    let whole = TensorFile::read(&whole)
        .unwrap()
        .float("output", DType::F64)
        .unwrap();
    assert_eq!(whole.dims(), [10_000, 5]);
    let whole = whole.to_vec2::<f64>().unwrap();

    let out = stream(&["run", &article(), "--stream", "--format", "json"], &csv);
    let lines: Vec<serde_json::Value> = ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10_000);
    let mut worst = 0f64;
    for (t, (line, want)) in lines.iter().zip(&whole).enumerate() {
        assert_eq!(line["schema_version"], 1);
        assert_eq!(line["step"], t);
        let got: Vec<f64> = line["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), 5);
        for (g, w) in got.iter().zip(want) {
            worst = worst.max((g - w).abs());
        }
    }
    assert!(worst <= 1e-6, "worst difference {worst}");
}

#[test]
fn stream_reads_json_arrays_and_csv_lines_and_labels_each_step() {
    let out = stream(&["run", "--stream"], "[1, 2, 3]\n\n# a comment\n0.5,-1,2\n");
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("Y0 [") && lines[1].starts_with("Y1 ["),
        "{text}"
    );
    // The same two steps as a whole run give the same numbers.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.json");
    std::fs::write(&input, "[[1, 2, 3], [0.5, -1, 2]]").unwrap();
    let whole = ok(&rnn(&["run", "--input", input.to_str().unwrap()]));
    let rows: Vec<String> = whole
        .lines()
        .skip(1)
        .map(|l| l.trim().replace(['[', ']'], ""))
        .collect();
    for (line, row) in lines.iter().zip(&rows) {
        assert_eq!(
            line.split_once(' ')
                .unwrap()
                .1
                .replace(['[', ']'], "")
                .trim(),
            row.trim()
        );
    }
}

#[test]
fn a_bad_stream_line_stops_with_exit_2_after_the_good_ones() {
    let out = stream(&["run", "--stream"], "1,2,3\n1,2\n7,8,9\n");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "error: stdin line 2: expected 3 values (the model's input size), found 2"
    );
}

/// The width and height in a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// The width and height attributes of an SVG's root element.
fn svg_size(text: &str) -> (u32, u32) {
    let root = &text[text.find("<svg").unwrap()..];
    let root = &root[..root.find('>').unwrap()];
    let attr = |name: &str| -> u32 {
        let start = root.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        root[start..].split('"').next().unwrap().parse().unwrap()
    };
    (attr("width"), attr("height"))
}

#[test]
fn plots_are_pictures_of_the_same_size_in_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("article.png");
    let svg = dir.path().join("article.svg");
    ok(&rnn(&["plot", "-o", png.to_str().unwrap()]));
    // `run --plot` draws the same picture as a side effect, and still prints the table.
    let table = ok(&rnn(&["run", "--plot", svg.to_str().unwrap()]));
    assert!(table.starts_with("Y0 (t = 0)"), "{table}");
    let (w, h) = png_size(&std::fs::read(&png).unwrap());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.trim_end().ends_with("</svg>"));
    assert_eq!(svg_size(&text), (w, h));
    // The article's batch of 4 is four panels, one per instance.
    for b in 0..4 {
        assert!(
            text.contains(&format!("layer 0, sequence {b}")),
            "panel {b}"
        );
    }
    // One sequence is one panel: a shorter picture of the same width.
    let one = dir.path().join("one.png");
    ok(&rnn(&[
        "plot",
        "-o",
        one.to_str().unwrap(),
        "--sequence",
        "2",
    ]));
    let (w1, h1) = png_size(&std::fs::read(&one).unwrap());
    assert_eq!(w1, w);
    assert!(h1 < h);
}

#[test]
fn completions_and_man_page_come_from_the_command_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&rnn(&["completions", shell]));
        for word in ["run", "check", "plot", "stream", "input-format"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let page = ok(&rnn(&["man"]));
    assert!(page.contains(".TH rnn 1"), "{page}");
    for word in ["completions", "plot", "Exit codes"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
}

#[test]
fn a_tensor_file_read_back_is_the_tensor_written() {
    // A sanity check of the reader the tests above rely on, against a file this test writes
    // byte by byte as numpy's .npy format defines it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(0.1f32.to_le_bytes());
    bytes.extend((-2.5f32).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let t: Tensor = TensorFile::read(&path)
        .unwrap()
        .float("input", DType::F32)
        .unwrap();
    assert_eq!(t.to_vec1::<f32>().unwrap(), [0.1, -2.5]);
}

#[test]
fn batch_size_runs_a_file_a_batch_at_a_time_with_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = repo("tests/fixtures/formats/batch.safetensors");
    let input = input.to_str().unwrap();
    let whole = dir.path().join("whole.safetensors");
    ok(&rnn(&[
        "run",
        &article(),
        "--input",
        input,
        "--time-major",
        "-o",
        whole.to_str().unwrap(),
    ]));
    for (batch_size, name) in [
        ("1", "b1.safetensors"),
        ("2", "b2.safetensors"),
        ("5", "b5.safetensors"),
    ] {
        let out = dir.path().join(name);
        let o = rnn(&[
            "run",
            &article(),
            "--input",
            input,
            "--time-major",
            "--batch-size",
            batch_size,
            "-o",
            out.to_str().unwrap(),
        ]);
        ok(&o);
        assert_eq!(bits(&out), bits(&whole), "--batch-size {batch_size}");
    }
    // .npy in, .npy out, batch-first.
    let x = dir.path().join("x.npy");
    let values: Vec<f32> = (0..5 * 4 * 3)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    std::fs::write(&x, npy_f32(&[5, 4, 3], &values)).unwrap();
    let x = x.to_str().unwrap();
    let whole = dir.path().join("whole.npy");
    let parts = dir.path().join("parts.npy");
    ok(&rnn(&[
        "run",
        &article(),
        "--input",
        x,
        "--batch-first",
        "-o",
        whole.to_str().unwrap(),
    ]));
    ok(&rnn(&[
        "run",
        &article(),
        "--input",
        x,
        "--batch-first",
        "--batch-size",
        "2",
        "-o",
        parts.to_str().unwrap(),
    ]));
    assert_eq!(bits(&parts), bits(&whole));
    assert_eq!(bits(&parts)[0].1, [5, 4, 5]);
}

/// A float32 .npy file, byte by byte as numpy's format defines it.
fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}
