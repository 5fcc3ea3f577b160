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

use std::fmt;
use std::path::Path;

use anyhow::{bail, Result};

mod font;
mod raster;
mod svg;

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

/// Every text is the font at this many pixels per font pixel.
const SCALE: u32 = 2;
/// Height of a line of text, descenders included.
const LINE: u32 = font::HEIGHT * SCALE;
/// Height of a capital letter or a digit.
const CAP: u32 = font::CAP * SCALE;
/// Around the whole figure.
const MARGIN: u32 = 16;
/// Between a title, a label or tick labels and what they name.
const GAP: u32 = 8;
/// Length of a tick mark.
const TICK: u32 = 4;
/// Between one panel's axis label and the next panel's title.
const PANEL_GAP: u32 = 24;
/// Largest cell side.
const MAX_CELL: u32 = 40;
/// Width a heatmap aims at, where cells of 1 to `MAX_CELL` pixels allow it.
const TARGET_PLOT_W: u32 = 1600;
/// Height a heatmap aims at.
const TARGET_PLOT_H: u32 = 512;
/// Most columns in a heatmap; more steps are averaged into columns.
const MAX_COLUMNS: usize = 2000;
/// Most rows in a heatmap; more neurons are averaged into rows.
const MAX_ROWS: usize = 1024;
/// Most tick labels on an axis.
const MAX_TICKS: usize = 10;
/// Width of the colour bar, and its height bounds (it is as tall as the first heatmap).
const BAR_W: u32 = 20;
const BAR_MIN_H: u32 = 150;
const BAR_MAX_H: u32 = 400;
/// The longest label [`format_value`] writes, e.g. "-1.2e-10".
const BAR_LABEL_CHARS: usize = 8;
const X_LABEL: &str = "time step";
const Y_LABEL: &str = "neuron";
/// Beside the grey swatch under the colour bar.
const NON_FINITE_LABEL: &str = "NaN/Inf";

const WHITE: Rgb = Rgb(255, 255, 255);
const BLACK: Rgb = Rgb(0, 0, 0);
const FRAME: Rgb = Rgb(96, 96, 96);
const NON_FINITE: Rgb = Rgb(128, 128, 128);
/// The diverging scale at -1, -0.5, 0, 0.5 and 1 (ColorBrewer's RdBu); linear in between.
const DIVERGING: [Rgb; 5] = [
    Rgb(33, 102, 172),
    Rgb(103, 169, 207),
    Rgb(247, 247, 247),
    Rgb(239, 138, 98),
    Rgb(178, 24, 43),
];

/// A colour, 8 bits per channel; displayed as `#rrggbb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rgb(u8, u8, u8);

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Which point of a text its position names, along the direction of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor {
    Start,
    Middle,
    End,
}

/// One thing to draw. Coordinates are pixels from the top left corner.
#[derive(Debug)]
enum Item {
    /// A filled rectangle: left, top, width, height.
    Rect {
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        colour: Rgb,
    },
    /// A horizontal or vertical line one pixel wide, both ends included.
    Line {
        x1: u32,
        y1: u32,
        x2: u32,
        y2: u32,
        colour: Rgb,
    },
    /// A line of text in the bitmap font at `SCALE`. Horizontal: the top of its capitals at
    /// `y`, `x` its start, middle or end. Vertical (turned a quarter left, read bottom to top):
    /// the top of its capitals at `x`, `y` its start (bottom), middle or end (top).
    Text {
        x: u32,
        y: u32,
        text: String,
        anchor: Anchor,
        vertical: bool,
        colour: Rgb,
    },
}

/// The display list: what both back ends draw, in order, on a white background.
struct Figure {
    width: u32,
    height: u32,
    items: Vec<Item>,
}

/// Width of a line of text in pixels.
fn text_width(text: &str) -> u32 {
    (text.chars().count() as u32 * font::ADVANCE * SCALE).saturating_sub(SCALE)
}

/// Where one panel's pieces go.
struct PanelLayout {
    /// The panel's title and, when cells are averages, how many steps or neurons each holds.
    title: String,
    plot_x: u32,
    plot_y: u32,
    cell_w: u32,
    cell_h: u32,
    columns: usize,
    rows: usize,
    steps_per_column: usize,
    neurons_per_row: usize,
    /// Pixel x of each tick and the step it marks.
    x_ticks: Vec<(u32, usize)>,
    /// Pixel y of each tick and the neuron it marks.
    y_ticks: Vec<(u32, usize)>,
}

impl PanelLayout {
    fn plot_w(&self) -> u32 {
        self.columns as u32 * self.cell_w
    }

    fn plot_h(&self) -> u32 {
        self.rows as u32 * self.cell_h
    }

    /// Top of the tick labels under the heatmap (the frame and the ticks are above it).
    fn x_labels_y(&self) -> u32 {
        self.plot_y + self.plot_h() + 1 + TICK + GAP / 2
    }

    /// Top of the axis label under the tick labels.
    fn x_title_y(&self) -> u32 {
        self.x_labels_y() + LINE + GAP / 2
    }
}

/// The whole figure's geometry.
struct Layout {
    width: u32,
    height: u32,
    panels: Vec<PanelLayout>,
    bar_x: u32,
    bar_y: u32,
    bar_h: u32,
    /// Top of the grey swatch that explains non-finite cells.
    legend_y: u32,
}

impl Layout {
    fn new(panels: &[Panel]) -> Self {
        let y_labels_w = panels
            .iter()
            .map(|p| text_width(&p.neurons.saturating_sub(1).to_string()))
            .max()
            .unwrap_or(0);
        // Left to right: the rotated axis label, the tick labels, the ticks, the frame.
        let plot_x = MARGIN + LINE + GAP + y_labels_w + GAP / 2 + TICK + 1;
        let mut right = plot_x;
        let mut bottom = MARGIN;
        let mut laid = Vec::with_capacity(panels.len());
        for p in panels {
            let top = if laid.is_empty() {
                MARGIN
            } else {
                bottom + PANEL_GAP
            };
            let plot_y = top + LINE + GAP;
            let (steps_per_column, columns, cell_w) = axis(p.steps, TARGET_PLOT_W, MAX_COLUMNS);
            let (neurons_per_row, rows, cell_h) = axis(p.neurons, TARGET_PLOT_H, MAX_ROWS);
            let widest_x_label = text_width(&p.steps.saturating_sub(1).to_string());
            let x_ticks = ticks(
                p.steps,
                f64::from(cell_w) / steps_per_column as f64,
                f64::from(widest_x_label + 2 * font::ADVANCE * SCALE),
            )
            .into_iter()
            .map(|t| {
                let column = (t / steps_per_column) as u32;
                (plot_x + column * cell_w + cell_w / 2, t)
            })
            .collect();
            let y_ticks = ticks(
                p.neurons,
                f64::from(cell_h) / neurons_per_row as f64,
                f64::from(CAP + GAP),
            )
            .into_iter()
            .map(|n| {
                let row = (n / neurons_per_row) as u32;
                (plot_y + row * cell_h + cell_h / 2, n)
            })
            .collect();
            let panel = PanelLayout {
                title: grouped_title(&p.title, steps_per_column, neurons_per_row),
                plot_x,
                plot_y,
                cell_w,
                cell_h,
                columns,
                rows,
                steps_per_column,
                neurons_per_row,
                x_ticks,
                y_ticks,
            };
            let plot_w = panel.plot_w();
            right = right
                .max(plot_x + text_width(&panel.title))
                .max(plot_x + plot_w + widest_x_label / 2 + 1)
                .max(plot_x + plot_w / 2 + text_width(X_LABEL) / 2 + 1);
            bottom = panel.x_title_y() + LINE;
            laid.push(panel);
        }
        let bar_x = right + 3 * GAP;
        let bar_y = laid.first().map_or(MARGIN + LINE + GAP, |p| p.plot_y);
        let bar_h = laid
            .first()
            .map_or(BAR_MIN_H, PanelLayout::plot_h)
            .clamp(BAR_MIN_H, BAR_MAX_H);
        let legend_y = bar_y + bar_h + LINE + GAP;
        let bar_labels_w = (TICK + 1 + GAP / 2 + text_width(&"0".repeat(BAR_LABEL_CHARS)))
            .max(GAP + text_width(NON_FINITE_LABEL));
        Self {
            width: bar_x + BAR_W + bar_labels_w + MARGIN,
            height: bottom.max(legend_y + LINE) + MARGIN,
            panels: laid,
            bar_x,
            bar_y,
            bar_h,
            legend_y,
        }
    }
}

/// For `count` steps or neurons: how many go into one cell, how many cells, and the cell side.
fn axis(count: usize, target: u32, max_cells: usize) -> (usize, usize, u32) {
    let per_cell = count.div_ceil(max_cells).max(1);
    let cells = count.div_ceil(per_cell);
    let side = (target as usize / cells.max(1)).clamp(1, MAX_CELL as usize) as u32;
    (per_cell, cells, side)
}

/// The ticks on an axis of `count` steps or neurons: 0, d, 2d, … with d the first of 1, 2,
/// 5, 10, 20, 50, … that puts ticks at least `min_gap` pixels apart and makes at most
/// `MAX_TICKS` of them.
fn ticks(count: usize, pixels_per_unit: f64, min_gap: f64) -> Vec<usize> {
    let every = (0..60u32)
        .filter_map(|k| [1usize, 2, 5][k as usize % 3].checked_mul(10usize.checked_pow(k / 3)?))
        .find(|&d| d as f64 * pixels_per_unit >= min_gap && count.div_ceil(d) <= MAX_TICKS)
        .unwrap_or(usize::MAX);
    (0..count).step_by(every).collect()
}

fn grouped_title(title: &str, steps_per_column: usize, neurons_per_row: usize) -> String {
    let mut notes = Vec::new();
    if steps_per_column > 1 {
        notes.push(format!("{steps_per_column} steps per column"));
    }
    if neurons_per_row > 1 {
        notes.push(format!("{neurons_per_row} neurons per row"));
    }
    if notes.is_empty() {
        title.to_string()
    } else {
        format!("{title} ({})", notes.join(", "))
    }
}

impl Figure {
    /// Lays the panels out and colours them; the panels have passed [`check`].
    fn new(panels: &[Panel]) -> Self {
        let layout = Layout::new(panels);
        let limit = limit(panels);
        let mut items = vec![Item::Rect {
            x: 0,
            y: 0,
            w: layout.width,
            h: layout.height,
            colour: WHITE,
        }];
        for (panel, l) in panels.iter().zip(&layout.panels) {
            heatmap(&mut items, panel, l, limit);
        }
        colour_bar(&mut items, &layout, limit);
        if panels
            .iter()
            .flat_map(|p| &p.values)
            .any(|v| !v.is_finite())
        {
            let (x, y) = (layout.bar_x, layout.legend_y);
            items.push(Item::Rect {
                x,
                y,
                w: BAR_W,
                h: CAP,
                colour: NON_FINITE,
            });
            frame(&mut items, x - 1, y - 1, BAR_W + 2, CAP + 2);
            items.push(text(x + BAR_W + GAP, y, NON_FINITE_LABEL, Anchor::Start));
        }
        Self {
            width: layout.width,
            height: layout.height,
            items,
        }
    }
}

/// The panel's title, cells, frame, ticks and axis labels.
fn heatmap(items: &mut Vec<Item>, panel: &Panel, l: &PanelLayout, limit: f64) {
    let (plot_w, plot_h) = (l.plot_w(), l.plot_h());
    items.push(text(
        l.plot_x,
        l.plot_y - GAP - LINE,
        &l.title,
        Anchor::Start,
    ));
    for row in 0..l.rows {
        let neurons = row * l.neurons_per_row..((row + 1) * l.neurons_per_row).min(panel.neurons);
        for column in 0..l.columns {
            let steps =
                column * l.steps_per_column..((column + 1) * l.steps_per_column).min(panel.steps);
            let cell = steps.flat_map(|t| neurons.clone().map(move |n| t * panel.neurons + n));
            items.push(Item::Rect {
                x: l.plot_x + column as u32 * l.cell_w,
                y: l.plot_y + row as u32 * l.cell_h,
                w: l.cell_w,
                h: l.cell_h,
                colour: colour(mean(cell.map(|i| panel.values[i])), limit),
            });
        }
    }
    frame(items, l.plot_x - 1, l.plot_y - 1, plot_w + 2, plot_h + 2);
    let below = l.plot_y + plot_h + 1;
    for &(x, t) in &l.x_ticks {
        items.push(line(x, below, x, below + TICK - 1));
        items.push(text(x, l.x_labels_y(), &t.to_string(), Anchor::Middle));
    }
    let left = l.plot_x - 2;
    for &(y, n) in &l.y_ticks {
        items.push(line(left + 1 - TICK, y, left, y));
        let x = left + 1 - TICK - GAP / 2;
        items.push(text(x, y - CAP / 2, &n.to_string(), Anchor::End));
    }
    items.push(text(
        l.plot_x + plot_w / 2,
        l.x_title_y(),
        X_LABEL,
        Anchor::Middle,
    ));
    items.push(Item::Text {
        x: MARGIN,
        y: l.plot_y + plot_h / 2,
        text: Y_LABEL.to_string(),
        anchor: Anchor::Middle,
        vertical: true,
        colour: BLACK,
    });
}

/// The colour bar: +limit at the top, -limit at the bottom, 0 in the middle, all labelled.
fn colour_bar(items: &mut Vec<Item>, layout: &Layout, limit: f64) {
    let (x, y, h) = (layout.bar_x, layout.bar_y, layout.bar_h);
    for i in 0..h {
        let value = limit * (1.0 - f64::from(2 * i + 1) / f64::from(h));
        items.push(Item::Rect {
            x,
            y: y + i,
            w: BAR_W,
            h: 1,
            colour: colour(value, limit),
        });
    }
    frame(items, x - 1, y - 1, BAR_W + 2, h + 2);
    let tick_x = x + BAR_W + 1;
    for (tick_y, value) in [(y, limit), (y + h / 2, 0.0), (y + h - 1, -limit)] {
        items.push(line(tick_x, tick_y, tick_x + TICK - 1, tick_y));
        let label = format_value(value);
        items.push(text(
            tick_x + TICK + GAP / 2,
            tick_y - CAP / 2,
            &label,
            Anchor::Start,
        ));
    }
}

/// The outline of a rectangle, one pixel wide, in the frame colour.
fn frame(items: &mut Vec<Item>, x: u32, y: u32, w: u32, h: u32) {
    let (right, bottom) = (x + w - 1, y + h - 1);
    items.push(line(x, y, right, y));
    items.push(line(x, bottom, right, bottom));
    items.push(line(x, y, x, bottom));
    items.push(line(right, y, right, bottom));
}

fn line(x1: u32, y1: u32, x2: u32, y2: u32) -> Item {
    Item::Line {
        x1,
        y1,
        x2,
        y2,
        colour: FRAME,
    }
}

fn text(x: u32, y: u32, text: &str, anchor: Anchor) -> Item {
    Item::Text {
        x,
        y,
        text: text.to_string(),
        anchor,
        vertical: false,
        colour: BLACK,
    }
}

/// The mean of a cell's values; NaN when any of them is NaN or infinite.
fn mean(values: impl Iterator<Item = f32>) -> f64 {
    let (sum, count) = values.fold((0.0, 0u32), |(s, c), v| (s + f64::from(v), c + 1));
    if sum.is_finite() {
        sum / f64::from(count.max(1))
    } else {
        f64::NAN
    }
}

/// The colour scale's limit: the largest |v| over the finite values, or 1 when that is 0.
fn limit(panels: &[Panel]) -> f64 {
    let largest = panels
        .iter()
        .flat_map(|p| &p.values)
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    if largest > 0.0 {
        f64::from(largest)
    } else {
        1.0
    }
}

/// The colour of `value` on the diverging scale from -limit (blue) to +limit (red).
fn colour(value: f64, limit: f64) -> Rgb {
    if !value.is_finite() {
        return NON_FINITE;
    }
    let at = ((value / limit).clamp(-1.0, 1.0) + 1.0) * 2.0;
    let i = (at.floor() as usize).min(DIVERGING.len() - 2);
    let (a, b, f) = (DIVERGING[i], DIVERGING[i + 1], at - i as f64);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A colour-bar label: 3 significant digits without trailing zeros between 0.01 and 1000,
/// else 2 in exponent form; never longer than `BAR_LABEL_CHARS`.
fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".to_string()
    } else if (0.01..1000.0).contains(&magnitude) {
        let decimals = (2 - magnitude.log10().floor() as i32).max(0) as usize;
        let s = format!("{value:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{value:.1e}")
    }
}

#[cfg(test)]
mod tests;
