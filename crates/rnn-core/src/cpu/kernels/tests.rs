use super::super::tanh::{BIG_F64, CLAMP, SMALL_F64, TINY, TINY_F64};
use super::super::{tanh_f32, tanh_f64, Element};
use crate::cpu::level::KernelLevel;
use crate::cpu::tests::fused;

/// The levels with a micro-kernel that this CPU runs.
fn packed_levels() -> Vec<KernelLevel> {
    let levels = KernelLevel::available();
    let packed: Vec<_> = levels
        .into_iter()
        .filter(|&l| l != KernelLevel::Generic)
        .collect();
    if packed.is_empty() {
        eprintln!("skipped: this CPU has no AVX2, so no micro-kernel runs");
    }
    packed
}

/// The micro-kernels' epilogues compute tanh and ReLU 16 or 8 lanes at a time; the other
/// paths (f64, the generic level, the separate activation pass) use the scalar functions.
/// They must agree bit for bit, so that which path ran never changes a number: checked on
/// every 509th f32 bit pattern (NaNs, infinities and subnormals among them) and on every
/// f32 within 4096 ulp of the points where tanh_f32 changes branch, at every level this
/// CPU runs.
#[test]
fn the_vector_activations_are_the_scalar_ones_bit_for_bit() {
    let sweep = (0..=u32::MAX).step_by(509).map(f32::from_bits);
    let near = [CLAMP, -CLAMP, TINY, -TINY, 0.0, -0.0]
        .into_iter()
        .flat_map(|edge: f32| {
            let bits = edge.to_bits() as i64;
            (-4096..=4096).map(move |d| f32::from_bits((bits + d).clamp(0, u32::MAX as i64) as u32))
        });
    let values: Vec<f32> = sweep.chain(near).collect();
    for level in packed_levels() {
        let mut checked = 0;
        for chunk in values.chunks_exact(16) {
            for relu in [false, true] {
                let got: Vec<f32> = match level {
                    // SAFETY: the CPU supports the level (`packed_levels`).
                    KernelLevel::Avx512 => unsafe {
                        super::avx512_f32::activate_lanes(chunk.try_into().unwrap(), fused(relu))
                    }
                    .to_vec(),
                    _ => chunk
                        .chunks_exact(8)
                        // SAFETY: as above.
                        .flat_map(|c| unsafe {
                            super::avx2_f32::activate_lanes(c.try_into().unwrap(), fused(relu))
                        })
                        .collect(),
                };
                for (&x, &got) in chunk.iter().zip(&got) {
                    let want = if relu { x.relu() } else { tanh_f32(x) };
                    assert!(
                        got.to_bits() == want.to_bits(),
                        "{level}: x = {x:e} ({:#010x}), relu {relu}: vector {got:e}, scalar \
                         {want:e}",
                        x.to_bits()
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            checked > 16_000_000,
            "{level}: only {checked} values checked"
        );
    }
}

/// The f64 micro-kernels' tanh and ReLU, 8 or 4 lanes at a time, are [`tanh_f64`] and
/// `Element::relu` bit for bit: on every 2^42nd f64 bit pattern (NaNs, infinities and
/// subnormals among them), on 2^21 values spread over [-25, 25], and on every f64 within
/// 4096 ulp of the points where tanh_f64 changes branch, at every level this CPU runs.
#[test]
fn the_f64_vector_activations_are_the_scalar_ones_bit_for_bit() {
    let sweep = (0..1u64 << 22).map(|i| f64::from_bits(i << 42));
    let spread = (0..1u64 << 21).map(|i| (i as f64 / (1u64 << 21) as f64 - 0.5) * 50.0);
    let near = [SMALL_F64, BIG_F64, TINY_F64, 0.0]
        .into_iter()
        .flat_map(|edge: f64| [edge, -edge])
        .flat_map(|edge| {
            let bits = edge.to_bits() as i128;
            (-4096..=4096)
                .map(move |d| f64::from_bits((bits + d).clamp(0, u64::MAX as i128) as u64))
        });
    let values: Vec<f64> = sweep.chain(spread).chain(near).collect();
    for level in packed_levels() {
        let mut checked = 0;
        for chunk in values.chunks_exact(8) {
            for relu in [false, true] {
                let got: Vec<f64> = match level {
                    // SAFETY: the CPU supports the level (`packed_levels`).
                    KernelLevel::Avx512 => unsafe {
                        super::avx512_f64::activate_lanes(chunk.try_into().unwrap(), fused(relu))
                    }
                    .to_vec(),
                    _ => chunk
                        .chunks_exact(4)
                        // SAFETY: as above.
                        .flat_map(|c| unsafe {
                            super::avx2_f64::activate_lanes(c.try_into().unwrap(), fused(relu))
                        })
                        .collect(),
                };
                for (&x, &got) in chunk.iter().zip(&got) {
                    let want = if relu { x.relu() } else { tanh_f64(x) };
                    assert!(
                        got.to_bits() == want.to_bits(),
                        "{level}: x = {x:e} ({:#018x}), relu {relu}: vector {got:e}, scalar \
                         {want:e}",
                        x.to_bits()
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            checked > 12_000_000,
            "{level}: only {checked} values checked"
        );
    }
}

fn values<T: Element>(len: usize, seed: usize) -> Vec<T> {
    (0..len)
        .map(|i| T::from_f64(((i * 37 + seed * 11) % 23) as f64 / 23.0 - 0.5))
        .collect()
}

/// Row counts, column counts and shared dimensions (of `x` and `h`) that reach every row
/// tail of the 6-row blocks, more rows than one row block, both sides of each register
/// (4, 8 and 16 lanes) and panel (8, 16, 32 and 64 columns), one column block of 128 or
/// 256 or more, and one pass of the shared dimension or several (128 and 256 deep).
const ROWS: [usize; 9] = [1, 2, 3, 4, 5, 6, 7, 13, 487];
const COLUMNS: [usize; 12] = [1, 3, 7, 9, 15, 17, 33, 50, 64, 65, 130, 300];
const DEPTHS: [(usize, usize); 5] = [(0, 3), (3, 5), (100, 70), (130, 200), (300, 260)];

/// A step written into fresh memory must store every element before reading any: the
/// memory here starts as NaN, which any element left unwritten, or read before it was
/// written, would carry into the result. Checked
/// against the same step over a zeroed buffer, at each level with a micro-kernel, for f32
/// and f64, with each activation.
#[test]
fn a_fresh_step_writes_every_element_before_it_reads_any() {
    fresh_step_cases::<f32>();
    fresh_step_cases::<f64>();
}

fn fresh_step_cases<T: Element>() {
    for level in packed_levels() {
        let mut cases = 0;
        for rows in ROWS {
            for n in COLUMNS {
                for (k_x, k_h) in DEPTHS {
                    let (Some(w_ih), Some(w_hh)) = (
                        super::PackedB::new(level, &values::<T>(k_x * n, 1), k_x, n),
                        super::PackedB::new(level, &values::<T>(k_h * n, 2), k_h, n),
                    ) else {
                        panic!("{level}: packing failed for n = {n}");
                    };
                    let (x, h, bias) = (
                        values::<T>(rows * k_x, 3),
                        values::<T>(rows * k_h, 4),
                        values::<T>(n, 5),
                    );
                    let terms = [(&x[..], &w_ih), (&h[..], &w_hh)];
                    let epilogue = Some(super::gemm::Epilogue {
                        bias: Some(&bias[..]),
                        activation: fused(cases % 2 == 1),
                    });
                    let mut zeroed = vec![T::ZERO; rows * n];
                    super::gemm::packed_product(&mut zeroed, false, &terms, epilogue);
                    let nan = T::from_f64(f64::NAN);
                    let mut fresh = vec![std::mem::MaybeUninit::new(nan); rows * n];
                    let written = super::gemm::fresh_product(&mut fresh, &terms, epilogue);
                    assert!(
                        written
                            .iter()
                            .zip(&zeroed)
                            .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()),
                        "{level}, {:?}: rows {rows}, n {n}, k {k_x} + {k_h}",
                        T::DTYPE
                    );
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 540);
    }
}

/// One sequence's kernel (`sequence.rs`) runs at every level with a micro-kernel, in f32
/// and f64;
/// it writes every element before it reads any (the memory starts as NaN), and its bits are
/// those of the same steps taken one by one with `packed_step`, over one and several blocks
/// of a row, an input of no features, both directions and activations.
#[test]
fn the_sequence_kernel_is_the_steps_one_by_one() {
    sequence_cases::<f32>();
    sequence_cases::<f64>();
}

fn sequence_cases<T: Element>() {
    for level in packed_levels() {
        let shapes = [
            (1, 1, 1, false),
            (4, 17, 30, true),
            (3, 64, 200, false),
            (5, 100, 7, true),
            (2, 33, 33, false),
            (3, 20, 0, true),
        ];
        for (seq, n, k_x, backward) in shapes {
            let (Some(w_ih), Some(w_hh)) = (
                super::PackedB::new(level, &values::<T>(k_x * n, 1), k_x, n),
                super::PackedB::new(level, &values::<T>(n * n, 2), n, n),
            ) else {
                panic!("{level}: packing failed for n = {n}");
            };
            let (x, h0, bias) = (
                values::<T>(seq * k_x, 3),
                values::<T>(n, 4),
                values::<T>(n, 5),
            );
            for relu in [false, true] {
                let epilogue = super::Epilogue {
                    bias: Some(&bias[..]),
                    activation: fused(relu),
                };
                let sequence = super::Sequence {
                    x: &x,
                    w_ih: &w_ih,
                    h0: &h0,
                    w_hh: &w_hh,
                    epilogue,
                    backward,
                };
                let nan = T::from_f64(f64::NAN);
                let mut fresh = vec![std::mem::MaybeUninit::new(nan); seq * n];
                let Ok(got) = super::gemm::fresh_sequence(&mut fresh, &sequence) else {
                    panic!("{level}: no sequence kernel");
                };
                let got = got.to_vec();
                let mut want = vec![T::ZERO; seq * n];
                let mut h = h0.clone();
                for i in 0..seq {
                    let t = if backward { seq - 1 - i } else { i };
                    let out = &mut want[t * n..(t + 1) * n];
                    let x_t = &x[t * k_x..(t + 1) * k_x];
                    super::packed_step(
                        out,
                        Some((x_t, &w_ih)),
                        (&h, &w_hh),
                        Some(&bias),
                        fused(relu),
                    );
                    h = out.to_vec();
                }
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()),
                    "{level}, {:?}: seq {seq}, n {n}, k {k_x}, backward {backward}, relu {relu}",
                    T::DTYPE
                );
            }
        }
    }
}

/// The AVX2 and AVX-512 micro-kernels do the same multiply-adds in the same order (from
/// zero or from `out`, over the shared dimension in order) and the same epilogue, so they
/// give the same bits, with and without the bias, for either activation, and when
/// accumulating onto a projection, in f32 and in f64; and they hold to the plain loops
/// within a few ulp (which round each product before adding it, where the kernels fuse
/// the multiply-add).
#[test]
fn the_micro_kernels_agree_bit_for_bit_and_with_the_plain_loops() {
    kernels_agree::<f32>(1e-5);
    kernels_agree::<f64>(1e-13);
}

fn kernels_agree<T: Element>(tolerance: f64) {
    let levels = packed_levels();
    if levels.len() < 2 {
        eprintln!("skipped: this CPU runs at most one micro-kernel");
    }
    for rows in ROWS {
        for n in COLUMNS {
            for (k_x, k_h) in DEPTHS {
                let (w_x, w_h) = (values::<T>(k_x * n, 1), values::<T>(k_h * n, 2));
                let (x, h, bias) = (
                    values::<T>(rows * k_x, 3),
                    values::<T>(rows * k_h, 4),
                    values::<T>(n, 5),
                );
                let start = values::<T>(rows * n, 6);
                for (relu, with_bias, accumulate) in [
                    (false, true, false),
                    (true, false, false),
                    (false, false, true),
                ] {
                    let case = format!(
                        "{:?}, rows {rows}, n {n}, k {k_x} + {k_h}, relu {relu}, bias \
                         {with_bias}, accumulate {accumulate}",
                        T::DTYPE
                    );
                    let epilogue = Some(super::gemm::Epilogue {
                        bias: with_bias.then_some(&bias[..]),
                        activation: fused(relu),
                    });
                    let mut plain = if accumulate {
                        start.clone()
                    } else {
                        vec![T::ZERO; rows * n]
                    };
                    let generic = KernelLevel::Generic;
                    super::small_gemm_acc(generic, &mut plain, &x, &w_x, k_x, n);
                    super::small_gemm_acc(generic, &mut plain, &h, &w_h, k_h, n);
                    super::activation::bias_activation_generic(
                        &mut plain,
                        with_bias.then_some(&bias[..]),
                        fused(relu),
                    );
                    let mut first: Option<(KernelLevel, Vec<T>)> = None;
                    for &level in &levels {
                        let (Some(w_ih), Some(w_hh)) = (
                            super::PackedB::new(level, &w_x, k_x, n),
                            super::PackedB::new(level, &w_h, k_h, n),
                        ) else {
                            panic!("{level}: packing failed for n = {n}");
                        };
                        let mut out = if accumulate {
                            start.clone()
                        } else {
                            vec![T::from_f64(f64::NAN); rows * n]
                        };
                        let terms = [(&x[..], &w_ih), (&h[..], &w_hh)];
                        super::gemm::packed_product(&mut out, accumulate, &terms, epilogue);
                        let worst = out
                            .iter()
                            .zip(&plain)
                            .map(|(a, b)| {
                                let (a, b) = (a.to_f64(), b.to_f64());
                                (a - b).abs() / b.abs().max(1.0)
                            })
                            .fold(0f64, f64::max);
                        assert!(
                            worst <= tolerance,
                            "{level}, {case}: {worst} from the loops"
                        );
                        if let Some((other, want)) = &first {
                            assert!(
                                out.iter()
                                    .zip(want)
                                    .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()),
                                "{level} and {other} differ: {case}"
                            );
                        } else {
                            first = Some((level, out));
                        }
                    }
                }
            }
        }
    }
}
