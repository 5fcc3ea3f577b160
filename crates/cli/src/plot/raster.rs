//! The PNG back end: draws a [`Figure`] into an RGB buffer and encodes it with the `png` crate.

use anyhow::{Context, Result};

use super::colour::Rgb;
use super::figure::{Anchor, Figure, Item};
use super::font;
use super::layout::{text_width, SCALE};

/// The figure as the bytes of a PNG file (RGB, 8 bits per channel).
pub fn png(figure: &Figure) -> Result<Vec<u8>> {
    let mut canvas = Canvas {
        width: figure.width,
        height: figure.height,
        rgb: vec![255; figure.width as usize * figure.height as usize * 3],
    };
    for item in &figure.items {
        canvas.draw(item);
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, figure.width, figure.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the PNG")?;
    writer
        .write_image_data(&canvas.rgb)
        .context("encoding the PNG")?;
    writer.finish().context("encoding the PNG")?;
    Ok(bytes)
}

/// Pixels, row by row from the top, three bytes each.
struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn draw(&mut self, item: &Item) {
        match *item {
            Item::Rect { x, y, w, h, colour } => {
                self.fill(x.into(), y.into(), w.into(), h.into(), colour);
            }
            Item::Line {
                x1,
                y1,
                x2,
                y2,
                colour,
            } => {
                // Horizontal or vertical: the line is the rectangle between its ends.
                let (x, y) = (x1.min(x2), y1.min(y2));
                let (w, h) = (x1.abs_diff(x2) + 1, y1.abs_diff(y2) + 1);
                self.fill(x.into(), y.into(), w.into(), h.into(), colour);
            }
            Item::Text {
                x,
                y,
                ref text,
                anchor,
                vertical,
                colour,
            } => self.text(x.into(), y.into(), text, anchor, vertical, colour),
        }
    }

    /// Paints the part of the rectangle that lies on the canvas.
    fn fill(&mut self, x: i64, y: i64, w: i64, h: i64, colour: Rgb) {
        let (x0, x1) = (x.max(0), (x + w).min(self.width.into()));
        let (y0, y1) = (y.max(0), (y + h).min(self.height.into()));
        for row in y0..y1 {
            for column in x0..x1 {
                let i = (row as usize * self.width as usize + column as usize) * 3;
                self.rgb[i..i + 3].copy_from_slice(&[colour.0, colour.1, colour.2]);
            }
        }
    }

    /// Each font pixel that is on becomes a `SCALE` × `SCALE` square.
    fn text(&mut self, x: i64, y: i64, text: &str, anchor: Anchor, vertical: bool, colour: Rgb) {
        let width = i64::from(text_width(text));
        let start = match anchor {
            Anchor::Start => 0,
            Anchor::Middle => width / 2,
            Anchor::End => width,
        };
        let scale = i64::from(SCALE);
        for (i, c) in (0i64..).zip(text.chars()) {
            for (row, bits) in (0i64..).zip(font::rows(c)) {
                for column in 0..i64::from(font::WIDTH) {
                    if bits >> (i64::from(font::WIDTH) - 1 - column) & 1 == 0 {
                        continue;
                    }
                    // Distance from the anchor along the text, and from the cap line across it.
                    let along = (i * i64::from(font::ADVANCE) + column) * scale - start;
                    let across = row * scale;
                    let (px, py) = if vertical {
                        (x + across, y - along - scale)
                    } else {
                        (x + along, y + across)
                    };
                    self.fill(px, py, scale, scale, colour);
                }
            }
        }
    }
}
