//! Backpropagation through an RNN: the gradients of a loss with respect to every weight, the
//! input and `h0`, computed by candle's autograd through [`rnn_core::Rnn`].
//!
//! `cargo run --release -p rnn-core --example gradients -- IN OUT`
//!
//! IN is a safetensors file holding:
//! - the weights of a `torch.nn.RNN` under its state_dict's names (`weight_ih_l0`,
//!   `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, `…_reverse`, `…_l1`, …), which settle the
//!   number of layers, the directions and the bias;
//! - `input` `[seq, batch, input]` (`[batch, seq, input]` when batch-first), `h0`
//!   `[layers · directions, batch, hidden]`, optionally `lengths` `[batch]` (integers);
//! - `grad_output`, shaped as the output, and `grad_h_n`, shaped as `h_n`: the gradient of
//!   the loss with respect to each, so the loss is
//!   `sum(output · grad_output) + sum(h_n · grad_h_n)`;
//! - metadata `nonlinearity` (`tanh` or `relu`; tanh when absent) and `batch_first`
//!   (`true`/`false`), the keys `rnn run` reads; any other option in the metadata is refused.
//!
//! OUT gets `grad_<weight name>` for every weight, `grad_input` and `grad_h0`, in IN's dtype.
//!
//! The tests hold the result against torch's autograd on the fixtures
//! `xtask/fixtures/torch_gradients.py` wrote (two bidirectional tanh layers; relu without
//! bias, batch-first; variable lengths), each in f32 and f64.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Error, Result, Tensor, Var};
use candle_nn::VarBuilder;
use rnn_core::{rnn, Nonlinearity, RnnConfig};

/// Metadata keys that only say where a file came from.
const PROVENANCE: [&str; 3] = ["generator", "framework", "note"];

/// The gradients of IN's loss: `tensors` and `metadata` as read from IN; returns OUT's
/// tensors.
///
/// # Errors
/// When a tensor is missing or misshapen, or the metadata asks for an option this example
/// does not run.
fn gradients(
    tensors: &HashMap<String, Tensor>,
    metadata: &HashMap<String, String>,
) -> Result<HashMap<String, Tensor>> {
    let config = config(tensors, metadata)?;
    let get = |name: &str| {
        tensors
            .get(name)
            .ok_or_else(|| Error::Msg(format!("IN: no tensor {name}")))
    };
    let w_ih_l0 = get("weight_ih_l0")?;
    let (hidden_size, input_size) = w_ih_l0.dims2()?;
    let dtype = w_ih_l0.dtype();

    // Every weight becomes a variable; the network is built over the variables themselves.
    let weights: Vec<(String, Var)> = tensors
        .iter()
        .filter(|(name, _)| name.starts_with("weight_") || name.starts_with("bias_"))
        .map(|(name, t)| Ok((name.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let by_name = weights
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    let vb = VarBuilder::from_tensors(by_name, dtype, &Device::Cpu);
    let net = rnn(input_size, hidden_size, config, vb)?;

    let input = Var::from_tensor(get("input")?)?;
    let h0 = Var::from_tensor(get("h0")?)?;
    let lengths = match tensors.get("lengths") {
        Some(l) => Some(lengths(l)?),
        None => None,
    };
    let (output, states) = net.forward_states(&input, Some(&h0), lengths.as_deref())?;
    let h_n = net
        .stack_states(&states)?
        .ok_or_else(|| Error::Msg("h_n: the layers' hidden sizes differ".into()))?;

    let loss =
        ((&output * get("grad_output")?)?.sum_all()? + (&h_n * get("grad_h_n")?)?.sum_all()?)?;
    let grads = loss.backward()?;
    // A tensor the loss does not depend on has no gradient in the store: zero, as in torch.
    let grad = |t: &Tensor| match grads.get(t) {
        Some(g) => Ok(g.clone()),
        None => t.zeros_like(),
    };
    let mut out = HashMap::new();
    for (name, var) in &weights {
        out.insert(format!("grad_{name}"), grad(var.as_tensor())?);
    }
    out.insert("grad_input".into(), grad(input.as_tensor())?);
    out.insert("grad_h0".into(), grad(h0.as_tensor())?);
    Ok(out)
}

/// The stack's options: the structure from the weights' names, the rest from the metadata.
fn config(
    tensors: &HashMap<String, Tensor>,
    metadata: &HashMap<String, String>,
) -> Result<RnnConfig> {
    let num_layers = (0..)
        .take_while(|k| tensors.contains_key(&format!("weight_ih_l{k}")))
        .count();
    let mut config = RnnConfig {
        num_layers,
        bidirectional: tensors.contains_key("weight_ih_l0_reverse"),
        bias: tensors.contains_key("bias_ih_l0"),
        ..Default::default()
    };
    for (key, value) in metadata {
        match key.as_str() {
            "nonlinearity" => {
                config.nonlinearity = Nonlinearity::from_name(value)
                    .filter(|n| matches!(n, Nonlinearity::Tanh | Nonlinearity::Relu))
                    .ok_or_else(|| {
                        Error::Msg(format!(
                            "IN: metadata nonlinearity: expected tanh or relu, found {value:?}"
                        ))
                    })?;
            }
            "batch_first" => {
                config.batch_first = value.parse().map_err(|_| {
                    Error::Msg(format!(
                        "IN: metadata batch_first: expected true or false, found {value:?}"
                    ))
                })?;
            }
            key if PROVENANCE.contains(&key) => {}
            key => {
                return Err(Error::Msg(format!(
                    "IN: metadata {key}={value:?}: this example runs torch.nn.RNN's options \
                     only (nonlinearity, batch_first); remove it or use `rnn run`"
                )))
            }
        }
    }
    Ok(config)
}

/// `lengths` as integers, each checked to be non-negative.
fn lengths(t: &Tensor) -> Result<Vec<usize>> {
    t.to_dtype(DType::I64)?
        .to_vec1::<i64>()?
        .into_iter()
        .map(|l| {
            usize::try_from(l)
                .map_err(|_| Error::Msg(format!("lengths: expected values ≥ 0, found {l}")))
        })
        .collect()
}

fn read(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
    Ok((tensors, metadata))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        return Err(Error::Msg("usage: gradients IN OUT".into()));
    };
    let (tensors, metadata) = read(Path::new(input))?;
    let grads = gradients(&tensors, &metadata)?;
    candle_core::safetensors::save(&grads, output)?;
    let mut names: Vec<&String> = grads.keys().collect();
    names.sort();
    for name in names {
        println!("{name} {:?}", grads[name].dims());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/gradients")
            .join(name)
    }

    /// Largest |ours − torch's| over every tensor torch wrote, after checking that both sides
    /// have the same names and shapes.
    fn worst_difference(case: &str) -> Result<f64> {
        let (tensors, metadata) = read(&fixture(&format!("{case}.in.safetensors")))?;
        let (torch, _) = read(&fixture(&format!("{case}.torch.safetensors")))?;
        let ours = gradients(&tensors, &metadata)?;
        let mut wanted: Vec<&String> = torch.keys().filter(|n| n.starts_with("grad_")).collect();
        let mut got: Vec<&String> = ours.keys().collect();
        wanted.sort();
        got.sort();
        assert_eq!(got, wanted, "{case}: the gradients named");
        let mut worst = 0f64;
        for name in wanted {
            let (a, b) = (&ours[name], &torch[name]);
            assert_eq!(a.dims(), b.dims(), "{case}: {name}");
            let diff = (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
                .abs()?
                .max_all()?
                .to_scalar::<f64>()?;
            // Not vacuous: torch's gradients are not all zero.
            let size = b
                .to_dtype(DType::F64)?
                .abs()?
                .max_all()?
                .to_scalar::<f64>()?;
            assert!(size > 1e-3, "{case}: {name} is all zeros in torch's file");
            worst = worst.max(diff);
        }
        Ok(worst)
    }

    #[test]
    fn f32_gradients_match_torch_within_1e_5() -> Result<()> {
        for case in ["l2_bidirectional_tanh", "relu_no_bias", "lengths"] {
            let worst = worst_difference(case)?;
            assert!(worst <= 1e-5, "{case}: worst |ours − torch| = {worst:e}");
        }
        Ok(())
    }

    #[test]
    fn f64_gradients_match_torch_within_1e_12() -> Result<()> {
        for case in ["l2_bidirectional_tanh", "relu_no_bias", "lengths"] {
            let case = format!("{case}_f64");
            let worst = worst_difference(&case)?;
            assert!(worst <= 1e-12, "{case}: worst |ours − torch| = {worst:e}");
        }
        Ok(())
    }

    #[test]
    fn an_option_it_does_not_run_is_refused() -> Result<()> {
        let (tensors, mut metadata) = read(&fixture("relu_no_bias.in.safetensors"))?;
        metadata.insert("go_backwards".into(), "true".into());
        let err = gradients(&tensors, &metadata).unwrap_err().to_string();
        assert!(err.contains("go_backwards"), "{err}");
        Ok(())
    }
}
