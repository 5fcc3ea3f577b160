//! `torch.export.save` archives (`.pt2`): a zip whose `<root>/data/weights/` holds each
//! parameter's raw bytes, described by `model_weights_config.json` (`path_name`, `tensor_meta`:
//! dtype, sizes, strides), and whose `<root>/models/model.json` records the exported graph.
//!
//! An `nn.RNN` exports as one `aten.rnn_tanh.input` or `aten.rnn_relu.input` node whose
//! arguments are what the module was built with (`num_layers`, `bidirectional`, `batch_first`,
//! `has_biases`) and whose `params` list the weights layer by layer, direction by direction,
//! in torch's flat order (`w_ih`, `w_hh`, then `b_ih`, `b_hh`): the weights are named
//! canonically from that list, and the options from the node. Its initial state is zeros
//! (`aten.zeros`) or a graph input (the user's `h0`). A graph with any other computing op
//! (a Linear head, an embedding) is refused by the op's name: the program records a forward
//! pass rnn does not run yet.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;

/// The most a JSON entry may hold (the graph of an RNN alone takes a few kilobytes).
const MAX_JSON: u64 = 8 << 20;

/// Whether a zip's entry names are those of a `torch.export.save` archive.
pub(crate) fn is_export(names: &[String]) -> bool {
    names
        .iter()
        .any(|n| n.ends_with("data/weights/model_weights_config.json"))
        && names.iter().any(|n| n.ends_with("archive_format"))
}

/// Reads the RNN of a `.pt2` archive.
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_owned(),
        kind: "torch.export archive",
        reason,
    };
    let refuse = |format: String| WeightsError::Unsupported {
        path: path.to_owned(),
        format,
        advice: "save the nn.RNN's state_dict (torch.save(model.rnn.state_dict(), path)), or \
                 export the nn.RNN alone"
            .into(),
    };
    let mut archive = crate::npz::zip_archive(bytes)
        .map_err(|e| malformed(format!("the zip archive does not open: {e}")))?;
    let config_name = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with("data/weights/model_weights_config.json"))
        .ok_or_else(|| malformed("expected data/weights/model_weights_config.json".into()))?;
    let root = config_name
        .strip_suffix("data/weights/model_weights_config.json")
        .unwrap_or("")
        .to_string();
    // What one entry may unpack to: its declared size, bounded by the file's (torch stores
    // them uncompressed).
    let limit = 16 * bytes.len() as u64 + (64 << 20);
    let mut entry =
        |name: &str, most: u64| crate::npz::read_entry(&mut archive, name, most).map_err(malformed);
    let json = |text: Vec<u8>, what: &str| -> Result<Value> {
        serde_json::from_slice(&text).map_err(|e| malformed(format!("{what} is not JSON: {e}")))
    };
    if let Ok(order) = entry(&format!("{root}byteorder"), 16) {
        if order != b"little" {
            return Err(malformed(format!(
                "byteorder {:?}: rnn reads little-endian archives",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let weights_config = json(entry(&config_name, MAX_JSON)?, "model_weights_config.json")?;
    let model = json(
        entry(&format!("{root}models/model.json"), MAX_JSON)?,
        "models/model.json",
    )?;
    let graph = &model["graph_module"]["graph"];
    let nodes = graph["nodes"]
        .as_array()
        .ok_or_else(|| malformed("models/model.json: expected graph.nodes, a list".into()))?;
    // The RNN node, and nothing else that computes.
    let mut rnn = None;
    for node in nodes {
        let target = node["target"].as_str().unwrap_or("");
        match target {
            "torch.ops.aten.rnn_tanh.input" | "torch.ops.aten.rnn_relu.input" => {
                if rnn.replace(node).is_some() {
                    return Err(refuse(
                        "a torch.export program of two RNNs (two aten.rnn nodes)".into(),
                    ));
                }
            }
            "torch.ops.aten.zeros.default" | "_operator.getitem" => {}
            other => {
                return Err(refuse(format!(
                    "a torch.export program that computes {} around its RNN (a forward pass \
                     beyond the recurrence)",
                    crate::error::clip(other, crate::error::QUOTED_CHARS)
                )))
            }
        }
    }
    let rnn = rnn.ok_or_else(|| refuse("a torch.export program without an nn.RNN".into()))?;
    let arg = |name: &str| -> &Value {
        rnn["inputs"]
            .as_array()
            .and_then(|inputs| inputs.iter().find(|i| i["name"] == name))
            .map_or(&Value::Null, |i| &i["arg"])
    };
    let flag = |name: &str| {
        arg(name)["as_bool"]
            .as_bool()
            .ok_or_else(|| malformed(format!("the aten.rnn node: expected a bool `{name}`")))
    };
    let (bidirectional, batch_first, biases) = (
        flag("bidirectional")?,
        flag("batch_first")?,
        flag("has_biases")?,
    );
    let layers = arg("num_layers")["as_int"]
        .as_u64()
        .filter(|&n| n >= 1)
        .ok_or_else(|| malformed("the aten.rnn node: expected num_layers ≥ 1".into()))?
        as usize;
    let params: Vec<&str> = arg("params")["as_tensors"]
        .as_array()
        .map(|p| p.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    let directions = if bidirectional { 2 } else { 1 };
    let per = if biases { 4 } else { 2 };
    if params.len() != layers * directions * per {
        return Err(malformed(format!(
            "the aten.rnn node: expected {} params for {layers} layers, {directions} \
             directions{}, found {}",
            layers * directions * per,
            if biases { " and biases" } else { "" },
            params.len()
        )));
    }
    // Graph names of parameters → their state_dict names.
    let specs = model["graph_module"]["signature"]["input_specs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut parameter = HashMap::new();
    let mut user_inputs = Vec::new();
    for spec in &specs {
        if let Some(p) = spec.get("parameter") {
            if let (Some(arg), Some(name)) =
                (p["arg"]["name"].as_str(), p["parameter_name"].as_str())
            {
                parameter.insert(arg.to_string(), name.to_string());
            }
        } else if let Some(name) = spec["user_input"]["arg"]["as_tensor"]["name"].as_str() {
            user_inputs.push(name.to_string());
        } else {
            return Err(refuse(format!(
                "a torch.export program with an input of kind {}, which rnn does not read",
                spec.as_object()
                    .and_then(|o| o.keys().next().cloned())
                    .unwrap_or_default()
            )));
        }
    }
    let hx = arg("hx")["as_tensor"]["name"].as_str().unwrap_or("");
    let zeros = nodes.iter().any(|n| {
        n["target"] == "torch.ops.aten.zeros.default"
            && n["outputs"]
                .as_array()
                .and_then(|o| o.first())
                .and_then(|o| o["as_tensor"]["name"].as_str())
                == Some(hx)
    });
    if !zeros && !user_inputs.iter().any(|u| u == hx) {
        return Err(refuse(format!(
            "a torch.export program whose RNN starts from `{hx}`, neither zeros nor an input"
        )));
    }
    let mut tensors = std::collections::BTreeMap::new();
    let kinds: &[&str] = if biases {
        &["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    } else {
        &["weight_ih", "weight_hh"]
    };
    let mut names = params.iter();
    for layer in 0..layers {
        for direction in 0..directions {
            let suffix = if direction == 1 { "_reverse" } else { "" };
            for kind in kinds {
                let graph_name = names.next().copied().unwrap_or("");
                let saved = parameter.get(graph_name).ok_or_else(|| {
                    malformed(format!(
                        "the aten.rnn node's param `{graph_name}` is no parameter of the \
                         program"
                    ))
                })?;
                let meta = &weights_config["config"][saved.as_str()];
                let file = meta["path_name"].as_str().ok_or_else(|| {
                    malformed(format!(
                        "model_weights_config.json: expected the path of `{saved}`"
                    ))
                })?;
                let raw = entry(&format!("{root}data/weights/{file}"), limit)?;
                let tensor = weight(&meta["tensor_meta"], meta["use_pickle"].as_bool(), &raw)
                    .map_err(|why| malformed(format!("weight `{saved}`: {why}")))?;
                tensors.insert(format!("{kind}_l{layer}{suffix}"), tensor);
            }
        }
    }
    let nonlinearity = if rnn["target"] == "torch.ops.aten.rnn_relu.input" {
        rnn_core::Nonlinearity::Relu
    } else {
        rnn_core::Nonlinearity::Tanh
    };
    let recorded = crate::Recorded {
        layers: Some(vec![crate::LayerConfig::new(nonlinearity)]),
        batch_first: Some(batch_first),
        ..crate::Recorded::default()
    };
    Ok(TensorFile::from_tensors(path, tensors, HashMap::new()).with_recorded(recorded))
}

/// One weight's tensor from its raw bytes and `tensor_meta` (torch.export's schema: `dtype` a
/// `ScalarType` code, `sizes` and `strides` of `as_int`, `storage_offset`); a dense row-major
/// layout is required.
fn weight(meta: &Value, pickled: Option<bool>, raw: &[u8]) -> std::result::Result<Tensor, String> {
    if pickled != Some(false) {
        return Err("stored pickled (use_pickle), not as raw bytes".into());
    }
    // torch/_export/serde/schema.py ScalarType: HALF 6, FLOAT 7, DOUBLE 8, BFLOAT16 13.
    let (dtype, width) = match meta["dtype"].as_i64() {
        Some(7) => (DType::F32, 4),
        Some(8) => (DType::F64, 8),
        other => {
            return Err(format!(
                "dtype code {other:?}, not float32 (7) or float64 (8)"
            ))
        }
    };
    let ints = |key: &str| -> std::result::Result<Vec<usize>, String> {
        meta[key]
            .as_array()
            .ok_or_else(|| format!("expected `{key}`, a list"))?
            .iter()
            .map(|d| {
                d["as_int"]
                    .as_u64()
                    .and_then(|d| usize::try_from(d).ok())
                    .ok_or_else(|| format!("expected `{key}` of whole numbers, found {d}"))
            })
            .collect()
    };
    let sizes = ints("sizes")?;
    let strides = ints("strides")?;
    let mut expected = Vec::with_capacity(sizes.len());
    let mut step = 1usize;
    for size in sizes.iter().rev() {
        expected.push(step);
        step = step.saturating_mul(*size);
    }
    expected.reverse();
    if !crate::header_checks::strides_fit(&sizes) {
        return Err(format!("shape {sizes:?} overflows"));
    }
    let offset = meta["storage_offset"]["as_int"].as_u64();
    if strides != expected || offset != Some(0) {
        return Err(format!(
            "strides {strides:?} from offset {offset:?}, not a dense row-major layout"
        ));
    }
    let bytes = step
        .checked_mul(width)
        .filter(|&b| b == raw.len())
        .ok_or_else(|| format!("shape {sizes:?} does not fill its {} bytes", raw.len()))?;
    Tensor::from_raw_buffer(&raw[..bytes], dtype, &sizes, &Device::Cpu).map_err(|e| e.to_string())
}
