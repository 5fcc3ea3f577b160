//! Bad input, case by case, through the real binary: exit code 2 (or 0 where the case is
//! defined), one line on stderr naming the file and what was wrong, never a panic.
//!
//! The cases and what `rnn` says to each are also the table in `docs/reliability.md`; this test
//! fails when the two disagree. After changing a message, rewrite the table with
//! `RNN_BLESS=1 cargo test -p rnn-cli --test errors`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod common;
use common::repo;

/// A safetensors file with a hand-written header: `header` as given, then `data`.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// A well-formed safetensors file: (name, dtype, shape, bytes) in order.
fn safetensors(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut header = Vec::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend(bytes);
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{start},{}]}}",
            data.len()
        ));
    }
    raw_safetensors(&format!("{{{}}}", header.join(",")), &data)
}

fn f32s(n: usize, value: f32) -> Vec<u8> {
    (0..n).flat_map(|_| value.to_le_bytes()).collect()
}

fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// A valid PyTorch-named model: 3 inputs, hidden 2, one layer.
fn torch_model() -> Vec<(&'static str, &'static str, &'static [usize], Vec<u8>)> {
    vec![
        ("weight_ih_l0", "F32", &[2, 3], f32s(6, 0.5)),
        ("weight_hh_l0", "F32", &[2, 2], f32s(4, 0.25)),
        ("bias_ih_l0", "F32", &[2], f32s(2, 0.1)),
    ]
}

/// Keras SimpleRNN layers of 3 inputs and 2 neurons at these paths (`<path>/kernel`, …).
fn keras_layers(paths: &[&str]) -> Vec<u8> {
    let tensors: Vec<(String, &'static [usize], Vec<u8>)> = paths
        .iter()
        .flat_map(|p| {
            let cell = if p.ends_with("simple_rnn_cell") {
                p.to_string()
            } else {
                format!("{p}/simple_rnn_cell")
            };
            [
                (format!("{cell}/kernel"), &[3usize, 2][..], f32s(6, 0.5)),
                (
                    format!("{cell}/recurrent_kernel"),
                    &[2, 2][..],
                    f32s(4, 0.25),
                ),
                (format!("{cell}/bias"), &[2][..], f32s(2, 0.1)),
            ]
        })
        .collect();
    let named: Vec<(&str, &str, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, b)| (n.as_str(), "F32", *s, b.clone()))
        .collect();
    safetensors(&named)
}

/// A TF1 graph's variables: a bidirectional RNN and a separate one, 3 inputs, 2 neurons.
fn two_tf1_scopes() -> Vec<u8> {
    let mut tensors = Vec::new();
    for cell in ["bidirectional_rnn/fw", "bidirectional_rnn/bw", "uni/rnn"] {
        tensors.push((
            format!("{cell}/basic_rnn_cell/kernel:0"),
            &[5usize, 2][..],
            f32s(10, 0.5),
        ));
        tensors.push((
            format!("{cell}/basic_rnn_cell/bias:0"),
            &[2][..],
            f32s(2, 0.1),
        ));
    }
    let named: Vec<(&str, &str, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, b)| (n.as_str(), "F32", *s, b.clone()))
        .collect();
    safetensors(&named)
}

/// A file of `tests/fixtures/files/`.
fn fixture_file(name: &str) -> Vec<u8> {
    std::fs::read(repo("tests/fixtures/files").join(name)).unwrap()
}

/// A legacy torch.save file whose top dict holds an int (`{"epoch": 3}`): the pickles of the
/// magic number, the format version 1001, the system description (`{}`), the object, and the
/// storage keys (`[]`).
fn legacy_checkpoint() -> Vec<u8> {
    let mut bytes = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    bytes.extend(b"\x80\x02M\xe9\x03.");
    bytes.extend(b"\x80\x02}.");
    bytes.extend(b"\x80\x02}X\x05\x00\x00\x00epochK\x03s.");
    bytes.extend(b"\x80\x02].");
    bytes
}

struct Case {
    group: &'static str,
    what: &'static str,
    /// Files to create: (name, bytes).
    files: Vec<(&'static str, Vec<u8>)>,
    /// Arguments; `DIR` stands for the scratch directory.
    args: &'static str,
    exit: i32,
    /// Where it is a file's fault, the file the message must name.
    names: Option<&'static str>,
    /// Files of `files` then grown to a length (sparse: no disk cost) with `File::set_len`.
    grow: Vec<(&'static str, u64)>,
}

impl Case {
    fn grown(mut self, name: &'static str, len: u64) -> Self {
        self.grow.push((name, len));
        self
    }
}

fn case(
    group: &'static str,
    what: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    args: &'static str,
    exit: i32,
    names: Option<&'static str>,
) -> Case {
    Case {
        group,
        what,
        files,
        args,
        exit,
        names,
        grow: Vec::new(),
    }
}

/// tf-keras's classifier archive (`tfkeras_whole_classifier.keras`) with its config's last
/// layer (the Dense head) removed: its weights' group `dense` then has no layer.
fn tf_keras_archive_short_of_a_layer() -> Vec<u8> {
    use std::io::{Read, Write};
    let bytes = std::fs::read(repo("tests/fixtures/files/tfkeras_whole_classifier.keras")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name == "config.json" {
            let mut config: serde_json::Value = serde_json::from_slice(&data).unwrap();
            config["config"]["layers"].as_array_mut().unwrap().pop();
            data = serde_json::to_vec(&config).unwrap();
        }
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn cases() -> Vec<Case> {
    let article = std::fs::read(repo("models/seed/article.safetensors")).unwrap();
    let good_input = safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0))]);
    let framework_file =
        |name: &str| std::fs::read(repo(&format!("tests/fixtures/files/{name}"))).unwrap();
    let keras = framework_file("keras_masked_bidirectional.keras");
    let input = |shape: &'static [usize]| {
        let n = shape.iter().product();
        safetensors(&[("input", "F32", shape, f32s(n, 1.0))])
    };
    let with = |extra: Vec<(&'static str, &'static str, &'static [usize], Vec<u8>)>| {
        let mut t = torch_model();
        t.extend(extra);
        safetensors(&t)
    };
    let replace = |name: &str, new: (&'static str, &'static str, &'static [usize], Vec<u8>)| {
        let t: Vec<_> = torch_model()
            .into_iter()
            .map(|old| if old.0 == name { new.clone() } else { old })
            .collect();
        safetensors(&t)
    };
    let lengths = |values: &[i64]| {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    vec![
        case("files", "missing file", vec![], "run DIR/missing.safetensors", 2, Some("missing.safetensors")),
        case("files", "a directory", vec![], "run DIR", 2, Some("DIR")),
        case("files", "a TensorFlow SavedModel folder", vec![("sm/saved_model.pb", b"\x08\x01".to_vec())], "run DIR/sm", 2, Some("sm")),
        case("files", "unreadable (the read fails)", vec![], "run /proc/self/mem", 2, Some("/proc/self/mem")),
        case("files", "empty file", vec![("m.safetensors", vec![])], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "not safetensors (text)", vec![("m.safetensors", b"hello, this is a text file\n".to_vec())], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "truncated in the data", vec![("m.safetensors", article[..article.len() - 7].to_vec())], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "truncated in the header", vec![("m.safetensors", article[..30].to_vec())], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "header length larger than the file", vec![("m.safetensors", [1000u64.to_le_bytes().as_slice(), b"{}"].concat())], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "header length absurd (8 bytes of 0xFF)", vec![("m.safetensors", vec![0xFF; 8])], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "header not JSON", vec![("m.safetensors", raw_safetensors("{not json", &[]))], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "header not UTF-8", vec![("m.safetensors", [5u64.to_le_bytes().as_slice(), b"{\"\xC3\"}"].concat())], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "header JSON of the wrong shape", vec![("m.safetensors", raw_safetensors("[1, 2, 3]", &[]))], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "data offsets out of range", vec![("m.safetensors", raw_safetensors(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &[0; 4]))], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "data offsets overlapping", vec![("m.safetensors", raw_safetensors(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, &[0; 12]))], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "duplicate tensor names", vec![("m.safetensors", raw_safetensors(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]))], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", "unknown dtype string", vec![("m.safetensors", raw_safetensors(r#"{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]))], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("files", ".npy with a bad magic", vec![("x.npy", b"PK\x03\x04 a zip file".to_vec())], "run --input DIR/x.npy", 2, Some("x.npy")),
        case("files", ".npy header length over numpy's 10000 bytes", vec![("x.npy", [b"\x93NUMPY\x02\x00".as_slice(), &0xFFFF_FF00u32.to_le_bytes(), b"{}"].concat())], "run --input DIR/x.npy", 2, Some("x.npy")),
        case("files", ".npy with a fortran_order that is not a bool", vec![("x.npy", npy("{'descr': '<f4', 'fortran_order': 1, 'shape': (1, 1, 3), }", &f32s(3, 1.0)))], "run --input DIR/x.npy", 2, Some("x.npy")),
        case("files", ".npy object array", vec![("x.npy", npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", &[0; 8]))], "run --input DIR/x.npy", 2, Some("x.npy")),
        case("tensors", "integer weights", vec![("m.safetensors", replace("weight_ih_l0", ("weight_ih_l0", "I64", &[2, 3], vec![0; 48])))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "bool input", vec![("x.safetensors", safetensors(&[("input", "BOOL", &[1, 1, 3], vec![1; 3])]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("tensors", "weight of the wrong rank", vec![("m.safetensors", replace("weight_ih_l0", ("weight_ih_l0", "F32", &[6], f32s(6, 0.5))))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "an LSTM's state_dict (4 gates' rows stacked)", vec![("m.safetensors", safetensors(&[("weight_ih_l0", "F32", &[8, 3], f32s(24, 0.5)), ("weight_hh_l0", "F32", &[8, 2], f32s(16, 0.25)), ("bias_ih_l0", "F32", &[8], f32s(8, 0.1))]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "W_hh not square", vec![("m.safetensors", replace("weight_hh_l0", ("weight_hh_l0", "F32", &[2, 3], f32s(6, 0.5))))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "layer sizes that do not chain", vec![("m.safetensors", with(vec![("weight_ih_l1", "F32", &[2, 5], f32s(10, 0.5)), ("weight_hh_l1", "F32", &[2, 2], f32s(4, 0.5)), ("bias_ih_l1", "F32", &[2], f32s(2, 0.1))]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "a layer that takes a merged bidirectional layer, without --merge-mode", vec![("m.safetensors", with(vec![("weight_ih_l0_reverse", "F32", &[2, 3], f32s(6, 0.5)), ("weight_hh_l0_reverse", "F32", &[2, 2], f32s(4, 0.5)), ("bias_ih_l0_reverse", "F32", &[2], f32s(2, 0.1)), ("weight_ih_l1", "F32", &[2, 2], f32s(4, 0.5)), ("weight_hh_l1", "F32", &[2, 2], f32s(4, 0.5)), ("bias_ih_l1", "F32", &[2], f32s(2, 0.1)), ("weight_ih_l1_reverse", "F32", &[2, 2], f32s(4, 0.5)), ("weight_hh_l1_reverse", "F32", &[2, 2], f32s(4, 0.5)), ("bias_ih_l1_reverse", "F32", &[2], f32s(2, 0.1))]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "the top layer of three that does not take the one below", vec![("m.safetensors", with(vec![("weight_ih_l1", "F32", &[2, 2], f32s(4, 0.5)), ("weight_hh_l1", "F32", &[2, 2], f32s(4, 0.5)), ("bias_ih_l1", "F32", &[2], f32s(2, 0.1)), ("weight_ih_l2", "F32", &[2, 7], f32s(14, 0.5)), ("weight_hh_l2", "F32", &[2, 2], f32s(4, 0.5)), ("bias_ih_l2", "F32", &[2], f32s(2, 0.1))]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "bias of the wrong length", vec![("m.safetensors", replace("bias_ih_l0", ("bias_ih_l0", "F32", &[3], f32s(3, 0.5))))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "reverse direction partly missing", vec![("m.safetensors", with(vec![("weight_ih_l0_reverse", "F32", &[2, 3], f32s(6, 0.5))]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "a stray tensor of the layout", vec![("m.safetensors", with(vec![("weight_ih_l1_reverse", "F32", &[2, 4], f32s(8, 0.5))]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("tensors", "no recognisable format", vec![("m.safetensors", safetensors(&[("encoder.weight", "F32", &[2, 3], f32s(6, 0.5))]))], "run DIR/m.safetensors", 2, Some("m.safetensors")),
        case("structure", "two TF1 scopes, each an RNN", vec![("m.safetensors", two_tf1_scopes())], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("structure", "Keras layers named by hand (order unknown)", vec![("m.safetensors", keras_layers(&["rnn_b", "rnn_a"]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("structure", "Keras Bidirectional(RNN([cell, cell]))", vec![("m.safetensors", keras_layers(&["bidirectional/forward_rnn/stacked_rnn_cells/simple_rnn_cell", "bidirectional/backward_rnn/stacked_rnn_cells/simple_rnn_cell"]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("structure", "a Bidirectional wrapper with one layer", vec![("m.safetensors", keras_layers(&["bidirectional/forward_simple_rnn"]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("structure", "a bias missing from one cell of two", vec![("m.safetensors", with(vec![("weight_ih_l0_reverse", "F32", &[2, 3], f32s(6, 0.5)), ("weight_hh_l0_reverse", "F32", &[2, 2], f32s(4, 0.5))]))], "run DIR/m.safetensors --input DIR/x.safetensors", 2, Some("m.safetensors")),
        case("structure", "--prefix that matches nothing", vec![("m.safetensors", safetensors(&torch_model()))], "run DIR/m.safetensors --prefix decoder.", 2, Some("m.safetensors")),
        case("structure", "--stack prefixes that overlap", vec![("m.safetensors", keras_layers(&["rnn_b", "rnn_a"]))], "run DIR/m.safetensors --stack rnn_,rnn_a/", 2, Some("m.safetensors")),
        case("structure", "--go-backwards on a bidirectional model", vec![("m.safetensors", with(vec![("weight_ih_l0_reverse", "F32", &[2, 3], f32s(6, 0.5)), ("weight_hh_l0_reverse", "F32", &[2, 2], f32s(4, 0.5)), ("bias_ih_l0_reverse", "F32", &[2], f32s(2, 0.1))]))], "run DIR/m.safetensors --input DIR/x.safetensors --go-backwards", 2, None),
        case("structure", "--merge-mode on a one-direction model", vec![], "run --merge-mode sum", 2, None),
        case("inputs", "a tensor rnn does not read (a misspelt h0)", vec![("x.safetensors", safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0)), ("h_0", "F32", &[1, 1, 5], f32s(5, 0.0))]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("inputs", "both lengths and sequence_length", vec![("x.safetensors", safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0)), ("lengths", "I64", &[1], lengths(&[1])), ("sequence_length", "I64", &[1], lengths(&[1]))]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("inputs", "feature size unlike the model's", vec![("x.safetensors", input(&[2, 1, 4]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("inputs", "batch of 0", vec![("x.safetensors", input(&[2, 0, 3]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("inputs", "0 time steps (refused: no data, as torch.nn.RNN refuses them)", vec![("x.safetensors", input(&[0, 2, 3]))], "run --input DIR/x.safetensors --format json", 2, Some("x.safetensors")),
        case("inputs", "0 time steps claiming a batch of 2^40 (128 bytes)", vec![("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1099511627776, 3), }", &[]))], "run --input DIR/x.npy", 2, Some("x.npy")),
        case("inputs", "0 time steps claiming a batch of 2^40, a batch at a time", vec![("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1099511627776, 3), }", &[]))], "run --input DIR/x.npy --batch-size 1000000 -o DIR/y.npy", 2, Some("x.npy")),
        case("inputs", "lengths out of range", vec![("x.safetensors", safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0)), ("lengths", "I64", &[1], lengths(&[3]))]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("inputs", "lengths negative", vec![("x.safetensors", safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0)), ("lengths", "I64", &[1], lengths(&[-1]))]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("inputs", "lengths for another batch", vec![("x.safetensors", safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0)), ("lengths", "I64", &[2], lengths(&[1, 2]))]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("inputs", "h0 of the wrong shape", vec![("x.safetensors", safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0)), ("h0", "F32", &[1, 1, 4], f32s(4, 0.0))]))], "run --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("numbers", "NaN in the inputs (a warning)", vec![("x.safetensors", safetensors(&[("input", "F32", &[1, 1, 3], [f32s(1, f32::NAN), f32s(2, 1.0)].concat())]))], "run --input DIR/x.safetensors --format json", 0, Some("x.safetensors")),
        case("numbers", "Inf in the weights with --strict", vec![("m.safetensors", replace("weight_hh_l0", ("weight_hh_l0", "F32", &[2, 2], f32s(4, f32::INFINITY))))], "run DIR/m.safetensors --input DIR/x.safetensors --strict", 2, Some("m.safetensors")),
        case("numbers", "relu overflowing to Inf (reported)", vec![("m.safetensors", replace("weight_hh_l0", ("weight_hh_l0", "F32", &[2, 2], f32s(4, 3e38))))], "run DIR/m.safetensors --input DIR/x.safetensors --nonlinearity relu --format json", 0, None),
        case("sizes", "init larger than memory", vec![], "init --input-size 100000000 --hidden-size 100000000 -o DIR/w.safetensors", 2, None),
        case("sizes", "bench larger than memory", vec![], "bench --batch 100000 --seq 100000 --input-size 100000 --hidden-size 8", 2, None),
        case("formats", "JSON that does not parse", vec![("x.json", b"[[1, 2, 3]".to_vec())], "run --input DIR/x.json", 2, Some("x.json")),
        case("formats", "JSON ragged array", vec![("x.json", br#"{"input": [[[1, 2, 3]], [[1, 2]]]}"#.to_vec())], "run --input DIR/x.json", 2, Some("x.json")),
        case("formats", "JSON strings for numbers", vec![("x.json", br#"[["1", "2", "3"]]"#.to_vec())], "run --input DIR/x.json", 2, Some("x.json")),
        case("formats", "CSV with a word in a row", vec![("x.csv", b"1,2,3\n1,two,3\n".to_vec())], "run --input DIR/x.csv", 2, Some("x.csv")),
        case("formats", "CSV rows of different lengths", vec![("x.csv", b"1,2,3\n1,2\n".to_vec())], "run --input DIR/x.csv", 2, Some("x.csv")),
        case("formats", ".npz that is not a zip", vec![("x.npz", b"hello".to_vec())], "run --input DIR/x.npz", 2, Some("x.npz")),
        case("formats", "--input-format that does not fit the file", vec![("x.json", b"[[1, 2, 3]]".to_vec())], "run --input DIR/x.json --input-format npy", 2, Some("x.json")),
        case("formats", "CSV output of a batch of 4", vec![], "run --output DIR/y.csv", 2, Some("y.csv")),
        case("stream", "--stream with a bidirectional model", vec![("m.safetensors", with(vec![("weight_ih_l0_reverse", "F32", &[2, 3], f32s(6, 0.5)), ("weight_hh_l0_reverse", "F32", &[2, 2], f32s(4, 0.5)), ("bias_ih_l0_reverse", "F32", &[2], f32s(2, 0.1))]))], "run DIR/m.safetensors --stream", 2, None),
        case("outputs", "an output named as a PyTorch file (rnn run -o out.pt)", vec![("x.safetensors", safetensors(&[("X0", "F32", &[1, 3], f32s(3, 0.5)), ("X1", "F32", &[1, 3], f32s(3, 0.5))]))], "run --input DIR/x.safetensors -o DIR/out.pt", 2, Some("out.pt")),
        case("outputs", "an output without an extension", vec![("x.safetensors", safetensors(&[("X0", "F32", &[1, 3], f32s(3, 0.5)), ("X1", "F32", &[1, 3], f32s(3, 0.5))]))], "run --input DIR/x.safetensors -o DIR/out", 2, Some("out")),
        case("outputs", "rnn convert to an HDF5 name", vec![], "convert DIR/none.safetensors -o DIR/m.h5", 2, Some("m.h5")),
        case("plot", "a picture format rnn does not write", vec![], "plot -o DIR/p.jpg", 2, Some("p.jpg")),
        case("plot", "--sequence beyond the batch", vec![], "plot -o DIR/p.png --sequence 4", 2, None),
        case("plot", "a model of hidden size 0 (no states to draw)", vec![("m.safetensors", safetensors(&[("weight_ih_l0", "F32", &[0, 3], f32s(0, 0.5)), ("weight_hh_l0", "F32", &[0, 0], f32s(0, 0.5))])), ("x.safetensors", safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 0.5))]))], "plot DIR/m.safetensors --input DIR/x.safetensors -o DIR/p.png", 2, None),
        case("batches", "--batch-size without --output", vec![("x.safetensors", input(&[2, 4, 3]))], "run --input DIR/x.safetensors --batch-size 2", 2, None),
        case("batches", "--batch-size into a format written whole", vec![("x.safetensors", input(&[2, 4, 3]))], "run --input DIR/x.safetensors --batch-size 2 -o DIR/y.json", 2, Some("y.json")),
        case("batches", "--batch-size on an unbatched input", vec![("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &f32s(6, 1.0)))], "run --input DIR/x.npy --batch-size 2 -o DIR/y.npy", 2, Some("x.npy")),
        case("batches", ".npy header length claiming 4 GiB (a 5 GiB sparse file)", vec![("x.npy", [b"\x93NUMPY\x02\x00".as_slice(), &0xFFFF_FF00u32.to_le_bytes(), b"{}"].concat())], "run --input DIR/x.npy --batch-size 2 -o DIR/y.npy", 2, Some("x.npy")).grown("x.npy", 5 << 30),
        case("batches", "safetensors header length over 100 MB (a sparse file)", vec![("x.safetensors", [150_000_000u64.to_le_bytes().as_slice(), b"{}"].concat())], "run --input DIR/x.safetensors --batch-size 2 -o DIR/y.npy", 2, Some("x.safetensors")).grown("x.safetensors", 200_000_000),
        case("batches", "an I16 input, as the whole-file reader says", vec![("x.safetensors", safetensors(&[("input", "I16", &[2, 4, 3], vec![0; 48])]))], "run --input DIR/x.safetensors --batch-size 2 -o DIR/y.npy", 2, Some("x.safetensors")),
        case("batches", "a BOOL h0", vec![("x.safetensors", safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0)), ("h0", "BOOL", &[1, 1, 5], vec![0; 5])]))], "run --input DIR/x.safetensors --batch-size 2 -o DIR/y.npy", 2, Some("x.safetensors")),
        case("batches", "data not covering the file", vec![("x.safetensors", [safetensors(&[("input", "F32", &[2, 1, 3], f32s(6, 1.0))]), vec![0; 4]].concat())], "run --input DIR/x.safetensors --batch-size 2 -o DIR/y.npy", 2, Some("x.safetensors")),
        case("batches", "--batch-size 0", vec![("x.safetensors", input(&[2, 4, 3]))], "run --input DIR/x.safetensors --batch-size 0 -o DIR/y.npy", 2, None),
        case("framework files", "a truncated .keras archive", vec![("m.keras", keras[..keras.len() / 2].to_vec())], "run DIR/m.keras", 2, Some("m.keras")),
        case("framework files", "a .weights.h5 missing a dataset (a recurrent kernel)", vec![("m.weights.h5", framework_file("keras_stack_missing_dataset.weights.h5"))], "run DIR/m.weights.h5", 2, Some("m.weights.h5")),
        case("framework files", "a .keras whose Embedding(mask_zero=True) masks the picked RNN's input, run without lengths", vec![("m.keras", framework_file("keras_embedding_mask_zero.keras")), ("x.npz", framework_file("keras_embedding_mask_zero_no_lengths.npz"))], "check DIR/m.keras --stack simple_rnn/ --fixture DIR/x.npz", 2, Some("x.npz")),
        case("framework files", "the same .keras fed one step at a time", vec![("m.keras", framework_file("keras_embedding_mask_zero.keras"))], "run DIR/m.keras --stack simple_rnn/ --stream", 2, Some("m.keras")),
        case("whole models", "a Softmax(axis=1) over every step's output, the time axis, not the last", vec![("m.keras", framework_file("keras_whole_refused_softmax_time.keras")), ("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", &f32s(6, 1.0)))], "run DIR/m.keras --input DIR/x.npy", 2, Some("axis 1")),
        case("whole models", "a .keras with a layer rnn does not run around its RNN (Conv1D)", vec![("m.keras", framework_file("keras_whole_refused_conv.keras")), ("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", &f32s(6, 1.0)))], "run DIR/m.keras --input DIR/x.npy", 2, Some("m.keras")),
        case("whole models", "a token id outside the embedding's vocabulary", vec![("m.keras", framework_file("keras_whole_classifier.keras")), ("x.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }", &[1i32.to_le_bytes(), 40i32.to_le_bytes(), 2i32.to_le_bytes()].concat()))], "run DIR/m.keras --input DIR/x.npy", 2, Some("x.npy")),
        case("whole models", "a negative token id", vec![("m.keras", framework_file("keras_whole_classifier.keras")), ("x.npy", npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", &[(-1i64).to_le_bytes(), 2i64.to_le_bytes()].concat()))], "run DIR/m.keras --input DIR/x.npy", 2, Some("x.npy")),
        case("whole models", "token ids that are not whole numbers", vec![("m.keras", framework_file("keras_whole_classifier.keras")), ("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", &[1.5f32.to_le_bytes(), 2f32.to_le_bytes()].concat()))], "run DIR/m.keras --input DIR/x.npy", 2, Some("x.npy")),
        case("whole models", "a token id float32 does not hold exactly (a JSON input)", vec![("m.keras", framework_file("keras_whole_classifier.keras")), ("x.json", br#"{"input": [[16777217]]}"#.to_vec())], "run DIR/m.keras --input DIR/x.json", 2, Some("x.json")),
        case("whole models", "vectors for a model that takes token ids", vec![("m.keras", framework_file("keras_whole_classifier.keras")), ("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", &f32s(6, 1.0)))], "run DIR/m.keras --input DIR/x.npy", 2, Some("x.npy")),
        case("whole models", "token ids for a model that takes vectors", vec![("m.keras", framework_file("keras_whole_tagger.keras")), ("x.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }", &[1i32.to_le_bytes(), 2i32.to_le_bytes(), 3i32.to_le_bytes()].concat()))], "run DIR/m.keras --input DIR/x.npy", 2, Some("x.npy")),
        case("whole models", "token ids for a bare RNN", vec![("x.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1, 3), }", &[1i32.to_le_bytes(), 2i32.to_le_bytes(), 3i32.to_le_bytes()].concat()))], "run --input DIR/x.npy", 2, Some("x.npy")),
        case("whole models", "lengths given to a model run whole", vec![("m.keras", framework_file("keras_whole_classifier.keras")), ("x.safetensors", safetensors(&[("input", "I64", &[1, 2], [1i64.to_le_bytes(), 2i64.to_le_bytes()].concat()), ("lengths", "I64", &[1], 1i64.to_le_bytes().to_vec())]))], "run DIR/m.keras --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("whole models", "a whole model whose RNN reads from the end (go_backwards), fed one step at a time", vec![("m.keras", framework_file("keras_whole_flatten.keras"))], "run DIR/m.keras --stream", 2, Some("m.keras")),
        case("whole models", "a whole model run a batch at a time", vec![("m.keras", framework_file("keras_whole_classifier.keras")), ("x.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }", &[1i32.to_le_bytes(), 2i32.to_le_bytes(), 3i32.to_le_bytes()].concat()))], "run DIR/m.keras --input DIR/x.npy --batch-size 1 -o DIR/y.npy", 2, Some("m.keras")),
        case("whole models", "a Keras model of two inputs", vec![("m.keras", framework_file("keras_whole_refused_two_inputs.keras")), ("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", &f32s(6, 1.0)))], "run DIR/m.keras --input DIR/x.npy", 2, Some("m.keras")),
        case("whole models", "a whole model of several outputs fed one step at a time", vec![("m.keras", framework_file("keras_whole_two_heads.keras"))], "run DIR/m.keras --stream", 2, Some("m.keras")),
        case("whole models", "a model of several outputs written to a file of one array", vec![("m.keras", framework_file("keras_whole_two_heads.keras")), ("x.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }", &[1i32.to_le_bytes(), 2i32.to_le_bytes(), 3i32.to_le_bytes()].concat()))], "run DIR/m.keras --input DIR/x.npy -o DIR/y.npy", 2, Some("y.npy")),
        case("whole models", "an RNN option given to a whole model, whose file settles them", vec![("m.keras", framework_file("keras_whole_two_heads.keras")), ("x.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }", &[1i32.to_le_bytes(), 2i32.to_le_bytes(), 3i32.to_le_bytes()].concat()))], "run DIR/m.keras --input DIR/x.npy --nonlinearity relu", 2, None),
        case("framework files", "a tf-keras .keras archive whose config.json lists fewer layers than its weights' groups (keyed by class and place)", vec![("m.keras", tf_keras_archive_short_of_a_layer()), ("x.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }", &[1u8, 0, 0, 0, 2, 0, 0, 0]))], "run DIR/m.keras --input DIR/x.npy", 2, Some("m.keras")),
        case("whole models", "a whole model converted (rnn convert writes the RNN alone)", vec![("m.keras", framework_file("keras_whole_classifier.keras"))], "convert DIR/m.keras -o DIR/m.pt", 2, Some("m.keras")),
        case("whole models", "a whole model with --mask-value", vec![("m.keras", framework_file("keras_whole_tagger.keras")), ("x.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", &f32s(6, 1.0)))], "run DIR/m.keras --input DIR/x.npy --mask-value 0", 2, None),
        case("framework files", "a TF2 checkpoint of a SimpleRNN feeding a Dense layer", vec![("ck.index", framework_file("tf2_checkpoint_dense_head.index")), ("ck.data-00000-of-00001", framework_file("tf2_checkpoint_dense_head.data-00000-of-00001"))], "run DIR/ck", 2, Some("ck.index")),
        case("framework files", "a Keras Masking layer's mask with a hole (a masked step before an unmasked one)", vec![("m.keras", keras.clone()), ("x.safetensors", safetensors(&[("input", "F32", &[1, 3, 3], [f32s(3, 1.0), f32s(3, 0.0), f32s(3, 1.0)].concat())]))], "run DIR/m.keras --input DIR/x.safetensors", 2, Some("x.safetensors")),
        case("framework files", "a Keras Masking layer with --batch-size", vec![("m.keras", keras.clone()), ("x.safetensors", safetensors(&[("input", "F32", &[1, 3, 3], f32s(9, 1.0))]))], "run DIR/m.keras --input DIR/x.safetensors --batch-size 1 -o DIR/y.npy", 2, Some("m.keras")),
        case("framework files", "a TF checkpoint whose data shard is missing", vec![("ck.index", framework_file("tf1_saver_bidirectional.index"))], "run DIR/ck", 2, Some("ck.data-00000-of-00001")),
        case("framework files", "a TF checkpoint index cut short", vec![("ck.index", framework_file("tf1_saver_bidirectional.index")[..100].to_vec())], "run DIR/ck.index", 2, Some("ck.index")),
        case("framework files", "the article's unnamed variables with input size = hidden size", vec![("ck.index", framework_file("article_square.index")), ("ck.data-00000-of-00001", framework_file("article_square.data-00000-of-00001"))], "run DIR/ck", 2, Some("ck.index")),
        case("output", "--output into a missing directory", vec![], "run --output DIR/no/such/dir/y.safetensors", 2, Some("y.safetensors")),
        case("output", "--output over a directory", vec![], "run --output DIR", 2, Some("DIR")),
        case("framework files", "a pickled whole module (torch.save(model))", vec![("m.pt", fixture_file("refused_whole_module.pt"))], "check DIR/m.pt", 2, Some("m.pt")),
        case("framework files", "a torch.export archive whose graph computes a Linear head beside its RNN", vec![("m.pt2", fixture_file("refused_torch_export_head.pt2"))], "check DIR/m.pt2", 2, Some("m.pt2")),
        case("framework files", "a TorchScript archive (torch.jit.save)", vec![("m.pt", fixture_file("refused_torchscript.pt"))], "check DIR/m.pt", 2, Some("m.pt")),
        case("framework files", "a truncated .pt (zip)", vec![("m.pt", fixture_file("torch_zip_bidir.pt")[..3000].to_vec())], "check DIR/m.pt", 2, Some("m.pt")),
        case("framework files", "a truncated legacy .pth (pickle stream)", vec![("m.pth", fixture_file("torch_legacy.pth")[..600].to_vec())], "check DIR/m.pth", 2, Some("m.pth")),
        case("framework files", "a torch.save dict holding a non-tensor (a checkpoint)", vec![("m.pt", legacy_checkpoint())], "check DIR/m.pt", 2, Some("m.pt")),
        case("framework files", "an ONNX whole model with a Conv before its RNN (an op rnn does not run)", vec![("m.onnx", fixture_file("onnx_whole_refused_conv.onnx"))], "check DIR/m.onnx", 2, Some("m.onnx")),
        case("framework files", "an ONNX whole model of two RNNs with a Linear between them (legacy exporter)", vec![("m.onnx", fixture_file("onnx_whole_refused_rnn_linear_rnn.onnx"))], "check DIR/m.onnx", 2, Some("m.onnx")),
        case("framework files", "an ONNX whole model that reads its RNN's h0 input outside the RNN too", vec![("m.onnx", fixture_file("onnx_whole_refused_state_read_twice.onnx"))], "check DIR/m.onnx", 2, Some("m.onnx")),
        case("framework files", "an ONNX RNN node whose activation_alpha ONNX Runtime and the spec read differently", vec![("m.onnx", fixture_file("refused_onnx_alpha_order.onnx"))], "check DIR/m.onnx", 2, Some("m.onnx")),
        case("framework files", "an ONNX ThresholdedRelu without its alpha", vec![("m.onnx", fixture_file("refused_onnx_thresholded_relu_default.onnx"))], "check DIR/m.onnx", 2, Some("m.onnx")),
        case("framework files", "tf2onnx's Keras SimpleRNN with go_backwards (a reversal before its Loop)", vec![("m.onnx", fixture_file("refused_tf2onnx_backwards.onnx"))], "check DIR/m.onnx", 2, Some("m.onnx")),
        case("framework files", "an ONNX graph that unrolls one step of an nn.RNN (the default exporter, W_hh folded away)", vec![("m.onnx", fixture_file("refused_onnx_dynamo_one_step.onnx"))], "check DIR/m.onnx", 2, Some("m.onnx")),
        case("framework files", "a truncated .onnx", vec![("m.onnx", fixture_file("onnx_export_bidir.onnx")[..1000].to_vec())], "check DIR/m.onnx", 2, Some("m.onnx")),
        case("framework files", "ONNX inputs that contradict the model's initial_h initialiser", vec![("m.onnx", fixture_file("onnx_relu_h0_lengths.onnx")), ("x.safetensors", safetensors(&[("input", "F32", &[5, 3, 2], f32s(30, 0.5)), ("h0", "F32", &[2, 3, 3], f32s(18, 0.5))]))], "run DIR/m.onnx --input DIR/x.safetensors", 2, Some("m.onnx")),
    ]
    .into_iter()
    .map(|mut c| {
        // Cases that name a model and an input use this valid input unless they bring one.
        if c.args.contains("DIR/x.safetensors") && !c.files.iter().any(|f| f.0 == "x.safetensors") {
            c.files.push(("x.safetensors", good_input.clone()));
        }
        c
    })
    .collect()
}
/// Runs every case; returns the table rows.
fn run_cases() -> Vec<String> {
    let mut rows = Vec::new();
    for c in cases() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in &c.files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        for (name, len) in &c.grow {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.path().join(name))
                .unwrap();
            file.set_len(*len).unwrap();
        }
        let dir_str = dir.path().to_str().unwrap();
        let args: Vec<String> = c
            .args
            .split_whitespace()
            .map(|a| a.replace("DIR", dir_str))
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_rnn"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).replace(dir_str, "DIR");
        let label = format!("{}: {}", c.group, c.what);
        assert_eq!(out.status.code(), Some(c.exit), "{label}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("internal error"),
            "{label}: {stderr}"
        );
        let lines: Vec<&str> = stderr.lines().collect();
        if c.exit == 2 {
            assert_eq!(lines.len(), 1, "{label}: one line expected: {stderr}");
            assert!(lines[0].starts_with("error: "), "{label}: {stderr}");
        }
        if let Some(file) = c.names {
            assert!(
                stderr.contains(file),
                "{label}: the message must name {file}: {stderr}"
            );
        }
        if c.exit == 0 && c.group == "numbers" {
            assert!(stderr.starts_with("warning: "), "{label}: {stderr}");
        }
        let message = stable(lines.first().copied().unwrap_or("(nothing)")).replace('|', "\\|");
        rows.push(format!(
            "| {} | {} | `rnn {}` | {} | {message} |",
            c.group, c.what, c.args, c.exit
        ));
    }
    rows
}

/// The message with what depends on the machine (memory available now) blanked out.
fn stable(message: &str) -> String {
    match message.split_once("available (") {
        Some((head, tail)) => {
            let rest = tail.split_once(')').map_or("", |(_, r)| r);
            format!("{head}available (…){rest}")
        }
        None => message.to_string(),
    }
}

const BEGIN: &str = "<!-- cases: generated by crates/cli/tests/errors.rs -->";
const END: &str = "<!-- end of cases -->";

#[test]
fn every_bad_input_gets_a_clean_error_and_the_table_says_so() {
    let rows = run_cases();
    let table = format!(
        "{BEGIN}\n| group | case | command | exit | what rnn says (first line of stderr) |\n|---|---|---|---|---|\n{}\n{END}",
        rows.join("\n")
    );
    let doc_path = repo("docs/reliability.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    let current = match (doc.find(BEGIN), doc.find(END)) {
        (Some(a), Some(b)) => &doc[a..b + END.len()],
        _ => "",
    };
    if current != table {
        if std::env::var_os("RNN_BLESS").is_some() {
            let updated = if current.is_empty() {
                format!("{doc}\n{table}\n")
            } else {
                doc.replace(current, &table)
            };
            std::fs::write(&doc_path, updated).unwrap();
        } else {
            panic!(
                "docs/reliability.md is out of date with what rnn says; rerun with RNN_BLESS=1 \
                 to rewrite its table. The table now:\n{table}"
            );
        }
    }
}

#[test]
fn a_failed_run_leaves_an_existing_output_untouched_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("y.safetensors");
    std::fs::write(&out, b"precious").unwrap();
    let bad = dir.path().join("x.safetensors");
    std::fs::write(
        &bad,
        safetensors(&[("input", "F32", &[2, 1, 4], f32s(8, 1.0))]),
    )
    .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_rnn"))
        .args([
            "run",
            "--input",
            bad.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// Every input a fuzz target crashed on (`fuzz/regressions/<target>-<hash>`), through the
/// binary: a clean error or a result, never a crash.
#[test]
fn fuzz_regressions_give_clean_errors() {
    let dir = repo("fuzz/regressions");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let args: Vec<String> = if let Some(rest) = name.strip_prefix("inputs-") {
            // The inputs target's first byte chooses the format: even .npy, odd safetensors.
            let (choice, data) = bytes.split_first().unwrap();
            let ext = if choice % 2 == 0 {
                "npy"
            } else {
                "safetensors"
            };
            let file = scratch.path().join(format!("{rest}.{ext}"));
            std::fs::write(&file, data).unwrap();
            vec![
                "run".into(),
                "--input".into(),
                file.to_str().unwrap().into(),
            ]
        } else if let Some(rest) = name.strip_prefix("batches-") {
            // The batches target's first byte chooses the format, as the inputs target's does.
            let (choice, data) = bytes.split_first().unwrap();
            let ext = if choice % 2 == 0 {
                "npy"
            } else {
                "safetensors"
            };
            let file = scratch.path().join(format!("{rest}.{ext}"));
            std::fs::write(&file, data).unwrap();
            let out = scratch.path().join("y.npy");
            vec![
                "run".into(),
                "--input".into(),
                file.to_str().unwrap().into(),
                "--batch-size".into(),
                "2".into(),
                "-o".into(),
                out.to_str().unwrap().into(),
            ]
        } else if let Some(rest) = name.strip_prefix("onnx-") {
            // The onnx target reads its input as a `.onnx` file.
            let file = scratch.path().join(format!("{rest}.onnx"));
            std::fs::write(&file, &bytes).unwrap();
            vec!["check".into(), file.to_str().unwrap().into()]
        } else if name.starts_with("weights-") {
            vec!["inspect".into(), path.to_str().unwrap().into()]
        } else {
            vec!["check".into(), path.to_str().unwrap().into()]
        };
        let out = Command::new(env!("CARGO_BIN_EXE_rnn"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(out.status.code(), Some(0..=2)), "{name}: {stderr}");
        assert!(
            !stderr.contains("internal error") && !stderr.contains("panicked"),
            "{name}: {stderr}"
        );
        count += 1;
    }
    assert!(count >= 1, "no regression inputs in {}", dir.display());
}
