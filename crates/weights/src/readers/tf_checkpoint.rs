//! TensorFlow checkpoints (tensor bundles): TF1 `tf.train.Saver` and TF2
//! `tf.train.Checkpoint`, a `NAME.index` table beside `NAME.data-*` shards.
//!
//! The index is an SSTable (`sstable.rs`) whose `""` key holds a `BundleHeaderProto` and
//! every other key a variable's `BundleEntryProto`: where its bytes lie in which shard. Names
//! are brought to what `formats.rs` reads: TF1 names as they are; TF2's object-graph names of
//! a Keras model (`model/layer_with_weights-0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE`) to
//! Keras variable paths in layer order; the article's unnamed `Variable`, `Variable_1`,
//! `Variable_2` to `Wx`, `Wy`, `b` when their shapes say which is which. TensorFlow's
//! bookkeeping (the object graph, step counters, optimizer slots) is left out and listed in
//! the metadata key `skipped`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

/// `tensorflow/core/protobuf/tensor_bundle.proto`: the `""` entry of the index.
#[derive(Clone, PartialEq, prost::Message)]
struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    num_shards: i32,
    /// 0 little-endian, 1 big-endian.
    #[prost(int32, tag = "2")]
    endianness: i32,
    #[prost(message, optional, tag = "3")]
    version: Option<VersionDef>,
}

/// `tensorflow/core/framework/versions.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct VersionDef {
    #[prost(int32, tag = "1")]
    producer: i32,
    #[prost(int32, tag = "2")]
    min_consumer: i32,
    #[prost(int32, repeated, tag = "3")]
    bad_consumers: Vec<i32>,
}

/// `tensor_bundle.proto`: one variable's place in the data shards.
#[derive(Clone, PartialEq, prost::Message)]
struct BundleEntryProto {
    /// A `tensorflow.DataType`.
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    shard_id: i32,
    #[prost(int64, tag = "4")]
    offset: i64,
    #[prost(int64, tag = "5")]
    size: i64,
    /// The masked CRC-32C of the tensor's bytes.
    #[prost(fixed32, tag = "6")]
    crc32c: u32,
    /// Non-empty for a partitioned variable, whose parts are other entries.
    #[prost(message, repeated, tag = "7")]
    slices: Vec<TensorSliceProto>,
}

/// `tensor_shape.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    unknown_rank: bool,
}

/// `TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
struct Dim {
    #[prost(int64, tag = "1")]
    size: i64,
    #[prost(string, tag = "2")]
    name: String,
}

/// `tensor_slice.proto` (only its presence matters here).
#[derive(Clone, PartialEq, prost::Message)]
struct TensorSliceProto {}

/// The TensorFlow version this reader follows: `kTensorBundleVersion`.
const BUNDLE_VERSION: i32 = 1;
/// More shards than TensorFlow's 5-digit shard names can number.
const MAX_SHARDS: i32 = 100_000;

/// A `tensorflow.DataType` this reader loads: candle's type and the size of one element.
fn dtype_of(code: i32) -> Option<(DType, usize)> {
    Some(match code {
        1 => (DType::F32, 4),
        2 => (DType::F64, 8),
        3 => (DType::I32, 4),
        9 => (DType::I64, 8),
        14 => (DType::BF16, 2),
        19 => (DType::F16, 2),
        _ => return None,
    })
}

/// The name of a `tensorflow.DataType`, for messages.
fn dtype_name(code: i32) -> String {
    match code {
        4 => "uint8".into(),
        5 => "int16".into(),
        6 => "int8".into(),
        7 => "string".into(),
        8 => "complex64".into(),
        10 => "bool".into(),
        17 => "uint16".into(),
        18 => "complex128".into(),
        20 => "resource".into(),
        21 => "variant".into(),
        22 => "uint32".into(),
        23 => "uint64".into(),
        _ => format!("DataType {code}"),
    }
}

/// Reads the checkpoint with this prefix.
pub(crate) fn read(prefix: &Path) -> Result<TensorFile> {
    let index_path = with_suffix(prefix, ".index");
    let bytes = std::fs::read(&index_path).map_err(|error| WeightsError::Io {
        path: index_path.clone(),
        error,
    })?;
    let malformed = |reason: String| WeightsError::Malformed {
        path: index_path.clone(),
        kind: "TensorFlow checkpoint index",
        reason,
    };
    let entries = super::sstable::entries(&bytes).map_err(malformed)?;
    let mut header = None;
    let mut variables = Vec::new();
    for (key, value) in entries {
        let name = String::from_utf8(key)
            .map_err(|_| malformed("expected UTF-8 variable names, found other bytes".into()))?;
        if name.is_empty() {
            let h = <BundleHeaderProto as prost::Message>::decode(value.as_slice())
                .map_err(|e| malformed(format!("the header (key \"\") does not decode: {e}")))?;
            header = Some(h);
            continue;
        }
        let entry = <BundleEntryProto as prost::Message>::decode(value.as_slice())
            .map_err(|e| malformed(format!("the entry of `{name}` does not decode: {e}")))?;
        variables.push((name, entry));
    }
    let header =
        header.ok_or_else(|| malformed("expected a header (the key \"\"), found none".into()))?;
    if header.endianness != 0 {
        return Err(malformed(
            "the tensors are stored big-endian, which rnn does not read".into(),
        ));
    }
    if let Some(version) = &header.version {
        if version.min_consumer > BUNDLE_VERSION || version.bad_consumers.contains(&BUNDLE_VERSION)
        {
            return Err(malformed(format!(
                "expected a bundle readable by version {BUNDLE_VERSION}, found one for version \
                 {} and later",
                version.min_consumer
            )));
        }
    }
    if !(1..=MAX_SHARDS).contains(&header.num_shards) {
        return Err(malformed(format!(
            "expected 1 to {MAX_SHARDS} data shards, found {}",
            header.num_shards
        )));
    }
    let mut shards = Shards {
        prefix,
        index: &index_path,
        count: header.num_shards,
        loaded: HashMap::new(),
    };
    let mut tensors = BTreeMap::new();
    let mut unloadable = BTreeMap::new();
    let mut skipped = Vec::new();
    for (name, entry) in variables {
        if is_bookkeeping(&name) {
            skipped.push(name);
            continue;
        }
        if !entry.slices.is_empty() {
            return Err(malformed(format!(
                "`{name}` is a partitioned variable ({} slices), which rnn does not read; save \
                 the variable unpartitioned",
                entry.slices.len()
            )));
        }
        match dtype_of(entry.dtype) {
            Some((dtype, width)) => {
                let tensor = shards.tensor(&name, &entry, dtype, width)?;
                tensors.insert(name, tensor);
            }
            None => {
                unloadable.insert(name, dtype_name(entry.dtype));
            }
        }
    }
    let (tensors, not_run) = rename(&index_path, tensors)?;
    let mut metadata = HashMap::new();
    if !not_run.is_empty() {
        metadata.insert(super::keras::NOT_RUN.to_string(), not_run.join(", "));
    }
    if !skipped.is_empty() {
        metadata.insert("skipped".to_string(), skipped.join(","));
    }
    Ok(TensorFile::from_tensors(&index_path, tensors, metadata).with_unloadable(unloadable))
}

/// `prefix` with `suffix` appended to its last component.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// TensorFlow's own entries: the object graph, step counters and optimizer state.
fn is_bookkeeping(name: &str) -> bool {
    const SLOTS: [&str; 8] = [
        "/Adam",
        "/Adam_1",
        "/Momentum",
        "/RMSProp",
        "/RMSProp_1",
        "/Adagrad",
        "/Ftrl",
        "/Ftrl_1",
    ];
    name == "_CHECKPOINTABLE_OBJECT_GRAPH"
        || name == "global_step"
        || name == "beta1_power"
        || name == "beta2_power"
        || name == "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
        || name.starts_with("optimizer/")
        || name.contains("/.OPTIMIZER_SLOT/")
        || SLOTS.iter().any(|s| name.ends_with(s))
}

/// The data shards, each read when a tensor first needs it.
struct Shards<'a> {
    prefix: &'a Path,
    index: &'a Path,
    count: i32,
    loaded: HashMap<i32, Vec<u8>>,
}

impl Shards<'_> {
    fn tensor(
        &mut self,
        name: &str,
        entry: &BundleEntryProto,
        dtype: DType,
        width: usize,
    ) -> Result<Tensor> {
        let malformed = |reason: String| WeightsError::Malformed {
            path: self.index.to_owned(),
            kind: "TensorFlow checkpoint index",
            reason: format!("`{name}`: {reason}"),
        };
        let shape = entry.shape.clone().unwrap_or_default();
        if shape.unknown_rank {
            return Err(malformed(
                "expected a known shape, found unknown rank".into(),
            ));
        }
        let dims: Option<Vec<usize>> = shape
            .dim
            .iter()
            .map(|d| usize::try_from(d.size).ok())
            .collect();
        let dims = dims.ok_or_else(|| {
            malformed(format!(
                "expected a shape of sizes ≥ 0, found {:?}",
                shape.dim.iter().map(|d| d.size).collect::<Vec<_>>()
            ))
        })?;
        let bytes = dims
            .iter()
            .try_fold(width, |n, &d| n.checked_mul(d))
            .ok_or_else(|| malformed(format!("shape {dims:?} overflows")))?;
        if u64::try_from(entry.size).ok() != Some(bytes as u64) {
            return Err(malformed(format!(
                "expected {bytes} bytes for shape {dims:?}, found size {}",
                entry.size
            )));
        }
        if !(0..self.count).contains(&entry.shard_id) {
            return Err(malformed(format!(
                "expected a shard below {}, found shard {}",
                self.count, entry.shard_id
            )));
        }
        let shard_path = self.shard_path(entry.shard_id);
        let data = self.shard(entry.shard_id)?;
        let start = usize::try_from(entry.offset).ok();
        let range = start
            .and_then(|s| Some(s..s.checked_add(bytes)?))
            .filter(|r| r.end <= data.len())
            .ok_or_else(|| WeightsError::Malformed {
                path: shard_path.clone(),
                kind: "TensorFlow checkpoint data shard",
                reason: format!(
                    "`{name}`: expected {bytes} bytes at offset {}, but the shard has {}",
                    entry.offset,
                    data.len()
                ),
            })?;
        let raw = &data[range];
        let crc = super::sstable::mask(super::sstable::crc32c(raw));
        if crc != entry.crc32c {
            return Err(WeightsError::Malformed {
                path: shard_path,
                kind: "TensorFlow checkpoint data shard",
                reason: format!(
                    "`{name}`: the checksum does not match (index {:#010x}, data {crc:#010x})",
                    entry.crc32c
                ),
            });
        }
        Tensor::from_raw_buffer(raw, dtype, &dims, &Device::Cpu).map_err(|error| {
            WeightsError::Tensor {
                path: shard_path,
                error,
            }
        })
    }

    fn shard_path(&self, id: i32) -> PathBuf {
        with_suffix(self.prefix, &format!(".data-{id:05}-of-{:05}", self.count))
    }

    fn shard(&mut self, id: i32) -> Result<&[u8]> {
        if !self.loaded.contains_key(&id) {
            let path = self.shard_path(id);
            let bytes = std::fs::read(&path).map_err(|error| WeightsError::MissingPart {
                path: path.clone(),
                what: format!(
                    "data shard {} of {} of the checkpoint {}",
                    id + 1,
                    self.count,
                    self.index.display()
                ),
                error,
            })?;
            self.loaded.insert(id, bytes);
        }
        Ok(self.loaded.get(&id).map(Vec::as_slice).unwrap_or_default())
    }
}

/// The checkpoint's names as `formats.rs` reads them: TF2 object-graph names of a Keras
/// model as Keras variable paths, the article's unnamed variables as `Wx`, `Wy`, `b`; every
/// other name as it is. Also returns the object-graph variables of no recurrent layer (a
/// Dense head's), which make the file refused unless the user picks the RNN.
fn rename(
    path: &Path,
    tensors: BTreeMap<String, Tensor>,
) -> Result<(BTreeMap<String, Tensor>, Vec<String>)> {
    let refuse = |what: String| WeightsError::Unrecognised {
        path: path.to_owned(),
        what,
        found: tensors.keys().cloned().collect(),
    };
    let mut out = BTreeMap::new();
    let mut not_run = Vec::new();
    for (name, tensor) in &tensors {
        let new = match name.strip_suffix("/.ATTRIBUTES/VARIABLE_VALUE") {
            Some(object) => match keras_object_path(object, tensor) {
                Ok(Some(keras)) => keras,
                Ok(None) => {
                    not_run.push(object.to_string());
                    name.clone()
                }
                Err(why) => return Err(refuse(why)),
            },
            None => name.clone(),
        };
        if out.insert(new.clone(), tensor.clone()).is_some() {
            return Err(refuse(format!(
                "two variables map to the Keras path `{new}`"
            )));
        }
    }
    article_names(&mut out).map_err(refuse)?;
    Ok((out, not_run))
}

/// A TF2 object-graph path (without `/.ATTRIBUTES/VARIABLE_VALUE`) of a recurrent layer's
/// variable as a Keras path, `None` for a variable of no recurrent layer, or why it cannot be
/// mapped.
///
/// Keras 3.15 with TF 2.21 writes a `Sequential`'s layers as
/// `model/_functional/_operations/K/cell/kernel` (K counts the model's operations, the input
/// layer 0) and tf-keras `model/layer_with_weights-K/cell/kernel`; a `Bidirectional` holds
/// `forward_layer/cell/…` and `backward_layer/cell/…`. K is the layer's place in the model,
/// so the Keras path numbers the layer by it, as Keras's default names would
/// (`model/simple_rnn_K/simple_rnn_cell/kernel`).
fn keras_object_path(object: &str, tensor: &Tensor) -> std::result::Result<Option<String>, String> {
    let parts: Vec<&str> = object.split('/').collect();
    let Some(var) = parts.last().copied() else {
        return Ok(None);
    };
    if !matches!(var, "kernel" | "recurrent_kernel" | "bias") {
        return Ok(None);
    }
    let Some(cell) = parts.iter().rposition(|p| *p == "cell") else {
        return Ok(None);
    };
    if cell + 2 != parts.len() {
        return Ok(None);
    }
    // The layer: `…/forward_layer/cell` in a Bidirectional, else `…/cell`.
    let (layer_end, direction) = match cell.checked_sub(1).map(|i| parts[i]) {
        Some("forward_layer") => (cell - 1, Some("forward")),
        Some("backward_layer") => (cell - 1, Some("backward")),
        _ => (cell, None),
    };
    let layer = &parts[..layer_end];
    let index = layer.last().and_then(|last| {
        last.strip_prefix("layer_with_weights-")
            .or_else(|| last.strip_prefix("layer-"))
            .or_else(|| {
                let parent = layer.get(layer.len().checked_sub(2)?)?;
                matches!(*parent, "_operations" | "_layers" | "layers").then_some(*last)
            })
            .and_then(|k| k.parse::<u64>().ok())
    });
    let Some(index) = index else {
        return Err(format!(
            "the checkpoint's variable `{object}` is a recurrent cell's, but its path gives no \
             layer number (layer_with_weights-K or _operations/K), so its place in the stack \
             is unknown"
        ));
    };
    if var == "recurrent_kernel" {
        let dims = tensor.dims();
        if dims.len() != 2 || dims[0] != dims[1] {
            return Err(format!(
                "the checkpoint's variable `{object}` has shape {dims:?}, not a SimpleRNN's \
                 square recurrent kernel (an LSTM or GRU?), which rnn does not run"
            ));
        }
    }
    // The model's scope: the path before the layer list.
    let scope_len = layer.len().saturating_sub(1);
    let scope: Vec<&str> = layer[..scope_len]
        .iter()
        .copied()
        .filter(|p| !matches!(*p, "_functional" | "_operations" | "_layers" | "layers"))
        .collect();
    let mut path = scope.join("/");
    if !path.is_empty() {
        path.push('/');
    }
    let rnn = format!("simple_rnn_{index}");
    match direction {
        Some(direction) => path.push_str(&format!("bidirectional_{index}/{direction}_{rnn}")),
        None => path.push_str(&rnn),
    }
    Ok(Some(format!("{path}/simple_rnn_cell/{var}")))
}

/// The article's program saved with `Saver`: its `tf.Variable`s have no names, so TensorFlow
/// calls them `Variable`, `Variable_1`, `Variable_2`. Renamed `Wx` `[I, H]`, `Wy` `[H, H]`,
/// `b` `[1, H]` when exactly one assignment fits those shapes.
fn article_names(tensors: &mut BTreeMap<String, Tensor>) -> std::result::Result<(), String> {
    let unnamed: Vec<String> = tensors
        .keys()
        .filter(|n| {
            n.strip_prefix("Variable").is_some_and(|rest| {
                rest.is_empty()
                    || rest
                        .strip_prefix('_')
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
        })
        .cloned()
        .collect();
    if unnamed.len() != 3 || tensors.contains_key("Wx") {
        return Ok(());
    }
    let dims: Vec<Vec<usize>> = unnamed
        .iter()
        .filter_map(|n| tensors.get(n).map(|t| t.dims().to_vec()))
        .collect();
    let fits = |wx: &[usize], wy: &[usize], b: &[usize]| matches!((wx, wy, b), ([_, h1], [h2, h3], [1, h4]) if h1 == h2 && h2 == h3 && h3 == h4);
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let fitting: Vec<[usize; 3]> = orders
        .into_iter()
        .filter(|o| fits(&dims[o[0]], &dims[o[1]], &dims[o[2]]))
        .collect();
    match fitting.as_slice() {
        [] => Ok(()),
        [order] => {
            for (k, new) in order.iter().zip(["Wx", "Wy", "b"]) {
                if let Some(t) = tensors.remove(&unnamed[*k]) {
                    tensors.insert(new.to_string(), t);
                }
            }
            Ok(())
        }
        _ => Err(format!(
            "the unnamed variables {} have shapes {:?}, which fit the article's Wx [I, H], Wy \
             [H, H] and b [1, H] in more than one way (the input size equals the hidden size); \
             name them when creating them (tf.Variable(..., name=\"Wx\"), \"Wy\", \"b\") or \
             save them as safetensors under those names",
            unnamed.join(", "),
            dims
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize]) -> Tensor {
        Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn the_articles_variables_are_named_by_their_shapes() {
        let mut m = BTreeMap::from([
            ("Variable".to_string(), t(&[3, 5])),
            ("Variable_1".to_string(), t(&[5, 5])),
            ("Variable_2".to_string(), t(&[1, 5])),
        ]);
        article_names(&mut m).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["Wx", "Wy", "b"]);
        assert_eq!(m["Wx"].dims(), [3, 5]);
    }

    #[test]
    fn the_articles_variables_are_refused_when_input_and_hidden_sizes_agree() {
        let mut m = BTreeMap::from([
            ("Variable".to_string(), t(&[5, 5])),
            ("Variable_1".to_string(), t(&[5, 5])),
            ("Variable_2".to_string(), t(&[1, 5])),
        ]);
        let err = article_names(&mut m).unwrap_err();
        assert!(err.contains("more than one way"), "{err}");
    }

    #[test]
    fn keras_object_paths_map_in_layer_order() {
        let k = |p: &str, d: &[usize]| keras_object_path(p, &t(d));
        assert_eq!(
            k("model/_functional/_operations/2/cell/kernel", &[5, 4]).unwrap(),
            Some("model/simple_rnn_2/simple_rnn_cell/kernel".into())
        );
        assert_eq!(
            k("model/layer_with_weights-1/backward_layer/cell/bias", &[4]).unwrap(),
            Some("model/bidirectional_1/backward_simple_rnn_1/simple_rnn_cell/bias".into())
        );
        assert_eq!(
            k("model/layer_with_weights-2/kernel", &[4, 2]).unwrap(),
            None
        );
        assert!(k("model/encoder/cell/kernel", &[3, 4])
            .unwrap_err()
            .contains("no layer number"));
        assert!(
            k("model/layer_with_weights-0/cell/recurrent_kernel", &[4, 16])
                .unwrap_err()
                .contains("LSTM or GRU")
        );
    }

    #[test]
    fn bookkeeping_is_recognised() {
        for name in [
            "_CHECKPOINTABLE_OBJECT_GRAPH",
            "global_step",
            "rnn/basic_rnn_cell/kernel/Adam_1",
            "model/layer_with_weights-0/cell/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE",
            "save_counter/.ATTRIBUTES/VARIABLE_VALUE",
        ] {
            assert!(is_bookkeeping(name), "{name}");
        }
        assert!(!is_bookkeeping("rnn/basic_rnn_cell/kernel"));
    }
}
