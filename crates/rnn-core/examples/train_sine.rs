//! Trains an RNN in candle: a one-layer tanh RNN with a linear head learns to predict the next
//! value of a sine wave from the values so far, and the loss falls.
//!
//! The RNN's weights and the head's are [`candle_core::Var`]s drawn from a fixed seed
//! ([`rnn_core::uniform_weights`], PyTorch's uniform(−1/√H, 1/√H)), so every run trains the
//! same way; candle-nn's AdamW updates them in place and the layer, which reads the variables
//! themselves, runs with the new values on the next step.
//!
//! `cargo run --release -p rnn-core --example train_sine`

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use candle_nn::Linear;
use rnn_core::{uniform_weights, InitConfig, LayerWeights, Nonlinearity, Rnn};

const HIDDEN_SIZE: usize = 16;
const SEQ_LEN: usize = 24;
const BATCH: usize = 16;
/// Radians between two samples of the wave.
const STEP: f64 = 0.3;
const SEED: u64 = 42;
const TRAINING_STEPS: usize = 150;
const LEARNING_RATE: f64 = 0.02;

/// The RNN and its head, and the variables an optimiser updates.
struct Model {
    rnn: Rnn,
    head: Linear,
    vars: Vec<Var>,
}

impl Model {
    /// Seeded weights, each a variable that the RNN and the head read directly.
    fn new(dev: &Device) -> Result<Self> {
        let mut vars = Vec::new();
        let mut var = |t: &Tensor| -> Result<Tensor> {
            let v = Var::from_tensor(t)?;
            let tensor = v.as_tensor().clone();
            vars.push(v);
            Ok(tensor)
        };
        let rnn_config = InitConfig {
            input_size: 1,
            hidden_sizes: vec![HIDDEN_SIZE],
            bidirectional: false,
            bias: true,
        };
        let drawn = uniform_weights(&rnn_config, SEED, DType::F32, dev)?;
        let w = &drawn[0][0];
        let layer = LayerWeights {
            w_ih: var(&w.w_ih)?,
            w_hh: var(&w.w_hh)?,
            b_ih: w.b_ih.as_ref().map(&mut var).transpose()?,
            b_hh: w.b_hh.as_ref().map(&mut var).transpose()?,
        };
        // The head, [1, H] and [1], drawn the same way: the first layer of a one-neuron RNN
        // reading H features.
        let head_config = InitConfig {
            input_size: HIDDEN_SIZE,
            hidden_sizes: vec![1],
            bidirectional: false,
            bias: true,
        };
        let head = &uniform_weights(&head_config, SEED + 1, DType::F32, dev)?[0][0];
        let head_w = var(&head.w_ih)?;
        let head_b = head.b_ih.as_ref().map(&mut var).transpose()?;
        let rnn = Rnn::from_weights(&[vec![layer]], Nonlinearity::Tanh)?;
        Ok(Self {
            rnn,
            head: Linear::new(head_w, head_b),
            vars,
        })
    }

    /// The prediction of the next value after each step: `[seq_len, batch, 1]` from an input
    /// `[seq_len, batch, 1]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (output, _) = self.rnn.forward(xs, None)?;
        self.head.forward(&output)
    }
}

/// `BATCH` waves with different phases, `SEQ_LEN + 1` samples each: the input is samples
/// `0..SEQ_LEN`, the target `1..=SEQ_LEN`, both `[seq_len, batch, 1]`.
fn sine_batch(dev: &Device) -> Result<(Tensor, Tensor)> {
    let wave: Vec<f32> = (0..=SEQ_LEN)
        .flat_map(|t| (0..BATCH).map(move |b| (b as f64 * 0.4 + t as f64 * STEP).sin() as f32))
        .collect();
    let wave = Tensor::from_vec(wave, (SEQ_LEN + 1, BATCH, 1), dev)?;
    Ok((wave.narrow(0, 0, SEQ_LEN)?, wave.narrow(0, 1, SEQ_LEN)?))
}

/// Trains for `steps` steps; returns the mean squared error before each step and after the
/// last.
fn train(model: &Model, steps: usize) -> Result<Vec<f32>> {
    let dev = Device::Cpu;
    let (xs, target) = sine_batch(&dev)?;
    let params = ParamsAdamW {
        lr: LEARNING_RATE,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut optimiser = AdamW::new(model.vars.clone(), params)?;
    let mut losses = Vec::with_capacity(steps + 1);
    for _ in 0..steps {
        let loss = candle_nn::loss::mse(&model.forward(&xs)?, &target)?;
        losses.push(loss.to_scalar::<f32>()?);
        optimiser.backward_step(&loss)?;
    }
    let loss = candle_nn::loss::mse(&model.forward(&xs)?, &target)?;
    losses.push(loss.to_scalar::<f32>()?);
    Ok(losses)
}

fn main() -> Result<()> {
    let model = Model::new(&Device::Cpu)?;
    let losses = train(&model, TRAINING_STEPS)?;
    // Every 25th step, the last one included (losses has TRAINING_STEPS + 1 entries).
    for (step, loss) in losses.iter().enumerate().step_by(25) {
        println!("step {step:>4}: mean squared error {loss:.6}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_falls() -> Result<()> {
        let model = Model::new(&Device::Cpu)?;
        let losses = train(&model, TRAINING_STEPS)?;
        let (first, last) = (losses[0], losses[TRAINING_STEPS]);
        // A sine wave's variance is 0.5: guessing 0 scores about that; the trained model
        // predicts the next sample to within a few hundredths.
        assert!(first > 0.05, "the untrained model already fits: {first}");
        assert!(last < first / 10.0, "loss {first} → {last}");
        assert!(last < 0.01, "loss after training: {last}");
        Ok(())
    }

    #[test]
    fn every_variable_gets_a_gradient_and_moves() -> Result<()> {
        let model = Model::new(&Device::Cpu)?;
        let before: Vec<Vec<f32>> = model
            .vars
            .iter()
            .map(|v| v.as_tensor().flatten_all()?.to_vec1())
            .collect::<Result<_>>()?;
        let (xs, target) = sine_batch(&Device::Cpu)?;
        let first = model.forward(&xs)?;
        let loss = candle_nn::loss::mse(&first, &target)?;
        let grads = loss.backward()?;
        for (k, v) in model.vars.iter().enumerate() {
            assert!(
                grads.get(v.as_tensor()).is_some(),
                "variable {k}: no gradient"
            );
        }
        train(&model, 1)?;
        for (k, (v, old)) in model.vars.iter().zip(&before).enumerate() {
            let new: Vec<f32> = v.as_tensor().flatten_all()?.to_vec1()?;
            assert_ne!(&new, old, "variable {k} did not move");
        }
        // The network reads the updated variables: the same input, another output.
        let second = model.forward(&xs)?;
        let moved = (first - second)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(
            moved > 1e-4,
            "the output did not change after a step: {moved}"
        );
        Ok(())
    }
}
