//! The one error type of this crate: every variant names the file (or, for a reading option,
//! the option), and where it applies the tensor, what was expected and what was found.

use std::path::{Path, PathBuf};

/// What went wrong reading or writing a weights, input or fixture file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read or written at all.
    // The cause is part of the one-line message, not a separate `source` in the chain, so a
    // report prints it once.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A file that another one needs is missing or unreadable (a checkpoint's data shard).
    #[error("{}: cannot read {what}: {error}", path.display())]
    MissingPart {
        /// The file that could not be read.
        path: PathBuf,
        /// What it is, and which file needs it.
        what: String,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, bad header, bad offsets, ...).
    #[error("{}: not a valid safetensors file: {reason}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the safetensors parser said.
        reason: String,
    },
    /// The bytes are not a valid .npy file.
    #[error("{}: not a valid .npy file: {reason}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The bytes are not a valid file of the kind its extension (or `--input-format`) says:
    /// .npz, JSON or CSV.
    #[error("{}: not a valid {kind} file: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The kind it was read as (`.npz`, `JSON`, `CSV`).
        kind: &'static str,
        /// What is wrong with it, and where.
        reason: String,
    },
    /// The tensors cannot be written in the format asked for (CSV holds one sequence, JSON no
    /// NaN, ...).
    #[error("{}: cannot write {format}: {reason}", path.display())]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// The format asked for.
        format: &'static str,
        /// Why not, and what to do instead.
        reason: String,
    },
    /// A tensor the format needs is not in the file.
    #[error("{}: tensor `{name}` is missing; the file has: {}", path.display(), list(available), name = clip(name, QUOTED_CHARS))]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor that was looked for.
        name: String,
        /// The tensors that are there.
        available: Vec<String>,
    },
    /// A tensor has the wrong shape.
    #[error("{}: tensor `{name}`: expected shape {expected}, found {found:?}", path.display(), name = clip(name, QUOTED_CHARS))]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The shape wanted, in words where it depends on other tensors (`[hidden, input]`).
        expected: String,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has an element type that cannot be used where it is.
    #[error("{}: tensor `{name}`: expected {expected}, found dtype {found}", path.display(), name = clip(name, QUOTED_CHARS))]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The element types wanted.
        expected: String,
        /// The element type in the file.
        found: String,
    },
    /// A tensor holds a value that makes no sense where it is used.
    #[error("{}: tensor `{name}`: {reason}", path.display(), name = clip(name, QUOTED_CHARS))]
    Value {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// No known set of tensor names matches the file.
    #[error("{}: {what}; the file has: {}", path.display(), list(found))]
    Unrecognised {
        /// The file.
        path: PathBuf,
        /// What was looked for and not found.
        what: String,
        /// The tensors that are there.
        found: Vec<String>,
    },
    /// A model file that `rnn` reads, whose model's structure it does not run (a Keras model
    /// of two inputs, a shared layer): `reason` in words.
    #[error("{}: rnn does not run this model: {reason}", path.display())]
    NotRun {
        /// The file.
        path: PathBuf,
        /// What in the model, and why, in words.
        reason: String,
    },
    /// A file of a known format that `rnn` does not read.
    #[error("{}: {format}, which rnn does not read; {advice}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What the file is.
        format: String,
        /// What to save instead.
        advice: String,
    },
    /// The names fit more than one RNN, or do not settle how they stack.
    #[error(
        "{}: the names hold more than one RNN, and nothing in the file says which to run: {}{hint}",
        path.display(),
        readings.join("; ")
    )]
    Ambiguous {
        /// The file.
        path: PathBuf,
        /// Each possible reading, with the flags that pick it.
        readings: Vec<String>,
        /// How to combine them, where that is possible (starts with "; "), or empty.
        hint: String,
    },
    /// A value in `__metadata__` cannot be read.
    #[error("{}: metadata `{key}`: expected {expected}, found {found:?}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What the value should be.
        expected: String,
        /// The value in the file.
        found: String,
    },
    /// A reading option (a flag of the CLI, a keyword of the Python module) that does not fit
    /// the model: it names the option, not a file. Shown as the CLI's flag (`--merge-mode`);
    /// the Python module shows its keyword (`load(merge_mode=…)`).
    #[error("--{}: {reason}", .option.replace('_', "-"))]
    Option {
        /// The option by its standard name, the Python keyword (`merge_mode`).
        option: &'static str,
        /// What is wrong with its value for this model.
        reason: String,
    },
    /// Inputs that the model's masks refuse (a mask the inputs cannot show, lengths that
    /// contradict a mask); `path` is where the inputs came from.
    #[error("{}: {reason}", path.display())]
    Inputs {
        /// Where the inputs came from (a file, or the Python argument's name).
        path: PathBuf,
        /// What the model needs of them.
        reason: String,
    },
    /// The tensors are individually fine but do not make a valid RNN together.
    #[error("{}: {error}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// What candle or rnn-core said.
        error: candle_core::Error,
    },
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

/// The most characters of a name or value from a file that a message quotes.
pub const QUOTED_CHARS: usize = 200;
/// The most characters of one message: a backstop for text built from a file's content.
pub const MESSAGE_CHARS: usize = 4000;
/// The most names a message lists.
const LISTED_NAMES: usize = 40;

/// `text` whole when it holds at most `max_chars` characters; else its first `max_chars`, then
/// how many were cut, so that no file can make a message as long as itself.
pub fn clip(text: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => text.into(),
        Some((end, _)) => {
            let cut = text[end..].chars().count();
            format!("{}… ({cut} more characters)", &text[..end]).into()
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "no tensors".to_string();
    }
    let mut text = names
        .iter()
        .take(LISTED_NAMES)
        .map(|n| clip(n, QUOTED_CHARS))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED_NAMES {
        text.push_str(&format!(" and {} more", names.len() - LISTED_NAMES));
    }
    text
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, WeightsError>;
