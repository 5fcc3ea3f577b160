//! rnn-core on random configurations, held against a plain per-step implementation written
//! here with nested loops over `f64`s, and `lengths` held against running each sequence alone.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

use candle_core::{DType, Device, Tensor};
use rnn_core::{uniform_weights, InitConfig, LayerWeights, Nonlinearity, Rnn};

/// A small deterministic generator for the test's own choices (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn values(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.unit() * scale).collect()
    }
}

#[derive(Debug)]
struct Case {
    input_size: usize,
    hidden_sizes: Vec<usize>,
    bidirectional: bool,
    bias: bool,
    relu: bool,
    batch: usize,
    seq: usize,
    lengths: Option<Vec<usize>>,
    with_h0: bool,
}

fn random_case(rng: &mut Rng) -> Case {
    let layers = 1 + rng.below(3);
    let equal = rng.below(2) == 0;
    let first = 1 + rng.below(6);
    let hidden_sizes = (0..layers)
        .map(|_| if equal { first } else { 1 + rng.below(6) })
        .collect::<Vec<_>>();
    let batch = 1 + rng.below(4);
    let seq = rng.below(8);
    let lengths = (rng.below(2) == 0).then(|| (0..batch).map(|_| rng.below(seq + 1)).collect());
    let with_h0 = hidden_sizes.iter().all(|&h| h == first) && rng.below(2) == 0;
    Case {
        input_size: 1 + rng.below(5),
        hidden_sizes,
        bidirectional: rng.below(2) == 0,
        bias: rng.below(3) != 0,
        relu: rng.below(3) == 0,
        batch,
        seq,
        lengths,
        with_h0,
    }
}

fn matrix(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_vec2::<f64>().unwrap()
}

fn vector(t: &Option<Tensor>, n: usize) -> Vec<f64> {
    t.as_ref()
        .map(|t| t.to_vec1::<f64>().unwrap())
        .unwrap_or(vec![0.0; n])
}

/// The definition, one number at a time: for each layer, direction, sequence and valid step,
/// `h = act(W_ih·x + b_ih + W_hh·h + b_hh)`. Returns output `[seq][batch][D·H_last]` and the
/// final state of each layer and direction `[L·D][batch][H]`.
#[allow(clippy::type_complexity)]
fn reference(
    weights: &[Vec<LayerWeights>],
    relu: bool,
    input: &[Vec<Vec<f64>>],
    h0: Option<&[Vec<Vec<f64>>]>,
    lengths: &[usize],
) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<Vec<f64>>>) {
    let seq = input.len();
    let batch = lengths.len();
    let mut x: Vec<Vec<Vec<f64>>> = input.to_vec();
    let mut finals = Vec::new();
    for (k, layer) in weights.iter().enumerate() {
        let hidden = layer[0].w_hh.dims()[0];
        let mut out = vec![vec![vec![0.0; hidden * layer.len()]; batch]; seq];
        for (d, w) in layer.iter().enumerate() {
            let (w_ih, w_hh) = (matrix(&w.w_ih), matrix(&w.w_hh));
            let (b_ih, b_hh) = (vector(&w.b_ih, hidden), vector(&w.b_hh, hidden));
            let mut state = Vec::new();
            for b in 0..batch {
                let mut h = match h0 {
                    Some(h0) => h0[k * layer.len() + d][b].clone(),
                    None => vec![0.0; hidden],
                };
                let steps: Vec<usize> = if d == 0 {
                    (0..lengths[b]).collect()
                } else {
                    (0..lengths[b]).rev().collect()
                };
                for t in steps {
                    let mut next = vec![0.0; hidden];
                    for j in 0..hidden {
                        let mut z = b_ih[j] + b_hh[j];
                        for i in 0..x[t][b].len() {
                            z += w_ih[j][i] * x[t][b][i];
                        }
                        for i in 0..hidden {
                            z += w_hh[j][i] * h[i];
                        }
                        next[j] = if relu { z.max(0.0) } else { z.tanh() };
                    }
                    h = next;
                    out[t][b][d * hidden..(d + 1) * hidden].copy_from_slice(&h);
                }
                state.push(h);
            }
            finals.push(state);
        }
        x = out;
    }
    (x, finals)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn random_configurations_match_the_per_step_definition() {
    let dev = Device::Cpu;
    let mut rng = Rng(0x5EED);
    for case_index in 0..60 {
        let case = random_case(&mut rng);
        let config = InitConfig {
            input_size: case.input_size,
            hidden_sizes: case.hidden_sizes.clone(),
            bidirectional: case.bidirectional,
            bias: case.bias,
        };
        let weights = uniform_weights(&config, case_index, DType::F64, &dev).unwrap();
        let act = if case.relu {
            Nonlinearity::Relu
        } else {
            Nonlinearity::Tanh
        };
        let rnn = Rnn::from_weights(&weights, act).unwrap();
        let (t, b, i) = (case.seq, case.batch, case.input_size);
        let input = rng.values(t * b * i, 2.0);
        let nested: Vec<Vec<Vec<f64>>> = (0..t)
            .map(|s| {
                (0..b)
                    .map(|r| input[(s * b + r) * i..(s * b + r + 1) * i].to_vec())
                    .collect()
            })
            .collect();
        let d = if case.bidirectional { 2 } else { 1 };
        let h = case.hidden_sizes[0];
        let h0_values = rng.values(case.hidden_sizes.len() * d * b * h, 1.0);
        let h0_nested: Vec<Vec<Vec<f64>>> = (0..case.hidden_sizes.len() * d)
            .map(|l| {
                (0..b)
                    .map(|r| h0_values[(l * b + r) * h..(l * b + r + 1) * h].to_vec())
                    .collect()
            })
            .collect();
        let input_t = Tensor::from_vec(input, (t, b, i), &dev).unwrap();
        let h0_t = case
            .with_h0
            .then(|| Tensor::from_vec(h0_values.clone(), (h0_nested.len(), b, h), &dev).unwrap());
        let all = vec![t; b];
        let lengths = case.lengths.clone().unwrap_or(all);
        let (output, states) = rnn
            .forward_states(&input_t, h0_t.as_ref(), case.lengths.as_deref())
            .unwrap();
        let (want_out, want_states) = reference(
            &weights,
            case.relu,
            &nested,
            case.with_h0.then_some(h0_nested.as_slice()),
            &lengths,
        );
        let got: Vec<f64> = output.flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f64> = want_out.iter().flatten().flatten().copied().collect();
        assert!(
            max_diff(&got, &want) < 1e-12,
            "case {case_index}: output, {case:?}"
        );
        for (s, (g, w)) in states.iter().zip(&want_states).enumerate() {
            let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
            let w: Vec<f64> = w.iter().flatten().copied().collect();
            assert!(
                max_diff(&g, &w) < 1e-12,
                "case {case_index}: state {s}, {case:?}"
            );
        }
    }
}

#[test]
fn lengths_give_what_each_sequence_gives_alone() {
    let dev = Device::Cpu;
    let mut rng = Rng(42);
    for seed in 0..20 {
        let (t, b, i, h) = (6, 4, 3, 5);
        let config = InitConfig {
            input_size: i,
            hidden_sizes: vec![h, h],
            bidirectional: true,
            bias: true,
        };
        let weights = uniform_weights(&config, seed, DType::F64, &dev).unwrap();
        let rnn = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
        let lengths: Vec<usize> = (0..b).map(|_| rng.below(t + 1)).collect();
        let input = Tensor::from_vec(rng.values(t * b * i, 1.5), (t, b, i), &dev).unwrap();
        let (output, states) = rnn.forward_states(&input, None, Some(&lengths)).unwrap();
        for (r, &len) in lengths.iter().enumerate() {
            let alone_input = input.narrow(0, 0, len).unwrap().narrow(1, r, 1).unwrap();
            let (alone_out, alone_states) = rnn.forward_states(&alone_input, None, None).unwrap();
            let mine = output.narrow(1, r, 1).unwrap();
            let valid: Vec<f64> = mine
                .narrow(0, 0, len)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let alone: Vec<f64> = alone_out.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(valid, alone, "seed {seed}, sequence {r} (length {len})");
            // (candle 0.11.1 reads an empty view at the end of a tensor out of bounds: skip it.)
            if len < t {
                let padding = mine.narrow(0, len, t - len).unwrap();
                let padding: Vec<f64> = padding.flatten_all().unwrap().to_vec1().unwrap();
                assert!(
                    padding.iter().all(|&v| v == 0.0),
                    "seed {seed}, sequence {r}"
                );
            }
            for (s, a) in states.iter().zip(&alone_states) {
                let s: Vec<f64> = s
                    .narrow(0, r, 1)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let a: Vec<f64> = a.flatten_all().unwrap().to_vec1().unwrap();
                assert_eq!(s, a, "seed {seed}, sequence {r}: final state");
            }
        }
    }
}

/// The fused CPU path (what `forward_with_lengths` runs on the CPU) against the plain candle-ops
/// reference, on random shapes, directions, activations and lengths, in f32 and f64.
#[test]
fn fused_cpu_path_matches_the_candle_reference() {
    let dev = Device::Cpu;
    let mut rng = Rng(0xFA57);
    for case_index in 0..86u64 {
        let input_size = 1 + rng.below(70);
        let hidden = 1 + rng.below(if case_index % 8 == 0 { 300 } else { 70 });
        let (mut t, mut b) = (1 + rng.below(12), 1 + rng.below(40));
        let (input_size, hidden) = if case_index >= 84 {
            // Large steps, the batch split between threads (each part in 6-row blocks and a
            // tail of 1 to 5 rows).
            (t, b) = (2 + rng.below(3), 64 + rng.below(8));
            (1 + rng.below(40), 256 + rng.below(20))
        } else if case_index >= 80 {
            // Medium steps, the batch split between threads.
            (t, b) = (64 + rng.below(20), 32 + rng.below(9));
            (64 + rng.below(30), 64 + rng.below(30))
        } else {
            (input_size, hidden)
        };
        let config = InitConfig {
            input_size,
            hidden_sizes: vec![hidden],
            bidirectional: false,
            bias: rng.below(3) != 0,
        };
        let relu = rng.below(3) == 0;
        let act = if relu {
            Nonlinearity::Relu
        } else {
            Nonlinearity::Tanh
        };
        let direction = if rng.below(2) == 0 {
            rnn_core::Direction::Forward
        } else {
            rnn_core::Direction::Backward
        };
        let lengths: Option<Vec<usize>> =
            (rng.below(2) == 0).then(|| (0..b).map(|_| rng.below(t + 1)).collect());
        let input = rng.values(t * b * input_size, 2.0);
        let h0 = rng.values(b * hidden, 1.0);
        for (dtype, bound) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
            let weights = uniform_weights(&config, case_index, dtype, &dev).unwrap();
            let layer = rnn_core::RnnLayer::new(&weights[0][0], act).unwrap();
            let x = Tensor::from_vec(input.clone(), (t, b, input_size), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let h0 = Tensor::from_vec(h0.clone(), (b, hidden), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let l = lengths.as_deref();
            let (fast, fast_h) = layer
                .forward_with_lengths(&x, Some(&h0), direction, l)
                .unwrap();
            let (slow, slow_h) = layer
                .forward_reference(&x, Some(&h0), direction, l)
                .unwrap();
            let flat = |t: &Tensor| -> Vec<f64> {
                t.to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let d =
                max_diff(&flat(&fast), &flat(&slow)).max(max_diff(&flat(&fast_h), &flat(&slow_h)));
            assert!(
                d <= bound,
                "case {case_index} {dtype:?}: {d:e} (T {t}, B {b}, I {input_size}, H {hidden}, relu {relu}, {direction:?}, lengths {lengths:?})"
            );
        }
    }
}
