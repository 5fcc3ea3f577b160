//! Every reader, against files whose structure the test wrote: a reading either fails or
//! gives back exactly the structure written, whatever is done to the names.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::*;
use crate::model::LoadedWeights;

/// A structure to write: hidden size per layer, bidirectional or not.
#[derive(Debug, Clone, Copy)]
struct Shape {
    layers: usize,
    bidirectional: bool,
}

/// The written file: tensor name → shape, and the canonical target each name must become
/// (as `rnn inspect` lists them: `weight_ih_l0`, …).
struct Written {
    tensors: BTreeMap<String, Vec<usize>>,
    targets: BTreeMap<String, Vec<String>>,
}

const INPUT: usize = 3;
const HIDDEN: usize = 4;

impl Written {
    fn new() -> Self {
        Self {
            tensors: BTreeMap::new(),
            targets: BTreeMap::new(),
        }
    }

    fn add(&mut self, name: &str, shape: &[usize], targets: &[String]) {
        self.tensors.insert(name.to_string(), shape.to_vec());
        self.targets.insert(name.to_string(), targets.to_vec());
    }

    fn file(&self) -> TensorFile {
        let tensors = self
            .tensors
            .iter()
            .enumerate()
            .map(|(i, (n, s))| {
                let count: usize = s.iter().product();
                let values: Vec<f32> = (0..count)
                    .map(|j| ((i * 31 + j) % 7) as f32 / 7.0)
                    .collect();
                (
                    n.clone(),
                    Tensor::from_vec(values, s.as_slice(), &Device::Cpu).unwrap(),
                )
            })
            .collect();
        TensorFile::from_tensors(Path::new("written.safetensors"), tensors, HashMap::new())
    }
}

fn target(kind: &str, k: usize, d: usize) -> String {
    format!("{kind}_l{k}{}", if d == 1 { "_reverse" } else { "" })
}

fn input_of(k: usize, shape: Shape) -> usize {
    match k {
        0 => INPUT,
        _ if shape.bidirectional => 2 * HIDDEN,
        _ => HIDDEN,
    }
}

fn pytorch(prefix: &str, shape: Shape) -> Written {
    let mut w = Written::new();
    for k in 0..shape.layers {
        for d in 0..1 + usize::from(shape.bidirectional) {
            let i = input_of(k, shape);
            let t = |kind| target(kind, k, d);
            let s = if d == 1 { "_reverse" } else { "" };
            w.add(
                &format!("{prefix}weight_ih_l{k}{s}"),
                &[HIDDEN, i],
                &[t("weight_ih")],
            );
            w.add(
                &format!("{prefix}weight_hh_l{k}{s}"),
                &[HIDDEN, HIDDEN],
                &[t("weight_hh")],
            );
            w.add(
                &format!("{prefix}bias_ih_l{k}{s}"),
                &[HIDDEN],
                &[t("bias_ih")],
            );
            w.add(
                &format!("{prefix}bias_hh_l{k}{s}"),
                &[HIDDEN],
                &[t("bias_hh")],
            );
        }
    }
    w
}

/// Keras's default names: `simple_rnn_<n>` layers, `bidirectional_<n>` wrappers.
fn keras(model: &str, first: usize, shape: Shape) -> Written {
    let mut w = Written::new();
    let number = |n: usize| {
        if n == 0 {
            String::new()
        } else {
            format!("_{n}")
        }
    };
    for k in 0..shape.layers {
        let rnn = format!("simple_rnn{}", number(first + k));
        let cells: Vec<String> = if shape.bidirectional {
            let wrapper = format!("{model}bidirectional{}", number(first + k));
            vec![
                format!("{wrapper}/forward_{rnn}"),
                format!("{wrapper}/backward_{rnn}"),
            ]
        } else {
            vec![format!("{model}{rnn}")]
        };
        for (d, layer) in cells.iter().enumerate() {
            let cell = format!("{layer}/simple_rnn_cell");
            let i = input_of(k, shape);
            w.add(
                &format!("{cell}/kernel"),
                &[i, HIDDEN],
                &[target("weight_ih", k, d)],
            );
            w.add(
                &format!("{cell}/recurrent_kernel"),
                &[HIDDEN, HIDDEN],
                &[target("weight_hh", k, d)],
            );
            w.add(
                &format!("{cell}/bias"),
                &[HIDDEN],
                &[target("bias_ih", k, d)],
            );
        }
    }
    w
}

fn tf1(scope: &str, shape: Shape) -> Written {
    let mut w = Written::new();
    for k in 0..shape.layers {
        for d in 0..1 + usize::from(shape.bidirectional) {
            // MultiRNNCell stacks; stack_bidirectional_dynamic_rnn's scopes when bidirectional.
            let mut path = scope.to_string();
            match (shape.layers > 1, shape.bidirectional) {
                (true, true) => path.push_str(&format!("/cell_{k}/bidirectional_rnn")),
                (true, false) => path.push_str(&format!("/multi_rnn_cell/cell_{k}")),
                _ => {}
            }
            if shape.bidirectional {
                path.push_str(if d == 0 { "/fw" } else { "/bw" });
            }
            let cell = format!("{path}/basic_rnn_cell");
            let i = input_of(k, shape);
            let kernel = [target("weight_ih", k, d), target("weight_hh", k, d)];
            w.add(&format!("{cell}/kernel:0"), &[i + HIDDEN, HIDDEN], &kernel);
            w.add(
                &format!("{cell}/bias:0"),
                &[HIDDEN],
                &[target("bias_ih", k, d)],
            );
        }
    }
    w
}

fn article(prefix: &str) -> Written {
    let mut w = Written::new();
    w.add(
        &format!("{prefix}Wx"),
        &[INPUT, HIDDEN],
        &[target("weight_ih", 0, 0)],
    );
    w.add(
        &format!("{prefix}Wy"),
        &[HIDDEN, HIDDEN],
        &[target("weight_hh", 0, 0)],
    );
    w.add(
        &format!("{prefix}b"),
        &[1, HIDDEN],
        &[target("bias_ih", 0, 0)],
    );
    w
}

/// Every file the test writes: (description, file, a second RNN to add beside it).
fn cases() -> Vec<(String, Written, Written)> {
    let mut cases = Vec::new();
    for layers in 1..=3 {
        for bidirectional in [false, true] {
            let shape = Shape {
                layers,
                bidirectional,
            };
            let label = format!("{layers} layers, bidirectional {bidirectional}");
            cases.push((
                format!("pytorch {label}"),
                pytorch("rnn.", shape),
                pytorch("decoder.", shape),
            ));
            cases.push((
                format!("keras {label}"),
                keras("sequential/", 0, shape),
                keras("sequential_1/", 5, shape),
            ));
            cases.push((
                format!("tf1 {label}"),
                tf1("rnn", shape),
                tf1("decoder/rnn", shape),
            ));
        }
    }
    cases.push(("article".into(), article(""), article("other/")));
    cases
}

/// `Ok(true)` when the reading is exactly the written structure, `Ok(false)` when it is
/// another one, `Err` when it was refused.
fn reads_back(w: &Written, selection: &Selection) -> std::result::Result<bool, String> {
    let file = w.file();
    let model = LoadedWeights::select(&file, DType::F32, selection).map_err(|e| e.to_string())?;
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &model.mapping {
        got.entry(m.source.clone())
            .or_default()
            .push(m.target.clone());
    }
    Ok(got == w.targets)
}

#[test]
fn every_reader_reads_back_what_was_written() {
    for (label, written, _) in cases() {
        assert_eq!(
            reads_back(&written, &Selection::default()),
            Ok(true),
            "{label}"
        );
    }
}

#[test]
fn dropping_any_one_tensor_never_reads_as_another_structure() {
    for (label, written, _) in cases() {
        for name in written.tensors.keys() {
            let mut dropped = Written::new();
            for (n, s) in &written.tensors {
                if n != name {
                    dropped.add(n, s, &written.targets[n]);
                }
            }
            let result = reads_back(&dropped, &Selection::default());
            // A Keras layer without its bias is a layer with use_bias=False: a structure of
            // its own, read as exactly what remains. Everything else must be refused.
            let keras_bias = label.starts_with("keras")
                && name.ends_with("/bias")
                && !label.contains("bidirectional true");
            // So is one PyTorch cell with one of its two biases (the canonical layout keeps a
            // summed bias as bias_ih alone); in a file of several cells it is a lost tensor.
            let lone_torch_bias =
                label == "pytorch 1 layers, bidirectional false" && name.contains("bias_");
            if keras_bias || lone_torch_bias {
                assert_eq!(result, Ok(true), "{label} without {name}");
            } else {
                assert!(result.is_err(), "{label} without {name}: {result:?}");
            }
        }
    }
}

#[test]
fn a_second_rnn_in_the_file_is_refused_until_one_is_chosen() {
    for (label, written, second) in cases() {
        let mut both = Written::new();
        for w in [&written, &second] {
            for (n, s) in &w.tensors {
                both.add(n, s, &w.targets[n]);
            }
        }
        let result = reads_back(&both, &Selection::default());
        let message = result.clone().expect_err(&label);
        assert!(message.contains("--prefix"), "{label}: {message}");
        // Choosing the first by its prefix gives exactly it.
        let prefix = written
            .tensors
            .keys()
            .map(|n| n.split(['/', '.']).next().unwrap_or(""))
            .next()
            .unwrap()
            .to_string();
        if prefix.is_empty() || label == "article" {
            continue;
        }
        let separator = if label.starts_with("pytorch") {
            "."
        } else {
            "/"
        };
        let mut chosen = Written::new();
        for (n, s) in &both.tensors {
            let targets = if n.starts_with(&format!("{prefix}{separator}")) {
                both.targets[n].clone()
            } else {
                Vec::new()
            };
            chosen.add(n, s, &targets);
        }
        chosen.targets.retain(|_, t| !t.is_empty());
        let selection = Selection {
            prefix: Some(format!("{prefix}{separator}")),
            ..Selection::default()
        };
        assert_eq!(reads_back(&chosen, &selection), Ok(true), "{label}");
    }
}

#[test]
fn renamed_keras_layers_of_a_stack_are_refused_not_reordered() {
    for layers in 2..=3 {
        for bidirectional in [false, true] {
            let shape = Shape {
                layers,
                bidirectional,
            };
            let written = keras("", 0, shape);
            // Rename every layer to a name the user chose, in reverse alphabetical order of
            // their position, so that sorting the names would reverse the stack.
            let mut renamed = Written::new();
            for (n, s) in &written.tensors {
                let mut name = n.clone();
                for k in 0..layers {
                    let number = if k == 0 {
                        String::new()
                    } else {
                        format!("_{k}")
                    };
                    for old in [
                        format!("bidirectional{number}/"),
                        format!("simple_rnn{number}/"),
                    ] {
                        if name.starts_with(&old) {
                            name = name.replacen(&old, &format!("z{}_layer/", 9 - k), 1);
                        }
                    }
                    let fw = format!("forward_simple_rnn{number}/");
                    name = name.replacen(&fw, "forward_mine/", 1);
                    let bw = format!("backward_simple_rnn{number}/");
                    name = name.replacen(&bw, "backward_mine/", 1);
                }
                renamed.add(&name, s, &written.targets[n]);
            }
            let result = reads_back(&renamed, &Selection::default());
            assert!(
                result.is_err(),
                "{layers} layers, bidirectional {bidirectional}: {result:?}"
            );
            let stack: Vec<String> = (0..layers).map(|k| format!("z{}_layer/", 9 - k)).collect();
            let selection = Selection {
                stack,
                ..Selection::default()
            };
            assert_eq!(reads_back(&renamed, &selection), Ok(true));
        }
    }
}
