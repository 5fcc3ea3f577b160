//! `cargo xtask gpu-check`: builds the CUDA binary and the CUDA test binary here (no GPU
//! needed) and packs them with the run script into `.gpu/` (git-ignored), for the GPU machine,
//! which has no Rust toolchain. It prints how to start the run.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn run(root: &Path) -> Result<()> {
    crate::cuda_build(root, &[])?;
    let home = crate::cuda_toolkit::install()?;
    // The test binary's path comes from cargo's JSON messages.
    let out = Command::new("cargo")
        .args([
            "test",
            "--release",
            "--features",
            "cuda",
            "-p",
            "rnn-cli",
            "--test",
            "devices",
        ])
        .args(["--no-run", "--message-format=json"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join("target/cuda"))
        .env("CUDA_HOME", &home)
        .env("NVCC", home.join("bin/nvcc"))
        .env(
            "CUDA_COMPUTE_CAP",
            std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into()),
        )
        .output()?;
    if !out.status.success() {
        bail!(
            "building the CUDA tests failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let test_binary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "devices")
        .find_map(|v| v["executable"].as_str().map(String::from))
        .context("cargo did not report the devices test binary")?;
    let pack = root.join(".gpu");
    std::fs::create_dir_all(&pack)?;
    let copy = |from: &Path, to: &str| -> Result<()> {
        std::fs::copy(from, pack.join(to))
            .with_context(|| format!("cannot copy {}", from.display()))?;
        Ok(())
    };
    copy(&root.join("target/cuda/release/rnn"), "rnn")?;
    copy(Path::new(&test_binary), "devices-test")?;
    copy(&root.join("xtask/gpu/gpu-check.sh"), "gpu-check.sh")?;
    copy(&root.join("xtask/gpu/dtype-table.sh"), "dtype-table.sh")?;
    println!("packed {}", pack.display());
    println!("on the GPU machine, from the checkout's root (carry .gpu):");
    println!("  bash .gpu/gpu-check.sh 2>&1 | tee gpu-check.log");
    println!("then commit what it printed as docs/gpu-check.md");
    Ok(())
}
