//! `load`'s keywords: the CLI's reading options by their long names, parsed from Python values.

use candle_core::{DType, Device};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rnn_weights::{ReadOptions, Selection};

use crate::device::open_device;
use crate::error::{keyword, rnn_error};

/// The keywords [`load`] takes: the CLI's reading options by their long names.
pub(crate) const OPTIONS: &[&str] = &[
    "nonlinearity",
    "go_backwards",
    "merge_mode",
    "masked_steps",
    "mask_value",
    "clip",
    "batch_first",
    "time_major",
    "weights_format",
    "prefix",
    "stack",
    "dtype",
    "device",
];

/// One value or a list of them (a string may also hold them comma-separated, as the flag does,
/// unless it is one parametrised activation such as `affine(1.0,0.5)`).
pub(crate) fn names(value: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if value.is_instance_of::<PyString>() {
        let text: String = value.extract()?;
        if text.contains('(') {
            return Ok(vec![text]);
        }
        return Ok(text.split(',').map(|s| s.trim().to_string()).collect());
    }
    value.extract::<Vec<String>>()
}

/// Each of the keyword's values by the library's vocabulary (`FromStr` on its enums, which
/// the CLI's flags and file metadata share); an unknown one is named with every accepted one.
pub(crate) fn parse_each<T: std::str::FromStr<Err = String>>(
    option: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Vec<T>> {
    names(value)?
        .iter()
        .map(|name| name.parse().map_err(|e| rnn_error(keyword(option, e))))
        .collect()
}

/// One value by the library's vocabulary ([`parse_each`]).
fn parse_one<T: std::str::FromStr<Err = String>>(
    option: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<T> {
    let name: String = value.extract()?;
    name.parse().map_err(|e| rnn_error(keyword(option, e)))
}

pub(crate) fn floats(value: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    match value.extract::<f64>() {
        Ok(one) => Ok(vec![one]),
        Err(_) => value.extract::<Vec<f64>>(),
    }
}

/// What `load`'s keywords say, checked: the reading options, the dtype and the device.
pub(crate) struct Options {
    pub(crate) read: ReadOptions,
    pub(crate) dtype: Option<DType>,
    pub(crate) device: Device,
    pub(crate) device_name: String,
}

pub(crate) fn parse_dtype(name: &str) -> Option<DType> {
    match name {
        "float32" | "f32" => Some(DType::F32),
        "float64" | "f64" => Some(DType::F64),
        _ => None,
    }
}

pub(crate) fn parse_options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
    let mut read = ReadOptions::default();
    let mut selection = Selection::default();
    let mut dtype = None;
    let mut device_name = "cpu".to_string();
    let mut time_major = false;
    let mut batch_first = false;
    if let Some(kwargs) = kwargs {
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            if value.is_none() {
                continue;
            }
            match key.as_str() {
                "nonlinearity" => read.nonlinearity = parse_each(&key, &value)?,
                "go_backwards" => read.go_backwards = value.extract()?,
                "merge_mode" => read.merge_mode = parse_each(&key, &value)?,
                "masked_steps" => read.masked_steps = Some(parse_one(&key, &value)?),
                "mask_value" => read.mask_value = Some(value.extract()?),
                "clip" => read.clip = floats(&value)?,
                "batch_first" => batch_first = value.extract()?,
                "time_major" => time_major = value.extract()?,
                "weights_format" => selection.naming = Some(parse_one(&key, &value)?),
                "prefix" => selection.prefix = Some(value.extract()?),
                "stack" => selection.stack = names(&value)?,
                "dtype" => {
                    let name: String = value.extract()?;
                    dtype = Some(parse_dtype(&name).ok_or_else(|| {
                        rnn_error(keyword(
                            "dtype",
                            format!("`{name}` is not one of the accepted values: float32, float64"),
                        ))
                    })?)
                }
                "device" => device_name = value.extract()?,
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "load() got an unexpected keyword argument '{other}'; the options are: {}",
                        OPTIONS.join(", ")
                    )))
                }
            }
        }
    }
    if batch_first && time_major {
        return Err(rnn_error(keyword(
            "batch_first",
            "cannot be used with time_major",
        )));
    }
    read.batch_first = match (batch_first, time_major) {
        (_, true) => Some(false),
        (true, false) => Some(true),
        (false, false) => None,
    };
    if selection.prefix.is_some() && !selection.stack.is_empty() {
        return Err(rnn_error(keyword("prefix", "cannot be used with stack")));
    }
    read.selection = selection;
    let (device, device_name) = open_device(&device_name)?;
    Ok(Options {
        read,
        dtype,
        device,
        device_name,
    })
}
