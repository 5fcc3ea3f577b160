//! Keras 3's files: `model.save("m.keras")` (a zip of `config.json`, `metadata.json` and
//! `model.weights.h5`) and `model.save_weights("w.weights.h5")` (HDF5).
//!
//! Keras 3.15 stores a model's weights in HDF5 by the attributes that hold them:
//! `layers/<key>/cell/vars/0` (kernel), `/1` (recurrent_kernel), `/2` (bias) for a
//! `SimpleRNN`, `layers/<key>/forward_layer/cell/vars/…` and `backward_layer/…` for a
//! `Bidirectional`, each `vars` group carrying the layer's `name` as an attribute. `<key>` is
//! numbered per class within the model's list (`simple_rnn`, `simple_rnn_1`, `bidirectional`),
//! which says nothing about the order across classes; the layers' own names do, where they are
//! Keras's defaults. The weights are therefore named by the layers' own names as Keras
//! variable paths (`simple_rnn_1/simple_rnn_cell/kernel`), which `formats.rs` orders by
//! Keras's default numbering only. A `.keras` archive's `config.json` gives the order and the
//! options, recorded in the metadata.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use candle_core::{Device, Tensor};
use hdf5_pure::{AttrValue, DType as H5Type, File, Group};
use rnn_core::Nonlinearity;
use serde_json::Value;

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

/// The most a `config.json` may hold; Keras's are a few kilobytes per layer.
const MAX_CONFIG: u64 = 64 << 20;

/// Reads a `.keras` archive: weights and the options its config records.
pub(crate) fn read_archive(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_owned(),
        kind: ".keras",
        reason,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| malformed(format!("the zip archive does not open: {e}")))?;
    let mut entry = |name: &str, limit: u64| -> Result<Vec<u8>> {
        let file = archive
            .by_name(name)
            .map_err(|e| malformed(format!("expected an entry `{name}`, found none ({e})")))?;
        let size = file.size();
        if size > limit {
            return Err(malformed(format!(
                "expected `{name}` of at most {limit} bytes, found {size}"
            )));
        }
        let mut out = Vec::new();
        file.take(limit)
            .read_to_end(&mut out)
            .map_err(|e| malformed(format!("`{name}` does not unpack: {e}")))?;
        Ok(out)
    };
    let config = entry("config.json", MAX_CONFIG)?;
    // The weights are stored, not deflated, by Keras; a deflated entry still cannot unpack to
    // more than the size its header declares, checked against this bound.
    let weights = entry("model.weights.h5", 16 * bytes.len() as u64 + (1 << 20))?;
    let config: Value = serde_json::from_slice(&config)
        .map_err(|e| malformed(format!("config.json is not valid JSON: {e}")))?;
    let model = model_config(&config).map_err(|e| malformed(format!("config.json: {e}")))?;
    let (tensors, h5_layers) = read_h5(path, &weights)?;
    let metadata = model.metadata(&h5_layers).map_err(malformed)?;
    Ok(TensorFile::from_tensors(path, tensors, metadata))
}

/// Reads a `.weights.h5` file.
pub(crate) fn read_weights_h5(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let (tensors, layers) = read_h5(path, bytes)?;
    let mut metadata = HashMap::new();
    let others: Vec<&str> = layers
        .iter()
        .filter(|l| !l.recurrent)
        .map(|l| l.name.as_str())
        .collect();
    if !others.is_empty() {
        metadata.insert(NOT_RUN.to_string(), others.join(", "));
    }
    Ok(TensorFile::from_tensors(path, tensors, metadata))
}

/// Metadata key: the model's layers with weights that are not part of the RNN (the reader's
/// words, `name (Class)` or `name`); a file that records it is refused unless `--prefix` or
/// `--stack` picks the RNN.
pub const NOT_RUN: &str = "keras_not_run";
/// Metadata key: the RNN's layers, bottom first, as `--stack` prefixes.
pub const STACK: &str = "keras_stack";

/// One layer of the HDF5 file's `layers/` group.
#[derive(Debug)]
struct H5Layer {
    /// The layer's own name (its `vars` group's `name` attribute, else its key).
    name: String,
    /// Whether it is a `SimpleRNN` or a `Bidirectional` of them.
    recurrent: bool,
}

/// The weights of a Keras 3 HDF5 file under Keras variable paths, and its layers.
fn read_h5(path: &Path, bytes: &[u8]) -> Result<(BTreeMap<String, Tensor>, Vec<H5Layer>)> {
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_owned(),
        kind: "Keras HDF5",
        reason,
    };
    let file = File::from_bytes(bytes.to_vec())
        .map_err(|e| malformed(format!("the HDF5 file does not open: {e}")))?;
    let mut reader = H5Reader {
        malformed: &malformed,
        limit: bytes.len(),
        tensors: BTreeMap::new(),
        layers: Vec::new(),
    };
    let root = file.root();
    let groups = root
        .groups()
        .map_err(|e| malformed(format!("the root group does not list: {e}")))?;
    if !groups.iter().any(|g| g == "layers") {
        return Err(malformed(format!(
            "expected a group `layers` (Keras 3's save_weights), found groups {groups:?}"
        )));
    }
    let layers = root
        .group("layers")
        .map_err(|e| malformed(format!("`layers`: {e}")))?;
    reader.layers_of(&layers, "layers", "")?;
    Ok((reader.tensors, reader.layers))
}

struct H5Reader<'a, F: Fn(String) -> WeightsError> {
    malformed: &'a F,
    /// The file's length: no dataset of an unfiltered file holds more.
    limit: usize,
    tensors: BTreeMap<String, Tensor>,
    layers: Vec<H5Layer>,
}

impl<F: Fn(String) -> WeightsError> H5Reader<'_, F> {
    /// The layers of one `layers` group (`where_` its path in the file), named under `scope`
    /// (a nested model's name and `/`).
    fn layers_of(&mut self, layers: &Group, where_: &str, scope: &str) -> Result<()> {
        for key in self.groups(layers, where_)? {
            let at = format!("{where_}/{key}");
            let group = self.group(layers, &key, &at)?;
            let name = format!("{scope}{}", self.own_name(&group, &at, &key)?);
            let children = self.groups(&group, &at)?;
            let has = |c: &str| children.iter().any(|g| g == c);
            if has("forward_layer") && has("backward_layer") {
                for direction in ["forward_layer", "backward_layer"] {
                    let d_at = format!("{at}/{direction}");
                    let inner = self.group(&group, direction, &d_at)?;
                    let inner_name = self.own_name(&inner, &d_at, direction)?;
                    self.cell(&inner, &d_at, &format!("{name}/{inner_name}"))?;
                }
                self.layers.push(H5Layer {
                    name,
                    recurrent: true,
                });
            } else if has("cell") {
                self.cell(&group, &at, &name)?;
                self.layers.push(H5Layer {
                    name,
                    recurrent: true,
                });
            } else if has("layers") {
                let inner = self.group(&group, "layers", &format!("{at}/layers"))?;
                self.layers_of(&inner, &format!("{at}/layers"), &format!("{name}/"))?;
            } else {
                let before = self.tensors.len();
                self.vars(&group, &at, |k| format!("{at}/vars/{k}"))?;
                if self.tensors.len() > before {
                    self.layers.push(H5Layer {
                        name,
                        recurrent: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// A `SimpleRNN`'s cell under `layer` (its `cell/vars` 0, 1, 2), as `{name}/simple_rnn_cell/…`.
    fn cell(&mut self, layer: &Group, at: &str, name: &str) -> Result<()> {
        let cell_at = format!("{at}/cell");
        let cell = self.group(layer, "cell", &cell_at)?;
        let vars_at = format!("{cell_at}/vars");
        let vars = self.group(&cell, "vars", &vars_at)?;
        let class = self.name_attr(&vars, &vars_at)?.unwrap_or_default();
        if !class.starts_with("simple_rnn_cell") {
            return Err((self.malformed)(format!(
                "layer `{name}` ({at}) has the cell `{class}`, not a SimpleRNN's \
                 simple_rnn_cell; rnn runs SimpleRNN layers only"
            )));
        }
        let datasets = vars
            .datasets()
            .map_err(|e| (self.malformed)(format!("`{vars_at}` does not list: {e}")))?;
        if let Some(extra) = datasets
            .iter()
            .find(|d| !matches!(d.as_str(), "0" | "1" | "2"))
        {
            return Err((self.malformed)(format!(
                "`{vars_at}`: expected a SimpleRNN cell's variables 0, 1 and 2 (kernel, \
                 recurrent kernel, bias), found `{extra}`"
            )));
        }
        for required in ["0", "1"] {
            if !datasets.iter().any(|d| d == required) {
                return Err((self.malformed)(format!(
                    "`{vars_at}`: expected datasets 0 (kernel) and 1 (recurrent kernel), found \
                     {datasets:?}"
                )));
            }
        }
        let names = ["kernel", "recurrent_kernel", "bias"];
        self.vars(&cell, &cell_at, |k| {
            let var = k.parse::<usize>().ok().and_then(|i| names.get(i)).copied();
            format!("{name}/simple_rnn_cell/{}", var.unwrap_or(k))
        })
    }

    /// Every dataset of `group/vars`, named by `rename(its key)`.
    fn vars(&mut self, group: &Group, at: &str, rename: impl Fn(&str) -> String) -> Result<()> {
        if !self.groups(group, at)?.iter().any(|g| g == "vars") {
            return Ok(());
        }
        let vars_at = format!("{at}/vars");
        let vars = self.group(group, "vars", &vars_at)?;
        let datasets = vars
            .datasets()
            .map_err(|e| (self.malformed)(format!("`{vars_at}` does not list: {e}")))?;
        for key in datasets {
            let d_at = format!("{vars_at}/{key}");
            let bad = |e: hdf5_pure::Error| (self.malformed)(format!("`{d_at}`: {e}"));
            let dataset = vars.dataset(&key).map_err(bad)?;
            let shape: Vec<usize> = dataset
                .shape()
                .map_err(bad)?
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
                .collect();
            let dtype = dataset.dtype().map_err(bad)?;
            let width = match dtype {
                H5Type::F32 => 4,
                H5Type::F64 => 8,
                other => {
                    return Err((self.malformed)(format!(
                        "`{d_at}`: expected float32 or float64 weights, found {other:?}"
                    )))
                }
            };
            let bytes = shape
                .iter()
                .try_fold(width, |n: usize, &d| n.checked_mul(d));
            if bytes.is_none_or(|b| b > self.limit) {
                return Err((self.malformed)(format!(
                    "`{d_at}`: shape {shape:?} holds more than the file's {} bytes",
                    self.limit
                )));
            }
            let tensor = match dtype {
                H5Type::F64 => Tensor::from_vec(
                    dataset.read_f64().map_err(bad)?,
                    shape.as_slice(),
                    &Device::Cpu,
                ),
                _ => Tensor::from_vec(
                    dataset.read_f32().map_err(bad)?,
                    shape.as_slice(),
                    &Device::Cpu,
                ),
            }
            .map_err(|e| (self.malformed)(format!("`{d_at}`: {e}")))?;
            let name = rename(&key);
            if self.tensors.insert(name.clone(), tensor).is_some() {
                return Err((self.malformed)(format!(
                    "two layers' weights are both named `{name}`"
                )));
            }
        }
        Ok(())
    }

    fn groups(&self, group: &Group, at: &str) -> Result<Vec<String>> {
        group
            .groups()
            .map_err(|e| (self.malformed)(format!("`{at}` does not list: {e}")))
    }

    fn group(&self, parent: &Group, key: &str, at: &str) -> Result<Group> {
        parent
            .group(key)
            .map_err(|e| (self.malformed)(format!("`{at}`: {e}")))
    }

    /// The `name` attribute of a `vars` group.
    fn name_attr(&self, vars: &Group, at: &str) -> Result<Option<String>> {
        let attrs = vars
            .attrs()
            .map_err(|e| (self.malformed)(format!("`{at}`: attributes: {e}")))?;
        Ok(match attrs.get("name") {
            Some(AttrValue::String(s)) | Some(AttrValue::VarLenString(s)) => Some(s.clone()),
            _ => None,
        })
    }

    /// A layer's own name: its `vars` group's `name` attribute, else its key.
    fn own_name(&self, layer: &Group, at: &str, key: &str) -> Result<String> {
        if !self.groups(layer, at)?.iter().any(|g| g == "vars") {
            return Ok(key.to_string());
        }
        let vars_at = format!("{at}/vars");
        let vars = self.group(layer, "vars", &vars_at)?;
        let name = self
            .name_attr(&vars, &vars_at)?
            .unwrap_or_else(|| key.to_string());
        if name.is_empty() || name.contains(['/', ',']) {
            return Err((self.malformed)(format!(
                "`{vars_at}`: expected a layer name without `/` or `,`, found {name:?}"
            )));
        }
        Ok(name)
    }
}

/// One recurrent layer of a `.keras` config.
#[derive(Debug)]
struct RnnLayer {
    name: String,
    units: u64,
    activation: Nonlinearity,
    go_backwards: bool,
    return_sequences: bool,
    /// `Some(merge_mode)` (`None` for Keras's `merge_mode=None`) for a Bidirectional.
    merge_mode: Option<Option<String>>,
}

/// What a `.keras` config says about the model's RNN.
#[derive(Debug)]
struct ModelConfig {
    rnn: Vec<RnnLayer>,
    mask_value: Option<f64>,
    /// Layers that are not part of the RNN, and why (`dense (Dense)`).
    not_run: Vec<String>,
    /// Whether the RNN layers are one contiguous stack fed by the model's input.
    contiguous: bool,
}

impl ModelConfig {
    /// The metadata keys that record the config; checks the config against the weights'
    /// layers.
    fn metadata(&self, h5: &[H5Layer]) -> std::result::Result<HashMap<String, String>, String> {
        let mut meta = HashMap::new();
        for layer in &self.rnn {
            if !h5.iter().any(|l| l.recurrent && l.name == layer.name) {
                return Err(format!(
                    "config.json names the recurrent layer `{}`, which model.weights.h5 does not \
                     hold",
                    layer.name
                ));
            }
        }
        if self.rnn.is_empty() {
            return Err("config.json holds no SimpleRNN or Bidirectional(SimpleRNN) layer".into());
        }
        if !self.not_run.is_empty() {
            meta.insert(NOT_RUN.into(), self.not_run.join(", "));
        }
        if !self.contiguous {
            // The user picks the layers; the options of the ones picked come from flags.
            return Ok(meta);
        }
        let join =
            |f: &dyn Fn(&RnnLayer) -> String| self.rnn.iter().map(f).collect::<Vec<_>>().join(",");
        meta.insert(STACK.into(), join(&|l| format!("{}/", l.name)));
        meta.insert(
            "nonlinearity".into(),
            join(&|l| l.activation.as_str().into()),
        );
        meta.insert("go_backwards".into(), join(&|l| l.go_backwards.to_string()));
        meta.insert(
            "merge_mode".into(),
            join(&|l| match &l.merge_mode {
                Some(Some(mode)) => mode.clone(),
                Some(None) => "none".into(),
                None => "concat".into(),
            }),
        );
        meta.insert("batch_first".into(), "true".into());
        if let Some(top) = self.rnn.last() {
            meta.insert("return_sequences".into(), top.return_sequences.to_string());
        }
        if let Some(value) = self.mask_value {
            meta.insert("mask_value".into(), value.to_string());
        }
        Ok(meta)
    }
}

/// The model's layers from `config.json`: a `Sequential`, or a `Functional` whose layers form
/// one chain.
fn model_config(config: &Value) -> std::result::Result<ModelConfig, String> {
    let class = config["class_name"].as_str().unwrap_or("");
    let layers = config["config"]["layers"]
        .as_array()
        .ok_or_else(|| format!("expected config.layers, a list, in a {class:?} model"))?;
    match class {
        "Sequential" => {}
        "Functional" | "Model" => check_chain(layers)?,
        other => {
            return Err(format!(
                "expected a Sequential or Functional model, found class {other:?}"
            ))
        }
    }
    let mut out = ModelConfig {
        rnn: Vec::new(),
        mask_value: None,
        not_run: Vec::new(),
        contiguous: true,
    };
    // The RNN must be InputLayer, then at most one Masking, then the recurrent layers in a row;
    // any other layer is listed as not run, and one before or among them breaks the stack.
    let mut after_rnn = false;
    for layer in layers {
        let class = layer["class_name"].as_str().unwrap_or("");
        let cfg = &layer["config"];
        let name = cfg["name"].as_str().unwrap_or("").to_string();
        match class {
            "InputLayer" => {}
            "Masking"
                if out.rnn.is_empty() && out.not_run.is_empty() && out.mask_value.is_none() =>
            {
                out.mask_value = Some(cfg["mask_value"].as_f64().ok_or_else(|| {
                    format!("Masking layer `{name}`: expected a numeric mask_value")
                })?);
            }
            "SimpleRNN" | "RNN" | "Bidirectional" => {
                if after_rnn || !out.not_run.is_empty() {
                    out.contiguous = false;
                }
                let rnn = rnn_layer(class, cfg, &name)?;
                if let Some(below) = out.rnn.last() {
                    if !below.return_sequences {
                        return Err(format!(
                            "layer `{}` returns its last step only (return_sequences=False) but \
                             feeds the recurrent layer `{name}`",
                            below.name
                        ));
                    }
                }
                out.rnn.push(rnn);
            }
            _ => {
                after_rnn = !out.rnn.is_empty();
                out.not_run.push(format!("{name} ({class})"));
            }
        }
    }
    Ok(out)
}

/// A `Functional` model must be a chain: each layer fed by the one before it only.
fn check_chain(layers: &[Value]) -> std::result::Result<(), String> {
    let mut previous: Option<&str> = None;
    for layer in layers {
        let name = layer["config"]["name"].as_str().unwrap_or("");
        let mut inputs = Vec::new();
        histories(&layer["inbound_nodes"], &mut inputs);
        let fits = match previous {
            None => inputs.is_empty(),
            Some(p) => inputs.len() == 1 && inputs[0] == p,
        };
        if !fits {
            return Err(format!(
                "layer `{name}` is fed by {inputs:?}, not by the layer before it in the list \
                 only; rnn reads Functional models that are one chain of layers"
            ));
        }
        previous = Some(name);
    }
    Ok(())
}

/// The layer names of every `keras_history` in `value`.
fn histories<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(h)) = map.get("keras_history") {
                if let Some(name) = h.first().and_then(Value::as_str) {
                    out.push(name);
                }
            }
            map.values().for_each(|v| histories(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| histories(v, out)),
        _ => {}
    }
}

/// One recurrent layer's options, refused where rnn cannot run it as configured.
fn rnn_layer(class: &str, cfg: &Value, name: &str) -> std::result::Result<RnnLayer, String> {
    let simple = |cfg: &Value, what: &str| -> std::result::Result<RnnLayer, String> {
        let name = cfg["name"].as_str().unwrap_or(what).to_string();
        let flag = |key: &str, default: bool| cfg[key].as_bool().unwrap_or(default);
        let activation = cfg["activation"].as_str().unwrap_or("tanh");
        let activation = Nonlinearity::from_name(activation).ok_or_else(|| {
            format!("layer `{name}`: activation {activation:?} is not one rnn runs")
        })?;
        Ok(RnnLayer {
            units: cfg["units"].as_u64().unwrap_or(0),
            activation,
            go_backwards: flag("go_backwards", false),
            return_sequences: flag("return_sequences", false),
            merge_mode: None,
            name,
        })
    };
    match class {
        "SimpleRNN" => simple(cfg, name),
        "RNN" => Err(format!(
            "layer `{name}` is an RNN over {}, which rnn does not read; build it from SimpleRNN \
             layers instead",
            match cfg["cell"] {
                Value::Array(_) => "stacked cells (RNN([cell, cell, …]))".to_string(),
                ref cell => format!(
                    "the cell {:?}",
                    cell["class_name"].as_str().unwrap_or("(unknown)")
                ),
            }
        )),
        _ => {
            let inner = &cfg["layer"];
            let inner_class = inner["class_name"].as_str().unwrap_or("");
            if inner_class != "SimpleRNN" {
                let what = if inner_class == "RNN" && inner["config"]["cell"].is_array() {
                    "Bidirectional(RNN([cell, cell, …])): each direction runs its own stack of \
                     cells, which is not a bidirectional stack and which rnn does not run; build \
                     it from Bidirectional(SimpleRNN(…)) layers instead"
                        .to_string()
                } else {
                    format!("a Bidirectional over {inner_class:?}, not a SimpleRNN")
                };
                return Err(format!("layer `{name}` is {what}"));
            }
            let forward = simple(&inner["config"], "forward")?;
            let backward = match &cfg["backward_layer"] {
                Value::Null => None,
                b => Some(simple(&b["config"], "backward")?),
            };
            if forward.go_backwards || backward.as_ref().is_some_and(|b| !b.go_backwards) {
                return Err(format!(
                    "Bidirectional layer `{name}`: expected a forward layer with \
                     go_backwards=False and a backward layer with go_backwards=True"
                ));
            }
            if let Some(b) = &backward {
                if b.units != forward.units || b.activation != forward.activation {
                    return Err(format!(
                        "Bidirectional layer `{name}`: the backward layer `{}` differs from the \
                         forward one in units or activation, which rnn does not run",
                        b.name
                    ));
                }
            }
            let merge_mode = cfg["merge_mode"].as_str().map(str::to_string);
            Ok(RnnLayer {
                name: name.to_string(),
                merge_mode: Some(merge_mode),
                go_backwards: false,
                ..forward
            })
        }
    }
}
