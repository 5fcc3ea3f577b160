//! `rnn convert`: any weights `rnn` reads, written in the canonical layout with the options
//! the run needs recorded, or as a PyTorch state_dict of `nn.RNN` (`rnn_weights::save_torch`).

use anyhow::{bail, Context, Result};
use candle_core::DType;
use rnn_weights::{Form, TensorFile};

use crate::cli::ConvertArgs;
use crate::pipeline::load_weights;
use crate::Outcome;

/// What `rnn convert` writes, by the output's extension.
enum Target {
    /// `.safetensors`: the canonical layout, every option in its metadata.
    Canonical,
    /// `.pt`, `.pth`: a `torch.save` zip of `nn.RNN`'s state_dict.
    Torch,
}

pub fn convert(args: &ConvertArgs) -> Result<Outcome> {
    // A name that promises a format rnn does not write is refused before anything is read.
    let extension = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let target = match extension.as_deref() {
        Some("safetensors") => Target::Canonical,
        Some("pt" | "pth") => Target::Torch,
        _ => bail!(
            "{}: rnn convert writes .safetensors (the canonical layout, every option recorded) \
             and .pt or .pth (a torch.save state_dict of nn.RNN); name the output so (ONNX and \
             Keras files are not written yet)",
            args.output.display()
        ),
    };
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
    match target {
        Target::Canonical => {
            rnn_weights::save_canonical(&args.output, &model.weights, &config, &[])
                .context("cannot write the weights")?;
            eprintln!(
                "wrote {} ({} weights, {} tensors, canonical layout)",
                args.output.display(),
                model.naming.as_str(),
                model.mapping.len()
            );
        }
        Target::Torch => {
            let module = rnn_weights::save_torch(&args.output, &model.weights, &config)?;
            eprintln!(
                "wrote {} (a state_dict of {} weights for PyTorch); load it with:",
                args.output.display(),
                model.naming.as_str(),
            );
            // The Python on stdout, to paste or redirect.
            println!(
                "rnn = {module}\nrnn.load_state_dict(torch.load({:?}, weights_only=True))",
                args.output.display().to_string()
            );
        }
    }
    Ok(Outcome::Success)
}
