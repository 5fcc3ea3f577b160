//! `rnn run --batch-size N`: inputs larger than memory, run N sequences at a time. Each batch
//! is read from the input file, run, and its outputs written where they belong in the output
//! file; memory holds one batch.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use rnn_weights::{ArrayFile, ArrayWriter, FileFormat, Form};

use crate::cli::RunArgs;
use crate::pipeline::{prepare, read_model_file};
use crate::progress::Progress;
use crate::screen::{screen, Padding};
use crate::Outcome;

pub fn run(args: &RunArgs, batch_size: usize) -> Result<Outcome> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let input_path = args.sources.input.as_deref().context(
        "--batch-size reads its sequences from a file: add --input FILE (.npy or .safetensors)",
    )?;
    let output_path = args.output.as_deref().context(
        "--batch-size writes its outputs to a file as it goes: add --output FILE (.npy or .safetensors)",
    )?;
    let format_of = |path: &Path, chosen: Option<FileFormat>| {
        chosen.unwrap_or_else(|| FileFormat::from_path(path))
    };
    let in_format = format_of(input_path, args.sources.input_format);
    let out_format =
        FileFormat::for_output(output_path, args.output_format).map_err(anyhow::Error::msg)?;
    for (path, format) in [(input_path, in_format), (output_path, out_format)] {
        if !matches!(format, FileFormat::Npy | FileFormat::Safetensors) {
            bail!(
                "{}: --batch-size reads and writes .npy or .safetensors, a batch at a time",
                path.display()
            );
        }
    }

    let model_file = read_model_file(args.sources.model.as_deref())?;
    let prepared = prepare(&model_file, &args.options, Form::Sequence)?;
    prepared
        .check_stepwise()
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_file.path().display()))?;
    let rnn = prepared.rnn();
    let dtype: DType = args.options.dtype.into();
    let mut input = ArrayFile::open(input_path, in_format).context("cannot read the input")?;
    let source = input.path().display().to_string();
    let shape = input.float_shape("input")?.map(<[usize]>::to_vec);
    let Some(shape) = shape else {
        bail!(
            "{source}: no `input` array; --batch-size reads sequence form: `input` [seq, batch, \
             features] (batch-first: [batch, seq, features]), optional `h0` and `lengths`"
        );
    };
    let axis = if rnn.batch_first() { 0 } else { 1 };
    let expected = if axis == 0 {
        "[batch, seq, features]"
    } else {
        "[seq, batch, features]"
    };
    if shape.len() != 3 || shape[2] != rnn.input_size() {
        bail!(
            "{source}: tensor `input`: expected {expected} with {} features (the model's input \
             size), found {shape:?}",
            rnn.input_size()
        );
    }
    let batch = shape[axis];
    if shape[1 - axis] == 0 {
        // Such a file holds no data whatever batch it claims; refused before any is planned.
        bail!(
            "{source}: tensor `input`: expected at least one time step, found {shape:?} (as \
             torch.nn.RNN refuses a sequence length of 0)"
        );
    }
    let lengths = input.lengths().context("cannot read the input")?;
    if let Some(lengths) = &lengths {
        if lengths.len() != batch {
            bail!(
                "{source}: tensor `lengths`: expected shape [{batch}] (one per sequence), found [{}]",
                lengths.len()
            );
        }
    }
    let stacks = rnn.num_states();
    let hidden = rnn.hidden_sizes();
    let equal = hidden.iter().all(|&h| h == hidden[0]);
    let has_h0 = input.contains("h0");
    if let Some(h0) = input.float_shape("h0")? {
        if !equal || h0 != [stacks, batch, hidden[0]] {
            bail!(
                "{source}: tensor `h0`: expected shape [{stacks}, {batch}, {}], found {h0:?}",
                hidden[0]
            );
        }
    }

    // npy has no bf16: the outputs are written as f32 there, as `rnn run` writes them.
    let stored_as = if dtype == DType::BF16 && out_format == FileFormat::Npy {
        DType::F32
    } else {
        dtype
    };
    let mut out_shape = shape.clone();
    out_shape[2] = rnn.output_size();
    let mut arrays = vec![("output".to_string(), stored_as, out_shape)];
    if equal && out_format == FileFormat::Safetensors {
        arrays.push(("h_n".to_string(), stored_as, vec![stacks, batch, hidden[0]]));
    }
    let mut writer = ArrayWriter::create(output_path, out_format, &arrays)
        .context("cannot write the outputs")?;

    let seq = shape[1 - axis];
    let per_sequence = seq * (shape[2] + rnn.output_size()) * 3 * dtype.size_in_bytes();
    crate::memory::ensure_fits(
        "one batch of --batch-size sequences",
        Some(per_sequence as u128 * batch_size.min(batch) as u128),
    )?;
    let batches = batch.div_ceil(batch_size);
    let progress = Progress::new(Some(batches as u64), "batches");
    for start in (0..batch).step_by(batch_size) {
        let range = start..(start + batch_size).min(batch);
        let x = input
            .read("input", axis, range.clone())
            .context("cannot read the input")?
            .to_dtype(dtype)?;
        let sequences = format!("sequences {}..{}", range.start, range.end);
        let chunk_lengths = lengths.as_ref().map(|l| &l[range.clone()]);
        let padding = Padding::of(chunk_lengths, axis == 0);
        screen(
            &format!("{source}: input ({sequences})"),
            [("input", &x, padding)],
            args.options.strict,
        )?;
        let h0 = if has_h0 {
            Some(
                input
                    .read("h0", 1, range.clone())
                    .context("cannot read the input")?
                    .to_dtype(dtype)?
                    .to_device(rnn.device())?,
            )
        } else {
            None
        };
        let (output, states) = rnn
            .forward_states(&x.to_device(rnn.device())?, h0.as_ref(), chunk_lengths)
            .with_context(|| format!("cannot run the model on the inputs of {source}"))?;
        let output = output.to_device(&Device::Cpu)?;
        screen(
            &format!("computed output ({sequences})"),
            [("output", &output, padding)],
            args.options.strict,
        )?;
        writer
            .write("output", axis, range.start, &output)
            .context("cannot write the outputs")?;
        if arrays.len() == 2 {
            if let Some(h_n) = rnn.stack_states(&states)? {
                writer
                    .write("h_n", 1, range.start, &h_n.to_device(&Device::Cpu)?)
                    .context("cannot write the outputs")?;
            }
        }
        progress.inc();
    }
    drop(progress);
    writer.finish().context("cannot write the outputs")?;
    let names: Vec<&str> = arrays.iter().map(|(n, _, _)| n.as_str()).collect();
    eprintln!(
        "wrote {} ({}; {batch} sequences in {batches} batch{} of up to {batch_size})",
        output_path.display(),
        names.join(", "),
        if batches == 1 { "" } else { "es" }
    );
    Ok(Outcome::Success)
}
