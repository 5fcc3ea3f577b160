//! The SVG back end: writes a [`Figure`] as SVG text, one element per item.

use std::fmt::{self, Write};

use super::figure::{Anchor, Figure, Item};
use super::font;
use super::layout::SCALE;

/// The figure as an SVG document.
pub fn svg(figure: &Figure) -> Result<String, fmt::Error> {
    let (width, height) = (figure.width, figure.height);
    let mut out = String::new();
    // A monospace font at 10 units per font pixel has about the bitmap font's advance
    // (0.6 em) and cap height (0.7 em), so labels take the room the layout gave them.
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" shape-rendering="crispEdges" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{}">"#,
        10 * SCALE
    )?;
    for item in &figure.items {
        match item {
            Item::Rect { x, y, w, h, colour } => writeln!(
                out,
                r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour}"/>"#
            )?,
            Item::Line {
                x1,
                y1,
                x2,
                y2,
                colour,
            } => {
                // The stroke runs along the middle of the pixels the line covers.
                let (left, top) = (f64::from(*x1.min(x2)), f64::from(*y1.min(y2)));
                let (right, bottom) = (f64::from(*x1.max(x2)), f64::from(*y1.max(y2)));
                let (a, b) = if x1 == x2 {
                    ((left + 0.5, top), (left + 0.5, bottom + 1.0))
                } else {
                    ((left, top + 0.5), (right + 1.0, top + 0.5))
                };
                writeln!(
                    out,
                    r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}"/>"#,
                    a.0, a.1, b.0, b.1
                )?;
            }
            Item::Text {
                x,
                y,
                text,
                anchor,
                vertical,
                colour,
            } => {
                let anchor = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                let baseline = font::CAP * SCALE;
                let text = escape(text);
                if *vertical {
                    let x = x + baseline;
                    writeln!(
                        out,
                        r#"<text x="{x}" y="{y}" transform="rotate(-90 {x} {y})" text-anchor="{anchor}" fill="{colour}">{text}</text>"#
                    )?;
                } else {
                    let y = y + baseline;
                    writeln!(
                        out,
                        r#"<text x="{x}" y="{y}" text-anchor="{anchor}" fill="{colour}">{text}</text>"#
                    )?;
                }
            }
        }
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// Text as XML character data or an attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
