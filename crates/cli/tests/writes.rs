//! Every command that writes a file, against symlinks planted where temporary files once went
//! (`.NAME.tmp-PID`, a name anyone could predict): the files they point to stay untouched, the
//! output is a regular file with the mode a plain create gives, and a failed write leaves the
//! directory as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

mod common;
use common::{repo, rnn};

/// How many process ids around this one get a planted link: the child's id is not known before
/// it starts, and the tests run in parallel.
const PIDS: u32 = 4096;

/// A safetensors input for the article's model: `input` [seq, batch, 3] of `values`.
fn input(seq: usize, batch: usize, values: impl Fn(usize) -> f32) -> Vec<u8> {
    let n = seq * batch * 3;
    let header = format!(
        "{{\"input\":{{\"dtype\":\"F32\",\"shape\":[{seq},{batch},3],\"data_offsets\":[0,{}]}}}}",
        n * 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend((0..n).flat_map(|i| values(i).to_le_bytes()));
    bytes
}

fn listing(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// Plants `.NAME.tmp-PID` symlinks to `victim` in `dir` for the process ids after this one's.
fn plant(dir: &Path, name: &str, victim: &Path) {
    let me = std::process::id();
    for pid in me.saturating_sub(16)..me + PIDS {
        std::os::unix::fs::symlink(victim, dir.join(format!(".{name}.tmp-{pid}"))).unwrap();
    }
}

/// Runs `args` (`OUT` stands for the output path, `IN` for the input) in a directory full of
/// planted links and checks what the brief of every write says.
fn writes_safely(name: &str, args: &[&str], input_bytes: Option<Vec<u8>>) {
    use std::os::unix::fs::PermissionsExt;

    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"not yours").unwrap();
    let dir = tempfile::tempdir().unwrap();
    plant(dir.path(), name, &victim);
    // What a plain create gives under this process's umask, which the child inherits.
    let reference = dir.path().join("reference");
    std::fs::File::create(&reference).unwrap();
    let input_path = outside.path().join("x.safetensors");
    if let Some(bytes) = input_bytes {
        std::fs::write(&input_path, bytes).unwrap();
    }
    let before = listing(dir.path());
    let out_path = dir.path().join(name);
    let args: Vec<String> = args
        .iter()
        .map(|a| match *a {
            "OUT" => out_path.to_str().unwrap().to_string(),
            "IN" => input_path.to_str().unwrap().to_string(),
            other => other.to_string(),
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = rnn(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");

    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours", "{args:?}");
    let meta = std::fs::symlink_metadata(&out_path).unwrap();
    assert!(meta.file_type().is_file(), "{args:?}: not a regular file");
    assert!(meta.len() > 0, "{args:?}: empty");
    let mode = |m: std::fs::Metadata| m.permissions().mode() & 0o7777;
    assert_eq!(
        mode(meta),
        mode(std::fs::metadata(&reference).unwrap()),
        "{args:?}: the mode of a plain create"
    );
    // The planted links are still links, and nothing else was left beside the output.
    let mut after = listing(dir.path());
    assert!(after.remove(out_path.file_name().unwrap()));
    assert_eq!(after, before, "{args:?}");
    let link = dir
        .path()
        .join(format!(".{name}.tmp-{}", std::process::id()));
    assert!(std::fs::symlink_metadata(link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn run_output_does_not_follow_planted_links() {
    writes_safely("y.safetensors", &["run", "-o", "OUT"], None);
    writes_safely("y.npy", &["run", "-o", "OUT"], None);
    writes_safely("y.json", &["run", "-o", "OUT"], None);
}

#[test]
fn convert_does_not_follow_planted_links() {
    let model = repo("models/seed/article.safetensors");
    writes_safely(
        "c.safetensors",
        &["convert", model.to_str().unwrap(), "-o", "OUT"],
        None,
    );
}

#[test]
fn init_does_not_follow_planted_links() {
    writes_safely(
        "w.safetensors",
        &[
            "init",
            "--input-size",
            "3",
            "--hidden-size",
            "2",
            "-o",
            "OUT",
        ],
        None,
    );
}

#[test]
fn plot_does_not_follow_planted_links() {
    writes_safely("p.svg", &["plot", "-o", "OUT"], None);
    writes_safely("p.png", &["plot", "-o", "OUT"], None);
}

#[test]
fn batch_outputs_do_not_follow_planted_links() {
    let x = input(2, 5, |i| i as f32 * 0.1);
    for name in ["y.npy", "y.safetensors"] {
        writes_safely(
            name,
            &["run", "--input", "IN", "--batch-size", "2", "-o", "OUT"],
            Some(x.clone()),
        );
    }
}

/// A batch run that fails after its output file was created (a NaN in the last batch, with
/// --strict) leaves the directory as it was: no output, no temporary file.
#[test]
fn a_failed_batch_run_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.safetensors");
    std::fs::write(
        &x,
        input(2, 5, |i| if i == 2 * 5 * 3 - 1 { f32::NAN } else { 1.0 }),
    )
    .unwrap();
    for name in ["y.npy", "y.safetensors"] {
        let before = listing(dir.path());
        let out = rnn(&[
            "run",
            "--input",
            x.to_str().unwrap(),
            "--batch-size",
            "2",
            "--strict",
            "-o",
            dir.path().join(name).to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("NaN"), "{stderr}");
        assert_eq!(listing(dir.path()), before, "{name}");
    }
}

/// Failed writes of every other command leave the directory as it was.
#[test]
fn failed_writes_leave_the_directory_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep"), b"kept").unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let cases: Vec<Vec<String>> = vec![
        // CSV holds one sequence; the article's batch has 4.
        vec!["run".into(), "-o".into(), d("y.csv")],
        vec!["plot".into(), "-o".into(), d("p.jpg")],
        vec![
            "init".into(),
            "--input-size".into(),
            "100000000".into(),
            "--hidden-size".into(),
            "100000000".into(),
            "-o".into(),
            d("w.safetensors"),
        ],
        vec!["convert".into(), d("keep"), "-o".into(), d("c.safetensors")],
    ];
    for args in cases {
        let before = listing(dir.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rnn(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(listing(dir.path()), before, "{args:?}");
    }
}

/// Writing over a directory is refused, and says so.
#[test]
fn an_output_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("y.safetensors");
    std::fs::create_dir(&target).unwrap();
    let out = rnn(&["run", "-o", target.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is a directory"), "{stderr}");
    assert_eq!(listing(dir.path()).len(), 1);
}

/// An output that exists and is not a regular file (a FIFO, a symlink to a device or to a
/// file) is refused before anything is written: it is neither replaced nor written through.
#[test]
fn an_output_that_is_not_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.safetensors");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"not yours").unwrap();
    let to_file = dir.path().join("to_file.safetensors");
    std::os::unix::fs::symlink(&victim, &to_file).unwrap();
    let to_device = dir.path().join("to_device.npy");
    std::os::unix::fs::symlink("/dev/null", &to_device).unwrap();
    for target in [&fifo, &to_file, &to_device] {
        let before = listing(dir.path());
        let out = rnn(&["run", "-o", target.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target:?}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
        assert_eq!(listing(dir.path()), before, "{target:?}");
        let kind = std::fs::symlink_metadata(target).unwrap().file_type();
        assert!(!kind.is_file(), "{target:?} was replaced");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
}
