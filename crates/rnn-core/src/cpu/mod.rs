//! The CPU fast path: one layer, one direction, the whole recurrence as one fused operation on
//! the tensors' buffers.
//!
//! - The input projection of all steps is one matrix product, written straight into the output
//!   buffer.
//! - Each step adds `h·W_hhᵀ` into its slice of that buffer (a register-blocked loop for small
//!   products, the `gemm` crate's blocked, threaded GEMM for large ones), then adds the bias and
//!   applies the activation in the same pass (a vectorised rational tanh for f32).
//! - No allocation per step: the output buffer and one state buffer are all there is.
//!
//! The plain candle-ops implementation in `layer.rs` is the reference; tests hold this path
//! against it.

mod kernels;
mod tanh;

use std::ops::{Add, AddAssign, Mul};

use candle_core::{DType, Device, Result, Storage, Tensor, WithDType};

pub(crate) use tanh::tanh_f32;

/// The element types the fast path computes in.
pub(crate) trait Element:
    WithDType + Copy + Add<Output = Self> + AddAssign + Mul<Output = Self> + Send + Sync + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn relu(self) -> Self;
    fn fast_tanh(self) -> Self;
    /// The slice as f32, when `Self` is f32 (for kernels written for f32 only).
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn relu(self) -> Self {
        // NaN stays NaN (f32::max would turn it into 0).
        if self < 0.0 {
            0.0
        } else {
            self
        }
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        tanh_f32(self)
    }
    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn relu(self) -> Self {
        if self < 0.0 {
            0.0
        } else {
            self
        }
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        // f64 runs are the precise ones (1e-12 against the frameworks): the library's tanh.
        self.tanh()
    }
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

/// Multiply-adds from which the input projection goes to gemm's blocked, threaded GEMM; below,
/// the register-blocked loop wins.
const PROJECTION_GEMM_MIN_MACS: usize = 1 << 20;

/// Multiply-adds per step from which the recurrent product goes to gemm's GEMM (with all
/// threads). Measured here (docs/performance.md): at 1 M (batch 64, hidden 128) the
/// single-threaded micro-kernel took 3.2 ms for 100 steps where gemm took 6.2 ms with one
/// thread and 6.7 ms with two, and splitting the rows of each step over two threads was slower
/// still: a step is too short to wake a second thread. At 67 M (batch 256, hidden 512) gemm
/// with two threads wins.
const STEP_GEMM_MIN_MACS: usize = 1 << 22;

/// Whether the fast path handles tensors on `device` of `dtype`.
pub(crate) fn supports(device: &Device, dtype: DType) -> bool {
    device.is_cpu() && matches!(dtype, DType::F32 | DType::F64)
}

/// The shapes and options of one layer run.
pub(crate) struct Run<'a> {
    pub seq: usize,
    pub batch: usize,
    pub input_size: usize,
    pub hidden: usize,
    pub reverse: bool,
    pub relu: bool,
    pub lengths: Option<&'a [usize]>,
}

/// Runs one layer over `input` `[seq, batch, input_size]` (contiguous, time-major) with
/// `w_ih_t` `[input_size, hidden]`, `w_hh_t` `[hidden, hidden]`, optional `bias` `[hidden]`
/// and `h0` `[batch, hidden]`; returns `(output [seq, batch, hidden], h_n [batch, hidden])`.
/// Shapes are checked by the caller.
pub(crate) fn forward(
    run: &Run,
    input: &Tensor,
    w_ih_t: &Tensor,
    w_hh_t: &Tensor,
    bias: Option<&Tensor>,
    h0: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    match input.dtype() {
        DType::F32 => forward_typed::<f32>(run, input, w_ih_t, w_hh_t, bias, h0),
        DType::F64 => forward_typed::<f64>(run, input, w_ih_t, w_hh_t, bias, h0),
        other => Err(candle_core::Error::Msg(format!(
            "the CPU fast path computes in f32 or f64, not {other:?}"
        ))),
    }
}

fn forward_typed<T: Element>(
    run: &Run,
    input: &Tensor,
    w_ih_t: &Tensor,
    w_hh_t: &Tensor,
    bias: Option<&Tensor>,
    h0: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let device = input.device().clone();
    let input = input.contiguous()?;
    let h0 = h0.map(Tensor::contiguous).transpose()?;
    let (output, h_n) = with_slice::<T, _>(&input, |x| {
        with_slice::<T, _>(w_ih_t, |w_ih| {
            with_slice::<T, _>(w_hh_t, |w_hh| {
                with_optional_slice::<T, _>(bias, |bias| {
                    with_optional_slice::<T, _>(h0.as_ref(), |h0| {
                        Ok(recurrence(run, x, w_ih, w_hh, bias, h0))
                    })
                })
            })
        })
    })?;
    let hidden = run.hidden;
    Ok((
        Tensor::from_vec(output, (run.seq, run.batch, hidden), &device)?,
        Tensor::from_vec(h_n, (run.batch, hidden), &device)?,
    ))
}

/// Threads to use: candle's count (RAYON_NUM_THREADS, else the physical cores), read once.
/// candle reads /proc/cpuinfo on every call, which would cost a streamed step more than its
/// arithmetic.
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// The recurrence on plain buffers.
fn recurrence<T: Element>(
    run: &Run,
    x: &[T],
    w_ih: &[T],
    w_hh: &[T],
    bias: Option<&[T]>,
    h0: Option<&[T]>,
) -> (Vec<T>, Vec<T>) {
    let (seq, batch, hidden) = (run.seq, run.batch, run.hidden);
    let threads = threads();
    let step_len = batch * hidden;
    let mut output = vec![T::ZERO; seq * step_len];
    let mut h = match h0 {
        Some(h0) => h0.to_vec(),
        None => vec![T::ZERO; step_len],
    };
    let large_step = batch * hidden * hidden >= STEP_GEMM_MIN_MACS;
    let projection_macs = seq * batch * run.input_size * hidden;
    let mut state = StepState {
        run,
        w_hh,
        bias,
        h: &mut h,
        threads,
        large_step,
    };
    if threads > 1 && !large_step && seq > 1 && projection_macs >= PIPELINE_MIN_MACS {
        // A step's product is too small to share between threads, but the projection of later
        // steps is independent of it: one thread projects chunks of steps ahead while this
        // one runs the recurrence on those already projected.
        let chunk_steps = seq.div_ceil(PIPELINE_CHUNKS);
        let chunk_len = chunk_steps * step_len;
        let x_chunk = chunk_steps * batch * run.input_size;
        let (send, receive) = std::sync::mpsc::sync_channel::<(usize, &mut [T])>(PIPELINE_CHUNKS);
        std::thread::scope(|scope| {
            let output = &mut output;
            scope.spawn(move || {
                // The recurrence consumes steps in its own order: last first in reverse.
                let mut chunks: Vec<(usize, &mut [T])> =
                    output.chunks_mut(chunk_len).enumerate().collect();
                if run.reverse {
                    chunks.reverse();
                }
                for (c, out) in chunks {
                    let xs = &x[c * x_chunk..(c * x_chunk + out.len() / hidden * run.input_size)];
                    project(out, xs, w_ih, run.input_size, hidden, 1);
                    let first = c * chunk_steps;
                    let mut steps: Vec<(usize, &mut [T])> = out
                        .chunks_mut(step_len)
                        .enumerate()
                        .map(|(k, s)| (first + k, s))
                        .collect();
                    if run.reverse {
                        steps.reverse();
                    }
                    for step in steps {
                        if send.send(step).is_err() {
                            return;
                        }
                    }
                }
            });
            for (t, out) in receive.iter() {
                state.step(t, out);
            }
        });
    } else {
        project(&mut output, x, w_ih, run.input_size, hidden, threads);
        for i in 0..seq {
            let t = if run.reverse { seq - 1 - i } else { i };
            state.step(t, &mut output[t * step_len..(t + 1) * step_len]);
        }
    }
    (output, h)
}

/// Projections of at least this many multiply-adds are pipelined with the recurrence when
/// there are two threads or more (below, starting the second thread costs more than it saves).
const PIPELINE_MIN_MACS: usize = 1 << 23;

/// Chunks the pipelined projection is cut into: the recurrence waits for the first only.
const PIPELINE_CHUNKS: usize = 16;

/// `out = x·W_ihᵀ` for whole steps.
fn project<T: Element>(
    out: &mut [T],
    x: &[T],
    w_ih: &[T],
    input_size: usize,
    hidden: usize,
    threads: usize,
) {
    let rows = out.len() / hidden;
    if rows * input_size * hidden >= PROJECTION_GEMM_MIN_MACS {
        if !kernels::avx512_gemm_acc(out, x, w_ih, input_size, hidden, threads) {
            kernels::gemm_acc(out, x, w_ih, rows, input_size, hidden, false, threads);
        }
    } else {
        kernels::small_gemm_acc(out, x, w_ih, input_size, hidden);
    }
}

/// What one recurrent step needs besides its slice of the output.
struct StepState<'a, T> {
    run: &'a Run<'a>,
    w_hh: &'a [T],
    bias: Option<&'a [T]>,
    h: &'a mut [T],
    threads: usize,
    large_step: bool,
}

impl<T: Element> StepState<'_, T> {
    /// Step `t`: `out` holds `x_t·W_ihᵀ` and becomes `act(out + h·W_hhᵀ + b)`; the state follows
    /// it for the sequences still running.
    fn step(&mut self, t: usize, out: &mut [T]) {
        let (batch, hidden) = (self.run.batch, self.run.hidden);
        let (h, w_hh, threads) = (&*self.h, self.w_hh, self.threads);
        if self.large_step {
            if !kernels::avx512_gemm_acc(out, h, w_hh, hidden, hidden, threads) {
                kernels::gemm_acc(out, h, w_hh, batch, hidden, hidden, true, threads);
            }
        } else {
            kernels::small_gemm_acc(out, self.h, self.w_hh, hidden, hidden);
        }
        kernels::bias_activation(out, self.bias, self.run.relu);
        match self.run.lengths {
            None => self.h.copy_from_slice(out),
            Some(lengths) => {
                let rows = out
                    .chunks_exact_mut(hidden)
                    .zip(self.h.chunks_exact_mut(hidden));
                for ((out_row, h_row), &len) in rows.zip(lengths) {
                    if t < len {
                        h_row.copy_from_slice(out_row);
                    } else {
                        out_row.fill(T::ZERO);
                    }
                }
            }
        }
    }
}

/// Calls `f` with the tensor's elements, borrowed from its CPU storage (contiguous tensors
/// only).
fn with_slice<T: Element, R>(t: &Tensor, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(candle_core::Error::Msg(
            "the CPU fast path got a tensor off the CPU".into(),
        ));
    };
    let data: &[T] = <T as WithDType>::cpu_storage_as_slice(cpu)?;
    let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("the CPU fast path needs contiguous tensors".into())
    })?;
    f(&data[start..end])
}

fn with_optional_slice<T: Element, R>(
    t: Option<&Tensor>,
    f: impl FnOnce(Option<&[T]>) -> Result<R>,
) -> Result<R> {
    match t {
        Some(t) => with_slice(t, |s| f(Some(s))),
        None => f(None),
    }
}
