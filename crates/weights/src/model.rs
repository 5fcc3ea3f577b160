//! Recognising RNN weights by their tensor names and bringing them to the canonical layout
//! (PyTorch's), and saving that layout with its configuration.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};
use rnn_core::{LayerWeights, Nonlinearity};

use crate::error::{Result, WeightsError};
use crate::file::{write_safetensors, TensorFile};

/// The naming scheme a weights file was recognised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `torch.nn.RNN`'s state_dict (`weight_ih_l0`, ...): the canonical layout.
    Pytorch,
    /// The tutorial's `Wx` `[input, hidden]`, `Wy` `[hidden, hidden]`, `b` `[1, hidden]`.
    Article,
}

impl Format {
    /// Its name in messages and metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pytorch => "pytorch",
            Format::Article => "article",
        }
    }
}

/// How one tensor of the file became part of the canonical weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMapping {
    /// The name in the file.
    pub source: String,
    /// The canonical (PyTorch) name.
    pub target: String,
    /// What was done to it: `"as is"`, `"transposed"`, `"reshaped to [H]"`.
    pub transform: &'static str,
}

/// RNN weights read from a file, in the canonical layout.
#[derive(Debug, Clone)]
pub struct Model {
    /// The naming scheme the file was recognised by.
    pub format: Format,
    /// `weights[k][d]`: layer `k`, direction `d` (0 forward, 1 reverse).
    pub weights: Vec<Vec<LayerWeights>>,
    /// The activation the file's metadata names, if it names one.
    pub nonlinearity: Option<Nonlinearity>,
    /// Whether the file's metadata says inputs are batch-first, if it says.
    pub batch_first: Option<bool>,
    /// Where each canonical tensor came from.
    pub mapping: Vec<TensorMapping>,
}

/// Metadata keys written by [`save_canonical`] and read back by [`Model::from_file`].
mod key {
    pub const LAYOUT: &str = "layout";
    pub const INPUT_SIZE: &str = "input_size";
    pub const HIDDEN_SIZE: &str = "hidden_size";
    pub const NUM_LAYERS: &str = "num_layers";
    pub const BIDIRECTIONAL: &str = "bidirectional";
    pub const BIAS: &str = "bias";
    pub const NONLINEARITY: &str = "nonlinearity";
    pub const BATCH_FIRST: &str = "batch_first";
}

/// The value of [`key::LAYOUT`] in files this crate writes.
pub const CANONICAL_LAYOUT: &str = "rnn/pytorch-v1";

impl Model {
    /// Reads a weights file and recognises its format by tensor names.
    pub fn read(path: &Path, dtype: DType) -> Result<Self> {
        Self::from_file(&TensorFile::read(path)?, dtype)
    }

    /// Recognises the format of an already read file; weights are converted to `dtype`.
    pub fn from_file(file: &TensorFile, dtype: DType) -> Result<Self> {
        let mut model = if file.contains("weight_ih_l0") {
            read_pytorch(file, dtype)?
        } else if file.contains("Wx") || file.contains("Wy") {
            read_article(file, dtype)?
        } else {
            return Err(WeightsError::Unrecognised {
                path: file.path().to_owned(),
                what: "no RNN weights recognised: expected PyTorch nn.RNN names \
                       (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0) or the article's \
                       (Wx, Wy, b)"
                    .into(),
                found: file.names(),
            });
        };
        model.read_metadata(file)?;
        Ok(model)
    }

    /// The names of the file's tensors that this model uses.
    pub fn source_names(&self) -> Vec<&str> {
        self.mapping.iter().map(|m| m.source.as_str()).collect()
    }

    /// Features per input step.
    pub fn input_size(&self) -> usize {
        self.weights[0][0].w_ih.dims()[1]
    }

    /// Hidden size of each layer.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        self.weights.iter().map(|l| l[0].w_hh.dims()[0]).collect()
    }

    /// 2 when bidirectional, else 1.
    pub fn num_directions(&self) -> usize {
        self.weights[0].len()
    }

    /// Whether the layers have a bias.
    pub fn has_bias(&self) -> bool {
        self.weights[0][0].b_ih.is_some() || self.weights[0][0].b_hh.is_some()
    }

    fn read_metadata(&mut self, file: &TensorFile) -> Result<()> {
        let meta = file.metadata();
        let bad = |key: &str, expected: &str, found: &str| WeightsError::Metadata {
            path: file.path().to_owned(),
            key: key.into(),
            expected: expected.into(),
            found: found.into(),
        };
        if let Some(v) = meta.get(key::NONLINEARITY) {
            let n = Nonlinearity::from_name(v)
                .ok_or_else(|| bad(key::NONLINEARITY, "\"tanh\" or \"relu\"", v))?;
            self.nonlinearity = Some(n);
        }
        if let Some(v) = meta.get(key::BATCH_FIRST) {
            let b = v
                .parse()
                .map_err(|_| bad(key::BATCH_FIRST, "\"true\" or \"false\"", v))?;
            self.batch_first = Some(b);
        }
        Ok(())
    }
}

fn read_pytorch(file: &TensorFile, dtype: DType) -> Result<Model> {
    let bidirectional = file.contains("weight_ih_l0_reverse");
    let suffixes: &[&str] = if bidirectional {
        &["", "_reverse"]
    } else {
        &[""]
    };
    let mut weights = Vec::new();
    let mut mapping = Vec::new();
    let mut input_size = None;
    for k in 0.. {
        if k > 0 && !file.contains(&format!("weight_ih_l{k}")) {
            break;
        }
        let mut dirs = Vec::new();
        for suffix in suffixes {
            let name = |kind: &str| format!("{kind}_l{k}{suffix}");
            let w_ih = file.float(&name("weight_ih"), dtype)?;
            let hidden = match w_ih.dims() {
                &[h, i] if input_size.is_none_or(|want| want == i) => h,
                found => {
                    let expected = match input_size {
                        Some(i) => format!("[hidden, {i}] (the previous layer's output size)"),
                        None => "[hidden, input]".into(),
                    };
                    return Err(file.shape_error(&name("weight_ih"), expected, found));
                }
            };
            let w_hh = file.float(&name("weight_hh"), dtype)?;
            if w_hh.dims() != [hidden, hidden] {
                let expected = format!("[{hidden}, {hidden}] (hidden from weight_ih)");
                return Err(file.shape_error(&name("weight_hh"), expected, w_hh.dims()));
            }
            let mut bias = |kind: &str| -> Result<Option<Tensor>> {
                let n = name(kind);
                let b = file.float_opt(&n, dtype)?;
                if let Some(b) = &b {
                    if b.dims() != [hidden] {
                        return Err(file.shape_error(&n, format!("[{hidden}]"), b.dims()));
                    }
                    mapping.push(as_is(&n));
                }
                Ok(b)
            };
            let (b_ih, b_hh) = (bias("bias_ih")?, bias("bias_hh")?);
            mapping.push(as_is(&name("weight_ih")));
            mapping.push(as_is(&name("weight_hh")));
            dirs.push(LayerWeights {
                w_ih,
                w_hh,
                b_ih,
                b_hh,
            });
        }
        input_size = Some(dirs.len() * dirs[0].w_hh.dims()[0]);
        weights.push(dirs);
    }
    mapping.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(Model {
        format: Format::Pytorch,
        weights,
        nonlinearity: None,
        batch_first: None,
        mapping,
    })
}

fn as_is(name: &str) -> TensorMapping {
    TensorMapping {
        source: name.into(),
        target: name.into(),
        transform: "as is",
    }
}

fn read_article(file: &TensorFile, dtype: DType) -> Result<Model> {
    let wx = file.float("Wx", dtype)?;
    let hidden = match wx.dims() {
        &[_, h] => h,
        found => return Err(file.shape_error("Wx", "[input, hidden]".into(), found)),
    };
    let wy = file.float("Wy", dtype)?;
    if wy.dims() != [hidden, hidden] {
        let expected = format!("[{hidden}, {hidden}] (hidden from Wx)");
        return Err(file.shape_error("Wy", expected, wy.dims()));
    }
    let mut mapping = vec![
        TensorMapping {
            source: "Wx".into(),
            target: "weight_ih_l0".into(),
            transform: "transposed",
        },
        TensorMapping {
            source: "Wy".into(),
            target: "weight_hh_l0".into(),
            transform: "transposed",
        },
    ];
    let b = match file.float_opt("b", dtype)? {
        Some(b) if b.dims() == [1, hidden] || b.dims() == [hidden] => {
            mapping.push(TensorMapping {
                source: "b".into(),
                target: "bias_ih_l0".into(),
                transform: "reshaped to [hidden]",
            });
            Some(b.reshape(hidden).map_err(|e| file.tensor_error(e))?)
        }
        Some(b) => {
            let expected = format!("[1, {hidden}] or [{hidden}]");
            return Err(file.shape_error("b", expected, b.dims()));
        }
        None => None,
    };
    let transpose = |t: &Tensor| t.t().and_then(|t| t.contiguous());
    let weights = LayerWeights {
        w_ih: transpose(&wx).map_err(|e| file.tensor_error(e))?,
        w_hh: transpose(&wy).map_err(|e| file.tensor_error(e))?,
        b_ih: b,
        b_hh: None,
    };
    Ok(Model {
        format: Format::Article,
        weights: vec![vec![weights]],
        nonlinearity: None,
        batch_first: None,
        mapping,
    })
}

/// Saves weights in the canonical layout (PyTorch's names) with the configuration in
/// `__metadata__`: `layout`, `input_size`, `hidden_size` (comma-separated, one per layer),
/// `num_layers`, `bidirectional`, `bias`, `nonlinearity` and, when known, `batch_first`.
/// Extra tensors (inputs, expected outputs) may be stored beside them.
pub fn save_canonical(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    nonlinearity: Nonlinearity,
    batch_first: Option<bool>,
    extra: &[(String, Tensor)],
) -> Result<()> {
    let Some(first) = weights.first().and_then(|l| l.first()) else {
        return Err(WeightsError::Unrecognised {
            path: path.to_owned(),
            what: "nothing to save: the model has no layers".into(),
            found: Vec::new(),
        });
    };
    let mut tensors = Vec::new();
    for (k, dirs) in weights.iter().enumerate() {
        for (d, w) in dirs.iter().enumerate() {
            let suffix = if d == 1 { "_reverse" } else { "" };
            tensors.push((format!("weight_ih_l{k}{suffix}"), w.w_ih.clone()));
            tensors.push((format!("weight_hh_l{k}{suffix}"), w.w_hh.clone()));
            if let Some(b) = &w.b_ih {
                tensors.push((format!("bias_ih_l{k}{suffix}"), b.clone()));
            }
            if let Some(b) = &w.b_hh {
                tensors.push((format!("bias_hh_l{k}{suffix}"), b.clone()));
            }
        }
    }
    tensors.extend(extra.iter().cloned());
    let hidden: Vec<String> = weights
        .iter()
        .map(|l| l[0].w_hh.dims()[0].to_string())
        .collect();
    let mut meta = HashMap::from([
        (key::LAYOUT.to_string(), CANONICAL_LAYOUT.to_string()),
        (key::INPUT_SIZE.into(), first.w_ih.dims()[1].to_string()),
        (key::HIDDEN_SIZE.into(), hidden.join(",")),
        (key::NUM_LAYERS.into(), weights.len().to_string()),
        (
            key::BIDIRECTIONAL.into(),
            (weights[0].len() == 2).to_string(),
        ),
        (
            key::BIAS.into(),
            (first.b_ih.is_some() || first.b_hh.is_some()).to_string(),
        ),
        (key::NONLINEARITY.into(), nonlinearity.as_str().to_string()),
    ]);
    if let Some(b) = batch_first {
        meta.insert(key::BATCH_FIRST.into(), b.to_string());
    }
    write_safetensors(path, &tensors, meta)
}
