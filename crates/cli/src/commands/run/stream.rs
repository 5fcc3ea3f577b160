//! `rnn run --stream`: inference as data arrives. One time step per line on stdin, one output
//! line per step on stdout, the hidden state kept between lines.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use rnn_weights::{Form, PrintOptions};
use serde::Serialize;

use crate::cli::{OutputFormat, RunArgs};
use crate::pipeline::{prepare, read_model_file};
use crate::print::{numpy_string, SCHEMA_VERSION};
use crate::screen::screen;
use crate::Outcome;

#[derive(Serialize)]
struct StepJson<'a, T> {
    schema_version: u32,
    step: usize,
    output: &'a [T],
}

pub fn run(args: &RunArgs) -> Result<Outcome> {
    let model_file = read_model_file(args.sources.model.as_deref())?;
    let prepared = prepare(&model_file, &args.options, Form::Sequence)?;
    let rnn = prepared.rnn();
    let dtype: DType = args.options.dtype.into();
    let mut stream = prepared
        .stream(1, None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_file.path().display()))?;
    let input_size = stream.input_size();

    // Output is flushed whenever no more input is waiting, so a step's result is out before
    // rnn waits for the next line, while input that arrives in bulk is answered in bulk.
    let mut reader = BufReader::with_capacity(1 << 16, std::io::stdin());
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut line: Vec<u8> = Vec::new();
    let mut values: Vec<f64> = Vec::with_capacity(input_size);
    // A step's line holds `input_size` numbers; each fits in 64 characters with its separator
    // (an f64 in full is 24), so a longer line is refused before it is read further.
    let line_limit = input_size.saturating_mul(64).saturating_add(4096);
    for number in 1u64.. {
        if reader.buffer().is_empty() {
            out.flush()?;
        }
        line.clear();
        let limit = u64::try_from(line_limit)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let read = (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .context("cannot read stdin")?;
        if read == 0 {
            break;
        }
        if line.len() > line_limit {
            bail!(
                "stdin line {number}: expected at most {line_limit} bytes ({input_size} values, \
                 the model's input size, of at most 64 characters each), found more; one line \
                 holds one time step"
            );
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            bail!("stdin line {number}: expected UTF-8 text, found other bytes");
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        parse_step(text, &mut values).with_context(|| format!("stdin line {number}"))?;
        if values.len() != input_size {
            let expected = if stream.takes_ids() {
                "1 value (a token id)".to_string()
            } else {
                format!("{input_size} values (the model's input size)")
            };
            bail!(
                "stdin line {number}: expected {expected}, found {}",
                values.len()
            );
        }
        let x = Tensor::from_slice(&values, (1, input_size), &candle_core::Device::Cpu)?;
        screen(
            &format!("stdin line {number}"),
            [("step", &x, None)],
            args.options.strict,
        )?;
        // Token ids stay f64 (exact to 2^53) until the model checks them.
        let x = if stream.takes_ids() {
            x.squeeze(1)?
        } else {
            x.to_dtype(dtype)?.to_device(rnn.device())?
        };
        let y = stream
            .step(&x)
            .with_context(|| format!("stdin line {number}"))?
            .squeeze(0)?;
        let step = stream.steps() - 1;
        match args.format {
            OutputFormat::Text => {
                let y = y.to_device(&candle_core::Device::Cpu)?;
                // One line per step, whatever its length.
                let text = numpy_string(&y, &PrintOptions::default().one_line())?;
                writeln!(out, "Y{step} {text}")?;
            }
            // Each value in the shortest form of its own precision: f64 as f64, every
            // narrower float through its f32 value, as `rnn run` prints them.
            OutputFormat::Json if dtype == DType::F64 => {
                write_json(&mut out, step, &y.to_vec1::<f64>()?)?;
            }
            OutputFormat::Json => {
                write_json(&mut out, step, &y.to_dtype(DType::F32)?.to_vec1::<f32>()?)?;
            }
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// One line of `--format json`.
fn write_json<T: Serialize>(out: &mut impl Write, step: usize, output: &[T]) -> Result<()> {
    let line = StepJson {
        schema_version: SCHEMA_VERSION,
        step,
        output,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The numbers of one line, `[1, 2.5, -3]` or `1,2.5,-3`, into `values`.
fn parse_step(text: &str, values: &mut Vec<f64>) -> Result<()> {
    values.clear();
    let inner = match text.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .context("a JSON array must end with `]` on the same line")?,
        None => text,
    };
    if inner.trim().is_empty() {
        return Ok(());
    }
    for (i, field) in inner.split(',').enumerate() {
        let field = field.trim();
        let value: f64 = field
            .parse()
            .ok()
            .with_context(|| format!("value {}: `{field}` is not a number", i + 1))?;
        values.push(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
