//! Loads a PyTorch `nn.RNN` state_dict saved as safetensors and runs a batch through it.
//!
//! The fixture was written by torch itself (`xtask/fixtures/torch_rnn.py`): the
//! `state_dict()` of `nn.RNN(input_size=5, hidden_size=4, num_layers=2, bias=False)` under
//! PyTorch's names (`weight_ih_l0`, `weight_hh_l0`, `weight_ih_l1`, `weight_hh_l1`), the
//! `input` it was given (time-major `[seq 6, batch 2, input 5]`), and the `output` and `h_n`
//! torch computed from it. The test holds our output against torch's.
//!
//! `cargo run -p rnn-core --example torch_state_dict`

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use rnn_core::{rnn, RnnConfig};

/// Written by torch; committed with the project.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/torch_l2_no_bias.safetensors"
);

/// The configuration of the `nn.RNN` that saved the state_dict. A state_dict records only
/// tensors: the sizes are in their shapes, but the nonlinearity and `batch_first` are not, so
/// they are the caller's to know (the fixture's `check_args` metadata is empty: tanh,
/// time-major).
const INPUT_SIZE: usize = 5;
const HIDDEN_SIZE: usize = 4;
const NUM_LAYERS: usize = 2;
const BIAS: bool = false;

/// What the example computed.
struct Outcome {
    /// The fixture's input, `[seq_len, batch, input_size]`.
    input: Tensor,
    /// The last layer's state at every step, `[seq_len, batch, hidden_size]`.
    output: Tensor,
    /// Every layer's final state, `[num_layers, batch, hidden_size]`.
    h_n: Tensor,
}

/// Builds the network from the state_dict in `path` and runs the `input` stored beside it.
fn run(path: &str) -> Result<Outcome> {
    let bytes = std::fs::read(path)?;
    // `VarBuilder::from_mmaped_safetensors(&[path], ..)` works the same way without reading the
    // file into memory, but it is `unsafe` (the file must not change while mapped), and this
    // workspace denies unsafe code.
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
    // A state_dict saved from a module holding the RNN as `self.rnn` has `rnn.` before each
    // name: build from `vb.pp("rnn")` then.
    let config = RnnConfig {
        num_layers: NUM_LAYERS,
        bias: BIAS,
        ..Default::default()
    };
    let rnn = rnn(INPUT_SIZE, HIDDEN_SIZE, config, vb.clone())?;

    let input = vb.get_unchecked("input")?;
    let (output, h_n) = rnn.forward(&input, None)?;
    Ok(Outcome { input, output, h_n })
}

fn main() -> Result<()> {
    let Outcome { input, output, h_n } = run(FIXTURE)?;
    println!("input {:?}:\n{input}", input.dims());
    println!("output {:?}:\n{output}", output.dims());
    println!("h_n {:?}:\n{h_n}", h_n.dims());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: what torch computed, read from the file without going through the
    /// `VarBuilder` the network was built from.
    fn torch(name: &str) -> Result<Tensor> {
        let tensors = candle_core::safetensors::load(FIXTURE, &Device::Cpu)?;
        tensors
            .get(name)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("{FIXTURE}: no tensor {name}")))
    }

    fn max_abs_difference(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    #[test]
    fn matches_what_torch_computed() -> Result<()> {
        let ours = run(FIXTURE)?;
        assert_eq!(ours.output.dims(), &[6, 2, HIDDEN_SIZE]);
        assert_eq!(ours.h_n.dims(), &[NUM_LAYERS, 2, HIDDEN_SIZE]);
        for (name, got) in [("output", &ours.output), ("h_n", &ours.h_n)] {
            let diff = max_abs_difference(got, &torch(name)?)?;
            assert!(diff <= 1e-5, "{name} differs from torch's by {diff:e}");
        }
        // The input torch was given, unchanged, and an output that is not vacuously close.
        assert_eq!(max_abs_difference(&ours.input, &torch("input")?)?, 0.0);
        assert!(ours.output.abs()?.max_all()?.to_scalar::<f32>()? > 0.1);
        Ok(())
    }
}
