//! The weights of a Keras 3 HDF5 file (`.weights.h5`, or a `.keras` archive's
//! `model.weights.h5`), read with hdf5-pure under Keras variable paths.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use hdf5_pure::{AttrValue, DType as H5Type, File, Group};

use crate::error::{Result, WeightsError};

/// One layer of the HDF5 file's `layers/` group.
#[derive(Debug)]
pub(super) struct H5Layer {
    /// The layer's own name (its `vars` group's `name` attribute, else its key).
    pub(super) name: String,
    /// Whether it is a `SimpleRNN` or a `Bidirectional` of them.
    pub(super) recurrent: bool,
}

/// The weights of a Keras 3 HDF5 file under Keras variable paths, and its layers.
pub(super) fn read_h5(
    path: &Path,
    bytes: &[u8],
) -> Result<(BTreeMap<String, Tensor>, Vec<H5Layer>)> {
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
    reader.layers_of(&layers, "layers", "", 0)?;
    Ok((reader.tensors, reader.layers))
}

/// Models nested in models, deeper than any Keras user builds: the walk ends on a hard link
/// back to a group above (HDF5 allows such cycles) and on files built to nest without end.
const MAX_NESTING: usize = 32;

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
}

impl<F: Fn(String) -> WeightsError> H5Reader<'_, F> {
    /// The layers of one `layers` group (`where_` its path in the file), named under `scope`
    /// (a nested model's name and `/`), `depth` models deep.
    fn layers_of(&mut self, layers: &Group, where_: &str, scope: &str, depth: usize) -> Result<()> {
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
                self.layers_of(
                    &inner,
                    &format!("{at}/layers"),
                    &format!("{name}/"),
                    depth + 1,
                )?;
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
