//! The tensors of one file ([`TensorFile`]) and the formats `rnn` reads and writes itself
//! ([`FileFormat`]): safetensors, .npy, .npz, JSON and CSV parsed from their bytes. Which
//! reader a file on disk needs is `readers/`'s choice ([`TensorFile::read`]); writing is
//! `write.rs`'s.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::SafeTensors;

use crate::config::{Graph, Recorded};
use crate::error::{float_dtype_error, Result, WeightsError};
use crate::header_checks::{duplicate_key, safetensors_header_len, strides_fit};

/// The tensors of one file, by name, with the file's `__metadata__`.
#[derive(Debug, Clone)]
pub struct TensorFile {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    /// Tensors whose element type candle cannot hold (bool, int8, ...): name and dtype.
    unloadable: BTreeMap<String, String>,
    metadata: HashMap<String, String>,
    /// What a reader of a foreign format found the file to record of its model (`None`: read
    /// from `__metadata__`, as a canonical file records it).
    recorded: Option<Recorded>,
    /// The layers the file records around its RNN, where they make a model rnn runs whole.
    graph: Option<Graph>,
    /// Names the file stores as aliases of another tensor (shared, tied tensors): alias →
    /// the stored name.
    aliases: BTreeMap<String, String>,
}

impl TensorFile {
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
            match crate::dtype::from_safetensors(view.dtype()) {
                Some(dtype) => {
                    let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)
                        .map_err(|error| WeightsError::Tensor {
                            path: path.to_owned(),
                            error,
                        })?;
                    tensors.insert(name, t);
                }
                None => {
                    unloadable.insert(name, crate::dtype::stored_name(view.dtype()));
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
            recorded: None,
            graph: None,
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
        let tensor = crate::npy::read(&mut &bytes[..], bytes.len() as u64).map_err(|reason| {
            WeightsError::Npy {
                path: path.to_owned(),
                reason,
            }
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
            recorded: None,
            graph: None,
            aliases: BTreeMap::new(),
        }
    }

    /// The same tensors, with how some of them were computed or where they are stored
    /// (name → a description that `inspect` prints as "stored as").
    pub(crate) fn with_aliases(mut self, aliases: BTreeMap<String, String>) -> Self {
        self.aliases.extend(aliases);
        self
    }

    /// The same tensors, with what the reader found the file to record of its model.
    pub(crate) fn with_recorded(mut self, recorded: Recorded) -> Self {
        self.recorded = Some(recorded);
        self
    }

    /// What a reader of a foreign format found the file to record of its model; `None` for
    /// the formats whose `__metadata__` records it ([`Recorded::from_metadata`]).
    pub fn recorded(&self) -> Option<&Recorded> {
        self.recorded.as_ref()
    }

    pub(crate) fn with_graph(mut self, graph: Option<Graph>) -> Self {
        self.graph = graph;
        self
    }

    /// The whole model the file records around its RNN (a Keras config's layers), where rnn
    /// runs it whole; `None` where it records the RNN alone, or layers rnn does not run.
    pub fn graph(&self) -> Option<&Graph> {
        self.graph.as_ref()
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
            Some(t) => Some(crate::dtype::name(t.dtype())),
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
            return Err(self.dtype_error(name, crate::dtype::name(t.dtype())));
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

impl rnn_core::Vocabulary for FileFormat {
    const ALL: &'static [Self] = &[
        FileFormat::Safetensors,
        FileFormat::Npy,
        FileFormat::Npz,
        FileFormat::Json,
        FileFormat::Csv,
    ];
    fn name(self) -> &'static str {
        match self {
            FileFormat::Safetensors => "safetensors",
            FileFormat::Npy => "npy",
            FileFormat::Npz => "npz",
            FileFormat::Json => "json",
            FileFormat::Csv => "csv",
        }
    }
    fn help(self) -> &'static str {
        match self {
            FileFormat::Safetensors => "named tensors with metadata",
            FileFormat::Npy => "numpy's one-array file",
            FileFormat::Npz => "numpy's archive of named arrays (savez)",
            FileFormat::Json => "nested arrays: one, or an object of them by name",
            FileFormat::Csv => "one row per time step of one sequence",
        }
    }
}

impl std::str::FromStr for FileFormat {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        <Self as rnn_core::Vocabulary>::parse_name(text)
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(rnn_core::Vocabulary::name(*self))
    }
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

    /// The format an output file is written in: `explicit` where the user names one, else
    /// the one its extension names (`.safetensors`, `.npy`, `.npz`, `.json`, `.csv`). An
    /// extension that names a format rnn does not write (`.pt`, `.onnx`, `.keras`, `.h5`, …),
    /// or none, is an error that says so: never safetensors bytes under a name that promises
    /// another format.
    pub fn for_output(path: &Path, explicit: Option<Self>) -> std::result::Result<Self, String> {
        if let Some(format) = explicit {
            return Ok(format);
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("safetensors") => Ok(Self::Safetensors),
            Some("npy" | "npz" | "json" | "csv") => Ok(Self::from_path(path)),
            other => Err(format!(
                "{}: {} names no format rnn writes; name the file .safetensors, .npz, .npy, \
                 .json or .csv, or choose the format with --output-format",
                path.display(),
                match other {
                    Some(e) => format!(
                        "the extension .{}",
                        crate::error::clip(e, crate::error::QUOTED_CHARS)
                    ),
                    None => "a name without an extension".to_string(),
                }
            )),
        }
    }

    /// Whether a file of this format holds one array only (the others hold named tensors).
    pub fn holds_one_array(self) -> bool {
        matches!(self, Self::Npy | Self::Csv)
    }
}
