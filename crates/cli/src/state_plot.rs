//! A run's hidden states drawn to a picture: each layer's states over the steps as the panels
//! that [`crate::plot`] renders, written to a file. `rnn plot` and `rnn run --plot` use it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use rnn_core::Rnn;

use crate::plot::{dimensions, render, ImageFormat, Panel};

/// Panels drawn when the user does not pick a sequence; more would make cells too small.
const MAX_PANELS: usize = 16;

/// Draws the layers' states of a run of `rnn` to `path`: `layers` as
/// [`rnn_core::StackRun::layer_outputs`] holds them; sequence `sequence` of the batch, or every
/// sequence while they fit in [`MAX_PANELS`].
pub fn draw(rnn: &Rnn, layers: &[Tensor], path: &Path, sequence: Option<usize>) -> Result<()> {
    let format = image_format(path)?;
    if let Some(k) = rnn.hidden_sizes().iter().position(|&h| h == 0) {
        bail!("layer {k} has hidden size 0: it has no states to plot");
    }
    let batch = layers[0].dim(1)?;
    // A layer's panels: one per direction, or one when its directions were merged.
    let panels_of: Vec<usize> = layers
        .iter()
        .zip(rnn.hidden_sizes())
        .map(|(layer, hidden)| layer.dim(2).map(|features| features / hidden))
        .collect::<candle_core::Result<_>>()?;
    let per_sequence: usize = panels_of.iter().sum();
    let sequences: Vec<usize> = match sequence {
        Some(b) if b >= batch => bail!(
            "--sequence {b}: the input has {batch} sequence{} (0 to {})",
            if batch == 1 { "" } else { "s" },
            batch - 1
        ),
        Some(b) => vec![b],
        None if batch * per_sequence <= MAX_PANELS => (0..batch).collect(),
        None => {
            eprintln!(
                "plotting sequence 0 of {batch} ({per_sequence} panels each); choose another with --sequence N"
            );
            vec![0]
        }
    };
    let mut panels = Vec::new();
    for &b in &sequences {
        for (k, (layer, hidden)) in layers.iter().zip(rnn.hidden_sizes()).enumerate() {
            let directions = panels_of[k];
            for d in 0..directions {
                let states = layer
                    .narrow(1, b, 1)?
                    .squeeze(1)?
                    .narrow(1, d * hidden, hidden)?;
                let mut title = format!("layer {k}");
                if directions == 2 {
                    title.push_str(if d == 0 { " forward" } else { " reverse" });
                }
                if batch > 1 {
                    title.push_str(&format!(", sequence {b}"));
                }
                panels.push(Panel {
                    title,
                    steps: states.dim(0)?,
                    neurons: hidden,
                    values: values(&states)?,
                });
            }
        }
    }
    let bytes = render(&panels, format)?;
    rnn_weights::write_atomically(path, &bytes)
        .with_context(|| format!("cannot write the plot to {}", path.display()))?;
    let (width, height) = dimensions(&panels);
    eprintln!(
        "wrote {} ({width} × {height} px, {} panel{})",
        path.display(),
        panels.len(),
        if panels.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// The picture format `path` names, or an error saying which ones there are.
pub fn image_format(path: &Path) -> Result<ImageFormat> {
    ImageFormat::from_path(path).with_context(|| {
        format!(
            "{}: a plot is written as .png or .svg; name the file with one of them",
            path.display()
        )
    })
}

/// A `[steps, neurons]` tensor's values, row-major, as f32 on the CPU.
fn values(states: &Tensor) -> Result<Vec<f32>> {
    Ok(states
        .to_device(&candle_core::Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}
