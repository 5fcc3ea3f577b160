//! An ONNX `TensorProto` as a candle tensor.

use std::path::Path;

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
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(refuse(
            path,
            format!("an ONNX model whose tensor `{name}` is stored in an external file"),
            "save it whole: onnx.save(model, path, save_as_external_data=False)",
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
        .collect::<Result<Vec<usize>>>()?;
    let numel = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
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
    let tensor = if !t.raw_data.is_empty() || numel == 0 {
        if t.raw_data.len() != numel.saturating_mul(size) {
            return Err(bad(format!(
                "shape {dims:?} needs {} bytes, raw_data has {}",
                numel.saturating_mul(size),
                t.raw_data.len()
            )));
        }
        if t.data_type == 6 {
            let v: Vec<i64> = t
                .raw_data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            Tensor::from_vec(v, dims.as_slice(), device)
        } else {
            Tensor::from_raw_buffer(&t.raw_data, dtype, &dims, device)
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
