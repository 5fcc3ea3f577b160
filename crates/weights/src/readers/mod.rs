//! Files as the frameworks write them: what a file's first bytes say it is, and one reader per
//! framework format, each turning a file into a [`TensorFile`] whose names the naming schemes
//! of `naming.rs` recognise and whose metadata records the options the file records.
//!
//! The extension decides only where the bytes say nothing (JSON and CSV have no signature).

use std::path::Path;

use crate::error::{Result, WeightsError};
use crate::file::{FileFormat, TensorFile};

pub(crate) mod keras;
mod onnx;
pub(crate) use onnx::proto as onnx_proto;
mod pickle;
mod reparametrised;
mod sstable;
mod tf_checkpoint;
mod torch;
mod torch_export;

/// What to tell a user who runs `file` in `dtype` beyond its numbers, one line each: a
/// compute dtype the file records and `dtype` is not ([`keras::compute_dtype_note`]), what an
/// ONNX graph that unrolled its recurrence had fixed.
pub fn notes(file: &TensorFile, dtype: candle_core::DType) -> Vec<String> {
    let mut notes: Vec<String> = keras::compute_dtype_note(file, dtype).into_iter().collect();
    if let Some(unrolled) = file.metadata().get(onnx::UNROLLED) {
        notes.push(format!("{}: {unrolled}", file.path().display()));
    }
    notes
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
            if let Some(prefix) = checkpoint_prefix(path) {
                return read_checkpoint(&prefix);
            }
        }
        // A SavedModel, named by its folder or its saved_model.pb: its variables/ checkpoint,
        // whose object graph tf-keras's keras_metadata.pb ties to layers.
        let folder = if path.is_dir() {
            Some(path)
        } else {
            path.parent()
                .filter(|_| path.file_name().is_some_and(|n| n == "saved_model.pb"))
        };
        if let Some(folder) = folder.filter(|f| f.join("saved_model.pb").is_file()) {
            let variables = folder.join("variables").join("variables");
            if format.is_none() && variables.with_extension("index").is_file() {
                return read_checkpoint(&variables);
            }
        }
        if path.is_dir() && path.join("saved_model.pb").is_file() {
            return Err(WeightsError::Unsupported {
                path: path.to_owned(),
                format: "a TensorFlow SavedModel folder without variables/variables.index (rnn \
                         reads the variables of tf-keras's model.save(\"dir\") beside its \
                         keras_metadata.pb)"
                    .into(),
                advice: tf_checkpoint::SAVE_KERAS.into(),
            });
        }
        let io = |error| WeightsError::Io {
            path: path.to_owned(),
            error,
        };
        let (mut file, len) = open_regular_file(path).map_err(io)?;
        // A .npy is read straight into its tensor's buffer: one copy of a large array in
        // memory, not the file's bytes and then the tensor.
        let mut magic = Vec::with_capacity(6);
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, 6), &mut magic)
            .map_err(io)?;
        if magic == b"\x93NUMPY" && matches!(format, None | Some(FileFormat::Npy)) {
            let mut whole = std::io::Read::take(std::io::Read::chain(magic.as_slice(), file), len);
            let tensor = crate::npy::read(&mut whole, len).map_err(|reason| WeightsError::Npy {
                path: path.to_owned(),
                reason,
            })?;
            let tensors = std::collections::BTreeMap::from([("input".to_string(), tensor)]);
            return Ok(Self::from_tensors(path, tensors, Default::default()));
        }
        let bytes = read_rest(magic, file, len).map_err(io)?;
        let format = match format {
            Some(format) => format,
            None => {
                let container = sniff(path, &bytes)?;
                if let Some(file) = read_framework_file(path, &bytes, container) {
                    return file;
                }
                match container {
                    Container::Tensors(format) => format,
                    _ => FileFormat::from_path(path),
                }
            }
        };
        Self::from_bytes(path, &bytes, format)
    }
}

/// The bytes of the regular file at `path` (a symlink to one is followed), read up to the size
/// the file had when it was opened: a FIFO, socket or device (`/dev/zero`, a pipe that never
/// ends or never opens) is refused before it is opened, and a file that grows while it is
/// read is not read past that size.
pub(crate) fn read_regular_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let (file, len) = open_regular_file(path)?;
    read_rest(Vec::new(), file, len)
}

/// The file's bytes: `start`, its first bytes already read, then the rest of its `len`.
fn read_rest(start: Vec<u8>, file: std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = start;
    let rest = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .saturating_sub(bytes.len());
    bytes
        .try_reserve_exact(rest)
        .map_err(|_| std::io::Error::other(format!("{len} bytes cannot be held in memory")))?;
    let read = bytes.len() as u64;
    file.take(len.saturating_sub(read))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The regular file at `path`, opened, and its length when opened (see
/// [`read_regular_file`]).
fn open_regular_file(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let not_regular = || {
        std::io::Error::other(
            "not a regular file (a FIFO, socket or device); rnn reads models and inputs from \
             files on disk",
        )
    };
    let kind = std::fs::metadata(path)?.file_type();
    if kind.is_dir() {
        return Err(std::io::Error::other(
            "is a directory; name the model file inside it",
        ));
    }
    if !kind.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(not_regular());
    }
    Ok((file, metadata.len()))
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    /// One of the formats `rnn` also writes (safetensors, .npy, .npz, JSON, CSV).
    Tensors(FileFormat),
    /// A zip archive holding `data.pkl`: `torch.save` since PyTorch 1.6.
    TorchZip,
    /// A zip archive of `torch.export.save` (`.pt2`): raw weights and the exported graph.
    TorchExport,
    /// A pickle stream: `torch.save(..., _use_new_zipfile_serialization=False)`.
    Pickle,
    /// A zip archive holding `config.json`: Keras 3's `model.save("m.keras")`.
    KerasArchive,
    /// HDF5: Keras's `save_weights("w.weights.h5")`.
    Hdf5,
    /// An ONNX model (protobuf).
    Onnx,
}

/// The kind of `bytes` (read from `path`): by signature, else by extension.
pub(crate) fn sniff(path: &Path, bytes: &[u8]) -> Result<Container> {
    let refuse = |format: &str, advice: &str| WeightsError::Unsupported {
        path: path.to_owned(),
        format: format.into(),
        advice: advice.into(),
    };
    if bytes.starts_with(b"\x93NUMPY") {
        return Ok(Container::Tensors(FileFormat::Npy));
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return zip_kind(path, bytes);
    }
    if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Ok(Container::Hdf5);
    }
    if bytes.starts_with(b"GGUF") {
        return Err(refuse(
            "a GGUF file (llama.cpp)",
            "export the RNN's weights as a PyTorch state_dict or safetensors",
        ));
    }
    // Before the pickle test: a safetensors header of 640 to 1535 bytes starts with 0x80.
    if looks_like_safetensors(bytes) {
        return Ok(Container::Tensors(FileFormat::Safetensors));
    }
    if let [0x80, 2..=5, ..] = bytes {
        return Ok(Container::Pickle);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "saved_model.pb" {
        return Err(refuse(
            "a TensorFlow SavedModel graph (saved_model.pb) without variables/ beside it (rnn \
             reads the variables of tf-keras's model.save(\"dir\"), not the graph)",
            tf_checkpoint::SAVE_KERAS,
        ));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if extension.as_deref() == Some("onnx") {
        return Ok(Container::Onnx);
    }
    Ok(Container::Tensors(FileFormat::from_path(path)))
}

/// Eight bytes of header length, then a JSON object that fits in the file.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some(len) = bytes.get(..8) else {
        return false;
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(len);
    let header = u64::from_le_bytes(le);
    header >= 2 && header <= (bytes.len() - 8) as u64 && bytes.get(8) == Some(&b'{')
}

/// Which framework wrote a zip archive, from the names of its entries.
fn zip_kind(path: &Path, bytes: &[u8]) -> Result<Container> {
    let archive = crate::npz::zip_archive(bytes).map_err(|e| WeightsError::Malformed {
        path: path.to_owned(),
        kind: "zip",
        reason: e.to_string(),
    })?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    if names.iter().any(|n| n == "config.json") {
        return Ok(Container::KerasArchive);
    }
    if torch_export::is_export(&names) {
        return Ok(Container::TorchExport);
    }
    if names
        .iter()
        .any(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
    {
        return Ok(Container::TorchZip);
    }
    Ok(Container::Tensors(FileFormat::Npz))
}

/// Reads a file of a framework's own format; `None` for the formats `rnn` also writes.
pub(crate) fn read_framework_file(
    path: &Path,
    bytes: &[u8],
    container: Container,
) -> Option<Result<TensorFile>> {
    Some(match container {
        Container::Tensors(_) => return None,
        Container::TorchZip | Container::Pickle => torch::read(path, bytes),
        Container::TorchExport => torch_export::read(path, bytes),
        Container::KerasArchive => keras::read_archive(path, bytes),
        Container::Hdf5 => keras::read_weights_h5(path, bytes),
        Container::Onnx => onnx::read(path, bytes),
    })
}

/// The TensorFlow checkpoint `path` names, if it names one: a prefix `NAME` beside
/// `NAME.index`, the `.index` file itself, or the `NAME.meta` graph TF1's `Saver` writes beside
/// `NAME.index`. Returns the prefix.
pub(crate) fn checkpoint_prefix(path: &Path) -> Option<std::path::PathBuf> {
    if path.extension().is_some_and(|e| e == "index") {
        return Some(path.with_extension(""));
    }
    if path.extension().is_some_and(|e| e == "meta") && path.with_extension("index").is_file() {
        return Some(path.with_extension(""));
    }
    let mut index = path.as_os_str().to_owned();
    index.push(".index");
    let index = std::path::PathBuf::from(index);
    (!path.exists() && index.is_file()).then(|| path.to_owned())
}

/// Reads the TensorFlow checkpoint with this prefix.
pub(crate) fn read_checkpoint(prefix: &Path) -> Result<TensorFile> {
    tf_checkpoint::read(prefix)
}
