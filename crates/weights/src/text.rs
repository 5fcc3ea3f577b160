//! Arrays as text: JSON (nested arrays, alone or in an object by name) and CSV (one row per
//! time step of a single sequence). Numbers are read as f64 and written in their shortest
//! round-trip form, so a float32 written and read back is the same float32. numpy's printed
//! form, for people, is [`numpy`].

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

pub(crate) mod numpy;

/// A float tensor's values as f64, and whether they are narrower floats (f32, f16, bf16),
/// which are written in the shortest form of their f32 value.
pub(crate) struct Floats {
    pub values: Vec<f64>,
    pub narrow: bool,
}

/// The values of `t`: f64 as they are, every other dtype through f32.
pub(crate) fn float_values(t: &Tensor) -> candle_core::Result<Floats> {
    let flat = t.flatten_all()?;
    Ok(if t.dtype() == DType::F64 {
        Floats {
            values: flat.to_vec1::<f64>()?,
            narrow: false,
        }
    } else {
        Floats {
            values: flat
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?
                .into_iter()
                .map(f64::from)
                .collect(),
            narrow: true,
        }
    })
}

/// Version of the JSON document of tensors `rnn` writes ([`write_json`]): `rnn run --format
/// json` on stdout and `rnn run -o FILE.json`.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// The JSON document `rnn` writes and reads back: every tensor with its shape, its dtype
/// (lowercase: `f32`, `f64`) and its values in row-major order, each in the shortest form of
/// its own precision; NaN and infinities, which JSON lacks, as `null`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Document<V> {
    schema_version: u32,
    outputs: Vec<JsonTensor<V>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JsonTensor<V> {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    values: V,
}

/// Values as written: f64 as f64, every other float through f32.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// The arrays of a JSON file: `rnn`'s own document (an object with `schema_version`, see
/// [`write_json`]), an object of nested arrays by name, or one nested array, which is named
/// `input`. `lengths` is read as int64, everything else as f64.
pub(crate) fn read_json(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if value.get("schema_version").is_some() {
        return read_document(value);
    }
    let named = match value {
        Value::Object(map) => map.into_iter().collect(),
        array @ Value::Array(_) => vec![("input".to_string(), array)],
        other => {
            return Err(format!(
                "expected an array, or an object whose values are arrays; found {}",
                kind(&other)
            ))
        }
    };
    named
        .into_iter()
        .map(|(name, value)| {
            let tensor = json_array(&value, name == "lengths")
                .map_err(|reason| format!("`{name}`: {reason}"))?;
            Ok((name, tensor))
        })
        .collect()
}

/// A nested JSON array as a tensor: every level as long as its siblings, numbers at the bottom.
fn json_array(value: &Value, integers: bool) -> Result<Tensor, String> {
    let mut shape = Vec::new();
    let mut level = value;
    while let Value::Array(items) = level {
        shape.push(items.len());
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    let mut values = Vec::new();
    flatten(value, &shape, &mut Vec::new(), &mut values)?;
    tensor(values, shape, integers)
}

/// The tensors of `rnn`'s own document, checked: the version this reader knows, each tensor's
/// values as many as its shape holds; `null` is read as NaN.
fn read_document(value: Value) -> Result<BTreeMap<String, Tensor>, String> {
    let version = value.get("schema_version").and_then(Value::as_u64);
    if version != Some(u64::from(JSON_SCHEMA_VERSION)) {
        return Err(format!(
            "schema_version {}: this rnn reads version {JSON_SCHEMA_VERSION}",
            value["schema_version"]
        ));
    }
    let document: Document<Vec<Option<f64>>> =
        serde_json::from_value(value).map_err(|e| e.to_string())?;
    let mut tensors = BTreeMap::new();
    for t in document.outputs {
        let count = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if count != Some(t.values.len()) {
            return Err(format!(
                "`{}`: shape {:?} holds {} values, found {}",
                t.name,
                t.shape,
                count.map_or("too many".to_string(), |n| n.to_string()),
                t.values.len()
            ));
        }
        let values = t.values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let tensor = tensor(values, t.shape, t.name == "lengths")
            .map_err(|reason| format!("`{}`: {reason}", t.name))?;
        if tensors.insert(t.name.clone(), tensor).is_some() {
            return Err(format!("tensor `{}` appears twice", t.name));
        }
    }
    Ok(tensors)
}

/// `values` in `shape`, as int64 when `integers` (each must be a whole number), else f64.
fn tensor(values: Vec<f64>, shape: Vec<usize>, integers: bool) -> Result<Tensor, String> {
    if integers {
        let ints = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v.fract() == 0.0 && v.abs() < 2f64.powi(53) {
                    Ok(v as i64)
                } else {
                    Err(format!("element {i} is {v}, not an integer"))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Tensor::from_vec(ints, shape, &Device::Cpu).map_err(|e| e.to_string());
    }
    Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| e.to_string())
}

/// Appends the numbers under `value` to `out`, checking that the array under index `at` has
/// the shape `shape[at.len()..]`.
fn flatten(
    value: &Value,
    shape: &[usize],
    at: &mut Vec<usize>,
    out: &mut Vec<f64>,
) -> Result<(), String> {
    match (value, shape.get(at.len())) {
        (Value::Array(items), Some(&len)) if items.len() == len => {
            for (i, item) in items.iter().enumerate() {
                at.push(i);
                flatten(item, shape, at, out)?;
                at.pop();
            }
            Ok(())
        }
        (Value::Array(items), Some(&len)) => Err(format!(
            "ragged: the array at {at:?} has {} elements where its first sibling has {len}",
            items.len()
        )),
        (Value::Number(n), None) => {
            out.push(
                n.as_f64()
                    .ok_or_else(|| format!("{n} at {at:?} is not a number"))?,
            );
            Ok(())
        }
        (other, _) => Err(format!(
            "found {} at {at:?} where the first element's shape {shape:?} expects {}",
            kind(other),
            if at.len() < shape.len() {
                "an array"
            } else {
                "a number"
            }
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A CSV file as one `[rows, columns]` f64 tensor: one row per line, comma-separated; lines
/// starting with `#` (numpy.savetxt's header) and blank lines are skipped, and so is a first
/// row of column names.
pub(crate) fn read_csv(bytes: &[u8]) -> Result<Tensor, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_string())?;
    let mut values = Vec::new();
    let mut columns = None;
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed: Result<Vec<f64>, (usize, &str)> = line
            .split(',')
            .enumerate()
            .map(|(c, field)| field.trim().parse().map_err(|_| (c, field.trim())))
            .collect();
        let row = match parsed {
            Ok(row) => row,
            // A first row of which no field is a number names the columns; one with some
            // numbers is a row with a typo.
            Err(_)
                if columns.is_none()
                    && line.split(',').all(|f| f.trim().parse::<f64>().is_err()) =>
            {
                columns = Some(line.split(',').count());
                continue;
            }
            Err((c, field)) => {
                return Err(format!(
                    "line {}, column {}: `{field}` is not a number",
                    i + 1,
                    c + 1
                ))
            }
        };
        let expected = *columns.get_or_insert(row.len());
        if row.len() != expected {
            return Err(format!(
                "line {} has {} values where the rows before have {expected}",
                i + 1,
                row.len()
            ));
        }
        values.extend(row);
        rows += 1;
    }
    if rows == 0 {
        return Err("no rows of numbers".into());
    }
    let columns = values.len() / rows;
    Tensor::from_vec(values, (rows, columns), &Device::Cpu).map_err(|e| e.to_string())
}

/// Each element as text: f64 as f64, integers as integers, other floats by their f32 value,
/// each in its shortest round-trip form. Non-finite values as `nan`, `inf` and `-inf`.
fn element_strings(t: &Tensor) -> candle_core::Result<Vec<String>> {
    let flat = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F64 => flat.to_vec1::<f64>()?.iter().map(|v| number(*v)).collect(),
        DType::I64 | DType::I32 | DType::I16 | DType::U32 | DType::U8 => flat
            .to_dtype(DType::I64)?
            .to_vec1::<i64>()?
            .iter()
            .map(i64::to_string)
            .collect(),
        _ => flat
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| number(*v))
            .collect(),
    })
}

/// `{:?}` is Rust's shortest round-trip form, in exponent notation only for very large or
/// small magnitudes (`1e-7`), and valid JSON and CSV for finite values.
fn number<F: std::fmt::Debug + Into<f64> + Copy>(v: F) -> String {
    let wide: f64 = v.into();
    if wide.is_nan() {
        "nan".into()
    } else if wide.is_infinite() {
        if wide > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// The tensors as `rnn`'s JSON document, on one line:
/// `{"schema_version":1,"outputs":[{"name":"output","shape":[2,1,5],"dtype":"f32","values":[…]}]}`.
/// [`crate::TensorFile::read`] reads it back.
pub fn write_json(tensors: &[(String, Tensor)]) -> Result<String, String> {
    let outputs = tensors
        .iter()
        .map(|(name, t)| {
            let flat = t.flatten_all();
            let values = match t.dtype() {
                DType::F64 => flat.and_then(|f| f.to_vec1::<f64>()).map(Values::F64),
                _ => flat
                    .and_then(|f| f.to_dtype(DType::F32))
                    .and_then(|f| f.to_vec1::<f32>())
                    .map(Values::F32),
            }
            .map_err(|e| format!("`{name}`: {e}"))?;
            Ok(JsonTensor {
                name: name.clone(),
                shape: t.dims().to_vec(),
                dtype: crate::dtype::name(t.dtype()).to_lowercase(),
                values,
            })
        })
        .collect::<Result<_, String>>()?;
    let document = Document {
        schema_version: JSON_SCHEMA_VERSION,
        outputs,
    };
    let mut text = serde_json::to_string(&document).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// A `[rows, columns]` tensor as CSV, one row per line, no header (what `numpy.loadtxt(...,
/// delimiter=",")` reads).
pub(crate) fn write_csv(t: &Tensor) -> Result<String, String> {
    let [rows, columns] = *t.dims() else {
        return Err(format!(
            "CSV holds one sequence, [steps, features]; this tensor is {:?}",
            t.dims()
        ));
    };
    let elements = element_strings(t).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for r in 0..rows {
        out.push_str(&elements[r * columns..(r + 1) * columns].join(","));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
