//! Writing a stack as PyTorch reads it: a `torch.save` zip of `torch.nn.RNN`'s state_dict,
//! which `rnn.load_state_dict(torch.load(path, weights_only=True))` loads, with the
//! constructor call that builds the module it fits ([`TorchRnn`]).
//!
//! The archive is what `torch.save` writes (PyTorch's `serialization.py`, format version 3):
//! under one folder, `data.pkl` (a protocol-2 pickle of an `OrderedDict` of tensors, each
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`
//! with its storage by persistent id `("storage", torch.FloatStorage, key, "cpu", numel)`),
//! `data/<key>` (each storage's little-endian bytes, stored at a 64-byte boundary),
//! `byteorder`, `version`, `.format_version` and `.storage_alignment`. Only the opcodes and
//! globals that `weights_only=True` allows are written. The bytes depend on nothing but the
//! weights (entries dated 1980-01-01), so the same model always gives the same file.

use std::io::{Cursor, Write};
use std::path::Path;

use candle_core::{DType, Tensor};
use rnn_core::{LayerWeights, MaskedSteps, MergeMode, Nonlinearity, TimeOrder};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::canonical::state_dict;
use crate::config::StackConfig;
use crate::error::{Result, WeightsError};
use crate::write::write_atomically;

/// The `torch.nn.RNN` a state_dict fits, as its constructor takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchRnn {
    /// Features per input step.
    pub input_size: usize,
    /// Neurons per layer (one for every layer, as `nn.RNN` has).
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// `"tanh"` or `"relu"`.
    pub nonlinearity: Nonlinearity,
    /// Whether the layers have biases.
    pub bias: bool,
    /// Whether sequence inputs are `[batch, seq, features]`.
    pub batch_first: bool,
    /// Whether every layer runs both directions.
    pub bidirectional: bool,
    /// The parameters' element type: float32 (`nn.RNN`'s default) or float64.
    pub dtype: DType,
}

impl std::fmt::Display for TorchRnn {
    /// The Python that builds the module: `torch.nn.RNN(input_size=3, hidden_size=5, …)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let py = |b: bool| if b { "True" } else { "False" };
        write!(
            f,
            "torch.nn.RNN(input_size={}, hidden_size={}, num_layers={}, nonlinearity='{}', \
             bias={}, batch_first={}, bidirectional={}",
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.nonlinearity,
            py(self.bias),
            py(self.batch_first),
            py(self.bidirectional)
        )?;
        // load_state_dict would round float64 weights into float32 parameters, silently.
        if self.dtype == DType::F64 {
            f.write_str(", dtype=torch.float64")?;
        }
        f.write_str(")")
    }
}

/// The `torch.nn.RNN` that `weights` with `config` are, or why there is none: each option
/// `nn.RNN` cannot express is refused by name, never dropped.
///
/// # Errors
/// [`WeightsError::Unwritable`] naming the option (an activation other than tanh or relu,
/// one that differs between layers or directions, `clip`, `go_backwards` or `reverse`, a merge
/// mode other than concat, Keras's repeated outputs past a sequence's length, a mask, hidden
/// sizes or directions that differ between layers).
pub fn torch_rnn(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
) -> Result<TorchRnn> {
    let refuse = |what: String, advice: &str| WeightsError::Unwritable {
        path: path.to_owned(),
        format: "a PyTorch nn.RNN state_dict",
        reason: format!("nn.RNN cannot express {what}; {advice}"),
    };
    if weights.first().is_none_or(Vec::is_empty) {
        return Err(refuse(
            "no layers".into(),
            "give it the weights of one layer at least",
        ));
    }
    let layers = config.layers_for(weights.len()).ok_or_else(|| {
        refuse(
            format!(
                "{} layer configurations for {} layers",
                config.layers.len(),
                weights.len()
            ),
            "give one configuration per layer",
        )
    })?;
    let first = &layers[0];
    let directions = weights[0].len();
    let hidden = weights[0][0].w_hh.dims()[0];
    if !matches!(first.nonlinearity, Nonlinearity::Tanh | Nonlinearity::Relu) {
        return Err(refuse(
            format!("activation {}", first.nonlinearity),
            "it computes tanh or relu; write a .safetensors file, which records any activation",
        ));
    }
    for (k, (layer, dirs)) in layers.iter().zip(weights).enumerate() {
        let differs = |what: &str, value: String| {
            Err(refuse(
                format!("{what} {value} at layer {k}"),
                "its options are one for every layer and direction; write a .safetensors file",
            ))
        };
        if layer.nonlinearity != first.nonlinearity {
            return differs("activation", layer.nonlinearity.to_string());
        }
        if dirs.len() == 2 && layer.nonlinearity_reverse != first.nonlinearity {
            return differs(
                "reverse direction's activation",
                layer.nonlinearity_reverse.to_string(),
            );
        }
        if let Some(clip) = layer.clip {
            return Err(refuse(
                format!("ONNX's clip ({clip} at layer {k})"),
                "it does not clamp its pre-activations; write a .safetensors file",
            ));
        }
        if layer.time != TimeOrder::Forward {
            return Err(refuse(
                format!("{} (layer {k})", layer.time.as_str()),
                "its one-direction layers read forward; write a .safetensors file",
            ));
        }
        if dirs.len() == 2 && layer.merge_mode != MergeMode::Concat {
            return differs("merge_mode", layer.merge_mode.as_str().into());
        }
        if dirs.len() != directions {
            return differs("directions", dirs.len().to_string());
        }
        if dirs[0].w_hh.dims()[0] != hidden {
            return differs("hidden size", dirs[0].w_hh.dims()[0].to_string());
        }
    }
    if let Some(value) = config.mask_value {
        return Err(refuse(
            format!("a Keras Masking layer (mask value {value}) before it"),
            "it has no mask; write a .safetensors file, which records it",
        ));
    }
    if let Some(layer) = &config.input_mask {
        return Err(refuse(
            format!("a mask made before it at {layer}"),
            "it has no mask; write a .safetensors file, which records it",
        ));
    }
    if config.masked_steps != MaskedSteps::Zeros {
        return Err(refuse(
            "Keras's outputs past a sequence's length (masked steps repeat-last)".into(),
            "PyTorch's packed sequences give zeros there; pass --masked-steps zeros to accept \
             that, or write a .safetensors file",
        ));
    }
    let cell = &weights[0][0];
    // nn.RNN's `bias` is one flag: set where any cell has a bias (the others get zeros).
    let bias = weights
        .iter()
        .flatten()
        .any(|w| w.b_ih.is_some() || w.b_hh.is_some());
    Ok(TorchRnn {
        input_size: cell.w_ih.dims()[1],
        hidden_size: hidden,
        num_layers: weights.len(),
        nonlinearity: first.nonlinearity,
        bias,
        batch_first: config.batch_first.unwrap_or(false),
        bidirectional: directions == 2,
        dtype: cell.w_ih.dtype(),
    })
}

/// Writes `weights` with `config` at `path` as a `torch.save` zip of `nn.RNN`'s state_dict
/// (`weight_ih_l0`, …, in `nn.RNN`'s order), and returns the module it fits. A cell without
/// one of its biases (Keras's one `bias` is kept as `b_ih`; a layer with `use_bias=False` in a
/// stack whose other layers have one) gets zeros there: adding them changes no bit. Written
/// atomically, as every file `rnn` writes.
///
/// # Errors
/// As [`torch_rnn`]; weights that do not form the stack ([`StackConfig::build`]); a dtype
/// other than float32 and float64; an I/O error.
pub fn save_torch(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
) -> Result<TorchRnn> {
    let module = torch_rnn(path, weights, config)?;
    // The weights must form the stack first (sizes from layer to layer, dtypes).
    config.check_writable(path, weights)?;
    let entries = state_dict(weights, module.bias).map_err(|error| WeightsError::Tensor {
        path: path.to_owned(),
        error,
    })?;
    let bytes = archive(path, &entries)?;
    write_atomically(path, &bytes).map_err(|error| WeightsError::Io {
        path: path.to_owned(),
        error,
    })?;
    Ok(module)
}

/// The archive's folder: `torch.save` names it after the file; one fixed name keeps the bytes
/// independent of where the file is written (`torch.load` takes any).
const FOLDER: &str = "archive";

/// The zip `torch.save` would write for this state_dict.
fn archive(path: &Path, entries: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let malformed = |reason: String| WeightsError::Unwritable {
        path: path.to_owned(),
        format: "a torch.save archive",
        reason,
    };
    let mut storages = Vec::with_capacity(entries.len());
    for (name, tensor) in entries {
        let (class, bytes) = match tensor.dtype() {
            DType::F32 => ("FloatStorage", le_bytes(tensor, |v: f32| v.to_le_bytes())),
            DType::F64 => ("DoubleStorage", le_bytes(tensor, |v: f64| v.to_le_bytes())),
            other => {
                return Err(malformed(format!(
                    "tensor `{name}` is {other:?}; rnn writes float32 and float64 state_dicts"
                )))
            }
        };
        let bytes = bytes.map_err(|error| WeightsError::Tensor {
            path: path.to_owned(),
            error,
        })?;
        storages.push((class, bytes));
    }
    let pickle = state_dict_pickle(entries, &storages);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    let mut put = |name: String, bytes: &[u8], aligned: bool| -> std::io::Result<()> {
        let options = if aligned {
            options.with_alignment(64)
        } else {
            options
        };
        zip.start_file(name, options)?;
        zip.write_all(bytes)
    };
    let written = (|| -> std::io::Result<()> {
        put(format!("{FOLDER}/data.pkl"), &pickle, false)?;
        put(format!("{FOLDER}/.format_version"), b"1", false)?;
        put(format!("{FOLDER}/.storage_alignment"), b"64", false)?;
        put(format!("{FOLDER}/byteorder"), b"little", false)?;
        for (key, (_, bytes)) in storages.iter().enumerate() {
            put(format!("{FOLDER}/data/{key}"), bytes, true)?;
        }
        put(format!("{FOLDER}/version"), b"3\n", false)
    })();
    written.map_err(|e| malformed(e.to_string()))?;
    let cursor = zip.finish().map_err(|e| malformed(e.to_string()))?;
    Ok(cursor.into_inner())
}

/// A tensor's elements in row-major order as little-endian bytes.
fn le_bytes<T: candle_core::WithDType, const N: usize>(
    tensor: &Tensor,
    bytes: impl Fn(T) -> [u8; N],
) -> candle_core::Result<Vec<u8>> {
    let values = tensor.flatten_all()?.to_vec1::<T>()?;
    Ok(values.into_iter().flat_map(bytes).collect())
}

/// `OrderedDict([(name, _rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())),
/// …])` as a protocol-2 pickle, storage `k` being entry `k`'s.
fn state_dict_pickle(entries: &[(String, Tensor)], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]);
    p.global("collections", "OrderedDict");
    p.0.extend([b')', b'R', b'(']); // EMPTY_TUPLE, REDUCE, MARK
    for (key, ((name, tensor), (class, _))) in entries.iter().zip(storages).enumerate() {
        p.text(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.0.extend([b'(', b'(']); // the arguments, then the storage's persistent id
        p.text("storage");
        p.global("torch", class);
        p.text(&key.to_string());
        p.text("cpu");
        p.int(tensor.elem_count());
        p.0.extend([b't', b'Q']); // TUPLE, BINPERSID
        p.int(0);
        let dims = tensor.dims();
        let strides: Vec<usize> = (0..dims.len())
            .map(|i| dims[i + 1..].iter().product())
            .collect();
        p.tuple(dims);
        p.tuple(&strides);
        p.0.push(0x89); // NEWFALSE: requires_grad
        p.global("collections", "OrderedDict");
        p.0.extend([b')', b'R', b't', b'R']); // hooks = OrderedDict(); TUPLE; REDUCE
    }
    p.0.extend([b'u', b'.']); // SETITEMS, STOP
    p.0
}

/// A protocol-2 pickle being written.
struct Pickle(Vec<u8>);

impl Pickle {
    /// GLOBAL `module name`.
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend(module.as_bytes());
        self.0.push(b'\n');
        self.0.extend(name.as_bytes());
        self.0.push(b'\n');
    }

    /// BINUNICODE.
    fn text(&mut self, text: &str) {
        self.0.push(b'X');
        self.0.extend((text.len() as u32).to_le_bytes());
        self.0.extend(text.as_bytes());
    }

    /// BININT1, BININT2 or BININT (≤ 2³¹ − 1), else LONG1 (8 bytes).
    fn int(&mut self, value: usize) {
        if let Ok(v) = u8::try_from(value) {
            self.0.extend([b'K', v]);
        } else if let Ok(v) = u16::try_from(value) {
            self.0.push(b'M');
            self.0.extend(v.to_le_bytes());
        } else if let Ok(v) = i32::try_from(value) {
            self.0.push(b'J');
            self.0.extend(v.to_le_bytes());
        } else {
            self.0.extend([0x8a, 8]);
            self.0.extend((value as u64).to_le_bytes());
        }
    }

    /// A tuple of integers: EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3 or MARK … TUPLE.
    fn tuple(&mut self, values: &[usize]) {
        let small = [b')', 0x85, 0x86, 0x87];
        if values.len() > 3 {
            self.0.push(b'(');
        }
        for &v in values {
            self.int(v);
        }
        self.0.push(*small.get(values.len()).unwrap_or(&b't'));
    }
}
