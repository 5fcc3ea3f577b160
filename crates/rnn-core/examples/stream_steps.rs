//! Streams a sequence through a layer one time step at a time, keeping the hidden state
//! between steps: what a model does when the input arrives as it happens (audio frames,
//! sensor readings, tokens) instead of as a whole sequence.
//!
//! `RnnLayer::step` takes `x_t` `[batch, input_size]` and `h_{t-1}` `[batch, hidden_size]`
//! and returns `h_t`; feeding `h_t` back gives the same states as `RnnLayer::forward` over
//! the whole sequence, which the test checks, along with the formula itself for the first two
//! steps.
//!
//! `cargo run -p rnn-core --example stream_steps`

use candle_core::{DType, Device, Result, Tensor};
use rnn_core::{uniform_weights, InitConfig, LayerWeights, Nonlinearity, RnnLayer};

const INPUT_SIZE: usize = 3;
const HIDDEN_SIZE: usize = 5;
const BATCH: usize = 2;
const SEQ_LEN: usize = 8;

/// What the example computed.
struct Streamed {
    /// The weights the layer was built from, PyTorch's layout.
    weights: LayerWeights,
    /// The layer.
    layer: RnnLayer,
    /// The whole input, `[seq_len, batch, input_size]`; the stream reads it step by step.
    input: Tensor,
    /// `h_t` after each step, `[batch, hidden_size]` each.
    states: Vec<Tensor>,
}

/// A layer with seeded PyTorch-style weights, and a smooth, deterministic input.
fn layer_and_input(dev: &Device) -> Result<(LayerWeights, RnnLayer, Tensor)> {
    let config = InitConfig {
        input_size: INPUT_SIZE,
        hidden_sizes: vec![HIDDEN_SIZE],
        bidirectional: false,
        bias: true,
    };
    let mut weights = uniform_weights(&config, 42, DType::F32, dev)?;
    let weights = weights.remove(0).remove(0);
    let layer = RnnLayer::new(&weights, Nonlinearity::Tanh)?;
    let n = SEQ_LEN * BATCH * INPUT_SIZE;
    let input = (Tensor::arange(0u32, n as u32, dev)?.to_dtype(DType::F32)? * 0.37)?
        .sin()?
        .reshape((SEQ_LEN, BATCH, INPUT_SIZE))?;
    Ok((weights, layer, input))
}

/// Feeds the input to the layer one step at a time, from a zero state.
fn run() -> Result<Streamed> {
    let dev = Device::Cpu;
    let (weights, layer, input) = layer_and_input(&dev)?;
    let mut h = Tensor::zeros((BATCH, HIDDEN_SIZE), DType::F32, &dev)?;
    let mut states = Vec::with_capacity(SEQ_LEN);
    for t in 0..SEQ_LEN {
        // In a real stream, x_t arrives here; only h is carried from one step to the next.
        let x_t = input.get(t)?;
        h = layer.step(&x_t, &h)?;
        states.push(h.clone());
    }
    Ok(Streamed {
        weights,
        layer,
        input,
        states,
    })
}

fn main() -> Result<()> {
    let streamed = run()?;
    println!(
        "layer: input {} -> hidden {} ({}, W_ih {:?}); input {:?} [seq, batch, input]",
        streamed.layer.input_size(),
        streamed.layer.hidden_size(),
        streamed.layer.nonlinearity(),
        streamed.weights.w_ih.dims(),
        streamed.input.dims()
    );
    for (t, h) in streamed.states.iter().enumerate() {
        println!("h_{} (after step {t}) {:?}:\n{h}", t + 1, h.dims());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tanh(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)` in plain candle ops, from the PyTorch-layout
    /// weights: the definition, independent of how `RnnLayer` stores or fuses them.
    fn cell(w: &LayerWeights, x: &Tensor, h: &Tensor) -> Result<Tensor> {
        let bias = |b: &Option<Tensor>| {
            b.clone()
                .ok_or_else(|| candle_core::Error::Msg("the example's layer has biases".into()))
        };
        let input_part = x.matmul(&w.w_ih.t()?)?.broadcast_add(&bias(&w.b_ih)?)?;
        let hidden_part = h.matmul(&w.w_hh.t()?)?.broadcast_add(&bias(&w.b_hh)?)?;
        (input_part + hidden_part)?.tanh()
    }

    /// Whether |a − b| ≤ 1e-6 everywhere (f32).
    fn close(a: &Tensor, b: &Tensor) -> Result<bool> {
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? <= 1e-6)
    }

    #[test]
    fn steps_equal_the_whole_sequence() -> Result<()> {
        let s = run()?;
        let (output, h_n) = s.layer.forward(&s.input, None)?;
        assert_eq!(s.states.len(), SEQ_LEN);
        for (t, h) in s.states.iter().enumerate() {
            assert!(close(h, &output.get(t)?)?, "step {t}: differs");
        }
        assert!(close(&s.states[SEQ_LEN - 1], &h_n)?, "h_n: differs");
        Ok(())
    }

    #[test]
    fn first_two_steps_follow_the_formula() -> Result<()> {
        let s = run()?;
        let h0 = Tensor::zeros((BATCH, HIDDEN_SIZE), DType::F32, &Device::Cpu)?;
        let h1 = cell(&s.weights, &s.input.get(0)?, &h0)?;
        let h2 = cell(&s.weights, &s.input.get(1)?, &h1)?;
        for (t, want) in [h1, h2].iter().enumerate() {
            assert!(close(&s.states[t], want)?, "step {t}: differs");
        }
        // The state moves: step 2 depends on step 1, not only on its input.
        let without_memory = cell(&s.weights, &s.input.get(1)?, &h0)?;
        assert!(!close(&s.states[1], &without_memory)?);
        Ok(())
    }
}
