//! A plan's tensors loaded from the file: each read, converted, transformed into the canonical
//! (PyTorch) layout and checked within its cell, with a record of how. Layer sizes are checked
//! against each other once, when the stack is built and the merge modes are known
//! ([`crate::LoadedWeights::build`]).

use candle_core::{DType, Tensor};
use rnn_core::LayerWeights;

use crate::error::{Result, WeightsError};
use crate::file::TensorFile;
use crate::naming::{Plan, Source, Transform};

/// How one tensor of the file became part of the canonical weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMapping {
    /// The name in the file.
    pub source: String,
    /// The canonical (PyTorch) name.
    pub target: String,
    /// What was done to it.
    pub transform: Transform,
}

/// The canonical weights of a plan (layers × directions) and how each tensor was mapped.
pub(crate) struct Loaded {
    pub weights: Vec<Vec<LayerWeights>>,
    pub mapping: Vec<TensorMapping>,
}

/// Loads the tensors a plan names, transforms them to the canonical layout, and checks each
/// cell's shapes against its `W_ih` (hidden size).
pub(crate) fn load_plan(file: &TensorFile, plan: &Plan, dtype: DType) -> Result<Loaded> {
    let mut mapping = Vec::new();
    let mut weights = Vec::new();
    for (k, layer) in plan.layers.iter().enumerate() {
        if layer.is_empty() {
            return Err(WeightsError::Unrecognised {
                path: file.path().to_owned(),
                what: format!(
                    "{} weights: layer {k} has no tensors, but a later layer does",
                    plan.naming.as_str()
                ),
                found: file.names(),
            });
        }
        let mut dirs = Vec::new();
        let suffixes = ["", "_reverse"];
        for (d, cell) in layer.iter().enumerate() {
            let target = |kind: &str| format!("{kind}_l{k}{}", suffixes[d.min(1)]);
            let mut load = |source: &Source, kind: &str| -> Result<Tensor> {
                let t = load_source(file, source, dtype)?;
                mapping.push(TensorMapping {
                    source: source.name.clone(),
                    target: target(kind),
                    transform: source.transform,
                });
                Ok(t)
            };
            let w_ih = load(&cell.w_ih, "weight_ih")?;
            let &[hidden, _] = w_ih.dims() else {
                return Err(shape_error(file, &cell.w_ih, "[hidden, input]".into()));
            };
            let w_hh = load(&cell.w_hh, "weight_hh")?;
            if w_hh.dims() != [hidden, hidden] {
                let mut expected =
                    format!("[{hidden}, {hidden}] (hidden size from {})", cell.w_ih.name);
                // A GRU's or LSTM's weights stack 3 or 4 gates' rows: [3·H, H] or [4·H, H].
                if let &[rows, units] = w_hh.dims() {
                    let gates = (rows == hidden && units > 0 && rows % units == 0)
                        .then(|| rows / units)
                        .filter(|g| matches!(g, 3 | 4));
                    if let Some(gates) = gates {
                        let cell_kind = if gates == 3 { "a GRU" } else { "an LSTM" };
                        expected.push_str(&format!(
                            "; {gates} gates' rows of {units} units each, as {cell_kind} \
                             stacks them, which rnn does not run (it runs Elman RNNs: \
                             torch.nn.RNN, Keras SimpleRNN, TF1 BasicRNNCell)"
                        ));
                    }
                }
                return Err(shape_error(file, &cell.w_hh, expected));
            }
            let mut bias = |source: &Option<Source>, kind: &str| -> Result<Option<Tensor>> {
                let Some(source) = source else {
                    return Ok(None);
                };
                let b = load(source, kind)?;
                if b.dims() != [hidden] {
                    return Err(shape_error(file, source, format!("[{hidden}]")));
                }
                Ok(Some(b))
            };
            let b_ih = bias(&cell.b_ih, "bias_ih")?;
            let b_hh = bias(&cell.b_hh, "bias_hh")?;
            dirs.push(LayerWeights {
                w_ih,
                w_hh,
                b_ih,
                b_hh,
            });
        }
        weights.push(dirs);
    }
    Ok(Loaded { weights, mapping })
}

/// `W_ih` of `hidden` rows and `inputs` columns as the file stores it (transposed where the
/// format transposes; below the recurrent rows where it concatenates the two), with the reason:
/// `[5, 2] (2 input features, the output of layer 0)`.
pub(crate) fn in_file_layout(
    hidden: usize,
    inputs: usize,
    transform: Transform,
    why: &str,
) -> String {
    let dims = match transform {
        Transform::Transposed => [inputs, hidden],
        Transform::InputRows => [inputs + hidden, hidden],
        _ => [hidden, inputs],
    };
    format!("{dims:?} ({why})")
}

/// A shape error about `source`, giving the shape as stored in the file. `expected` is in the
/// file's layout too.
fn shape_error(file: &TensorFile, source: &Source, expected: String) -> WeightsError {
    let found = file
        .raw(&source.name)
        .map(|t| t.dims().to_vec())
        .unwrap_or_default();
    file.shape_error(&source.name, expected, &found)
}

/// One canonical tensor from the file: loaded, converted to `dtype`, transformed.
fn load_source(file: &TensorFile, source: &Source, dtype: DType) -> Result<Tensor> {
    let t = file.float(&source.name, dtype)?;
    let err = |expected: &str| file.shape_error(&source.name, expected.into(), t.dims());
    // A view, not a copy: the layer's prepared weights are the transpose again (Keras's and
    // TF1's kernels are already `W_ihᵀ`), which is then this tensor's own layout and needs no
    // copy either (`RnnLayer`'s `Prepared`).
    let transposed = |t: Tensor| t.t();
    let result = match source.transform {
        Transform::AsIs => Ok(t.clone()),
        Transform::Transposed => {
            if t.rank() != 2 {
                return Err(err("rank 2"));
            }
            transposed(t.clone())
        }
        Transform::Flattened => match t.dims() {
            &[1, h] | &[h] => t.reshape(h),
            _ => return Err(err("[1, hidden] or [hidden]")),
        },
        Transform::InputRows | Transform::RecurrentRows => {
            let &[rows, hidden] = t.dims() else {
                return Err(err("[input + hidden, hidden]"));
            };
            if rows <= hidden {
                let expected = format!("[input + {hidden}, {hidden}] with at least one input row");
                return Err(file.shape_error(&source.name, expected, t.dims()));
            }
            let inputs = rows - hidden;
            let part = if source.transform == Transform::InputRows {
                t.narrow(0, 0, inputs)
            } else {
                t.narrow(0, inputs, hidden)
            };
            part.and_then(transposed)
        }
    };
    result.map_err(|e| file.tensor_error(e))
}
