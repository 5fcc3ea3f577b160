//! `cargo xtask ...`: the project's automation, in Rust.

mod bench;
mod bench_backward;
mod bench_stream;
mod cuda_toolkit;
mod fixtures;
mod gpu_check;
mod recover_seed;
mod stats;

use std::path::PathBuf;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  recover-seed   recover the article's weights from its printed table into models/seed/
  fixtures       regenerate tests/fixtures/ with the real frameworks (creates a cached venv)
  bench          rnn against torch, ONNX Runtime and Keras on the CPU [--threads 2] [--rounds 5] [--shape B,T,I,H]
  bench-backward a training step (forward + backward) against torch's autograd [--threads 2] [--rounds 5] [--isa avx2|avx512]
  bench-stream   what `rnn run --stream` adds per step over a whole run [--steps 100000] [--rounds 7]
  cuda-toolkit   install a CUDA 13.0 build toolkit from PyPI (no GPU needed); print CUDA_HOME
  cuda-build     cuda-toolkit, then cargo build --release --features cuda [and extra cargo args]
  gpu-check      build the CUDA binary and tests and pack them in .gpu/ for the GPU machine";

fn main() -> Result<()> {
    let root = workspace_root();
    match std::env::args().nth(1).as_deref() {
        Some("recover-seed") => recover_seed::run(&root),
        Some("fixtures") => fixtures::run(&root),
        Some("cuda-toolkit") => cuda_toolkit::install().map(|_| ()),
        Some("cuda-build") => cuda_build(&root, &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("gpu-check") => gpu_check::run(&root),
        Some("bench-stream") => {
            bench_stream::run(&root, &std::env::args().skip(2).collect::<Vec<_>>())
        }
        Some("bench-backward") => {
            bench_backward::run(&root, &std::env::args().skip(2).collect::<Vec<_>>())
        }
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

/// Builds `--features cuda` against the PyPI toolkit into `target/cuda/`, for compute
/// capability 9.0 (H100) unless CUDA_COMPUTE_CAP says otherwise. Extra arguments go to cargo
/// (`test --no-run`, `clippy -- -D warnings`, ...): the default is `build --release`.
fn cuda_build(root: &std::path::Path, extra: &[String]) -> Result<()> {
    let args: Vec<String> = if extra.is_empty() {
        vec!["build".into(), "--release".into()]
    } else {
        extra.to_vec()
    };
    let status = cuda_cargo(root, &args)?.status()?;
    if !status.success() {
        bail!("cargo {} --features cuda failed", args.join(" "));
    }
    Ok(())
}

/// `cargo ARGS --features cuda`, with the toolkit installed and its environment set.
fn cuda_cargo(root: &std::path::Path, args: &[String]) -> Result<std::process::Command> {
    let home = cuda_toolkit::install()?;
    let path = format!(
        "{}:{}",
        home.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // `--features cuda` goes before a `--` that passes the rest to the tool (clippy, tests).
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut cmd = std::process::Command::new("cargo");
    cmd.args(&args[..split])
        .args(["--features", "cuda"])
        .args(&args[split..])
        .current_dir(root)
        // Beside the CPU build, not over it: target/cuda/release/rnn.
        .env("CARGO_TARGET_DIR", root.join("target/cuda"))
        .env("CUDA_HOME", &home)
        .env("CUDA_PATH", &home)
        .env("NVCC", home.join("bin/nvcc"))
        .env("PATH", path)
        .env(
            "CUDA_COMPUTE_CAP",
            std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into()),
        );
    Ok(cmd)
}
