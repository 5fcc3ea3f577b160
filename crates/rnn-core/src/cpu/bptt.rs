//! Backpropagation through time for the fused path: one layer and direction's recurrence as a
//! candle [`CustomOp3`], so that a run whose input, `h0` or weights track gradients computes
//! its forward with the fused kernels and its backward in one pass over the steps, instead of
//! candle differentiating a graph of `3 · seq_len` small operations.
//!
//! The operation's arguments are the input `x` `[T, B, I]`, `h0` `[B, H]` and every weight in
//! one tensor `[W_ih | W_hh | b_ih | b_hh]` `[H, I + H + biases]` (a `cat`, whose gradient
//! candle splits back); its result is the outputs `[T, B, H]`. `h_n` is a second operation
//! ([`LastState`]) on the outputs and `h0`, whose backward adds its gradient to the output
//! each sequence's `h_n` is (to `h0`'s for an empty sequence); a loss on the outputs alone
//! never runs it. The forward was computed before the operations were made (the fused path,
//! the same numbers as inference) and each hands its part over without a copy.
//!
//! The backward, for the loss gradients `G_t` of the outputs, with `y_t` the output at step
//! `t`, `act'` from the output (`1 − y²` for tanh, `y > 0` for relu):
//! - going back over the steps in the reverse of the order they were computed, with `δh = 0`
//!   first: `δpre_t = (δh + G_t) ⊙ act'(y_t)`, then `[δh | dx_t] = δpre_t · [W_hh | W_ih]`
//!   (one product); a step past a sequence's length passes `δh` through unchanged and has
//!   `δpre = 0`; each step's `δpre_t` is stored transposed, into `δPreᵀ` `[H, T·B]`;
//! - then, over all steps at once: `[dW_ih | dW_hh] = δPreᵀ · [X | H_prev]` (each step's
//!   input and previous state, packed for the micro-kernel straight from `x`, `h0` and the
//!   outputs), `db_ih = db_hh = Σ δPre`; `dh0` is the last `δh`.
//!
//! Every product runs on the forward's micro-kernels (the generic level's row-wise loops
//! where there is none): each step's with the batch split between threads, the weights'
//! with its rows split between threads.

use std::ops::Range;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use candle_nn::rnn::Direction;

use super::kernels::{self, PackedB};
use super::level::KernelLevel;
use super::{with_slice, Element, Fused};

/// One layer and direction's recurrence, its forward already computed.
pub(crate) struct Recurrence {
    /// The fused forward's output, `[seq_len, batch, hidden]`, until the operation's forward
    /// hands it over as its result.
    pub output: Mutex<Option<CpuStorage>>,
    pub input_size: usize,
    pub hidden: usize,
    /// How many bias columns follow the weights in the weights argument (0, 1 or 2).
    pub bias_columns: usize,
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
    /// The forward's outputs `[T, B, H]`.
    out: &'a [T],
    /// Their gradient, the same shape.
    grad: &'a [T],
    /// The input `[T, B, I]` and `h0` `[B, H]`.
    x: &'a [T],
    h0: &'a [T],
    /// `[W_hh | W_ih]` `[H, H + I]`, and packed for the level's micro-kernel where it has
    /// one: `δpre_t` times it is `δh` and `dx_t` in one product.
    back: &'a [T],
    packed: Option<&'a PackedB<T>>,
    /// Columns per panel of [`Inputs`].
    panel: usize,
    seq: usize,
    batch: usize,
}

impl<T: Element> Clone for Pass<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Element> Copy for Pass<'_, T> {}

/// What one thread of the backward's loop writes, for the sequences `rows`.
struct Part<'a, T> {
    rows: Range<usize>,
    /// Their entries of each column of `δPreᵀ` `[H, T·B]`: block `h · seq + t` for unit `h`
    /// and step `t` ([`block`]).
    d_pre_t: Vec<&'a mut [T]>,
    /// Their rows of `dx` at each step `[rows, I]`: block `t` (none when `I` is 0).
    d_x: Vec<&'a mut [T]>,
    /// Their rows of [`Inputs`] in each panel at each step `[rows, panel]`: block
    /// `p · seq + t`.
    inputs: Vec<&'a mut [T]>,
    /// Their rows of `dh0` `[rows, H]`: the running `δh`, zero first.
    dh: &'a mut [T],
}

/// `[X | H_prev]` `[T·B, I + H]`, each step's input and the state it started from: the
/// right-hand side of the weights' gradient, packed for the level's micro-kernel, or
/// row-major where it has none (one panel as wide as the matrix).
enum Inputs<T> {
    Packed(PackedB<T>),
    Plain(Vec<T>),
}

impl<T: Element> Inputs<T> {
    fn new(level: KernelLevel, k: usize, n: usize) -> Self {
        PackedB::zeroed(level, k, n).map_or_else(|| Self::Plain(vec![T::ZERO; k * n]), Self::Packed)
    }

    /// Columns per panel, and the panels (see [`PackedB::panels_mut`]).
    fn panels(&mut self, n: usize) -> (usize, &mut [T]) {
        match self {
            Self::Packed(p) => (p.width(), p.panels_mut()),
            Self::Plain(v) => (n, v),
        }
    }
}

/// The gradients of one recurrence's arguments, flat: `dx` `[T·B·I]`, `dh0` `[B·H]`, and
/// `[dW_ih | dW_hh | db_ih | db_hh]` `[H, I + H + biases]`.
type Gradients<T> = (Vec<T>, Vec<T>, Vec<T>);

/// What the backward's loop gives: `δPreᵀ` `[H, T·B]`, `dx` `[T·B·I]`, `dh0` `[B·H]`, and
/// `[X | H_prev]`.
type ThroughTime<T> = (Vec<T>, Vec<T>, Vec<T>, Inputs<T>);

impl Recurrence {
    /// Whether step `t` is within sequence `b`.
    fn valid(&self, t: usize, b: usize) -> bool {
        self.lengths.as_ref().is_none_or(|l| t < l[b])
    }

    /// The state step `t` of sequence `b` started from: `h0` for the sequence's first step,
    /// else the output of the step computed before it.
    fn previous<'a, T: Element>(&self, pass: &Pass<'a, T>, t: usize, b: usize) -> &'a [T] {
        let (hidden, seq) = (self.hidden, pass.seq);
        let backward = matches!(self.direction, Direction::Backward);
        let first = if backward {
            t + 1 == seq || self.lengths.as_ref().is_some_and(|l| l[b] == t + 1)
        } else {
            t == 0
        };
        if first {
            return &pass.h0[b * hidden..(b + 1) * hidden];
        }
        let before = if backward { t + 1 } else { t - 1 };
        let at = (before * pass.batch + b) * hidden;
        &pass.out[at..at + hidden]
    }

    /// Every gradient, from the forward's result `out`, its gradient `grad`, the input `x`
    /// `[T·B·I]`, `h0` `[B·H]` and the weights argument `[H, I + H + biases]`.
    fn gradients<T: Element>(
        &self,
        (out, grad): (&[T], &[T]),
        (x, h0): (&[T], &[T]),
        weights: &[T],
        (seq, batch): (usize, usize),
    ) -> Result<Gradients<T>> {
        let (input, hidden) = (self.input_size, self.hidden);
        let steps = seq * batch;
        let (d_pre_t, d_x, dh0, inputs) =
            self.through_time((out, grad), (x, h0), weights, (seq, batch))?;
        // [dW_ih | dW_hh] = δPreᵀ · [X | H_prev]: `[H, T·B] · [T·B, I + H]`.
        let width = input + hidden;
        let mut d_w = vec![T::ZERO; hidden * width];
        if steps > 0 {
            match &inputs {
                Inputs::Packed(packed) => product(&mut d_w, &d_pre_t, steps, width, |o, l| {
                    kernels::packed_gemm_acc(o, l, packed)
                }),
                Inputs::Plain(rhs) => product(&mut d_w, &d_pre_t, steps, width, |o, l| {
                    kernels::small_gemm_acc(self.level, o, l, rhs, steps, width)
                }),
            }
        }
        // [dW_ih | dW_hh | db_ih | db_hh], the biases' columns each row of δPreᵀ summed.
        let columns = width + self.bias_columns;
        let mut d_all = vec![T::ZERO; hidden * columns];
        for j in 0..hidden {
            let row = &mut d_all[j * columns..(j + 1) * columns];
            row[..width].copy_from_slice(&d_w[j * width..(j + 1) * width]);
            row[width..].fill(sum(&d_pre_t[j * steps..(j + 1) * steps]));
        }
        Ok((d_x, dh0, d_all))
    }

    /// The backward's loop over the steps. The sequences are independent, so the batch is
    /// split between threads, each running every step of its part (as the forward does) and
    /// writing its entries of what it gives.
    fn through_time<T: Element>(
        &self,
        (out, grad): (&[T], &[T]),
        (x, h0): (&[T], &[T]),
        weights: &[T],
        (seq, batch): (usize, usize),
    ) -> Result<ThroughTime<T>> {
        let (input, hidden, level) = (self.input_size, self.hidden, self.level);
        // [W_hh | W_ih], from the rows of [W_ih | W_hh | biases].
        let columns = input + hidden + self.bias_columns;
        let back: Vec<T> = weights
            .chunks(columns.max(1))
            .take(hidden)
            .flat_map(|row| row[input..input + hidden].iter().chain(&row[..input]))
            .copied()
            .collect();
        let width = hidden + input;
        let packed = PackedB::new(level, &back, hidden, width);
        // As many threads as the forward of the same shape takes.
        let threads = super::batch_threads((seq, batch, input, hidden), super::threads());
        let share = batch.div_ceil(threads).max(1);
        let steps = seq * batch;
        let mut d_pre_t = vec![T::ZERO; hidden * steps];
        let mut d_x = vec![T::ZERO; steps * input];
        let mut dh0 = vec![T::ZERO; batch * hidden];
        let mut inputs = Inputs::new(level, steps, width);
        let mut parts: Vec<Part<T>> = Vec::new();
        let mut dh_rest = dh0.as_mut_slice();
        for b0 in (0..batch).step_by(share) {
            let rows = b0..(b0 + share).min(batch);
            let (dh, rest) = dh_rest.split_at_mut(rows.len() * hidden);
            dh_rest = rest;
            parts.push(Part {
                rows,
                d_pre_t: Vec::new(),
                d_x: Vec::new(),
                inputs: Vec::new(),
                dh,
            });
        }
        deal(&mut d_pre_t, 1, &mut parts, |p| &mut p.d_pre_t);
        deal(&mut d_x, input, &mut parts, |p| &mut p.d_x);
        let (panel, panels) = inputs.panels(width);
        deal(panels, panel, &mut parts, |p| &mut p.inputs);
        let pass = Pass {
            out,
            grad,
            x,
            h0,
            back: &back,
            packed: packed.as_ref(),
            panel,
            seq,
            batch,
        };
        std::thread::scope(|scope| {
            let mut parts = parts.into_iter();
            let first = parts.next();
            let spawned: Vec<_> = parts
                .map(|part| scope.spawn(move || self.through_time_part(&pass, part)))
                .collect();
            if let Some(part) = first {
                self.through_time_part(&pass, part);
            }
            for handle in spawned {
                handle
                    .join()
                    .map_err(|_| candle_core::Error::Msg("a backward thread panicked".into()))?;
            }
            Ok::<_, candle_core::Error>(())
        })?;
        Ok((d_pre_t, d_x, dh0, inputs))
    }

    /// [`Recurrence::through_time`] for one part's sequences.
    fn through_time_part<T: Element>(&self, pass: &Pass<T>, part: Part<T>) {
        let Pass {
            out,
            grad,
            x,
            back,
            packed,
            panel,
            seq,
            batch,
            ..
        } = *pass;
        let Part {
            rows,
            mut d_pre_t,
            mut d_x,
            mut inputs,
            dh,
        } = part;
        let (input, hidden) = (self.input_size, self.hidden);
        let width = hidden + input;
        let all = batch * hidden;
        let (first, len, count) = (rows.start * hidden, rows.len() * hidden, rows.len());
        let one = T::from_f64(1.0);
        let mut d = vec![T::ZERO; len];
        let mut product = vec![T::ZERO; count * width];
        for s in (0..seq).rev() {
            let t = if matches!(self.direction, Direction::Backward) {
                seq - 1 - s
            } else {
                s
            };
            let y = &out[t * all + first..t * all + first + len];
            let g = &grad[t * all + first..t * all + first + len];
            for (r, b) in rows.clone().enumerate() {
                let at = r * hidden..(r + 1) * hidden;
                if !self.valid(t, b) {
                    d[at].fill(T::ZERO);
                    continue;
                }
                for j in at {
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
            // [δh | dx_t] = δpre_t · [W_hh | W_ih].
            match packed {
                Some(p) => kernels::packed_gemm(&mut product, &d, p),
                None => {
                    product.fill(T::ZERO);
                    kernels::small_gemm_acc(self.level, &mut product, &d, back, hidden, width);
                }
            }
            for (r, b) in rows.clone().enumerate() {
                let row = &product[r * width..(r + 1) * width];
                if self.valid(t, b) {
                    dh[r * hidden..(r + 1) * hidden].copy_from_slice(&row[..hidden]);
                }
                if !d_x.is_empty() {
                    let d_x = block(&mut d_x, t, count * input);
                    d_x[r * input..(r + 1) * input].copy_from_slice(&row[hidden..]);
                }
                // This row of [X | H_prev], into its panels.
                let at = (t * batch + b) * input;
                let mut j = 0;
                for mut source in [&x[at..at + input], self.previous(pass, t, b)] {
                    while !source.is_empty() {
                        let (p, c) = (j / panel, j % panel);
                        let take = (panel - c).min(source.len());
                        let dst =
                            &mut block(&mut inputs, p * seq + t, count * panel)[r * panel + c..];
                        dst[..take].copy_from_slice(&source[..take]);
                        source = &source[take..];
                        j += take;
                    }
                }
            }
            // δpre_t into δPreᵀ: each column along these sequences.
            for h in 0..hidden {
                let column = block(&mut d_pre_t, h * seq + t, count);
                for (v, row) in column.iter_mut().zip(d.chunks_exact(hidden)) {
                    *v = row[h];
                }
            }
        }
    }

    pub(crate) fn backward<T: Element>(
        &self,
        x: &Tensor,
        h0: &Tensor,
        weights: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (seq, batch, input) = x.dims3()?;
        let dims = (seq, batch);
        let x = x.detach().contiguous()?;
        let weights = weights.detach().contiguous()?;
        let (res, grad, h0) = (res.contiguous()?, grad.contiguous()?, h0.contiguous()?);
        let (d_x, dh0, d_all) = with_slice::<T, _>(&res, |out| {
            with_slice::<T, _>(&grad, |g| {
                with_slice::<T, _>(&x, |x| {
                    with_slice::<T, _>(&h0, |h0| {
                        with_slice::<T, _>(&weights, |w| self.gradients((out, g), (x, h0), w, dims))
                    })
                })
            })
        })?;
        let cpu = Device::Cpu;
        let columns = input + self.hidden + self.bias_columns;
        Ok((
            Some(Tensor::from_vec(d_x, (seq, batch, input), &cpu)?),
            Some(Tensor::from_vec(dh0, (batch, self.hidden), &cpu)?),
            Some(Tensor::from_vec(d_all, (self.hidden, columns), &cpu)?),
        ))
    }
}

/// Hands each part its rows of `buffer`: in blocks of `batch` rows of `row` elements, each
/// block cut between the parts by their rows and pushed to the list `list` picks; a part
/// alone takes the whole buffer as one slice (a slice per block would take 16 bytes for as
/// few as 4 of data), which [`block`] cuts.
fn deal<'a, T>(
    buffer: &'a mut [T],
    row: usize,
    parts: &mut [Part<'a, T>],
    list: for<'p> fn(&'p mut Part<'a, T>) -> &'p mut Vec<&'a mut [T]>,
) {
    let block = parts.iter().map(|p| p.rows.len()).sum::<usize>() * row;
    if block == 0 {
        return;
    }
    if let [part] = parts {
        list(part).push(buffer);
        return;
    }
    for block in buffer.chunks_mut(block) {
        let mut rest = block;
        for part in parts.iter_mut() {
            let (mine, after) = rest.split_at_mut(part.rows.len() * row);
            list(part).push(mine);
            rest = after;
        }
    }
}

/// Block `index` (of `len` elements) of a part's list from [`deal`]: its own slice, or its
/// piece of the one slice a part alone has.
fn block<'s, T>(list: &'s mut [&mut [T]], index: usize, len: usize) -> &'s mut [T] {
    match list {
        [whole] => &mut whole[index * len..(index + 1) * len],
        blocks => &mut *blocks[index],
    }
}

/// The sum of `values`, in 16 lanes (element `i` into lane `i mod 16`, the lanes added in
/// order at the end), which the compiler can keep in vector registers.
fn sum<T: Element>(values: &[T]) -> T {
    let mut lanes = [T::ZERO; 16];
    let chunks = values.chunks_exact(16);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(rest) {
        *lane += v;
    }
    lanes.iter().fold(T::ZERO, |acc, &lane| acc + lane)
}

/// `out += lhs · rhs` (`lhs` `[m, k]`, `rhs` `[k, n]`, row-major) by `run(out, lhs)` on
/// parts of the rows, which are split between threads.
fn product<T: Element>(
    out: &mut [T],
    lhs: &[T],
    k: usize,
    n: usize,
    run: impl Fn(&mut [T], &[T]) + Sync,
) {
    if n == 0 || out.is_empty() {
        return;
    }
    let m = out.len() / n;
    let threads = if m * n * k < super::SPLIT_MIN_MACS {
        1
    } else {
        super::threads().min(m).max(1)
    };
    let part = m.div_ceil(threads);
    let run = &run;
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

    /// The forward computed before: its output, handed over.
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        x: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (seq, batch, _) = x.shape().dims3()?;
        Ok((take(&self.output)?, Shape::from((seq, batch, self.hidden))))
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

/// A forward's result held for the one forward call of its operation, which takes it.
fn take(held: &Mutex<Option<CpuStorage>>) -> Result<CpuStorage> {
    held.lock()
        .ok()
        .and_then(|mut held| held.take())
        .ok_or_else(|| {
            candle_core::Error::Msg("a recorded forward's result was taken twice".into())
        })
}

/// `h_n` of a recorded recurrence ([`Recurrence`]), from its outputs `[T, B, H]` and `h0`
/// `[B, H]`: each sequence's output at the step it was computed last (`T − 1`, or its
/// length − 1; step 0 for a backward run), `h0` for an empty sequence.
pub(crate) struct LastState {
    /// The fused forward's `h_n` `[batch, hidden]`, until the operation's forward hands it
    /// over as its result.
    pub h_n: Mutex<Option<CpuStorage>>,
    pub hidden: usize,
    pub direction: Direction,
    /// Each sequence's length; `None`: all `seq_len`.
    pub lengths: Option<Vec<usize>>,
}

impl LastState {
    /// The step whose output is sequence `b`'s `h_n`; `None`: it is `h0`.
    fn last_step(&self, seq: usize, b: usize) -> Option<usize> {
        let len = self.lengths.as_ref().map_or(seq, |l| l[b]);
        match self.direction {
            _ if len == 0 => None,
            Direction::Backward => Some(0),
            Direction::Forward => Some(len - 1),
        }
    }

    /// The gradients of the outputs (`grad`'s rows at each sequence's last step, zero
    /// elsewhere) and of `h0` (`grad`'s rows of the empty sequences).
    fn backward<T: Element>(
        &self,
        (seq, batch): (usize, usize),
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let hidden = self.hidden;
        let grad = grad.contiguous()?;
        let (d_out, d_h0) = with_slice::<T, _>(&grad, |g| {
            let mut d_out = vec![T::ZERO; seq * batch * hidden];
            let mut d_h0 = vec![T::ZERO; batch * hidden];
            for (b, g) in g.chunks(hidden.max(1)).take(batch).enumerate() {
                let dst = match self.last_step(seq, b) {
                    Some(t) => &mut d_out[(t * batch + b) * hidden..],
                    None => &mut d_h0[b * hidden..],
                };
                dst[..hidden].copy_from_slice(g);
            }
            Ok((d_out, d_h0))
        })?;
        let cpu = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(d_out, (seq, batch, hidden), &cpu)?),
            Some(Tensor::from_vec(d_h0, (batch, hidden), &cpu)?),
        ))
    }
}

impl CustomOp2 for LastState {
    fn name(&self) -> &'static str {
        "rnn-last-state"
    }

    /// The forward's `h_n`, handed over.
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        output: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, batch, hidden) = output.shape().dims3()?;
        Ok((take(&self.h_n)?, Shape::from((batch, hidden))))
    }

    fn bwd(
        &self,
        output: &Tensor,
        _: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (seq, batch, _) = output.dims3()?;
        match grad.dtype() {
            DType::F32 => self.backward::<f32>((seq, batch), grad),
            DType::F64 => self.backward::<f64>((seq, batch), grad),
            other => Err(candle_core::Error::Msg(format!(
                "the recurrence's backward runs in f32 or f64, not {other:?}"
            ))),
        }
    }
}
