//! `cargo xtask gpu-check`: builds the CUDA binary and the CUDA test binary here (no GPU
//! needed) and packs them with the run script into `.gpu/` (git-ignored), for the GPU machine,
//! which has no Rust toolchain. It prints how to start the run.

use std::path::Path;

use anyhow::{bail, Context, Result};

pub fn run(root: &Path) -> Result<()> {
    crate::cuda_build(root, &[])?;
    // The test binary's path comes from cargo's JSON messages.
    let args: Vec<String> = [
        "test",
        "--release",
        "-p",
        "rnn-cli",
        "--test",
        "devices",
        "--no-run",
        "--message-format=json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = crate::cuda_cargo(root, &args)?.output()?;
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
    // The GPU machine takes at most 64 MiB along: debug information stays here.
    for binary in ["rnn", "devices-test"] {
        let status = std::process::Command::new("strip")
            .arg(pack.join(binary))
            .status()?;
        if !status.success() {
            bail!("strip {binary} failed");
        }
    }
    println!("packed {}", pack.display());
    println!("on the GPU machine, from the checkout's root (carry .gpu):");
    println!("  bash .gpu/gpu-check.sh 2>&1 | tee gpu-check.log");
    println!("then commit what it printed as docs/gpu-check.md");
    Ok(())
}
