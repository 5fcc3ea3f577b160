//! numpy's `.npy` format (versions 1 to 3): little-endian float and integer arrays in C order.
//! Written as version 1.0 (2.0 when the header needs it), as `numpy.save` does.

use candle_core::{DType, Device, Tensor};

use safetensors::View;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses a whole `.npy` file; the error says what is wrong, in words.
pub(crate) fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err("missing the \\x93NUMPY magic at the start".into());
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            let len = bytes.get(8..12).ok_or("truncated in the header length")?;
            (
                u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported format version {v}")),
    };
    let header_end = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            format!(
                "header length {header_len} runs past the end of the file ({} bytes)",
                bytes.len()
            )
        })?;
    let header = std::str::from_utf8(&bytes[header_start..header_end])
        .map_err(|_| "the header is not UTF-8 text".to_string())?;
    let descr = field(header, "descr").ok_or("the header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = field(header, "fortran_order").ok_or("the header has no 'fortran_order'")?;
    if fortran.trim() != "False" {
        return Err("Fortran-order arrays are not supported; save with C order".into());
    }
    let shape = parse_shape(field(header, "shape").ok_or("the header has no 'shape'")?)?;
    let (dtype, size) = match descr {
        "<f4" => (DType::F32, 4),
        "<f8" => (DType::F64, 8),
        "<f2" => (DType::F16, 2),
        "<i8" => (DType::I64, 8),
        "<i4" => (DType::I32, 4),
        "|u1" => (DType::U8, 1),
        other => {
            return Err(format!(
                "unsupported dtype '{other}'; expected little-endian float or int ('<f4', '<f8', '<f2', '<i8', '<i4')"
            ))
        }
    };
    if !crate::file::strides_fit(&shape) {
        return Err(format!("shape {shape:?} is too large to lay out"));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(size))
        .ok_or("the shape is too large")?;
    let data = &bytes[header_end..];
    if data.len() != count {
        return Err(format!(
            "shape {shape:?} of '{descr}' needs {count} data bytes, found {}",
            data.len()
        ));
    }
    Tensor::from_raw_buffer(data, dtype, &shape, &Device::Cpu).map_err(|e| e.to_string())
}

/// The bytes of a `.npy` file holding `tensor` (contiguous or not). bf16, which numpy has no
/// type for, is written as float32.
pub(crate) fn write(tensor: &Tensor) -> candle_core::Result<Vec<u8>> {
    let tensor = match tensor.dtype() {
        DType::BF16 => tensor.to_dtype(DType::F32)?,
        _ => tensor.clone(),
    };
    let descr = match tensor.dtype() {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::U8 => "|u1",
        other => candle_core::bail!("no .npy type for {other:?}"),
    };
    let shape = match tensor.dims() {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads the header with spaces and a newline so that the data starts on a multiple of
    // 64 bytes; version 1.0 has a 2-byte header length, 2.0 a 4-byte one.
    let (version, prefix) = if header.len() + 11 <= usize::from(u16::MAX) {
        (1u8, 10)
    } else {
        (2, 12)
    };
    let padded = (prefix + header.len() + 1).div_ceil(64) * 64;
    header.extend(std::iter::repeat_n(' ', padded - prefix - header.len() - 1));
    header.push('\n');
    // candle's safetensors view: the elements' little-endian bytes in C order.
    let tensor = tensor.contiguous()?;
    let data = tensor.data();
    let mut out = Vec::with_capacity(padded + data.len());
    out.extend_from_slice(MAGIC);
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    Ok(out)
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("'shape' is not a tuple: {text}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("'shape' has a non-integer entry '{s}'"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
