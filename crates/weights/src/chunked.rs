//! Arrays larger than memory: read and written a slice of one axis at a time, straight from
//! and to the file (.npy or .safetensors), so that `rnn run --batch-size` holds one batch of
//! sequences at a time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::Metadata;
use safetensors::SafeTensorError;

use crate::error::{Result, WeightsError};
use crate::file::FileFormat;

/// Where one array's data lies in a file.
#[derive(Debug, Clone)]
struct Layout {
    dtype: DType,
    shape: Vec<usize>,
    offset: u64,
}

impl Layout {
    /// Bytes of one element.
    fn size(&self) -> usize {
        self.dtype.size_in_bytes()
    }
}

/// The arrays of a .npy or .safetensors file, their data left on disk until asked for.
#[derive(Debug)]
pub struct ArrayFile {
    path: PathBuf,
    file: File,
    arrays: BTreeMap<String, Layout>,
    /// Arrays whose element type candle cannot hold (bool, int8, ...): name and dtype.
    unloadable: BTreeMap<String, String>,
}

impl ArrayFile {
    /// Opens a file and reads its header only. A .npy file's one array is named `input`.
    pub fn open(path: &Path, format: FileFormat) -> Result<Self> {
        let io = |error| WeightsError::Io {
            path: path.to_owned(),
            error,
        };
        let mut file = File::open(path).map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        if !metadata.is_file() {
            // A pipe has no length to check offsets against, and is read once.
            return Err(io(std::io::Error::other(
                "not a regular file; a batch at a time is read from a file on disk",
            )));
        }
        let len = metadata.len();
        let (arrays, unloadable) = match format {
            FileFormat::Npy => {
                let mut prefix = vec![0u8; 12.min(len as usize)];
                file.read_exact(&mut prefix).map_err(io)?;
                let npy_error = |reason| WeightsError::Npy {
                    path: path.to_owned(),
                    reason,
                };
                let end = crate::npy::header_end(&prefix).map_err(npy_error)?;
                let mut head = vec![0u8; end.min(len as usize)];
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.read_exact(&mut head).map_err(io)?;
                let h = crate::npy::header(&head, usize::try_from(len).unwrap_or(usize::MAX))
                    .map_err(npy_error)?;
                if h.fortran && h.shape.iter().filter(|&&d| d > 1).count() > 1 {
                    return Err(npy_error(
                        "a Fortran-order array cannot be read a batch at a time (its \
                         sequences are interleaved on disk); save it in C order \
                         (numpy.ascontiguousarray) or run it without --batch-size"
                            .into(),
                    ));
                }
                let layout = Layout {
                    dtype: h.dtype,
                    shape: h.shape,
                    offset: h.data_start as u64,
                };
                (
                    BTreeMap::from([("input".to_string(), layout)]),
                    BTreeMap::new(),
                )
            }
            FileFormat::Safetensors => safetensors_header(path, &mut file, len)?,
            other => {
                return Err(WeightsError::Unrecognised {
                    path: path.to_owned(),
                    what: format!(
                        "{other:?} cannot be read a batch at a time; use .npy or .safetensors"
                    ),
                    found: Vec::new(),
                })
            }
        };
        Ok(Self {
            path: path.to_owned(),
            file,
            arrays,
            unloadable,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of its arrays, sorted, including those candle cannot load.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .arrays
            .keys()
            .chain(self.unloadable.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Whether the file has an array of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.arrays.contains_key(name) || self.unloadable.contains_key(name)
    }

    /// The shape and dtype of array `name`, if the file has it and candle can hold its dtype.
    pub fn describe(&self, name: &str) -> Option<(&[usize], DType)> {
        self.arrays.get(name).map(|l| (l.shape.as_slice(), l.dtype))
    }

    /// The shape of floating-point array `name`, `None` when the file has no such array; an
    /// error when its dtype is not floating-point, the one [`crate::TensorFile::float`] gives.
    pub fn float_shape(&self, name: &str) -> Result<Option<&[usize]>> {
        if let Some(found) = self.unloadable.get(name) {
            return Err(crate::error::float_dtype_error(
                &self.path,
                name,
                found.clone(),
            ));
        }
        match self.arrays.get(name) {
            None => Ok(None),
            Some(l) if l.dtype.is_float() => Ok(Some(l.shape.as_slice())),
            Some(l) => Err(crate::error::float_dtype_error(
                &self.path,
                name,
                crate::dtype::name(l.dtype),
            )),
        }
    }

    /// The `lengths` array, if the file has one, read whole and checked as
    /// [`crate::Inputs`] checks it: integers, rank 1, none negative.
    pub fn lengths(&mut self) -> Result<Option<Vec<usize>>> {
        if let Some(found) = self.unloadable.get("lengths") {
            return Err(crate::inputs::lengths_dtype_error(
                &self.path,
                "lengths",
                found.clone(),
            ));
        }
        let Some((shape, _)) = self.describe("lengths") else {
            return Ok(None);
        };
        let Some(&rows) = shape.first() else {
            return Err(WeightsError::Shape {
                path: self.path.clone(),
                name: "lengths".into(),
                expected: "[batch]".into(),
                found: Vec::new(),
            });
        };
        let t = self.read("lengths", 0, 0..rows)?;
        crate::inputs::lengths_from(&self.path, "lengths", &t).map(Some)
    }

    /// The slice `range` of axis `axis` of array `name`, read from the file.
    pub fn read(&mut self, name: &str, axis: usize, range: Range<usize>) -> Result<Tensor> {
        if let Some(found) = self.unloadable.get(name) {
            return Err(WeightsError::Dtype {
                path: self.path.clone(),
                name: name.to_string(),
                expected: "a dtype candle can hold".into(),
                found: found.clone(),
            });
        }
        let layout = self
            .arrays
            .get(name)
            .cloned()
            .ok_or_else(|| WeightsError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
                available: self.names(),
            })?;
        let dims = &layout.shape;
        if axis >= dims.len() || range.end > dims[axis] || range.start > range.end {
            return Err(WeightsError::Shape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: format!("an axis {axis} with at least {} entries", range.end),
                found: dims.clone(),
            });
        }
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product::<usize>() * layout.size();
        let block = range.len() * inner;
        let mut data = vec![0u8; outer * block];
        for (o, chunk) in data.chunks_exact_mut(block.max(1)).enumerate().take(outer) {
            let start = layout.offset + ((o * dims[axis] + range.start) * inner) as u64;
            self.file
                .seek(SeekFrom::Start(start))
                .and_then(|_| self.file.read_exact(chunk))
                .map_err(|error| WeightsError::Io {
                    path: self.path.clone(),
                    error,
                })?;
        }
        let mut shape = dims.clone();
        shape[axis] = range.len();
        Tensor::from_raw_buffer(&data, layout.dtype, &shape, &Device::Cpu).map_err(|error| {
            WeightsError::Tensor {
                path: self.path.clone(),
                error,
            }
        })
    }
}

/// Reads and checks a safetensors header with the safetensors crate's own types and limits, as
/// the whole-file reader does: its length bounded before it is read, every tensor's data inside
/// the file, of the size its shape and dtype need, the file covered exactly. Returns the arrays
/// candle can hold and, by name, the dtypes of those it cannot.
fn safetensors_header(
    path: &Path,
    file: &mut File,
    len: u64,
) -> Result<(BTreeMap<String, Layout>, BTreeMap<String, String>)> {
    let invalid = |reason: String| WeightsError::Safetensors {
        path: path.to_owned(),
        reason,
    };
    let io = |error| WeightsError::Io {
        path: path.to_owned(),
        error,
    };
    let mut first = [0u8; 8];
    let first = match file.read_exact(&mut first) {
        Ok(()) => Some(first.as_slice()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
        Err(e) => return Err(io(e)),
    };
    let header_len = crate::header_checks::safetensors_header_len(first, len).map_err(invalid)?;
    let mut header = vec![0u8; header_len];
    file.read_exact(&mut header).map_err(io)?;
    let text = std::str::from_utf8(&header)
        .map_err(|e| invalid(SafeTensorError::InvalidHeader(e).to_string()))?;
    let metadata: Metadata = serde_json::from_str(text)
        .map_err(|e| invalid(SafeTensorError::InvalidHeaderDeserialization(e).to_string()))?;
    let data_start = 8 + header_len as u64;
    if data_start.checked_add(metadata.data_len() as u64) != Some(len) {
        return Err(invalid(
            SafeTensorError::MetadataIncompleteBuffer.to_string(),
        ));
    }
    if let Some(name) = crate::header_checks::duplicate_key(&header) {
        return Err(invalid(format!("the header names tensor `{name}` twice")));
    }
    let mut arrays = BTreeMap::new();
    let mut unloadable = BTreeMap::new();
    for name in metadata.offset_keys() {
        let Some(info) = metadata.info(&name) else {
            continue;
        };
        if !crate::header_checks::strides_fit(&info.shape) {
            return Err(invalid(format!(
                "tensor `{name}` has shape {:?}, whose strides overflow",
                info.shape
            )));
        }
        match crate::dtype::from_safetensors(info.dtype) {
            Some(dtype) => {
                let layout = Layout {
                    dtype,
                    shape: info.shape.clone(),
                    offset: data_start + info.data_offsets.0 as u64,
                };
                arrays.insert(name, layout);
            }
            None => {
                unloadable.insert(name, crate::dtype::stored_name(info.dtype));
            }
        }
    }
    Ok((arrays, unloadable))
}

/// A .npy or .safetensors file written a slice of one axis at a time: the header first, with
/// every array's full shape, then each slice where it belongs. It is written to a new
/// temporary file (created exclusively, under a random name) renamed over the target by
/// [`ArrayWriter::finish`]; dropped unfinished, it leaves nothing behind.
#[derive(Debug)]
pub struct ArrayWriter {
    path: PathBuf,
    file: Option<tempfile::NamedTempFile>,
    arrays: BTreeMap<String, Layout>,
}

impl ArrayWriter {
    /// Creates the file for `arrays` (name, dtype, shape), in that order; .npy holds one.
    pub fn create(
        path: &Path,
        format: FileFormat,
        arrays: &[(String, DType, Vec<usize>)],
    ) -> Result<Self> {
        let unwritable = |format, reason| WeightsError::Unwritable {
            path: path.to_owned(),
            format,
            reason,
        };
        let (header, layouts) = match (format, arrays) {
            (FileFormat::Npy, [(name, dtype, shape)]) => {
                let header = crate::npy::header_for(*dtype, shape).map_err(|error| {
                    WeightsError::Tensor {
                        path: path.to_owned(),
                        error,
                    }
                })?;
                let layout = Layout {
                    dtype: *dtype,
                    shape: shape.clone(),
                    offset: header.len() as u64,
                };
                (header, BTreeMap::from([(name.clone(), layout)]))
            }
            (FileFormat::Npy, _) => return Err(unwritable(".npy", "it holds one array".into())),
            (FileFormat::Safetensors, _) => safetensors_layout(arrays),
            (other, _) => {
                return Err(unwritable(
                    "a batch at a time",
                    format!("{other:?} is written whole; use .npy or .safetensors"),
                ))
            }
        };
        let total = layouts
            .values()
            .map(|l| l.offset + (l.shape.iter().product::<usize>() * l.size()) as u64)
            .max()
            .unwrap_or(header.len() as u64);
        let io = |error| WeightsError::Io {
            path: path.to_owned(),
            error,
        };
        // Dropped on an error, the temporary file deletes itself.
        let mut file = crate::write::temporary_file(path).map_err(io)?;
        file.as_file()
            .set_len(total)
            .and_then(|()| file.write_all(&header))
            .map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            file: Some(file),
            arrays: layouts,
        })
    }

    /// Writes `t` as the slice of axis `axis` of array `name` that starts at `start`.
    pub fn write(&mut self, name: &str, axis: usize, start: usize, t: &Tensor) -> Result<()> {
        let path = self.path.clone();
        let layout = self
            .arrays
            .get(name)
            .cloned()
            .ok_or_else(|| WeightsError::MissingTensor {
                path: path.clone(),
                name: name.to_string(),
                available: self.arrays.keys().cloned().collect(),
            })?;
        let dims = &layout.shape;
        let mut expected = dims.clone();
        if axis < dims.len() {
            expected[axis] = t.dims().get(axis).copied().unwrap_or(0);
        }
        if axis >= dims.len() || t.dims() != expected || start + expected[axis] > dims[axis] {
            return Err(WeightsError::Shape {
                path,
                name: name.to_string(),
                expected: format!("a slice of {dims:?} along axis {axis} from {start}"),
                found: t.dims().to_vec(),
            });
        }
        let tensor_error = |error| WeightsError::Tensor {
            path: path.clone(),
            error,
        };
        let t = t
            .to_dtype(layout.dtype)
            .and_then(|t| t.contiguous())
            .map_err(tensor_error)?;
        let bytes = safetensors::View::data(&t);
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product::<usize>() * layout.size();
        let block = expected[axis] * inner;
        let Some(file) = self.file.as_mut() else {
            return Err(WeightsError::Io {
                path,
                error: std::io::Error::other("already finished"),
            });
        };
        for (o, chunk) in bytes.chunks_exact(block.max(1)).enumerate().take(outer) {
            let at = layout.offset + ((o * dims[axis] + start) * inner) as u64;
            file.seek(SeekFrom::Start(at))
                .and_then(|_| file.write_all(chunk))
                .map_err(|error| WeightsError::Io {
                    path: path.clone(),
                    error,
                })?;
        }
        Ok(())
    }

    /// Syncs the file and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let io = |error| WeightsError::Io {
            path: self.path.clone(),
            error,
        };
        file.as_file().sync_all().map_err(io)?;
        // On failure the error holds the temporary file, which deletes itself when dropped.
        file.persist(&self.path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// A safetensors header for `arrays` laid end to end in their order, padded with spaces to a
/// multiple of 8 bytes, and where each array starts.
fn safetensors_layout(
    arrays: &[(String, DType, Vec<usize>)],
) -> (Vec<u8>, BTreeMap<String, Layout>) {
    let mut entries = serde_json::Map::new();
    let mut offset = 0u64;
    let mut starts = Vec::new();
    for (name, dtype, shape) in arrays {
        let len = (shape.iter().product::<usize>() * dtype.size_in_bytes()) as u64;
        let st_dtype = crate::dtype::name(*dtype);
        entries.insert(
            name.clone(),
            serde_json::json!({"dtype": st_dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        starts.push((name.clone(), *dtype, shape.clone(), offset));
        offset += len;
    }
    let mut json = serde_json::Value::Object(entries).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let data_start = 8 + json.len() as u64;
    let mut header = (json.len() as u64).to_le_bytes().to_vec();
    header.extend(json);
    let layouts = starts
        .into_iter()
        .map(|(name, dtype, shape, start)| {
            (
                name,
                Layout {
                    dtype,
                    shape,
                    offset: data_start + start,
                },
            )
        })
        .collect();
    (header, layouts)
}

#[cfg(test)]
mod tests;
