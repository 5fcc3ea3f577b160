//! `rnn run`: the model on its inputs, the outputs printed or written. Its modes are beside it:
//! `--stream` ([`stream`]) and `--batch-size` ([`batched`]).

pub mod batched;
pub mod stream;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use rnn_weights::PrintOptions;

use crate::cli::{OutputFormat, RunArgs};
use crate::pipeline::{forward, prepare_with_inputs};
use crate::print::{emit, numpy_string};
use crate::screen::{screen, Padding};
use crate::Outcome;

pub fn run(args: &RunArgs) -> Result<Outcome> {
    if args.stream {
        return stream::run(args);
    }
    if let Some(batch_size) = args.batch_size {
        return batched::run(args, batch_size);
    }
    if let Some(path) = &args.plot {
        crate::state_plot::image_format(path)?;
    }
    let (prepared, input_file, inputs) = prepare_with_inputs(&args.sources, &args.options)?;
    let rnn = prepared.rnn();
    let progress = crate::progress::Progress::new(None, "running");
    let results = forward(&prepared, &inputs, input_file.path(), args.plot.is_some())?;
    drop(progress);
    let outputs = results
        .named
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_device(&candle_core::Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    let padding = Padding::of(inputs.lengths.as_deref(), rnn.batch_first());
    let named = outputs
        .iter()
        .map(|(n, t)| (n.as_str(), t, padding.filter(|_| n == "output")));
    screen("computed output", named, args.options.strict)?;
    if let Some(path) = &args.plot {
        crate::state_plot::draw(rnn, &results.layer_outputs, path, None)?;
    }

    if let Some(path) = &args.output {
        let format = rnn_weights::FileFormat::for_output(path, args.output_format)
            .map_err(anyhow::Error::msg)?;
        let output = results.output.to_device(&candle_core::Device::Cpu)?;
        let several = prepared.output_names().filter(|names| names.len() > 1);
        if let (true, Some(names)) = (format.holds_one_array(), several) {
            bail!(
                "cannot write the outputs: {}: the file holds one array, and the model has {} \
                 outputs ({}); write .npz, .json or .safetensors",
                path.display(),
                names.len(),
                names.join(", ")
            );
        }
        write_outputs(path, format, &outputs, &output, rnn.batch_first())?;
        return Ok(Outcome::Success);
    }
    match args.format {
        OutputFormat::Text => {
            let options = if args.print_all {
                PrintOptions::default().everything()
            } else {
                PrintOptions::default()
            };
            emit(&text_outputs(&outputs, &options)?)?
        }
        // The document `-o FILE.json` writes, which `--input` reads back.
        OutputFormat::Json => {
            emit(&rnn_weights::write_json(&outputs).map_err(anyhow::Error::msg)?)?
        }
    }
    Ok(Outcome::Success)
}

/// Writes the outputs of a run in `format`: every named output, or, in a format of one array,
/// the whole `output` alone (CSV: one sequence's `[steps, features]`).
fn write_outputs(
    path: &Path,
    format: rnn_weights::FileFormat,
    named: &[(String, Tensor)],
    output: &Tensor,
    batch_first: bool,
) -> Result<()> {
    let cannot = "cannot write the outputs";
    let written: Vec<(String, Tensor)> = if format.holds_one_array() {
        let output = match (format, output.dims()) {
            (rnn_weights::FileFormat::Csv, [_, 1, _]) if !batch_first => output.squeeze(1)?,
            (rnn_weights::FileFormat::Csv, [1, _, _]) if batch_first => output.squeeze(0)?,
            (rnn_weights::FileFormat::Csv, dims @ [_, _, _]) => bail!(
                "{cannot}: {}: a CSV file holds one sequence, and this run has {} (shape \
                 {dims:?}); write .npy, .npz, .json or .safetensors",
                path.display(),
                dims[if batch_first { 0 } else { 1 }],
            ),
            _ => output.clone(),
        };
        vec![("output".to_string(), output)]
    } else {
        named.to_vec()
    };
    let meta = HashMap::from([("producer".to_string(), "rnn run".to_string())]);
    rnn_weights::write_tensors(path, &written, format, meta).context(cannot)?;
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    let note = if format.holds_one_array() && named.iter().any(|(n, _)| n == "h_n") {
        "; h_n left out: the format holds one array"
    } else {
        ""
    };
    eprintln!("wrote {} ({}{note})", path.display(), names.join(", "));
    Ok(())
}

/// `Y0 (t = 0)` then the matrix as numpy prints it under `options`, for each output.
fn text_outputs(outputs: &[(String, Tensor)], options: &PrintOptions) -> Result<String> {
    let mut text = String::new();
    for (i, (name, t)) in outputs.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let label = match name.strip_prefix('Y') {
            Some(step) if step.parse::<usize>().is_ok() => format!("{name} (t = {step})"),
            _ => format!("{name} {:?}", t.dims()),
        };
        writeln!(text, "{label}\n{}", numpy_string(t, options)?)?;
    }
    Ok(text)
}
