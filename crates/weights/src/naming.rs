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
pub enum Naming {
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

impl Naming {
    /// Every format, in the order they are tried.
    pub const ALL: [Naming; 4] = [Naming::Pytorch, Naming::Keras, Naming::Tf1, Naming::Article];

    /// Its name in messages, metadata and `--format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Naming::Pytorch => "pytorch",
            Naming::Keras => "keras",
            Naming::Tf1 => "tf1",
            Naming::Article => "article",
        }
    }

    /// Whether the framework's sequence inputs are batch-first by default (Keras, and TF's
    /// `dynamic_rnn`), where PyTorch's are time-major.
    pub fn batch_first_by_default(self) -> bool {
        matches!(self, Naming::Keras | Naming::Tf1)
    }

    fn detect(self, names: &Names, found: &mut Detected) {
        match self {
            Naming::Pytorch => detect_pytorch(names, found),
            Naming::Keras => detect_keras(names, found),
            Naming::Tf1 => detect_tf1(names, found),
            Naming::Article => detect_article(names, found),
        }
    }
}

impl rnn_core::Vocabulary for Naming {
    const ALL: &'static [Self] = &Naming::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn help(self) -> &'static str {
        match self {
            Naming::Pytorch => "torch.nn.RNN state_dict (weight_ih_l0, …)",
            Naming::Keras => "Keras SimpleRNN (LAYER/simple_rnn_cell/kernel, …)",
            Naming::Tf1 => "TensorFlow 1 BasicRNNCell (rnn/basic_rnn_cell/kernel, bias)",
            Naming::Article => "the tutorial's Wx, Wy, b",
        }
    }
}

impl std::str::FromStr for Naming {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        <Self as rnn_core::Vocabulary>::parse_name(text)
    }
}

impl std::fmt::Display for Naming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    pub naming: Naming,
    /// What distinguishes this reading from others of the same format (the name prefix).
    pub prefix: String,
    pub layers: Vec<Vec<CellPlan>>,
}

/// The file's names, looked up without TensorFlow's `:0`.
pub(crate) struct Names {
    /// Name without `:0` → name in the file.
    by_key: BTreeMap<String, String>,
    /// Each layer's directions where the file records them (the canonical layout's and an
    /// ONNX graph's `directions`): a stack whose layers differ (Keras's `Bidirectional`
    /// between one-direction layers) under PyTorch's names. Without it every layer has the
    /// directions of layer 0, as in `nn.RNN`, and a reverse tensor missing from a later layer
    /// is a tensor lost.
    directions: Option<Vec<usize>>,
}

impl Names {
    pub fn new(names: &[String]) -> Self {
        let by_key = names
            .iter()
            .map(|n| (n.strip_suffix(":0").unwrap_or(n).to_string(), n.clone()))
            .collect();
        Self {
            by_key,
            directions: None,
        }
    }

    /// The names of `file`, with the directions its metadata records.
    pub fn of_file(file: &crate::file::TensorFile, names: &[String]) -> Self {
        let directions = file
            .metadata()
            .get(crate::config::key::DIRECTIONS)
            .and_then(|v| {
                v.split(',')
                    .map(|d| d.trim().parse().ok().filter(|d| (1..=2).contains(d)))
                    .collect()
            });
        Self {
            directions,
            ..Self::new(names)
        }
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

/// What the detectors found in a file's names: every reading that fits, and the structures
/// they recognised but will not run (each one sentence, naming the tensors' scope).
#[derive(Debug, Default)]
pub(crate) struct Detected {
    pub plans: Vec<Plan>,
    pub refusals: Vec<String>,
}

/// Every reading of the file, in the formats allowed (`only`, or all).
pub(crate) fn detect(names: &Names, only: Option<Naming>) -> Detected {
    let mut found = Detected::default();
    for format in Naming::ALL {
        if only.is_none_or(|o| o == format) {
            format.detect(names, &mut found);
        }
    }
    found
}

/// The prefixes under which `suffix` appears as a whole name component.
fn prefixes_of<'a>(names: &'a Names, suffix: &'a str) -> impl Iterator<Item = String> + 'a {
    names.keys().filter_map(move |k| {
        let prefix = k.strip_suffix(suffix)?;
        (prefix.is_empty() || prefix.ends_with(['.', '/'])).then(|| prefix.to_string())
    })
}

fn detect_pytorch(names: &Names, found: &mut Detected) {
    for p in prefixes_of(names, "weight_ih_l0") {
        let directions: &[&str] = if names.get(&format!("{p}weight_ih_l0_reverse")).is_some() {
            &["", "_reverse"]
        } else {
            &[""]
        };
        let recorded = names.directions.as_ref().filter(|_| p.is_empty());
        let layers = (0..)
            .take_while(|k| *k == 0 || names.get(&format!("{p}weight_ih_l{k}")).is_some())
            .map(|k| {
                let directions = match recorded.and_then(|r| r.get(k)) {
                    Some(&d) => &["", "_reverse"][..d],
                    None => directions,
                };
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
        found.plans.push(Plan {
            naming: Naming::Pytorch,
            prefix: p,
            layers,
        });
    }
}

/// The number Keras's default naming gives a `SimpleRNN` layer (`simple_rnn` → 0,
/// `simple_rnn_3` → 3), or `None` for a name the user chose. Keras numbers the layers of a
/// class in the order they are created, so in a model built in order it is their order in the
/// stack; no other name says anything about order.
fn default_rnn_index(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("simple_rnn")?;
    if rest.is_empty() {
        return Some(0);
    }
    let digits = rest.strip_prefix('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `path` split at its last `/`: (parent, last component); the parent of a top-level name is
/// empty.
fn split_last(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// `path/`, or the empty prefix for the top level.
fn scope_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

/// One Keras layer in a stack: a `SimpleRNN` (one cell path) or a `Bidirectional` wrapper
/// (forward then backward cell path).
struct KerasUnit {
    /// The layer's (or wrapper's) path.
    path: String,
    cells: Vec<String>,
    /// Keras's default number of the (forward) `SimpleRNN`, if its name is the default one.
    index: Option<u64>,
    /// Whether it is a `Bidirectional` wrapper (which needs two cells).
    wrapper: bool,
}

fn detect_keras(names: &Names, found: &mut Detected) {
    // Layer path (`sequential/simple_rnn_1`) → its cell path (with `/simple_rnn_cell` or not).
    let mut layers: BTreeMap<String, String> = BTreeMap::new();
    for key in names.keys() {
        // A cell is known by its recurrent kernel, or by a kernel or bias under a
        // `simple_rnn_cell` (so that a cell missing its recurrent kernel is reported missing,
        // not dropped from the stack).
        let cell = key.strip_suffix("/recurrent_kernel").or_else(|| {
            let cell = key
                .strip_suffix("/kernel")
                .or_else(|| key.strip_suffix("/bias"))?;
            split_last(cell)
                .1
                .starts_with("simple_rnn_cell")
                .then_some(cell)
        });
        let Some(cell) = cell else {
            continue;
        };
        if cell.split('/').any(|c| c == "stacked_rnn_cells") {
            let scope = cell.split("/stacked_rnn_cells").next().unwrap_or(cell);
            let (parent, last) = split_last(scope);
            let why = if last.starts_with("forward_") || last.starts_with("backward_") {
                format!(
                    "Keras layer `{parent}` is Bidirectional(RNN([cell, cell, …])): each \
                     direction runs its own stack of cells, which is not a bidirectional stack \
                     and which rnn does not run; build it from Bidirectional(SimpleRNN(…)) \
                     layers instead"
                )
            } else {
                format!(
                    "Keras layer `{scope}` is an RNN over stacked cells (RNN([cell, cell, …])), \
                     which rnn does not read; build it from SimpleRNN layers instead"
                )
            };
            if !found.refusals.contains(&why) {
                found.refusals.push(why);
            }
            continue;
        }
        let (layer, last) = split_last(cell);
        let layer = if last == "simple_rnn_cell" {
            layer
        } else {
            cell
        };
        layers.insert(layer.to_string(), cell.to_string());
    }
    // Bidirectional wrappers: a parent with a child named `forward_…`; its other child is the
    // backward layer, whatever its name (`backward_…`, or the name of `backward_layer=`).
    let wrappers: BTreeMap<&str, &str> = layers
        .keys()
        .filter_map(|layer| {
            let (parent, last) = split_last(layer);
            last.starts_with("forward_").then_some((parent, last))
        })
        .collect();
    let mut units: BTreeMap<String, KerasUnit> = BTreeMap::new();
    for (layer, cell) in &layers {
        let (parent, last) = split_last(layer);
        let (path, forward, own_name) = match wrappers.get(parent) {
            Some(&fw) => (parent, last == fw, fw.trim_start_matches("forward_")),
            None => (layer.as_str(), true, last),
        };
        let unit = units.entry(path.to_string()).or_insert_with(|| KerasUnit {
            path: path.to_string(),
            cells: Vec::new(),
            index: default_rnn_index(own_name),
            wrapper: wrappers.contains_key(parent),
        });
        if forward {
            unit.cells.insert(0, cell.clone());
        } else {
            unit.cells.push(cell.clone());
        }
    }
    // Group the units by the model that holds them; order each group only where Keras's
    // default numbering gives the order.
    let mut groups: BTreeMap<&str, Vec<&KerasUnit>> = BTreeMap::new();
    for unit in units.values() {
        if unit.wrapper && unit.cells.len() != 2 {
            found.refusals.push(format!(
                "Keras Bidirectional layer `{}` holds {} recurrent layer(s), not a forward and a \
                 backward one",
                unit.path,
                unit.cells.len()
            ));
            continue;
        }
        groups
            .entry(split_last(&unit.path).0)
            .or_default()
            .push(unit);
    }
    for (parent, mut group) in groups {
        let indices: Option<Vec<u64>> = group.iter().map(|u| u.index).collect();
        let ordered = match indices {
            Some(mut indices) => {
                indices.sort_unstable();
                indices.dedup();
                indices.len() == group.len()
            }
            None => false,
        };
        if group.len() == 1 || ordered {
            group.sort_by_key(|u| u.index);
            found
                .plans
                .push(keras_plan(names, scope_prefix(parent), &group));
        } else {
            // Names the user chose say nothing about order: each layer is a candidate.
            for unit in group {
                found
                    .plans
                    .push(keras_plan(names, scope_prefix(&unit.path), &[unit]));
            }
        }
    }
}

fn keras_plan(names: &Names, prefix: String, units: &[&KerasUnit]) -> Plan {
    let layers = units
        .iter()
        .map(|unit| {
            unit.cells
                .iter()
                .map(|cell| CellPlan {
                    w_ih: names.source(&format!("{cell}/kernel"), Transform::Transposed),
                    w_hh: names.source(&format!("{cell}/recurrent_kernel"), Transform::Transposed),
                    b_ih: names.optional(&format!("{cell}/bias"), Transform::AsIs),
                    b_hh: None,
                })
                .collect()
        })
        .collect();
    Plan {
        naming: Naming::Keras,
        prefix,
        layers,
    }
}

fn detect_tf1(names: &Names, found: &mut Detected) {
    // Variable scope of an RNN → (layer, direction) → cell path ending in `basic_rnn_cell`.
    // The scope is the cell's path without the parts TF adds for stacks (`multi_rnn_cell`,
    // `cell_<k>`) and directions (`fw`, `bw`): every distinct scope is a separate RNN.
    let mut scopes: BTreeMap<String, BTreeMap<(usize, usize), Vec<String>>> = BTreeMap::new();
    for key in names.keys() {
        let Some(cell) = key
            .strip_suffix("/kernel")
            .or_else(|| key.strip_suffix("/bias"))
        else {
            continue;
        };
        let (path, last) = split_last(cell);
        if last != "basic_rnn_cell" {
            continue;
        }
        let mut layer = 0;
        let mut direction = 0;
        let mut scope = Vec::new();
        // `fw`/`bw` above `multi_rnn_cell`: bidirectional_dynamic_rnn over two MultiRNNCells,
        // where each direction is a stack of its own (layer 1 forward reads layer 0 forward
        // alone), not a bidirectional stack.
        let mut directed_stack = false;
        let mut directed = false;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            match part {
                "multi_rnn_cell" => directed_stack |= directed,
                "fw" => directed = true,
                "bw" => {
                    directed = true;
                    direction = 1;
                }
                _ => match part.strip_prefix("cell_").and_then(|n| n.parse().ok()) {
                    Some(k) => layer = k,
                    None => scope.push(part),
                },
            }
        }
        if directed_stack {
            let why = format!(
                "the TF1 cells under `{}` are a bidirectional_dynamic_rnn over MultiRNNCells: \
                 each direction runs its own stack, which is not a bidirectional stack and which \
                 rnn does not run; stack_bidirectional_dynamic_rnn builds the stack rnn runs",
                scope.join("/")
            );
            if !found.refusals.contains(&why) {
                found.refusals.push(why);
            }
            continue;
        }
        let paths = scopes
            .entry(scope.join("/"))
            .or_default()
            .entry((layer, direction))
            .or_default();
        if !paths.contains(&cell.to_string()) {
            paths.push(cell.to_string());
        }
    }
    for (scope, cells) in scopes {
        let mut layers: Vec<Vec<CellPlan>> = Vec::new();
        let mut problem = None;
        for ((layer, direction), paths) in cells {
            if paths.len() > 1 {
                problem = Some(format!(
                    "cells {} are all layer {layer}, direction {direction}",
                    paths.join(", ")
                ));
                break;
            }
            if layer != layers.len() && layer + 1 != layers.len() {
                problem = Some(format!(
                    "layer {} has no cell, but layer {layer} does",
                    layers.len()
                ));
                break;
            }
            if layer == layers.len() {
                layers.push(Vec::new());
            }
            if direction != layers[layer].len() {
                problem = Some(format!("layer {layer} has a bw cell but no fw cell"));
                break;
            }
            let cell = &paths[0];
            // BasicRNNCell always has a bias.
            layers[layer].push(CellPlan {
                w_ih: names.source(&format!("{cell}/kernel"), Transform::InputRows),
                w_hh: names.source(&format!("{cell}/kernel"), Transform::RecurrentRows),
                b_ih: Some(names.source(&format!("{cell}/bias"), Transform::AsIs)),
                b_hh: None,
            });
        }
        match problem {
            Some(problem) => found.refusals.push(format!(
                "the TF1 cells under `{}` do not form a stack: {problem}",
                if scope.is_empty() { "/" } else { &scope }
            )),
            None => found.plans.push(Plan {
                naming: Naming::Tf1,
                prefix: scope_prefix(&scope),
                layers,
            }),
        }
    }
}

fn detect_article(names: &Names, found: &mut Detected) {
    let plans = prefixes_of(names, "Wx").map(|p| Plan {
        naming: Naming::Article,
        layers: vec![vec![CellPlan {
            w_ih: names.source(&format!("{p}Wx"), Transform::Transposed),
            w_hh: names.source(&format!("{p}Wy"), Transform::Transposed),
            // The article's cell always adds b.
            b_ih: Some(names.source(&format!("{p}b"), Transform::Flattened)),
            b_hh: None,
        }]],
        prefix: p,
    });
    found.plans.extend(plans);
}

#[cfg(test)]
mod tests;
