use super::*;
use candle_core::Device;

fn scalar(v: f64) -> Tensor {
    Tensor::new(&[[v]], &Device::Cpu).unwrap()
}

fn cell(w_ih: Tensor, w_hh: f64) -> LayerWeights {
    LayerWeights {
        w_ih,
        w_hh: scalar(w_hh),
        b_ih: None,
        b_hh: None,
    }
}

/// Two layers, bidirectional, one neuron per direction, relu, input x = [1, 2]:
/// layer 0 forward (w_ih 1, w_hh 1): 1, 3; reverse (w_ih 2, w_hh 0): 2, 4.
/// layer 1 reads [1, 2] then [3, 4] with w_ih [1, -1]:
/// forward (w_hh 0): relu(-1) = 0, relu(-1) = 0; reverse (w_hh 1): relu(-1 + 0) = 0 at
/// t = 1, relu(-1 + 0) = 0 at t = 0. h_n = [3, 2, 0, 0] (layer-major, then direction).
#[test]
fn bidirectional_two_layers_by_hand() {
    let dev = Device::Cpu;
    let w1 = Tensor::new(&[[1.0f64, -1.0]], &dev).unwrap();
    let weights = vec![
        vec![cell(scalar(1.0), 1.0), cell(scalar(2.0), 0.0)],
        vec![cell(w1.clone(), 0.0), cell(w1, 1.0)],
    ];
    let rnn = Rnn::from_weights(&weights, Nonlinearity::Relu).unwrap();
    let input = Tensor::new(&[[[1.0f64]], [[2.0]]], &dev).unwrap();
    let (out, h_n) = rnn.forward(&input, None).unwrap();
    assert_eq!(out.dims(), &[2, 1, 2]);
    assert_eq!(
        h_n.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        [3.0, 2.0, 0.0, 0.0]
    );
}

#[test]
fn batch_first_and_unbatched_agree_with_time_major() {
    let dev = Device::Cpu;
    let w_ih = Tensor::new(&[[0.5f64, -0.25], [0.1, 0.3]], &dev).unwrap();
    let w_hh = Tensor::new(&[[0.2f64, -0.4], [0.6, 0.1]], &dev).unwrap();
    let weights = vec![vec![LayerWeights {
        w_ih,
        w_hh,
        b_ih: Some(Tensor::new(&[0.1f64, -0.2], &dev).unwrap()),
        b_hh: None,
    }]];
    let rnn = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
    let seq = Tensor::new(&[[1.0f64, 2.0], [-1.0, 0.5], [0.0, 3.0]], &dev).unwrap(); // [T, I]
    let (unbatched, _) = rnn.forward(&seq, None).unwrap();
    let (time_major, _) = rnn.forward(&seq.unsqueeze(1).unwrap(), None).unwrap();
    let bf = rnn.clone().with_batch_first(true);
    let (batch_first, _) = bf.forward(&seq.unsqueeze(0).unwrap(), None).unwrap();
    let want = unbatched.to_vec2::<f64>().unwrap();
    assert_eq!(
        time_major.squeeze(1).unwrap().to_vec2::<f64>().unwrap(),
        want
    );
    assert_eq!(
        batch_first.squeeze(0).unwrap().to_vec2::<f64>().unwrap(),
        want
    );
}

#[test]
fn mismatched_layer_sizes_are_rejected() {
    let dev = Device::Cpu;
    let weights = vec![
        vec![cell(scalar(1.0), 1.0)],
        vec![cell(Tensor::new(&[[1.0f64, 1.0]], &dev).unwrap(), 1.0)],
    ];
    let err = Rnn::from_weights(&weights, Nonlinearity::Tanh)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected input size 1") && err.contains("found 2"),
        "{err}"
    );
}

/// The same stack as `bidirectional_two_layers_by_hand`, batch-first: layer 0's outputs are
/// [1, 2] then [3, 4] (forward, reverse), layer 1's are zeros; each comes time-major.
#[test]
fn forward_layers_keeps_each_layers_states_time_major() {
    let dev = Device::Cpu;
    let w1 = Tensor::new(&[[1.0f64, -1.0]], &dev).unwrap();
    let weights = vec![
        vec![cell(scalar(1.0), 1.0), cell(scalar(2.0), 0.0)],
        vec![cell(w1.clone(), 0.0), cell(w1, 1.0)],
    ];
    let rnn = Rnn::from_weights(&weights, Nonlinearity::Relu)
        .unwrap()
        .with_batch_first(true);
    let input = Tensor::new(&[[[1.0f64], [2.0]]], &dev).unwrap(); // [batch 1, seq 2, 1]
    let run = rnn.forward_layers(&input, None, None).unwrap();
    let layers = &run.layer_outputs;
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[0].to_vec3::<f64>().unwrap(),
        [[[1.0, 2.0]], [[3.0, 4.0]]]
    );
    let (output, h_n) = rnn.forward(&input, None).unwrap();
    assert_eq!(
        layers[1].transpose(0, 1).unwrap().to_vec3::<f64>().unwrap(),
        output.to_vec3::<f64>().unwrap()
    );
    // The same run's output and states as forward's.
    assert_eq!(
        run.output.to_vec3::<f64>().unwrap(),
        output.to_vec3::<f64>().unwrap()
    );
    let stacked = rnn.stack_states(&run.states).unwrap().unwrap();
    assert_eq!(
        stacked.to_vec3::<f64>().unwrap(),
        h_n.to_vec3::<f64>().unwrap()
    );
}

/// One tanh layer of two neurons, with bias, f64.
fn two_neurons(seed: f64) -> LayerWeights {
    let dev = Device::Cpu;
    LayerWeights {
        w_ih: Tensor::new(&[[0.5f64 * seed, -0.25], [0.1, 0.3]], &dev).unwrap(),
        w_hh: Tensor::new(&[[0.2f64, -0.4 * seed], [0.6, 0.1]], &dev).unwrap(),
        b_ih: Some(Tensor::new(&[0.1f64, -0.2], &dev).unwrap()),
        b_hh: None,
    }
}

fn sequence() -> Tensor {
    // [T = 4, B = 3, I = 2]
    let v: Vec<f64> = (0..24).map(|i| ((i * 7) % 11) as f64 / 5.0 - 1.0).collect();
    Tensor::from_vec(v, (4, 3, 2), &Device::Cpu).unwrap()
}

fn flip(t: &Tensor) -> Tensor {
    let n = t.dim(0).unwrap();
    Tensor::cat(
        &(0..n)
            .rev()
            .map(|i| t.narrow(0, i, 1).unwrap())
            .collect::<Vec<_>>(),
        0,
    )
    .unwrap()
}

/// Keras's go_backwards: the layer reads x[T-1] first and keeps its outputs in that order,
/// which is a forward run over the time-reversed input.
#[test]
fn go_backwards_is_a_forward_run_over_the_reversed_input() {
    let weights = vec![vec![two_neurons(1.0)]];
    let plain = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
    let layers = plain.layers().to_vec();
    let options = vec![LayerOptions {
        time: TimeOrder::GoBackwards,
        ..LayerOptions::default()
    }];
    let backwards = Rnn::with_layer_options(layers, options).unwrap();
    let x = sequence();
    let (want, want_h) = plain.forward(&flip(&x), None).unwrap();
    let (got, got_h) = backwards.forward(&x, None).unwrap();
    assert_eq!(
        got.to_vec3::<f64>().unwrap(),
        want.to_vec3::<f64>().unwrap()
    );
    assert_eq!(
        got_h.to_vec3::<f64>().unwrap(),
        want_h.to_vec3::<f64>().unwrap()
    );
}

/// sum, ave and mul join the same two halves that concat places side by side; the next
/// layer then reads `hidden` features.
#[test]
fn merge_modes_join_the_concatenated_halves() {
    let weights = vec![vec![two_neurons(1.0), two_neurons(-1.0)]];
    let concat = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
    let x = sequence();
    let (both, _) = concat.forward(&x, None).unwrap();
    let fw = both.narrow(2, 0, 2).unwrap();
    let bw = both.narrow(2, 2, 2).unwrap();
    let expected = [
        (MergeMode::Sum, (&fw + &bw).unwrap()),
        (MergeMode::Ave, ((&fw + &bw).unwrap() * 0.5).unwrap()),
        (MergeMode::Mul, (&fw * &bw).unwrap()),
        (MergeMode::Separate, both.clone()),
    ];
    for (mode, want) in expected {
        let options = vec![LayerOptions {
            merge_mode: mode,
            ..LayerOptions::default()
        }];
        let rnn = Rnn::with_layer_options(concat.layers().to_vec(), options).unwrap();
        let (got, _) = rnn.forward(&x, None).unwrap();
        assert_eq!(
            got.to_vec3::<f64>().unwrap(),
            want.to_vec3::<f64>().unwrap(),
            "{mode:?}"
        );
        assert_eq!(rnn.output_size(), want.dim(2).unwrap(), "{mode:?}");
    }
    // A one-direction layer has no two directions to keep apart: its output would be split
    // in halves that are not directions.
    let one = Rnn::from_weights(&[vec![two_neurons(1.0)]], Nonlinearity::Tanh).unwrap();
    let apart = vec![LayerOptions {
        merge_mode: MergeMode::Separate,
        ..LayerOptions::default()
    }];
    let err = Rnn::with_layer_options(one.layers().to_vec(), apart).unwrap_err();
    assert!(err.to_string().contains("has one direction"), "{err}");
    // A summed layer feeds 2 features to the next; concatenated, it would feed 4.
    let stacked = [
        vec![two_neurons(1.0), two_neurons(-1.0)],
        vec![two_neurons(0.5)],
    ];
    let layers = Rnn::from_weights(&stacked[..1], Nonlinearity::Tanh)
        .unwrap()
        .layers()
        .to_vec();
    let top = RnnLayer::new(&stacked[1][0], Nonlinearity::Tanh).unwrap();
    let sum = LayerOptions {
        merge_mode: MergeMode::Sum,
        ..LayerOptions::default()
    };
    let mut all = layers;
    all.push(vec![top]);
    assert!(Rnn::new(all.clone()).is_err());
    Rnn::with_layer_options(all, vec![sum, LayerOptions::default()]).unwrap();
}

/// With lengths [4, 2, 0]: Keras repeats sequence 1's output at t = 1 at t = 2 and 3, and
/// leaves the empty sequence at zero; the final states do not change.
#[test]
fn repeat_last_fills_masked_steps_with_the_last_valid_output() {
    let weights = vec![vec![two_neurons(1.0)]];
    let zeros = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
    let repeat = zeros.clone().with_masked_steps(MaskedSteps::RepeatLast);
    let x = sequence();
    let lengths = [4, 2, 0];
    let (z, z_states) = zeros.forward_states(&x, None, Some(&lengths)).unwrap();
    let (r, r_states) = repeat.forward_states(&x, None, Some(&lengths)).unwrap();
    let z = z.to_vec3::<f64>().unwrap();
    let r = r.to_vec3::<f64>().unwrap();
    for t in 0..4 {
        assert_eq!(r[t][0], z[t][0]);
        assert_eq!(r[t][1], z[t.min(1)][1], "t = {t}");
        assert_eq!(r[t][2], [0.0, 0.0]);
    }
    assert_ne!(z[3][1], z[1][1]);
    assert_eq!(
        z_states[0].to_vec2::<f64>().unwrap(),
        r_states[0].to_vec2::<f64>().unwrap()
    );
}

/// Each activation at a few points, against its definition written out (Φ(1) and Φ(−0.5)
/// from tables of the normal distribution).
#[test]
fn activations_follow_their_definitions() {
    let xs = [-4.0f64, -0.5, 0.0, 1.0, 3.5];
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let cases: [(Nonlinearity, [f64; 5]); 10] = [
        (Nonlinearity::Sigmoid, xs.map(sigmoid)),
        (
            Nonlinearity::HardSigmoid,
            [0.0, 5.0 / 12.0, 0.5, 1.0 / 6.0 + 0.5, 1.0],
        ),
        (Nonlinearity::Linear, xs),
        (
            Nonlinearity::Elu,
            xs.map(|x| if x > 0.0 { x } else { x.exp() - 1.0 }),
        ),
        (
            Nonlinearity::Selu,
            xs.map(|x| {
                1.0507009873554805
                    * if x > 0.0 {
                        x
                    } else {
                        1.6732632423543772 * (x.exp() - 1.0)
                    }
            }),
        ),
        (Nonlinearity::Softsign, xs.map(|x| x / (x.abs() + 1.0))),
        (Nonlinearity::Softplus, xs.map(|x| (1.0 + x.exp()).ln())),
        (Nonlinearity::Silu, xs.map(|x| x * sigmoid(x))),
        (Nonlinearity::Exponential, xs.map(f64::exp)),
        (
            Nonlinearity::Gelu,
            [
                -4.0 * 3.167124183311998e-5,
                -0.5 * 0.3085375387259869,
                0.0,
                0.8413447460685429,
                3.5 * 0.9997673709209645,
            ],
        ),
    ];
    let x = Tensor::new(&xs, &Device::Cpu).unwrap();
    for (n, want) in cases {
        let got = n.apply(&x).unwrap().to_vec1::<f64>().unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{n}: {got:?} vs {want:?}"
            );
        }
        assert_eq!(Nonlinearity::from_name(n.as_str()), Some(n));
    }
    assert_eq!(Nonlinearity::from_name("swish"), Some(Nonlinearity::Silu));
}

/// ONNX's direction=reverse: the reverse half of a bidirectional layer alone, its outputs in
/// time order (a go_backwards run with its outputs turned back).
#[test]
fn reverse_is_the_reverse_direction_alone() {
    let weights = vec![vec![two_neurons(1.0)]];
    let plain = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
    let with = |options: LayerOptions| {
        Rnn::with_layer_options(plain.layers().to_vec(), vec![options]).unwrap()
    };
    let reverse = with(LayerOptions {
        time: TimeOrder::Reverse,
        ..LayerOptions::default()
    });
    let backwards = with(LayerOptions {
        time: TimeOrder::GoBackwards,
        ..LayerOptions::default()
    });
    let x = sequence();
    let (got, got_h) = reverse.forward(&x, None).unwrap();
    let (gb, gb_h) = backwards.forward(&x, None).unwrap();
    assert_eq!(
        got.to_vec3::<f64>().unwrap(),
        flip(&gb).to_vec3::<f64>().unwrap()
    );
    assert_eq!(
        got_h.to_vec3::<f64>().unwrap(),
        gb_h.to_vec3::<f64>().unwrap()
    );
}

/// `rnn()` over a `VarMap`: every tensor torch's `nn.RNN(3, 4, num_layers=2,
/// bidirectional=True)` has, under its names; an SGD step on them changes the next run, on
/// the path that records gradients.
#[test]
fn a_varmap_stack_trains_and_an_optimiser_step_changes_the_next_run() {
    use candle_nn::optim::{Optimizer, SGD};
    let dev = Device::Cpu;
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let config = crate::RnnConfig {
        num_layers: 2,
        bidirectional: true,
        batch_first: true,
        ..Default::default()
    };
    let net = crate::rnn(3, 4, config, vb).unwrap();
    let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    let mut want: Vec<String> = (0..2)
        .flat_map(|k| {
            ["", "_reverse"].into_iter().flat_map(move |s| {
                ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map(|w| format!("{w}_l{k}{s}"))
            })
        })
        .collect();
    want.sort();
    assert_eq!(names, want);

    let x = Tensor::randn(0f32, 1.0, (2, 5, 3), &dev).unwrap(); // [batch, seq, input]
    let (before, h_n) = net.forward(&x, None).unwrap();
    assert_eq!(before.dims(), &[2, 5, 8]);
    assert_eq!(h_n.dims(), &[4, 2, 4]);
    let loss = before.sqr().unwrap().sum_all().unwrap();
    let mut sgd = SGD::new(varmap.all_vars(), 0.1).unwrap();
    sgd.backward_step(&loss).unwrap();
    let (after, _) = net.forward(&x, None).unwrap();
    let moved = (before - after)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(moved > 1e-3, "the step did not reach the network: {moved}");
}

/// A stream owns what it runs: it can outlive the borrow of its model and move to another
/// thread.
#[test]
fn a_stream_is_send_and_static() {
    fn owned<T: Send + 'static>(_: &T) {}
    let weights = crate::uniform_weights(
        &crate::InitConfig {
            input_size: 2,
            hidden_sizes: vec![3],
            bidirectional: false,
            bias: true,
        },
        1,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let stream = {
        let rnn = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
        rnn.stream(1, None).unwrap()
    };
    owned(&stream);
    let x = Tensor::ones((1, 2), DType::F32, &Device::Cpu).unwrap();
    let y = std::thread::spawn(move || {
        let mut stream = stream;
        stream.step(&x).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(y.dims(), &[1, 3]);
}

/// The fast path and the path that records gradients compute the same numbers.
#[test]
fn tracking_gradients_changes_no_number() {
    let weights = crate::uniform_weights(
        &crate::InitConfig {
            input_size: 3,
            hidden_sizes: vec![5, 5],
            bidirectional: true,
            bias: true,
        },
        3,
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let x = Tensor::randn(0f64, 1.0, (7, 2, 3), &Device::Cpu).unwrap();
    let plain = Rnn::from_weights(&weights, Nonlinearity::Tanh).unwrap();
    let vars = crate::init::as_variables(&weights);
    let tracked = Rnn::from_weights(&vars, Nonlinearity::Tanh).unwrap();
    let (a, _) = plain.forward(&x, None).unwrap();
    let (b, _) = tracked.forward(&x, None).unwrap();
    assert!(b.track_op(), "the tracked run recorded no graph");
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-12, "{diff:e}");
}

/// The gradients of a loss over a stack's output and `h_n` with respect to the input, `h0`
/// and every weight (in `LayerWeights` order, layer by layer): `None` where there is none.
fn stack_gradients(
    weights: &[Vec<LayerWeights>],
    nonlinearity: Nonlinearity,
    options: LayerOptions,
    fast: bool,
    (x, h0, lengths): (&Tensor, &Tensor, Option<&[usize]>),
    loss_weights: &Tensor,
) -> Vec<Option<Tensor>> {
    use candle_core::Var;
    let x = Var::from_tensor(x).unwrap();
    let h0 = Var::from_tensor(h0).unwrap();
    let mut vars = vec![x.clone(), h0.clone()];
    let mut var = |t: &Tensor| {
        let v = Var::from_tensor(t).unwrap();
        vars.push(v.clone());
        v.as_tensor().clone()
    };
    let layers: Vec<Vec<RnnLayer>> = weights
        .iter()
        .map(|dirs| {
            dirs.iter()
                .map(|w| {
                    let w = LayerWeights {
                        w_ih: var(&w.w_ih),
                        w_hh: var(&w.w_hh),
                        b_ih: w.b_ih.as_ref().map(&mut var),
                        b_hh: w.b_hh.as_ref().map(&mut var),
                    };
                    RnnLayer::new(&w, nonlinearity).unwrap()
                })
                .collect()
        })
        .collect();
    let rnn = Rnn::with_layer_options(layers, vec![options; weights.len()])
        .unwrap()
        .with_fast_path(fast);
    let (out, states) = rnn
        .forward_states(x.as_tensor(), Some(h0.as_tensor()), lengths)
        .unwrap();
    let h_n = rnn.stack_states(&states).unwrap().unwrap();
    let loss = ((out * loss_weights).unwrap().sum_all().unwrap()
        + h_n.sqr().unwrap().sum_all().unwrap())
    .unwrap();
    let grads = loss.backward().unwrap();
    vars.iter()
        .map(|v| grads.get(v.as_tensor()).cloned())
        .collect()
}

/// The fused backward (`cpu/bptt.rs`) against candle's autograd over the plain candle-ops
/// loop, on stacks of every kind of direction, with and without lengths (an empty sequence
/// among them), tanh and relu, with and without bias, at the CPU's kernel level (the levels
/// are held against each other in `cpu/tests.rs`): the gradients of the input, `h0` and every
/// weight.
#[test]
fn the_fused_backward_gives_candles_autograd_gradients() {
    let dev = Device::Cpu;
    let backwards = LayerOptions {
        time: TimeOrder::GoBackwards,
        ..Default::default()
    };
    let reverse = LayerOptions {
        time: TimeOrder::Reverse,
        ..Default::default()
    };
    let cases: [(bool, Option<Vec<usize>>, Nonlinearity, LayerOptions); 5] = [
        (true, None, Nonlinearity::Tanh, LayerOptions::default()),
        (
            true,
            Some(vec![6, 2, 0, 5]),
            Nonlinearity::Tanh,
            LayerOptions::default(),
        ),
        (
            false,
            Some(vec![3, 6, 1, 4]),
            Nonlinearity::Relu,
            LayerOptions::default(),
        ),
        (false, Some(vec![6, 5, 2, 6]), Nonlinearity::Tanh, backwards),
        (false, None, Nonlinearity::Relu, reverse),
    ];
    {
        for (seed, (bidirectional, lengths, nonlinearity, options)) in cases.iter().enumerate() {
            let config = crate::InitConfig {
                input_size: 3,
                hidden_sizes: vec![5, 5],
                bidirectional: *bidirectional,
                bias: seed % 2 == 0,
            };
            let weights = crate::uniform_weights(&config, seed as u64, DType::F64, &dev).unwrap();
            let directions = if *bidirectional { 2 } else { 1 };
            let x = Tensor::randn(0f64, 1.0, (6, 4, 3), &dev).unwrap();
            let h0 = Tensor::randn(0f64, 1.0, (2 * directions, 4, 5), &dev).unwrap();
            let loss_weights = Tensor::randn(0f64, 1.0, (6, 4, 5 * directions), &dev).unwrap();
            let run = |fast| {
                stack_gradients(
                    &weights,
                    *nonlinearity,
                    *options,
                    fast,
                    (&x, &h0, lengths.as_deref()),
                    &loss_weights,
                )
            };
            let (fused, reference) = (run(true), run(false));
            assert_eq!(fused.len(), reference.len());
            for (k, (a, b)) in fused.iter().zip(&reference).enumerate() {
                let (a, b) = match (a, b) {
                    (Some(a), Some(b)) => (a, b),
                    // Without a path to the loss neither has a gradient (torch's zeros).
                    (None, None) => continue,
                    _ => panic!("case {seed}: tensor {k} has a gradient on one path only"),
                };
                let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
                let diff = diff.to_scalar::<f64>().unwrap();
                assert!(diff < 1e-12, "case {seed}: tensor {k} differs by {diff:e}");
            }
        }
    }
}

/// An input without steps holds no data, yet may claim any batch: the states it would need
/// are refused with an error, not an aborted allocation (2^50 sequences here), and a small
/// batch still runs (empty output, h_n zeros). The stream's states are checked the same way.
#[test]
fn a_batch_claimed_by_an_input_without_data_is_not_allocated_blindly() {
    let dev = Device::Cpu;
    let rnn = Rnn::from_weights(&[vec![cell(scalar(1.0), 0.5)]], Nonlinearity::Tanh).unwrap();
    let huge = Tensor::zeros((0, 1usize << 50, 1), candle_core::DType::F64, &dev).unwrap();
    let err = rnn.forward(&huge, None).unwrap_err().to_string();
    assert!(err.contains("cannot be allocated"), "{err}");
    let small = Tensor::zeros((0, 2, 1), candle_core::DType::F64, &dev).unwrap();
    let (output, h_n) = rnn.forward(&small, None).unwrap();
    assert_eq!(output.dims(), [0, 2, 1]);
    assert_eq!(
        h_n.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        [0.0, 0.0]
    );
    let err = rnn.stream(1usize << 62, None).err().unwrap().to_string();
    assert!(err.contains("cannot be allocated"), "{err}");
}
