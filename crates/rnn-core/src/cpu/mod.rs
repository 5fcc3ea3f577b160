//! The CPU fast path: one layer, one direction, the whole recurrence as one fused operation on
//! the tensors' buffers.
//!
//! - With several threads the batch is split into parts, each run from its first step to its
//!   last by one thread, with no synchronisation between steps; a thread that has finished its
//!   own parts takes those another thread has not started.
//! - Each step computes `x_t·W_ihᵀ + h·W_hhᵀ` into its slice of the output as one product
//!   over the two weights, then bias and activation, fused into the product's last store
//!   with the AVX-512 or AVX2 micro-kernel (f32 and f64; weights packed on the layer's first
//!   run at that level; tanh as `tanh.rs` computes it, the same bits in registers and in
//!   scalar code), or as a separate pass after a row-wise register-blocked loop at the
//!   generic level. With only a few sequences, the input projection of every step is one product up
//!   front instead, summed in the same order. One sequence without lengths runs its whole
//!   recurrence in one kernel call at AVX2 or AVX-512 (in f32 the next step's projection summed
//!   beside each step's chain of multiply-adds, in f64 every step's projected first), again
//!   the same sums.
//! - Which kernels run is the run's [`level::KernelLevel`]; every product sums each element
//!   the same way whatever the rows it is given, so the thread count changes no number.
//! - The state is the previous step's output, read in place (with variable lengths, a state
//!   buffer updated row by row). Nothing is allocated per step: the output buffer, handed out
//!   piece by piece to the thread that fills it (written directly by the packed kernel,
//!   else zeroed first), and the state are allocated once per run.
//!
//! The plain candle-ops implementation in `layer.rs` is the reference; tests hold this path
//! against it.

pub(crate) mod bptt;
mod kernels;
pub mod level;
mod tanh;

use std::ops::{Add, AddAssign, Mul};

use std::sync::{Mutex, OnceLock, PoisonError};

use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor, WithDType};
use candle_nn::rnn::Direction;

use level::KernelLevel;
pub(crate) use tanh::{tanh_f32, tanh_f64};

/// The element types the fast path computes in: f32 and f64, each with its micro-kernels
/// ([`kernels::Kernel`]).
pub(crate) trait Element:
    WithDType
    + Copy
    + Add<Output = Self>
    + AddAssign
    + Mul<Output = Self>
    + Send
    + Sync
    + 'static
    + kernels::Kernel
{
    const ZERO: Self;
    fn relu(self) -> Self;
    fn fast_tanh(self) -> Self;
    /// This type's cells of a layer's packed weights.
    fn packed_cells(packed: &PackedWeights) -> &PackedCells<Self>;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
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
    fn packed_cells(packed: &PackedWeights) -> &PackedCells<Self> {
        &packed.f32
    }
}

impl Element for f64 {
    const ZERO: Self = 0.0;
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
        // f64 runs are the precise ones (1e-12 against the frameworks): within 3 ulp.
        tanh_f64(self)
    }
    fn packed_cells(packed: &PackedWeights) -> &PackedCells<Self> {
        &packed.f64
    }
}

/// Whether the fast path handles tensors on `device` of `dtype`.
pub(crate) fn supports(device: &Device, dtype: DType) -> bool {
    device.is_cpu() && matches!(dtype, DType::F32 | DType::F64)
}

/// The activations the fast path computes in its kernels: `torch.nn.RNN`'s two
/// ([`crate::Nonlinearity::fused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fused {
    Tanh,
    Relu,
}

/// The shapes and options of one layer run.
pub(crate) struct Run<'a> {
    pub seq: usize,
    pub batch: usize,
    pub input_size: usize,
    pub hidden: usize,
    /// `Backward`: the steps run from the last to the first.
    pub direction: Direction,
    pub activation: Fused,
    pub lengths: Option<&'a [usize]>,
    /// Threads the run may use ([`threads`] outside tests).
    pub threads: usize,
    /// The kernels to use ([`level::get`] outside tests, which pass it explicitly so that
    /// tests of different levels can run side by side).
    pub level: KernelLevel,
    /// The layer's packed weights, made by its first run at each level.
    pub packed: &'a PackedWeights,
}

/// A layer's `W_ihᵀ` and `W_hhᵀ` packed for a micro-kernel, once per level and element type
/// (the panels' widths differ); a layer has one dtype, so only one type's cells are used.
#[derive(Default)]
pub(crate) struct PackedWeights {
    f32: PackedCells<f32>,
    f64: PackedCells<f64>,
}

/// One element type's packed weights, per level with a micro-kernel (`None` inside where
/// the CPU lacks it).
#[derive(Default)]
pub(crate) struct PackedCells<T> {
    avx512: OnceLock<Option<PackedPair<T>>>,
    avx2: OnceLock<Option<PackedPair<T>>>,
}

struct PackedPair<T> {
    w_ih: kernels::PackedB<T>,
    w_hh: kernels::PackedB<T>,
}

impl PackedWeights {
    /// The weights packed for `level`'s micro-kernel, packed now if this is the first run at
    /// it; `None` where that level has none.
    fn get<'a, T: Element>(
        &'a self,
        run: &Run,
        w_ih: &[T],
        w_hh: &[T],
    ) -> Option<&'a PackedPair<T>> {
        let cells = T::packed_cells(self);
        let cell = match run.level {
            KernelLevel::Generic => return None,
            KernelLevel::Avx2 => &cells.avx2,
            KernelLevel::Avx512 => &cells.avx512,
        };
        let pack = || {
            Some(PackedPair {
                w_ih: kernels::PackedB::new(run.level, w_ih, run.input_size, run.hidden)?,
                w_hh: kernels::PackedB::new(run.level, w_hh, run.hidden, run.hidden)?,
            })
        };
        cell.get_or_init(pack).as_ref()
    }
}

impl std::fmt::Debug for PackedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn packed<T>(cell: &OnceLock<Option<PackedPair<T>>>) -> bool {
            matches!(cell.get(), Some(Some(_)))
        }
        f.debug_struct("PackedWeights")
            .field("avx512_f32", &packed(&self.f32.avx512))
            .field("avx2_f32", &packed(&self.f32.avx2))
            .field("avx512_f64", &packed(&self.f64.avx512))
            .field("avx2_f64", &packed(&self.f64.avx2))
            .finish()
    }
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
    let (output, h_n) = forward_storage(run, input, w_ih_t, w_hh_t, bias, h0)?;
    let device = input.device();
    let tensor = |storage, shape: &[usize]| match storage {
        CpuStorage::F32(v) => Tensor::from_vec(v, shape, device),
        CpuStorage::F64(v) => Tensor::from_vec(v, shape, device),
        _ => Err(candle_core::Error::Msg(
            "the CPU fast path computes in f32 or f64".into(),
        )),
    };
    Ok((
        tensor(output, &[run.seq, run.batch, run.hidden])?,
        tensor(h_n, &[run.batch, run.hidden])?,
    ))
}

/// [`forward`]'s output `[seq, batch, hidden]` and `h_n` `[batch, hidden]` as the buffers the
/// run wrote, for an operation that hands them over as its result (`bptt.rs`).
pub(crate) fn forward_storage(
    run: &Run,
    input: &Tensor,
    w_ih_t: &Tensor,
    w_hh_t: &Tensor,
    bias: Option<&Tensor>,
    h0: Option<&Tensor>,
) -> Result<(CpuStorage, CpuStorage)> {
    fn typed<T: Element>((output, h_n): (Vec<T>, Vec<T>)) -> Result<(CpuStorage, CpuStorage)> {
        Ok((
            T::to_cpu_storage_owned(output),
            T::to_cpu_storage_owned(h_n),
        ))
    }
    match input.dtype() {
        DType::F32 => typed(forward_typed::<f32>(run, input, w_ih_t, w_hh_t, bias, h0)?),
        DType::F64 => typed(forward_typed::<f64>(run, input, w_ih_t, w_hh_t, bias, h0)?),
        other => Err(candle_core::Error::Msg(format!(
            "the CPU fast path computes in f32 or f64, not {other:?}"
        ))),
    }
}

/// One step of a layer, `h' = act(x·W_ihᵀ + h·W_hhᵀ + bias)`, for `x` `[batch, input_size]`
/// and `h` `[batch, hidden]` with `run.seq` 1; returns `h'` `[batch, hidden]`. The bits are
/// those of a one-step [`forward`]: every path sums each element in the same order. A stream
/// calls this once per step, so it sets up nothing per call that [`forward`] would not need:
/// no output sequence, no `h_n` copy, no split between threads unless the batch is large
/// enough for [`forward`] to split it.
pub(crate) fn step(
    run: &Run,
    x: &Tensor,
    w_ih_t: &Tensor,
    w_hh_t: &Tensor,
    bias: Option<&Tensor>,
    h: &Tensor,
) -> Result<Tensor> {
    if threads_for(run, run.threads) > 1 {
        let (_, h_n) = forward(run, &x.unsqueeze(0)?, w_ih_t, w_hh_t, bias, Some(h))?;
        return Ok(h_n);
    }
    let (x, h) = (x.contiguous()?, h.contiguous()?);
    let shape = (run.batch, run.hidden);
    match x.dtype() {
        DType::F32 => Tensor::from_vec(
            step_typed::<f32>(run, &x, w_ih_t, w_hh_t, bias, &h)?,
            shape,
            x.device(),
        ),
        DType::F64 => Tensor::from_vec(
            step_typed::<f64>(run, &x, w_ih_t, w_hh_t, bias, &h)?,
            shape,
            x.device(),
        ),
        other => Err(candle_core::Error::Msg(format!(
            "the CPU fast path computes in f32 or f64, not {other:?}"
        ))),
    }
}

fn step_typed<T: Element>(
    run: &Run,
    x: &Tensor,
    w_ih_t: &Tensor,
    w_hh_t: &Tensor,
    bias: Option<&Tensor>,
    h: &Tensor,
) -> Result<Vec<T>> {
    with_slice::<T, _>(x, |x| {
        with_slice::<T, _>(w_ih_t, |w_ih| {
            with_slice::<T, _>(w_hh_t, |w_hh| {
                with_optional_slice::<T, _>(bias, |bias| {
                    with_slice::<T, _>(h, |h| {
                        let len = run.batch * run.hidden;
                        if len == 0 {
                            return Ok(Vec::new());
                        }
                        let packed = run.packed.get(run, w_ih, w_hh);
                        let weights = Weights::new(run, packed, w_ih, w_hh, bias);
                        Ok(kernels::written_where_used(len, |out| {
                            weights.step_into(out, x, h, run.activation);
                        }))
                    })
                })
            })
        })
    })
}

fn forward_typed<T: Element>(
    run: &Run,
    input: &Tensor,
    w_ih_t: &Tensor,
    w_hh_t: &Tensor,
    bias: Option<&Tensor>,
    h0: Option<&Tensor>,
) -> Result<(Vec<T>, Vec<T>)> {
    let input = input.contiguous()?;
    let h0 = h0.map(Tensor::contiguous).transpose()?;
    with_slice::<T, _>(&input, |x| {
        with_slice::<T, _>(w_ih_t, |w_ih| {
            with_slice::<T, _>(w_hh_t, |w_hh| {
                with_optional_slice::<T, _>(bias, |bias| {
                    with_optional_slice::<T, _>(h0.as_ref(), |h0| {
                        Ok(recurrence(run, x, w_ih, w_hh, bias, h0))
                    })
                })
            })
        })
    })
}

/// Threads to use: candle's count (RAYON_NUM_THREADS, else the physical cores), read once.
/// candle reads /proc/cpuinfo on every call, which would cost a streamed step more than its
/// arithmetic.
pub(crate) fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// Multiply-adds of a layer run from which its batch is split between threads: each thread
/// costs tens of microseconds to start, once per run.
const SPLIT_MIN_MACS: usize = 1 << 22;

/// The fewest sequences a thread takes: fewer leave the micro-kernel's rows unfilled.
const MIN_PART_ROWS: usize = 4;

/// How many threads share the batch.
fn threads_for(run: &Run, threads: usize) -> usize {
    batch_threads((run.seq, run.batch, run.input_size, run.hidden), threads)
}

/// How many of `threads` share the batch of a layer run of `(seq, batch, input_size,
/// hidden)` (the backward's loop splits its batch the same way).
fn batch_threads(
    (seq, batch, input_size, hidden): (usize, usize, usize, usize),
    threads: usize,
) -> usize {
    let macs = seq * batch * hidden * (input_size + hidden);
    if threads <= 1 || macs < SPLIT_MIN_MACS {
        return 1;
    }
    threads.min(batch / MIN_PART_ROWS).max(1)
}

/// Parts each thread's share of the batch is cut into, where each has at least
/// [`STEAL_MIN_ROWS`] sequences: a thread runs its own parts first, then takes those another
/// thread has not started, so a thread on a core that is slowed down (this project's
/// machine shares its host) does not leave its partner waiting at the end.
const PARTS_PER_THREAD: usize = 4;

/// The fewest sequences in a part that other threads may take.
const STEAL_MIN_ROWS: usize = 24;

/// Sequences per part: whole shares of the batch for one thread, else up to
/// [`PARTS_PER_THREAD`] parts per share.
fn part_rows(run: &Run, threads: usize) -> usize {
    let share = run.batch.div_ceil(threads).max(1);
    let parts = if threads > 1 {
        (share / STEAL_MIN_ROWS).clamp(1, PARTS_PER_THREAD)
    } else {
        1
    };
    share.div_ceil(parts)
}

/// Sequences below which one thread running the whole batch projects the inputs of every step
/// in one product before the recurrence (a few rows per step leave the micro-kernel's row
/// blocks empty); from it, each step computes its projection with its recurrent product.
const PROJECT_AHEAD_BELOW_ROWS: usize = 12;

/// The recurrence on plain buffers.
///
/// A sequence's states depend on nothing but its own inputs, so with several threads the
/// batch is split: each thread runs every step for its own sequences, from start to end, with
/// no waiting on the others in between.
fn recurrence<T: Element>(
    run: &Run,
    x: &[T],
    w_ih: &[T],
    w_hh: &[T],
    bias: Option<&[T]>,
    h0: Option<&[T]>,
) -> (Vec<T>, Vec<T>) {
    let (seq, batch, hidden) = (run.seq, run.batch, run.hidden);
    let step_len = batch * hidden;
    let mut h = match h0 {
        Some(h0) => h0.to_vec(),
        None => vec![T::ZERO; step_len],
    };
    if seq == 0 || step_len == 0 {
        return (vec![T::ZERO; seq * step_len], h);
    }
    let packed = run.packed.get(run, w_ih, w_hh);
    let weights = Weights::new(run, packed, w_ih, w_hh, bias);
    let threads = threads_for(run, run.threads);
    let part_rows = part_rows(run, threads);
    let weights = &weights;
    let output = kernels::written_where_used(seq * step_len, |output| {
        // Each part's rows of every step's output, in time order.
        let mut outputs: Vec<Vec<Out<T>>> = Vec::new();
        let project_ahead = threads == 1 && batch < PROJECT_AHEAD_BELOW_ROWS;
        // One sequence, where the level has a kernel for its whole recurrence.
        let output = match packed {
            Some(p) if batch == 1 && run.lengths.is_none() => {
                let backward = matches!(run.direction, Direction::Backward);
                let sequence = kernels::Sequence {
                    x,
                    w_ih: &p.w_ih,
                    h0: &h,
                    w_hh: &p.w_hh,
                    epilogue: kernels::Epilogue {
                        bias,
                        activation: run.activation,
                    },
                    backward,
                };
                match output.written_by_sequence(&sequence) {
                    Ok(output) => {
                        let last = if backward { 0 } else { seq - 1 };
                        h.copy_from_slice(&output[last * hidden..(last + 1) * hidden]);
                        return;
                    }
                    Err(output) => output,
                }
            }
            _ => output,
        };
        if project_ahead {
            // One part: the inputs of every step are contiguous, and one product projects them.
            let output = output.zeroed();
            // The same sums, in the same order, as a step's product over both weights.
            weights.w_ih.product(output, x);
            outputs.push(output.chunks_mut(step_len).map(Out::Projected).collect());
        } else {
            for step in output.chunks(step_len) {
                for (p, rows) in step.chunks(part_rows * hidden).enumerate() {
                    if p == outputs.len() {
                        outputs.push(Vec::with_capacity(seq));
                    }
                    outputs[p].push(Out::Blank(rows));
                }
            }
        }
        let parts = outputs
            .into_iter()
            .zip(h.chunks_mut(part_rows * hidden))
            .enumerate()
            .map(|(p, (steps, h))| Part {
                first: p * part_rows,
                steps,
                h,
            });
        if threads == 1 {
            parts.for_each(|part| part.run(run, x, weights));
        } else {
            run_shared(
                parts.map(|part| Mutex::new(Some(part))).collect(),
                threads,
                |part| part.run(run, x, weights),
            );
        }
    });
    (output, h)
}

/// Runs `parts` on `threads` threads: thread i takes its own share of them in order, then the
/// others' from their ends, each part once.
fn run_shared<P: Send>(parts: Vec<Mutex<Option<P>>>, threads: usize, run: impl Fn(P) + Sync) {
    let threads = threads.min(parts.len());
    let share = parts.len().div_ceil(threads.max(1));
    let work = |i: usize| {
        let own = (i * share..(i + 1) * share).filter(|&p| p < parts.len());
        let others = (1..threads).flat_map(|k| {
            let other = (i + k) % threads;
            (other * share..((other + 1) * share).min(parts.len())).rev()
        });
        for p in own.chain(others) {
            let part = parts[p]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(part) = part {
                run(part);
            }
        }
    };
    let work = &work;
    std::thread::scope(|scope| {
        for i in 1..threads {
            scope.spawn(move || work(i));
        }
        work(0);
    });
}

/// A right-hand matrix multiplied in every step: packed for the level's micro-kernel where it
/// has one (AVX2, AVX-512), else read in place.
///
/// Every product sums each output element the same way whatever the number of rows it is
/// given (in order over the shared dimension, from the value in `out`), so that how the batch
/// is split between threads, and whether the input projection runs ahead, changes no number.
/// (The `gemm` crate, which this path once called for large products, does not: its blocking
/// and its choice of kernel depend on the row count.)
enum Rhs<'a, T> {
    Packed(&'a kernels::PackedB<T>),
    Plain {
        data: &'a [T],
        k: usize,
        n: usize,
        level: KernelLevel,
    },
}

impl<'a, T: Element> Rhs<'a, T> {
    fn new(
        packed: Option<&'a kernels::PackedB<T>>,
        data: &'a [T],
        k: usize,
        n: usize,
        level: KernelLevel,
    ) -> Self {
        match packed {
            Some(packed) => Self::Packed(packed),
            None => Self::Plain { data, k, n, level },
        }
    }

    /// `out += lhs · self`, on this thread.
    fn product(&self, out: &mut [T], lhs: &[T]) {
        match self {
            Self::Packed(b) => kernels::packed_gemm_acc(out, lhs, b),
            Self::Plain { data, k, n, level } => {
                kernels::small_gemm_acc(*level, out, lhs, data, *k, *n);
            }
        }
    }
}

/// What every step of a layer multiplies by and adds.
struct Weights<'a, T> {
    w_ih: Rhs<'a, T>,
    w_hh: Rhs<'a, T>,
    bias: Option<&'a [T]>,
    level: KernelLevel,
}

impl<'a, T: Element> Weights<'a, T> {
    /// A layer's weights for `run`: packed where the level has a micro-kernel (`packed`),
    /// else read in place.
    fn new(
        run: &Run,
        packed: Option<&'a PackedPair<T>>,
        w_ih: &'a [T],
        w_hh: &'a [T],
        bias: Option<&'a [T]>,
    ) -> Self {
        let (hidden, level) = (run.hidden, run.level);
        Weights {
            w_ih: Rhs::new(packed.map(|p| &p.w_ih), w_ih, run.input_size, hidden, level),
            w_hh: Rhs::new(packed.map(|p| &p.w_hh), w_hh, hidden, hidden, level),
            bias,
            level,
        }
    }

    /// One step into `out`, not yet written: `out = act(x·W_ih + h·W_hh + bias)`. The packed
    /// kernel writes it directly; otherwise it is zeroed first.
    fn step_into<'o>(
        &self,
        out: kernels::Blank<'o, T>,
        x: &[T],
        h: &[T],
        activation: Fused,
    ) -> &'o mut [T] {
        if let (Rhs::Packed(w_ih), Rhs::Packed(w_hh)) = (&self.w_ih, &self.w_hh) {
            return out.written_by_step((x, w_ih), (h, w_hh), self.bias, activation);
        }
        let out = out.zeroed();
        self.step(out, Some(x), h, activation);
        out
    }

    /// One step into `out` (zeroed, or holding the projection when `x` is `None`):
    /// `out = act(out + x·W_ih + h·W_hh + bias)`.
    fn step(&self, out: &mut [T], x: Option<&[T]>, h: &[T], activation: Fused) {
        if let (Rhs::Packed(w_ih), Rhs::Packed(w_hh)) = (&self.w_ih, &self.w_hh) {
            kernels::packed_step(out, x.map(|x| (x, *w_ih)), (h, w_hh), self.bias, activation);
            return;
        }
        if let Some(x) = x {
            self.w_ih.product(out, x);
        }
        self.w_hh.product(out, h);
        kernels::bias_activation(self.level, out, self.bias, activation);
    }
}

/// A part's rows of one step's output: not yet written, or holding the step's projection.
enum Out<'o, T: Element> {
    Blank(kernels::Blank<'o, T>),
    Projected(&'o mut [T]),
}

/// The sequences `first..` of the batch that one thread runs: their rows of each step's
/// output (time order) and of the state.
struct Part<'o, T: Element> {
    first: usize,
    steps: Vec<Out<'o, T>>,
    h: &'o mut [T],
}

impl<T: Element> Part<'_, T> {
    fn run(self, run: &Run, x: &[T], weights: &Weights<T>) {
        let Part {
            first,
            mut steps,
            h,
        } = self;
        let (batch, input_size, hidden) = (run.batch, run.input_size, run.hidden);
        let (b0, b1) = (first, first + h.len() / hidden);
        let lengths = run.lengths.map(|l| &l[b0..b1]);
        let seq = steps.len();
        if matches!(run.direction, Direction::Backward) {
            steps.reverse();
        }
        // The previous step's output, which is the state where no sequence has ended.
        let mut previous: Option<&[T]> = None;
        for (i, out) in steps.into_iter().enumerate() {
            let t = if matches!(run.direction, Direction::Backward) {
                seq - 1 - i
            } else {
                i
            };
            let state = match (lengths, previous) {
                (None, Some(previous)) => previous,
                _ => &*h,
            };
            let out = match out {
                Out::Blank(out) => {
                    let x_t = &x[(t * batch + b0) * input_size..(t * batch + b1) * input_size];
                    weights.step_into(out, x_t, state, run.activation)
                }
                Out::Projected(out) => {
                    weights.step(out, None, state, run.activation);
                    out
                }
            };
            if let Some(lengths) = lengths {
                let rows = out.chunks_exact_mut(hidden).zip(h.chunks_exact_mut(hidden));
                for ((out_row, h_row), &len) in rows.zip(lengths) {
                    if t < len {
                        h_row.copy_from_slice(out_row);
                    } else {
                        out_row.fill(T::ZERO);
                    }
                }
            }
            previous = Some(out);
        }
        if let (None, Some(last)) = (lengths, previous) {
            h.copy_from_slice(last);
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

#[cfg(test)]
mod tests;
