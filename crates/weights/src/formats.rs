//! Recognising a weights file's naming scheme from its tensor names alone.
//!
//! Each detector turns names into a [`Plan`]: for every layer and direction, which tensor of
//! the file gives each canonical tensor and how it must be transformed. Loading, transforming
//! and checking shapes happen afterwards, in `model.rs`. A trailing `:0` (TensorFlow's output
//! index) is ignored, and names may carry any prefix (`rnn.`, `model.encoder.rnn.`,
//! `sequential/`): detectors match on the end of a name.

use std::collections::BTreeMap;

/// A naming scheme of RNN weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// `torch.nn.RNN`'s state_dict (`weight_ih_l0`, …): the canonical layout.
    Pytorch,
    /// Keras `SimpleRNN`: `<layer>/simple_rnn_cell/kernel` `[I, H]`, `recurrent_kernel`
    /// `[H, H]`, `bias` `[H]` (or without `simple_rnn_cell/`); `Bidirectional` wrappers hold
    /// `forward_<layer>` and `backward_<layer>`.
    Keras,
    /// TensorFlow 1 `BasicRNNCell`: `basic_rnn_cell/kernel` `[I + H, H]` (input rows first)
    /// and `bias` `[H]`; `multi_rnn_cell/cell_<k>/` for stacks, `fw/` and `bw/` for
    /// `bidirectional_dynamic_rnn`.
    Tf1,
    /// The tutorial's `Wx` `[I, H]`, `Wy` `[H, H]`, `b` `[1, H]`.
    Article,
}

impl Format {
    /// Every format, in the order they are tried.
    pub const ALL: [Format; 4] = [Format::Pytorch, Format::Keras, Format::Tf1, Format::Article];

    /// Its name in messages, metadata and `--format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pytorch => "pytorch",
            Format::Keras => "keras",
            Format::Tf1 => "tf1",
            Format::Article => "article",
        }
    }

    /// Whether the framework's sequence inputs are batch-first by default (Keras, and TF's
    /// `dynamic_rnn`), where PyTorch's are time-major.
    pub fn batch_first_by_default(self) -> bool {
        matches!(self, Format::Keras | Format::Tf1)
    }

    fn detect(self, names: &Names) -> Vec<Plan> {
        match self {
            Format::Pytorch => detect_pytorch(names),
            Format::Keras => detect_keras(names),
            Format::Tf1 => detect_tf1(names),
            Format::Article => detect_article(names),
        }
    }
}

/// How a tensor of the file becomes a canonical one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Used as stored.
    AsIs,
    /// Transposed (`[I, H]` to `[H, I]`).
    Transposed,
    /// Reshaped to `[H]` (the article's `b` `[1, H]`).
    Flattened,
    /// TF1's kernel `[I + H, H]`: the first `I` rows, transposed.
    InputRows,
    /// TF1's kernel `[I + H, H]`: the last `H` rows, transposed.
    RecurrentRows,
}

impl Transform {
    /// In words, for `rnn inspect`.
    pub fn describe(self) -> &'static str {
        match self {
            Transform::AsIs => "as is",
            Transform::Transposed => "transposed",
            Transform::Flattened => "reshaped to [hidden]",
            Transform::InputRows => "input rows (first I of I + H), transposed",
            Transform::RecurrentRows => "recurrent rows (last H of I + H), transposed",
        }
    }
}

/// One canonical tensor's origin: the file's name for it and the transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub name: String,
    pub transform: Transform,
}

/// Where one layer and direction's tensors come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CellPlan {
    pub w_ih: Source,
    pub w_hh: Source,
    pub b_ih: Option<Source>,
    pub b_hh: Option<Source>,
}

/// A complete reading of a file: `layers[k][d]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub format: Format,
    /// What distinguishes this reading from others of the same format (the name prefix).
    pub prefix: String,
    pub layers: Vec<Vec<CellPlan>>,
}

impl Plan {
    /// `pytorch` or `pytorch (prefix "encoder.")`.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            self.format.as_str().to_string()
        } else {
            format!("{} (names under \"{}\")", self.format.as_str(), self.prefix)
        }
    }
}

/// The file's names, looked up without TensorFlow's `:0`.
pub(crate) struct Names {
    /// Name without `:0` → name in the file.
    by_key: BTreeMap<String, String>,
}

impl Names {
    pub fn new(names: &[String]) -> Self {
        let by_key = names
            .iter()
            .map(|n| (n.strip_suffix(":0").unwrap_or(n).to_string(), n.clone()))
            .collect();
        Self { by_key }
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_key.keys().map(String::as_str)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.by_key.get(key).map(String::as_str)
    }

    /// A source for `key`: the file's own name if it has the tensor, else `key` itself, so
    /// that loading reports it missing.
    fn source(&self, key: &str, transform: Transform) -> Source {
        Source {
            name: self.get(key).unwrap_or(key).to_string(),
            transform,
        }
    }

    fn optional(&self, key: &str, transform: Transform) -> Option<Source> {
        self.get(key).map(|name| Source {
            name: name.to_string(),
            transform,
        })
    }
}

/// Every reading of the file, in the formats allowed (`only`, or all).
pub(crate) fn detect(names: &Names, only: Option<Format>) -> Vec<Plan> {
    Format::ALL
        .into_iter()
        .filter(|f| only.is_none_or(|o| o == *f))
        .flat_map(|f| f.detect(names))
        .collect()
}

/// The prefixes under which `suffix` appears as a whole name component.
fn prefixes_of<'a>(names: &'a Names, suffix: &'a str) -> impl Iterator<Item = String> + 'a {
    names.keys().filter_map(move |k| {
        let prefix = k.strip_suffix(suffix)?;
        (prefix.is_empty() || prefix.ends_with(['.', '/'])).then(|| prefix.to_string())
    })
}

fn detect_pytorch(names: &Names) -> Vec<Plan> {
    prefixes_of(names, "weight_ih_l0")
        .map(|p| {
            let directions: &[&str] = if names.get(&format!("{p}weight_ih_l0_reverse")).is_some() {
                &["", "_reverse"]
            } else {
                &[""]
            };
            let layers = (0..)
                .take_while(|k| *k == 0 || names.get(&format!("{p}weight_ih_l{k}")).is_some())
                .map(|k| {
                    directions
                        .iter()
                        .map(|s| {
                            let key = |kind: &str| format!("{p}{kind}_l{k}{s}");
                            CellPlan {
                                w_ih: names.source(&key("weight_ih"), Transform::AsIs),
                                w_hh: names.source(&key("weight_hh"), Transform::AsIs),
                                b_ih: names.optional(&key("bias_ih"), Transform::AsIs),
                                b_hh: names.optional(&key("bias_hh"), Transform::AsIs),
                            }
                        })
                        .collect()
                })
                .collect();
            Plan {
                format: Format::Pytorch,
                prefix: p,
                layers,
            }
        })
        .collect()
}

/// The number ending a Keras layer name (`simple_rnn_3` → 3, `simple_rnn` → 0): Keras numbers
/// layers in the order they are created, so this is their order in a stack.
fn creation_index(name: &str) -> (u64, String) {
    let index = name
        .rsplit_once('_')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0);
    (index, name.to_string())
}

fn detect_keras(names: &Names) -> Vec<Plan> {
    // Layer path (`sequential/simple_rnn_1`) → its cell path (with `/simple_rnn_cell` or not).
    let mut layers: BTreeMap<String, String> = BTreeMap::new();
    for key in names.keys() {
        let Some(cell) = key.strip_suffix("/recurrent_kernel") else {
            continue;
        };
        let layer = cell.strip_suffix("/simple_rnn_cell").unwrap_or(cell);
        layers.insert(layer.to_string(), cell.to_string());
    }
    if layers.is_empty() {
        return Vec::new();
    }
    // Stack units: a plain layer, or a Bidirectional wrapper with its forward and backward.
    let mut units: BTreeMap<(u64, String), Vec<(usize, String)>> = BTreeMap::new();
    for (layer, cell) in &layers {
        let (parent, last) = layer.rsplit_once('/').unwrap_or(("", layer));
        let (unit, direction) = if last.starts_with("forward_") {
            (parent, 0)
        } else if last.starts_with("backward_") {
            (parent, 1)
        } else {
            (layer.as_str(), 0)
        };
        let unit_name = unit.rsplit('/').next().unwrap_or(unit);
        let key = (creation_index(unit_name).0, unit.to_string());
        units
            .entry(key)
            .or_default()
            .push((direction, cell.clone()));
    }
    let plan_layers = units
        .into_values()
        .map(|mut dirs| {
            dirs.sort();
            dirs.into_iter()
                .map(|(_, cell)| CellPlan {
                    w_ih: names.source(&format!("{cell}/kernel"), Transform::Transposed),
                    w_hh: names.source(&format!("{cell}/recurrent_kernel"), Transform::Transposed),
                    b_ih: names.optional(&format!("{cell}/bias"), Transform::AsIs),
                    b_hh: None,
                })
                .collect()
        })
        .collect();
    vec![Plan {
        format: Format::Keras,
        prefix: String::new(),
        layers: plan_layers,
    }]
}

fn detect_tf1(names: &Names) -> Vec<Plan> {
    // (layer, direction) → cell path ending in `basic_rnn_cell`.
    let mut cells: BTreeMap<(usize, usize), String> = BTreeMap::new();
    for key in names.keys() {
        let Some(cell) = key.strip_suffix("/kernel") else {
            continue;
        };
        if !(cell == "basic_rnn_cell" || cell.ends_with("/basic_rnn_cell")) {
            continue;
        }
        let parts: Vec<&str> = cell.split('/').collect();
        let layer = parts
            .iter()
            .find_map(|p| p.strip_prefix("cell_")?.parse().ok())
            .unwrap_or(0);
        let direction = usize::from(parts.contains(&"bw"));
        cells.insert((layer, direction), cell.to_string());
    }
    if cells.is_empty() {
        return Vec::new();
    }
    let mut layers: Vec<Vec<CellPlan>> = Vec::new();
    for ((layer, _), cell) in cells {
        let plan = CellPlan {
            w_ih: names.source(&format!("{cell}/kernel"), Transform::InputRows),
            w_hh: names.source(&format!("{cell}/kernel"), Transform::RecurrentRows),
            b_ih: names.optional(&format!("{cell}/bias"), Transform::AsIs),
            b_hh: None,
        };
        if layers.len() <= layer {
            layers.resize_with(layer + 1, Vec::new);
        }
        layers[layer].push(plan);
    }
    vec![Plan {
        format: Format::Tf1,
        prefix: String::new(),
        layers,
    }]
}

fn detect_article(names: &Names) -> Vec<Plan> {
    prefixes_of(names, "Wx")
        .map(|p| Plan {
            format: Format::Article,
            layers: vec![vec![CellPlan {
                w_ih: names.source(&format!("{p}Wx"), Transform::Transposed),
                w_hh: names.source(&format!("{p}Wy"), Transform::Transposed),
                b_ih: names.optional(&format!("{p}b"), Transform::Flattened),
                b_hh: None,
            }]],
            prefix: p,
        })
        .collect()
}

#[cfg(test)]
mod tests;
