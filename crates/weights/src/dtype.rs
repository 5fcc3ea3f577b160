//! The one table of element types: each candle dtype with its safetensors dtype (whose name is
//! also how `rnn` names a dtype in messages) and its .npy `descr`, where numpy has one. Every
//! reader and writer converts through it.

use candle_core::DType;
use safetensors::tensor::Dtype as StDtype;

/// One element type in each format's terms.
struct Entry {
    candle: DType,
    safetensors: StDtype,
    /// The safetensors header's name for it, and what messages call it.
    name: &'static str,
    /// numpy's little-endian `descr`; `None` where numpy has no such type (bf16).
    npy: Option<&'static str>,
}

/// Every dtype candle holds that a file may store. Ordered as messages list them.
const TABLE: &[Entry] = &[
    Entry {
        candle: DType::F32,
        safetensors: StDtype::F32,
        name: "F32",
        npy: Some("<f4"),
    },
    Entry {
        candle: DType::F64,
        safetensors: StDtype::F64,
        name: "F64",
        npy: Some("<f8"),
    },
    Entry {
        candle: DType::F16,
        safetensors: StDtype::F16,
        name: "F16",
        npy: Some("<f2"),
    },
    Entry {
        candle: DType::BF16,
        safetensors: StDtype::BF16,
        name: "BF16",
        npy: None,
    },
    Entry {
        candle: DType::I64,
        safetensors: StDtype::I64,
        name: "I64",
        npy: Some("<i8"),
    },
    Entry {
        candle: DType::I32,
        safetensors: StDtype::I32,
        name: "I32",
        npy: Some("<i4"),
    },
    Entry {
        candle: DType::I16,
        safetensors: StDtype::I16,
        name: "I16",
        npy: None,
    },
    Entry {
        candle: DType::U32,
        safetensors: StDtype::U32,
        name: "U32",
        npy: None,
    },
    Entry {
        candle: DType::U8,
        safetensors: StDtype::U8,
        name: "U8",
        npy: Some("|u1"),
    },
];

fn entry(dtype: DType) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.candle == dtype)
}

/// The candle dtype of a safetensors dtype; `None` for those candle cannot hold (bool, int8,
/// ...), which the readers keep by [`stored_name`] and refuse where used.
pub(crate) fn from_safetensors(dtype: StDtype) -> Option<DType> {
    TABLE
        .iter()
        .find(|e| e.safetensors == dtype)
        .map(|e| e.candle)
}

/// How a safetensors file names a dtype candle cannot hold (`BOOL`, `I8`, ...).
pub(crate) fn stored_name(dtype: StDtype) -> String {
    format!("{dtype:?}")
}

/// A dtype's name: the safetensors header's (`F32`, `BF16`, ...), also used in messages.
pub(crate) fn name(dtype: DType) -> String {
    match entry(dtype) {
        Some(e) => e.name.to_string(),
        None => format!("{dtype:?}").to_uppercase(),
    }
}

/// The candle dtype of a .npy `descr`.
pub(crate) fn from_npy(descr: &str) -> Option<DType> {
    TABLE
        .iter()
        .find(|e| e.npy == Some(descr))
        .map(|e| e.candle)
}

/// The .npy `descr` of a dtype; `None` where numpy has no such type.
pub(crate) fn npy_descr(dtype: DType) -> Option<&'static str> {
    entry(dtype).and_then(|e| e.npy)
}

/// Every .npy `descr` read, quoted and joined for messages: `'<f4', '<f8', …`.
pub(crate) fn npy_descrs() -> String {
    TABLE
        .iter()
        .filter_map(|e| e.npy)
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
