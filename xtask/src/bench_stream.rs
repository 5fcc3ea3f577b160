//! `cargo xtask bench-stream`: what `rnn run --stream` costs per step over a whole-sequence
//! run of the same steps, on the article's model (3 inputs, 5 neurons).
//!
//! Both runs read the same CSV text (one step per line) and write one text line per step, so
//! their difference is what streaming adds: a forward per step instead of one for the
//! sequence, and the output flushed as it comes. Rounds alternate the two, and the medians are
//! compared.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The bound on the overhead per step.
const BOUND_US: f64 = 5.0;

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let (mut steps, mut rounds) = (100_000usize, 7usize);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--steps" => steps = value.parse()?,
            "--rounds" => rounds = value.parse()?,
            other => bail!("unknown flag {other}; expected --steps N, --rounds N"),
        }
    }
    let rnn = crate::bench::build_rnn(root)?;
    let model = root.join("models/seed/article.safetensors");
    let dir = std::env::temp_dir().join(format!("rnn-bench-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("steps.csv");
    std::fs::write(&input, sequence(steps))?;
    let whole_out = dir.join("whole.csv");

    let mut whole = Vec::new();
    let mut streamed = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let status = Command::new(&rnn)
            .arg("run")
            .arg(&model)
            .arg("--input")
            .arg(&input)
            .arg("-o")
            .arg(&whole_out)
            .stderr(Stdio::null())
            .status()?;
        whole.push(start.elapsed().as_secs_f64());
        if !status.success() {
            bail!("rnn run failed ({status})");
        }
        let start = Instant::now();
        let status = Command::new(&rnn)
            .arg("run")
            .arg(&model)
            .arg("--stream")
            .stdin(std::fs::File::open(&input)?)
            .stdout(std::fs::File::create(dir.join("streamed.txt"))?)
            .status()?;
        streamed.push(start.elapsed().as_secs_f64());
        if !status.success() {
            bail!("rnn run --stream failed ({status})");
        }
    }
    let (whole, streamed) = (
        crate::stats::median(&mut whole),
        crate::stats::median(&mut streamed),
    );
    let overhead_us = (streamed - whole) / steps as f64 * 1e6;
    println!("steps: {steps}, rounds: {rounds} (medians)");
    println!("| run | total s | µs per step |");
    println!("|---|---|---|");
    println!(
        "| whole sequence (CSV in, CSV out) | {whole:.3} | {:.2} |",
        whole / steps as f64 * 1e6
    );
    println!(
        "| --stream (stdin, stdout) | {streamed:.3} | {:.2} |",
        streamed / steps as f64 * 1e6
    );
    println!(
        "overhead of streaming: {overhead_us:.2} µs per step ({} the {BOUND_US} µs bound)",
        if overhead_us <= BOUND_US {
            "within"
        } else {
            "OVER"
        }
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `steps` lines of 3 pseudo-random values in [-2, 2), 6 decimals, as CSV.
fn sequence(steps: usize) -> String {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut text = String::with_capacity(steps * 30);
    for _ in 0..steps {
        let row: Vec<String> = (0..3)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!(
                    "{:.6}",
                    (state >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
                )
            })
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    text
}
