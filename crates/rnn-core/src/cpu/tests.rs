use super::*;
use crate::{uniform_weights, Direction, InitConfig, Nonlinearity, RnnLayer};

/// A layer's output and `h_n`, flattened.
type Result2<T> = (Vec<T>, Vec<T>);

/// Runs the fast path as `run` says (threads, level) on a layer's transposed weights.
fn fast<T: Element>(layer: &RnnLayer, run: &Run, x: &Tensor, h0: &Tensor) -> Result2<T> {
    let w = layer.weights();
    let (w_ih_t, w_hh_t) = (
        w.w_ih.t().unwrap().contiguous().unwrap(),
        w.w_hh.t().unwrap().contiguous().unwrap(),
    );
    // The layer's summed bias, as the layer sums it.
    let bias = match (&w.b_ih, &w.b_hh) {
        (Some(a), Some(b)) => Some((a + b).unwrap()),
        (a, b) => a.clone().or(b.clone()),
    };
    let (out, h_n) = forward(run, x, &w_ih_t, &w_hh_t, bias.as_ref(), Some(h0)).unwrap();
    (flat(out), flat(h_n))
}

fn flat<T: Element>(t: Tensor) -> Vec<T> {
    t.flatten_all().unwrap().to_vec1::<T>().unwrap()
}

/// The largest |a - b| over output and `h_n`.
fn worst<T: Element + Into<f64>>(a: &Result2<T>, b: &Result2<T>) -> f64 {
    let pairs = a.0.iter().zip(&b.0).chain(a.1.iter().zip(&b.1));
    pairs
        .map(|(&a, &b)| (a.into() - b.into()).abs())
        .fold(0.0, f64::max)
}

/// The candle-ops reference of the same run.
fn reference<T: Element>(layer: &RnnLayer, run: &Run, x: &Tensor, h0: &Tensor) -> Result2<T> {
    let (out, h_n) = layer
        .forward_reference(x, Some(h0), run.direction, run.lengths)
        .unwrap();
    (flat(out), flat(h_n))
}

/// Bits of f32 and f64 results, to compare them exactly (NaN included).
fn bits<T: Element + Into<f64>>(r: &Result2<T>) -> Vec<u64> {
    r.0.iter()
        .chain(&r.1)
        .map(|&v| v.into().to_bits())
        .collect()
}

/// The batch split between threads changes no number, at every kernel level this CPU runs,
/// in f32 and in f64: each sequence's arithmetic is the same whichever thread runs it (several
/// parts per thread, taken in whatever order the threads get to them; odd part sizes, so every
/// tile of the micro-kernels is used; with lengths and in reverse), one thread projecting every
/// step's input ahead of the recurrence (a batch under 12) sums as the per-step product does,
/// and each equals the candle reference (f32 within 2e-5, f64 within 1e-12). The input is
/// wider than one pass of the micro-kernels (128 and 256), so a pass starts inside `W_ih` and
/// another spans both weights. The two micro-kernels give the same bits; the generic level
/// holds to them within the tolerance.
#[test]
fn splitting_the_batch_between_threads_changes_nothing() {
    let dev = Device::Cpu;
    let (seq, input_size, hidden) = (4, 300, 100);
    // (batch, reverse, lengths, relu, bias): the state kept in `h` (lengths) or read from the
    // previous output, each activation, with and without the bias in the epilogue, and a batch
    // that one thread projects ahead.
    let cases = [
        (163, false, true, false, true),
        (163, true, false, true, true),
        (163, false, false, false, false),
        (163, true, true, true, false),
        (11, false, false, false, true),
        (11, true, true, true, true),
    ];
    for (batch, reverse, with_lengths, relu, bias) in cases {
        for dtype in [DType::F32, DType::F64] {
            let seq = if batch < PROJECT_AHEAD_BELOW_ROWS {
                10 * seq
            } else {
                seq
            };
            let x = Tensor::randn(0f32, 1.0, (seq, batch, input_size), &dev)
                .and_then(|t| t.to_dtype(dtype))
                .unwrap();
            let h0 = Tensor::randn(0f32, 0.5, (batch, hidden), &dev)
                .and_then(|t| t.to_dtype(dtype))
                .unwrap();
            let lengths: Vec<usize> = (0..batch).map(|b| b % (seq + 1)).collect();
            let case = format!(
                "{dtype:?}, batch {batch}, reverse {reverse}, lengths {with_lengths}, relu \
                 {relu}, bias {bias}"
            );
            let layer = test_layer(input_size, hidden, bias, relu, 5, dtype);
            let lengths = with_lengths.then_some(&lengths[..]);
            let packed = PackedWeights::default();
            let run = |threads, level| Run {
                seq,
                batch,
                input_size,
                hidden,
                direction: direction(reverse),
                activation: fused(relu),
                lengths,
                threads,
                level,
                packed: &packed,
            };
            let split = if batch < PROJECT_AHEAD_BELOW_ROWS {
                2
            } else {
                3
            };
            let generic = run(split, KernelLevel::Generic);
            assert!(threads_for(&generic, split) == split, "the case must split");
            if split == 3 {
                assert!(
                    part_rows(&generic, 3) < batch.div_ceil(3),
                    "each thread must have parts"
                );
            }
            if dtype == DType::F64 {
                check_split::<f64>(&case, 1e-12, &layer, split, &run, &x, &h0);
            } else {
                check_split::<f32>(&case, 2e-5, &layer, split, &run, &x, &h0);
            }
        }
    }
}

/// One case of [`splitting_the_batch_between_threads_changes_nothing`]: at every level, one
/// thread and `split` threads give the same bits and hold to the reference; the levels with a
/// micro-kernel give the same bits.
fn check_split<'a, T: Element + Into<f64>>(
    case: &str,
    tolerance: f64,
    layer: &RnnLayer,
    split: usize,
    run: &impl Fn(usize, KernelLevel) -> Run<'a>,
    x: &Tensor,
    h0: &Tensor,
) {
    let want: Result2<T> = reference(layer, &run(split, KernelLevel::Generic), x, h0);
    let mut packed_result: Option<(KernelLevel, Result2<T>)> = None;
    for level in KernelLevel::available() {
        let one: Result2<T> = fast(layer, &run(1, level), x, h0);
        let several: Result2<T> = fast(layer, &run(split, level), x, h0);
        assert!(
            bits(&one) == bits(&several),
            "{level}, {case}: 1 and {split} threads differ by {}",
            worst(&one, &several)
        );
        let off = worst(&one, &want);
        assert!(off < tolerance, "{level}, {case}: {off} from the reference");
        if level == KernelLevel::Generic {
            continue;
        }
        if let Some((other, first)) = &packed_result {
            assert!(
                bits(&one) == bits(first),
                "{level} and {other} differ: {case}"
            );
        } else {
            packed_result = Some((level, one));
        }
    }
}

/// SplitMix64, for the random shapes below (seeded: a failure names its case).
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// Every kernel level this CPU runs, on random shapes, options, thread counts and both
/// dtypes, holds to the candle-ops reference (f32 within 2e-5, f64 within 1e-12) and the
/// levels with a micro-kernel to each other bit for bit (the generic level rounds each product
/// before adding it, where they fuse the multiply-add).
#[test]
fn every_level_holds_to_the_reference_on_random_shapes() {
    let dev = Device::Cpu;
    let mut draw = Draw(17);
    for case in 0..40 {
        let seq = 1 + draw.below(6);
        let batch = 1 + draw.below(30);
        let input_size = 1 + draw.below(150);
        let hidden = 1 + draw.below(140);
        let (reverse, relu, bias) = (draw.below(2) == 1, draw.below(2) == 1, draw.below(3) > 0);
        let lengths: Vec<usize> = (0..batch).map(|_| draw.below(seq + 1)).collect();
        let lengths = (draw.below(2) == 1).then_some(&lengths[..]);
        let threads = 1 + draw.below(3);
        let dtype = if case % 2 == 1 {
            DType::F64
        } else {
            DType::F32
        };
        let name = format!(
            "case {case}: seq {seq}, batch {batch}, input {input_size}, hidden {hidden}, reverse \
             {reverse}, relu {relu}, bias {bias}, lengths {}, threads {threads}, {dtype:?}",
            lengths.is_some()
        );
        let x = Tensor::randn(0f32, 1.0, (seq, batch, input_size), &dev)
            .and_then(|t| t.to_dtype(dtype))
            .unwrap();
        let h0 = Tensor::randn(0f32, 0.5, (batch, hidden), &dev)
            .and_then(|t| t.to_dtype(dtype))
            .unwrap();
        let layer = test_layer(input_size, hidden, bias, relu, case, dtype);
        let packed = PackedWeights::default();
        let run = |level| Run {
            seq,
            batch,
            input_size,
            hidden,
            direction: direction(reverse),
            activation: fused(relu),
            lengths,
            threads,
            level,
            packed: &packed,
        };
        if dtype == DType::F64 {
            check_levels::<f64>(&name, 1e-12, &layer, &run, &x, &h0);
        } else {
            check_levels::<f32>(&name, 2e-5, &layer, &run, &x, &h0);
        }
    }
}

fn check_levels<'a, T: Element + Into<f64>>(
    name: &str,
    tolerance: f64,
    layer: &RnnLayer,
    run: &impl Fn(KernelLevel) -> Run<'a>,
    x: &Tensor,
    h0: &Tensor,
) {
    let want: Result2<T> = reference(layer, &run(KernelLevel::Generic), x, h0);
    let mut packed_result: Option<(KernelLevel, Result2<T>)> = None;
    for level in KernelLevel::available() {
        let got: Result2<T> = fast(layer, &run(level), x, h0);
        let off = worst(&got, &want);
        assert!(off < tolerance, "{level}, {name}: {off} from the reference");
        if level == KernelLevel::Generic {
            continue;
        }
        if let Some((other, first)) = &packed_result {
            assert!(
                bits(&got) == bits(first),
                "{level} and {other} differ: {name}"
            );
        } else {
            packed_result = Some((level, got));
        }
    }
}

/// The fused backward at every level the CPU has against the generic level's, on a shape
/// large enough to split between threads and with lengths (an empty sequence among them),
/// both directions: the gradients of the input, `h0` and the weights agree within 1e-12
/// (f64; the products sum in other orders at each level).
#[test]
fn the_backward_agrees_at_every_level() {
    let dev = Device::Cpu;
    let (seq, batch, input, hidden) = (9, 24, 70, 130);
    let randn = |shape: &[usize]| Tensor::randn(0f64, 1.0, shape, &dev).unwrap();
    let x = randn(&[seq, batch, input]);
    let h0 = randn(&[batch, hidden]);
    let weights = (randn(&[hidden, input + hidden + 2]) * 0.1).unwrap();
    let res = randn(&[seq, batch, hidden]).tanh().unwrap();
    let grad = randn(&[seq, batch, hidden]);
    let lengths: Vec<usize> = (0..batch).map(|b| (b * 7) % (seq + 1)).collect();
    for reverse in [false, true] {
        let gradients = |level| {
            let op = bptt::Recurrence {
                output: Mutex::new(None),
                input_size: input,
                hidden,
                bias_columns: 2,
                direction: direction(reverse),
                activation: Fused::Tanh,
                lengths: Some(lengths.clone()),
                level,
            };
            let (dx, dh0, dw) = op.backward::<f64>(&x, &h0, &weights, &res, &grad).unwrap();
            [dx, dh0, dw].map(|g| flat::<f64>(g.unwrap()))
        };
        let generic = gradients(KernelLevel::Generic);
        assert!(
            generic[2].iter().any(|&v| v.abs() > 1e-3),
            "vacuous weights' gradient"
        );
        for level in KernelLevel::available() {
            for (k, (a, b)) in gradients(level).iter().zip(&generic).enumerate() {
                let diff = a
                    .iter()
                    .zip(b)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(
                    diff < 1e-12,
                    "{level:?} reverse {reverse}: gradient {k} by {diff:e}"
                );
            }
        }
    }
}

/// One sequence runs its whole recurrence in one kernel call at each level with a
/// micro-kernel (`kernels/sequence.rs`), with the next step's projection summed beside each
/// step's chain in f32 and every step's projected first in f64: either way its
/// outputs and `h_n` are the same bits as the same sequence's row of a batch of 13 (each
/// step's product over both weights), and as every other level with a micro-kernel, and
/// hold to the reference (2e-5, 1e-12). The shapes
/// cover one and several blocks of a row (16 to 64 columns) and panels, a shared dimension
/// longer than one pass (128) on either weight, inputs narrower and wider than the state, a
/// single step, both directions and activations, with and without a bias.
#[test]
fn one_sequence_is_the_same_bits_as_a_row_of_a_batch() {
    one_sequence_cases::<f32>(DType::F32, 2e-5);
    one_sequence_cases::<f64>(DType::F64, 1e-12);
}

fn one_sequence_cases<T: Element + Into<f64>>(dtype: DType, tolerance: f64) {
    let dev = Device::Cpu;
    let shapes = [
        (1, 1),
        (30, 17),
        (64, 64),
        (200, 100),
        (7, 140),
        (130, 65),
        (9, 20),
    ];
    let mut checked = 0;
    for (case, &(input_size, hidden)) in shapes.iter().enumerate() {
        for (seq, reverse, relu, bias) in [
            (5, false, false, true),
            (3, true, true, false),
            (1, false, false, true),
            (4, true, false, true),
        ] {
            let name = format!(
                "{dtype:?}, input {input_size}, hidden {hidden}, seq {seq}, reverse {reverse}, \
                 relu {relu}, bias {bias}"
            );
            let randn = |shape: (usize, usize, usize)| {
                Tensor::randn(0f32, 1.0, shape, &dev)
                    .and_then(|t| t.to_dtype(dtype))
                    .unwrap()
            };
            let others = 12;
            let x = randn((seq, 1, input_size));
            let x13 = Tensor::cat(&[&x, &randn((seq, others, input_size))], 1).unwrap();
            let h0 = (randn((1, 1, hidden)).squeeze(0).unwrap() * 0.5).unwrap();
            let h0_13 =
                Tensor::cat(&[&h0, &randn((1, others, hidden)).squeeze(0).unwrap()], 0).unwrap();
            let layer = test_layer(input_size, hidden, bias, relu, case as u64, dtype);
            let packed = PackedWeights::default();
            let run = |batch, level| Run {
                seq,
                batch,
                input_size,
                hidden,
                direction: direction(reverse),
                activation: fused(relu),
                lengths: None,
                threads: 1,
                level,
                packed: &packed,
            };
            let want = reference::<T>(&layer, &run(1, KernelLevel::Generic), &x, &h0);
            for level in KernelLevel::available() {
                if level == KernelLevel::Generic {
                    continue;
                }
                let before = kernels::SEQUENCE_RUNS.with(|r| r.get());
                let one: Result2<T> = fast(&layer, &run(1, level), &x, &h0);
                let ran = kernels::SEQUENCE_RUNS.with(|r| r.get()) - before;
                assert_eq!(ran, 1, "{level}, {name}: sequence kernel runs");
                let (out, h_n) = fast::<T>(&layer, &run(13, level), &x13, &h0_13);
                let row = |v: &[T], rows: usize| -> Vec<T> {
                    v.chunks_exact(hidden)
                        .step_by(1 + others)
                        .take(rows)
                        .flatten()
                        .copied()
                        .collect()
                };
                let in_batch = (row(&out, seq), row(&h_n, 1));
                assert!(bits(&one) == bits(&in_batch), "{level}, {name}");
                let off = worst(&one, &want);
                assert!(off < tolerance, "{level}, {name}: {off} from the reference");
                checked += 1;
            }
        }
    }
    if checked == 0 {
        eprintln!("skipped: this CPU has no AVX2, so no micro-kernel runs");
    }
}

/// A one-direction layer of `uniform_weights` (seeded), tanh or ReLU.
fn test_layer(
    input_size: usize,
    hidden: usize,
    bias: bool,
    relu: bool,
    seed: u64,
    dtype: DType,
) -> RnnLayer {
    let config = InitConfig {
        input_size,
        hidden_sizes: vec![hidden],
        bidirectional: false,
        bias,
    };
    let weights = uniform_weights(&config, seed, dtype, &Device::Cpu).unwrap();
    let act = if relu {
        Nonlinearity::Relu
    } else {
        Nonlinearity::Tanh
    };
    RnnLayer::new(&weights[0][0], act).unwrap()
}

/// The fused activation a test's `relu` flag stands for.
pub(crate) fn fused(relu: bool) -> Fused {
    if relu {
        Fused::Relu
    } else {
        Fused::Tanh
    }
}

/// The direction a test's `reverse` flag stands for.
fn direction(reverse: bool) -> Direction {
    if reverse {
        Direction::Backward
    } else {
        Direction::Forward
    }
}
