//! The bundle itself: the index's `BundleHeaderProto` and `BundleEntryProto`s as
//! hand-written prost messages, TensorFlow's dtypes, and the data shards the entries point
//! into.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::with_suffix;
use crate::error::{Result, WeightsError};
use crate::readers::sstable;

/// `tensorflow/core/protobuf/tensor_bundle.proto`: the `""` entry of the index.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    pub(super) num_shards: i32,
    /// 0 little-endian, 1 big-endian.
    #[prost(int32, tag = "2")]
    pub(super) endianness: i32,
    #[prost(message, optional, tag = "3")]
    pub(super) version: Option<VersionDef>,
}

/// `tensorflow/core/framework/versions.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct VersionDef {
    #[prost(int32, tag = "1")]
    producer: i32,
    #[prost(int32, tag = "2")]
    pub(super) min_consumer: i32,
    #[prost(int32, repeated, tag = "3")]
    pub(super) bad_consumers: Vec<i32>,
}

/// `tensor_bundle.proto`: one variable's place in the data shards.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct BundleEntryProto {
    /// A `tensorflow.DataType`.
    #[prost(int32, tag = "1")]
    pub(super) dtype: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    shard_id: i32,
    #[prost(int64, tag = "4")]
    offset: i64,
    #[prost(int64, tag = "5")]
    pub(super) size: i64,
    /// The masked CRC-32C of the tensor's bytes.
    #[prost(fixed32, tag = "6")]
    crc32c: u32,
    /// Non-empty for a partitioned variable, whose parts are other entries.
    #[prost(message, repeated, tag = "7")]
    pub(super) slices: Vec<TensorSliceProto>,
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
    pub(super) size: i64,
    #[prost(string, tag = "2")]
    name: String,
}

/// `tensor_slice.proto` (only its presence matters here).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TensorSliceProto {}

/// The TensorFlow version this reader follows: `kTensorBundleVersion`.
pub(super) const BUNDLE_VERSION: i32 = 1;
/// More shards than TensorFlow's 5-digit shard names can number.
pub(super) const MAX_SHARDS: i32 = 100_000;

/// A `tensorflow.DataType` this reader loads: candle's type and the size of one element.
pub(super) fn dtype_of(code: i32) -> Option<(DType, usize)> {
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
pub(super) fn dtype_name(code: i32) -> String {
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

/// The data shards, each read when a tensor first needs it.
pub(super) struct Shards<'a> {
    pub(super) prefix: &'a Path,
    pub(super) index: &'a Path,
    pub(super) count: i32,
    pub(super) loaded: HashMap<i32, Vec<u8>>,
    /// Bytes of each shard handed out to variables so far: TensorFlow writes each variable
    /// to its own range, so together they never exceed the shard (an index whose entries all
    /// name one range would have each copied).
    pub(super) used: HashMap<i32, usize>,
}

impl Shards<'_> {
    pub(super) fn tensor(
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
            .filter(|_| crate::header_checks::strides_fit(&dims))
            .ok_or_else(|| malformed(format!("shape {dims:?} overflows")))?;
        if u64::try_from(entry.size).ok() != Some(bytes as u64) {
            return Err(malformed(format!(
                "expected {bytes} bytes for shape {dims:?}, found size {}",
                entry.size
            )));
        }
        let shard_path = self.shard_path(entry.shard_id);
        let raw = self.raw(name, entry, bytes)?;
        let crc = sstable::mask(sstable::crc32c(raw));
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

    /// The `bytes` bytes of `name` in its shard, checked to lie within it and, with the
    /// variables read before, to take no more than the shard holds.
    fn raw(&mut self, name: &str, entry: &BundleEntryProto, bytes: usize) -> Result<&[u8]> {
        let malformed = |reason: String| WeightsError::Malformed {
            path: self.index.to_owned(),
            kind: "TensorFlow checkpoint index",
            reason: format!("`{name}`: {reason}"),
        };
        if !(0..self.count).contains(&entry.shard_id) {
            return Err(malformed(format!(
                "expected a shard below {}, found shard {}",
                self.count, entry.shard_id
            )));
        }
        let shard_path = self.shard_path(entry.shard_id);
        let used = self.used.entry(entry.shard_id).or_default();
        *used = used.saturating_add(bytes);
        let used = *used;
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
        if used > data.len() {
            return Err(WeightsError::Malformed {
                path: shard_path,
                kind: "TensorFlow checkpoint data shard",
                reason: format!(
                    "`{name}`: the variables read so far take {used} bytes of a shard of {}: \
                     their ranges overlap (TensorFlow writes each variable to its own)",
                    data.len()
                ),
            });
        }
        Ok(&data[range])
    }

    /// A scalar string variable (TensorFlow's layout: the length as a varint, a 4-byte
    /// checksum of the lengths, then the bytes), such as `_CHECKPOINTABLE_OBJECT_GRAPH`.
    pub(super) fn string(&mut self, name: &str, entry: &BundleEntryProto) -> Result<Vec<u8>> {
        let index = self.index.to_owned();
        let size = usize::try_from(entry.size).unwrap_or(usize::MAX);
        let raw = self.raw(name, entry, size)?;
        let malformed = |reason: &str| WeightsError::Malformed {
            path: index.clone(),
            kind: "TensorFlow checkpoint index",
            reason: format!("`{name}`: {reason}"),
        };
        let mut rest = raw;
        let length = prost::encoding::decode_varint(&mut rest)
            .map_err(|_| malformed("expected a string's length, found other bytes"))?;
        let text = rest
            .get(4..)
            .filter(|t| t.len() as u64 == length)
            .ok_or_else(|| malformed("expected one string filling the variable"))?;
        Ok(text.to_vec())
    }

    fn shard_path(&self, id: i32) -> PathBuf {
        with_suffix(self.prefix, &format!(".data-{id:05}-of-{:05}", self.count))
    }

    fn shard(&mut self, id: i32) -> Result<&[u8]> {
        if !self.loaded.contains_key(&id) {
            let path = self.shard_path(id);
            let bytes = crate::readers::read_regular_file(&path).map_err(|error| {
                WeightsError::MissingPart {
                    path: path.clone(),
                    what: format!(
                        "data shard {} of {} of the checkpoint {}",
                        id + 1,
                        self.count,
                        self.index.display()
                    ),
                    error,
                }
            })?;
            self.loaded.insert(id, bytes);
        }
        Ok(self.loaded.get(&id).map(Vec::as_slice).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_over_one_range_of_a_shard_are_refused() {
        // Two float32 scalars both at offset 0 of a 4-byte shard: the second would be a copy
        // of the first's bytes (thousands of them, gigabytes from a small shard).
        let data = 1.5f32.to_le_bytes().to_vec();
        let entry = BundleEntryProto {
            dtype: 1,
            size: 4,
            crc32c: sstable::mask(sstable::crc32c(&data)),
            ..Default::default()
        };
        let mut shards = Shards {
            prefix: Path::new("ckpt"),
            index: Path::new("ckpt.index"),
            count: 1,
            loaded: HashMap::from([(0, data)]),
            used: HashMap::new(),
        };
        let first = shards.tensor("a", &entry, DType::F32, 4).unwrap();
        assert_eq!(first.to_vec0::<f32>().unwrap(), 1.5);
        let error = shards
            .tensor("b", &entry, DType::F32, 4)
            .unwrap_err()
            .to_string();
        assert!(error.contains("their ranges overlap"), "{error}");
    }
}
