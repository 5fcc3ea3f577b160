//! What `rnn` prints: tensors the way numpy prints them, and the JSON forms.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};
use serde::Serialize;

/// Version of the JSON objects `rnn` prints (`--format json`, `--stream --format json`).
pub const SCHEMA_VERSION: u32 = 1;

/// Writes results to stdout in one piece.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Fraction digits numpy prints by default (`np.set_printoptions(precision=8)`).
const PRECISION: usize = 8;

/// Formats a tensor as `numpy.array2string` does with default options: each element in its
/// shortest round-trip form, at most 8 fraction digits, aligned on the decimal point; nested
/// brackets, a blank line between blocks of rank ≥ 3.
pub fn numpy_string(t: &Tensor) -> Result<String> {
    if t.elem_count() == 0 {
        return Ok("[]".into());
    }
    let elements = element_strings(t)?;
    let cells = align(&elements);
    let mut out = String::new();
    nest(&cells, t.dims(), 0, &mut out);
    Ok(out)
}

/// Each element as numpy would write it before alignment.
fn element_strings(t: &Tensor) -> Result<Vec<String>> {
    let flat = t.flatten_all()?;
    // f32 is printed from f32 so that the shortest form is the f32 one (0.82874775, not
    // 0.8287477493286133); narrower floats print as their f32 value.
    let values: Vec<f64>;
    let shortest: Vec<String>;
    if t.dtype() == DType::F64 {
        values = flat.to_vec1::<f64>()?;
        shortest = values.iter().map(|v| v.to_string()).collect();
    } else {
        let v32 = flat.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        shortest = v32.iter().map(|v| v.to_string()).collect();
        values = v32.iter().map(|&v| v as f64).collect();
    }
    let finite_nonzero = values
        .iter()
        .filter(|v| v.is_finite() && **v != 0.0)
        .map(|v| v.abs());
    let (min, max) = finite_nonzero.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let scientific = max >= 1e8 || (min.is_finite() && (min < 1e-4 || max / min > 1e3));
    Ok(values
        .iter()
        .zip(shortest)
        .map(|(&v, s)| {
            if !v.is_finite() {
                if v.is_nan() {
                    "nan".into()
                } else if v > 0.0 {
                    "inf".into()
                } else {
                    "-inf".into()
                }
            } else if scientific {
                scientific_string(v)
            } else {
                positional_string(v, &s)
            }
        })
        .collect())
}

/// `shortest` limited to [`PRECISION`] fraction digits, always with a point: `1.`, `-0.25`.
fn positional_string(v: f64, shortest: &str) -> String {
    let s = match shortest.split_once('.') {
        Some((_, frac)) if frac.len() > PRECISION => {
            let rounded = format!("{v:.PRECISION$}");
            rounded.trim_end_matches('0').to_string()
        }
        _ => shortest.to_string(),
    };
    if s.contains('.') {
        s
    } else {
        format!("{s}.")
    }
}

/// numpy's scientific form: `1.5e-05`, mantissa with at most [`PRECISION`] fraction digits.
fn scientific_string(v: f64) -> String {
    let s = format!("{v:.PRECISION$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mantissa = mantissa.trim_end_matches('0');
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Pads every element to the same width, aligned on the decimal point.
fn align(elements: &[String]) -> Vec<String> {
    let split = |s: &str| -> (usize, usize) {
        let head = s.find(['.', 'e']).unwrap_or(s.len());
        (head, s.len() - head)
    };
    let left = elements.iter().map(|s| split(s).0).max().unwrap_or(0);
    let right = elements.iter().map(|s| split(s).1).max().unwrap_or(0);
    elements
        .iter()
        .map(|s| {
            let (head, tail) = split(s);
            format!("{}{s}{}", " ".repeat(left - head), " ".repeat(right - tail))
        })
        .collect()
}

fn nest(cells: &[String], dims: &[usize], depth: usize, out: &mut String) {
    match dims {
        [] => out.push_str(cells.first().map_or("", |s| s.trim())),
        [_] => {
            out.push('[');
            out.push_str(&cells.join(" "));
            out.push(']');
        }
        [n, rest @ ..] => {
            let chunk = rest.iter().product::<usize>();
            out.push('[');
            for i in 0..*n {
                if i > 0 {
                    // numpy separates rows with a newline, blocks of rank ≥ 3 with a blank line.
                    out.push('\n');
                    for _ in 1..rest.len() {
                        out.push('\n');
                    }
                    out.push_str(&" ".repeat(depth + 1));
                }
                nest(&cells[i * chunk..(i + 1) * chunk], rest, depth + 1, out);
            }
            out.push(']');
        }
    }
}

/// A tensor in the JSON outputs: name, shape and values in row-major order. f32 values are
/// written in their shortest f32 form; NaN and infinities as `null`.
#[derive(Serialize)]
pub struct JsonTensor {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    values: JsonValues,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonValues {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl JsonTensor {
    /// Reads the tensor's values.
    pub fn new(name: &str, t: &Tensor) -> Result<Self> {
        let flat = t.flatten_all()?;
        let values = if t.dtype() == DType::F64 {
            JsonValues::F64(flat.to_vec1()?)
        } else {
            JsonValues::F32(flat.to_dtype(DType::F32)?.to_vec1()?)
        };
        Ok(Self {
            name: name.to_string(),
            shape: t.dims().to_vec(),
            dtype: format!("{:?}", t.dtype()).to_lowercase(),
            values,
        })
    }
}

#[cfg(test)]
mod tests;
