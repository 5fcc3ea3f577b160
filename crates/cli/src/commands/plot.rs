//! `rnn plot`: each layer's hidden states over a run, drawn to a PNG or SVG file.

use anyhow::Result;

use crate::cli::PlotArgs;
use crate::pipeline::{forward, prepare_with_inputs};
use crate::state_plot::{draw, image_format};
use crate::Outcome;

pub fn plot(args: &PlotArgs) -> Result<Outcome> {
    image_format(&args.output)?;
    let (prepared, input_file, inputs) = prepare_with_inputs(&args.sources, &args.options)?;
    let run = forward(&prepared, &inputs, input_file.path(), true)?;
    draw(
        prepared.rnn(),
        &run.layer_outputs,
        &args.output,
        args.sequence,
    )?;
    Ok(Outcome::Success)
}
