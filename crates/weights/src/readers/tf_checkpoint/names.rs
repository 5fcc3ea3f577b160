//! The checkpoint's names brought to what `naming.rs` reads: TensorFlow's bookkeeping left
//! out, TF2 object-graph names of a Keras model as Keras variable paths, the article's unnamed
//! variables by shape.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;

use crate::error::{Result, WeightsError};

/// TensorFlow's own entries: the object graph, step counters and optimizer state.
pub(super) fn is_bookkeeping(name: &str) -> bool {
    const SLOTS: [&str; 8] = [
        "/Adam",
        "/Adam_1",
        "/Momentum",
        "/RMSProp",
        "/RMSProp_1",
        "/Adagrad",
        "/Ftrl",
        "/Ftrl_1",
    ];
    name == "_CHECKPOINTABLE_OBJECT_GRAPH"
        || name == "global_step"
        || name == "beta1_power"
        || name == "beta2_power"
        || name == "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
        || name.starts_with("optimizer/")
        || name.contains("/.OPTIMIZER_SLOT/")
        || SLOTS.iter().any(|s| name.ends_with(s))
}

/// The checkpoint's names as `naming.rs` reads them: TF2 object-graph names of a Keras
/// model as Keras variable paths, the article's unnamed variables as `Wx`, `Wy`, `b`; every
/// other name as it is. Also returns the object-graph variables of no recurrent layer (a
/// Dense head's), which make the file refused unless the user picks the RNN.
/// What to save instead of a SavedModel, in words rnn reads.
pub(crate) const SAVE_KERAS: &str = "save the model as Keras writes it by default and rnn reads \
    it: model.save(\"m.keras\") (Keras 3), model.save(\"m.h5\") (tf-keras), or \
    model.save_weights(\"w.weights.h5\")";

/// Whether every variable is named by number in a list of variables, as a SavedModel's
/// `variables/` names them (`variables/0/.ATTRIBUTES/VARIABLE_VALUE`; Keras 3's
/// `model.export` lists them again as `_all_variables/0/…`).
pub(super) fn numbered(tensors: &BTreeMap<String, Tensor>) -> bool {
    let numbered = |n: &String| {
        n.strip_suffix("/.ATTRIBUTES/VARIABLE_VALUE")
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(list, k)| {
                matches!(
                    list,
                    "variables"
                        | "_all_variables"
                        | "trainable_variables"
                        | "non_trainable_variables"
                ) && !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_digit())
            })
    };
    !tensors.is_empty() && tensors.keys().all(numbered)
}

pub(super) fn rename(
    path: &Path,
    tensors: BTreeMap<String, Tensor>,
) -> Result<(BTreeMap<String, Tensor>, Vec<String>)> {
    let refuse = |what: String| WeightsError::Unrecognised {
        path: path.to_owned(),
        what,
        found: tensors.keys().cloned().collect(),
    };
    // A SavedModel's variables/ checkpoint names its variables by number (`variables/0/…`);
    // without tf-keras's keras_metadata.pb beside them (saved_model.rs) nothing says which
    // layer each belongs to.
    if numbered(&tensors) {
        return Err(WeightsError::Unsupported {
            path: path.to_owned(),
            format: "a SavedModel's variables (named variables/0, variables/1, …) without the \
                     keras_metadata.pb that tf-keras writes beside them (Keras 3's \
                     model.export), so nothing says which layer each belongs to"
                .into(),
            advice: SAVE_KERAS.into(),
        });
    }
    let mut out = BTreeMap::new();
    let mut not_run = Vec::new();
    for (name, tensor) in &tensors {
        let new = match name.strip_suffix("/.ATTRIBUTES/VARIABLE_VALUE") {
            Some(object) => match keras_object_path(object, tensor) {
                Ok(Some(keras)) => keras,
                Ok(None) => {
                    not_run.push(object.to_string());
                    name.clone()
                }
                Err(why) => return Err(refuse(why)),
            },
            None => name.clone(),
        };
        if out.insert(new.clone(), tensor.clone()).is_some() {
            return Err(refuse(format!(
                "two variables map to the Keras path `{new}`"
            )));
        }
    }
    article_names(&mut out).map_err(refuse)?;
    Ok((out, not_run))
}

/// A TF2 object-graph path (without `/.ATTRIBUTES/VARIABLE_VALUE`) of a recurrent layer's
/// variable as a Keras path, `None` for a variable of no recurrent layer, or why it cannot be
/// mapped.
///
/// Keras 3.15 with TF 2.21 writes a `Sequential`'s layers as
/// `model/_functional/_operations/K/cell/kernel` (K counts the model's operations, the input
/// layer 0) and tf-keras `model/layer_with_weights-K/cell/kernel`; a `Bidirectional` holds
/// `forward_layer/cell/…` and `backward_layer/cell/…`. K is the layer's place in the model,
/// so the Keras path numbers the layer by it, as Keras's default names would
/// (`model/simple_rnn_K/simple_rnn_cell/kernel`).
pub(super) fn keras_object_path(
    object: &str,
    tensor: &Tensor,
) -> std::result::Result<Option<String>, String> {
    let parts: Vec<&str> = object.split('/').collect();
    let Some(var) = parts.last().copied() else {
        return Ok(None);
    };
    if !matches!(var, "kernel" | "recurrent_kernel" | "bias") {
        return Ok(None);
    }
    let Some(cell) = parts.iter().rposition(|p| *p == "cell") else {
        return Ok(None);
    };
    if cell + 2 != parts.len() {
        return Ok(None);
    }
    // The layer: `…/forward_layer/cell` in a Bidirectional, else `…/cell`.
    let (layer_end, direction) = match cell.checked_sub(1).map(|i| parts[i]) {
        Some("forward_layer") => (cell - 1, Some("forward")),
        Some("backward_layer") => (cell - 1, Some("backward")),
        _ => (cell, None),
    };
    let layer = &parts[..layer_end];
    let index = layer.last().and_then(|last| {
        last.strip_prefix("layer_with_weights-")
            .or_else(|| last.strip_prefix("layer-"))
            .or_else(|| {
                let parent = layer.get(layer.len().checked_sub(2)?)?;
                matches!(*parent, "_operations" | "_layers" | "layers").then_some(*last)
            })
            .and_then(|k| k.parse::<u64>().ok())
    });
    let Some(index) = index else {
        return Err(format!(
            "the checkpoint's variable `{object}` is a recurrent cell's, but its path gives no \
             layer number (layer_with_weights-K or _operations/K), so its place in the stack \
             is unknown"
        ));
    };
    if var == "recurrent_kernel" {
        let dims = tensor.dims();
        if dims.len() != 2 || dims[0] != dims[1] {
            return Err(format!(
                "the checkpoint's variable `{object}` has shape {dims:?}, not a SimpleRNN's \
                 square recurrent kernel (an LSTM or GRU?), which rnn does not run"
            ));
        }
    }
    // The model's scope: the path before the layer list.
    let scope_len = layer.len().saturating_sub(1);
    let scope: Vec<&str> = layer[..scope_len]
        .iter()
        .copied()
        .filter(|p| !matches!(*p, "_functional" | "_operations" | "_layers" | "layers"))
        .collect();
    let mut path = scope.join("/");
    if !path.is_empty() {
        path.push('/');
    }
    let rnn = format!("simple_rnn_{index}");
    match direction {
        Some(direction) => path.push_str(&format!("bidirectional_{index}/{direction}_{rnn}")),
        None => path.push_str(&rnn),
    }
    Ok(Some(format!("{path}/simple_rnn_cell/{var}")))
}

/// The article's program saved with `Saver`: its `tf.Variable`s have no names, so TensorFlow
/// calls them `Variable`, `Variable_1`, `Variable_2`. Renamed `Wx` `[I, H]`, `Wy` `[H, H]`,
/// `b` `[1, H]` when exactly one assignment fits those shapes.
pub(super) fn article_names(
    tensors: &mut BTreeMap<String, Tensor>,
) -> std::result::Result<(), String> {
    let unnamed: Vec<String> = tensors
        .keys()
        .filter(|n| {
            n.strip_prefix("Variable").is_some_and(|rest| {
                rest.is_empty()
                    || rest
                        .strip_prefix('_')
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
        })
        .cloned()
        .collect();
    if unnamed.len() != 3 || tensors.contains_key("Wx") {
        return Ok(());
    }
    let dims: Vec<Vec<usize>> = unnamed
        .iter()
        .filter_map(|n| tensors.get(n).map(|t| t.dims().to_vec()))
        .collect();
    let fits = |wx: &[usize], wy: &[usize], b: &[usize]| matches!((wx, wy, b), ([_, h1], [h2, h3], [1, h4]) if h1 == h2 && h2 == h3 && h3 == h4);
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let fitting: Vec<[usize; 3]> = orders
        .into_iter()
        .filter(|o| fits(&dims[o[0]], &dims[o[1]], &dims[o[2]]))
        .collect();
    match fitting.as_slice() {
        [] => Ok(()),
        [order] => {
            for (k, new) in order.iter().zip(["Wx", "Wy", "b"]) {
                if let Some(t) = tensors.remove(&unnamed[*k]) {
                    tensors.insert(new.to_string(), t);
                }
            }
            Ok(())
        }
        _ => Err(format!(
            "the unnamed variables {} have shapes {:?}, which fit the article's Wx [I, H], Wy \
             [H, H] and b [1, H] in more than one way (the input size equals the hidden size); \
             name them when creating them (tf.Variable(..., name=\"Wx\"), \"Wy\", \"b\") or \
             save them as safetensors under those names",
            unnamed.join(", "),
            dims
        )),
    }
}
