//! An ONNX `TensorProto` as a candle tensor.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::proto::TensorProto;
use super::{malformed, refuse};
use crate::error::{Result, WeightsError};

/// A tensor stored in the file, its length checked against its shape before anything is
/// allocated for it.
pub(super) fn to_tensor(path: &Path, t: &TensorProto) -> Result<Tensor> {
    let name = if t.name.is_empty() {
        "(unnamed)"
    } else {
        &t.name
    };
    let bad = |reason: String| malformed(path, format!("tensor `{name}`: {reason}"));
    let external;
    let raw_data: &[u8] = if t.data_location == 1 || !t.external_data.is_empty() {
        external = external_bytes(path, t).map_err(|reason| {
            refuse(
                path,
                format!("an ONNX model whose tensor `{name}` is stored outside it: {reason}"),
                "keep the data file beside the model, named as the model names it, or save \
                 the model whole: onnx.save(model, path, save_as_external_data=False)",
            )
        })?;
        &external
    } else {
        &t.raw_data
    };
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
        .collect::<Result<Vec<usize>>>()?;
    let numel = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|_| crate::header_checks::strides_fit(&dims))
        .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
    let (dtype, size) = match t.data_type {
        1 => (DType::F32, 4),
        11 => (DType::F64, 8),
        10 => (DType::F16, 2),
        16 => (DType::BF16, 2),
        6 => (DType::I64, 4),
        7 => (DType::I64, 8),
        other => {
            return Err(bad(format!(
                "ONNX data type {other}, which rnn does not read"
            )))
        }
    };
    let count = |found: usize| {
        if found == numel {
            Ok(())
        } else {
            Err(bad(format!(
                "shape {dims:?} holds {numel} elements, the data {found}"
            )))
        }
    };
    let device = &Device::Cpu;
    let tensor = if !raw_data.is_empty() || numel == 0 {
        if raw_data.len() != numel.saturating_mul(size) {
            return Err(bad(format!(
                "shape {dims:?} needs {} bytes, raw_data has {}",
                numel.saturating_mul(size),
                raw_data.len()
            )));
        }
        if t.data_type == 6 {
            let v: Vec<i64> = raw_data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            Tensor::from_vec(v, dims.as_slice(), device)
        } else {
            Tensor::from_raw_buffer(raw_data, dtype, &dims, device)
        }
    } else {
        match t.data_type {
            1 => {
                count(t.float_data.len())?;
                Tensor::from_vec(t.float_data.clone(), dims.as_slice(), device)
            }
            11 => {
                count(t.double_data.len())?;
                Tensor::from_vec(t.double_data.clone(), dims.as_slice(), device)
            }
            6 => {
                count(t.int32_data.len())?;
                let v: Vec<i64> = t.int32_data.iter().map(|&x| i64::from(x)).collect();
                Tensor::from_vec(v, dims.as_slice(), device)
            }
            7 => {
                count(t.int64_data.len())?;
                Tensor::from_vec(t.int64_data.clone(), dims.as_slice(), device)
            }
            _ => return Err(bad("16-bit floats outside raw_data".into())),
        }
    };
    tensor.map_err(|error| WeightsError::Tensor {
        path: path.to_owned(),
        error,
    })
}

/// The file an external tensor's `location` names, confined to the model's own folder: a
/// relative path of plain names (no `..`, no root), which after every link is resolved is
/// still inside the folder. The error says why a location is not one.
pub(super) fn external_file(model: &Path, location: &str) -> std::result::Result<PathBuf, String> {
    let relative = Path::new(location);
    let plain = relative
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if location.is_empty() || !plain {
        return Err(format!(
            "its location {:?} is not a plain path inside the model's folder",
            crate::error::clip(location, crate::error::QUOTED_CHARS)
        ));
    }
    let folder = model.parent().unwrap_or(Path::new("."));
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let folder = folder
        .canonicalize()
        .map_err(|e| format!("the model's folder: {e}"))?;
    let target = folder
        .join(relative)
        .canonicalize()
        .map_err(|e| format!("{location}: {e}"))?;
    if !target.starts_with(&folder) {
        return Err(format!(
            "its location {location:?} leads out of the model's folder (through a link)"
        ));
    }
    Ok(target)
}

/// The bytes of an external tensor (`data_location` EXTERNAL): `length` bytes from `offset`
/// of the file its `location` names (see [`external_file`]), both checked against the file's
/// real size before anything is read.
fn external_bytes(model: &Path, t: &TensorProto) -> std::result::Result<Vec<u8>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or("it names no location")?;
    let number = |key: &str| -> std::result::Result<Option<u64>, String> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("its {key} {v:?} is not a number of bytes"))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let file = external_file(model, location)?;
    // A FIFO or device is refused before it is opened (opening a FIFO waits for a writer).
    let regular = |m: std::fs::Metadata| m.is_file();
    if !std::fs::metadata(&file).is_ok_and(regular) {
        return Err(format!("{location} is not a regular file"));
    }
    let mut handle = std::fs::File::open(&file).map_err(|e| format!("{location}: {e}"))?;
    let meta = handle.metadata().map_err(|e| format!("{location}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{location} is not a regular file"));
    }
    let size = meta.len();
    let length = number("length")?.unwrap_or(size.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(format!(
            "{length} bytes at offset {offset} of {location}, which holds {size}"
        ));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(usize::try_from(length).unwrap_or(usize::MAX))
        .map_err(|_| format!("{length} bytes cannot be held in memory"))?;
    handle
        .seek(SeekFrom::Start(offset))
        .and_then(|_| handle.take(length).read_to_end(&mut bytes))
        .map_err(|e| format!("{location}: {e}"))?;
    Ok(bytes)
}
