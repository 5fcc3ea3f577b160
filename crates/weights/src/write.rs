//! Files written whole or not at all: tensors in any [`FileFormat`], each through a new
//! temporary file beside the target, renamed into place when complete.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::Tensor;

use crate::error::{Result, WeightsError};
use crate::file::FileFormat;

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
///
/// # Errors
/// When `path` exists and is not a regular file: a directory, or a symlink, FIFO, socket or
/// device, which the rename would replace (and a symlink is not written through either).
pub(crate) fn temporary_file(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Err(std::io::Error::other("is a directory")),
        Ok(m) if !m.file_type().is_file() => {
            return Err(std::io::Error::other(
                "exists and is not a regular file (a symlink, FIFO, socket or device), which \
                 rnn does not replace; name a regular file (without -o, results go to stdout)",
            ))
        }
        _ => {}
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
