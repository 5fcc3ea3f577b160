//! `rnn convert`: any weights `rnn` reads, written in the canonical layout with the options
//! the run needs recorded, as a PyTorch state_dict of `nn.RNN` (`rnn_weights::save_torch`), an
//! ONNX graph (`rnn_weights::save_onnx`) or a Keras model (`rnn_weights::save_keras`).

use anyhow::{Context, Result};
use rnn_weights::{Target, TensorFile};

use crate::cli::ConvertArgs;
use crate::Outcome;

pub fn convert(args: &ConvertArgs) -> Result<Outcome> {
    // A name that promises a format rnn does not write is refused before anything is read.
    let target = Target::for_path(&args.output).map_err(anyhow::Error::msg)?;
    let file = TensorFile::read(&args.input).context("cannot read the weights")?;
    let converted = rnn_weights::convert(&file, &args.read.options(), &args.output, target)?;
    let notes = rnn_weights::notes(&file, converted.dtype);
    for note in notes.iter().chain(&converted.notes) {
        eprintln!(
            "warning: {}",
            rnn_weights::clip(note, rnn_weights::MESSAGE_CHARS)
        );
    }
    let what = match target {
        Target::Canonical => "canonical layout",
        Target::Torch => "a state_dict for PyTorch",
        Target::Onnx => "an ONNX graph for ONNX Runtime",
        Target::Keras => "a Keras 3 model",
        Target::KerasWeights => "a Keras 3 model's weights",
    };
    eprintln!(
        "wrote {} ({} weights, {} tensors, {what})",
        args.output.display(),
        converted.naming.as_str(),
        converted.tensors
    );
    if let Some(loader) = converted.loader(&args.output) {
        // The Python on stdout, to paste or redirect.
        eprintln!("load it with:");
        println!("{loader}");
    }
    Ok(Outcome::Success)
}
