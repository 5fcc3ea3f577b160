//! `cargo xtask ...`: the project's automation, in Rust.

mod bench;
mod fixtures;
mod recover_seed;

use std::path::PathBuf;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  recover-seed   recover the article's weights from its printed table into models/seed/
  fixtures       regenerate tests/fixtures/ with the real frameworks (creates a cached venv)
  bench          rnn against torch, ONNX Runtime and Keras on the CPU [--threads 2] [--rounds 5]";

fn main() -> Result<()> {
    let root = workspace_root();
    match std::env::args().nth(1).as_deref() {
        Some("recover-seed") => recover_seed::run(&root),
        Some("fixtures") => fixtures::run(&root),
        Some("bench") => bench::run(&root, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
