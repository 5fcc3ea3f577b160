//! `cargo xtask bench`: `rnn bench` against torch, ONNX Runtime and Keras on the same shapes,
//! interleaved in one run with the same thread count; a table of medians with the ratio
//! rnn / best peer, the outputs checked against each other, a JSON record and a PNG chart.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// (batch, seq, input, hidden): the shapes of the CPU performance issue.
const SHAPES: [(usize, usize, usize, usize); 5] = [
    (1, 2, 3, 5),
    (4, 2, 3, 5),
    (64, 100, 128, 128),
    (1, 1000, 64, 64),
    (256, 50, 256, 512),
];

const PEERS: [&str; 3] = ["torch", "onnxruntime", "keras"];

/// Outputs must agree within this in f32 (different summation orders and tanh
/// implementations).
const AGREEMENT: f64 = 1e-4;

/// The same in f64, where rnn is held to 1e-12 against the frameworks on small cases; the
/// benchmark's long sequences leave room for the two summation orders to drift apart more.
const AGREEMENT_F64: f64 = 1e-10;

const USAGE: &str =
    "cargo xtask bench [--threads N] [--rounds N] [--dtype f32|f64] [--isa avx2|avx512]
                   [--shape B,T,I,H]... [--text-classifier]
  --dtype   f64 times rnn and torch (nn.RNN and one GEMM) in float64; ONNX Runtime's RNN
            and Keras are left out, and the record in docs/bench (f32) is left alone
  --shape   run only this shape (repeatable); the record in docs/bench is then left alone
  --isa     hold rnn and the peers to one x86-64 level: rnn's kernels (RNN_CPU_KERNEL), MKL's
            (MKL_ENABLE_INSTRUCTIONS) and oneDNN's (ONEDNN_MAX_CPU_ISA) alike; a trial run,
            not recorded
  --text-classifier
            time only the whole text classifier (Keras Embedding -> SimpleRNN -> Dense, batch
            64, 100 steps, vocabulary 10,000, embedding 128, hidden 128) against Keras's
            predict, the Keras model in a tf.function and ONNX Runtime; recorded in
            docs/bench/text_classifier.json (a full run times it too, after the shapes)";

/// An x86-64 level that rnn and the peers' libraries are both held to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx2,
    Avx512,
}

impl Isa {
    /// `--isa`'s value.
    pub fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "avx2" => Self::Avx2,
            "avx512" => Self::Avx512,
            other => bail!("--isa {other}: expected avx2 or avx512"),
        })
    }

    /// The variables that hold each side to the level: rnn's own, MKL's and oneDNN's (torch
    /// and ONNX Runtime compute through them).
    pub fn env(self) -> [(&'static str, &'static str); 3] {
        match self {
            Self::Avx2 => [
                ("RNN_CPU_KERNEL", "avx2"),
                ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
                ("ONEDNN_MAX_CPU_ISA", "AVX2"),
            ],
            Self::Avx512 => [
                ("RNN_CPU_KERNEL", "avx512"),
                ("MKL_ENABLE_INSTRUCTIONS", "AVX512"),
                ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE"),
            ],
        }
    }
}

/// The element type of a benchmark run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
}

impl Dtype {
    /// `rnn bench --dtype`'s name.
    fn rnn_name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }

    /// peers.py's `--dtype`.
    fn numpy_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    /// The peers that run in this type (ONNX Runtime's RNN kernel is float32 only).
    fn peers(self) -> &'static str {
        match self {
            Self::F32 => "torch,onnxruntime,keras,gemm",
            Self::F64 => "torch,gemm",
        }
    }

    fn agreement(self) -> f64 {
        match self {
            Self::F32 => AGREEMENT,
            Self::F64 => AGREEMENT_F64,
        }
    }
}

struct Options {
    threads: usize,
    rounds: usize,
    dtype: Dtype,
    /// Only these shapes (a trial run, not recorded); all of [`SHAPES`] when empty.
    shapes: Vec<(usize, usize, usize, usize)>,
    /// The level rnn and the peers are held to; each its best when `None`.
    isa: Option<Isa>,
    /// Only the text classifier.
    text_only: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        threads: 2,
        rounds: 5,
        dtype: Dtype::F32,
        shapes: Vec::new(),
        isa: None,
        text_only: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--text-classifier" {
            options.text_only = true;
            continue;
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--threads" => options.threads = value.parse()?,
            "--rounds" => options.rounds = value.parse()?,
            "--dtype" => {
                options.dtype = match value.as_str() {
                    "f32" => Dtype::F32,
                    "f64" => Dtype::F64,
                    other => bail!("--dtype {other}: expected f32 or f64"),
                }
            }
            "--isa" => options.isa = Some(Isa::parse(value)?),
            "--shape" => {
                let dims: Vec<usize> =
                    value
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .with_context(|| format!("--shape {value}: expected B,T,I,H"))?;
                let [b, t, i, h] = dims[..] else {
                    bail!("--shape {value}: expected four numbers B,T,I,H");
                };
                options.shapes.push((b, t, i, h));
            }
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    Ok(options)
}

/// Runs per round: enough for a stable median, few enough for the large shapes.
fn runs_for(shape: (usize, usize, usize, usize)) -> usize {
    let (b, t, i, h) = shape;
    let macs = b * t * (i * h + h * h);
    if macs > 100_000_000 {
        10
    } else if macs > 1_000_000 {
        30
    } else {
        500
    }
}

/// Builds the release binary; returns its path.
pub fn build_rnn(root: &Path) -> Result<std::path::PathBuf> {
    build_release(root, &["-p", "rnn-cli"], "rnn")
}

/// `cargo build --release --quiet CARGO_ARGS`; returns the path of `artifact` under the
/// release directory (`rnn`, `examples/bench_backward`).
pub fn build_release(
    root: &Path,
    cargo_args: &[&str],
    artifact: &str,
) -> Result<std::path::PathBuf> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .args(cargo_args)
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("cargo build --release {} failed", cargo_args.join(" "));
    }
    // Cargo puts it under CARGO_TARGET_DIR where that is set (relative to the root if relative).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release").join(artifact))
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let python = crate::fixtures::venv_python(root)?;
    let rnn = build_rnn(root)?;
    let scratch = std::env::temp_dir().join(format!("rnn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let dtype = options.dtype;
    let isa_env: Vec<(&str, &str)> = options.isa.map(|i| i.env().to_vec()).unwrap_or_default();
    println!(
        "threads {}, rounds {}, dtype {}, isa {}, load before: {}",
        options.threads,
        options.rounds,
        dtype.rnn_name(),
        if isa_env.is_empty() {
            "each its best".to_string()
        } else {
            format!("{isa_env:?}")
        },
        load.trim()
    );

    let trial = !options.shapes.is_empty() || dtype != Dtype::F32 || options.isa.is_some();
    if options.text_only {
        return text_classifier(root, &python, &rnn, &scratch, &options, trial);
    }
    let mut records = Vec::new();
    let shapes = if options.shapes.is_empty() {
        SHAPES.to_vec()
    } else {
        options.shapes.clone()
    };
    for shape in shapes {
        let (b, t, i, h) = shape;
        let runs = runs_for(shape).to_string();
        let case = scratch.join(format!("case-{b}-{t}-{i}-{h}.safetensors"));
        let mut samples: Vec<(String, Vec<f64>)> = ["rnn", "torch", "onnxruntime", "keras", "gemm"]
            .iter()
            .map(|p| (p.to_string(), Vec::new()))
            .collect();
        let mut worst_diff: f64 = 0.0;
        for _ in 0..options.rounds {
            let mut rnn_bench = Command::new(&rnn);
            rnn_bench
                .args(["bench", "--format", "json", "--threads"])
                .arg(options.threads.to_string())
                .args(["--batch", &b.to_string(), "--seq", &t.to_string()])
                .args([
                    "--input-size",
                    &i.to_string(),
                    "--hidden-size",
                    &h.to_string(),
                ])
                .args(["--dtype", dtype.rnn_name()])
                .args(["--runs", &runs, "--save-case"])
                .arg(&case)
                .envs(isa_env.iter().copied());
            samples[0].1.push(rnn_median(&mut rnn_bench)?);

            let out = Command::new(&python)
                .arg(root.join("xtask/bench/peers.py"))
                .arg(&case)
                .args(["--threads", &options.threads.to_string(), "--runs", &runs])
                .args(["--dtype", dtype.numpy_name(), "--peers", dtype.peers()])
                .env("TF_CPP_MIN_LOG_LEVEL", "3")
                .envs(isa_env.iter().copied())
                .output()?;
            if !out.status.success() {
                bail!("peers.py failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            collect_peers(&out.stdout, &mut samples, &mut worst_diff);
        }
        let medians = medians(&mut samples);
        let get = |name: &str| median_of(&medians, name);
        let best_peer = PEERS
            .iter()
            .map(|p| (*p, get(p)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(("none", f64::NAN));
        let macs = (b * t * (i * h + h * h)) as f64;
        let record = serde_json::json!({
            "shape": {"batch": b, "seq": t, "input_size": i, "hidden_size": h},
            "median_ms": medians.iter().map(|(p, m)| (p.clone(), serde_json::json!(m))).collect::<serde_json::Map<_, _>>(),
            "best_peer": best_peer.0,
            "ratio_to_best_peer": get("rnn") / best_peer.1,
            "rnn_gflops": 2.0 * macs / (get("rnn") * 1e-3) / 1e9,
            "fraction_of_gemm_rate": get("gemm") / get("rnn"),
            "max_abs_diff_between_outputs": worst_diff,
        });
        println!(
            "({b}, {t}, {i}, {h}): rnn {:.4} ms  torch {:.4}  onnxruntime {:.4}  keras {:.4}  | rnn/best ({}) {:.2}  | {:.0}% of one GEMM's rate | outputs agree within {:.1e}",
            get("rnn"),
            get("torch"),
            get("onnxruntime"),
            get("keras"),
            best_peer.0,
            get("rnn") / best_peer.1,
            100.0 * get("gemm") / get("rnn"),
            worst_diff
        );
        let agreement = dtype.agreement();
        if worst_diff > agreement {
            bail!("outputs disagree by {worst_diff:e} (more than {agreement:e}) on {shape:?}");
        }
        records.push(record);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load after: {}", load.trim());
    if options.shapes.is_empty() {
        text_classifier(root, &python, &rnn, &scratch, &options, trial)?;
    }
    if trial {
        println!("a trial (chosen shapes, f64 or one --isa): docs/bench is left as it was");
        return Ok(());
    }
    let results = root.join("docs/bench/cpu.json");
    std::fs::create_dir_all(results.parent().context("no parent")?)?;
    let doc = serde_json::json!({"threads": options.threads, "rounds": options.rounds, "shapes": records});
    std::fs::write(&results, serde_json::to_string_pretty(&doc)? + "\n")?;
    println!("wrote {}", results.display());
    let status = Command::new(&python)
        .arg(root.join("xtask/bench/chart.py"))
        .arg(&results)
        .arg(root.join("docs/bench/cpu.png"))
        .status()?;
    if !status.success() {
        bail!("chart.py failed");
    }
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

/// The whole text classifier of issue 27 (`xtask/bench/text_classifier.py` makes it and times
/// the peers): `rnn bench --model` against Keras's `predict`, the Keras model called in a
/// `tf.function`, and ONNX Runtime on the same model as an ONNX graph, in alternating rounds;
/// every output checked against Keras's `predict`. Recorded in
/// `docs/bench/text_classifier.json` unless `trial`.
fn text_classifier(
    root: &Path,
    python: &Path,
    rnn: &Path,
    scratch: &Path,
    options: &Options,
    trial: bool,
) -> Result<()> {
    let script = root.join("xtask/bench/text_classifier.py");
    let dir = scratch.join("text_classifier");
    let status = Command::new(python)
        .arg(&script)
        .arg("make")
        .arg(&dir)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .status()?;
    if !status.success() {
        bail!("text_classifier.py make failed");
    }
    let (model, ids, rnn_out) = (
        dir.join("text_classifier.keras"),
        dir.join("ids.npy"),
        dir.join("rnn_output.npy"),
    );
    let out = Command::new(rnn)
        .arg("run")
        .arg(&model)
        .arg("--input")
        .arg(&ids)
        .arg("-o")
        .arg(&rnn_out)
        .output()?;
    if !out.status.success() {
        bail!("rnn run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let runs = "30";
    let threads = options.threads.to_string();
    let isa_env: Vec<(&str, &str)> = options.isa.map(|i| i.env().to_vec()).unwrap_or_default();
    let mut samples: Vec<(String, Vec<f64>)> = ["rnn", "keras", "keras_call", "onnxruntime"]
        .iter()
        .map(|p| (p.to_string(), Vec::new()))
        .collect();
    let mut worst_diff: f64 = 0.0;
    for round in 0..options.rounds {
        let mut rnn_bench = Command::new(rnn);
        rnn_bench
            .args([
                "bench",
                "--format",
                "json",
                "--threads",
                &threads,
                "--runs",
                runs,
            ])
            .arg("--model")
            .arg(&model)
            .arg("--input")
            .arg(&ids)
            .envs(isa_env.iter().copied());
        samples[0].1.push(rnn_median(&mut rnn_bench)?);
        let mut peers = Command::new(python);
        peers
            .arg(&script)
            .arg("time")
            .arg(&dir)
            .args(["--threads", &threads, "--runs", runs])
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .envs(isa_env.iter().copied());
        if round == 0 {
            peers.arg("--rnn-output").arg(&rnn_out);
        }
        let out = peers.output()?;
        if !out.status.success() {
            bail!(
                "text_classifier.py time failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        collect_peers(&out.stdout, &mut samples, &mut worst_diff);
    }
    let medians = medians(&mut samples);
    let get = |name: &str| median_of(&medians, name);
    println!(
        "text classifier (64, 100, vocabulary 10000, 128, 128): rnn {:.3} ms  keras predict {:.3}  keras tf.function {:.3}  onnxruntime {:.3}  | rnn/onnxruntime {:.2}  rnn/keras tf.function {:.2} | outputs agree within {:.1e}",
        get("rnn"),
        get("keras"),
        get("keras_call"),
        get("onnxruntime"),
        get("rnn") / get("onnxruntime"),
        get("rnn") / get("keras_call"),
        worst_diff
    );
    if worst_diff > AGREEMENT {
        bail!("the text classifier's outputs disagree by {worst_diff:e} (more than {AGREEMENT:e})");
    }
    if trial {
        return Ok(());
    }
    let record = serde_json::json!({
        "model": "Keras Embedding(10000, 128, mask_zero=True) -> SimpleRNN(128) -> Dense(1, sigmoid)",
        "batch": 64, "steps": 100, "padding": "at the end, 50 to 100 ids per sequence",
        "threads": options.threads, "rounds": options.rounds, "runs_per_round": 30,
        "median_ms": medians.iter().map(|(p, m)| (p.clone(), serde_json::json!(m))).collect::<serde_json::Map<_, _>>(),
        "max_abs_diff_from_keras_predict": worst_diff,
    });
    let path = root.join("docs/bench/text_classifier.json");
    std::fs::create_dir_all(path.parent().context("no parent")?)?;
    std::fs::write(&path, serde_json::to_string_pretty(&record)? + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Runs `rnn bench … --format json`; its median, in ms.
fn rnn_median(command: &mut Command) -> Result<f64> {
    let out = command.output()?;
    if !out.status.success() {
        bail!("rnn bench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["median_ms"].as_f64().context("median_ms")
}

/// A peers script's JSON lines (`{"peer", "median_ms", "max_abs_diff"}`): each peer's median
/// into its slot of `samples`, the largest difference between outputs into `worst`.
fn collect_peers(stdout: &[u8], samples: &mut [(String, Vec<f64>)], worst: &mut f64) {
    for line in String::from_utf8_lossy(stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(d) = v["max_abs_diff"].as_f64() {
            *worst = worst.max(d);
        }
        let peer = v["peer"].as_str().unwrap_or_default();
        if let (Some(slot), Some(ms)) = (
            samples.iter_mut().find(|(p, _)| p == peer),
            v["median_ms"].as_f64(),
        ) {
            slot.1.push(ms);
        }
    }
}

/// Each peer's median over the rounds.
fn medians(samples: &mut [(String, Vec<f64>)]) -> Vec<(String, f64)> {
    samples
        .iter_mut()
        .map(|(p, s)| (p.clone(), crate::stats::median(s)))
        .collect()
}

/// `name`'s median; NaN for a peer that did not run.
fn median_of(medians: &[(String, f64)], name: &str) -> f64 {
    medians
        .iter()
        .find(|(p, _)| p == name)
        .map_or(f64::NAN, |m| m.1)
}
