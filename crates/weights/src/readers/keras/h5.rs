//! The weights of a Keras HDF5 file (Keras 3's `.weights.h5`, a `.keras` archive's
//! `model.weights.h5` from Keras 3 or tf-keras, the legacy layout of `model.save("m.h5")`),
//! read with hdf5-pure under Keras variable paths.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use candle_core::{Device, Tensor};
use hdf5_pure::{
    AttrValue, DType as H5Type, Datatype, DatatypeByteOrder, File, FloatingPointLayout, Group,
};

use super::TfKerasKeys;
use crate::error::{Result, WeightsError};

/// One layer of the HDF5 file's `layers/` group.
#[derive(Debug)]
pub(super) struct H5Layer {
    /// The layer's own name (its `vars` group's `name` attribute, else its key).
    pub(super) name: String,
    /// Whether it is a `SimpleRNN` or a `Bidirectional` of them.
    pub(super) recurrent: bool,
    /// A layer that is not recurrent: the names its weights are read under, in the layer's
    /// own order (Keras 3's `vars/0`, `vars/1`, …; tf-keras's `weight_names`), which is
    /// Keras's `layer.weights` order (a Dense's kernel, then its bias).
    pub(super) weights: Vec<String>,
}

/// The weights of a Keras HDF5 file under Keras variable paths, its layers, and the model's
/// config where the file records one: Keras 3's `layers/` tree (`save_weights`, a `.keras`
/// archive's `model.weights.h5`), or the legacy layout of tf-keras (Keras 2) `model.save("m.h5")`
/// (`model_weights/`, the config in the root's `model_config` attribute) and `save_weights`
/// (the layers at the root), which Keras 3's `model.save("m.h5")` still writes.
///
/// `simple_cells`: each `RNN` layer of a `.keras` archive's config with the names of its
/// cells that it records as `SimpleRNNCell`s ([`super::simple_cell_names`]).
pub(super) fn read_h5(
    path: &Path,
    bytes: &[u8],
    keys: Option<&TfKerasKeys>,
    simple_cells: HashSet<(String, String)>,
) -> Result<H5Contents> {
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
        visits_left: bytes.len() / 32 + 1000,
        tensors: BTreeMap::new(),
        layers: Vec::new(),
        keys,
        nested: HashSet::new(),
        simple_cells,
    };
    let root = file.root();
    let groups = reader.groups(&root, "/")?;
    let root_attrs = root
        .attrs()
        .map_err(|e| malformed(format!("the root group's attributes: {e}")))?;
    let mut model_config = None;
    if groups.iter().any(|g| g == "layers") {
        let layers = reader.group(&root, "layers", "layers")?;
        reader.layers_of(&layers, "layers", ("", ""), 0)?;
    } else if groups.iter().any(|g| g == "model_weights") {
        if let Some(config) = text_attr(&root_attrs, "model_config") {
            // Parsed JSON takes up to 16 times its text: bounded before it is parsed.
            if config.len() as u64 > super::MAX_CONFIG {
                return Err(malformed(format!(
                    "expected a model_config of at most {} bytes, found {}",
                    super::MAX_CONFIG,
                    config.len()
                )));
            }
            let config: serde_json::Value = serde_json::from_str(&config)
                .map_err(|e| malformed(format!("model_config is not valid JSON: {e}")))?;
            reader.nested = nested_models(&config);
            reader.simple_cells = super::simple_cell_names(&config);
            model_config = Some(config);
        }
        let weights = reader.group(&root, "model_weights", "model_weights")?;
        reader.legacy_layers(&weights, "model_weights")?;
    } else if root_attrs.contains_key("layer_names") {
        reader.legacy_layers(&root, "")?;
    } else {
        return Err(malformed(format!(
            "expected a group `layers` (Keras 3's save_weights), `model_weights` or a \
             `layer_names` attribute (tf-keras's model.save and save_weights), found groups \
             {:?}",
            groups.iter().take(40).collect::<Vec<_>>()
        )));
    }
    Ok(H5Contents {
        tensors: reader.tensors,
        layers: reader.layers,
        model_config,
        keras_version: text_attr(&root_attrs, "keras_version"),
    })
}

/// What a Keras HDF5 file holds; see [`read_h5`].
pub(super) struct H5Contents {
    pub(super) tensors: BTreeMap<String, Tensor>,
    pub(super) layers: Vec<H5Layer>,
    /// The root's `model_config` attribute, parsed, in a legacy full-model file.
    pub(super) model_config: Option<serde_json::Value>,
    /// The root's `keras_version` attribute (`2.21.0` from tf-keras, `3.15.0` from Keras 3).
    pub(super) keras_version: Option<String>,
}

/// A string attribute, whichever of HDF5's string types holds it.
fn text_attr(attrs: &HashMap<String, AttrValue>, key: &str) -> Option<String> {
    match attrs.get(key)? {
        AttrValue::String(s)
        | AttrValue::VarLenString(s)
        | AttrValue::AsciiString(s)
        | AttrValue::VarLenAsciiString(s) => Some(s.clone()),
        AttrValue::StringSized { value, .. } | AttrValue::AsciiStringSized { value, .. } => {
            Some(value.clone())
        }
        AttrValue::U8Array(bytes) => String::from_utf8(bytes.clone()).ok(),
        _ => None,
    }
}

/// A list-of-strings attribute (`layer_names`, `weight_names`); `None` when it is not one.
/// h5py writes them as fixed-width byte strings or variable-length strings; an empty list as
/// an empty float array.
fn names_attr(attrs: &HashMap<String, AttrValue>, key: &str) -> Option<Vec<String>> {
    match attrs.get(key)? {
        AttrValue::StringArray(v)
        | AttrValue::AsciiStringArray(v)
        | AttrValue::VarLenStringArray(v)
        | AttrValue::VarLenAsciiStringArray(v)
        | AttrValue::VarLenAsciiCharArray(v) => Some(v.clone()),
        AttrValue::StringArraySized { values, .. }
        | AttrValue::AsciiStringArraySized { values, .. } => Some(values.clone()),
        AttrValue::F64Array(v) if v.is_empty() => Some(Vec::new()),
        AttrValue::F32Array(v) if v.is_empty() => Some(Vec::new()),
        _ => text_attr(attrs, key).map(|s| vec![s]),
    }
}

/// Models nested in models, deeper than any Keras user builds: the walk ends on a hard link
/// back to a group above (HDF5 allows such cycles) and on files built to nest without end.
pub(super) const MAX_NESTING: usize = 32;

struct H5Reader<'a, F: Fn(String) -> WeightsError> {
    malformed: &'a F,
    /// The file's length: no dataset of an unfiltered file holds more.
    limit: usize,
    /// Layer groups the walk may still enter: every group takes tens of bytes of the file,
    /// so more visits than that mean links that reach one group many times (two links back
    /// to a parent make the walk exponential within the depth bound).
    visits_left: usize,
    tensors: BTreeMap<String, Tensor>,
    layers: Vec<H5Layer>,
    /// A tf-keras `.keras` archive's layer name for each top-level group's key (its layers'
    /// groups are keyed by class and place, and name no layer): [`super::tf_keras_keys`].
    keys: Option<&'a TfKerasKeys>,
    /// The layers of a legacy `.h5`'s model that are models themselves (its `model_config`).
    nested: HashSet<String>,
    /// Each `RNN` layer's cells that the config records as `SimpleRNNCell`s, by the layer's
    /// and the cell's own names (`rnn`, `my_cell`), which the file carries in place of the
    /// default `simple_rnn_cell`.
    simple_cells: HashSet<(String, String)>,
}

/// IEEE 754 binary16, as numpy and Keras write float16.
const BINARY16: FloatingPointLayout = FloatingPointLayout {
    bit_offset: 0,
    bit_precision: 16,
    exponent_location: 10,
    exponent_size: 5,
    mantissa_location: 0,
    mantissa_size: 10,
    exponent_bias: 15,
};

/// The byte order of a dataset of IEEE binary16 floats; `None` for any other type.
fn half_order(dtype: &H5Type) -> Option<DatatypeByteOrder> {
    match dtype {
        H5Type::Other(datatype) => match &**datatype {
            Datatype::FloatingPoint {
                size: 2,
                byte_order: order @ (DatatypeByteOrder::LittleEndian | DatatypeByteOrder::BigEndian),
                layout,
            } if *layout == BINARY16 => Some(*order),
            _ => None,
        },
        _ => None,
    }
}

/// The names of the layers of `config`'s model that are models ([`super::is_model`]).
fn nested_models(config: &serde_json::Value) -> HashSet<String> {
    config["config"]["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| super::is_model(l))
        .filter_map(|l| l["config"]["name"].as_str().map(str::to_string))
        .collect()
}

impl<F: Fn(String) -> WeightsError> H5Reader<'_, F> {
    /// The layers of one `layers` group (`where_` its path in the file), named under `scope`
    /// (a nested model's name and `/`), `depth` models deep.
    fn layers_of(
        &mut self,
        layers: &Group,
        where_: &str,
        (scope, key_scope): (&str, &str),
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_NESTING {
            return Err((self.malformed)(format!(
                "`{}`: models nested more than {MAX_NESTING} deep (or a group that links back \
                 to one above it)",
                crate::error::clip(where_, crate::error::QUOTED_CHARS)
            )));
        }
        // Each child with its handle, from one walk of the group: looking each up by name
        // walks the group again (30,000 layers took minutes).
        let children = layers
            .iter_groups()
            .map_err(|e| (self.malformed)(format!("`{where_}` does not list: {e}")))?;
        for (key, group) in children {
            let at = format!("{where_}/{key}");
            self.visits_left = self.visits_left.checked_sub(1).ok_or_else(|| {
                (self.malformed)(format!(
                    "`{}`: more layer groups than a file of {} bytes holds (links that reach \
                     one group many times)",
                    crate::error::clip(&at, crate::error::QUOTED_CHARS),
                    self.limit
                ))
            })?;
            // tf-keras's archive keys groups by class and place: the config names them.
            let path = format!("{key_scope}{key}");
            let name = match self.keys {
                Some(keys) => keys.names.get(&path).cloned().ok_or_else(|| {
                    (self.malformed)(format!(
                        "`{}`: a layer's weights that config.json has no layer for",
                        crate::error::clip(&at, crate::error::QUOTED_CHARS)
                    ))
                })?,
                None => format!("{scope}{}", self.own_name(&group, &at, &key)?),
            };
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
                    weights: Vec::new(),
                });
            } else if has("cell") && self.stacked(&group, &at, &name)? {
                // RNN(StackedRNNCells([…])): one layer per cell, `{name}/{cell}`.
            } else if has("cell") {
                self.cell(&group, &at, &name)?;
                self.layers.push(H5Layer {
                    name,
                    recurrent: true,
                    weights: Vec::new(),
                });
            } else if has("layers") {
                let inner = self.group(&group, "layers", &format!("{at}/layers"))?;
                self.layers_of(
                    &inner,
                    &format!("{at}/layers"),
                    (&format!("{name}/"), &format!("{path}/")),
                    depth + 1,
                )?;
            } else {
                // A wrapper (`TimeDistributed`) keeps its layer's variables in `layer/vars`.
                let (owner, owner_at) = if has("layer") {
                    let inner_at = format!("{at}/layer");
                    (self.group(&group, "layer", &inner_at)?, inner_at)
                } else {
                    (group, at)
                };
                let weights = self.vars(&owner, &owner_at, |k| format!("{owner_at}/vars/{k}"))?;
                if !weights.is_empty() {
                    self.layers.push(H5Layer {
                        name,
                        recurrent: false,
                        weights,
                    });
                }
            }
        }
        Ok(())
    }

    /// The layers of tf-keras's legacy layout under `group` (`at` its path): its `layer_names`
    /// attribute gives them in model order, each layer group's `weight_names` its weights
    /// (`simple_rnn/simple_rnn_cell/kernel:0`), read under those names without `:0`.
    fn legacy_layers(&mut self, group: &Group, at: &str) -> Result<()> {
        let attrs = group
            .attrs()
            .map_err(|e| (self.malformed)(format!("`{at}`: attributes: {e}")))?;
        let names = names_attr(&attrs, "layer_names").ok_or_else(|| {
            (self.malformed)(format!(
                "`{at}`: expected a `layer_names` attribute of strings (tf-keras's layout)"
            ))
        })?;
        for name in names {
            let layer_at = format!("{at}/{name}");
            self.visits_left = self.visits_left.checked_sub(1).ok_or_else(|| {
                (self.malformed)(format!(
                    "`{at}`: more layers than a file of {} bytes holds",
                    self.limit
                ))
            })?;
            let layer = self.group(group, &name, &layer_at)?;
            let layer_attrs = layer
                .attrs()
                .map_err(|e| (self.malformed)(format!("`{layer_at}`: attributes: {e}")))?;
            let weights = names_attr(&layer_attrs, "weight_names").unwrap_or_default();
            let mut keys = Vec::new();
            for weight in &weights {
                let key = weight.strip_suffix(":0").unwrap_or(weight);
                // Keras 3's model.save("m.h5") names a layer's weights under the model's name
                // (`sequential/dense/kernel`), tf-keras under the layer's (`dense/kernel:0`).
                let key = match key.split_once('/') {
                    Some((_, rest))
                        if !key.starts_with(&format!("{name}/"))
                            && rest.starts_with(&format!("{name}/")) =>
                    {
                        rest.to_string()
                    }
                    _ => key.to_string(),
                };
                keys.push((weight, key));
            }
            // A model nested in the model (its `model_config` says which): its group holds its
            // layers' weights, each under its own layer's name (tf-keras:
            // `simple_rnn/simple_rnn_cell/kernel:0` in `inner`; Keras 3:
            // `inner/simple_rnn/simple_rnn_cell/kernel`), read as the layers `{name}/{layer}`.
            let nested = self.nested.contains(&name);
            // Each owner's weights, owners in the order their first weight comes.
            let mut owners: Vec<(String, Vec<String>)> = Vec::new();
            let mut place: HashMap<String, usize> = HashMap::new();
            for (weight, key) in keys {
                let d_at = format!("{layer_at}/{weight}");
                let tensor = self.dataset(&layer, weight, &d_at)?;
                // Keras 3 names them under the nested model's name already.
                let key = if nested && !key.starts_with(&format!("{name}/")) {
                    format!("{name}/{key}")
                } else {
                    key
                };
                let inner = key
                    .strip_prefix(&format!("{name}/"))
                    .and_then(|rest| rest.split_once('/'));
                let owner = match inner {
                    Some((inner, _)) if nested => format!("{name}/{inner}"),
                    _ => name.clone(),
                };
                let (owner, key) = self.simple_cell_key(&name, owner, key);
                if self.tensors.insert(key.clone(), tensor).is_some() {
                    return Err((self.malformed)(format!(
                        "two layers' weights are both named `{key}`"
                    )));
                }
                match place.get(&owner) {
                    Some(&i) => owners[i].1.push(key),
                    None => {
                        place.insert(owner.clone(), owners.len());
                        owners.push((owner, vec![key]));
                    }
                }
            }
            if owners.is_empty() {
                owners.push((name, Vec::new()));
            }
            for (owner, keys) in owners {
                let recurrent = keys.iter().any(|k| k.contains("simple_rnn_cell/"));
                self.layers.push(H5Layer {
                    name: owner,
                    recurrent,
                    weights: if recurrent { Vec::new() } else { keys },
                });
            }
        }
        Ok(())
    }

    /// A legacy `.h5` layer `name`'s weight `key` as the `.keras` reader names a SimpleRNN
    /// cell's, with the layer that owns it: a cell of its own name (`rnn/my_cell/kernel` →
    /// `rnn/simple_rnn_cell/kernel`), and each cell of a stack its own layer
    /// (`rnn/stacked_rnn_cells/a/kernel`, or `stacked_rnn_cells_1/…` → `rnn/a/simple_rnn_cell/
    /// kernel`, owned by `rnn/a`),
    /// where the model's config records the cell as a `SimpleRNNCell` (or it has the default
    /// name); any other key as it is.
    fn simple_cell_key(&self, name: &str, owner: String, key: String) -> (String, String) {
        let own = |cell: &str| {
            self.simple_cells
                .contains(&(name.to_string(), cell.to_string()))
        };
        let simple = |cell: &str| cell.starts_with("simple_rnn_cell") || own(cell);
        let Some(rest) = key.strip_prefix(&format!("{name}/")) else {
            return (owner, key);
        };
        // `stacked_rnn_cells`, or `stacked_rnn_cells_1`… where Keras numbered the scope.
        let stacked = rest.split_once('/').and_then(|(scope, inside)| {
            let number = scope.strip_prefix("stacked_rnn_cells")?;
            let numbered = number
                .strip_prefix('_')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            (number.is_empty() || numbered).then_some(inside)
        });
        if let Some((cell, var)) = stacked
            .and_then(|r| r.split_once('/'))
            .filter(|(cell, var)| simple(cell) && !var.contains('/'))
        {
            return (
                format!("{name}/{cell}"),
                format!("{name}/{cell}/simple_rnn_cell/{var}"),
            );
        }
        match rest.split_once('/') {
            Some((cell, var))
                if !cell.starts_with("simple_rnn_cell") && own(cell) && !var.contains('/') =>
            {
                (owner, format!("{name}/simple_rnn_cell/{var}"))
            }
            _ => (owner, key),
        }
    }

    /// The cells of `RNN(StackedRNNCells([…]))` under `layer` (`cell/cells/<key>`), each read
    /// as a layer `{name}/{cell's own name}` with its own `vars`; `false` where the layer's
    /// cell stacks none.
    fn stacked(&mut self, layer: &Group, at: &str, name: &str) -> Result<bool> {
        let cell_at = format!("{at}/cell");
        let cell = self.group(layer, "cell", &cell_at)?;
        if !self.groups(&cell, &cell_at)?.iter().any(|g| g == "cells") {
            return Ok(false);
        }
        let cells_at = format!("{cell_at}/cells");
        let cells = self.group(&cell, "cells", &cells_at)?;
        let children = cells
            .iter_groups()
            .map_err(|e| (self.malformed)(format!("`{cells_at}` does not list: {e}")))?;
        for (key, inner) in children {
            let inner_at = format!("{cells_at}/{key}");
            self.visits_left = self.visits_left.checked_sub(1).ok_or_else(|| {
                (self.malformed)(format!(
                    "`{}`: more cells than a file of {} bytes holds",
                    crate::error::clip(&inner_at, crate::error::QUOTED_CHARS),
                    self.limit
                ))
            })?;
            let layer_name = format!("{name}/{}", self.own_name(&inner, &inner_at, &key)?);
            self.cell_vars(&inner, &inner_at, &layer_name)?;
            self.layers.push(H5Layer {
                name: layer_name,
                recurrent: true,
                weights: Vec::new(),
            });
        }
        Ok(true)
    }

    /// A `SimpleRNN`'s cell under `layer` (its `cell/vars` 0, 1, 2), as `{name}/simple_rnn_cell/…`.
    fn cell(&mut self, layer: &Group, at: &str, name: &str) -> Result<()> {
        let cell_at = format!("{at}/cell");
        let cell = self.group(layer, "cell", &cell_at)?;
        self.cell_vars(&cell, &cell_at, name)
    }

    /// The variables 0, 1, 2 of the SimpleRNN cell `cell` (at `cell_at`), as
    /// `{name}/simple_rnn_cell/…`.
    fn cell_vars(&mut self, cell: &Group, cell_at: &str, name: &str) -> Result<()> {
        let vars_at = format!("{cell_at}/vars");
        let vars = self.group(cell, "vars", &vars_at)?;
        let class = self.name_attr(&vars, &vars_at)?.unwrap_or_default();
        // A tf-keras archive names no cell: its config says which layers have SimpleRNN's.
        // The layer, or the Bidirectional it is a direction of: a prefix of `name`.
        let recorded = class.is_empty()
            && self.keys.is_some_and(|k| {
                name.match_indices('/')
                    .map(|(i, _)| &name[..i])
                    .chain([name])
                    .any(|layer| k.simple.contains(layer))
            });
        // `name` is the layer (`scope/rnn`), or for a cell of a stack the layer and the cell
        // (`scope/rnn/a`, where `class` is `a`).
        let mut parts = name.rsplit('/');
        let last = parts.next().unwrap_or("");
        let layer = if last == class {
            parts.next().unwrap_or("")
        } else {
            last
        };
        let named = self
            .simple_cells
            .contains(&(layer.to_string(), class.clone()));
        if !class.starts_with("simple_rnn_cell") && !recorded && !named {
            if class.is_empty() {
                return Err((self.malformed)(format!(
                    "layer `{name}` ({cell_at}) has a cell the file does not name, which its \
                     config does not record as a SimpleRNN's; rnn runs SimpleRNN layers only"
                )));
            }
            let gated = if class.starts_with("lstm_cell") {
                " (an LSTM's)"
            } else if class.starts_with("gru_cell") {
                " (a GRU's)"
            } else {
                ""
            };
            return Err((self.malformed)(format!(
                "layer `{name}` ({cell_at}) has the cell `{class}`{gated}, which no model config \
                 beside the weights records as a SimpleRNNCell; rnn runs SimpleRNN layers only \
                 (pick them with --stack LAYER/,LAYER/ where the model has some)"
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
        self.vars(cell, cell_at, |k| {
            let var = k.parse::<usize>().ok().and_then(|i| names.get(i)).copied();
            format!("{name}/simple_rnn_cell/{}", var.unwrap_or(k))
        })
        .map(drop)
    }

    /// Every dataset of `group/vars`, named by `rename(its key)`.
    fn vars(
        &mut self,
        group: &Group,
        at: &str,
        rename: impl Fn(&str) -> String,
    ) -> Result<Vec<String>> {
        if !self.groups(group, at)?.iter().any(|g| g == "vars") {
            return Ok(Vec::new());
        }
        let vars_at = format!("{at}/vars");
        let vars = self.group(group, "vars", &vars_at)?;
        let mut datasets = vars
            .datasets()
            .map_err(|e| (self.malformed)(format!("`{vars_at}` does not list: {e}")))?;
        // Keras numbers them in the layer's order; HDF5 lists names as text ("10" before "2").
        datasets.sort_by_key(|k| (k.parse::<u64>().unwrap_or(u64::MAX), k.clone()));
        let mut names = Vec::with_capacity(datasets.len());
        for key in datasets {
            let d_at = format!("{vars_at}/{key}");
            let tensor = self.dataset(&vars, &key, &d_at)?;
            let name = rename(&key);
            if self.tensors.insert(name.clone(), tensor).is_some() {
                return Err((self.malformed)(format!(
                    "two layers' weights are both named `{name}`"
                )));
            }
            names.push(name);
        }
        Ok(names)
    }

    /// The float32, float64 or float16 (a Keras `float16` dtype policy's weights) dataset
    /// `key` of `group` (`at` its path), its size checked against the file's before it is
    /// read.
    fn dataset(&self, group: &Group, key: &str, at: &str) -> Result<Tensor> {
        let bad = |e: hdf5_pure::Error| (self.malformed)(format!("`{at}`: {e}"));
        let dataset = group.dataset(key).map_err(bad)?;
        let shape: Vec<usize> = dataset
            .shape()
            .map_err(bad)?
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect();
        let dtype = dataset.dtype().map_err(bad)?;
        let half = half_order(&dtype);
        let width = match (&dtype, half) {
            (H5Type::F32, _) => 4,
            (H5Type::F64, _) => 8,
            (_, Some(_)) => 2,
            (other, None) => {
                return Err((self.malformed)(format!(
                    "`{at}`: expected float32, float64 or float16 weights, found {other}"
                )))
            }
        };
        let bytes = shape
            .iter()
            .try_fold(width, |n: usize, &d| n.checked_mul(d));
        if bytes.is_none_or(|b| b > self.limit) || !crate::header_checks::strides_fit(&shape) {
            return Err((self.malformed)(format!(
                "`{at}`: shape {shape:?} holds more than the file's {} bytes",
                self.limit
            )));
        }
        if let Some(order) = half {
            let raw = dataset.read_raw().map_err(bad)?;
            if bytes != Some(raw.len()) {
                return Err((self.malformed)(format!(
                    "`{at}`: shape {shape:?} of float16 needs {} bytes, the dataset holds {}",
                    bytes.unwrap_or(0),
                    raw.len()
                )));
            }
            let values: Vec<half::f16> = raw
                .chunks_exact(2)
                .map(|b| {
                    let pair = [b[0], b[1]];
                    half::f16::from_bits(match order {
                        DatatypeByteOrder::BigEndian => u16::from_be_bytes(pair),
                        _ => u16::from_le_bytes(pair),
                    })
                })
                .collect();
            return Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)
                .map_err(|e| (self.malformed)(format!("`{at}`: {e}")));
        }
        match dtype {
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
        .map_err(|e| (self.malformed)(format!("`{at}`: {e}")))
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
