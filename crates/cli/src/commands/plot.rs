//! `rnn plot`: each layer's hidden states over a run, drawn to a PNG or SVG file.

use anyhow::{Context, Result};

use crate::cli::PlotArgs;
use crate::pipeline::prepare_with_inputs;
use crate::state_plot::{draw, image_format};
use crate::Outcome;

pub fn plot(args: &PlotArgs) -> Result<Outcome> {
    image_format(&args.output)?;
    let (prepared, input_file, inputs) = prepare_with_inputs(&args.sources, &args.options)?;
    let run = prepared
        .rnn
        .forward_layers(&inputs.input, inputs.h0.as_ref(), inputs.lengths.as_deref())
        .with_context(|| {
            format!(
                "cannot run the model on the inputs of {}",
                input_file.path().display()
            )
        })?;
    draw(
        &prepared.rnn,
        &run.layer_outputs,
        &args.output,
        args.sequence,
    )?;
    Ok(Outcome::Success)
}
