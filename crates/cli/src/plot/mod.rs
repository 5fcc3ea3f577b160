//! Pictures of hidden states for `rnn plot`: one heatmap per layer and direction, stacked top
//! to bottom, each with its title and axes, and one colour bar for all of them at the right.
//!
//! [`render`] lays the figure out once as a display list ([`Figure`]: rectangles, lines, text)
//! and hands it to a back end: `svg` writes it as SVG text, `raster` draws its pixels and
//! encodes a PNG. The layout depends only on the panels' titles and shapes, never on their
//! values, so [`dimensions`] is cheap and always agrees with what [`render`] draws.
//!
//! Layout rules (pixels):
//! - A cell is `TARGET_PLOT_W / columns` wide and `TARGET_PLOT_H / rows` tall, each clamped to
//!   1..=`MAX_CELL`: 2 steps × 5 neurons gives 40 × 40 cells, 1000 × 256 gives 1 × 2.
//! - A panel has at most `MAX_COLUMNS` columns and `MAX_ROWS` rows; beyond that, consecutive
//!   steps (neurons) are averaged into one column (row) and the title says how many.
//! - Colours: blue – white – red, symmetric around 0 with limits ±max|v| over the finite values
//!   of all panels (±1 when they are all 0); NaN and ±Inf are grey, and a cell averaged over a
//!   NaN or Inf is grey too, so that averaging never hides one.

use std::path::Path;

use anyhow::{bail, Result};

mod colour;
mod figure;
mod font;
mod layout;
mod raster;
mod svg;

use figure::Figure;
use layout::Layout;

/// One heatmap: a layer and direction's hidden state over time.
pub struct Panel {
    /// Shown above the heatmap, e.g. "layer 0 forward" or "layer 1 reverse".
    pub title: String,
    /// The x axis: time steps `0..steps`.
    pub steps: usize,
    /// The y axis: hidden units `0..neurons`, neuron 0 at the top.
    pub neurons: usize,
    /// Row-major `[steps][neurons]`: the state of neuron `n` at step `t` is
    /// `values[t * neurons + n]`.
    pub values: Vec<f32>,
}

/// The file formats [`render`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// A PNG image (RGB, 8 bits per channel).
    Png,
    /// An SVG document, one `<rect>` per cell.
    Svg,
}

impl ImageFormat {
    /// From the file extension (.png / .svg, case-insensitive); None otherwise.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "png" => Some(Self::Png),
            "svg" => Some(Self::Svg),
            _ => None,
        }
    }
}

/// Width and height in pixels of the figure for these panels.
pub fn dimensions(panels: &[Panel]) -> (u32, u32) {
    let layout = Layout::new(panels);
    (layout.width, layout.height)
}

/// Renders the panels, stacked vertically, as the bytes of a PNG or SVG file.
///
/// Fails on no panels, on a panel with no steps or no neurons, and on a panel whose
/// `values` do not hold `steps × neurons` numbers.
pub fn render(panels: &[Panel], format: ImageFormat) -> Result<Vec<u8>> {
    check(panels)?;
    let figure = Figure::new(panels);
    match format {
        ImageFormat::Png => raster::png(&figure),
        ImageFormat::Svg => Ok(svg::svg(&figure)?.into_bytes()),
    }
}

fn check(panels: &[Panel]) -> Result<()> {
    if panels.is_empty() {
        bail!("nothing to plot: no panels");
    }
    for p in panels {
        if p.steps == 0 || p.neurons == 0 {
            bail!(
                "panel \"{}\": nothing to plot ({} steps × {} neurons)",
                p.title,
                p.steps,
                p.neurons
            );
        }
        if p.steps.checked_mul(p.neurons) != Some(p.values.len()) {
            bail!(
                "panel \"{}\": {} values, expected steps × neurons = {} × {} = {}",
                p.title,
                p.values.len(),
                p.steps,
                p.neurons,
                p.steps as u128 * p.neurons as u128
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
