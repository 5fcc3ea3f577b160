//! `cargo xtask bench-backward`: a training step's forward and backward through one tanh
//! layer, rnn-core (the fused forward and backward, `cpu/bptt.rs`) against torch's `nn.RNN`
//! with autograd, in alternating rounds on the same case; the gradients checked against each
//! other.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str =
    "usage: cargo xtask bench-backward [--threads 2] [--rounds 5] [--isa avx2|avx512]";

/// The shapes issue 18 names: (batch, seq, input, hidden).
const SHAPES: [(usize, usize, usize, usize); 2] = [(64, 100, 128, 128), (256, 50, 256, 512)];

/// Timed passes per round and side.
const RUNS: usize = 10;

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let (mut threads, mut rounds) = (2usize, 5usize);
    // Both sides held to one x86-64 level (rnn's kernels, torch's MKL and oneDNN), as
    // `cargo xtask bench --isa`.
    let mut isa_env = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--threads" => threads = value.parse()?,
            "--rounds" => rounds = value.parse()?,
            "--isa" => isa_env = crate::bench::Isa::parse(value)?.env().to_vec(),
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    let example = crate::bench::build_release(
        root,
        &["-p", "rnn-core", "--example", "bench_backward"],
        "examples/bench_backward",
    )?;
    let python = crate::fixtures::venv_python(root)?;
    let scratch = std::env::temp_dir().join(format!("rnn-bench-backward-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "threads {threads}, rounds {rounds}, {RUNS} passes each, isa {}, load before: {}",
        if isa_env.is_empty() {
            "as detected".to_string()
        } else {
            format!("{isa_env:?}")
        },
        load.trim()
    );
    for (b, t, i, h) in SHAPES {
        let case = scratch.join(format!("case-{b}-{t}-{i}-{h}.safetensors"));
        let (mut ours, mut torch, mut worst, mut scale) = (Vec::new(), Vec::new(), 0f64, 0f64);
        for _ in 0..rounds {
            let out = Command::new(&example)
                .args([b, t, i, h, RUNS].map(|n| n.to_string()))
                .arg(&case)
                .env("RAYON_NUM_THREADS", threads.to_string())
                .envs(isa_env.iter().copied())
                .output()?;
            if !out.status.success() {
                bail!(
                    "bench_backward failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            ours.push(v["median_ms"].as_f64().context("median_ms")?);

            let out = Command::new(&python)
                .arg(root.join("xtask/bench/backward_peer.py"))
                .arg(&case)
                .args([
                    "--threads",
                    &threads.to_string(),
                    "--runs",
                    &RUNS.to_string(),
                ])
                .envs(isa_env.iter().copied())
                .output()?;
            if !out.status.success() {
                bail!(
                    "backward_peer.py failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            torch.push(v["median_ms"].as_f64().context("median_ms")?);
            worst = worst.max(v["max_abs_diff"].as_f64().context("max_abs_diff")?);
            scale = scale.max(v["max_abs_gradient"].as_f64().context("max_abs_gradient")?);
        }
        let (ours, torch) = (
            crate::stats::median(&mut ours),
            crate::stats::median(&mut torch),
        );
        println!(
            "({b}, {t}, {i}, {h}): rnn {ours:.2} ms  torch {torch:.2} ms  | rnn/torch {:.2} | gradients agree within {worst:.1e} (largest {scale:.1})",
            ours / torch
        );
        // f32 sums over batch · seq terms in other orders: relative, not absolute, agreement.
        if worst > 1e-4 * scale.max(1.0) {
            bail!("the gradients disagree by {worst:e} on ({b}, {t}, {i}, {h})");
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load after: {}", load.trim());
    Ok(())
}
