//! The figure's geometry: where each panel's title, cells, ticks and labels go, and the
//! colour bar beside them, from the panels' titles and shapes alone.

use super::{font, Panel};

/// Every text is the font at this many pixels per font pixel.
pub(super) const SCALE: u32 = 2;
/// Height of a line of text, descenders included.
pub(super) const LINE: u32 = font::HEIGHT * SCALE;
/// Height of a capital letter or a digit.
pub(super) const CAP: u32 = font::CAP * SCALE;
/// Around the whole figure.
pub(super) const MARGIN: u32 = 16;
/// Between a title, a label or tick labels and what they name.
pub(super) const GAP: u32 = 8;
/// Length of a tick mark.
pub(super) const TICK: u32 = 4;
/// Between one panel's axis label and the next panel's title.
pub(super) const PANEL_GAP: u32 = 24;
/// Largest cell side.
pub(super) const MAX_CELL: u32 = 40;
/// Width a heatmap aims at, where cells of 1 to `MAX_CELL` pixels allow it.
pub(super) const TARGET_PLOT_W: u32 = 1600;
/// Height a heatmap aims at.
pub(super) const TARGET_PLOT_H: u32 = 512;
/// Most columns in a heatmap; more steps are averaged into columns.
pub(super) const MAX_COLUMNS: usize = 2000;
/// Most rows in a heatmap; more neurons are averaged into rows.
pub(super) const MAX_ROWS: usize = 1024;
/// Most tick labels on an axis.
pub(super) const MAX_TICKS: usize = 10;
/// Width of the colour bar, and its height bounds (it is as tall as the first heatmap).
pub(super) const BAR_W: u32 = 20;
pub(super) const BAR_MIN_H: u32 = 150;
pub(super) const BAR_MAX_H: u32 = 400;
/// The longest label `format_value` (figure.rs) writes, e.g. "-1.2e-10".
pub(super) const BAR_LABEL_CHARS: usize = 8;
pub(super) const X_LABEL: &str = "time step";
pub(super) const Y_LABEL: &str = "neuron";
/// Beside the grey swatch under the colour bar.
pub(super) const NON_FINITE_LABEL: &str = "NaN/Inf";
/// Width of a line of text in pixels.
pub(super) fn text_width(text: &str) -> u32 {
    (text.chars().count() as u32 * font::ADVANCE * SCALE).saturating_sub(SCALE)
}

/// Where one panel's pieces go.
pub(super) struct PanelLayout {
    /// The panel's title and, when cells are averages, how many steps or neurons each holds.
    pub(super) title: String,
    pub(super) plot_x: u32,
    pub(super) plot_y: u32,
    pub(super) cell_w: u32,
    pub(super) cell_h: u32,
    pub(super) columns: usize,
    pub(super) rows: usize,
    pub(super) steps_per_column: usize,
    pub(super) neurons_per_row: usize,
    /// Pixel x of each tick and the step it marks.
    pub(super) x_ticks: Vec<(u32, usize)>,
    /// Pixel y of each tick and the neuron it marks.
    pub(super) y_ticks: Vec<(u32, usize)>,
}

impl PanelLayout {
    pub(super) fn plot_w(&self) -> u32 {
        self.columns as u32 * self.cell_w
    }

    pub(super) fn plot_h(&self) -> u32 {
        self.rows as u32 * self.cell_h
    }

    /// Top of the tick labels under the heatmap (the frame and the ticks are above it).
    pub(super) fn x_labels_y(&self) -> u32 {
        self.plot_y + self.plot_h() + 1 + TICK + GAP / 2
    }

    /// Top of the axis label under the tick labels.
    pub(super) fn x_title_y(&self) -> u32 {
        self.x_labels_y() + LINE + GAP / 2
    }
}

/// The whole figure's geometry.
pub(super) struct Layout {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) panels: Vec<PanelLayout>,
    pub(super) bar_x: u32,
    pub(super) bar_y: u32,
    pub(super) bar_h: u32,
    /// Top of the grey swatch that explains non-finite cells.
    pub(super) legend_y: u32,
}

impl Layout {
    pub(super) fn new(panels: &[Panel]) -> Self {
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
pub(super) fn axis(count: usize, target: u32, max_cells: usize) -> (usize, usize, u32) {
    let per_cell = count.div_ceil(max_cells).max(1);
    let cells = count.div_ceil(per_cell);
    let side = (target as usize / cells.max(1)).clamp(1, MAX_CELL as usize) as u32;
    (per_cell, cells, side)
}

/// The ticks on an axis of `count` steps or neurons: 0, d, 2d, … with d the first of 1, 2,
/// 5, 10, 20, 50, … that puts ticks at least `min_gap` pixels apart and makes at most
/// `MAX_TICKS` of them.
pub(super) fn ticks(count: usize, pixels_per_unit: f64, min_gap: f64) -> Vec<usize> {
    let every = (0..60u32)
        .filter_map(|k| [1usize, 2, 5][k as usize % 3].checked_mul(10usize.checked_pow(k / 3)?))
        .find(|&d| d as f64 * pixels_per_unit >= min_gap && count.div_ceil(d) <= MAX_TICKS)
        .unwrap_or(usize::MAX);
    (0..count).step_by(every).collect()
}

pub(super) fn grouped_title(
    title: &str,
    steps_per_column: usize,
    neurons_per_row: usize,
) -> String {
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
