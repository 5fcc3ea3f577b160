//! `rnn inspect`: what a weights file holds, which RNN `rnn` reads from it, and each tensor's
//! role.

use std::fmt::Write as _;

use anyhow::Result;
use candle_core::DType;
use rnn_core::around::Merge;
use rnn_weights::{LayerConfig, LoadedWeights, PartKind, Source, F64_SUFFIX};

use crate::cli::InspectArgs;
use crate::pipeline::read_model_file;
use crate::print::emit;
use crate::Outcome;

pub fn inspect(args: &InspectArgs) -> Result<Outcome> {
    let file = read_model_file(Some(&args.model))?;
    let selection = args.select.selection();
    let model = LoadedWeights::select(&file, DType::F64, &selection)?;
    let mut text = String::new();
    writeln!(text, "file:          {}", file.path().display())?;
    writeln!(text, "format:        {}", model.naming.as_str())?;
    writeln!(text, "input size:    {}", model.input_size())?;
    writeln!(text, "hidden size:   {:?}", model.hidden_sizes())?;
    writeln!(text, "layers:        {}", model.weights.len())?;
    let directions: Vec<usize> = model.weights.iter().map(Vec::len).collect();
    writeln!(text, "directions:    {}", join_per_layer(&directions))?;
    writeln!(text, "bias:          {}", model.has_bias())?;
    let recorded = |values: Option<String>, otherwise: &str| match values {
        Some(v) => v,
        None => format!("not recorded ({otherwise})"),
    };
    let layers = model.recorded.layers.as_deref();
    let each = |f: &dyn Fn(&LayerConfig) -> String| {
        layers.map(|l| join_per_layer(&l.iter().map(f).collect::<Vec<_>>()))
    };
    writeln!(
        text,
        "nonlinearity:  {}",
        recorded(
            each(&|l| l.nonlinearity.to_string()),
            "tanh unless --nonlinearity says otherwise"
        )
    )?;
    // Shown only where the file records them (ONNX's per-direction activations and clip).
    let two_way = |k: usize| model.weights[k].len() == 2;
    let layers = layers.unwrap_or_default();
    if (0..layers.len())
        .any(|k| two_way(k) && layers[k].nonlinearity_reverse != layers[k].nonlinearity)
    {
        if let Some(reverse) = each(&|l| l.nonlinearity_reverse.to_string()) {
            writeln!(text, "reverse:       {reverse}")?;
        }
    }
    if layers.iter().any(|l| l.clip.is_some()) {
        if let Some(clip) = each(&|l| l.clip.map_or("none".into(), |c| c.to_string())) {
            writeln!(text, "clip:          {clip}")?;
        }
    }
    writeln!(
        text,
        "time order:    {}",
        recorded(
            each(&|l| l.time.as_str().into()),
            "forward unless --go-backwards"
        )
    )?;
    writeln!(
        text,
        "merge_mode:    {}",
        recorded(
            each(&|l| l.merge_mode.as_str().into()),
            "concat unless --merge-mode says otherwise"
        )
    )?;
    let graph = file.graph().filter(|_| !selection.picks_layers());
    // A whole model's own layers make its masks (listed under `model:` below).
    if graph.is_none() {
        writeln!(
            text,
            "masked steps:  {}",
            model.masked_steps_by_default().as_str()
        )?;
        let mask_value = model
            .recorded
            .mask_value
            .map(|v| format!("{v} (Keras Masking)"));
        writeln!(
            text,
            "mask value:    {}",
            recorded(mask_value, "none unless --mask-value")
        )?;
    }
    if let (Some(layer), None) = (&model.recorded.input_mask, graph) {
        writeln!(
            text,
            "input mask:    {layer}, before the RNN: runs need each sequence's lengths"
        )?;
    }
    // Each tensor's targets, looked up by name (a scan of the mapping per tensor is quadratic
    // in the layers: minutes for a file of 50,000).
    let mut targets_of: std::collections::HashMap<&str, Vec<String>> =
        std::collections::HashMap::new();
    if let Some(nodes) = graph.and_then(|g| g.onnx.as_ref()) {
        let outputs: Vec<String> = nodes.outputs().iter().map(|o| format!("`{o}`")).collect();
        writeln!(
            text,
            "\nmodel:         run whole, from its input `{}` to its output{} {}, the graph's \
             nodes in this order:",
            nodes.input(),
            if outputs.len() == 1 { "" } else { "s" },
            outputs.join(", ")
        )?;
        for node in nodes.nodes() {
            writeln!(text, "  {node}")?;
        }
        writeln!(
            text,
            "the nodes' constants (initialisers and Constant nodes):"
        )?;
        for (name, shape) in nodes.constants() {
            writeln!(text, "  {name:<20} {shape:?}")?;
        }
        if let Some(state) = nodes.state_input() {
            writeln!(
                text,
                "the RNN's initial state: the graph input `{state}`, the RNN's h0 [layers · directions, \
                 batch, hidden]: given as `h0` (zeros where it is not, as nn.RNN's default)"
            )?;
        }
    } else if let Some(graph) = graph {
        let outputs: Vec<String> = graph.outputs().iter().map(|o| format!("`{o}`")).collect();
        writeln!(
            text,
            "\nmodel:         run whole, from its input to its output{} {}",
            if outputs.len() == 1 { "" } else { "s" },
            outputs.join(", ")
        )?;
        let line =
            |text: &mut String, name: &str, does: &str| writeln!(text, "  {name:<32} {does}");
        for part in &graph.before {
            line(
                &mut text,
                &format!("{} ({})", part.name, part.class),
                &does(&part.kind),
            )?;
        }
        let returns = if graph.return_sequences {
            "every step"
        } else {
            "its last step"
        };
        line(
            &mut text,
            "(the RNN above)",
            &format!(
                "{} recurrent layer{} under the mask (a masked step {}), returning {returns}",
                model.weights.len(),
                if model.weights.len() == 1 { "" } else { "s" },
                match model.masked_steps_by_default() {
                    rnn_core::MaskedSteps::RepeatLast => {
                        "carries the last output, zeros in a Bidirectional layer"
                    }
                    rnn_core::MaskedSteps::Zeros => "gives zeros",
                }
            ),
        )?;
        // What a layer after the RNN, or an output, reads, in words.
        let from = |source: &Source| match *source {
            Source::Output => "the RNN's output".to_string(),
            Source::State(k) => match graph.states.get(k) {
                Some(layer) => format!("the final state of {layer}"),
                None => format!("the RNN's final state {k}"),
            },
            Source::Layer(j) => graph
                .after
                .get(j)
                .map_or_else(String::new, |n| format!("`{}`", n.part.name)),
        };
        for node in &graph.after {
            let reads: Vec<String> = node.inputs.iter().map(from).collect();
            line(
                &mut text,
                &format!("{} ({})", node.part.name, node.part.class),
                &format!("{}, of {}", does(&node.part.kind), reads.join(" and ")),
            )?;
        }
        for (name, source) in &graph.outputs {
            line(&mut text, &format!("output `{name}`"), &from(source))?;
        }
        for part in graph
            .before
            .iter()
            .chain(graph.after.iter().map(|n| &n.part))
        {
            let roles: Vec<(&str, &str)> = match &part.kind {
                PartKind::Embedding { table, .. } => vec![(table, "table")],
                PartKind::Dense { kernel, bias, .. } => {
                    let mut roles = vec![(kernel.as_str(), "kernel")];
                    roles.extend(bias.as_deref().map(|b| (b, "bias")));
                    roles
                }
                _ => Vec::new(),
            };
            for (tensor, role) in roles {
                targets_of
                    .entry(tensor)
                    .or_default()
                    .push(format!("-> {} ({role})", part.name));
            }
        }
    }
    writeln!(text, "\ntensors:")?;
    for m in &model.mapping {
        targets_of
            .entry(m.source.as_str())
            .or_default()
            .push(format!("-> {} ({})", m.target, m.transform.describe()));
    }
    for name in file.names() {
        let shape = file
            .raw(&name)
            .map(|t| format!("{:?}", t.dims()))
            .unwrap_or_default();
        let dtype = file.dtype_name(&name).unwrap_or_default();
        let mut role = match targets_of.get(name.as_str()) {
            Some(targets) => targets.join("; "),
            None => format!("not used: {}", why_unused(&name, &selection)),
        };
        if let Some(stored) = file.alias_of(&name) {
            role.push_str(&format!(" [stored as {stored}]"));
        }
        writeln!(text, "  {name:<20} {shape:<12} {dtype:<5} {role}")?;
    }
    emit(&text)?;
    Ok(Outcome::Success)
}

/// What a layer around the RNN does, in words.
fn does(kind: &PartKind) -> String {
    match kind {
        PartKind::Embedding { mask_zero, .. } => format!(
            "token ids to vectors{}",
            if *mask_zero {
                "; id 0 masks its step"
            } else {
                ""
            }
        ),
        PartKind::Masking { value } => {
            format!("masks (and zeroes) the steps whose every feature is {value}")
        }
        PartKind::Dense {
            bias, activation, ..
        } => format!(
            "x·kernel{} over the last axis, then {activation}",
            if bias.is_some() { " + bias" } else { "" }
        ),
        PartKind::Activation(activation) => format!("{activation}"),
        PartKind::SoftmaxAxis(axis) => {
            format!("softmax over axis {axis}, which must be the last (checked when it runs)")
        }
        PartKind::Flatten => "every axis after the batch's as one".into(),
        PartKind::Identity => "nothing at inference".into(),
        PartKind::Merge(Merge::Concatenate { axis }) => format!("joined along axis {axis}"),
        PartKind::Merge(merge) => format!("{} elementwise", merge.class().to_lowercase()),
    }
}

/// `a` for values that are all equal, else `a, b, c` (one per layer).
fn join_per_layer<T: PartialEq + std::fmt::Display>(values: &[T]) -> String {
    match values.first() {
        Some(first) if values.iter().all(|v| v == first) => first.to_string(),
        _ => values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Why `rnn inspect` shows a tensor as unused: an input, an expected output, outside the
/// selection, or a name no reader knows.
fn why_unused(name: &str, selection: &rnn_weights::Selection) -> String {
    let base = name.strip_suffix(F64_SUFFIX).unwrap_or(name);
    let step = |prefix: &str| {
        base.strip_prefix(prefix)
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    };
    if ["input", "h0", "lengths", "sequence_length"].contains(&base) || step("X") {
        return "an input".into();
    }
    if ["output", "h_n", "output_forward", "output_backward"].contains(&base) || step("Y") {
        return "an expected output".into();
    }
    if let Some(p) = selection.prefix.as_deref().filter(|p| !name.starts_with(p)) {
        return format!("outside --prefix {p}");
    }
    if !selection.stack.is_empty() && !selection.stack.iter().any(|p| name.starts_with(p.as_str()))
    {
        return format!("outside --stack {}", selection.stack.join(","));
    }
    "not a weight of any RNN rnn reads".into()
}
