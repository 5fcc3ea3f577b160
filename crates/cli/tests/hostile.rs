//! Files built to amplify: small on disk, claiming much, or naming the same bytes many times.
//! Each is generated here, run through the real binary, and must end with exit 2 (one line on
//! stderr) while the child's peak resident memory stays under the case's budget.
//!
//! The peak comes from `getrusage(RUSAGE_CHILDREN)`: the largest of all children waited for so
//! far. So the cases run one after another in one test, in order of their budgets, and each is
//! checked right after it ends; the first case over its budget is the one that fails. No case
//! is timed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bin, repo};

const MIB: i64 = 1 << 20;

/// The peak resident memory of the largest child so far, in bytes (Linux reports KiB).
fn children_peak() -> i64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    usage.max_rss() * 1024
}

/// Runs `rnn args` (stdin from `stdin` when given), and checks exit 2, a one-line stderr with
/// `expect` in it, and a peak under `budget` bytes.
fn refused(what: &str, args: &[&str], stdin: Option<&Path>, expect: &str, budget: i64) {
    let mut command = Command::new(bin());
    command.args(args);
    command.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
        None => Stdio::null(),
    });
    let out = command.output().expect("cannot start rnn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    assert!(
        stderr.len() < 4200,
        "{what}: a message of {} bytes",
        stderr.len()
    );
    assert!(
        stderr.contains(expect),
        "{what}: expected `{expect}` in: {stderr}"
    );
    let peak = children_peak();
    assert!(
        peak < budget,
        "{what}: peak resident memory {} MiB, over the case's budget of {} MiB",
        peak / MIB,
        budget / MIB
    );
}

/// A protobuf varint.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited protobuf field.
fn field(tag: u64, body: &[u8], out: &mut Vec<u8>) {
    varint(tag << 3 | 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// A zip of stored entries, laid out as zip writers do, whose central directory then names the
/// first entry again under each of `aliases` (the same local header and data).
fn zip_with_aliases(entries: &[(&str, &[u8])], aliases: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut first = None;
    let record = |name: &str, crc: u32, len: u32, offset: u32, central: &mut Vec<u8>| {
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        central.extend(crc.to_le_bytes());
        central.extend(len.to_le_bytes());
        central.extend(len.to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0u8; 12]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    };
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let (crc, len, offset) = (crc.sum(), data.len() as u32, out.len() as u32);
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        out.extend(crc.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend([0, 0]);
        out.extend(name.as_bytes());
        out.extend_from_slice(data);
        record(name, crc, len, offset, &mut central);
        first.get_or_insert((crc, len, offset));
    }
    let (crc, len, offset) = first.unwrap();
    for alias in aliases {
        record(alias, crc, len, offset, &mut central);
    }
    let count = (entries.len() + aliases.len()) as u16;
    let start = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0, 0, 0, 0]);
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(start.to_le_bytes());
    out.extend([0, 0]);
    out
}

/// A `.npy` of float32 zeros of `shape`.
fn npy_zeros(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.resize(out.len() + shape.iter().product::<usize>() * 4, 0);
    out
}

/// `torch.save`'s pickle (protocol 2) of a dict whose entries `names` are each a float32
/// tensor of `count` elements over storage `0`.
fn state_dict_pickle(names: &[String], count: u32) -> Vec<u8> {
    let mut p = b"\x80\x02}(".to_vec();
    for name in names {
        p.push(b'X');
        p.extend((name.len() as u32).to_le_bytes());
        p.extend(name.as_bytes());
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ");
        p.extend(count.to_le_bytes());
        p.extend(b"tQJ\x00\x00\x00\x00(J");
        p.extend(count.to_le_bytes());
        p.extend(b"t(J\x01\x00\x00\x00t\x89ccollections\nOrderedDict\n)RtR");
    }
    p.extend(b"u.");
    p
}

fn deflated_options() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn files_built_to_amplify_are_refused_within_their_budget() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let model = repo("tests/fixtures/torch_l2_no_bias.safetensors");
    let model = model.to_str().unwrap();

    // 5,000 state_dict entries, each viewing the whole of one 1 MiB storage: 5 GiB if each
    // were copied, and a model 5,000 times its file if they were all layers.
    let names: Vec<String> = (0..5000).map(|i| format!("extra.{i}")).collect();
    let count = 1u32 << 18;
    let storage = vec![0u8; 4 << 18];
    let pickle = state_dict_pickle(&names, count);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in [
        ("archive/data.pkl", pickle.as_slice()),
        ("archive/data/0", storage.as_slice()),
    ] {
        zip.start_file(name, stored).unwrap();
        zip.write_all(data).unwrap();
    }
    let shared = write(dir, "shared.pt", &zip.finish().unwrap().into_inner());
    refused(
        "5,000 tensors viewing one storage",
        &["inspect", &shared],
        None,
        "view the same storage again and again",
        200 * MIB,
    );

    // One memoised 1 MiB string read back 5,000 times.
    let mut pickle = b"\x80\x02](X".to_vec();
    pickle.extend((1u32 << 20).to_le_bytes());
    pickle.resize(pickle.len() + (1 << 20), b'a');
    pickle.extend(b"q\x00");
    pickle.extend(b"h\x00".repeat(5000));
    pickle.extend(b"e.");
    let memo = write(
        dir,
        "memo.pt",
        &zip_with_aliases(&[("archive/data.pkl", &pickle)], &[]),
    );
    refused(
        "a memoised string read 5,000 times",
        &["inspect", &memo],
        None,
        "memo reads copy more than",
        200 * MIB,
    );

    // One 1 MiB array named 1,000 times by the central directory.
    let array = npy_zeros(&[1, 1 << 16, 4]);
    let aliases: Vec<String> = (0..1000).map(|i| format!("copy{i}.npy")).collect();
    let npz = write(
        dir,
        "aliases.npz",
        &zip_with_aliases(&[("input.npy", &array)], &aliases),
    );
    refused(
        "an .npz whose entries share one array",
        &["run", model, "--input", &npz],
        None,
        "share bytes",
        200 * MIB,
    );

    // Five million empty attributes on one ONNX node: 10 MB on disk, gigabytes decoded.
    let mut node = Vec::new();
    field(4, b"RNN", &mut node);
    node.extend([0x2a, 0x00].repeat(5_000_000));
    let (mut graph, mut onnx) = (Vec::new(), Vec::new());
    field(1, &node, &mut graph);
    field(7, &graph, &mut onnx);
    let onnx = write(dir, "attributes.onnx", &onnx);
    refused(
        "5,000,000 empty ONNX attributes",
        &["inspect", &onnx],
        None,
        "more than rnn reads",
        200 * MIB,
    );

    // 3,000 RNN nodes naming the same two 64 KiB initialisers: a 130 KB file describing
    // 390 MB of weights.
    let h = 128usize;
    let tensor = |name: &str, dims: &[usize], raw: &[u8]| {
        let mut t = Vec::new();
        for &d in dims {
            varint(1 << 3, &mut t);
            varint(d as u64, &mut t);
        }
        t.extend([2 << 3, 1]);
        field(8, name.as_bytes(), &mut t);
        field(9, raw, &mut t);
        t
    };
    let mut graph = Vec::new();
    let mut x = "X".to_string();
    for k in 0..3000 {
        let mut node = Vec::new();
        for input in [x.as_str(), "W", "R"] {
            field(1, input.as_bytes(), &mut node);
        }
        field(2, format!("Y{k}").as_bytes(), &mut node);
        field(4, b"RNN", &mut node);
        let mut attribute = Vec::new();
        field(1, b"hidden_size", &mut attribute);
        attribute.push(3 << 3);
        varint(h as u64, &mut attribute);
        varint(20 << 3, &mut attribute);
        attribute.push(2);
        field(5, &attribute, &mut node);
        field(1, &node, &mut graph);
        let mut squeeze = Vec::new();
        field(1, format!("Y{k}").as_bytes(), &mut squeeze);
        field(1, b"axes", &mut squeeze);
        x = format!("X{}", k + 1);
        field(2, x.as_bytes(), &mut squeeze);
        field(4, b"Squeeze", &mut squeeze);
        field(1, &squeeze, &mut graph);
    }
    let weights = vec![0u8; 4 * h * h];
    field(5, &tensor("W", &[1, h, h], &weights), &mut graph);
    field(5, &tensor("R", &[1, h, h], &weights), &mut graph);
    let mut axes = tensor("axes", &[1], &1i64.to_le_bytes());
    axes.extend([2 << 3, 7]);
    field(5, &axes, &mut graph);
    let mut input = Vec::new();
    field(1, b"X", &mut input);
    field(11, &input, &mut graph);
    let mut onnx = Vec::new();
    field(7, &graph, &mut onnx);
    let onnx = write(dir, "shared_initialisers.onnx", &onnx);
    refused(
        "3,000 ONNX RNN nodes sharing their initialisers",
        &["inspect", &onnx],
        None,
        "nodes that share their initialisers",
        200 * MIB,
    );

    // A nested Keras model whose `layers` links back to the file's own (an HDF5 cycle).
    let cycle = repo("tests/fixtures/files/keras_stack_layers_cycle.weights.h5");
    refused(
        "an HDF5 group that links back up",
        &["inspect", cycle.to_str().unwrap()],
        None,
        "nested more than 32 deep",
        200 * MIB,
    );

    // A torch.save storage deflated from 256 MiB to a few hundred KB (torch stores them
    // uncompressed).
    let pickle = state_dict_pickle(&["weight_ih_l0".to_string()], 1 << 26);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&pickle).unwrap();
    zip.start_file("archive/data/0", deflated_options())
        .unwrap();
    zip.write_all(&vec![0u8; 1 << 28]).unwrap();
    let inflating = write(dir, "inflating.pt", &zip.finish().unwrap().into_inner());
    refused(
        "a torch storage deflated from 256 MiB",
        &["inspect", &inflating],
        None,
        "more than the",
        200 * MIB,
    );

    // A .keras whose config.json inflates to 64 MiB of JSON arrays.
    let mut config = b"[".to_vec();
    config.extend(b"[0],".repeat(16 << 20));
    config.extend(b"[0]]");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = deflated_options();
    zip.start_file("config.json", deflated).unwrap();
    zip.write_all(&config).unwrap();
    let keras = write(dir, "bomb.keras", &zip.finish().unwrap().into_inner());
    refused(
        "a .keras config.json of 64 MiB",
        &["inspect", &keras],
        None,
        "config.json",
        200 * MIB,
    );

    // A 10 MB line of one time step on --stream's stdin.
    let line = write(dir, "line.txt", &b"0.5,".repeat(2_500_000));
    refused(
        "one 10 MB line to --stream",
        &["run", model, "--stream"],
        Some(Path::new(&line)),
        "one line holds one time step",
        200 * MIB,
    );

    // Devices and FIFOs are not files: refused at once, never read or waited on.
    let fifo = dir.join("fifo.safetensors");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.to_str().unwrap();
    for args in [
        vec!["inspect", "/dev/zero"],
        vec!["run", model, "--input", "/dev/zero"],
        vec!["check", "/dev/urandom"],
        vec!["inspect", fifo],
        vec!["run", model, "--input", fifo],
    ] {
        refused("not a regular file", &args, None, "", 200 * MIB);
    }

    // A valid 256 MiB array in a deflated .npz of a few hundred KB: read once, not twice.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("input.npy", deflated).unwrap();
    zip.write_all(&npy_zeros(&[1, 1 << 24, 4])).unwrap();
    let big = write(dir, "big.npz", &zip.finish().unwrap().into_inner());
    refused(
        "a 256 MiB array in an .npz",
        &["run", model, "--input", &big],
        None,
        "input_size",
        (256 + 128) * MIB,
    );
}
