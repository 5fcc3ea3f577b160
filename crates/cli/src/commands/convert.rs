//! `rnn convert`: any weights `rnn` reads, written in the canonical layout with the options
//! the run needs recorded, or as a PyTorch state_dict of `nn.RNN` (`rnn_weights::save_torch`).

use anyhow::{Context, Result};
use rnn_weights::{Target, TensorFile};

use crate::cli::ConvertArgs;
use crate::Outcome;

pub fn convert(args: &ConvertArgs) -> Result<Outcome> {
    // A name that promises a format rnn does not write is refused before anything is read.
    let target = Target::for_path(&args.output).map_err(anyhow::Error::msg)?;
    let file = TensorFile::read(&args.input).context("cannot read the weights")?;
    let converted = rnn_weights::convert(&file, &args.read.options(), &args.output, target)?;
    for note in rnn_weights::notes(&file, converted.dtype) {
        eprintln!(
            "warning: {}",
            rnn_weights::clip(&note, rnn_weights::MESSAGE_CHARS)
        );
    }
    match &converted.torch {
        None => eprintln!(
            "wrote {} ({} weights, {} tensors, canonical layout)",
            args.output.display(),
            converted.naming.as_str(),
            converted.tensors
        ),
        Some(module) => {
            eprintln!(
                "wrote {} (a state_dict of {} weights for PyTorch); load it with:",
                args.output.display(),
                converted.naming.as_str(),
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
