//! Writing a stack as ONNX Runtime runs it: a graph of `RNN` nodes (ONNX opset 14) joined by
//! the glue `torch.onnx.export(nn.RNN, ..., dynamo=False)` writes, with PyTorch's inputs and
//! outputs, which `onnxruntime.InferenceSession(path).run(None, {"input": x})` runs.
//!
//! The graph, for `L` layers of `D_k` directions:
//! - inputs `input` (`[seq_len, batch, input_size]`, or `[batch, seq_len, input_size]`
//!   batch-first; both axes dynamic), and two optional ones, each an initialiser listed as a
//!   graph input (ONNX's overridable default):
//!   - `h0` (`[Σ D_k, batch, hidden]`, float32; where every layer has the same hidden size),
//!     whose default `[Σ D_k, 1, hidden]` of zeros is `Expand`ed to the batch: absent, every
//!     layer starts from zeros, as `nn.RNN` does;
//!   - `lengths` (`[batch]`, int32: each sequence's length), whose default `[2³¹ − 1]` is
//!     `Expand`ed to the batch and capped at `seq_len` by `Min`: absent, every sequence runs
//!     to the end. Past its length a sequence's outputs are zeros and its final state is the
//!     one at its last step (ONNX's `sequence_lens`).
//! - one `RNN` node per layer (`W` `[D, hidden, input]`, `R` `[D, hidden, hidden]`, `B`
//!   `[D, 2·hidden]` = `[b_ih, b_hh]` where the layer has biases; attributes `hidden_size`,
//!   `direction` forward, reverse or bidirectional, `activations` with
//!   `activation_alpha`/`activation_beta` in ONNX Runtime's order, and `clip`), the next layer
//!   reading its output through `Squeeze` of axis 1 (one direction), `Transpose` `[0, 2, 1,
//!   3]` and `Reshape` `[0, 0, -1]` (two, concatenated), or `ReduceSum`, `ReduceMean` or
//!   `ReduceProd` over axis 1 (two, merged as Keras's `merge_mode` sum, ave or mul);
//! - outputs `output` (the top layer's, laid out as `input`) and, where the hidden sizes agree,
//!   `h_n` (`[Σ D_k, batch, hidden]`, layer-major, as `nn.RNN` orders it).
//!
//! ONNX Runtime runs some inputs that `rnn` refuses, when reading the file back or running the
//! source: `lengths` longer than `seq_len` (`Min` caps them), an `h0` of batch 1 (`Expand`
//! broadcasts it), and a sequence of length 0 with a nonzero `h0` (ONNX Runtime gives it a
//! final state of 0, rnn its initial state).
//!
//! Messages are encoded with `prost` over the fields of `onnx.proto` this writer sets (field
//! numbers as published); the bytes depend on nothing but the model.

use std::path::Path;

use candle_core::{DType, Tensor};
use prost::Message;
use rnn_core::{LayerWeights, MaskedSteps, MergeMode, Nonlinearity, TimeOrder};

use crate::config::{LayerConfig, StackConfig};
use crate::error::{Result, WeightsError};
use crate::readers::onnx_proto::{
    Attribute, Dim, Node, OpsetId, Shape, TensorProto, TensorType, TypeProto, ValueInfo,
};
use crate::write::write_atomically;

/// The ONNX opset the graph is written for (RNN-14, Reshape-14; the others at 13).
pub const OPSET: i64 = 14;

/// The default of `lengths`: longer than any sequence, so that `Min` with `seq_len` gives
/// every sequence its whole length.
pub(crate) const NO_LENGTH: i32 = i32::MAX;

/// What [`save_onnx`] wrote: the graph's inputs and outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxRnn {
    /// Whether `input` (and `output`) are `[batch, seq_len, features]`.
    pub batch_first: bool,
    /// `[rows, hidden]` of `h0` and `h_n` where the graph has them (every layer's hidden
    /// size the same): rows is the sum of the layers' directions.
    pub states: Option<[usize; 2]>,
}

impl OnnxRnn {
    /// The Python that runs the file written at `path` with ONNX Runtime.
    pub fn loader(&self, path: &Path) -> String {
        let path = format!("{:?}", path.display().to_string());
        let layout = if self.batch_first {
            "[batch, seq_len, features]"
        } else {
            "[seq_len, batch, features]"
        };
        let mut text = format!(
            "import onnxruntime\nsession = onnxruntime.InferenceSession({path})\n\
             # input: float32 {layout}; optional: lengths, int32 [batch]"
        );
        match self.states {
            Some([rows, hidden]) => text.push_str(&format!(
                ", h0, float32 [{rows}, batch, {hidden}]\n\
                 output, h_n = session.run(None, {{\"input\": x}})"
            )),
            None => text.push_str("\noutput, = session.run(None, {\"input\": x})"),
        }
        text
    }
}

/// Why a stack cannot be written as ONNX, by the option's name.
fn refuse(path: &Path, what: String, advice: &str) -> WeightsError {
    WeightsError::Unwritable {
        path: path.to_owned(),
        format: "an ONNX graph of RNN nodes",
        reason: format!("it cannot express {what}; {advice}"),
    }
}

const SAFETENSORS: &str = "write a .safetensors file, which records it";

/// ONNX's name of `n`, with its `activation_alpha` and `activation_beta` where it takes them.
/// Parameters are float32 in ONNX: one that float32 does not hold exactly is refused.
fn activation(path: &Path, n: Nonlinearity, k: usize) -> Result<(&'static str, Vec<f32>)> {
    let exact = |p: rnn_core::Param| -> Result<f32> {
        let v = p.get() as f32;
        if f64::from(v) == p.get() {
            Ok(v)
        } else {
            Err(refuse(
                path,
                format!("activation {n} at layer {k} exactly: ONNX's parameters are float32"),
                &format!("give a float32 value, such as {}", f64::from(v)),
            ))
        }
    };
    Ok(match n {
        Nonlinearity::Tanh => ("Tanh", vec![]),
        Nonlinearity::Relu => ("Relu", vec![]),
        Nonlinearity::Sigmoid => ("Sigmoid", vec![]),
        Nonlinearity::Softsign => ("Softsign", vec![]),
        Nonlinearity::Softplus => ("Softplus", vec![]),
        Nonlinearity::Linear => ("Affine", vec![1.0, 0.0]),
        Nonlinearity::Elu => ("Elu", vec![1.0]),
        Nonlinearity::ScaledElu { alpha } => ("Elu", vec![exact(alpha)?]),
        Nonlinearity::LeakyRelu { alpha } => ("LeakyRelu", vec![exact(alpha)?]),
        Nonlinearity::ThresholdedRelu { alpha } => ("ThresholdedRelu", vec![exact(alpha)?]),
        Nonlinearity::Affine { alpha, beta } => ("Affine", vec![exact(alpha)?, exact(beta)?]),
        Nonlinearity::ScaledTanh { alpha, beta } => {
            ("ScaledTanh", vec![exact(alpha)?, exact(beta)?])
        }
        Nonlinearity::LinearHardSigmoid { alpha, beta } => {
            ("HardSigmoid", vec![exact(alpha)?, exact(beta)?])
        }
        other => {
            return Err(refuse(
                path,
                format!("activation {other} (layer {k})"),
                "the RNN op's activations are Relu, Tanh, Sigmoid, Affine, LeakyRelu, \
                 ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign and Softplus; write a \
                 .safetensors file, which records any activation",
            ))
        }
    })
}

/// The layers' configurations, one per layer, after refusing what the graph cannot express.
fn check(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
) -> Result<Vec<LayerConfig>> {
    // The weights form the stack: at least one layer, each of one or two directions.
    config.check_writable(path, weights)?;
    let layers = config.layers_for(weights.len()).unwrap_or_default();
    let dtype = weights[0][0].w_ih.dtype();
    if dtype != DType::F32 {
        return Err(refuse(
            path,
            format!("{dtype:?} weights for ONNX Runtime, whose RNN op runs float32 only"),
            "write a .pt or .safetensors file, which keep them",
        ));
    }
    for (k, (layer, dirs)) in layers.iter().zip(weights).enumerate() {
        if layer.time == TimeOrder::GoBackwards {
            return Err(refuse(
                path,
                format!("go_backwards (layer {k}), whose outputs run backwards in time"),
                SAFETENSORS,
            ));
        }
        if dirs.len() == 2 && layer.merge_mode == MergeMode::Separate {
            return Err(refuse(
                path,
                format!("merge_mode none (layer {k}) yet, whose directions are two outputs"),
                "write a .keras or .safetensors file, which keep it",
            ));
        }
        if let Some(clip) = layer.clip {
            if f64::from(clip as f32) != clip {
                return Err(refuse(
                    path,
                    format!("clip {clip} (layer {k}) exactly: ONNX's clip is float32"),
                    "give a float32 value",
                ));
            }
        }
    }
    if let Some(value) = config.mask_value {
        return Err(refuse(
            path,
            format!("a Keras Masking layer (mask value {value}) before it"),
            SAFETENSORS,
        ));
    }
    if let Some(layer) = &config.input_mask {
        return Err(refuse(
            path,
            format!("a mask made before it at {layer}"),
            SAFETENSORS,
        ));
    }
    if config.masked_steps != MaskedSteps::Zeros {
        return Err(refuse(
            path,
            "Keras's outputs past a sequence's length (masked steps repeat-last)".into(),
            "ONNX's RNN gives zeros there; pass --masked-steps zeros to accept that, or write \
             a .safetensors file",
        ));
    }
    Ok(layers)
}

/// Writes `weights` with `config` at `path` as an ONNX graph of `RNN` nodes (module docs),
/// atomically, and says what its inputs and outputs are.
///
/// # Errors
/// [`WeightsError::Unwritable`] naming what ONNX (or ONNX Runtime) cannot express: float64
/// weights, an activation outside the RNN op's, a parameter or clip float32 does not hold,
/// `go_backwards`, merge mode none, a mask, Keras's repeated outputs past a
/// sequence's length; weights that do not form the stack ([`StackConfig::build`]); an I/O
/// error.
pub fn save_onnx(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
) -> Result<OnnxRnn> {
    let layers = check(path, weights, config)?;
    let tensor_error = |error| WeightsError::Tensor {
        path: path.to_owned(),
        error,
    };
    let batch_first = config.batch_first.unwrap_or(false);
    let hidden = weights[0][0].w_hh.dims()[0];
    let rows: usize = weights.iter().map(Vec::len).sum();
    let uniform = weights.iter().all(|l| l[0].w_hh.dims()[0] == hidden);
    let states = uniform.then_some([rows, hidden]);
    let mut g = GraphBuilder::default();
    g.graph.name = "rnn".into();
    let x = if batch_first {
        g.node("Transpose", &["input"], "x", vec![ints("perm", &[1, 0, 2])])
    } else {
        "input".to_string()
    };
    // The batch and the sequence length of this input, for the defaults.
    let shape = g.node("Shape", &[&x], "shape", vec![]);
    let axis1 = g.ints("axis1", &[1]);
    let batch = g.node("Gather", &[&shape, &axis1], "batch", vec![]);
    let axis0 = g.ints("axis0", &[0]);
    let seq_len = g.node("Gather", &[&shape, &axis0], "seq_len", vec![]);
    let seq_len = g.node("Cast", &[&seq_len], "seq_len_i32", vec![int("to", 6)]);
    let lengths = g.node("Expand", &["lengths", &batch], "lengths_batch", vec![]);
    let lengths = g.node("Min", &[&lengths, &seq_len], "sequence_lens", vec![]);
    let h0 = if uniform {
        let one = g.ints("one", &[1]);
        let shape = g.node(
            "Concat",
            &[&one, &batch, &one],
            "h0_shape",
            vec![int("axis", 0)],
        );
        Some(g.node("Expand", &["h0", &shape], "h0_batch", vec![]))
    } else {
        None
    };
    let mut input = x;
    let mut row = 0;
    let mut finals = Vec::new();
    for (k, (dirs, layer)) in weights.iter().zip(&layers).enumerate() {
        let d = dirs.len();
        let h = dirs[0].w_hh.dims()[0];
        let stack = |f: &dyn Fn(&LayerWeights) -> candle_core::Result<Tensor>| {
            let parts = dirs
                .iter()
                .map(f)
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::stack(&parts, 0)
        };
        let w = stack(&|c| Ok(c.w_ih.clone())).map_err(tensor_error)?;
        let r = stack(&|c| Ok(c.w_hh.clone())).map_err(tensor_error)?;
        let has_bias = dirs.iter().any(|c| c.b_ih.is_some() || c.b_hh.is_some());
        let b = stack(&|c| {
            let zeros = Tensor::zeros(h, DType::F32, c.w_hh.device())?;
            let b_ih = c.b_ih.clone().unwrap_or_else(|| zeros.clone());
            let b_hh = c.b_hh.clone().unwrap_or(zeros);
            Tensor::cat(&[b_ih, b_hh], 0)
        })
        .map_err(tensor_error)?;
        let w = g.weight(&format!("W_l{k}"), &w).map_err(tensor_error)?;
        let r = g.weight(&format!("R_l{k}"), &r).map_err(tensor_error)?;
        let b = if has_bias {
            g.weight(&format!("B_l{k}"), &b).map_err(tensor_error)?
        } else {
            String::new()
        };
        let initial = match &h0 {
            Some(h0) => {
                let start = g.ints(&format!("h0_start_l{k}"), &[row as i64]);
                let end = g.ints(&format!("h0_end_l{k}"), &[(row + d) as i64]);
                g.node(
                    "Slice",
                    &[h0, &start, &end, &axis0],
                    &format!("h0_l{k}"),
                    vec![],
                )
            }
            None => String::new(),
        };
        row += d;
        let direction = match (d, layer.time) {
            (2, _) => "bidirectional",
            (_, TimeOrder::Reverse) => "reverse",
            _ => "forward",
        };
        let mut names = Vec::new();
        let mut alphas = Vec::new();
        let mut betas = Vec::new();
        for n in [layer.nonlinearity, layer.nonlinearity_reverse]
            .into_iter()
            .take(d)
        {
            let (name, params) = activation(path, n, k)?;
            names.push(name);
            // An activation's alpha, then its beta, where it takes them.
            alphas.extend(params.first());
            betas.extend(params.get(1));
        }
        let mut attributes = vec![
            int("hidden_size", h as i64),
            string("direction", direction),
            strings("activations", &names),
        ];
        if !alphas.is_empty() {
            attributes.push(floats("activation_alpha", &alphas));
        }
        if !betas.is_empty() {
            attributes.push(floats("activation_beta", &betas));
        }
        if let Some(clip) = layer.clip {
            attributes.push(float("clip", clip as f32));
        }
        let y = format!("Y_l{k}");
        let y_h = if uniform && weights.len() == 1 {
            "h_n".to_string()
        } else {
            format!("Y_h_l{k}")
        };
        g.graph.node.push(Node {
            input: [&input, &w, &r, &b, &lengths, &initial]
                .map(String::clone)
                .to_vec(),
            output: vec![y.clone(), y_h.clone()],
            name: format!("rnn_l{k}"),
            op_type: "RNN".into(),
            attribute: attributes,
            ..Default::default()
        });
        finals.push(y_h);
        let top = k + 1 == weights.len();
        let out = if top && !batch_first {
            "output".to_string()
        } else {
            format!("output_l{k}")
        };
        let reduce = match layer.merge_mode {
            MergeMode::Sum => "ReduceSum",
            MergeMode::Ave => "ReduceMean",
            MergeMode::Mul => "ReduceProd",
            MergeMode::Concat | MergeMode::Separate => "",
        };
        input = if d == 1 {
            let axes = g.ints("squeeze_axes", &[1]);
            g.node("Squeeze", &[&y, &axes], &out, vec![])
        } else if reduce == "ReduceSum" {
            // Keras's sum, ave and mul over the directions axis (ReduceSum-13 takes its axes
            // as an input, ReduceMean-13 and ReduceProd-13 as an attribute).
            let axes = g.ints("squeeze_axes", &[1]);
            g.node(reduce, &[&y, &axes], &out, vec![int("keepdims", 0)])
        } else if !reduce.is_empty() {
            let attributes = vec![ints("axes", &[1]), int("keepdims", 0)];
            g.node(reduce, &[&y], &out, attributes)
        } else {
            let t = g.node(
                "Transpose",
                &[&y],
                &format!("Y_t_l{k}"),
                vec![ints("perm", &[0, 2, 1, 3])],
            );
            let flat = g.ints("concat_shape", &[0, 0, -1]);
            g.node("Reshape", &[&t, &flat], &out, vec![])
        };
    }
    if batch_first {
        g.node(
            "Transpose",
            &[&input],
            "output",
            vec![ints("perm", &[1, 0, 2])],
        );
    }
    if uniform && weights.len() > 1 {
        let finals: Vec<&str> = finals.iter().map(String::as_str).collect();
        g.node("Concat", &finals, "h_n", vec![int("axis", 0)]);
    }
    let input_size = weights[0][0].w_ih.dims()[1] as i64;
    let (seq, batch_dim) = (Dim::param("seq_len"), Dim::param("batch"));
    let layout = if batch_first {
        [batch_dim.clone(), seq.clone()]
    } else {
        [seq.clone(), batch_dim.clone()]
    };
    let top_features = layers
        .last()
        .map(|l| {
            l.options().output_size(
                weights[weights.len() - 1].len(),
                weights[weights.len() - 1][0].w_hh.dims()[0],
            )
        })
        .unwrap_or(hidden) as i64;
    let f32_type = 1;
    g.graph.input.push(value(
        "input",
        f32_type,
        vec![layout[0].clone(), layout[1].clone(), Dim::value(input_size)],
    ));
    g.graph
        .input
        .push(value("lengths", 6, vec![batch_dim.clone()]));
    g.graph.initializer.push(TensorProto {
        dims: vec![1],
        data_type: 6,
        name: "lengths".into(),
        raw_data: NO_LENGTH.to_le_bytes().to_vec(),
        ..Default::default()
    });
    g.graph.output.push(value(
        "output",
        f32_type,
        vec![
            layout[0].clone(),
            layout[1].clone(),
            Dim::value(top_features),
        ],
    ));
    if let Some([rows, hidden]) = states {
        let state = || {
            vec![
                Dim::value(rows as i64),
                batch_dim.clone(),
                Dim::value(hidden as i64),
            ]
        };
        g.graph.input.push(value("h0", f32_type, state()));
        g.graph.initializer.push(TensorProto {
            dims: vec![rows as i64, 1, hidden as i64],
            data_type: f32_type,
            name: "h0".into(),
            raw_data: vec![0; 4 * rows * hidden],
            ..Default::default()
        });
        g.graph.output.push(value("h_n", f32_type, state()));
    }
    let model = Model {
        ir_version: 8,
        producer_name: "rnn".into(),
        graph: Some(g.graph),
        opset_import: vec![OpsetId {
            domain: String::new(),
            version: OPSET,
        }],
    };
    write_atomically(path, &model.encode_to_vec()).map_err(|error| WeightsError::Io {
        path: path.to_owned(),
        error,
    })?;
    Ok(OnnxRnn {
        batch_first,
        states,
    })
}

/// A graph under construction: nodes in order, constants as initialisers (each name once).
#[derive(Default)]
struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    /// Adds a node with one output, `output`, and returns that name.
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<Attribute>,
    ) -> String {
        self.graph.node.push(Node {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: output.to_string(),
            op_type: op.to_string(),
            attribute,
            ..Default::default()
        });
        output.to_string()
    }

    /// An int64 constant named `name`, added once.
    fn ints(&mut self, name: &str, values: &[i64]) -> String {
        if !self.graph.initializer.iter().any(|t| t.name == name) {
            self.graph.initializer.push(TensorProto {
                dims: vec![values.len() as i64],
                data_type: 7,
                name: name.to_string(),
                raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ..Default::default()
            });
        }
        name.to_string()
    }

    /// A float32 weight named `name`.
    fn weight(&mut self, name: &str, t: &Tensor) -> candle_core::Result<String> {
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        self.graph.initializer.push(TensorProto {
            dims: t.dims().iter().map(|&d| d as i64).collect(),
            data_type: 1,
            name: name.to_string(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        Ok(name.to_string())
    }
}

// Attribute types of `AttributeProto.AttributeType`.
fn int(name: &str, i: i64) -> Attribute {
    Attribute {
        name: name.into(),
        i,
        r#type: 2,
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> Attribute {
    Attribute {
        name: name.into(),
        f,
        r#type: 1,
        ..Default::default()
    }
}

fn string(name: &str, s: &str) -> Attribute {
    Attribute {
        name: name.into(),
        s: s.as_bytes().to_vec(),
        r#type: 3,
        ..Default::default()
    }
}

fn floats(name: &str, floats: &[f32]) -> Attribute {
    Attribute {
        name: name.into(),
        floats: floats.to_vec(),
        r#type: 6,
        ..Default::default()
    }
}

fn ints(name: &str, ints: &[i64]) -> Attribute {
    Attribute {
        name: name.into(),
        ints: ints.to_vec(),
        r#type: 7,
        ..Default::default()
    }
}

fn strings(name: &str, strings: &[&str]) -> Attribute {
    Attribute {
        name: name.into(),
        strings: strings.iter().map(|s| s.as_bytes().to_vec()).collect(),
        r#type: 8,
        ..Default::default()
    }
}

fn value(name: &str, elem_type: i32, dims: Vec<Dim>) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type,
                shape: Some(Shape { dim: dims }),
            }),
        }),
    }
}

// The messages of `onnx.proto` the writer needs beyond the reader's (`ModelProto`'s version
// fields, `GraphProto`'s name).

/// `ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
struct Model {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<Graph>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OpsetId>,
}

/// `GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
struct Graph {
    #[prost(message, repeated, tag = "1")]
    node: Vec<Node>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfo>,
}

impl Dim {
    fn value(v: i64) -> Self {
        Dim {
            dim_value: Some(v),
            dim_param: None,
        }
    }

    fn param(name: &str) -> Self {
        Dim {
            dim_value: None,
            dim_param: Some(name.into()),
        }
    }
}
