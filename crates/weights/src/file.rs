//! Tensor files on disk: safetensors, .npy, .npz, JSON and CSV, in and out (atomically).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype as StDtype, SafeTensors};

use crate::error::{Result, WeightsError};

/// The tensors of one file, by name, with the file's `__metadata__`.
#[derive(Debug, Clone)]
pub struct TensorFile {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    /// Tensors whose element type candle cannot hold (bool, int8, ...): name and dtype.
    unloadable: BTreeMap<String, String>,
    metadata: HashMap<String, String>,
    /// Names the file stores as aliases of another tensor (shared, tied tensors): alias →
    /// the stored name.
    aliases: BTreeMap<String, String>,
}

impl TensorFile {
    /// Reads a file in the format its extension names (see [`FileFormat::from_path`]).
    pub fn read(path: &Path) -> Result<Self> {
        Self::read_as(path, None)
    }

    /// Reads a file as `format`, or as its extension says when `format` is `None`. A `.npy`
    /// file's one array is named `input`, and so is a CSV file's (`[steps, features]`, one
    /// unbatched sequence) and a JSON file's when it holds a bare array.
    ///
    /// Without `format`, the file's first bytes pick the reader (see `readers/`): the formats
    /// above, and the files the frameworks write (`torch.save`, `.keras`, `.weights.h5`,
    /// ONNX, a TensorFlow checkpoint named by its prefix or its `.index`); the extension
    /// decides only for JSON and CSV, which have no signature.
    pub fn read_as(path: &Path, format: Option<FileFormat>) -> Result<Self> {
        if format.is_none() {
            if let Some(prefix) = crate::readers::checkpoint_prefix(path) {
                return crate::readers::read_checkpoint(&prefix);
            }
        }
        let bytes = std::fs::read(path).map_err(|error| WeightsError::Io {
            path: path.to_owned(),
            error,
        })?;
        let format = match format {
            Some(format) => format,
            None => {
                let container = crate::readers::sniff(path, &bytes)?;
                if let Some(file) = crate::readers::read_framework_file(path, &bytes, container) {
                    return file;
                }
                match container {
                    crate::readers::Container::Tensors(format) => format,
                    _ => FileFormat::from_path(path),
                }
            }
        };
        Self::from_bytes(path, &bytes, format)
    }

    /// Parses the bytes of a file in `format`; `path` is only for messages.
    pub fn from_bytes(path: &Path, bytes: &[u8], format: FileFormat) -> Result<Self> {
        let malformed = |kind, reason| WeightsError::Malformed {
            path: path.to_owned(),
            kind,
            reason,
        };
        let tensors = match format {
            FileFormat::Safetensors => return Self::from_safetensors_bytes(path, bytes),
            FileFormat::Npy => return Self::from_npy_bytes(path, bytes),
            FileFormat::Npz => crate::npz::read(bytes).map_err(|r| malformed(".npz", r))?,
            FileFormat::Json => crate::text::read_json(bytes).map_err(|r| malformed("JSON", r))?,
            FileFormat::Csv => {
                let rows = crate::text::read_csv(bytes).map_err(|r| malformed("CSV", r))?;
                BTreeMap::from([("input".to_string(), rows)])
            }
        };
        Ok(Self::from_tensors(path, tensors, HashMap::new()))
    }

    /// Parses safetensors bytes; `path` is only for messages.
    pub fn from_safetensors_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let invalid = |reason: String| WeightsError::Safetensors {
            path: path.to_owned(),
            reason,
        };
        safetensors_header_len(bytes.get(..8), bytes.len() as u64).map_err(invalid)?;
        let (header_len, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| invalid(e.to_string()))?;
        // read_metadata succeeded, so bytes[8..8 + header_len] is the header, valid JSON.
        if let Some(name) = duplicate_key(&bytes[8..8 + header_len]) {
            return Err(invalid(format!("the header names tensor `{name}` twice")));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| invalid(e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let mut tensors = BTreeMap::new();
        let mut unloadable = BTreeMap::new();
        for (name, view) in st.tensors() {
            if !strides_fit(view.shape()) {
                return Err(invalid(format!(
                    "tensor `{name}` has shape {:?}, whose strides overflow",
                    view.shape()
                )));
            }
            match candle_dtype(view.dtype()) {
                Some(dtype) => {
                    let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)
                        .map_err(|error| WeightsError::Tensor {
                            path: path.to_owned(),
                            error,
                        })?;
                    tensors.insert(name, t);
                }
                None => {
                    unloadable.insert(name, format!("{:?}", view.dtype()));
                }
            }
        }
        // `safetensors.torch.save_model` stores a tensor shared under several names once and
        // records each other name in the metadata as `{"other name": "stored name"}`.
        let mut aliases = BTreeMap::new();
        for (alias, stored) in &metadata {
            if !tensors.contains_key(alias) && !unloadable.contains_key(alias) {
                if let Some(t) = tensors.get(stored) {
                    aliases.insert(alias.clone(), stored.clone());
                    tensors.insert(alias.clone(), t.clone());
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            tensors,
            unloadable,
            metadata,
            aliases,
        })
    }

    /// The stored tensor that `name` is an alias of, when the file records it as one (a
    /// tensor shared under several names, saved once by `safetensors.torch.save_model`).
    pub fn alias_of(&self, name: &str) -> Option<&str> {
        self.aliases.get(name).map(String::as_str)
    }

    /// Parses the bytes of a `.npy` file (its one array is named `input`); `path` is only for
    /// messages.
    pub fn from_npy_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let tensor = crate::npy::parse(bytes).map_err(|reason| WeightsError::Npy {
            path: path.to_owned(),
            reason,
        })?;
        let tensors = BTreeMap::from([("input".to_string(), tensor)]);
        Ok(Self::from_tensors(path, tensors, HashMap::new()))
    }

    /// Wraps tensors made in memory; `path` names them in messages.
    pub fn from_tensors(
        path: &Path,
        tensors: BTreeMap<String, Tensor>,
        metadata: HashMap<String, String>,
    ) -> Self {
        Self {
            path: path.to_owned(),
            tensors,
            unloadable: BTreeMap::new(),
            metadata,
            aliases: BTreeMap::new(),
        }
    }

    /// The same tensors, with tensors whose element type candle cannot hold (name → the
    /// file's name for its dtype), listed by [`TensorFile::names`] and refused when used.
    pub(crate) fn with_unloadable(mut self, unloadable: BTreeMap<String, String>) -> Self {
        self.unloadable = unloadable;
        self
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor name in the file, sorted, including those candle cannot load.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tensors
            .keys()
            .chain(self.unloadable.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Whether the file has a tensor of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name) || self.unloadable.contains_key(name)
    }

    /// The tensor as stored, or `None` when there is no such tensor.
    pub fn raw(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The element type as stored (`F32`, `BOOL`, ...).
    pub fn dtype_name(&self, name: &str) -> Option<String> {
        match self.tensors.get(name) {
            Some(t) => Some(format!("{:?}", t.dtype()).to_uppercase()),
            None => self.unloadable.get(name).cloned(),
        }
    }

    /// The file's `__metadata__`.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// A floating-point tensor converted to `dtype`; an error naming the file and tensor when it
    /// is missing or not floating-point.
    pub fn float(&self, name: &str, dtype: DType) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| match self.unloadable.get(name) {
                Some(found) => self.dtype_error(name, found.clone()),
                None => WeightsError::MissingTensor {
                    path: self.path.clone(),
                    name: name.to_string(),
                    available: self.names(),
                },
            })?;
        if !t.dtype().is_float() {
            return Err(self.dtype_error(name, format!("{:?}", t.dtype()).to_uppercase()));
        }
        t.to_dtype(dtype).map_err(|error| WeightsError::Tensor {
            path: self.path.clone(),
            error,
        })
    }

    /// Like [`TensorFile::float`], `None` when the tensor is absent.
    pub fn float_opt(&self, name: &str, dtype: DType) -> Result<Option<Tensor>> {
        if self.contains(name) {
            self.float(name, dtype).map(Some)
        } else {
            Ok(None)
        }
    }

    fn dtype_error(&self, name: &str, found: String) -> WeightsError {
        float_dtype_error(&self.path, name, found)
    }

    /// A shape error for tensor `name` of this file.
    pub(crate) fn shape_error(
        &self,
        name: &str,
        expected: String,
        found: &[usize],
    ) -> WeightsError {
        WeightsError::Shape {
            path: self.path.clone(),
            name: name.to_string(),
            expected,
            found: found.to_vec(),
        }
    }

    /// Wraps a candle error with this file's path.
    pub(crate) fn tensor_error(&self, error: candle_core::Error) -> WeightsError {
        WeightsError::Tensor {
            path: self.path.clone(),
            error,
        }
    }
}

/// The error for tensor `name` of `path`, of dtype `found`, where a float is needed.
pub(crate) fn float_dtype_error(path: &Path, name: &str, found: String) -> WeightsError {
    WeightsError::Dtype {
        path: path.to_owned(),
        name: name.to_string(),
        expected: "a floating-point dtype (F16, BF16, F32, F64)".into(),
        found,
    }
}

/// The longest safetensors header read, in bytes: the safetensors crate's own limit (private
/// there), checked before anything is allocated for the header.
pub(crate) const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// The header length a safetensors file of `file_len` bytes gives in its `first` 8 bytes
/// (`None`: the file is shorter), checked against the file and the crate's limit before anything
/// is read; the error says what is wrong in the file's terms. Both readers (whole and a batch
/// at a time) start here.
pub(crate) fn safetensors_header_len(
    first: Option<&[u8]>,
    file_len: u64,
) -> std::result::Result<usize, String> {
    if file_len == 0 {
        return Err("the file is empty".into());
    }
    let Some(&[a, b, c, d, e, f, g, h]) = first else {
        return Err(format!(
            "{file_len} bytes, shorter than the 8-byte header length that starts every safetensors file"
        ));
    };
    let header_len = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
    let after = file_len - 8;
    if header_len > after {
        return Err(format!(
            "its first 8 bytes give a header of {header_len} bytes, but only {after} follow \
             (not a safetensors file, or truncated)"
        ));
    }
    if header_len > MAX_SAFETENSORS_HEADER {
        return Err(format!(
            "{} (its first 8 bytes give {header_len} bytes, over the {MAX_SAFETENSORS_HEADER} \
             the safetensors format allows)",
            safetensors::SafeTensorError::HeaderTooLarge
        ));
    }
    usize::try_from(header_len)
        .map_err(|_| safetensors::SafeTensorError::HeaderTooLarge.to_string())
}

/// Whether a tensor of `dims` can be laid out: its strides (products of trailing dims) must fit
/// in an `isize`, even when another dim is 0 and the tensor is empty.
pub(crate) fn strides_fit(dims: &[usize]) -> bool {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
        .is_some_and(|n| n <= isize::MAX as usize / 16)
}

/// The first key that a JSON object names twice. JSON parsers keep the last of duplicates
/// silently; a file that names a tensor twice is ambiguous, so it is refused.
pub(crate) fn duplicate_key(json: &[u8]) -> Option<String> {
    struct FirstDuplicate(Option<String>);

    impl<'de> serde::Deserialize<'de> for FirstDuplicate {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            d.deserialize_map(FirstDuplicate(None))
        }
    }

    impl<'de> serde::de::Visitor<'de> for FirstDuplicate {
        type Value = FirstDuplicate;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(key.clone()) {
                    return Ok(FirstDuplicate(Some(key)));
                }
            }
            Ok(FirstDuplicate(None))
        }
    }

    serde_json::from_slice::<FirstDuplicate>(json).ok()?.0
}

/// The candle dtype of a safetensors dtype; `None` for those candle cannot hold (bool, int8,
/// ...), which both readers keep by name and refuse where used.
pub(crate) fn candle_dtype(dtype: StDtype) -> Option<DType> {
    Some(match dtype {
        StDtype::F64 => DType::F64,
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::I64 => DType::I64,
        StDtype::I32 => DType::I32,
        StDtype::I16 => DType::I16,
        StDtype::U32 => DType::U32,
        StDtype::U8 => DType::U8,
        _ => return None,
    })
}

/// The kinds of file tensors are read from and written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `.safetensors`: named tensors of any dtype, with `__metadata__`.
    Safetensors,
    /// `.npy`: one array.
    Npy,
    /// `.npz`: numpy's archive of named arrays (`savez`, `savez_compressed`).
    Npz,
    /// `.json`: an object of nested arrays by name, or one nested array.
    Json,
    /// `.csv`: one row per time step of a single sequence.
    Csv,
}

impl FileFormat {
    /// The format a file's extension names (case-insensitive); safetensors for any other.
    pub fn from_path(path: &Path) -> Self {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("npy") => Self::Npy,
            Some("npz") => Self::Npz,
            Some("json") => Self::Json,
            Some("csv") => Self::Csv,
            _ => Self::Safetensors,
        }
    }

    /// Whether a file of this format holds one array only (the others hold named tensors).
    pub fn holds_one_array(self) -> bool {
        matches!(self, Self::Npy | Self::Csv)
    }
}

/// Writes tensors in `format`, atomically (see [`write_safetensors`]). `metadata` is kept by
/// safetensors only; .npy and CSV hold exactly one tensor, and CSV a `[steps, features]` one.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    format: FileFormat,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let invalid = |format, reason| WeightsError::Unwritable {
        path: path.to_owned(),
        format,
        reason,
    };
    let bytes = match (format, tensors) {
        (FileFormat::Safetensors, _) => return write_safetensors(path, tensors, metadata),
        (FileFormat::Npy, [(_, t)]) => {
            crate::npy::write(t).map_err(|error| WeightsError::Tensor {
                path: path.to_owned(),
                error,
            })?
        }
        (FileFormat::Csv, [(_, t)]) => crate::text::write_csv(t)
            .map_err(|r| invalid("CSV", r))?
            .into_bytes(),
        (FileFormat::Npy | FileFormat::Csv, _) => {
            let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
            return Err(invalid(
                if format == FileFormat::Npy {
                    ".npy"
                } else {
                    "CSV"
                },
                format!("it holds one array, not {}", names.join(", ")),
            ));
        }
        (FileFormat::Npz, _) => crate::npz::write(tensors).map_err(|r| invalid(".npz", r))?,
        (FileFormat::Json, _) => crate::text::write_json(tensors)
            .map_err(|r| invalid("JSON", r))?
            .into_bytes(),
    };
    write_atomically(path, &bytes).map_err(|error| WeightsError::Io {
        path: path.to_owned(),
        error,
    })
}

/// Writes tensors as a safetensors file, atomically: the bytes go to a temporary file in the
/// same directory, which is then renamed over `path`. A failure leaves no partial file and an
/// existing `path` untouched.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let io = |error| WeightsError::Io {
        path: path.to_owned(),
        error,
    };
    let contiguous = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.contiguous()?)))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(|error| WeightsError::Tensor {
            path: path.to_owned(),
            error,
        })?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let bytes =
        safetensors::serialize(contiguous, metadata).map_err(|e| WeightsError::Safetensors {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    write_atomically(path, &bytes).map_err(io)
}

/// Writes `bytes` to a new temporary file beside `path`, syncs it, and renames it into place:
/// the way every file `rnn` writes is written, so a failure never leaves half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = temporary_file(path)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // On failure the error holds the temporary file, which deletes itself when dropped.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A new, empty temporary file in `path`'s directory, to write to before renaming it over
/// `path`. Its name (`.NAME.XXXXXX.tmp`) is random and it is created exclusively, so a file or
/// symlink planted in advance is never opened; it deletes itself when dropped unpersisted. Its
/// mode is what a plain create gives (0o666 less the umask, applied by the kernel), not
/// tempfile's 0o600.
pub(crate) fn temporary_file(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    if path.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir).map_err(|e| {
        // tempfile appends ` at path ".NAME.XXXXXX.tmp"`: a random name that says nothing the
        // caller's message (which names the target) does not, and differs on every run.
        let message = e.to_string();
        match message.split_once(" at path \"") {
            Some((head, _)) => std::io::Error::new(e.kind(), head.to_string()),
            None => e,
        }
    })
}
