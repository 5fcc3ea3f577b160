//! `rnn init`: seeded PyTorch-style random weights, written in the canonical layout.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use rnn_core::InitConfig;
use rnn_weights::StackConfig;

use crate::cli::InitArgs;
use crate::Outcome;

pub fn init(args: &InitArgs) -> Result<Outcome> {
    if args.layers == 0 || args.hidden_size == 0 || args.input_size == 0 {
        bail!("--input-size, --hidden-size and --layers must be at least 1");
    }
    let config = InitConfig {
        input_size: args.input_size,
        hidden_sizes: vec![args.hidden_size; args.layers],
        bidirectional: args.bidirectional,
        bias: !args.no_bias,
    };
    // Drawing holds each tensor in f64 beside its f32 copy: 12 bytes per parameter at most.
    let bytes = parameter_count(&config).and_then(|n| n.checked_mul(12));
    crate::memory::ensure_fits("these weights", bytes)?;
    let weights =
        rnn_core::uniform_weights(&config, args.seed, DType::F32, &candle_core::Device::Cpu)?;
    let config = StackConfig::uniform(args.nonlinearity.into(), None);
    rnn_weights::save_canonical(&args.output, &weights, &config, &[])
        .context("cannot write the weights")?;
    eprintln!("wrote {}", args.output.display());
    Ok(Outcome::Success)
}

/// Parameters of a stack: per layer and direction `H·I + H·H (+ 2H)`; `None` on overflow.
fn parameter_count(config: &InitConfig) -> Option<u128> {
    let directions: u128 = if config.bidirectional { 2 } else { 1 };
    let mut input = config.input_size as u128;
    let mut total: u128 = 0;
    for &h in &config.hidden_sizes {
        let h = h as u128;
        let bias = if config.bias { 2 * h } else { 0 };
        let cell = h
            .checked_mul(input)?
            .checked_add(h.checked_mul(h)?)?
            .checked_add(bias)?;
        total = total.checked_add(cell.checked_mul(directions)?)?;
        input = directions * h;
    }
    Some(total)
}
