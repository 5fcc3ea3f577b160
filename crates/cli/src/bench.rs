//! `rnn bench`: time forwards of a random model on random inputs.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use rnn_core::{uniform_weights, InitConfig, Rnn};
use serde::Serialize;

use crate::cli::{BenchArgs, OutputFormat};
use crate::print::{emit, SCHEMA_VERSION};
use crate::progress::Progress;
use crate::Outcome;

#[derive(Serialize)]
struct BenchJson {
    schema_version: u32,
    batch: usize,
    seq: usize,
    input_size: usize,
    hidden_size: usize,
    layers: usize,
    bidirectional: bool,
    nonlinearity: &'static str,
    device: String,
    dtype: String,
    threads: usize,
    implementation: &'static str,
    /// The CPU kernel level of the fused path (`avx512`, `avx2`, `generic`); `null` where the
    /// run took plain candle ops (`--reference`, CUDA, f16/bf16).
    kernel: Option<&'static str>,
    runs: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    gflops: f64,
}

/// What `rnn bench --model --format json` prints.
#[derive(Serialize)]
struct ModelBenchJson {
    schema_version: u32,
    model: String,
    input: String,
    device: String,
    dtype: String,
    threads: usize,
    runs: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

/// Times `rnn run MODEL --input INPUT`'s computation (the model built, the inputs read and
/// prepared once, outside the timing): each timed run is [`rnn_weights::Model::run`], from
/// the prepared inputs to the outputs on the device.
fn bench_model(args: &BenchArgs, model: &Path, input: &Path) -> Result<Outcome> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let dtype: DType = args.dtype.into();
    let file = crate::pipeline::read_model_file(Some(model))?;
    let read = rnn_weights::ReadOptions::default();
    let weights = rnn_weights::LoadedWeights::select(&file, dtype, &read.selection)?;
    let (input_file, inputs) = crate::pipeline::read_inputs(&file, Some(input), None, dtype)?;
    let device = crate::device::open(args.device)?;
    let built = rnn_weights::Model::new(&file, &weights, &read, inputs.form, &device)?;
    let inputs = built.prepare(inputs, input_file.path(), false)?;
    let progress = Progress::new(Some((args.warmup + args.runs) as u64), "bench");
    let mut times = Vec::with_capacity(args.runs);
    for k in 0..args.warmup + args.runs {
        let start = Instant::now();
        let run = crate::pipeline::forward(&built, &inputs, input_file.path(), false)?;
        // The outputs complete on the device (a GPU's work is queued until read back).
        device.synchronize()?;
        if k >= args.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        drop(run);
        progress.inc();
    }
    drop(progress);
    let median = median(&mut times);
    let result = ModelBenchJson {
        schema_version: SCHEMA_VERSION,
        model: model.display().to_string(),
        input: input.display().to_string(),
        device: args.device.to_string(),
        dtype: format!("{dtype:?}").to_lowercase(),
        threads: candle_core::utils::get_num_threads(),
        runs: args.runs,
        median_ms: median,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
    };
    match args.format {
        OutputFormat::Json => emit(&(serde_json::to_string(&result)? + "\n"))?,
        OutputFormat::Text => emit(&format!(
            "{} on {}, {} {} {} thread(s)\nmedian {:.4} ms  min {:.4} ms  max {:.4} ms  ({} runs after {} warm-up)\n",
            result.model,
            result.input,
            result.dtype,
            result.device,
            result.threads,
            result.median_ms,
            result.min_ms,
            result.max_ms,
            result.runs,
            args.warmup
        ))?,
    }
    Ok(Outcome::Success)
}

/// The median of `times` (sorted in place, at least one): the middle one, or the mean of
/// the two middle ones.
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    }
}

/// FLOPs of one forward: `2·B·T·(I·H + H·H)` per layer and direction.
fn flops(args: &BenchArgs) -> f64 {
    let directions = if args.bidirectional { 2.0 } else { 1.0 };
    let (b, t, h) = (args.batch as f64, args.seq as f64, args.hidden_size as f64);
    let mut input = args.input_size as f64;
    let mut total = 0.0;
    for _ in 0..args.layers {
        total += directions * 2.0 * b * t * (input * h + h * h);
        input = directions * h;
    }
    total
}

pub fn bench(args: &BenchArgs) -> Result<Outcome> {
    if let Some(threads) = args.threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        // Read by rayon's pool and by candle when they first start, which is below.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    if let (Some(model), Some(input)) = (&args.model, &args.input) {
        return bench_model(args, model, input);
    }
    if [
        args.batch,
        args.seq,
        args.input_size,
        args.hidden_size,
        args.layers,
        args.runs,
    ]
    .contains(&0)
    {
        bail!(
            "--batch, --seq, --input-size, --hidden-size, --layers and --runs must be at least 1"
        );
    }
    let dtype: DType = args.dtype.into();
    let directions = if args.bidirectional { 2 } else { 1 };
    let elements = [
        args.seq
            .checked_mul(args.batch)
            .and_then(|n| n.checked_mul(args.input_size)),
        args.seq
            .checked_mul(args.batch)
            .and_then(|n| n.checked_mul(directions * args.hidden_size)),
    ];
    let bytes = elements.iter().try_fold(0u128, |acc, n| {
        n.map(|n| acc + 3 * n as u128 * dtype.size_in_bytes() as u128)
    });
    crate::memory::ensure_fits("this benchmark's inputs and outputs", bytes)?;

    let device = crate::device::open(args.device)?;
    let config = InitConfig {
        input_size: args.input_size,
        hidden_sizes: vec![args.hidden_size; args.layers],
        bidirectional: args.bidirectional,
        bias: true,
    };
    let weights = uniform_weights(&config, args.seed, dtype, &Device::Cpu)?;
    let nonlinearity = args.nonlinearity;
    let rnn = Rnn::from_weights(&weights, nonlinearity)?.with_fast_path(!args.reference);
    let input = Tensor::rand(
        -1f32,
        1f32,
        (args.seq, args.batch, args.input_size),
        &device,
    )?
    .to_dtype(dtype)?;

    let progress = Progress::new(Some((args.warmup + args.runs) as u64), "bench");
    for _ in 0..args.warmup {
        rnn.forward(&input, None)?;
        progress.inc();
    }
    let mut times = Vec::with_capacity(args.runs);
    let mut output = None;
    for _ in 0..args.runs {
        let start = Instant::now();
        let result = rnn.forward(&input, None)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        output = Some(result);
        progress.inc();
    }
    drop(progress);
    let median = median(&mut times);

    if let (Some(path), Some((output, h_n))) = (&args.save_case, output) {
        let cpu = Device::Cpu;
        let extra = [
            ("input".to_string(), input.to_device(&cpu)?),
            ("output".to_string(), output.to_device(&cpu)?),
            ("h_n".to_string(), h_n.to_device(&cpu)?),
        ];
        let config = rnn_weights::StackConfig::uniform(nonlinearity, Some(false));
        rnn_weights::save_canonical(path, &weights, &config, &extra)
            .context("cannot write the benchmark case")?;
    }

    let result = BenchJson {
        schema_version: SCHEMA_VERSION,
        batch: args.batch,
        seq: args.seq,
        input_size: args.input_size,
        hidden_size: args.hidden_size,
        layers: args.layers,
        bidirectional: args.bidirectional,
        nonlinearity: nonlinearity.as_str(),
        device: args.device.to_string(),
        dtype: format!("{dtype:?}").to_lowercase(),
        threads: candle_core::utils::get_num_threads(),
        implementation: if args.reference { "reference" } else { "fused" },
        kernel: (!args.reference && device.is_cpu() && matches!(dtype, DType::F32 | DType::F64))
            .then(|| rnn_core::cpu_kernel::get().as_str()),
        runs: args.runs,
        median_ms: median,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
        gflops: flops(args) / (median * 1e-3) / 1e9,
    };
    match args.format {
        OutputFormat::Json => emit(&(serde_json::to_string(&result)? + "\n"))?,
        OutputFormat::Text => emit(&format!(
            "batch {} seq {} input {} hidden {} layers {} directions {} {} {} {} thread(s), {} path{}\n\
             median {:.4} ms  min {:.4} ms  max {:.4} ms  {:.2} GFLOP/s  ({} runs after {} warm-up)\n",
            result.batch,
            result.seq,
            result.input_size,
            result.hidden_size,
            result.layers,
            directions,
            result.dtype,
            result.device,
            result.threads,
            result.implementation,
            result
                .kernel
                .map(|k| format!(", {k} kernels"))
                .unwrap_or_default(),
            result.median_ms,
            result.min_ms,
            result.max_ms,
            result.gflops,
            result.runs,
            args.warmup
        ))?,
    }
    Ok(Outcome::Success)
}
