use super::*;
use crate::{uniform_weights, InitConfig, Nonlinearity, RnnLayer};

/// Runs the fast path with `threads` threads on a layer's transposed weights.
fn fast(layer: &RnnLayer, run: &Run, x: &Tensor, h0: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let w = layer.weights().unwrap();
    let (w_ih_t, w_hh_t) = (
        w.w_ih.t().unwrap().contiguous().unwrap(),
        w.w_hh.t().unwrap().contiguous().unwrap(),
    );
    let (out, h_n) = forward(run, x, &w_ih_t, &w_hh_t, w.b_ih.as_ref(), Some(h0)).unwrap();
    let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (flat(out), flat(h_n))
}

/// The batch split between threads changes no number: each sequence's arithmetic is the same
/// whichever thread runs it (several parts per thread, taken in whatever order the threads
/// get to them; odd part sizes, so every tile of the micro-kernel is used; with lengths and
/// in reverse), and equals the candle reference. The input is wider than one pass
/// of the micro-kernel (128), so a pass starts inside `W_ih` and another spans both weights.
#[test]
fn splitting_the_batch_between_threads_changes_nothing() {
    let dev = Device::Cpu;
    let (seq, batch, input_size, hidden) = (4, 163, 300, 100);
    let x = Tensor::randn(0f32, 1.0, (seq, batch, input_size), &dev).unwrap();
    let h0 = Tensor::randn(0f32, 0.5, (batch, hidden), &dev).unwrap();
    let lengths: Vec<usize> = (0..batch).map(|b| b % (seq + 1)).collect();
    // (reverse, lengths, relu, bias): the state kept in `h` (lengths) or read from the previous
    // output, each activation, with and without the bias in the epilogue.
    let cases = [
        (false, true, false, true),
        (true, false, true, true),
        (false, false, false, false),
        (true, true, true, false),
    ];
    for (reverse, with_lengths, relu, bias) in cases {
        let case = format!("reverse {reverse}, lengths {with_lengths}, relu {relu}, bias {bias}");
        let config = InitConfig {
            input_size,
            hidden_sizes: vec![hidden],
            bidirectional: false,
            bias,
        };
        let weights = uniform_weights(&config, 5, DType::F32, &dev).unwrap();
        let act = if relu {
            Nonlinearity::Relu
        } else {
            Nonlinearity::Tanh
        };
        let layer = RnnLayer::new(&weights[0][0], act).unwrap();
        let lengths = with_lengths.then_some(&lengths[..]);
        let packed = OnceLock::new();
        let run = |threads| Run {
            seq,
            batch,
            input_size,
            hidden,
            reverse,
            relu,
            lengths,
            threads,
            packed: &packed,
        };
        assert!(threads_for(&run(3), 3) == 3, "the case must split");
        assert!(
            part_rows(&run(3), 3) < batch.div_ceil(3),
            "each thread must have parts"
        );
        let one = fast(&layer, &run(1), &x, &h0);
        let three = fast(&layer, &run(3), &x, &h0);
        assert_eq!(one, three, "{case}");
        let direction = if reverse {
            crate::Direction::Reverse
        } else {
            crate::Direction::Forward
        };
        let (reference, reference_h) = layer
            .forward_reference(&x, Some(&h0), direction, lengths)
            .unwrap();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let pairs = one.0.iter().zip(flat(reference));
        let pairs = pairs.chain(one.1.iter().zip(flat(reference_h)));
        let worst = pairs.map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 2e-5, "{case}: {worst}");
    }
}
