//! The display list both back ends draw: the panels' heatmaps, frames, ticks and labels, and
//! the colour bar, placed by the layout and coloured by the scale.

use super::colour::{colour, limit, mean, Rgb, BLACK, FRAME, NON_FINITE, WHITE};
use super::layout::{
    Layout, PanelLayout, BAR_W, CAP, GAP, LINE, MARGIN, NON_FINITE_LABEL, TICK, X_LABEL, Y_LABEL,
};
use super::Panel;

/// Which point of a text its position names, along the direction of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Anchor {
    Start,
    Middle,
    End,
}

/// One thing to draw. Coordinates are pixels from the top left corner.
#[derive(Debug)]
pub(super) enum Item {
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
pub(super) struct Figure {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) items: Vec<Item>,
}

impl Figure {
    /// Lays the panels out and colours them; the panels have passed [`check`](super::check).
    pub(super) fn new(panels: &[Panel]) -> Self {
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
pub(super) fn heatmap(items: &mut Vec<Item>, panel: &Panel, l: &PanelLayout, limit: f64) {
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
pub(super) fn colour_bar(items: &mut Vec<Item>, layout: &Layout, limit: f64) {
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
pub(super) fn frame(items: &mut Vec<Item>, x: u32, y: u32, w: u32, h: u32) {
    let (right, bottom) = (x + w - 1, y + h - 1);
    items.push(line(x, y, right, y));
    items.push(line(x, bottom, right, bottom));
    items.push(line(x, y, x, bottom));
    items.push(line(right, y, right, bottom));
}

pub(super) fn line(x1: u32, y1: u32, x2: u32, y2: u32) -> Item {
    Item::Line {
        x1,
        y1,
        x2,
        y2,
        colour: FRAME,
    }
}

pub(super) fn text(x: u32, y: u32, text: &str, anchor: Anchor) -> Item {
    Item::Text {
        x,
        y,
        text: text.to_string(),
        anchor,
        vertical: false,
        colour: BLACK,
    }
}

/// A colour-bar label: 3 significant digits without trailing zeros between 0.01 and 1000,
/// else 2 in exponent form; never longer than `BAR_LABEL_CHARS`.
pub(super) fn format_value(value: f64) -> String {
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
