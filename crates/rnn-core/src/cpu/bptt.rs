//! Backpropagation through time for the fused path: one layer and direction's recurrence as a
//! candle [`CustomOp3`], so that a run whose input, `h0` or weights track gradients computes
//! its forward with the fused kernels and its backward in one pass over the steps, instead of
//! candle differentiating a graph of `3 · seq_len` small operations.
//!
//! The operation's arguments are the input `x` `[T, B, I]`, `h0` `[B, H]` and every weight in
//! one tensor `[W_ih | W_hh | b_ih | b_hh]` `[H, I + H + biases]` (a `cat`, whose gradient
//! candle splits back); its result is `[T + 1, B, H]`: the outputs, then `h_n`. The forward
//! was computed before the operation was made (the fused path, the same numbers as inference)
//! and is handed over as it is.
//!
//! The backward, for the loss gradients `G_t` of the outputs and `G_n` of `h_n`, with `y_t`
//! the output at step `t`, `act'` from the output (`1 − y²` for tanh, `y > 0` for relu):
//! - going back over the steps in the reverse of the order they were computed, with
//!   `δh = G_n` first: `δpre_t = (δh + G_t) ⊙ act'(y_t)`, then `δh = δpre_t · W_hh`; a step past
//!   a sequence's length passes `δh` through unchanged and has `δpre = 0`;
//! - then, over all steps at once: `dW_ih = δPreᵀ · X`, `dW_hh = δPreᵀ · H_prev` (each
//!   step's previous state), `dx = δPre · W_ih`, `db_ih = db_hh = Σ δPre`; `dh0` is the last
//!   `δh`.
//!
//! Every product runs on the forward's micro-kernels (the right-hand matrix packed once per
//! backward; the generic level's row-wise loops where there is none): each step's
//! `δpre · W_hh` with the batch split between threads, the three products over all steps
//! with their rows split between threads.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};

use std::ops::Range;

use super::kernels::{self, PackedB};
use super::level::KernelLevel;
use super::{with_slice, Element, Fused};
use candle_nn::rnn::Direction;

/// One layer and direction's recurrence, its forward already computed.
pub(crate) struct Recurrence {
    /// The fused forward's output, `[seq_len, batch, hidden]`.
    pub output: Tensor,
    /// Its final state, `[batch, hidden]`.
    pub h_n: Tensor,
    pub input_size: usize,
    pub hidden: usize,
    /// How many bias columns follow the weights in the weights argument (0, 1 or 2).
    pub bias_columns: usize,
    /// Step `T − 1` first.
    /// `Backward`: the forward ran from the last step to the first.
    pub direction: Direction,
    pub activation: Fused,
    /// Each sequence's length; `None`: all `seq_len`.
    pub lengths: Option<Vec<usize>>,
    /// The kernels the products run on (the forward's).
    pub level: KernelLevel,
}

/// What every thread of the backward's loop reads.
struct Pass<'a, T: Element> {
    /// The forward's result `[T + 1, B, H]`.
    out: &'a [T],
    /// Its gradient, the same shape.
    grad: &'a [T],
    /// `W_hh` `[H, H]`, and packed for the level's micro-kernel where it has one.
    w_hh: &'a [T],
    packed: Option<&'a PackedB<T>>,
    seq: usize,
    batch: usize,
}

impl<T: Element> Clone for Pass<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Element> Copy for Pass<'_, T> {}

impl Recurrence {
    /// `[output; h_n]`, `[seq_len + 1, batch, hidden]` row-major.
    fn stacked<T: Element>(&self) -> Result<Vec<T>> {
        let (output, h_n) = (self.output.contiguous()?, self.h_n.contiguous()?);
        with_slice::<T, _>(&output, |o| {
            with_slice::<T, _>(&h_n, |h| Ok([o, h].concat()))
        })
    }

    /// Whether step `t` is within sequence `b`.
    fn valid(&self, t: usize, b: usize) -> bool {
        self.lengths.as_ref().is_none_or(|l| t < l[b])
    }

    /// The backward's loop over the steps: returns `δPre` `[T·B·H]` and `dh0` `[B·H]`. The
    /// sequences are independent, so the batch is split between threads, each running every
    /// step of its part (as the forward does).
    fn through_time<T: Element>(
        &self,
        out: &[T],
        grad: &[T],
        w_hh: &[T],
        seq: usize,
        batch: usize,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let hidden = self.hidden;
        let level = self.level;
        // W_hh `[H, H]` is the right-hand `[k, n]` of `δpre · W_hh` as it is laid out.
        let packed = PackedB::new(level, w_hh, hidden, hidden);
        let macs = seq * batch * hidden * hidden;
        let threads = if macs < super::SPLIT_MIN_MACS {
            1
        } else {
            super::threads().min(batch / super::MIN_PART_ROWS).max(1)
        };
        let part = batch.div_ceil(threads);
        let ranges: Vec<Range<usize>> = (0..batch)
            .step_by(part)
            .map(|b0| b0..(b0 + part).min(batch))
            .collect();
        let pass = Pass {
            out,
            grad,
            w_hh,
            packed: packed.as_ref(),
            seq,
            batch,
        };
        let run = |rows: Range<usize>| self.through_time_part(&pass, rows);
        let parts: Vec<(Vec<T>, Vec<T>)> =
            std::thread::scope(|scope| {
                let spawned: Vec<_> = ranges[1..]
                    .iter()
                    .map(|rows| {
                        let rows = rows.clone();
                        scope.spawn(move || run(rows))
                    })
                    .collect();
                let mut parts = vec![run(ranges[0].clone())];
                for handle in spawned {
                    parts.push(handle.join().map_err(|_| {
                        candle_core::Error::Msg("a backward thread panicked".into())
                    })?);
                }
                Ok::<_, candle_core::Error>(parts)
            })?;
        let rows = batch * hidden;
        let mut d_pre = vec![T::ZERO; seq * rows];
        let mut dh0 = vec![T::ZERO; rows];
        for (range, (part_pre, part_dh)) in ranges.iter().zip(&parts) {
            let (start, len) = (range.start * hidden, range.len() * hidden);
            for t in 0..seq {
                d_pre[t * rows + start..t * rows + start + len]
                    .copy_from_slice(&part_pre[t * len..(t + 1) * len]);
            }
            dh0[start..start + len].copy_from_slice(part_dh);
        }
        Ok((d_pre, dh0))
    }

    /// [`Recurrence::through_time`] for the sequences `rows`: their `δPre` `[T, rows, H]` and
    /// `dh0` `[rows, H]`.
    fn through_time_part<T: Element>(
        &self,
        pass: &Pass<T>,
        rows: Range<usize>,
    ) -> (Vec<T>, Vec<T>) {
        let Pass {
            out,
            grad,
            w_hh,
            packed,
            seq,
            batch,
        } = *pass;
        let hidden = self.hidden;
        let all = batch * hidden;
        let (first, len) = (rows.start * hidden, rows.len() * hidden);
        let one = T::from_f64(1.0);
        let mut dh = grad[seq * all + first..seq * all + first + len].to_vec();
        let mut d_pre = vec![T::ZERO; seq * len];
        let mut back = vec![T::ZERO; len];
        for s in (0..seq).rev() {
            let t = if matches!(self.direction, Direction::Backward) {
                seq - 1 - s
            } else {
                s
            };
            let y = &out[t * all + first..t * all + first + len];
            let g = &grad[t * all + first..t * all + first + len];
            let d = &mut d_pre[t * len..(t + 1) * len];
            for (r, _) in rows.clone().enumerate().filter(|&(_, b)| self.valid(t, b)) {
                for j in r * hidden..(r + 1) * hidden {
                    let total = dh[j] + g[j];
                    d[j] = if self.activation == Fused::Relu {
                        if y[j] > T::ZERO {
                            total
                        } else {
                            T::ZERO
                        }
                    } else {
                        total * (one - y[j] * y[j])
                    };
                }
            }
            back.fill(T::ZERO);
            match packed {
                Some(p) => kernels::packed_gemm_acc(&mut back, d, p),
                None => kernels::small_gemm_acc(self.level, &mut back, d, w_hh, hidden, hidden),
            }
            for (r, _) in rows.clone().enumerate().filter(|&(_, b)| self.valid(t, b)) {
                let r = r * hidden..(r + 1) * hidden;
                dh[r.clone()].copy_from_slice(&back[r]);
            }
        }
        (d_pre, dh)
    }

    /// The state each step started from, `[T·B, H]`: `h0` for a sequence's first step, else
    /// the output of the step computed before it (all but one step's outputs, shifted by one
    /// step; backwards, a shorter sequence's first step is patched to `h0`).
    fn previous_states<T: Element>(&self, out: &[T], h0: &[T], seq: usize, batch: usize) -> Vec<T> {
        let rows = batch * self.hidden;
        let mut prev = vec![T::ZERO; seq * rows];
        let shifted = (seq - 1) * rows;
        if matches!(self.direction, Direction::Backward) {
            prev[..shifted].copy_from_slice(&out[rows..seq * rows]);
            prev[shifted..].copy_from_slice(h0);
            for (b, &len) in self.lengths.iter().flatten().enumerate() {
                if (1..seq).contains(&len) {
                    let (at, r) = ((len - 1) * rows + b * self.hidden, b * self.hidden);
                    prev[at..at + self.hidden].copy_from_slice(&h0[r..r + self.hidden]);
                }
            }
        } else {
            prev[..rows].copy_from_slice(h0);
            prev[rows..].copy_from_slice(&out[..shifted]);
        }
        prev
    }

    pub(crate) fn backward<T: Element>(
        &self,
        x: &Tensor,
        h0: &Tensor,
        weights: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (seq, batch, _) = x.dims3()?;
        let (input, hidden) = (self.input_size, self.hidden);
        let weights = weights.detach();
        let w_ih = weights.narrow(1, 0, input)?.contiguous()?;
        let w_hh = weights.narrow(1, input, hidden)?.contiguous()?;
        let x = x.detach().contiguous()?;
        let (res, grad, h0) = (res.contiguous()?, grad.contiguous()?, h0.contiguous()?);
        let (d_pre, dh0) = with_slice::<T, _>(&res, |out| {
            with_slice::<T, _>(&grad, |g| {
                with_slice::<T, _>(&w_hh, |w| self.through_time(out, g, w, seq, batch))
            })
        })?;
        let h_prev = with_slice::<T, _>(&res, |out| {
            with_slice::<T, _>(&h0, |h0| Ok(self.previous_states(out, h0, seq, batch)))
        })?;
        let level = self.level;
        let steps = seq * batch;
        // dW_ih = δPreᵀ · X `[H, I]`, dW_hh = δPreᵀ · H_prev `[H, H]`.
        let d_pre_t = transpose(&d_pre, steps, hidden);
        let mut d_w_ih = vec![T::ZERO; hidden * input];
        with_slice::<T, _>(&x, |x| {
            product(level, &mut d_w_ih, &d_pre_t, x, steps, input);
            Ok(())
        })?;
        let mut d_w_hh = vec![T::ZERO; hidden * hidden];
        product(level, &mut d_w_hh, &d_pre_t, &h_prev, steps, hidden);
        // [dW_ih | dW_hh | db_ih | db_hh], the biases' columns each row of δPreᵀ summed.
        let width = input + hidden;
        let columns = width + self.bias_columns;
        let mut d_all = vec![T::ZERO; hidden * columns];
        for j in 0..hidden {
            let row = &mut d_all[j * columns..(j + 1) * columns];
            row[..input].copy_from_slice(&d_w_ih[j * input..(j + 1) * input]);
            row[input..width].copy_from_slice(&d_w_hh[j * hidden..(j + 1) * hidden]);
            let sum = d_pre_t[j * steps..(j + 1) * steps]
                .iter()
                .fold(T::ZERO, |acc, &v| acc + v);
            row[width..].fill(sum);
        }
        // dx = δPre · W_ih: `[T·B, I]`.
        let mut d_x = vec![T::ZERO; steps * input];
        with_slice::<T, _>(&w_ih, |w| {
            product(level, &mut d_x, &d_pre, w, hidden, input);
            Ok(())
        })?;
        let cpu = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(d_x, (seq, batch, input), &cpu)?),
            Some(Tensor::from_vec(dh0, (batch, hidden), &cpu)?),
            Some(Tensor::from_vec(d_all, (hidden, columns), &cpu)?),
        ))
    }
}

/// `m` `[rows, cols]` transposed: `[cols, rows]`, in tiles that stay in the L1 cache.
fn transpose<T: Element>(m: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 32;
    let mut t = vec![T::ZERO; m.len()];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    t[c * rows + r] = m[r * cols + c];
                }
            }
        }
    }
    t
}

/// `out += lhs · rhs` (`lhs` `[m, k]`, `rhs` `[k, n]`, row-major) on the forward's kernels:
/// `rhs` packed for the level's micro-kernel (or the row-wise loops without one), the rows of
/// `out` split between threads.
fn product<T: Element>(
    level: KernelLevel,
    out: &mut [T],
    lhs: &[T],
    rhs: &[T],
    k: usize,
    n: usize,
) {
    if n == 0 || out.is_empty() {
        return;
    }
    let m = out.len() / n;
    let packed = PackedB::new(level, rhs, k, n);
    let threads = if m * n * k < super::SPLIT_MIN_MACS {
        1
    } else {
        super::threads().min(m).max(1)
    };
    let part = m.div_ceil(threads);
    let run = |out: &mut [T], lhs: &[T]| match &packed {
        Some(p) => kernels::packed_gemm_acc(out, lhs, p),
        None => kernels::small_gemm_acc(level, out, lhs, rhs, k, n),
    };
    std::thread::scope(|scope| {
        let mut parts = out.chunks_mut(part * n).zip(lhs.chunks(part * k));
        let first = parts.next();
        for (out, lhs) in parts {
            scope.spawn(move || run(out, lhs));
        }
        if let Some((out, lhs)) = first {
            run(out, lhs);
        }
    });
}

impl CustomOp3 for Recurrence {
    fn name(&self) -> &'static str {
        "rnn-recurrence"
    }

    /// The forward computed before: its output and `h_n` copied into one buffer.
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (seq, batch, hidden) = self.output.dims3()?;
        let storage = match self.output.dtype() {
            DType::F32 => CpuStorage::F32(self.stacked()?),
            DType::F64 => CpuStorage::F64(self.stacked()?),
            other => {
                return Err(candle_core::Error::Msg(format!(
                    "the recurrence's backward runs in f32 or f64, not {other:?}"
                )))
            }
        };
        Ok((storage, Shape::from((seq + 1, batch, hidden))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        h0: &Tensor,
        weights: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        match res.dtype() {
            DType::F32 => self.backward::<f32>(x, h0, weights, res, grad_res),
            DType::F64 => self.backward::<f64>(x, h0, weights, res, grad_res),
            other => Err(candle_core::Error::Msg(format!(
                "the recurrence's backward runs in f32 or f64, not {other:?}"
            ))),
        }
    }
}
