//! `rnn convert`: any weights `rnn` reads, written in the canonical layout with the options
//! the run needs recorded.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use rnn_weights::{Form, TensorFile};

use crate::cli::ConvertArgs;
use crate::pipeline::load_weights;
use crate::Outcome;

pub fn convert(args: &ConvertArgs) -> Result<Outcome> {
    // The canonical layout is a safetensors file: a name that promises another format is
    // refused before anything is read.
    let safetensors = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if !safetensors {
        bail!(
            "{}: rnn convert writes the canonical layout, a .safetensors file; name the output \
             .safetensors (PyTorch, ONNX and Keras files are not written yet)",
            args.output.display()
        );
    }
    let file = TensorFile::read(&args.input).context("cannot read the weights")?;
    let model = load_weights(&file, DType::F32, &args.read)?;
    // Keep the source's precision: read again in f64 only if the file holds f64 weights.
    let wide = model
        .mapping
        .iter()
        .any(|m| file.raw(&m.source).is_some_and(|t| t.dtype() == DType::F64));
    let model = if wide {
        load_weights(&file, DType::F64, &args.read)?
    } else {
        model
    };
    let config = model.stack_config(&args.read.options(), Form::Sequence)?;
    config
        .build(&model.weights)
        .context("the weights do not form a valid RNN")?;
    rnn_weights::save_canonical(&args.output, &model.weights, &config, &[])
        .context("cannot write the weights")?;
    eprintln!(
        "wrote {} ({} weights, {} tensors, canonical layout)",
        args.output.display(),
        model.naming.as_str(),
        model.mapping.len()
    );
    Ok(Outcome::Success)
}
