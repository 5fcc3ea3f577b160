//! Uses the Elman layer inside a larger candle model: a sequence classifier that runs the RNN
//! over a batch-first sequence through candle-nn's `rnn::RNN` trait (as it would candle-nn's
//! LSTM or GRU) and applies a linear head to the last hidden state.
//!
//! The weights live in a `VarMap`, created with PyTorch's initialisation for the RNN and
//! candle-nn's for the head, and are trainable like any other candle variables; a
//! `VarBuilder` over a safetensors file would load trained ones under the same names
//! (`rnn.weight_ih_l0`, …, `head.weight`, `head.bias`).
//!
//! `cargo run -p rnn-core --example in_candle_model`

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::rnn::RNN;
use candle_nn::{Linear, VarBuilder, VarMap};
use rnn_core::{rnn_layer, RnnLayer, RnnLayerConfig};

const INPUT_SIZE: usize = 4;
const HIDDEN_SIZE: usize = 8;
const CLASSES: usize = 3;
const BATCH: usize = 2;
const SEQ_LEN: usize = 5;

/// A sequence classifier: the RNN reads the sequence, a linear layer maps its last state to
/// one score per class.
struct Classifier {
    rnn: RnnLayer,
    head: Linear,
}

impl Classifier {
    fn new(vb: &VarBuilder) -> Result<Self> {
        let rnn = rnn_layer(
            INPUT_SIZE,
            HIDDEN_SIZE,
            RnnLayerConfig::default(),
            vb.pp("rnn"),
        )?;
        let head = candle_nn::linear(HIDDEN_SIZE, CLASSES, vb.pp("head"))?;
        Ok(Self { rnn, head })
    }

    /// The RNN's state after the last step, `[batch, hidden_size]`, for a batch-first input
    /// `[batch, seq_len, input_size]`.
    fn last_state(&self, xs: &Tensor) -> Result<Tensor> {
        let states = self.rnn.seq(xs)?; // one [batch, hidden_size] per step
        states
            .last()
            .map(|s| s.h.clone())
            .ok_or_else(|| candle_core::Error::Msg("the sequence is empty".into()))
    }
}

impl Module for Classifier {
    /// `[batch, seq_len, input_size]` to scores `[batch, classes]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.head.forward(&self.last_state(xs)?)
    }
}

/// What the example computed.
struct Classified {
    model: Classifier,
    /// The batch-first input, `[batch, seq_len, input_size]`.
    input: Tensor,
    /// The model's scores, `[batch, classes]`.
    scores: Tensor,
    /// How many trainable tensors the model has.
    variables: usize,
}

/// Builds the model with fresh (random) weights and classifies a batch of sequences.
fn run() -> Result<Classified> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let model = Classifier::new(&vb)?;
    let n = BATCH * SEQ_LEN * INPUT_SIZE;
    let input = (Tensor::arange(0u32, n as u32, &dev)?.to_dtype(DType::F32)? * 0.5)?
        .cos()?
        .reshape((BATCH, SEQ_LEN, INPUT_SIZE))?;
    let scores = model.forward(&input)?;
    Ok(Classified {
        model,
        input,
        scores,
        variables: varmap.all_vars().len(),
    })
}

fn main() -> Result<()> {
    let c = run()?;
    println!(
        "Classifier: rnn {} -> {} ({}), head {:?}; {} trainable tensors",
        c.model.rnn.input_size(),
        c.model.rnn.hidden_size(),
        c.model.rnn.nonlinearity(),
        c.model.head.weight().dims(),
        c.variables
    );
    println!("input (batch-first) {:?}", c.input.dims());
    println!("scores {:?}:\n{}", c.scores.dims(), c.scores);
    let probabilities = candle_nn::ops::softmax(&c.scores, 1)?;
    println!("probabilities:\n{probabilities}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether |a − b| ≤ 1e-6 everywhere (f32).
    fn close(a: &Tensor, b: &Tensor) -> Result<bool> {
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? <= 1e-6)
    }

    #[test]
    fn scores_are_the_head_applied_to_the_last_state() -> Result<()> {
        let c = run()?;
        assert_eq!(c.scores.dims(), &[BATCH, CLASSES]);
        // Four RNN tensors (weight_ih, weight_hh, bias_ih, bias_hh) and the head's two.
        assert_eq!(c.variables, 6);

        // The last state through the trait equals the layer's own h_n, time-major.
        let last = c.model.last_state(&c.input)?;
        let time_major = c.input.transpose(0, 1)?.contiguous()?;
        let (_, h_n) = c.model.rnn.forward(&time_major, None)?;
        assert!(close(&last, &h_n)?);

        // The scores are h_n·Wᵀ + b, written out with plain candle ops.
        let w = c.model.head.weight();
        let b = c
            .model
            .head
            .bias()
            .ok_or_else(|| candle_core::Error::Msg("the head has a bias".into()))?;
        let want = h_n.matmul(&w.t()?)?.broadcast_add(b)?;
        assert!(close(&c.scores, &want)?, "differs");
        Ok(())
    }

    #[test]
    fn states_stack_batch_first() -> Result<()> {
        let c = run()?;
        let states = c.model.rnn.seq(&c.input)?;
        assert_eq!(states.len(), SEQ_LEN);
        let all = c.model.rnn.states_to_tensor(&states)?;
        assert_eq!(all.dims(), &[BATCH, SEQ_LEN, HIDDEN_SIZE]);
        // Batch-first: the time-major output of `forward` with its first two axes swapped.
        let time_major = c.input.transpose(0, 1)?.contiguous()?;
        let (output, _) = c.model.rnn.forward(&time_major, None)?;
        let want = output.transpose(0, 1)?.contiguous()?;
        assert!(close(&all, &want)?);
        Ok(())
    }
}
