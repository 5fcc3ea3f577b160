//! Arrays as `str(array)` prints them in numpy (`numpy.array2string` with numpy's default
//! print options, numpy ≥ 1.14): each float in its shortest round-trip form cut at
//! `precision` fraction digits, aligned on the point, in scientific notation when the
//! magnitudes call for it; rows wrapped at `line_width`; arrays of more than `threshold`
//! elements summarised, `edge_items` at each end of every long axis around `...`.
//! This follows numpy's `arrayprint.py` (`FloatingFormat`, `_formatArray`, `_extendLine`).

use candle_core::Tensor;

use super::{float_values, Floats};

/// numpy's print options that `rnn` uses; [`PrintOptions::default`] is numpy's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintOptions {
    /// Arrays of more elements than this are summarised (numpy's `threshold`, 1000).
    pub threshold: usize,
    /// Items shown at each end of a summarised axis (numpy's `edgeitems`, 3).
    pub edge_items: usize,
    /// Characters per line before a row wraps (numpy's `linewidth`, 75).
    pub line_width: usize,
    /// Most fraction digits of a float (numpy's `precision`, 8).
    pub precision: usize,
}

impl Default for PrintOptions {
    fn default() -> Self {
        Self {
            threshold: 1000,
            edge_items: 3,
            line_width: 75,
            precision: 8,
        }
    }
}

impl PrintOptions {
    /// Every element, nothing summarised (numpy's `threshold=sys.maxsize`).
    pub fn everything(self) -> Self {
        Self {
            threshold: usize::MAX,
            ..self
        }
    }

    /// Every element on one line per row: nothing summarised, no row wrapped.
    pub fn one_line(self) -> Self {
        Self {
            line_width: usize::MAX,
            ..self.everything()
        }
    }
}

/// A float tensor as numpy's `str()` prints it under `options`. f64 is printed from its f64
/// values; every other dtype through its f32 values (the shortest f32 form: `0.82874775`, not
/// `0.8287477493286133`).
///
/// # Errors
/// When candle cannot read the tensor's values as floats.
pub fn array2string(t: &Tensor, options: &PrintOptions) -> candle_core::Result<String> {
    if t.elem_count() == 0 {
        return Ok("[]".into());
    }
    let Floats { values, narrow } = float_values(t)?;
    let dims = t.dims();
    let summarise = t.elem_count() > options.threshold;
    // The indices shown along each axis; numpy formats only the elements shown.
    let shown: Vec<Vec<usize>> = dims
        .iter()
        .map(|&n| {
            if summarise && 2 * options.edge_items < n {
                (0..options.edge_items)
                    .chain(n - options.edge_items..n)
                    .collect()
            } else {
                (0..n).collect()
            }
        })
        .collect();
    let mut picked = Vec::new();
    pick(&values, dims, &shown, 0, &mut picked);
    let format = FloatFormat::new(&picked, narrow, options.precision);
    let cells: Vec<String> = picked
        .iter()
        .enumerate()
        .map(|(i, &v)| format.cell(i, v))
        .collect();
    if dims.is_empty() {
        return Ok(cells[0].trim().to_string());
    }
    let layout = Layout {
        cells: &cells,
        dims: &shown.iter().map(Vec::len).collect::<Vec<_>>(),
        summarised: &dims
            .iter()
            .zip(&shown)
            .map(|(&n, s)| s.len() < n)
            .collect::<Vec<_>>(),
        edge_items: options.edge_items,
    };
    Ok(layout.array(0, 0, " ", options.line_width))
}

/// The values at the shown indices, row-major.
fn pick(values: &[f64], dims: &[usize], shown: &[Vec<usize>], offset: usize, out: &mut Vec<f64>) {
    match dims {
        [] => out.push(values[offset]),
        [_, rest @ ..] => {
            let stride: usize = rest.iter().product();
            for &i in &shown[0] {
                pick(values, rest, &shown[1..], offset + i * stride, out);
            }
        }
    }
}

/// How every element of one array is written: numpy's `FloatingFormat` with `floatmode`
/// `maxprec`, `sign='-'`, `suppress=False`.
struct FloatFormat {
    scientific: bool,
    /// Characters before the point (the sign included), to which the integer part is padded.
    pad_left: usize,
    /// Positional: fraction characters, padded with spaces. Scientific: the width after the
    /// mantissa's integer part, for non-finite values.
    pad_right: usize,
    /// Scientific: fraction digits of every mantissa and digits of every exponent.
    precision: usize,
    exp_digits: usize,
    narrow: bool,
    max_precision: usize,
    /// Positional: each value's shortest digits (empty where it is not finite), worked out
    /// once for the widths and used again for the cells.
    positional: Vec<String>,
}

impl FloatFormat {
    fn new(values: &[f64], narrow: bool, max_precision: usize) -> Self {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let magnitudes = finite.iter().filter(|v| **v != 0.0).map(|v| v.abs());
        let (min, max) = magnitudes.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let scientific = min.is_finite() && (max >= 1e8 || min < 1e-4 || max / min > 1e3);
        let mut format = Self {
            scientific,
            pad_left: 0,
            pad_right: 0,
            precision: 0,
            exp_digits: 0,
            narrow,
            max_precision,
            positional: Vec::new(),
        };
        if !finite.is_empty() {
            if scientific {
                for &v in &finite {
                    let (mantissa, exponent) = format.shortest_scientific(v);
                    let (int, frac) = mantissa.split_once('.').unwrap_or((&mantissa, ""));
                    format.pad_left = format.pad_left.max(int.len());
                    format.precision = format.precision.max(frac.len());
                    format.exp_digits = format
                        .exp_digits
                        .max(exponent.unsigned_abs().to_string().len());
                }
                format.exp_digits = format.exp_digits.max(2);
                format.pad_right = format.exp_digits + 2 + format.precision;
            } else {
                let positional: Vec<String> = values
                    .iter()
                    .map(|&v| {
                        if v.is_finite() {
                            format.shortest_positional(v)
                        } else {
                            String::new()
                        }
                    })
                    .collect();
                for s in positional.iter().filter(|s| !s.is_empty()) {
                    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
                    format.pad_left = format.pad_left.max(int.len());
                    format.pad_right = format.pad_right.max(frac.len());
                }
                format.positional = positional;
            }
        }
        if finite.len() != values.len() {
            let negative_inf = values.contains(&f64::NEG_INFINITY);
            let offset = format.pad_right + 1;
            let inf_len = 3 + usize::from(negative_inf);
            format.pad_left = format
                .pad_left
                .max(3usize.saturating_sub(offset))
                .max(inf_len.saturating_sub(offset));
        }
        format
    }

    /// The shortest round-trip digits of `v` in its own precision, positional, cut at
    /// `max_precision` fraction digits (rounded there) and without trailing zeros: `1.`,
    /// `-0.25`, `0.33333334`.
    fn shortest_positional(&self, v: f64) -> String {
        let shortest = if self.narrow {
            (v as f32).to_string()
        } else {
            v.to_string()
        };
        let mut s = match shortest.split_once('.') {
            Some((_, frac)) if frac.len() > self.max_precision => {
                let mut rounded = format!("{v:.*}", self.max_precision);
                rounded.truncate(rounded.trim_end_matches('0').len());
                rounded
            }
            _ => shortest,
        };
        if !s.contains('.') {
            s.push('.');
        }
        s
    }

    /// The shortest round-trip mantissa of `v` (cut at `max_precision` fraction digits,
    /// rounded there, without trailing zeros) and its exponent: `("1.5", -5)`.
    fn shortest_scientific(&self, v: f64) -> (String, i32) {
        let shortest = if self.narrow {
            format!("{:e}", v as f32)
        } else {
            format!("{v:e}")
        };
        let (mantissa, _) = shortest.split_once('e').unwrap_or((&shortest, "0"));
        let cut = mantissa
            .split_once('.')
            .is_some_and(|(_, frac)| frac.len() > self.max_precision);
        let s = if cut {
            format!("{v:.*e}", self.max_precision)
        } else {
            shortest
        };
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.trim_end_matches('0').to_string()
        } else {
            format!("{mantissa}.")
        };
        (mantissa, exponent.parse().unwrap_or(0))
    }

    /// Element `i` of the values the format was made from, `v`, padded to the array's
    /// common width.
    fn cell(&self, i: usize, v: f64) -> String {
        if !v.is_finite() {
            let text = if v.is_nan() {
                "nan"
            } else if v > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            return format!("{text:>width$}", width = self.pad_left + self.pad_right + 1);
        }
        if self.scientific {
            // Past its shortest form, each mantissa goes on with its exact value's digits to
            // the array's common precision (numpy's `min_digits`), not with zeros.
            let exact = format!("{v:.*e}", self.precision);
            let (mantissa, exponent) = exact.split_once('e').unwrap_or((&exact, "0"));
            let exponent: i32 = exponent.parse().unwrap_or(0);
            let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
            let sign = if exponent < 0 { '-' } else { '+' };
            format!(
                "{int:>left$}.{frac:0<precision$}e{sign}{:0>digits$}",
                exponent.unsigned_abs(),
                left = self.pad_left,
                precision = self.precision,
                digits = self.exp_digits,
            )
        } else {
            let s = &self.positional[i];
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            // `{int:>left$}.{frac:<right$}`, without the formatter's machinery (a stream
            // prints every step).
            let left = self.pad_left.saturating_sub(int.chars().count());
            let right = self.pad_right.saturating_sub(frac.chars().count());
            let mut cell = String::with_capacity(left + s.len() + right + 1);
            cell.extend(std::iter::repeat_n(' ', left));
            cell.push_str(int);
            cell.push('.');
            cell.push_str(frac);
            cell.extend(std::iter::repeat_n(' ', right));
            cell
        }
    }
}

/// The shown elements of an array and the shape they are laid out in.
struct Layout<'a> {
    /// Formatted elements, row-major over the shown indices.
    cells: &'a [String],
    /// Shown items per axis.
    dims: &'a [usize],
    /// Whether each axis is summarised (`...` after its first `edge_items` items).
    summarised: &'a [bool],
    edge_items: usize,
}

impl Layout<'_> {
    /// numpy's `_formatArray` recursion: the sub-array at `axis` starting at cell `offset`,
    /// continued lines indented by `hanging`, in lines of at most `width` characters.
    fn array(&self, axis: usize, offset: usize, hanging: &str, width: usize) -> String {
        let n = self.dims[axis];
        let stride: usize = self.dims[axis + 1..].iter().product();
        let summary_after = self.summarised[axis].then_some(self.edge_items);
        let next_hanging = format!("{hanging} ");
        let next_width = width.saturating_sub(1);
        let mut s = String::new();
        if axis + 1 == self.dims.len() {
            // Room for the separator's or the bracket's one character after each element.
            let element_width = width.saturating_sub(1);
            let mut line = hanging.to_string();
            for i in 0..n {
                extend_line(
                    &mut s,
                    &mut line,
                    &self.cells[offset + i],
                    element_width,
                    hanging,
                );
                if i + 1 < n {
                    line.push(' ');
                    if summary_after == Some(i + 1) {
                        extend_line(&mut s, &mut line, "...", element_width, hanging);
                        line.push(' ');
                    }
                }
            }
            s.push_str(&line);
        } else {
            let line_sep = "\n".repeat(self.dims.len() - axis - 1);
            for i in 0..n {
                s.push_str(hanging);
                s.push_str(&self.array(axis + 1, offset + i * stride, &next_hanging, next_width));
                if i + 1 < n {
                    s.push_str(&line_sep);
                    if summary_after == Some(i + 1) {
                        s.push_str(hanging);
                        s.push_str("...");
                        s.push_str(&line_sep);
                    }
                }
            }
        }
        format!("[{}]", &s[hanging.len()..])
    }
}

/// numpy's `_extendLine`: `word` added to `line`, which is first moved to `s` and restarted
/// at `hanging` when the word would pass `width` and the line holds more than its indent.
fn extend_line(s: &mut String, line: &mut String, word: &str, width: usize, hanging: &str) {
    if line.len() + word.len() > width && line.len() > hanging.len() {
        s.push_str(line.trim_end());
        s.push('\n');
        *line = hanging.to_string();
    }
    line.push_str(word);
}

#[cfg(test)]
mod tests;
