//! The typed model description: each layer's configuration beyond its weights (activations,
//! clip, how it reads time, merge mode) and the stack's (masking, layout), what a file
//! records of it ([`Recorded`]). Text exists only at the canonical file's boundary:
//! [`Recorded::to_metadata`] gives the `__metadata__` that [`crate::save_canonical`] writes,
//! [`Recorded::from_metadata`] reads it back; every reader of a foreign format fills a
//! [`Recorded`] directly.

use std::collections::HashMap;
use std::path::Path;

use rnn_core::around::Activation;
use rnn_core::{LayerOptions, LayerWeights, MaskedSteps, MergeMode, Nonlinearity, TimeOrder};

use crate::error::{Result, WeightsError};

/// One layer's configuration beyond its weights.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LayerConfig {
    /// The activation (of the forward direction).
    pub nonlinearity: Nonlinearity,
    /// The reverse direction's activation (ONNX's `activations` name one per direction);
    /// one-direction layers ignore it. [`LayerConfig::new`] makes it the forward's.
    pub nonlinearity_reverse: Nonlinearity,
    /// The clamp of the pre-activation to `[-clip, clip]` (ONNX's `clip`); `None`: none.
    pub clip: Option<f64>,
    /// How a one-direction layer reads time (Keras's `go_backwards`, ONNX's `reverse`).
    pub time: TimeOrder,
    /// How a bidirectional layer joins its directions (Keras's `merge_mode`).
    pub merge_mode: MergeMode,
}

impl LayerConfig {
    /// `torch.nn.RNN`'s layer with `nonlinearity` for both directions.
    pub fn new(nonlinearity: Nonlinearity) -> Self {
        Self {
            nonlinearity,
            nonlinearity_reverse: nonlinearity,
            ..Self::default()
        }
    }

    /// What rnn-core's stack takes of it beyond the activations.
    pub fn options(&self) -> LayerOptions {
        LayerOptions {
            time: self.time,
            merge_mode: self.merge_mode,
        }
    }
}

/// A stack's configuration beyond its weights: what runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackConfig {
    /// One entry per layer, bottom first (or one for every layer).
    pub layers: Vec<LayerConfig>,
    /// What the outputs hold past a sequence's length.
    pub masked_steps: MaskedSteps,
    /// Whether sequence inputs are batch-first, when known.
    pub batch_first: Option<bool>,
    /// Keras's `Masking(mask_value)` before the RNN, if there is one.
    pub mask_value: Option<f64>,
    /// A mask made before the RNN that its input vectors cannot show, if the file records one:
    /// the layer that makes it, in the reader's words (`embedding (Embedding, mask_zero=True)`).
    /// Keras skips the masked steps; a run must be given each sequence's `lengths`
    /// ([`crate::Inputs::apply_masks`]).
    pub input_mask: Option<String>,
}

/// What a file records of its model beyond the weights, as its reader found it; `None` where
/// the file does not say (its framework's default then applies,
/// [`crate::LoadedWeights::recorded_config`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    /// Each layer's configuration, bottom first (or one for every layer).
    pub layers: Option<Vec<LayerConfig>>,
    /// What the outputs hold past a sequence's length.
    pub masked_steps: Option<MaskedSteps>,
    /// Whether sequence inputs are batch-first.
    pub batch_first: Option<bool>,
    /// [`StackConfig::mask_value`].
    pub mask_value: Option<f64>,
    /// [`StackConfig::input_mask`].
    pub input_mask: Option<String>,
}

/// `values` for `layers` layers: one value repeated, or one per layer; `None` for any other
/// count. The one place "one value, or one per layer" is decided, for options, files and
/// configurations alike.
pub fn one_or_each<T: Clone>(values: &[T], layers: usize) -> Option<Vec<T>> {
    match values {
        [one] => Some(vec![one.clone(); layers]),
        many if many.len() == layers => Some(many.to_vec()),
        _ => None,
    }
}

/// Metadata keys written by [`crate::save_canonical`] and read back by
/// [`crate::LoadedWeights::from_file`].
pub(crate) mod key {
    pub const LAYOUT: &str = "layout";
    pub const INPUT_SIZE: &str = "input_size";
    pub const HIDDEN_SIZE: &str = "hidden_size";
    pub const NUM_LAYERS: &str = "num_layers";
    pub const BIDIRECTIONAL: &str = "bidirectional";
    /// Each layer's directions, comma-separated (`1,2,1`): where layers differ.
    pub const DIRECTIONS: &str = "directions";
    pub const BIAS: &str = "bias";
    pub const NONLINEARITY: &str = "nonlinearity";
    pub const NONLINEARITY_REVERSE: &str = "nonlinearity_reverse";
    pub const CLIP: &str = "clip";
    pub const BATCH_FIRST: &str = "batch_first";
    pub const GO_BACKWARDS: &str = "go_backwards";
    pub const REVERSE: &str = "reverse";
    pub const MERGE_MODE: &str = "merge_mode";
    pub const MASKED_STEPS: &str = "masked_steps";
    pub const MASK_VALUE: &str = "mask_value";
    pub const INPUT_MASK: &str = "input_mask";
}

/// The value of the `layout` metadata key in files this crate writes.
pub const CANONICAL_LAYOUT: &str = "rnn/pytorch-v1";

/// The entries of a comma-separated list, trimmed; commas inside parentheses
/// (`affine(2,0.5)`) belong to the entry. `None` where the parentheses do not pair.
pub fn split_entries(value: &str) -> Option<Vec<&str>> {
    let mut entries = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in value.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                entries.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(value[start..].trim());
    (depth == 0).then_some(entries)
}

/// A comma-separated metadata value: its entries parsed ([`split_entries`]), one for every
/// layer or one for all of them.
fn entries<T>(value: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    split_entries(value)?.into_iter().map(parse).collect()
}

/// `values` as one metadata value: the one value when all are equal, else one per layer.
fn joined<T: PartialEq>(values: &[T], name: impl Fn(&T) -> String) -> String {
    match values.first() {
        Some(first) if values.iter().all(|v| v == first) => name(first),
        _ => values.iter().map(name).collect::<Vec<_>>().join(","),
    }
}

impl StackConfig {
    /// Refuses to feed a stack one step at a time (`--stream`, `--batch-size`,
    /// `Model.stream`) where it masks steps: a mask needs each whole sequence.
    ///
    /// # Errors
    /// The refusal in words, naming the mask.
    pub fn check_stepwise(&self) -> std::result::Result<(), String> {
        let ways = "--stream, --batch-size, Model.stream";
        if let Some(value) = self.mask_value {
            return Err(format!(
                "the model masks steps by their values (a Keras Masking layer, mask value \
                 {value}), which a stream does not apply, nor a run batch by batch ({ways}); \
                 run it on whole inputs"
            ));
        }
        if let Some(layer) = &self.input_mask {
            return Err(format!(
                "the model masks steps before its RNN at {layer}, which a stream cannot apply, \
                 nor a run batch by batch ({ways}); run it on whole inputs with each sequence's \
                 `lengths`"
            ));
        }
        Ok(())
    }

    /// PyTorch's `nn.RNN` with one activation for every layer: no Keras options, zeros past
    /// each sequence's length.
    pub fn uniform(nonlinearity: Nonlinearity, batch_first: Option<bool>) -> Self {
        Self {
            layers: vec![LayerConfig::new(nonlinearity)],
            batch_first,
            ..Self::default()
        }
    }

    /// The stack that `weights` (`weights[k][d]`) make with this configuration; batch-first
    /// when [`StackConfig::batch_first`] says so.
    ///
    /// # Errors
    /// When [`StackConfig::layers`] is not one for all layers or one per layer, when a clip is
    /// not positive, and as [`rnn_core::Rnn::with_layer_options`].
    pub fn build(&self, weights: &[Vec<LayerWeights>]) -> candle_core::Result<rnn_core::Rnn> {
        let layers = self.layers_for(weights.len()).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "layer configurations: expected one or {} (one per layer), found {}",
                weights.len(),
                self.layers.len()
            ))
        })?;
        let built = weights
            .iter()
            .zip(&layers)
            .map(|(dirs, config)| {
                dirs.iter()
                    .enumerate()
                    .map(|(d, w)| {
                        let n = if d == 1 {
                            config.nonlinearity_reverse
                        } else {
                            config.nonlinearity
                        };
                        rnn_core::RnnLayer::new(w, n)?.with_clip(config.clip)
                    })
                    .collect::<candle_core::Result<Vec<_>>>()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let options = layers.iter().map(LayerConfig::options).collect();
        Ok(rnn_core::Rnn::with_layer_options(built, options)?
            .with_masked_steps(self.masked_steps)
            .with_batch_first(self.batch_first.unwrap_or(false)))
    }

    /// One configuration per layer of a stack of `layers`: the defaults where none is given,
    /// the one given for all, or each layer's; `None` for another number.
    pub fn layers_for(&self, layers: usize) -> Option<Vec<LayerConfig>> {
        match self.layers.as_slice() {
            [] => Some(vec![LayerConfig::default(); layers]),
            some => one_or_each(some, layers),
        }
    }

    /// Builds the stack to check that `weights` form it before a writer writes them to `path`.
    ///
    /// # Errors
    /// [`WeightsError::Tensor`] naming `path`, as [`StackConfig::build`].
    pub(crate) fn check_writable(&self, path: &Path, weights: &[Vec<LayerWeights>]) -> Result<()> {
        self.build(weights)
            .map(drop)
            .map_err(|error| WeightsError::Tensor {
                path: path.to_owned(),
                error,
            })
    }

    /// What a canonical file records of this configuration for `weights`: every layer's
    /// configuration (a one-direction layer's reverse activation is its forward one).
    pub(crate) fn recorded(&self, weights: &[Vec<LayerWeights>]) -> Recorded {
        let layers = self.layers_for(weights.len()).unwrap_or_default();
        let layers = layers
            .into_iter()
            .zip(weights)
            .map(|(mut config, dirs)| {
                if dirs.len() == 1 {
                    config.nonlinearity_reverse = config.nonlinearity;
                }
                config
            })
            .collect();
        Recorded {
            layers: Some(layers),
            masked_steps: Some(self.masked_steps),
            batch_first: self.batch_first,
            mask_value: self.mask_value,
            input_mask: self.input_mask.clone(),
        }
    }
}

impl Recorded {
    /// The record for the `layers` layers picked from the file: its layer configurations one
    /// for every layer or one per layer, as the reader found them.
    ///
    /// # Errors
    /// [`WeightsError::Unsupported`] when the file records another number of layers, not all
    /// alike (a Keras model's recorded stack, and `--stack` picking other layers).
    pub fn for_layers(&self, path: &Path, layers: usize) -> Result<Self> {
        let Some(configs) = &self.layers else {
            return Ok(self.clone());
        };
        // Layers configured alike give that configuration to any number picked.
        let alike = configs.iter().all(|c| *c == configs[0]);
        let each = match one_or_each(configs, layers) {
            Some(each) => each,
            None if alike && !configs.is_empty() => vec![configs[0]; layers],
            None => {
                return Err(WeightsError::Unsupported {
                    path: path.to_owned(),
                    format: format!(
                        "a model whose {} recorded layers are configured differently, with \
                         {layers} of its layers picked",
                        configs.len()
                    ),
                    advice: "pick the layers it records together (its --stack), whose \
                             configuration it gives layer by layer"
                        .into(),
                })
            }
        };
        Ok(Self {
            layers: Some(each),
            ..self.clone()
        })
    }

    /// Reads what a canonical file's `__metadata__` records (the keys [`crate::save_canonical`]
    /// writes, each value one for every layer or one per layer); a file that records none of
    /// a layer's keys records no layer configuration. The one place metadata text becomes
    /// configuration.
    ///
    /// # Errors
    /// [`WeightsError::Metadata`] naming the key, what it takes and what it holds, when a
    /// value does not parse, or does not give one value or one per layer of the `layers`
    /// picked.
    pub fn from_metadata(
        path: &Path,
        meta: &HashMap<String, String>,
        layers: usize,
    ) -> Result<Self> {
        let bad = |key: &str, expected: &str, found: &str| WeightsError::Metadata {
            path: path.to_owned(),
            key: key.into(),
            expected: expected.into(),
            found: found.into(),
        };
        let names = Nonlinearity::ALL.map(|n| format!("\"{n}\""));
        let activation = format!(
            "one of {}, or a parametrised one such as \"leaky_relu(0.1)\" (or one per layer)",
            names.join(", ")
        );
        let flag = "\"true\" or \"false\" (or one per layer)";
        let clip = |c: &str| match c {
            "none" => Some(None),
            c => c.parse::<f64>().ok().filter(|c| *c > 0.0).map(Some),
        };
        // Each layer key's values, one per layer; `None` where the file lacks the key.
        fn field<T: Clone>(
            meta: &HashMap<String, String>,
            key: &str,
            layers: usize,
            parse: impl Fn(&str) -> Option<T>,
            bad: impl Fn() -> WeightsError,
        ) -> Result<Option<Vec<T>>> {
            let Some(value) = meta.get(key) else {
                return Ok(None);
            };
            entries(value, parse)
                .and_then(|values| one_or_each(&values, layers))
                .map(Some)
                .ok_or_else(bad)
        }
        let value = |key: &str| meta.get(key).map_or("", String::as_str);
        let forward = field(
            meta,
            key::NONLINEARITY,
            layers,
            Nonlinearity::from_name,
            || bad(key::NONLINEARITY, &activation, value(key::NONLINEARITY)),
        )?;
        let reverse = field(
            meta,
            key::NONLINEARITY_REVERSE,
            layers,
            Nonlinearity::from_name,
            || {
                bad(
                    key::NONLINEARITY_REVERSE,
                    &activation,
                    value(key::NONLINEARITY_REVERSE),
                )
            },
        )?;
        let clips = field(meta, key::CLIP, layers, clip, || {
            bad(
                key::CLIP,
                "a positive number or \"none\" (or one per layer)",
                value(key::CLIP),
            )
        })?;
        let go_backwards = field(
            meta,
            key::GO_BACKWARDS,
            layers,
            |b| b.parse().ok(),
            || bad(key::GO_BACKWARDS, flag, value(key::GO_BACKWARDS)),
        )?;
        let reversed = field(
            meta,
            key::REVERSE,
            layers,
            |b| b.parse().ok(),
            || bad(key::REVERSE, flag, value(key::REVERSE)),
        )?;
        let merge = field(meta, key::MERGE_MODE, layers, MergeMode::from_name, || {
            bad(
                key::MERGE_MODE,
                "concat, sum, ave, mul or none (or one per layer)",
                value(key::MERGE_MODE),
            )
        })?;
        let any_layer_key = forward.is_some()
            || reverse.is_some()
            || clips.is_some()
            || go_backwards.is_some()
            || reversed.is_some()
            || merge.is_some();
        let layer_configs = if any_layer_key {
            let mut configs = Vec::with_capacity(layers);
            for k in 0..layers {
                let at = |v: &Option<Vec<bool>>| v.as_ref().is_some_and(|v| v[k]);
                let time = match (at(&go_backwards), at(&reversed)) {
                    (false, false) => TimeOrder::Forward,
                    (true, false) => TimeOrder::GoBackwards,
                    (false, true) => TimeOrder::Reverse,
                    (true, true) => {
                        return Err(bad(
                            key::REVERSE,
                            &format!(
                                "not true for layer {k}, whose go_backwards is true (both read \
                                 from the end; go_backwards keeps the outputs in processing \
                                 order, reverse in time order)"
                            ),
                            value(key::REVERSE),
                        ))
                    }
                };
                let nonlinearity = forward.as_ref().map_or(Nonlinearity::default(), |v| v[k]);
                configs.push(LayerConfig {
                    nonlinearity,
                    nonlinearity_reverse: reverse.as_ref().map_or(nonlinearity, |v| v[k]),
                    clip: clips.as_ref().and_then(|v| v[k]),
                    time,
                    merge_mode: merge.as_ref().map_or(MergeMode::default(), |v| v[k]),
                });
            }
            Some(configs)
        } else {
            None
        };
        let mask_value = match meta.get(key::MASK_VALUE) {
            Some(v) => Some(v.parse().map_err(|_| bad(key::MASK_VALUE, "a number", v))?),
            None => None,
        };
        let masked_steps = match meta.get(key::MASKED_STEPS) {
            Some(v) => Some(
                MaskedSteps::from_name(v)
                    .ok_or_else(|| bad(key::MASKED_STEPS, "\"zeros\" or \"repeat-last\"", v))?,
            ),
            None => None,
        };
        let batch_first = match meta.get(key::BATCH_FIRST) {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| bad(key::BATCH_FIRST, "\"true\" or \"false\"", v))?,
            ),
            None => None,
        };
        Ok(Recorded {
            layers: layer_configs,
            masked_steps,
            batch_first,
            mask_value,
            input_mask: meta.get(key::INPUT_MASK).cloned(),
        })
    }

    /// The metadata that records this configuration in a canonical file (the keys
    /// [`Recorded::from_metadata`] reads): each layer key as one value when every layer has
    /// the same, else one per layer; keys whose every value is the default are left out,
    /// except `nonlinearity`.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut meta = HashMap::new();
        if let Some(layers) = &self.layers {
            let each = |f: &dyn Fn(&LayerConfig) -> String| {
                let values: Vec<String> = layers.iter().map(f).collect();
                joined(&values, String::clone)
            };
            let any = |f: &dyn Fn(&LayerConfig) -> bool| layers.iter().any(f);
            meta.insert(
                key::NONLINEARITY.into(),
                each(&|l| l.nonlinearity.to_string()),
            );
            if any(&|l| l.nonlinearity_reverse != l.nonlinearity) {
                meta.insert(
                    key::NONLINEARITY_REVERSE.into(),
                    each(&|l| l.nonlinearity_reverse.to_string()),
                );
            }
            if any(&|l| l.clip.is_some()) {
                let clip = |l: &LayerConfig| l.clip.map_or("none".into(), |c| c.to_string());
                meta.insert(key::CLIP.into(), each(&clip));
            }
            if any(&|l| l.time == TimeOrder::GoBackwards) {
                let flag = |l: &LayerConfig| (l.time == TimeOrder::GoBackwards).to_string();
                meta.insert(key::GO_BACKWARDS.into(), each(&flag));
            }
            if any(&|l| l.time == TimeOrder::Reverse) {
                let flag = |l: &LayerConfig| (l.time == TimeOrder::Reverse).to_string();
                meta.insert(key::REVERSE.into(), each(&flag));
            }
            if any(&|l| l.merge_mode != MergeMode::Concat) {
                meta.insert(
                    key::MERGE_MODE.into(),
                    each(&|l| l.merge_mode.as_str().into()),
                );
            }
        }
        if let Some(m) = self.masked_steps {
            meta.insert(key::MASKED_STEPS.into(), m.as_str().to_string());
        }
        if let Some(b) = self.batch_first {
            meta.insert(key::BATCH_FIRST.into(), b.to_string());
        }
        if let Some(m) = self.mask_value {
            meta.insert(key::MASK_VALUE.into(), m.to_string());
        }
        if let Some(layer) = &self.input_mask {
            meta.insert(key::INPUT_MASK.into(), layer.clone());
        }
        meta
    }
}

/// One layer around the RNN of a whole model ([`Graph`]), as the file records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The layer's name in the model (`embedding`, `dense_1`).
    pub name: String,
    /// Its class (`Embedding`, `TimeDistributed(Dense)`).
    pub class: String,
    /// What it computes.
    pub kind: PartKind,
}

/// What a layer around the RNN computes, its weights named as the file's tensors.
#[derive(Debug, Clone, PartialEq)]
pub enum PartKind {
    /// Token ids to vectors; `table` `[vocabulary, features]`.
    Embedding {
        /// The table's tensor.
        table: String,
        /// Whether id 0 masks its step.
        mask_zero: bool,
    },
    /// Masks (and zeroes) the steps whose every feature is `value`.
    Masking {
        /// Keras's `mask_value`.
        value: f64,
    },
    /// `x·kernel + bias` over the last axis, then `activation`.
    Dense {
        /// `[in, out]`.
        kernel: String,
        /// `[out]`, where the layer has one.
        bias: Option<String>,
        /// Keras's activation.
        activation: Activation,
    },
    /// An activation alone (`Activation`, `Softmax`).
    Activation(Activation),
    /// Keras's `Softmax` over an axis given by number, which must be its input's last (see
    /// [`rnn_core::around::Layer::SoftmaxAxis`]).
    SoftmaxAxis(usize),
    /// Every axis after the batch's as one.
    Flatten,
    /// Nothing at inference: `Dropout`, `SpatialDropout1D`, `GaussianNoise`,
    /// `GaussianDropout`.
    Identity,
    /// Joins the outputs of several layers (`Concatenate`, `Add`, …).
    Merge(rnn_core::around::Merge),
}

/// Where a layer after the RNN, or a model's output, takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The top recurrent layer's output: every step (`return_sequences`) or the last, merged.
    Output,
    /// The final state of one direction of one recurrent layer (Keras's `return_state`): the
    /// index into the states a run gives, layers bottom first, each layer's forward direction
    /// first.
    State(usize),
    /// The output of [`Graph::after`]`[k]`.
    Layer(usize),
}

/// A layer after the RNN and what it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The layer.
    pub part: Part,
    /// Its inputs in order (one; several for a merge), each read earlier in [`Graph::after`].
    pub inputs: Vec<Source>,
}

/// The layers a file records around its RNN, and what the model outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// The layers between the model's input and the RNN, in order.
    pub before: Vec<Part>,
    /// The layers after the RNN, each after those it reads.
    pub after: Vec<Node>,
    /// Whether the top recurrent layer returns every step (else its last, merged).
    pub return_sequences: bool,
    /// A Keras model's outputs in its order, each named as Keras names it (its layer's name),
    /// with where its value comes from; empty for an ONNX graph, whose own are its outputs.
    pub outputs: Vec<(String, Source)>,
    /// What each [`Source::State`] is, in words (`` `birnn` (backward)``).
    pub states: Vec<String>,
    /// An ONNX graph's own nodes around its RNN nodes, which rnn evaluates in place of
    /// `before` and `after` (then empty).
    pub onnx: Option<OnnxNodes>,
}

impl Graph {
    /// The graph around an ONNX model's RNN nodes.
    pub(crate) fn onnx(program: crate::onnx_program::Program) -> Self {
        Graph {
            before: Vec::new(),
            after: Vec::new(),
            return_sequences: false,
            outputs: Vec::new(),
            states: Vec::new(),
            onnx: Some(OnnxNodes(std::sync::Arc::new(program))),
        }
    }

    /// How the user runs the RNN alone instead, in words.
    pub fn alone(&self) -> &'static str {
        run_alone(self.onnx.is_some())
    }

    /// What runs around the RNN, in words: each layer's name and class, or each ONNX node.
    pub fn around(&self) -> Vec<String> {
        match &self.onnx {
            Some(nodes) => nodes
                .nodes()
                .into_iter()
                .filter(|n| n != crate::onnx_program::STACK_LABEL)
                .collect(),
            None => self
                .before
                .iter()
                .chain(self.after.iter().map(|n| &n.part))
                .map(|p| format!("{} ({})", p.name, p.class))
                .collect(),
        }
    }

    /// The model's outputs by name, in its order.
    pub fn outputs(&self) -> Vec<String> {
        match &self.onnx {
            Some(nodes) => nodes.outputs().to_vec(),
            None => self.outputs.iter().map(|(name, _)| name.clone()).collect(),
        }
    }
}

/// How the user runs a whole model's RNN alone instead, in words: an ONNX graph's (`onnx`)
/// by exporting it alone, a Keras model's with `--stack`.
pub(crate) fn run_alone(onnx: bool) -> &'static str {
    if onnx {
        "export the nn.RNN alone (torch.onnx.export(rnn, ..., dynamo=False))"
    } else {
        "pick its RNN alone with --stack (stack= in Python)"
    }
}

/// The nodes of an ONNX graph around its RNN nodes, as rnn evaluates them (equal only to
/// itself).
#[derive(Debug, Clone)]
pub struct OnnxNodes(pub(crate) std::sync::Arc<crate::onnx_program::Program>);

impl PartialEq for OnnxNodes {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl OnnxNodes {
    /// Each node in the order a run evaluates it: its name and op (`Gemm node '/fc/Gemm'`),
    /// or `the RNN nodes` where the recurrence runs.
    pub fn nodes(&self) -> Vec<String> {
        self.0.labels()
    }

    /// The graph's input, by name.
    pub fn input(&self) -> &str {
        &self.0.input
    }

    /// The graph input that gives the RNN its initial state (a model exported as
    /// `forward(x, h0)`), taken as a run's `h0`; `None` where the RNN starts from zeros.
    pub fn state_input(&self) -> Option<&str> {
        self.0.stack.state.as_deref()
    }

    /// The graph's outputs, in its order.
    pub fn outputs(&self) -> &[String] {
        &self.0.outputs
    }

    /// The initialisers and `Constant`s the nodes read, with their shapes.
    pub fn constants(&self) -> Vec<(&str, Vec<usize>)> {
        self.0
            .constants
            .iter()
            .map(|(n, t)| (n.as_str(), t.dims().to_vec()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
