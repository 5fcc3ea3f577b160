//! PyTorch's `torch.save` files holding a state_dict: the zip format (the default since
//! PyTorch 1.6) and the legacy one (`_use_new_zipfile_serialization=False`: a pickle stream
//! followed by the storages).
//!
//! The pickle is run by our own bounded machine (`pickle.rs`), not `candle_core::pickle`:
//! candle's reads only zip files, skips what it does not understand with a line on stderr
//! (a whole pickled module reads as no tensors at all) and can panic on malformed content.
//! A TorchScript archive, a pickled whole `nn.Module` and any top object that is not a dict
//! of tensors are refused with what to save instead.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::pickle::{Machine, Node, Value};
use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

const SAVE_STATE_DICT: &str = "save the weights with torch.save(model.state_dict(), path)";

/// The legacy format's first pickle: `0x1950a86a20f9469cfc6c`, little-endian.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Reads a state_dict saved by `torch.save`.
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_owned(),
        kind: "PyTorch torch.save",
        reason,
    };
    let unsupported = |format: String, advice: &str| WeightsError::Unsupported {
        path: path.to_owned(),
        format,
        advice: advice.into(),
    };
    let (top, source) = if bytes.starts_with(b"PK") {
        open_zip(path, bytes)?
    } else {
        open_legacy(bytes).map_err(malformed)?
    };
    let Value::Dict(entries) = &top.value else {
        let mut globals = Vec::new();
        top.globals(&mut globals);
        let module = globals
            .iter()
            .any(|(m, _)| m.starts_with("torch.nn.modules") || m == "__main__");
        let format = if module {
            format!("a pickled whole module (torch.save(model): {})", top.kind())
        } else {
            format!(
                "a torch.save file whose top object is {}, not a dict of tensors",
                top.kind()
            )
        };
        return Err(unsupported(format, SAVE_STATE_DICT));
    };
    let mut found = Found::default();
    found
        .collect(entries, "")
        .map_err(|refusal| match refusal {
            Refusal::Malformed(reason) => malformed(reason),
            Refusal::Unsupported(format) => unsupported(format, SAVE_STATE_DICT),
        })?;
    let Found {
        tensors: infos,
        skipped,
        ..
    } = found;
    if infos.is_empty() {
        return Err(unsupported(
            format!(
                "a torch.save dict without tensors (its entries: {})",
                skipped.join(", ")
            ),
            SAVE_STATE_DICT,
        ));
    }
    let storages = source.storages(&infos).map_err(malformed)?;
    // A tensor that is a whole storage shares it with every other entry that is; parts are
    // copied, contiguous ones as one slice. The tensors together may hold at most 4
    // bytes per byte of the file, plus 64 MiB: views of one storage, however many, cannot
    // describe a model many times the file's size (every layer of which would later be
    // prepared, and copied, on its own).
    let mut whole: HashMap<&str, Tensor> = HashMap::new();
    let mut budget = bytes.len().saturating_mul(4).saturating_add(64 << 20);
    let mut tensors = BTreeMap::new();
    let mut unloadable = BTreeMap::new();
    for (name, info) in &infos {
        let Some(dtype) = info.dtype else {
            unloadable.insert(name.clone(), info.storage_type.clone());
            continue;
        };
        let storage = storages.get(&info.key).ok_or_else(|| {
            malformed(format!(
                "tensor `{name}`: its storage `{}` is not in the file",
                info.key
            ))
        })?;
        if !crate::header_checks::strides_fit(&info.size) {
            return Err(malformed(format!(
                "tensor `{name}`: shape {:?} overflows",
                info.size
            )));
        }
        let tensor_bytes = info
            .size
            .iter()
            .try_fold(info.element_size, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX);
        budget = budget.checked_sub(tensor_bytes).ok_or_else(|| {
            malformed(format!(
                "tensor `{name}`: the tensors so far hold more than 4 bytes per byte of the \
                 file plus 64 MiB (entries that view the same storage again and again, or \
                 shapes larger than their storages)"
            ))
        })?;
        let storage_len = storage.len() / info.element_size;
        let tensor = match info.contiguous_numel() {
            // The whole storage: one tensor, shared by every entry that is all of it.
            Some(numel) if info.offset == 0 && numel == storage_len => {
                let base = match whole.get(info.key.as_str()) {
                    Some(base) => base.clone(),
                    None => {
                        let bytes = &storage[..storage_len * info.element_size];
                        let base =
                            Tensor::from_raw_buffer(bytes, dtype, &[storage_len], &Device::Cpu)
                                .map_err(|e| malformed(format!("tensor `{name}`: {e}")))?;
                        whole.insert(info.key.as_str(), base.clone());
                        base
                    }
                };
                base.reshape(info.size.as_slice())
                    .map_err(|e| e.to_string())
            }
            // A contiguous part: its own bytes, copied once, so that a tensor moved to a GPU
            // later carries its elements and not the storage (cuDNN's flatten_parameters
            // keeps all of a module's weights in one).
            Some(numel) => info.slice(storage, numel, dtype),
            None => info.gather(storage, dtype),
        };
        let tensor = tensor.map_err(|reason| malformed(format!("tensor `{name}`: {reason}")))?;
        tensors.insert(name.clone(), tensor);
    }
    let computed = super::reparametrised::compute(&mut tensors).map_err(|reason| {
        WeightsError::Unsupported {
            path: path.to_owned(),
            format: "a reparametrised weight".into(),
            advice: reason,
        }
    })?;
    let mut metadata = HashMap::new();
    if !skipped.is_empty() {
        metadata.insert("skipped".to_string(), skipped.join(","));
    }
    Ok(TensorFile::from_tensors(path, tensors, metadata)
        .with_unloadable(unloadable)
        .with_aliases(computed))
}

/// What a `torch.save` dict holds: its tensors by name, and the names of the other entries.
#[derive(Default)]
struct Found {
    tensors: Vec<(String, TensorInfo)>,
    /// Entries that are neither tensors nor dicts (a checkpoint's `epoch` and `loss`, an
    /// optimizer's `param_groups`), with what they are.
    skipped: Vec<String>,
    /// Every name given so far, nested or not.
    names: std::collections::HashSet<String>,
}

/// Why a dict is not read.
enum Refusal {
    Malformed(String),
    Unsupported(String),
}

impl Found {
    /// The entries of a dict, named under `prefix`. A dict inside (a checkpoint's
    /// `model_state_dict`, an optimizer's state) is read too, its entries named
    /// `outer.inner` as torch names a submodule's: `torch.save({"epoch": 3,
    /// "model_state_dict": model.state_dict(), ...})` gives `model_state_dict.rnn.weight_ih_l0`,
    /// which the naming finds as any prefixed RNN (and refuses to choose between two, naming
    /// the `--prefix` of each). A pickled module anywhere is refused: its weights are not a
    /// dict of tensors and rnn does not run code.
    fn collect(
        &mut self,
        entries: &[(Node, Node)],
        prefix: &str,
    ) -> std::result::Result<(), Refusal> {
        for (key, value) in entries {
            let name = match (key.as_str(), key.as_int()) {
                (Some(s), _) => format!("{prefix}{s}"),
                (None, Some(i)) => format!("{prefix}{i}"),
                _ => {
                    self.skip(format!("{prefix}… ({} as a key)", key.kind()));
                    continue;
                }
            };
            if !self.names.insert(name.clone()) {
                return Err(Refusal::Malformed(format!(
                    "two entries are both named `{}` (one nested, one with a dot in its key)",
                    crate::error::clip(&name, crate::error::QUOTED_CHARS)
                )));
            }
            if let Some(info) = tensor_info(value) {
                let info = info.map_err(|reason| {
                    Refusal::Malformed(format!(
                        "tensor `{}`: {reason}",
                        crate::error::clip(&name, crate::error::QUOTED_CHARS)
                    ))
                })?;
                self.tensors.push((name, info));
                continue;
            }
            if let Value::Dict(inner) = &value.value {
                self.collect(inner, &format!("{name}."))?;
                continue;
            }
            // A module pickled whole names torch.nn's classes (a class of the user's own holds
            // them in its `_modules`); other objects (a config dataclass, a scheduler's state)
            // are left out.
            let mut globals = Vec::new();
            value.globals(&mut globals);
            if globals
                .iter()
                .any(|(m, _)| m.starts_with("torch.nn.modules"))
            {
                return Err(Refusal::Unsupported(format!(
                    "a torch.save dict whose entry `{}` is a pickled whole module ({})",
                    crate::error::clip(&name, crate::error::QUOTED_CHARS),
                    value.kind()
                )));
            }
            self.skip(format!("{name} ({})", value.kind()));
        }
        Ok(())
    }

    fn skip(&mut self, what: String) {
        if self.skipped.len() < 1000 {
            self.skipped.push(what);
        }
    }
}

/// Where the storages are.
enum Source<'a> {
    /// The zip format: `<dir>data/<key>` entries.
    Zip {
        archive: Box<zip::ZipArchive<std::io::Cursor<&'a [u8]>>>,
        dir: String,
        /// The archive's length in bytes.
        file_len: usize,
    },
    /// The legacy format: after the pickles, in the order of `keys`, each storage as its
    /// element count (u64, little-endian) and its elements.
    Legacy {
        bytes: &'a [u8],
        keys: Vec<String>,
        start: usize,
    },
}

impl Source<'_> {
    /// The bytes of every storage the tensors use, each checked to hold the elements its
    /// persistent id says before anything is allocated for it.
    fn storages(
        self,
        infos: &[(String, TensorInfo)],
    ) -> std::result::Result<HashMap<String, Vec<u8>>, String> {
        let mut wanted: HashMap<&str, (usize, u64, &str)> = HashMap::new();
        for (name, info) in infos {
            let entry = (
                info.element_size,
                info.storage_len,
                info.storage_type.as_str(),
            );
            match wanted.insert(info.key.as_str(), entry) {
                Some(other) if other != entry => {
                    return Err(format!(
                        "tensor `{name}`: storage `{}` is used with two element types or sizes \
                         (torch.save writes each storage with one)",
                        info.key
                    ))
                }
                _ => {}
            }
        }
        let mut out = HashMap::new();
        match self {
            Source::Zip {
                mut archive,
                dir,
                file_len,
            } => {
                // torch.save stores its storages uncompressed, so each fits in the file; a
                // deflated one may unpack to 16 times the file (plus 64 MiB), no more.
                let left = (file_len as u64)
                    .saturating_mul(16)
                    .saturating_add(64 << 20);
                for (key, (size, count, _)) in wanted {
                    let len = byte_len(key, size, count, left)?;
                    let name = format!("{dir}data/{key}");
                    let data = read_entry(&mut archive, &name, len)?;
                    if data.len() < len {
                        return Err(format!(
                            "storage `{key}` holds {} bytes where its {count} elements need {len}",
                            data.len()
                        ));
                    }
                    out.insert(key.to_string(), data);
                }
            }
            Source::Legacy { bytes, keys, start } => {
                let mut pos = start;
                for key in keys {
                    let count = bytes
                        .get(pos..pos.saturating_add(8))
                        .ok_or_else(|| format!("the file ends before storage `{key}`"))?;
                    let mut le = [0u8; 8];
                    le.copy_from_slice(count);
                    let count = u64::from_le_bytes(le);
                    pos += 8;
                    let Some(&(size, _, _)) = wanted.get(key.as_str()) else {
                        return Err(format!("storage `{key}` is used by no tensor"));
                    };
                    let len = byte_len(&key, size, count, (bytes.len() - pos) as u64)?;
                    out.insert(key, bytes[pos..pos + len].to_vec());
                    pos += len;
                }
            }
        }
        Ok(out)
    }
}

/// The bytes of `count` elements of `size` bytes, at most `left`.
fn byte_len(key: &str, size: usize, count: u64, left: u64) -> std::result::Result<usize, String> {
    count
        .checked_mul(size as u64)
        .filter(|&n| n <= left)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            format!(
                "storage `{key}` claims {count} elements of {size} bytes, more than the {left} \
                 bytes left"
            )
        })
}

/// The zip format: `<dir>data.pkl` and the storages as `<dir>data/<key>`.
fn open_zip<'a>(path: &Path, bytes: &'a [u8]) -> Result<(Node, Source<'a>)> {
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_owned(),
        kind: "PyTorch torch.save",
        reason,
    };
    let mut archive = crate::npz::zip_archive(bytes).map_err(|e| malformed(format!("zip: {e}")))?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let script = names
        .iter()
        .any(|n| n.contains("/code/") || n.starts_with("code/") || n.ends_with("constants.pkl"));
    if script {
        return Err(WeightsError::Unsupported {
            path: path.to_owned(),
            format: "a TorchScript archive (torch.jit.save: it holds code/ and constants.pkl)"
                .into(),
            advice: format!(
                "{SAVE_STATE_DICT} before scripting, or from the loaded script \
                 (torch.jit.load(path).state_dict())"
            ),
        });
    }
    let Some(pickle) = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") || n.as_str() == "data.pkl")
    else {
        return Err(malformed("a zip archive without data.pkl".into()));
    };
    let dir = pickle
        .strip_suffix("data.pkl")
        .unwrap_or_default()
        .to_string();
    let byteorder = format!("{dir}byteorder");
    if names.contains(&byteorder) {
        let order = read_entry(&mut archive, &byteorder, 16).map_err(malformed)?;
        if order != b"little" {
            return Err(malformed(format!(
                "byteorder {:?}: only little-endian files are read",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let pickle_bytes = read_entry(&mut archive, pickle, bytes.len()).map_err(malformed)?;
    let top = Machine::new(&pickle_bytes)
        .load()
        .map_err(|r| malformed(format!("data.pkl: {r}")))?;
    Ok((
        top,
        Source::Zip {
            archive: Box::new(archive),
            dir,
            file_len: bytes.len(),
        },
    ))
}

/// An entry of at most `limit` bytes, read whole (a longer one is cut at `limit`).
fn read_entry(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    limit: usize,
) -> std::result::Result<Vec<u8>, String> {
    let entry = archive
        .by_name(name)
        .map_err(|e| format!("zip entry {name}: {e}"))?;
    let mut out = Vec::with_capacity(limit.min(entry.size().min(1 << 30) as usize));
    entry
        .take(limit as u64)
        .read_to_end(&mut out)
        .map_err(|e| format!("zip entry {name}: {e}"))?;
    Ok(out)
}

/// The legacy format: pickles of the magic number, the protocol version (1001), the system's
/// description, the object, and the storage keys; then the storages.
fn open_legacy(bytes: &[u8]) -> std::result::Result<(Node, Source<'_>), String> {
    let mut machine = Machine::new(bytes);
    let magic = machine.load()?;
    if magic.value != Value::BigInt(LEGACY_MAGIC.to_vec()) {
        return Err(format!(
            "a pickle that does not start with torch.save's magic number (it starts with {})",
            magic.kind()
        ));
    }
    let protocol = machine.load()?;
    if protocol.as_int() != Some(1001) {
        return Err(format!(
            "legacy format version {}, expected 1001",
            protocol.kind()
        ));
    }
    let system = machine.load()?;
    if let Value::Dict(items) = &system.value {
        let little = items
            .iter()
            .find(|(k, _)| k.as_str() == Some("little_endian"))
            .map(|(_, v)| v.value == Value::Bool(true));
        if little == Some(false) {
            return Err(
                "written on a big-endian machine: only little-endian files are read".into(),
            );
        }
    }
    let top = machine.load()?;
    let list = machine.load()?;
    let keys = list
        .as_tuple()
        .ok_or_else(|| format!("the storage keys are {}, not a list", list.kind()))?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("a storage key that is {}", k.kind()))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((
        top,
        Source::Legacy {
            bytes,
            keys,
            start: machine.pos,
        },
    ))
}

/// A tensor as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` would
/// build it.
struct TensorInfo {
    key: String,
    storage_type: String,
    /// `None` for element types candle does not hold (bool, int8, ...).
    dtype: Option<DType>,
    element_size: usize,
    /// Elements in the storage, as its persistent id says.
    storage_len: u64,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// `None` when the value is not a tensor at all; an error when it is one, malformed.
fn tensor_info(value: &Node) -> Option<std::result::Result<TensorInfo, String>> {
    let Value::Call { callable, args } = &value.value else {
        return None;
    };
    let args = args.as_tuple()?;
    match callable.global()? {
        ("torch._utils", "_rebuild_parameter") => tensor_info(args.first()?),
        ("torch._utils", "_rebuild_tensor_v2") => Some(rebuild_args(args)),
        _ => None,
    }
}

fn rebuild_args(args: &[Node]) -> std::result::Result<TensorInfo, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(format!(
            "_rebuild_tensor_v2 with {} arguments, expected at least 4",
            args.len()
        ));
    };
    let Value::Persistent(id) = &storage.value else {
        return Err(format!(
            "its storage is {}, not a persistent id",
            storage.kind()
        ));
    };
    let id = id.as_tuple().unwrap_or_default();
    let [kind, class, key, _location, count, rest @ ..] = id else {
        return Err("a storage id that is not ('storage', type, key, location, size)".into());
    };
    if kind.as_str() != Some("storage") {
        return Err(format!("a persistent id of kind {}", kind.kind()));
    }
    if rest.first().is_some_and(|v| v.value != Value::None) {
        return Err("a storage view (legacy view_metadata), which is not read".into());
    }
    let (_, storage_type) = class
        .global()
        .ok_or_else(|| format!("a storage type that is {}", class.kind()))?;
    let key = key
        .as_str()
        .ok_or_else(|| format!("a storage key that is {}", key.kind()))?;
    let (dtype, element_size) = match storage_type {
        "FloatStorage" => (Some(DType::F32), 4),
        "DoubleStorage" => (Some(DType::F64), 8),
        "HalfStorage" => (Some(DType::F16), 2),
        "BFloat16Storage" => (Some(DType::BF16), 2),
        "LongStorage" => (Some(DType::I64), 8),
        "IntStorage" => (Some(DType::I32), 4),
        "ShortStorage" => (Some(DType::I16), 2),
        "ByteStorage" => (Some(DType::U8), 1),
        "BoolStorage" | "CharStorage" => (None, 1),
        other => return Err(format!("storage type {other}, which rnn does not read")),
    };
    let count = count
        .as_int()
        .and_then(|c| u64::try_from(c).ok())
        .ok_or_else(|| format!("a storage size that is {}", count.kind()))?;
    let ints = |node: &Node, what: &str| {
        node.as_tuple()
            .ok_or_else(|| format!("its {what} is {}, not a tuple", node.kind()))?
            .iter()
            .map(|d| match d.as_int() {
                Some(n) => usize::try_from(n)
                    .map_err(|_| format!("its {what} holds {n}; a {what} is at least 0 in torch")),
                None => Err(format!("its {what} holds {}", d.kind())),
            })
            .collect::<std::result::Result<Vec<usize>, String>>()
    };
    let size = ints(size, "size")?;
    let stride = ints(stride, "stride")?;
    if size.len() != stride.len() {
        return Err(format!(
            "size {size:?} and stride {stride:?} of different ranks"
        ));
    }
    let offset = offset
        .as_int()
        .and_then(|o| usize::try_from(o).ok())
        .ok_or_else(|| format!("a storage offset that is {}", offset.kind()))?;
    Ok(TensorInfo {
        key: key.to_string(),
        storage_type: storage_type.to_string(),
        dtype,
        element_size,
        storage_len: count,
        offset,
        size,
        stride,
    })
}

impl TensorInfo {
    /// The element count when the tensor is a contiguous, row-major run of its storage (its
    /// strides those of its shape, as every tensor torch did not view strided has); `None`
    /// otherwise.
    fn contiguous_numel(&self) -> Option<usize> {
        let mut expected = 1usize;
        for (&d, &s) in self.size.iter().zip(&self.stride).rev() {
            if d != 1 && s != expected {
                return None;
            }
            expected = expected.checked_mul(d)?;
        }
        Some(expected)
    }

    /// The contiguous tensor's `numel` elements, copied from its storage's bytes.
    fn slice(
        &self,
        storage: &[u8],
        numel: usize,
        dtype: DType,
    ) -> std::result::Result<Tensor, String> {
        let storage_len = storage.len() / self.element_size;
        let end = self
            .offset
            .checked_add(numel)
            .filter(|&end| end <= storage_len)
            .ok_or_else(|| {
                format!(
                    "offset {} and shape {:?} reach past its storage's {storage_len} elements",
                    self.offset, self.size
                )
            })?;
        let bytes = &storage[self.offset * self.element_size..end * self.element_size];
        Tensor::from_raw_buffer(bytes, dtype, &self.size, &Device::Cpu).map_err(|e| e.to_string())
    }

    /// The tensor's elements gathered from its storage by offset and strides, every index
    /// checked to fall inside the storage.
    fn gather(&self, storage: &[u8], dtype: DType) -> std::result::Result<Tensor, String> {
        let storage_len = storage.len() / self.element_size;
        let numel = self
            .size
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= storage_len.max(1))
            .ok_or_else(|| {
                format!(
                    "shape {:?} holds more elements than its storage's {storage_len}",
                    self.size
                )
            })?;
        let bytes = numel * self.element_size;
        let mut out = Vec::with_capacity(bytes);
        let mut index = vec![0usize; self.size.len()];
        for _ in 0..numel {
            let at = index
                .iter()
                .zip(&self.stride)
                .try_fold(self.offset, |a, (&i, &s)| {
                    i.checked_mul(s).and_then(|d| a.checked_add(d))
                })
                .filter(|&a| a < storage_len)
                .ok_or_else(|| {
                    format!(
                        "offset {} and strides {:?} reach past its storage's {storage_len} \
                         elements",
                        self.offset, self.stride
                    )
                })?;
            let start = at * self.element_size;
            out.extend_from_slice(&storage[start..start + self.element_size]);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < self.size[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Tensor::from_raw_buffer(&out, dtype, &self.size, &Device::Cpu).map_err(|e| e.to_string())
    }
}
