//! numpy's `.npy` format (versions 1 to 3): little-endian float and integer arrays, in C
//! order or Fortran order (`fortran_order: True`, what `numpy.save` writes for an
//! F-contiguous array: the axes' order reversed in memory).
//! Written as version 1.0 (2.0 when the header needs it), as `numpy.save` does.

use std::io::Read;

use candle_core::{DType, Device, Tensor};

use safetensors::View;

const MAGIC: &[u8] = b"\x93NUMPY";

/// The longest header read, in bytes: numpy's own limit (`max_header_size` of `numpy.load`).
/// Checked before anything is allocated for it, so a corrupt length cannot ask for gigabytes.
pub(crate) const MAX_HEADER_LEN: usize = 10_000;

/// What a `.npy` header says.
pub(crate) struct Header {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Whether the data is in Fortran order: the first axis varies fastest.
    pub fortran: bool,
    /// Where the data starts: the header's length.
    pub data_start: usize,
}

/// Where the header of a `.npy` file whose first (up to 12) bytes are `prefix` ends.
pub(crate) fn header_end(prefix: &[u8]) -> Result<usize, String> {
    if prefix.len() < 10 || !prefix.starts_with(MAGIC) {
        return Err("missing the \\x93NUMPY magic at the start".into());
    }
    let (header_len, header_start) = match prefix[6] {
        1 => (u16::from_le_bytes([prefix[8], prefix[9]]) as usize, 10usize),
        2 | 3 => {
            let len = prefix.get(8..12).ok_or("truncated in the header length")?;
            (
                u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported format version {v}")),
    };
    if header_len > MAX_HEADER_LEN {
        return Err(format!(
            "header length {header_len} bytes, over the {MAX_HEADER_LEN} that numpy reads \
             (a corrupt length, or not a .npy file)"
        ));
    }
    Ok(header_start + header_len)
}

/// Reads the header at the start of `bytes` (the whole file, or at least its header).
pub(crate) fn header(bytes: &[u8], file_len: usize) -> Result<Header, String> {
    let header_end = header_end(bytes)?;
    let header_start = if bytes[6] == 1 { 10 } else { 12 };
    if header_end > file_len.min(bytes.len()) {
        return Err(format!(
            "header length {} runs past the end of the file ({file_len} bytes)",
            header_end - header_start
        ));
    }
    let header = std::str::from_utf8(&bytes[header_start..header_end])
        .map_err(|_| "the header is not UTF-8 text".to_string())?;
    let descr = field(header, "descr").ok_or("the header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = match field(header, "fortran_order")
        .ok_or("the header has no 'fortran_order'")?
        .trim()
    {
        "False" => false,
        "True" => true,
        other => {
            return Err(format!(
                "expected 'fortran_order' True or False, found {other}"
            ))
        }
    };
    let shape = parse_shape(field(header, "shape").ok_or("the header has no 'shape'")?)?;
    let Some(dtype) = crate::dtype::from_npy(descr) else {
        return Err(format!(
            "unsupported dtype '{descr}'; expected little-endian float or int ({})",
            crate::dtype::npy_descrs()
        ));
    };
    let size = dtype.size_in_bytes();
    if !crate::header_checks::strides_fit(&shape) {
        return Err(format!("shape {shape:?} is too large to lay out"));
    }
    let data_len = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(size))
        .ok_or("the shape is too large")?;
    let data = file_len - header_end;
    if data != data_len {
        return Err(format!(
            "shape {shape:?} of '{descr}' needs {data_len} data bytes, found {data}"
        ));
    }
    Ok(Header {
        dtype,
        shape,
        fortran,
        data_start: header_end,
    })
}

/// Reads a `.npy` file of `len` bytes from `reader` (an archive's entry), the data straight
/// into the tensor's own buffer for f32, f64, i64, i32 and u8: one copy of the array in memory,
/// where reading the bytes first and building the tensor from them would hold two. Fortran
/// order is made C order by one more copy. The error says what is wrong, in words.
pub(crate) fn read(reader: &mut impl Read, len: u64) -> Result<Tensor, String> {
    let file_len = usize::try_from(len).map_err(|_| format!("{len} bytes, more than memory"))?;
    let cut = |e: std::io::Error| format!("cannot be read ({e})");
    let mut head = Vec::new();
    reader.take(12).read_to_end(&mut head).map_err(cut)?;
    let end = header_end(&head)?;
    let more = (end - head.len().min(end)) as u64;
    reader.take(more).read_to_end(&mut head).map_err(cut)?;
    let header = header(&head, file_len)?;
    // After the header, the 12 bytes read may already hold the first data bytes (a header of
    // a 10-byte prefix and no text is not numpy's, but is read as it says).
    let early = head.get(header.data_start..).unwrap_or_default();
    let shape = if header.fortran {
        header.shape.iter().rev().copied().collect()
    } else {
        header.shape.clone()
    };
    let numel: usize = shape.iter().product();
    let tensor = match header.dtype {
        DType::F32 => typed::<f32>(reader, early, numel, &shape),
        DType::F64 => typed::<f64>(reader, early, numel, &shape),
        DType::I64 => typed::<i64>(reader, early, numel, &shape),
        DType::I32 => typed::<i32>(reader, early, numel, &shape),
        DType::U8 => typed::<u8>(reader, early, numel, &shape),
        dtype => {
            let mut data = early.to_vec();
            let want = numel * dtype.size_in_bytes();
            data.try_reserve_exact(want.saturating_sub(data.len()))
                .map_err(|_| format!("{want} data bytes, more than memory can hold"))?;
            reader
                .take((want - data.len().min(want)) as u64)
                .read_to_end(&mut data)
                .map_err(cut)?;
            if data.len() != want {
                return Err(format!("{want} data bytes declared, {} found", data.len()));
            }
            Tensor::from_raw_buffer(&data, dtype, &shape, &Device::Cpu).map_err(|e| e.to_string())
        }
    }?;
    if header.fortran {
        let axes: Vec<usize> = (0..shape.len()).rev().collect();
        return tensor
            .permute(axes)
            .and_then(|t| t.contiguous())
            .map_err(|e| e.to_string());
    }
    Ok(tensor)
}

/// `numel` elements of `T` (little-endian, as x86-64 and ARM hold them), `early` their first
/// bytes already read, the rest from `reader`, into one buffer allocated once.
fn typed<T: bytemuck::Pod + candle_core::WithDType>(
    reader: &mut impl Read,
    early: &[u8],
    numel: usize,
    shape: &[usize],
) -> Result<Tensor, String> {
    let mut data: Vec<T> = Vec::new();
    data.try_reserve_exact(numel).map_err(|_| {
        format!(
            "{numel} elements of {} bytes, more than memory can hold",
            std::mem::size_of::<T>()
        )
    })?;
    data.resize(numel, T::zeroed());
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut data);
    let n = early.len().min(bytes.len());
    bytes[..n].copy_from_slice(&early[..n]);
    reader
        .read_exact(&mut bytes[n..])
        .map_err(|e| format!("the data cannot be read ({e})"))?;
    Tensor::from_vec(data, shape, &Device::Cpu).map_err(|e| e.to_string())
}

/// The bytes of a `.npy` file holding `tensor` (contiguous or not). bf16, which numpy has no
/// type for, is written as float32.
pub(crate) fn write(tensor: &Tensor) -> candle_core::Result<Vec<u8>> {
    let tensor = match tensor.dtype() {
        DType::BF16 => tensor.to_dtype(DType::F32)?,
        _ => tensor.contiguous()?,
    };
    let mut out = header_for(tensor.dtype(), tensor.dims())?;
    // candle's safetensors view: the elements' little-endian bytes in C order.
    out.extend_from_slice(&tensor.data());
    Ok(out)
}

/// The header of a `.npy` file of `shape` and `dtype`, padded as numpy pads it: the data
/// starts on a multiple of 64 bytes; version 1.0 (2-byte header length), 2.0 when longer.
pub(crate) fn header_for(dtype: DType, shape: &[usize]) -> candle_core::Result<Vec<u8>> {
    let Some(descr) = crate::dtype::npy_descr(dtype) else {
        candle_core::bail!("no .npy type for {dtype:?}")
    };
    let shape = match shape {
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
    let (version, prefix) = if header.len() + 11 <= usize::from(u16::MAX) {
        (1u8, 10)
    } else {
        (2, 12)
    };
    let padded = (prefix + header.len() + 1).div_ceil(64) * 64;
    header.extend(std::iter::repeat_n(' ', padded - prefix - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(padded);
    out.extend_from_slice(MAGIC);
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
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
