//! A `.keras` archive's `config.json`: the RNN's layers in order with their options, checked
//! against the weights' layers and recorded as metadata.

use std::collections::HashMap;

use rnn_core::{MergeMode, Nonlinearity, TimeOrder};
use serde_json::Value;

use super::h5::H5Layer;
use super::{COMPUTE_DTYPE, NOT_RUN, RETURN_SEQUENCES, STACK};
use crate::config::{Graph, LayerConfig, Node, Part, PartKind, Recorded, Source};
use rnn_core::around::{Activation, Merge};

/// What a config says of its model: the metadata keys of the reader's notes, the RNN's
/// configuration, and the layers around it where rnn runs the model whole.
pub(crate) type Described = (HashMap<String, String>, Recorded, Option<Graph>);

/// One recurrent layer of a `.keras` config.
#[derive(Debug)]
struct RnnLayer {
    name: String,
    /// The Keras layer it is (or is a cell of), scoped: what other layers read.
    layer: String,
    /// 2 for a `Bidirectional` layer, else 1.
    directions: usize,
    /// Whether it is a cell of `RNN(StackedRNNCells(…))`.
    stacked: bool,
    units: u64,
    activation: Nonlinearity,
    go_backwards: bool,
    return_sequences: bool,
    /// A Bidirectional's `merge_mode` (Keras's `merge_mode=None` is [`MergeMode::Separate`]);
    /// a one-direction layer ignores it.
    merge_mode: MergeMode,
    /// Keras's `zero_output_for_mask`: zeros at masked steps, not the last output repeated.
    zero_output_for_mask: bool,
}

/// What a `.keras` config says about the model's RNN.
#[derive(Debug)]
pub(super) struct ModelConfig {
    rnn: Vec<RnnLayer>,
    /// The leading `Masking` layer's name and mask value, if there is one.
    mask_value: Option<(String, f64)>,
    /// A layer before a recurrent one whose mask the RNN's input vectors cannot show
    /// (`Embedding(mask_zero=True)`, a `Masking` after another layer), in words.
    input_mask: Option<String>,
    /// The dtypes the layers compute in, where a layer's dtype policy is not float32
    /// (`mixed_float16` computes in float16), with the policy's name.
    compute_dtypes: Vec<(String, String)>,
    /// Layers that are not part of the RNN, and why (`dense (Dense)`).
    not_run: Vec<String>,
    /// Whether the RNN layers are one contiguous stack fed by the model's input.
    contiguous: bool,
    /// Every other layer (InputLayer aside), in order, with whether it comes after the RNN.
    around: Vec<Around>,
    /// Whether a layer that is not recurrent sits between two recurrent ones.
    split: bool,
    /// The last layer's own name: the model's output, as Keras names it, where the model is a
    /// chain.
    output: String,
    /// A Functional model's connections past its last recurrent layer.
    wiring: Option<Wiring>,
    /// The last layer in the list (InputLayers aside), scoped: a chain's output.
    last: String,
    /// Whether tf-keras (Keras 2) wrote the file, whose `hard_sigmoid` is not Keras 3's.
    keras2: bool,
}

/// A layer of the model that is not recurrent.
#[derive(Debug)]
struct Around {
    name: String,
    class: String,
    after_rnn: bool,
    /// The recurrent layers listed before it: one between recurrent layers has fewer than all.
    rnn_before: usize,
    config: Value,
    /// What it reads: each layer's name (scoped) and output index, in order.
    reads: Vec<Ref>,
}

/// A layer's output: its (scoped) name and which of its outputs (a `return_state` layer's
/// states follow its output: 1, 2, …).
type Ref = (String, usize);

/// A Functional model's connections where they are not one chain: for each layer after its
/// last recurrent one, what it reads; the names that stand for another layer's output (a
/// nested model's name for its last layer, its input layer for what feeds it); and the
/// model's outputs in Keras's order.
#[derive(Debug, Default)]
struct Wiring {
    reads: HashMap<String, Vec<Ref>>,
    aliases: HashMap<String, Ref>,
    outputs: Vec<Ref>,
}

impl Wiring {
    /// `r` with the names that stand for another layer's output replaced by that layer's.
    fn resolve(&self, r: &Ref) -> std::result::Result<Ref, String> {
        let mut r = r.clone();
        // Each alias names a layer listed before it, so this ends; the bound guards a cycle.
        for _ in 0..=self.aliases.len() {
            match self.aliases.get(&r.0) {
                Some(target) if r.1 == 0 => r = target.clone(),
                Some(_) => {
                    return Err(format!(
                        "output {} of the nested model `{}`, which rnn reads as one output",
                        r.1, r.0
                    ))
                }
                None => return Ok(r),
            }
        }
        Err(format!("`{}`, whose aliases form a cycle", r.0))
    }
}

impl ModelConfig {
    /// The metadata keys of the reader's notes (the stack, the layers not run, compute
    /// dtypes) and the model's configuration; checks the config against the weights' layers.
    pub(super) fn metadata(&self, h5: &[H5Layer]) -> std::result::Result<Described, String> {
        let mut meta = HashMap::new();
        for layer in &self.rnn {
            if !h5.iter().any(|l| l.recurrent && l.name == layer.name) {
                let found: Vec<String> = h5
                    .iter()
                    .filter(|l| l.recurrent)
                    .take(8)
                    .map(|l| format!("`{}`", l.name))
                    .collect();
                return Err(format!(
                    "the model's config names the recurrent layer `{0}`, whose SimpleRNN cell's \
                     weights the file does not hold (expected `{0}/simple_rnn_cell/kernel` and \
                     `recurrent_kernel`, found recurrent layers {1})",
                    layer.name,
                    if found.is_empty() {
                        "none".to_string()
                    } else {
                        found.join(", ")
                    }
                ));
            }
        }
        if self.rnn.is_empty() {
            return Err("config.json holds no SimpleRNN or Bidirectional(SimpleRNN) layer".into());
        }
        let graph = match self.graph(h5) {
            Ok(graph) => graph,
            Err(blockers) => {
                meta.insert(NOT_RUN.into(), blockers.join(", "));
                None
            }
        };
        // Run whole, the recurrent layers are one stack with the options the config records.
        let contiguous = self.contiguous || graph.is_some();
        // A leading Masking masks the model's input, which reaches the RNN as it is only when
        // the stack is contiguous; else its mask is hidden from the stack's input as well.
        let hidden_masking = match &self.mask_value {
            Some((name, value)) if !self.contiguous => {
                Some(format!("`{name}` (Masking, mask_value={value})"))
            }
            _ => None,
        };
        let input_mask = self.input_mask.clone().or(hidden_masking);
        if !self.compute_dtypes.is_empty() {
            let words: Vec<String> = self
                .compute_dtypes
                .iter()
                .map(|(dtype, policy)| format!("{dtype} (dtype policy {policy})"))
                .collect();
            meta.insert(COMPUTE_DTYPE.into(), words.join(", "));
        }
        if !contiguous {
            // The user picks the layers; the options of the ones picked come from flags.
            let recorded = Recorded {
                input_mask,
                ..Recorded::default()
            };
            return Ok((meta, recorded, graph));
        }
        meta.insert(
            STACK.into(),
            self.rnn
                .iter()
                .map(|l| format!("{}/", l.name))
                .collect::<Vec<_>>()
                .join(","),
        );
        if let Some(top) = self.rnn.last() {
            meta.insert(RETURN_SEQUENCES.into(), top.return_sequences.to_string());
        }
        let layers = self
            .rnn
            .iter()
            .map(|l| LayerConfig {
                time: if l.go_backwards {
                    TimeOrder::GoBackwards
                } else {
                    TimeOrder::Forward
                },
                merge_mode: l.merge_mode,
                ..LayerConfig::new(l.activation)
            })
            .collect();
        // What the outputs hold at masked steps is the top layer's choice (the layers below
        // are read only at valid steps); Bidirectional zeroes them either way.
        let zeros = self
            .rnn
            .last()
            .is_some_and(|top| top.zero_output_for_mask && top.return_sequences);
        let recorded = Recorded {
            layers: Some(layers),
            batch_first: Some(true),
            masked_steps: zeros.then_some(rnn_core::MaskedSteps::Zeros),
            mask_value: self.mask_value.as_ref().map(|(_, value)| *value),
            input_mask,
        };
        Ok((meta, recorded, graph))
    }

    /// The layers around the RNN as a [`Graph`] rnn runs whole, their weights found among
    /// `h5`'s layers by name; `Ok(None)` for a model that is its RNN alone (an `InputLayer`
    /// and a leading `Masking` aside, which the RNN's own run applies). `Err` lists each layer
    /// that keeps rnn from running the model whole, and why, in words.
    fn graph(&self, h5: &[H5Layer]) -> std::result::Result<Option<Graph>, Vec<String>> {
        let Some(top) = self.rnn.last() else {
            return Ok(None);
        };
        // The model's outputs by the names Keras gives them, and the layer outputs they are.
        let outputs: Vec<(String, Ref)> = match &self.wiring {
            Some(w) => w.outputs.iter().map(|r| (r.0.clone(), r.clone())).collect(),
            None => vec![(self.output.clone(), (self.last.clone(), 0))],
        };
        let only_rnn = outputs.len() == 1 && outputs[0].1 == (top.layer.clone(), 0);
        let plain = self.around.is_empty()
            || (self.around.len() == 1 && self.mask_value.is_some() && !self.around[0].after_rnn);
        if plain && only_rnn && !self.split {
            return Ok(None);
        }
        let mut blockers = Vec::new();
        if self.split {
            blockers.push(
                "a layer between two recurrent layers (rnn runs one stack of them)".to_string(),
            );
        }
        let return_sequences = top.return_sequences;
        if top.merge_mode == MergeMode::Separate {
            // Keras gives the two directions as two outputs.
            blockers.push(format!(
                "{} (Bidirectional: merge_mode=None, whose two outputs rnn gives running the \
                 RNN alone: output_forward and output_backward)",
                top.name
            ));
        }
        // Whether the RNN receives Keras's step mask: from a Masking or a mask_zero Embedding
        // before it, through the other layers before it.
        let rnn_masked = self.around.iter().any(|l| {
            !l.after_rnn
                && (l.class == "Masking"
                    || (l.class == "Embedding" && l.config["mask_zero"].as_bool() == Some(true)))
        });
        // Per layer after the RNN: its rank and whether Keras gives it the step mask (which
        // passes through the RNN where it returns every step, and on until a Flatten).
        let mut seen = Seen::default();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut first = true;
        for layer in &self.around {
            if !layer.after_rnn {
                match part(layer, first, h5, self.keras2) {
                    Ok(part) => before.push(part),
                    Err(why) => blockers.push(format!("{} ({}: {why})", layer.name, layer.class)),
                }
                first = false;
                continue;
            }
            first = false;
            if layer.rnn_before < self.rnn.len() {
                // Between recurrent layers: a dropout, which the stack passes through (any
                // other layer there is refused above, `split`).
                continue;
            }
            let read = layer
                .reads
                .iter()
                .map(|r| self.source(r, &seen))
                .collect::<std::result::Result<Vec<_>, String>>();
            let inputs = match read {
                Ok(inputs) => inputs,
                Err(why) => {
                    blockers.push(format!("{} ({}: reads {why})", layer.name, layer.class));
                    seen.push(&layer.name, 0, false);
                    continue;
                }
            };
            let shape = |s: &Source| match *s {
                Source::Output => (
                    if return_sequences { 3 } else { 2 },
                    rnn_masked && return_sequences,
                ),
                Source::State(_) => (2, false),
                Source::Layer(j) => seen.shapes[j],
            };
            let ranks: Vec<usize> = inputs.iter().map(|s| shape(s).0).collect();
            let masked = inputs.iter().any(|s| shape(s).1) && layer.class != "Flatten";
            let rank = match layer.class.as_str() {
                "Flatten" => 2,
                _ => ranks.first().copied().unwrap_or(0),
            };
            seen.push(&layer.name, rank, masked);
            if masked && layer.class == "Softmax" {
                // Keras's Softmax adds a large negative where its mask is false, broadcasting
                // a [batch, steps] mask against its input's last axes.
                blockers.push(format!(
                    "{} ({}: a Softmax that Keras gives the step mask to, which it applies to \
                     its input's last axes; use Activation(\"softmax\") or \
                     Dense(activation=\"softmax\"))",
                    layer.name, layer.class
                ));
                continue;
            }
            let part = match part(layer, false, h5, self.keras2) {
                Ok(part) => part,
                Err(why) => {
                    blockers.push(format!("{} ({}: {why})", layer.name, layer.class));
                    continue;
                }
            };
            let merge = matches!(part.kind, PartKind::Merge(_));
            let masked_at_steps = matches!(
                part.kind,
                PartKind::Merge(Merge::Maximum | Merge::Minimum | Merge::Multiply)
            );
            if masked && masked_at_steps && !self.keras2 {
                // Keras 3 gives masked steps a value of its own there: Maximum and Minimum the
                // unmasked input's, Multiply 1 for a masked input and 0 where all are masked.
                blockers.push(format!(
                    "{} ({}: over inputs Keras 3 gives the step mask to, whose masked steps it \
                     computes otherwise; rnn runs Concatenate, Add, Subtract and Average there)",
                    layer.name, layer.class
                ));
                continue;
            }
            let fits = match &part.kind {
                PartKind::Merge(rnn_core::around::Merge::Subtract) => inputs.len() == 2,
                PartKind::Merge(_) => !inputs.is_empty(),
                _ => inputs.len() == 1,
            };
            if !fits || (merge && ranks.iter().any(|&r| r != rank)) {
                blockers.push(format!(
                    "{} ({}: reads {} inputs of ranks {ranks:?}, which it does not take)",
                    layer.name,
                    layer.class,
                    inputs.len()
                ));
                continue;
            }
            after.push(Node { part, inputs });
        }
        let mut named = Vec::new();
        for (name, r) in &outputs {
            match self.source(r, &seen) {
                Ok(source) => named.push((name.clone(), source)),
                Err(why) => blockers.push(format!("the model's output {name} ({why})")),
            }
        }
        if !blockers.is_empty() {
            return Err(blockers);
        }
        let states = self
            .rnn
            .iter()
            .flat_map(|l| match l.directions {
                2 => vec![
                    format!("`{}` (forward)", l.name),
                    format!("`{}` (backward)", l.name),
                ],
                _ => vec![format!("`{}`", l.name)],
            })
            .collect();
        Ok(Some(Graph {
            before,
            after,
            return_sequences,
            outputs: unique_names(named),
            states,
            onnx: None,
        }))
    }

    /// Where the layer output `r` comes from for a layer after the RNN, the layers after it
    /// seen so far being `seen`; `Err` says why rnn does not give it, in words.
    fn source(&self, r: &Ref, seen: &Seen) -> std::result::Result<Source, String> {
        let r = match &self.wiring {
            Some(w) => w.resolve(r)?,
            None => r.clone(),
        };
        let (name, tensor) = (r.0.as_str(), r.1);
        if let Some(&j) = seen.index.get(name) {
            return match tensor {
                0 => Ok(Source::Layer(j)),
                t => Err(format!("output {t} of `{name}`, which has one")),
            };
        }
        let top = self.rnn.last().map(|l| l.layer.as_str());
        if top == Some(name) && tensor == 0 {
            return Ok(Source::Output);
        }
        let mut slots = Vec::new();
        let mut offset = 0;
        for layer in &self.rnn {
            if layer.layer == name {
                if layer.stacked && tensor > 0 {
                    return Err(format!(
                        "a state of `{name}` (stacked cells, whose states rnn does not give)"
                    ));
                }
                if layer.merge_mode == MergeMode::Separate && tensor > 0 {
                    return Err(format!(
                        "output {tensor} of `{name}` (Bidirectional with merge_mode=None, whose \
                         outputs rnn does not give by index)"
                    ));
                }
                slots.extend(offset..offset + layer.directions);
            }
            offset += layer.directions;
        }
        if !slots.is_empty() {
            return match tensor {
                0 => Err(format!(
                    "the output of `{name}`, a recurrent layer below the top one (rnn gives \
                     the top one's output and each layer's final states)"
                )),
                t => slots.get(t - 1).map(|&k| Source::State(k)).ok_or_else(|| {
                    format!("output {t} of `{name}`, which has {} states", slots.len())
                }),
            };
        }
        if self.around.iter().any(|l| l.name == name && !l.after_rnn) {
            return Err(format!(
                "`{name}`, a layer before the RNN (rnn runs layers after it on the RNN's \
                 outputs)"
            ));
        }
        Err(format!(
            "`{name}`, which is not a layer rnn runs after the RNN"
        ))
    }
}

/// The layers after the RNN read so far: each one's index by name, and its rank and whether
/// Keras gives it the step mask.
#[derive(Default)]
struct Seen<'a> {
    index: HashMap<&'a str, usize>,
    shapes: Vec<(usize, bool)>,
}

impl<'a> Seen<'a> {
    fn push(&mut self, name: &'a str, rank: usize, masked: bool) {
        self.index.entry(name).or_insert(self.shapes.len());
        self.shapes.push((rank, masked));
    }
}

/// `named` with each name that repeats made unique as tf-keras names a model's outputs
/// (`Functional.output_names`: the second `birnn` becomes `birnn_1`, the third `birnn_2`,
/// skipping a name already taken). Keras 3 repeats the name, which cannot name two arrays.
fn unique_names(named: Vec<(String, Source)>) -> Vec<(String, Source)> {
    let mut taken = std::collections::HashSet::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    named
        .into_iter()
        .map(|(name, source)| {
            let mut proposal = name.clone();
            while taken.contains(&proposal) {
                let count = counts.entry(name.clone()).or_insert(1);
                proposal = format!("{name}_{count}");
                *count += 1;
            }
            taken.insert(proposal.clone());
            (proposal, source)
        })
        .collect()
}

/// The layers that compute nothing at inference (Keras's `predict`), through which the mask
/// passes.
const IDENTITIES: [&str; 7] = [
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
];

/// The layer as a [`Part`] of a whole model, or why rnn does not run it there. `first`: it
/// takes the model's input.
fn part(
    layer: &Around,
    first: bool,
    h5: &[H5Layer],
    keras2: bool,
) -> std::result::Result<Part, String> {
    let cfg = &layer.config;
    let weights = |count: usize| -> std::result::Result<Vec<String>, String> {
        let found = h5
            .iter()
            .find(|l| !l.recurrent && l.name == layer.name)
            .map(|l| l.weights.clone())
            .unwrap_or_default();
        match found.len() {
            n if n == count => Ok(found),
            0 => Err(format!(
                "expected {count} weight tensors, found none by this layer (rnn runs whole \
                 models from .keras files, Keras HDF5 files and tf-keras SavedModel folders)"
            )),
            n => Err(format!("expected {count} weight tensors, found {n}")),
        }
    };
    let activation = |cfg: &Value| -> std::result::Result<Activation, String> {
        match &cfg["activation"] {
            Value::Null => Ok(Activation::Elementwise(rnn_core::Nonlinearity::Linear)),
            Value::String(name) => match name.as_str() {
                "softmax" | "log_softmax" => Activation::from_name(name),
                _ => keras_nonlinearity(name, keras2).map(Activation::Elementwise),
            }
            .ok_or_else(|| format!("activation {name:?} is not one rnn computes")),
            other => Err(format!("activation {other} is not one rnn computes")),
        }
    };
    let dense = |cfg: &Value| -> std::result::Result<PartKind, String> {
        let use_bias = cfg["use_bias"].as_bool().unwrap_or(true);
        let mut names = weights(1 + usize::from(use_bias))?.into_iter();
        Ok(PartKind::Dense {
            kernel: names.next().unwrap_or_default(),
            bias: names.next(),
            activation: activation(cfg)?,
        })
    };
    let merge = match layer.class.as_str() {
        "Concatenate" => Some(Merge::Concatenate {
            axis: match &cfg["axis"] {
                Value::Null => -1,
                axis => axis
                    .as_i64()
                    .ok_or(format!("axis {axis} is not an integer"))?,
            },
        }),
        "Add" => Some(Merge::Add),
        "Subtract" => Some(Merge::Subtract),
        "Multiply" => Some(Merge::Multiply),
        "Average" => Some(Merge::Average),
        "Maximum" => Some(Merge::Maximum),
        "Minimum" => Some(Merge::Minimum),
        _ => None,
    };
    if let Some(merge) = merge {
        if !layer.after_rnn {
            return Err("a merge before the RNN, where rnn runs one chain of layers".into());
        }
        return Ok(Part {
            name: layer.name.clone(),
            class: layer.class.clone(),
            kind: PartKind::Merge(merge),
        });
    }
    let (class, kind) = match layer.class.as_str() {
        "Embedding" if !first => {
            return Err("an Embedding that does not take the model's input".into())
        }
        "Embedding" => {
            let table = weights(1)?.remove(0);
            let mask_zero = cfg["mask_zero"].as_bool().unwrap_or(false);
            (
                "Embedding".to_string(),
                PartKind::Embedding { table, mask_zero },
            )
        }
        "Masking" if layer.after_rnn => {
            return Err("after the RNN, where rnn does not take a new mask".into())
        }
        "Flatten" if !layer.after_rnn => {
            return Err("before the RNN, which takes a sequence".into())
        }
        "Masking" => {
            let value = cfg["mask_value"]
                .as_f64()
                .ok_or("expected a numeric mask_value")?;
            ("Masking".to_string(), PartKind::Masking { value })
        }
        "Flatten" => ("Flatten".to_string(), PartKind::Flatten),
        class if IDENTITIES.contains(&class) => (layer.class.clone(), PartKind::Identity),
        "Dense" => ("Dense".to_string(), dense(cfg)?),
        "TimeDistributed" if cfg["layer"]["class_name"].as_str() == Some("Dense") => (
            "TimeDistributed(Dense)".to_string(),
            dense(&cfg["layer"]["config"])?,
        ),
        "Activation" => (
            "Activation".to_string(),
            PartKind::Activation(activation(cfg)?),
        ),
        "Softmax" => {
            // Keras's default -1, also as a list of one (Keras 3 writes either).
            let axis = match &cfg["axis"] {
                Value::Array(axes) if axes.len() == 1 => &axes[0],
                axis => axis,
            };
            let kind = match axis.as_i64() {
                _ if axis.is_null() => PartKind::Activation(Activation::Softmax),
                Some(-1) => PartKind::Activation(Activation::Softmax),
                Some(0) => return Err("a softmax over axis 0, the batch".into()),
                Some(n) if n > 0 => PartKind::SoftmaxAxis(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => return Err(format!("a softmax over axis {axis}, not the last")),
            };
            ("Softmax".to_string(), kind)
        }
        _ => {
            return Err(
                "not a layer rnn runs around an RNN (it runs Embedding, Masking, \
                        Dense, TimeDistributed(Dense), Activation, Softmax, Flatten, the \
                        dropout and noise layers, and after the RNN Concatenate, Add, \
                        Subtract, Multiply, Average, Maximum and Minimum)"
                    .into(),
            )
        }
    };
    Ok(Part {
        name: layer.name.clone(),
        class,
        kind,
    })
}

/// The model's layers from `config.json`: a `Sequential`, or a `Functional` whose layers form
/// one chain.
pub(super) fn model_config(
    config: &Value,
    keras2: bool,
) -> std::result::Result<ModelConfig, String> {
    let mut flat = Vec::new();
    let mut masks = Vec::new();
    let mut wiring = Wiring::default();
    flatten(config, "", 0, &mut flat, &mut masks, &mut wiring)?;
    let wiring = (!wiring.outputs.is_empty()).then_some(wiring);
    let layers = &flat;
    check_mask_ops(&masks, layers)?;
    let mut out = ModelConfig {
        rnn: Vec::new(),
        mask_value: None,
        input_mask: None,
        compute_dtypes: Vec::new(),
        not_run: Vec::new(),
        contiguous: true,
        around: Vec::new(),
        split: false,
        output: String::new(),
        wiring: None,
        last: String::new(),
        keras2,
    };
    // The layer before each in the list (InputLayers aside), which it reads in a chain.
    let mut previous = String::new();
    let mut inputs_seen = false;
    // The RNN must be InputLayer, then at most one Masking, then the recurrent layers in a row;
    // any other layer is listed as not run, and one before or among them breaks the stack.
    let mut after_rnn = false;
    // A layer after a recurrent one that computes something at inference (a dropout does not).
    let mut computing_after_rnn = false;
    // A mask made by a layer seen so far, hidden from a recurrent layer that comes later.
    let mut pending_mask: Option<String> = None;
    for (scope, layer) in layers {
        let class = layer["class_name"].as_str().unwrap_or("");
        let cfg = &layer["config"];
        let name = format!("{scope}{}", cfg["name"].as_str().unwrap_or(""));
        if class != "InputLayer" {
            // A chain's output is named by its last top-level layer: a nested model's name
            // where the chain ends inside one (tf-keras's output_names).
            out.output = match scope.split('/').next() {
                Some(outer) if !outer.is_empty() => outer.to_string(),
                _ => cfg["name"].as_str().unwrap_or("").to_string(),
            };
        }
        if class != "InputLayer" {
            // Every layer's, since a whole model runs them all (a Dense in float16 too).
            for policy in [&cfg["dtype"], &cfg["layer"]["config"]["dtype"]] {
                if let Some(computed) = compute_dtype(policy) {
                    if !out.compute_dtypes.contains(&computed) {
                        out.compute_dtypes.push(computed);
                    }
                }
            }
        }
        if !matches!(class, "InputLayer" | "SimpleRNN" | "RNN" | "Bidirectional") {
            let reads = wiring
                .as_ref()
                .and_then(|w| w.reads.get(&name).cloned())
                .unwrap_or_else(|| vec![(previous.clone(), 0)]);
            out.around.push(Around {
                name: name.clone(),
                class: class.to_string(),
                after_rnn: !out.rnn.is_empty(),
                rnn_before: out.rnn.len(),
                config: cfg.clone(),
                reads,
            });
        }
        if class != "InputLayer" {
            previous = name.clone();
        }
        match class {
            "InputLayer" if scope.is_empty() && inputs_seen => {
                return Err(format!(
                    "the model takes several inputs (`{name}` is its second); rnn runs models \
                     of one input"
                ))
            }
            "InputLayer" => inputs_seen |= scope.is_empty(),
            "Masking"
                if out.rnn.is_empty() && out.not_run.is_empty() && out.mask_value.is_none() =>
            {
                let value = cfg["mask_value"].as_f64().ok_or_else(|| {
                    format!("Masking layer `{name}`: expected a numeric mask_value")
                })?;
                out.mask_value = Some((name, value));
            }
            "SimpleRNN" | "RNN" | "Bidirectional" => {
                if out.input_mask.is_none() {
                    out.input_mask = pending_mask.take();
                }
                if after_rnn || !out.not_run.is_empty() {
                    out.contiguous = false;
                }
                out.split |= computing_after_rnn;
                let stacked = stacked_cells(class, cfg, &name, keras2)?;
                let mut rnns = match stacked {
                    Some(cells) => cells,
                    None => {
                        let mut rnn = rnn_layer(class, cfg, &name, keras2)?;
                        rnn.name = name.clone();
                        rnn.layer = name.clone();
                        vec![rnn]
                    }
                };
                for rnn in rnns.drain(..) {
                    if let Some(below) = out.rnn.last() {
                        if !below.return_sequences {
                            return Err(format!(
                                "layer `{}` returns its last step only (return_sequences=False) \
                                 but feeds the recurrent layer `{}`",
                                below.name, rnn.name
                            ));
                        }
                    }
                    out.rnn.push(rnn);
                }
            }
            _ => {
                after_rnn = !out.rnn.is_empty();
                computing_after_rnn |= after_rnn && !IDENTITIES.contains(&class);
                if pending_mask.is_none() {
                    pending_mask = mask_made_by(class, cfg, &name);
                }
                out.not_run.push(format!("{name} ({class})"));
            }
        }
    }
    out.wiring = wiring;
    out.last = previous;
    Ok(out)
}

/// Models nested in models, deeper than Keras users build (config.json is bounded in size, and
/// this bounds the walk's recursion).
const MAX_NESTING: usize = 32;

/// The layers of a `Sequential` or `Functional` model in order, each with the scope its
/// weights are named under (`encoder/` for the layers of a nested model `encoder`): a model
/// inside a model is walked in its place, as Keras runs it. A nested `Functional` model must be
/// one chain (see [`check_chain`]); the outermost one must be a chain up to its last recurrent
/// layer, and past it may branch, join and have several outputs, recorded in `wiring`.
fn flatten<'a>(
    model: &'a Value,
    scope: &str,
    depth: usize,
    out: &mut Vec<(String, &'a Value)>,
    masks: &mut Vec<MaskOp>,
    wiring: &mut Wiring,
) -> std::result::Result<(), String> {
    let class = model["class_name"].as_str().unwrap_or("");
    let layers = model["config"]["layers"]
        .as_array()
        .ok_or_else(|| format!("expected config.layers, a list, in a {class:?} model"))?;
    if depth > MAX_NESTING {
        return Err(format!("models nested more than {MAX_NESTING} deep"));
    }
    // Where the chain ends: the whole list, or for the outermost Functional model its last
    // recurrent layer, past which `wiring` records what each layer reads.
    // The layers of the chain in order: the whole list, or for the outermost Functional model
    // the path from its input to its last recurrent layer, past which (whatever their place
    // in the list) `wiring` records what each other layer reads.
    let mut chain: Vec<usize> = (0..layers.len()).collect();
    match class {
        "Sequential" => {}
        "Functional" | "Model" => {
            let ops = mask_ops(layers);
            let outputs = output_refs(&model["config"]["output_layers"])?;
            let last_rnn = layers.iter().rposition(recurrent);
            if let (0, Some(last), false) = (depth, last_rnn, outputs.is_empty()) {
                chain = path_to(layers, last, &ops);
                let on_chain: Vec<Value> = chain.iter().map(|&k| layers[k].clone()).collect();
                check_chain(&on_chain, &ops)?;
                let member = membership(&chain, layers.len());
                if let Some(off) = (0..layers.len()).find(|&k| !member[k] && recurrent(&layers[k]))
                {
                    return Err(format!(
                        "layer `{}` is recurrent and off the path from the model's input to \
                         `{}`; rnn runs one stack of recurrent layers",
                        layers[off]["config"]["name"].as_str().unwrap_or(""),
                        layers[last]["config"]["name"].as_str().unwrap_or("")
                    ));
                }
                wiring.outputs = outputs;
            } else {
                check_chain(layers, &ops)?;
                // The chain's last layer must be the model's one output (Keras lists the
                // layers from its inputs to its outputs).
                let last = layers
                    .iter()
                    .rev()
                    .map(|l| l["config"]["name"].as_str().unwrap_or(""))
                    .find(|n| !ops.iter().any(|m| m.name == *n));
                let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
                if !outputs.is_empty() && (names.len() != 1 || Some(names[0]) != last) {
                    return Err(format!(
                        "the model's outputs are {}, not its last layer `{}` alone; rnn \
                         reads nested Functional models that are one chain to one output",
                        model["config"]["output_layers"],
                        last.unwrap_or("")
                    ));
                }
            }
            masks.extend(ops);
        }
        other => {
            return Err(format!(
                "expected a Sequential or Functional model, found class {other:?}"
            ))
        }
    }
    // The chain first, then the others in the list's order (Keras lists each layer after
    // those it reads).
    let member = membership(&chain, layers.len());
    let order: Vec<usize> = chain
        .iter()
        .copied()
        .chain((0..layers.len()).filter(|&k| !member[k]))
        .collect();
    for k in order {
        let layer = &layers[k];
        let on_chain = member[k];
        let name = layer["config"]["name"].as_str().unwrap_or("");
        if masks.iter().any(|m| m.name == name) {
            continue;
        }
        let nested = super::is_model(layer);
        let first = out.len();
        if nested {
            flatten(
                layer,
                &format!("{scope}{name}/"),
                depth + 1,
                out,
                masks,
                wiring,
            )?;
        } else {
            out.push((scope.to_string(), layer));
        }
        if depth > 0 || (on_chain && !nested) {
            continue;
        }
        // The outermost model: a nested model stands for its last layer; past the chain, each
        // layer reads what its inbound nodes name (a nested one's first layer, what feeds it).
        let names: Vec<String> = out[first..]
            .iter()
            .filter(|(_, l)| l["class_name"].as_str() != Some("InputLayer"))
            .map(|(s, l)| format!("{s}{}", l["config"]["name"].as_str().unwrap_or("")))
            .collect();
        if nested {
            if let Some(last) = names.last() {
                wiring.aliases.insert(name.to_string(), (last.clone(), 0));
            }
        }
        if on_chain {
            continue;
        }
        if layer["inbound_nodes"]
            .as_array()
            .is_some_and(|n| n.len() > 1)
        {
            return Err(format!(
                "layer `{name}` is called more than once (a shared layer), which rnn does not \
                 run"
            ));
        }
        if let Some(why) = unread_inbound(&layer["inbound_nodes"], true) {
            return Err(format!("layer `{name}` {why}, which rnn does not run"));
        }
        let mut reads = inbound_refs(&layer["inbound_nodes"]);
        reads.retain(|(n, _)| !masks.iter().any(|m| m.name == *n));
        let mut feed = reads;
        for inner in names {
            let reads = std::mem::replace(&mut feed, vec![(inner.clone(), 0)]);
            wiring.reads.insert(inner, reads);
        }
    }
    Ok(())
}

/// The indices in `layers` of the path that ends at `last`, walked back through each layer's
/// one input (the mask ops in `masks` aside) to a layer that reads none, in order from it. The
/// walk stops at a layer of any other number of inputs, which then begins the path (and
/// [`check_chain`] refuses it); each layer is visited once.
fn path_to(layers: &[Value], last: usize, masks: &[MaskOp]) -> Vec<usize> {
    let index: HashMap<&str, usize> = layers
        .iter()
        .enumerate()
        .map(|(k, l)| (l["config"]["name"].as_str().unwrap_or(""), k))
        .collect();
    let mut path = vec![last];
    let mut seen = vec![false; layers.len()];
    seen[last] = true;
    let mut at = last;
    loop {
        let mut reads = inbound_refs(&layers[at]["inbound_nodes"]);
        reads.retain(|(n, _)| !masks.iter().any(|m| m.name == *n));
        let next = match reads.as_slice() {
            [(name, _)] => index.get(name.as_str()).copied(),
            _ => None,
        };
        match next {
            Some(k) if !seen[k] => {
                seen[k] = true;
                path.push(k);
                at = k;
            }
            _ => break,
        }
    }
    path.reverse();
    path
}

/// `len` flags, true at each index in `indices`.
fn membership(indices: &[usize], len: usize) -> Vec<bool> {
    let mut member = vec![false; len];
    for &k in indices {
        member[k] = true;
    }
    member
}

/// Whether a layer of a model's list is recurrent, or a nested model holding one.
fn recurrent(layer: &Value) -> bool {
    match layer["class_name"].as_str() {
        Some("SimpleRNN" | "RNN" | "Bidirectional") => true,
        _ if super::is_model(layer) => layer["config"]["layers"]
            .as_array()
            .is_some_and(|l| l.iter().any(recurrent)),
        _ => false,
    }
}

/// A Functional model's `output_layers`: `[[name, node, tensor], …]`, or one flat `[name,
/// node, tensor]` (Keras 3's way of writing a single output); none where the config gives
/// none. `Err` for any other structure (a dict, a nested list), whose order and names rnn does
/// not read.
fn output_refs(value: &Value) -> std::result::Result<Vec<Ref>, String> {
    let one = |v: &Value| -> Option<Ref> {
        match v.as_array()?.as_slice() {
            [Value::String(name), Value::Number(_), Value::Number(t)] => {
                Some((name.clone(), usize::try_from(t.as_u64()?).ok()?))
            }
            _ => None,
        }
    };
    let refs = match value {
        Value::Null => Some(Vec::new()),
        Value::Array(o) if o.first().is_some_and(Value::is_string) => one(value).map(|r| vec![r]),
        Value::Array(o) if !o.is_empty() => o.iter().map(one).collect(),
        _ => None,
    };
    refs.ok_or_else(|| {
        format!(
            "the model's outputs are {value}, a structure rnn does not read (it reads a list of \
             outputs); build the model with its outputs as a list"
        )
    })
}

/// The mask a layer that rnn does not run makes, in words: Keras's `Embedding(mask_zero=True)`
/// masks id 0, and a `Masking` after another layer masks that layer's outputs, neither of which
/// the RNN's input vectors show.
fn mask_made_by(class: &str, cfg: &Value, name: &str) -> Option<String> {
    match class {
        "Embedding" if cfg["mask_zero"].as_bool() == Some(true) => {
            Some(format!("`{name}` (Embedding, mask_zero=True)"))
        }
        "Masking" => Some(format!(
            "`{name}` (Masking, mask_value={})",
            cfg["mask_value"]
        )),
        _ => None,
    }
}

/// The dtype a layer's dtype policy computes in and the policy's name, where it is not float32:
/// Keras 3 writes `{"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}`, tf-keras
/// `{"class_name": "Policy", …}` or a plain name; a `mixed_` policy keeps float32 variables and
/// computes in the half type.
fn compute_dtype(policy: &Value) -> Option<(String, String)> {
    let name = policy
        .as_str()
        .or_else(|| policy["config"]["name"].as_str())?;
    let computed = name.strip_prefix("mixed_").unwrap_or(name);
    (computed != "float32").then(|| (computed.to_string(), name.to_string()))
}

/// A mask a Keras 3 `Functional` model computes as an op of its own and passes to its layers'
/// `mask` argument: `NotEqual(input, 0)`, how it records an `Embedding(mask_zero=True)` mask,
/// and `Any(NotEqual(input, v), axis=-1)`, how it records a `Masking(v)` mask.
#[derive(Debug)]
struct MaskOp {
    /// The op layer's name (`not_equal_8`).
    name: String,
    /// The layer whose output it reads.
    of: String,
    /// What it computes of it.
    test: MaskTest,
}

/// What a [`MaskOp`] computes.
#[derive(Debug, PartialEq)]
enum MaskTest {
    /// `x != value`, elementwise.
    NotEqual(f64),
    /// `any(x, axis=-1)`, the last axis dropped.
    AnyLastAxis,
}

/// The `NotEqual(x, number)` and `Any(x, axis=-1)` op layers of a Functional model's list.
fn mask_ops(layers: &[Value]) -> Vec<MaskOp> {
    layers
        .iter()
        .filter_map(|l| {
            let args = l["inbound_nodes"][0]["args"].as_array()?;
            let test = match (l["class_name"].as_str()?, args.as_slice()) {
                ("NotEqual", [_, value]) => MaskTest::NotEqual(value.as_f64()?),
                ("Any", [_])
                    if l["config"]["axis"].as_i64() == Some(-1)
                        && l["config"]["keepdims"].as_bool() != Some(true) =>
                {
                    MaskTest::AnyLastAxis
                }
                _ => return None,
            };
            let of = args[0]["config"]["keras_history"][0].as_str()?;
            Some(MaskOp {
                name: l["config"]["name"].as_str().unwrap_or("").to_string(),
                of: of.to_string(),
                test,
            })
        })
        .collect()
}

/// Mask ops are read as the mask of the model's first layer, where they compute what it does
/// of the same input (what Keras 3 records for one): `NotEqual(x, 0)` for an
/// `Embedding(mask_zero=True)`, `NotEqual(x, v)` and `Any` of it over the last axis for a
/// `Masking(v)`. Any other is refused, since the layers rnn runs make no other mask.
fn check_mask_ops(
    masks: &[MaskOp],
    layers: &[(String, &Value)],
) -> std::result::Result<(), String> {
    let first = layers
        .iter()
        .map(|(_, l)| l)
        .find(|l| l["class_name"].as_str() != Some("InputLayer"));
    let fed_by = |l: &Value| {
        inbound_refs(&l["inbound_nodes"])
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
    };
    let (value, any) = match first.map(|l| (l["class_name"].as_str(), &l["config"])) {
        Some((Some("Embedding"), cfg)) if cfg["mask_zero"].as_bool() == Some(true) => {
            (Some(0.0), false)
        }
        Some((Some("Masking"), cfg)) => (cfg["mask_value"].as_f64(), true),
        _ => (None, false),
    };
    let input = first.map(|l| fed_by(l)).unwrap_or_default();
    let computes_its_mask = |m: &MaskOp| match m.test {
        MaskTest::NotEqual(v) => Some(v) == value && input == [m.of.clone()],
        MaskTest::AnyLastAxis => {
            any && masks
                .iter()
                .any(|n| n.name == m.of && matches!(n.test, MaskTest::NotEqual(_)))
        }
    };
    match masks.iter().find(|m| !computes_its_mask(m)) {
        None => Ok(()),
        Some(op) => Err(format!(
            "layer `{}` ({:?} of `{}`) computes a mask that is not the mask of the model's \
             first layer (an Embedding(mask_zero=True) or a Masking of the same input), the \
             only masks rnn runs",
            op.name, op.test, op.of
        )),
    }
}

/// A `Functional` model must be a chain: each layer fed by the one before it only (the mask
/// ops in `masks` aside, which feed only layers' `mask` arguments).
fn check_chain(layers: &[Value], masks: &[MaskOp]) -> std::result::Result<(), String> {
    let mut previous: Option<&str> = None;
    for layer in layers {
        let name = layer["config"]["name"].as_str().unwrap_or("");
        if masks.iter().any(|m| m.name == name) {
            continue;
        }
        let mut inputs: Vec<String> = inbound_refs(&layer["inbound_nodes"])
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if let Some(why) = unread_inbound(&layer["inbound_nodes"], false) {
            return Err(format!("layer `{name}` {why}, which rnn does not run"));
        }
        inputs.retain(|i| !masks.iter().any(|m| m.name == *i));
        // A recurrent layer's inputs after its sequence are its initial state (tf-keras lists
        // `initial_state=` among them; Keras 3 records it beside the sequence).
        if let (true, [first, states @ ..]) = (recurrent(layer), inputs.as_slice()) {
            if previous.is_none_or(|p| first == p) && !states.is_empty() {
                return Err(format!(
                    "layer `{name}` starts from the state `{}` gives it \
                     (initial_state=), which rnn does not compute: it runs a model's RNN from \
                     zeros. To run the layer alone from a state you give as h0, save the \
                     weights alone (model.save_weights(\"w.weights.h5\"), or \"w.h5\" in \
                     tf-keras) and run that file with --prefix {name}/",
                    states.join("`, `")
                ));
            }
        }
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

/// What in a layer's inbound nodes a chain of layers does not carry, in words: a layer's output
/// other than its first (a `return_state` state: Keras 3's `keras_history` `[name, node,
/// tensor]`, tf-keras's `[name, node, tensor, kwargs]`, with tensor > 0), a constant tensor
/// (Keras 3's `__tensor__`), or an `initial_state` or `constants` argument.
fn unread_inbound(value: &Value, states: bool) -> Option<String> {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(h)) = map.get("keras_history") {
                if !states && h.get(2).and_then(Value::as_u64).is_some_and(|t| t > 0) {
                    return Some(format!(
                        "reads output {} of `{}` (a state of return_state=True)",
                        h[2],
                        h[0].as_str().unwrap_or("")
                    ));
                }
            } else if map.get("class_name").and_then(Value::as_str) == Some("__tensor__") {
                return Some("is given a constant tensor".into());
            }
            for key in ["initial_state", "constants"] {
                if map.get(key).is_some_and(|v| !v.is_null()) {
                    return Some(format!("is given {key}"));
                }
            }
            map.values().find_map(|v| unread_inbound(v, states))
        }
        Value::Array(items) => match items.as_slice() {
            [Value::String(name), Value::Number(_), Value::Number(t), rest @ ..] => {
                if !states && t.as_u64().is_some_and(|t| t > 0) {
                    return Some(format!(
                        "reads output {t} of `{name}` (a state of return_state=True)"
                    ));
                }
                rest.iter().find_map(|v| unread_inbound(v, states))
            }
            _ => items.iter().find_map(|v| unread_inbound(v, states)),
        },
        _ => None,
    }
}

/// What a layer's inbound nodes read, in order: each `keras_history` `[name, node, tensor]`
/// (Keras 3) or inbound entry `[name, node, tensor, kwargs]` (tf-keras), as its name and
/// tensor.
fn inbound_refs(value: &Value) -> Vec<Ref> {
    fn walk(value: &Value, out: &mut Vec<Ref>) {
        let tensor = |t: &Value| t.as_u64().unwrap_or(0) as usize;
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(h)) = map.get("keras_history") {
                    if let Some(name) = h.first().and_then(Value::as_str) {
                        out.push((name.to_string(), h.get(2).map_or(0, tensor)));
                    }
                }
                map.iter()
                    .filter(|(k, _)| k.as_str() != "keras_history")
                    .for_each(|(_, v)| walk(v, out));
            }
            Value::Array(items) => match items.as_slice() {
                [Value::String(name), Value::Number(_), t @ Value::Number(_), ..] => {
                    out.push((name.clone(), tensor(t)));
                }
                _ => items.iter().for_each(|v| walk(v, out)),
            },
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// `RNN(StackedRNNCells([SimpleRNNCell, …]))` as the stack of layers it computes: at each step
/// each cell reads the output of the cell below, which is what SimpleRNN layers one above the
/// other compute, each but the top returning every step. Each is named `{layer}/{cell}` (its
/// weights `{layer}/{cell}/simple_rnn_cell/kernel`). `None` for any other layer.
fn stacked_cells(
    class: &str,
    cfg: &Value,
    name: &str,
    keras2: bool,
) -> std::result::Result<Option<Vec<RnnLayer>>, String> {
    if class != "RNN" || cfg["cell"]["class_name"].as_str() != Some("StackedRNNCells") {
        return Ok(None);
    }
    let cells = cfg["cell"]["config"]["cells"]
        .as_array()
        .ok_or_else(|| format!("layer `{name}`: expected StackedRNNCells with a list of cells"))?;
    time_major(cfg, name)?;
    if cfg["go_backwards"].as_bool() == Some(true) {
        return Err(format!(
            "layer `{name}` runs stacked cells with go_backwards=True, which rnn does not run; \
             build it from SimpleRNN layers instead"
        ));
    }
    let top = cfg["return_sequences"].as_bool().unwrap_or(false);
    let mut layers = Vec::new();
    for (k, cell) in cells.iter().enumerate() {
        let class = cell["class_name"].as_str().unwrap_or("(unknown)");
        if class != "SimpleRNNCell" {
            return Err(format!(
                "layer `{name}` stacks the cell {class:?}, not a SimpleRNNCell, which rnn does \
                 not run"
            ));
        }
        let cell_name = cell["config"]["name"].as_str().unwrap_or("");
        let mut layer = rnn_layer("SimpleRNN", &cell["config"], cell_name, keras2)?;
        layer.name = format!("{name}/{cell_name}");
        layer.layer = name.to_string();
        layer.stacked = true;
        layer.return_sequences = k + 1 < cells.len() || top;
        layers.push(layer);
    }
    if layers.is_empty() {
        return Err(format!("layer `{name}` stacks no cells"));
    }
    Ok(Some(layers))
}

/// Keras's activation `name` as rnn computes it. tf-keras's (Keras 2) `hard_sigmoid` is
/// `clip(0.2·x + 0.5, 0, 1)`; Keras 3's is `relu6(x + 3) / 6`.
fn keras_nonlinearity(name: &str, keras2: bool) -> Option<Nonlinearity> {
    if keras2 && name == "hard_sigmoid" {
        return Some(Nonlinearity::LinearHardSigmoid {
            alpha: rnn_core::Param::new(0.2),
            beta: rnn_core::Param::new(0.5),
        });
    }
    Nonlinearity::from_name(name)
}

/// Refuses tf-keras's `time_major=True`: the layer reads `[steps, batch, features]`, where
/// every other Keras layer, and rnn's reading of a Keras model, is batch-first.
fn time_major(cfg: &Value, name: &str) -> std::result::Result<(), String> {
    match cfg["time_major"].as_bool() {
        Some(true) => Err(format!(
            "layer `{name}` has time_major=True, which rnn does not read; build it batch-first \
             (the default) and transpose the input"
        )),
        _ => Ok(()),
    }
}

/// One recurrent layer's options, refused where rnn cannot run it as configured.
fn rnn_layer(
    class: &str,
    cfg: &Value,
    name: &str,
    keras2: bool,
) -> std::result::Result<RnnLayer, String> {
    let simple = |cfg: &Value, what: &str| -> std::result::Result<RnnLayer, String> {
        let name = cfg["name"].as_str().unwrap_or(what).to_string();
        time_major(cfg, &name)?;
        let flag = |key: &str, default: bool| cfg[key].as_bool().unwrap_or(default);
        let activation = cfg["activation"].as_str().unwrap_or("tanh");
        let activation = keras_nonlinearity(activation, keras2).ok_or_else(|| {
            format!("layer `{name}`: activation {activation:?} is not one rnn runs")
        })?;
        Ok(RnnLayer {
            units: cfg["units"].as_u64().unwrap_or(0),
            activation,
            go_backwards: flag("go_backwards", false),
            return_sequences: flag("return_sequences", false),
            merge_mode: MergeMode::Concat,
            zero_output_for_mask: flag("zero_output_for_mask", false),
            layer: name.clone(),
            name,
            directions: 1,
            stacked: false,
        })
    };
    match class {
        "SimpleRNN" => simple(cfg, name),
        // `RNN(SimpleRNNCell(…))`, unrolled or not, computes what `SimpleRNN` does: the cell
        // gives units and activation, the RNN layer its direction and what it returns.
        "RNN" if cfg["cell"]["class_name"].as_str() == Some("SimpleRNNCell") => {
            time_major(cfg, name)?;
            let flag = |key: &str| cfg[key].as_bool().unwrap_or(false);
            Ok(RnnLayer {
                name: name.to_string(),
                go_backwards: flag("go_backwards"),
                return_sequences: flag("return_sequences"),
                zero_output_for_mask: flag("zero_output_for_mask"),
                ..simple(&cfg["cell"]["config"], name)?
            })
        }
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
            let merge_mode = match &cfg["merge_mode"] {
                Value::Null => MergeMode::Separate,
                mode => mode
                    .as_str()
                    .and_then(MergeMode::from_name)
                    .filter(|m| *m != MergeMode::Separate)
                    .ok_or_else(|| {
                        format!(
                            "Bidirectional layer `{name}`: merge_mode {mode} is not one of \
                             Keras's (\"concat\", \"sum\", \"ave\", \"mul\" or None)"
                        )
                    })?,
            };
            Ok(RnnLayer {
                name: name.to_string(),
                merge_mode,
                go_backwards: false,
                directions: 2,
                ..forward
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Keras 3 Sequential config (the shapes of `config.json` as Keras 3.15 writes it, cut
    /// to the keys read) of the given layers.
    fn sequential(layers: Value) -> Value {
        serde_json::json!({"class_name": "Sequential", "config": {"layers": layers}})
    }

    fn policy(name: &str) -> Value {
        serde_json::json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}})
    }

    fn simple_rnn(name: &str, dtype: Value) -> Value {
        serde_json::json!({"class_name": "SimpleRNN", "config": {
            "name": name, "units": 5, "activation": "tanh", "return_sequences": false,
            "dtype": dtype}})
    }

    fn metadata(config: &Value) -> (HashMap<String, String>, Recorded) {
        let h5 = [H5Layer {
            name: "simple_rnn".into(),
            recurrent: true,
            weights: Vec::new(),
        }];
        let (meta, recorded, _) = model_config(config, false).unwrap().metadata(&h5).unwrap();
        (meta, recorded)
    }

    #[test]
    fn a_mask_made_before_the_rnn_is_recorded() {
        let embedding = serde_json::json!({"class_name": "Embedding",
            "config": {"name": "embedding", "mask_zero": true}});
        let (_, recorded) = metadata(&sequential(serde_json::json!([
            embedding,
            simple_rnn("simple_rnn", policy("float32"))
        ])));
        assert_eq!(
            recorded.input_mask.as_deref(),
            Some("`embedding` (Embedding, mask_zero=True)")
        );
        // Without mask_zero, no mask; a leading Masking over a contiguous stack is the
        // mask_value the input shows, not a hidden one.
        let plain = serde_json::json!({"class_name": "Embedding",
            "config": {"name": "embedding", "mask_zero": false}});
        let (_, recorded) = metadata(&sequential(serde_json::json!([
            plain,
            simple_rnn("simple_rnn", policy("float32"))
        ])));
        assert_eq!(recorded.input_mask, None);
        let masking = serde_json::json!({"class_name": "Masking",
            "config": {"name": "masking", "mask_value": 0.0}});
        let (_, recorded) = metadata(&sequential(serde_json::json!([
            masking.clone(),
            simple_rnn("simple_rnn", policy("float32"))
        ])));
        assert_eq!(recorded.input_mask, None);
        assert_eq!(recorded.mask_value, Some(0.0));
        // A Masking whose outputs pass through a Dense first: its mask is hidden too.
        let dense = serde_json::json!({"class_name": "Dense", "config": {"name": "dense"}});
        let (_, recorded) = metadata(&sequential(serde_json::json!([
            masking,
            dense,
            simple_rnn("simple_rnn", policy("float32"))
        ])));
        assert_eq!(
            recorded.input_mask.as_deref(),
            Some("`masking` (Masking, mask_value=0)")
        );
    }

    #[test]
    fn a_dtype_policy_other_than_float32_is_recorded() {
        let (meta, _) = metadata(&sequential(serde_json::json!([simple_rnn(
            "simple_rnn",
            policy("mixed_float16")
        )])));
        assert_eq!(
            meta.get(COMPUTE_DTYPE).map(String::as_str),
            Some("float16 (dtype policy mixed_float16)")
        );
        // tf-keras writes a plain name or a `Policy`.
        let (meta, _) = metadata(&sequential(serde_json::json!([simple_rnn(
            "simple_rnn",
            serde_json::json!("float64")
        )])));
        assert_eq!(
            meta.get(COMPUTE_DTYPE).map(String::as_str),
            Some("float64 (dtype policy float64)")
        );
        let (meta, _) = metadata(&sequential(serde_json::json!([simple_rnn(
            "simple_rnn",
            policy("float32")
        )])));
        assert!(!meta.contains_key(COMPUTE_DTYPE));
    }

    #[test]
    fn tf_keras_inbound_nodes_make_a_chain() {
        // tf-keras writes `inbound_nodes: [[[name, node, tensor, kwargs]]]`; Keras 3 a
        // `keras_history` inside its call arguments.
        let layer = |name: &str, inbound: Value| serde_json::json!({"class_name": "X", "config": {"name": name}, "inbound_nodes": inbound});
        let keras2 = [
            layer("in", serde_json::json!([])),
            layer("rnn", serde_json::json!([[["in", 0, 0, {}]]])),
        ];
        assert!(check_chain(&keras2, &[]).is_ok());
        let keras3 = [
            layer("in", serde_json::json!([])),
            layer(
                "rnn",
                serde_json::json!([{"args": [{"config": {"keras_history": ["in", 0, 0]}}]}]),
            ),
        ];
        assert!(check_chain(&keras3, &[]).is_ok());
        let skipped = [
            layer("in", serde_json::json!([])),
            layer("a", serde_json::json!([[["in", 0, 0, {}]]])),
            layer("b", serde_json::json!([[["in", 0, 0, {}]]])),
        ];
        assert!(check_chain(&skipped, &[]).is_err());
        // A recurrent layer fed a second tensor (tf-keras's initial_state=) is refused for
        // that, naming where its state comes from and how to run it alone.
        let rnn = |inbound: Value| serde_json::json!({"class_name": "SimpleRNN", "config": {"name": "rnn"}, "inbound_nodes": inbound});
        let state = [rnn(serde_json::json!([[["x", 0, 0, {}], ["s", 0, 0, {}]]]))];
        let e = check_chain(&state, &[]).unwrap_err();
        assert!(
            e.contains("initial_state=") && e.contains("state `s`") && e.contains("--prefix rnn/"),
            "{e}"
        );
    }

    fn stacked(go_backwards: bool, second: &str) -> Value {
        serde_json::json!({"class_name": "RNN", "config": {
            "name": "rnn", "return_sequences": false, "go_backwards": go_backwards,
            "cell": {"class_name": "StackedRNNCells", "config": {"cells": [
                {"class_name": "SimpleRNNCell", "config": {"name": "a", "units": 4,
                 "activation": "relu"}},
                {"class_name": second, "config": {"name": "b", "units": 3}}]}}}})
    }

    #[test]
    fn stacked_cells_become_a_stack_of_layers() {
        let model = model_config(
            &sequential(serde_json::json!([stacked(false, "SimpleRNNCell")])),
            false,
        )
        .unwrap();
        let names: Vec<&str> = model.rnn.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["rnn/a", "rnn/b"]);
        assert!(model.rnn[0].return_sequences && !model.rnn[1].return_sequences);
        assert_eq!(model.rnn[0].activation.to_string(), "relu");
        let backwards = model_config(
            &sequential(serde_json::json!([stacked(true, "SimpleRNNCell")])),
            false,
        );
        assert!(backwards.err().unwrap().contains("go_backwards=True"));
        let lstm = model_config(
            &sequential(serde_json::json!([stacked(false, "LSTMCell")])),
            false,
        );
        assert!(lstm
            .err()
            .unwrap()
            .contains("\"LSTMCell\", not a SimpleRNNCell"));
    }

    /// The layers of a model as Keras 3 writes them, with the weights the reader would find.
    fn whole(layers: Value) -> std::result::Result<Option<Graph>, Vec<String>> {
        let h5 = vec![
            H5Layer {
                name: "rnn".into(),
                recurrent: true,
                weights: Vec::new(),
            },
            H5Layer {
                name: "embedding".into(),
                recurrent: false,
                weights: vec!["layers/embedding/vars/0".into()],
            },
            H5Layer {
                name: "dense".into(),
                recurrent: false,
                weights: vec!["layers/dense/vars/0".into(), "layers/dense/vars/1".into()],
            },
        ];
        model_config(&sequential(layers), false).unwrap().graph(&h5)
    }

    fn rnn_returning(sequences: bool) -> Value {
        serde_json::json!({"class_name": "SimpleRNN", "config": {"name": "rnn", "units": 3,
            "return_sequences": sequences}})
    }

    #[test]
    fn a_softmax_layer_that_keras_gives_the_mask_to_is_refused() {
        let embedding = serde_json::json!({"class_name": "Embedding",
            "config": {"name": "embedding", "mask_zero": true}});
        let softmax = serde_json::json!({"class_name": "Softmax", "config": {"name": "softmax"}});
        let dense = serde_json::json!({"class_name": "Dense", "config": {"name": "dense",
            "activation": "linear"}});
        // Every step returned: the mask reaches the Softmax.
        let refused = whole(serde_json::json!([embedding, rnn_returning(true), softmax]));
        assert!(
            refused
                .as_ref()
                .err()
                .is_some_and(|b| b[0].contains("step mask")),
            "{refused:?}"
        );
        // The last step only: no mask after the RNN.
        let graph = whole(serde_json::json!([
            embedding,
            rnn_returning(false),
            dense,
            softmax
        ]));
        let graph = graph.unwrap().unwrap();
        assert_eq!(graph.after.len(), 2);
        assert_eq!(graph.outputs, [("softmax".to_string(), Source::Layer(1))]);
        // No mask maker at all: vectors in, every step out.
        let graph = whole(serde_json::json!([rnn_returning(true), dense, softmax])).unwrap();
        assert!(graph.is_some_and(|g| g.return_sequences && g.before.is_empty()));
    }

    /// Keras's Softmax axis: the default -1 (null, -1 or [-1]) is the last axis; a positive
    /// one is kept for the run to check against its input's rank; the batch's axis and
    /// other negative ones are refused.
    #[test]
    fn a_softmax_axis_is_kept_or_refused() {
        let softmax = |axis: Value| {
            let layer = serde_json::json!({"class_name": "Softmax",
                "config": {"name": "softmax", "axis": axis}});
            whole(serde_json::json!([rnn_returning(false), layer]))
                .map(|g| g.map(|g| g.after[0].part.kind.clone()))
        };
        for last in [Value::Null, serde_json::json!(-1), serde_json::json!([-1])] {
            let kind = softmax(last.clone());
            assert!(
                matches!(kind, Ok(Some(PartKind::Activation(Activation::Softmax)))),
                "{last}: {kind:?}"
            );
        }
        for (axis, n) in [(serde_json::json!(1), 1), (serde_json::json!([2]), 2)] {
            let kind = softmax(axis.clone());
            assert!(
                matches!(kind, Ok(Some(PartKind::SoftmaxAxis(m))) if m == n),
                "{axis}: {kind:?}"
            );
        }
        for (axis, why) in [(0, "the batch"), (-2, "not the last")] {
            let refused = softmax(serde_json::json!(axis)).unwrap_err();
            assert!(refused[0].contains(why), "{axis}: {refused:?}");
        }
    }

    #[test]
    fn layers_rnn_does_not_run_whole_are_named_with_why() {
        let conv = serde_json::json!({"class_name": "Conv1D", "config": {"name": "conv"}});
        let blockers = whole(serde_json::json!([conv, rnn_returning(false)])).unwrap_err();
        assert!(
            blockers[0].starts_with("conv (Conv1D: not a layer rnn runs"),
            "{blockers:?}"
        );
        let embedding = serde_json::json!({"class_name": "Embedding",
            "config": {"name": "embedding", "mask_zero": false}});
        let dense = serde_json::json!({"class_name": "Dense", "config": {"name": "dense"}});
        // An embedding that does not take the model's input.
        let blockers =
            whole(serde_json::json!([dense, embedding, rnn_returning(false)])).unwrap_err();
        assert!(
            blockers
                .iter()
                .any(|b| b.contains("does not take the model's input")),
            "{blockers:?}"
        );
        // A Dense between two recurrent layers.
        let blockers = whole(serde_json::json!([
            rnn_returning(true),
            serde_json::json!({"class_name": "Dense", "config": {"name": "dense"}}),
            rnn_returning(false)
        ]));
        assert!(blockers.is_err());
    }

    #[test]
    fn a_functional_model_whose_output_is_not_its_last_layer_is_refused() {
        let layer = |name: &str, inbound: Value| {
            serde_json::json!({"class_name": "Dense",
            "config": {"name": name}, "inbound_nodes": inbound})
        };
        let model = |outputs: Value| {
            serde_json::json!({"class_name": "Functional", "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "in"}, "inbound_nodes": []},
                layer("a", serde_json::json!([[["in", 0, 0, {}]]])),
                layer("b", serde_json::json!([[["a", 0, 0, {}]]])),
            ],
            "output_layers": outputs}})
        };
        assert!(model_config(&model(serde_json::json!([["b", 0, 0]])), false).is_ok());
        // Keras 3 writes one output as a flat list.
        assert!(model_config(&model(serde_json::json!(["b", 0, 0])), false).is_ok());
        let err = model_config(&model(serde_json::json!([["a", 0, 0]])), false).unwrap_err();
        assert!(err.contains("not its last layer"), "{err}");
        assert!(
            model_config(&model(serde_json::json!([["a", 0, 0], ["b", 0, 0]])), false).is_err()
        );
    }

    #[test]
    fn states_constants_and_initial_states_are_refused() {
        let input = serde_json::json!({"class_name": "InputLayer", "config": {"name": "in"},
            "inbound_nodes": []});
        let reads = |history: Value, kwargs: Value| {
            let dense = serde_json::json!({"class_name": "Dense", "config": {"name": "d"},
                "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                    "config": {"keras_history": history}}], "kwargs": kwargs}]});
            let model = serde_json::json!({"class_name": "Functional",
                "config": {"layers": [input, dense]}});
            model_config(&model, false).err()
        };
        assert_eq!(
            reads(serde_json::json!(["in", 0, 0]), serde_json::json!({})),
            None
        );
        // A return_state state: output 1 of a layer.
        let err = reads(serde_json::json!(["in", 0, 1]), serde_json::json!({})).unwrap();
        assert!(err.contains("reads output 1 of `in`"), "{err}");
        let err = reads(
            serde_json::json!(["in", 0, 0]),
            serde_json::json!({"initial_state": [{"class_name": "__tensor__"}]}),
        )
        .unwrap();
        assert!(err.contains("initial_state"), "{err}");
        let err = reads(
            serde_json::json!(["in", 0, 0]),
            serde_json::json!({"scale": {"class_name": "__tensor__", "config": {}}}),
        )
        .unwrap();
        assert!(err.contains("constant tensor"), "{err}");
        // tf-keras: [name, node, tensor, kwargs].
        let keras2 = |tensor: u64| {
            let dense = serde_json::json!({"class_name": "Dense", "config": {"name": "d"},
                "inbound_nodes": [[["in", 0, tensor, {}]]]});
            let model = serde_json::json!({"class_name": "Functional",
                "config": {"layers": [input, dense]}});
            model_config(&model, true).err()
        };
        assert_eq!(keras2(0), None);
        assert!(keras2(2).is_some_and(|e| e.contains("reads output 2")));
    }

    #[test]
    fn a_bidirectional_top_with_merge_mode_none_is_not_run_whole() {
        let embedding = serde_json::json!({"class_name": "Embedding",
            "config": {"name": "embedding", "mask_zero": true}});
        let bidirectional = serde_json::json!({"class_name": "Bidirectional", "config": {
            "name": "rnn", "merge_mode": null, "layer": {"class_name": "SimpleRNN",
            "config": {"name": "f", "units": 3, "return_sequences": true}}}});
        let blockers = whole(serde_json::json!([embedding, bidirectional])).unwrap_err();
        assert!(blockers[0].contains("merge_mode=None"), "{blockers:?}");
    }

    #[test]
    fn tf_keras_hard_sigmoid_is_its_own() {
        assert_eq!(
            keras_nonlinearity("hard_sigmoid", true),
            Some(Nonlinearity::LinearHardSigmoid {
                alpha: rnn_core::Param::new(0.2),
                beta: rnn_core::Param::new(0.5)
            })
        );
        assert_eq!(
            keras_nonlinearity("hard_sigmoid", false),
            Some(Nonlinearity::HardSigmoid)
        );
    }

    /// A layer of [`functional`]: class, name, config, and what it reads.
    type Spec<'a> = (&'a str, &'a str, Value, &'a [(&'a str, u64)]);

    /// An `Embedding` named `embedding` on the model's input `in`, without a mask.
    fn embedding() -> Spec<'static> {
        (
            "Embedding",
            "embedding",
            serde_json::json!({"mask_zero": false}),
            &[("in", 0)],
        )
    }

    /// A Keras 3 Functional model of `layers` (each `(class, name, config, reads)`, reads as
    /// `(layer, tensor)`) with `outputs`, run through [`ModelConfig::graph`] with weights for
    /// `embedding`, `dense` and `dense_1`.
    fn functional(
        layers: &[Spec],
        outputs: &[(&str, u64)],
    ) -> std::result::Result<std::result::Result<Option<Graph>, Vec<String>>, String> {
        let kt = |(name, tensor): &(&str, u64)| {
            serde_json::json!({"class_name": "__keras_tensor__",
                "config": {"keras_history": [name, 0, tensor]}})
        };
        let mut list = vec![serde_json::json!({"class_name": "InputLayer",
            "config": {"name": "in"}, "inbound_nodes": []})];
        for (class, name, config, reads) in layers {
            let mut config = config.clone();
            config["name"] = serde_json::json!(name);
            let args: Vec<Value> = reads.iter().map(kt).collect();
            let args = match args.as_slice() {
                [one] => vec![one.clone()],
                many => vec![Value::Array(many.to_vec())],
            };
            list.push(serde_json::json!({"class_name": class, "config": config,
                "inbound_nodes": [{"args": args, "kwargs": {}}]}));
        }
        let outputs: Vec<Value> = outputs
            .iter()
            .map(|(n, t)| serde_json::json!([n, 0, t]))
            .collect();
        let model = serde_json::json!({"class_name": "Functional",
            "config": {"layers": list, "output_layers": outputs}});
        let h5: Vec<H5Layer> = [
            ("rnn", true, 0),
            ("lower", true, 0),
            ("embedding", false, 1),
        ]
        .into_iter()
        .chain([("dense", false, 2), ("dense_1", false, 2)])
        .map(|(name, recurrent, count)| H5Layer {
            name: name.into(),
            recurrent,
            weights: (0..count)
                .map(|k| format!("layers/{name}/vars/{k}"))
                .collect(),
        })
        .collect();
        Ok(model_config(&model, false)?.graph(&h5))
    }

    fn rnn_config(sequences: bool) -> Value {
        serde_json::json!({"units": 3, "return_sequences": sequences, "return_state": true})
    }

    #[test]
    fn branches_after_the_rnn_read_its_output_and_states_by_index() {
        let bidirectional = serde_json::json!({"merge_mode": "concat", "layer": {
            "class_name": "SimpleRNN", "config": {"name": "f", "units": 3,
            "return_sequences": true, "return_state": true}}});
        let graph = functional(
            &[
                (
                    "Embedding",
                    "embedding",
                    serde_json::json!({"mask_zero": true}),
                    &[("in", 0)],
                ),
                ("SimpleRNN", "lower", rnn_config(true), &[("embedding", 0)]),
                ("Bidirectional", "rnn", bidirectional, &[("lower", 0)]),
                (
                    "Concatenate",
                    "joined",
                    serde_json::json!({}),
                    &[("rnn", 1), ("rnn", 2)],
                ),
                ("Dense", "dense", serde_json::json!({}), &[("joined", 0)]),
                ("Dense", "dense_1", serde_json::json!({}), &[("rnn", 0)]),
            ],
            &[
                ("dense_1", 0),
                ("dense", 0),
                ("lower", 1),
                ("rnn", 2),
                ("rnn", 1),
            ],
        )
        .unwrap()
        .unwrap()
        .unwrap();
        // States: lower's one (0), then rnn's forward (1) and backward (2).
        assert_eq!(
            graph
                .after
                .iter()
                .map(|n| n.inputs.clone())
                .collect::<Vec<_>>(),
            [
                vec![Source::State(1), Source::State(2)],
                vec![Source::Layer(0)],
                vec![Source::Output],
            ]
        );
        let names: Vec<&str> = graph.outputs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["dense_1", "dense", "lower", "rnn", "rnn_1"]);
        assert_eq!(graph.outputs[2].1, Source::State(0));
        assert_eq!(graph.outputs[4].1, Source::State(1));
    }

    #[test]
    fn what_rnn_does_not_give_after_the_rnn_is_named() {
        let blockers = |layers: &[Spec], out: &[(&str, u64)]| {
            functional(layers, out).unwrap().unwrap_err().join("; ")
        };
        // A head on the embedding, before the RNN.
        let why = blockers(
            &[
                embedding(),
                ("SimpleRNN", "rnn", rnn_config(false), &[("embedding", 0)]),
                ("Dense", "dense", serde_json::json!({}), &[("embedding", 0)]),
            ],
            &[("dense", 0)],
        );
        assert!(why.contains("a layer before the RNN"), "{why}");
        // A head on the lower recurrent layer's sequence.
        let why = blockers(
            &[
                embedding(),
                ("SimpleRNN", "lower", rnn_config(true), &[("embedding", 0)]),
                ("SimpleRNN", "rnn", rnn_config(false), &[("lower", 0)]),
                ("Dense", "dense", serde_json::json!({}), &[("lower", 0)]),
            ],
            &[("dense", 0)],
        );
        assert!(why.contains("below the top one"), "{why}");
        // A state the layer does not have, and merges of inputs of two ranks.
        let why = blockers(
            &[
                embedding(),
                ("SimpleRNN", "rnn", rnn_config(true), &[("embedding", 0)]),
                (
                    "Add",
                    "add",
                    serde_json::json!({}),
                    &[("rnn", 0), ("rnn", 1)],
                ),
            ],
            &[("add", 0), ("rnn", 2)],
        );
        assert!(why.contains("ranks [3, 2]"), "{why}");
        assert!(why.contains("which has 1 states"), "{why}");
        // Subtract of three.
        let why = blockers(
            &[
                embedding(),
                ("SimpleRNN", "rnn", rnn_config(false), &[("embedding", 0)]),
                (
                    "Subtract",
                    "less",
                    serde_json::json!({}),
                    &[("rnn", 0), ("rnn", 1), ("rnn", 0)],
                ),
            ],
            &[("less", 0)],
        );
        assert!(why.contains("reads 3 inputs"), "{why}");
    }

    #[test]
    fn a_shared_layer_is_refused() {
        let mut model = serde_json::json!({"class_name": "Functional", "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "in"}, "inbound_nodes": []},
                {"class_name": "SimpleRNN", "config": {"name": "rnn", "units": 3},
                 "inbound_nodes": [[["in", 0, 0, {}]]]},
                {"class_name": "Dense", "config": {"name": "dense"},
                 "inbound_nodes": [[["rnn", 0, 0, {}]], [["rnn", 0, 0, {}]]]},
            ],
            "output_layers": [["dense", 0, 0], ["dense", 1, 0]]}});
        let err = model_config(&model, true).unwrap_err();
        assert!(err.contains("called more than once"), "{err}");
        model["config"]["layers"][2]["inbound_nodes"] = serde_json::json!([[["rnn", 0, 0, {}]]]);
        assert!(model_config(&model, true).is_ok());
    }

    #[test]
    fn repeated_output_names_are_made_unique_as_tf_keras_does() {
        let named = |names: &[&str]| {
            let named = names
                .iter()
                .map(|n| (n.to_string(), Source::Output))
                .collect();
            unique_names(named)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert_eq!(named(&["a", "b", "a", "a"]), ["a", "b", "a_1", "a_2"]);
        // A name already taken is skipped.
        assert_eq!(named(&["a", "a_1", "a"]), ["a", "a_1", "a_2"]);
    }

    #[test]
    fn mask_ops_are_read_only_as_the_first_layer_s_own_mask() {
        let model = |first: Value, value: f64| {
            let op = |class: &str, name: &str, of: &str, extra: Value| {
                let mut args = vec![serde_json::json!({"class_name": "__keras_tensor__",
                    "config": {"keras_history": [of, 0, 0]}})];
                if !extra.is_null() {
                    args.push(extra);
                }
                serde_json::json!({"class_name": class, "config": {"name": name, "axis": -1,
                    "keepdims": false}, "inbound_nodes": [{"args": args, "kwargs": {}}]})
            };
            serde_json::json!({"class_name": "Functional", "config": {"layers": [
                {"class_name": "InputLayer", "config": {"name": "x"}, "inbound_nodes": []},
                op("NotEqual", "not_equal", "x", serde_json::json!(value)),
                first,
                op("Any", "any", "not_equal", Value::Null),
                {"class_name": "SimpleRNN", "config": {"name": "rnn", "units": 3},
                 "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                    "config": {"keras_history": ["m", 0, 0]}}],
                    "kwargs": {"mask": {"class_name": "__keras_tensor__",
                    "config": {"keras_history": ["any", 0, 0]}}}}]},
            ], "output_layers": [["rnn", 0, 0]]}})
        };
        let masking = |value: f64| {
            serde_json::json!({"class_name": "Masking", "config": {"name": "m",
                "mask_value": value}, "inbound_nodes": [[["x", 0, 0, {}]]]})
        };
        // Keras 3's record of Masking(0.5): any(x != 0.5, axis=-1).
        assert!(model_config(&model(masking(0.5), 0.5), false).is_ok());
        let err = model_config(&model(masking(0.5), 0.0), false).unwrap_err();
        assert!(
            err.contains("not the mask of the model's first layer"),
            "{err}"
        );
        // An Embedding's mask is not reduced over an axis.
        let embedding = serde_json::json!({"class_name": "Embedding", "config": {"name": "m",
            "mask_zero": true}, "inbound_nodes": [[["x", 0, 0, {}]]]});
        assert!(model_config(&model(embedding, 0.0), false).is_err());
    }

    #[test]
    fn keras_3_s_own_masked_merges_dicts_of_outputs_and_time_major_are_refused() {
        let masked = |class: &str| {
            functional(
                &[
                    (
                        "Embedding",
                        "embedding",
                        serde_json::json!({"mask_zero": true}),
                        &[("in", 0)],
                    ),
                    ("SimpleRNN", "rnn", rnn_config(true), &[("embedding", 0)]),
                    ("Dense", "dense", serde_json::json!({}), &[("rnn", 0)]),
                    (
                        class,
                        "m",
                        serde_json::json!({}),
                        &[("dense", 0), ("rnn", 0)],
                    ),
                ],
                &[("m", 0)],
            )
            .unwrap()
        };
        // Keras 3 gives masked steps values of its own in Maximum, Minimum and Multiply.
        for class in ["Maximum", "Minimum", "Multiply"] {
            let why = masked(class).unwrap_err().join("; ");
            assert!(why.contains("computes otherwise"), "{class}: {why}");
        }
        for class in ["Add", "Subtract", "Average", "Concatenate"] {
            assert!(masked(class).is_ok(), "{class}");
        }
        // Outputs as a dict or a nested list: their order and names are not a list's.
        let model = |outputs: Value| {
            serde_json::json!({"class_name": "Functional", "config": {"layers": [
                {"class_name": "InputLayer", "config": {"name": "in"}, "inbound_nodes": []},
                {"class_name": "SimpleRNN", "config": {"name": "rnn", "units": 3},
                 "inbound_nodes": [[["in", 0, 0, {}]]]},
            ], "output_layers": outputs}})
        };
        for outputs in [
            serde_json::json!({"out": ["rnn", 0, 0]}),
            serde_json::json!([[["rnn", 0, 0]], ["rnn", 0, 1]]),
        ] {
            let err = model_config(&model(outputs), true).unwrap_err();
            assert!(err.contains("a structure rnn does not read"), "{err}");
        }
        assert!(model_config(&model(serde_json::json!([["rnn", 0, 0]])), true).is_ok());
        // tf-keras's time_major=True reads [steps, batch, features].
        let mut tm = model(serde_json::json!([["rnn", 0, 0]]));
        tm["config"]["layers"][1]["config"]["time_major"] = serde_json::json!(true);
        let err = model_config(&tm, true).unwrap_err();
        assert!(err.contains("time_major=True"), "{err}");
    }

    #[test]
    fn the_chain_is_the_path_to_the_top_recurrent_layer_wherever_keras_lists_the_rest() {
        // A head on the lower layer's state listed before the top layer.
        let graph = functional(
            &[
                embedding(),
                ("SimpleRNN", "lower", rnn_config(true), &[("embedding", 0)]),
                ("Dense", "dense", serde_json::json!({}), &[("lower", 1)]),
                ("SimpleRNN", "rnn", rnn_config(false), &[("lower", 0)]),
            ],
            &[("dense", 0), ("rnn", 0)],
        )
        .unwrap()
        .unwrap()
        .unwrap();
        assert_eq!(graph.after[0].inputs, [Source::State(0)]);
        assert_eq!(graph.outputs[1].1, Source::Output);
        // Two recurrent layers side by side on the embedding: not one stack.
        let err = functional(
            &[
                embedding(),
                ("SimpleRNN", "lower", rnn_config(false), &[("embedding", 0)]),
                ("SimpleRNN", "rnn", rnn_config(false), &[("embedding", 0)]),
                (
                    "Add",
                    "add",
                    serde_json::json!({}),
                    &[("lower", 0), ("rnn", 0)],
                ),
            ],
            &[("add", 0)],
        )
        .unwrap_err();
        assert!(err.contains("off the path"), "{err}");
    }
}
