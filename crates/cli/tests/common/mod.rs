//! Helpers shared by the CLI's test files: where the binary, the checkout and the fixtures are,
//! and the flags a fixture asks for. On the GPU machine (no Rust toolchain, another path)
//! `RNN_BIN` and `RNN_REPO_ROOT` point at the carried binary and checkout.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `rnn` binary under test.
pub fn bin() -> PathBuf {
    std::env::var_os("RNN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rnn")))
}

/// Runs `rnn` with `args`.
pub fn rnn(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("cannot start rnn")
}

/// A path inside the checkout.
pub fn repo(path: &str) -> PathBuf {
    let root = std::env::var_os("RNN_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    root.join(path)
}

/// Every committed fixture, sorted.
pub fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("tests/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files
}

/// The `rnn check` flags a fixture needs because its weights file cannot carry them (a
/// PyTorch state_dict has no nonlinearity or batch_first), from its metadata's `check_args`.
pub fn check_args(path: &Path) -> Vec<String> {
    metadata_words(path, "check_args")
}

/// The words of a fixture's metadata value `key` (none where it lacks the key).
pub fn metadata_words(path: &Path, key: &str) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap_or_default();
    meta.get(key)
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// `rnn check MODEL --fixture FIXTURE FLAGS…` on files of `tests/fixtures/files/` whose fixture
/// is an `.npz` of the framework's own outputs (copied from shared/cases): passes when every
/// one of the `tensors` outputs is within the default tolerance.
pub fn check_npz(model: &str, fixture: &str, flags: &[&str], tensors: usize) {
    let dir = repo("tests/fixtures/files");
    let (model, fixture) = (dir.join(model), dir.join(fixture));
    let mut args = vec![
        "check",
        model.to_str().unwrap(),
        "--fixture",
        fixture.to_str().unwrap(),
    ];
    args.extend(flags);
    let out = rnn(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}\n{stdout}\n{stderr}");
    let all = format!("{tensors} of {tensors} tensors within tolerance");
    assert!(stdout.contains(&all), "{stdout}");
}
