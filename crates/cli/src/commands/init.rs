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
    let bytes = config.parameter_count().and_then(|n| n.checked_mul(12));
    crate::memory::ensure_fits("these weights", bytes)?;
    let weights =
        rnn_core::uniform_weights(&config, args.seed, DType::F32, &candle_core::Device::Cpu)?;
    let config = StackConfig::uniform(args.nonlinearity, None);
    rnn_weights::save_canonical(&args.output, &weights, &config, &[])
        .context("cannot write the weights")?;
    eprintln!("wrote {}", args.output.display());
    Ok(Outcome::Success)
}
