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
/// of the micro-kernel (256), so a pass starts inside `W_ih` and another spans both weights.
#[test]
fn splitting_the_batch_between_threads_changes_nothing() {
    let dev = Device::Cpu;
    let (seq, batch, input_size, hidden) = (5, 163, 300, 100);
    let config = InitConfig {
        input_size,
        hidden_sizes: vec![hidden],
        bidirectional: false,
        bias: true,
    };
    let weights = uniform_weights(&config, 5, DType::F32, &dev).unwrap();
    let layer = RnnLayer::new(&weights[0][0], Nonlinearity::Tanh).unwrap();
    let x = Tensor::randn(0f32, 1.0, (seq, batch, input_size), &dev).unwrap();
    let h0 = Tensor::randn(0f32, 0.5, (batch, hidden), &dev).unwrap();
    let lengths: Vec<usize> = (0..batch).map(|b| b % (seq + 1)).collect();
    for reverse in [false, true] {
        let packed = OnceLock::new();
        let run = |threads| Run {
            seq,
            batch,
            input_size,
            hidden,
            reverse,
            relu: false,
            lengths: Some(&lengths),
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
        assert_eq!(one, three, "reverse {reverse}");
        let direction = if reverse {
            crate::Direction::Reverse
        } else {
            crate::Direction::Forward
        };
        let (reference, _) = layer
            .forward_reference(&x, Some(&h0), direction, Some(&lengths))
            .unwrap();
        let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = one
            .0
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 2e-5, "reverse {reverse}: {worst}");
    }
}
