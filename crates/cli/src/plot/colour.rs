//! The colours: the diverging scale from -limit (blue) to +limit (red), its limit over the
//! panels, and the grey of non-finite cells.

use std::fmt;

use super::Panel;

pub(super) const WHITE: Rgb = Rgb(255, 255, 255);
pub(super) const BLACK: Rgb = Rgb(0, 0, 0);
pub(super) const FRAME: Rgb = Rgb(96, 96, 96);
pub(super) const NON_FINITE: Rgb = Rgb(128, 128, 128);
/// The diverging scale at -1, -0.5, 0, 0.5 and 1 (ColorBrewer's RdBu); linear in between.
pub(super) const DIVERGING: [Rgb; 5] = [
    Rgb(33, 102, 172),
    Rgb(103, 169, 207),
    Rgb(247, 247, 247),
    Rgb(239, 138, 98),
    Rgb(178, 24, 43),
];

/// A colour, 8 bits per channel; displayed as `#rrggbb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rgb(pub(super) u8, pub(super) u8, pub(super) u8);

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// The mean of a cell's values; NaN when any of them is NaN or infinite.
pub(super) fn mean(values: impl Iterator<Item = f32>) -> f64 {
    let (sum, count) = values.fold((0.0, 0u32), |(s, c), v| (s + f64::from(v), c + 1));
    if sum.is_finite() {
        sum / f64::from(count.max(1))
    } else {
        f64::NAN
    }
}

/// The colour scale's limit: the largest |v| over the finite values, or 1 when that is 0.
pub(super) fn limit(panels: &[Panel]) -> f64 {
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
pub(super) fn colour(value: f64, limit: f64) -> Rgb {
    if !value.is_finite() {
        return NON_FINITE;
    }
    let at = ((value / limit).clamp(-1.0, 1.0) + 1.0) * 2.0;
    let i = (at.floor() as usize).min(DIVERGING.len() - 2);
    let (a, b, f) = (DIVERGING[i], DIVERGING[i + 1], at - i as f64);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}
