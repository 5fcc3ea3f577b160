//! Times a forward and backward pass through one tanh layer, the way a training step runs it:
//! the weights and the input are [`candle_core::Var`]s, the loss is
//! `sum(output · grad_output)`, and `loss.backward()` gives every gradient. `cargo xtask
//! bench-backward` runs it against torch's `nn.RNN` on the same case, in alternating rounds.
//!
//! `cargo run --release -p rnn-core --example bench_backward -- BATCH SEQ INPUT HIDDEN RUNS CASE`
//!
//! Prints one JSON line, `{"median_ms": …, "min_ms": …}` for RUNS timed passes (after two
//! untimed ones), and writes CASE (safetensors): the weights under `torch.nn.RNN`'s names, the
//! `input` `[seq, batch, input]`, `grad_output` `[seq, batch, hidden]`, and the gradients this
//! pass computed (`grad_weight_ih_l0`, …, `grad_input`), which the torch side checks. The
//! threads are candle's (`RAYON_NUM_THREADS`).

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Error, Result, Tensor, Var};
use rnn_core::cpu_kernel::{self, KernelLevel};
use rnn_core::{uniform_weights, InitConfig, LayerWeights, Nonlinearity, Rnn};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || Error::Msg("usage: bench_backward BATCH SEQ INPUT HIDDEN RUNS CASE".into());
    let [b, t, i, h, runs, case] = args.as_slice() else {
        return Err(usage());
    };
    let number = |s: &String| s.parse::<usize>().map_err(|_| usage());
    let (batch, seq, input, hidden, runs) = (
        number(b)?,
        number(t)?,
        number(i)?,
        number(h)?,
        number(runs)?,
    );
    if let Some(name) = std::env::var_os("RNN_CPU_KERNEL").filter(|v| !v.is_empty()) {
        let level = name
            .to_str()
            .and_then(KernelLevel::from_name)
            .ok_or_else(|| Error::Msg(format!("RNN_CPU_KERNEL={name:?}: not a level")))?;
        cpu_kernel::set(level)?;
    }
    let dev = Device::Cpu;
    let config = InitConfig {
        input_size: input,
        hidden_sizes: vec![hidden],
        bidirectional: false,
        bias: true,
    };
    let drawn = &uniform_weights(&config, 0, DType::F32, &dev)?[0][0];
    let named = [
        ("weight_ih_l0", drawn.w_ih.clone()),
        ("weight_hh_l0", drawn.w_hh.clone()),
        ("bias_ih_l0", drawn.b_ih.clone().ok_or_else(usage)?),
        ("bias_hh_l0", drawn.b_hh.clone().ok_or_else(usage)?),
        (
            "input",
            Tensor::randn(0f32, 1.0, (seq, batch, input), &dev)?,
        ),
    ];
    let vars: Vec<(&str, Var)> = named
        .iter()
        .map(|(name, t)| Ok((*name, Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let v = |k: usize| vars[k].1.as_tensor().clone();
    let weights = LayerWeights {
        w_ih: v(0),
        w_hh: v(1),
        b_ih: Some(v(2)),
        b_hh: Some(v(3)),
    };
    let rnn = Rnn::from_weights(&[vec![weights]], Nonlinearity::Tanh)?;
    let x = v(4);
    let grad_output = Tensor::randn(0f32, 1.0, (seq, batch, hidden), &dev)?;

    let pass = || {
        let (output, _) = rnn.forward(&x, None)?;
        (output * &grad_output)?.sum_all()?.backward()
    };
    let mut times = Vec::with_capacity(runs);
    let mut grads = None;
    for k in 0..runs + 2 {
        let start = Instant::now();
        let g = pass()?;
        if k >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        grads = Some(g);
    }
    let grads = grads.ok_or_else(usage)?;

    let mut file: HashMap<String, Tensor> = named
        .iter()
        .map(|(name, t)| (name.to_string(), t.clone()))
        .collect();
    file.insert("grad_output".into(), grad_output);
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .ok_or_else(|| Error::Msg(format!("no gradient for {name}")))?;
        file.insert(format!("grad_{name}"), g.clone());
    }
    candle_core::safetensors::save(&file, case)?;
    times.sort_by(f64::total_cmp);
    let median = match times.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => times[n / 2],
        n => (times[n / 2 - 1] + times[n / 2]) / 2.0,
    };
    println!(
        "{{\"median_ms\": {median}, \"min_ms\": {}}}",
        times.first().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
