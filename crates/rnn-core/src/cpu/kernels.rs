//! The CPU fast path's inner loops: the f32 and f64 micro-kernels on packed weights for
//! AVX-512 and for AVX2 + FMA (a step's products with bias and activation fused in), the
//! register-blocked loops where none runs (the generic level), the separate bias + activation
//! pass, and the output buffer written where it is used. This is the one module with `unsafe`: functions
//! compiled for AVX2/AVX-512, chosen by the run's [`KernelLevel`] as far as run-time feature
//! detection allows, and the uninitialised output.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::level::{avx2_detected, avx512_detected, KernelLevel};
use super::Element;

/// The instruction set a loop may use: `level`, as far as this CPU supports it. No caller
/// passes a level the CPU lacks ([`super::level::set`] refuses one); this keeps each
/// `unsafe` call's justification next to it all the same.
fn isa(level: KernelLevel) -> KernelLevel {
    match level {
        KernelLevel::Avx512 if avx512_detected() => KernelLevel::Avx512,
        KernelLevel::Avx512 | KernelLevel::Avx2 if avx2_detected() => KernelLevel::Avx2,
        _ => KernelLevel::Generic,
    }
}

/// A right-hand matrix `[k, n]` packed once for [`packed_step`] and [`packed_gemm_acc`],
/// which multiply by it many times (`W_ih` and `W_hh` in every step): panels of
/// [`Kernel::panel_width`] columns (256 bytes of a row for AVX-512, 64 for AVX2), zero-padded,
/// each `k` rows of that many contiguous elements. A panel's rows are then one stream for the
/// hardware prefetcher and never collide in the L1 sets, as rows `n` elements apart do.
pub(crate) struct PackedB<T> {
    // Read by the micro-kernels, which exist on x86-64 only; elsewhere nothing is packed.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    data: Vec<T>,
    k: usize,
    n: usize,
    /// The micro-kernel it is packed for (`Avx2` or `Avx512`, which the CPU supports), which
    /// sets the panels' width.
    isa: KernelLevel,
}

impl<T: Element> PackedB<T> {
    /// Packs `rhs` for `level`'s micro-kernel; `None` where that level has none (generic, a
    /// level this CPU lacks).
    pub(crate) fn new(level: KernelLevel, rhs: &[T], k: usize, n: usize) -> Option<Self> {
        let isa = isa(level);
        if isa != level || rhs.len() != k * n || n == 0 {
            return None;
        }
        let nr = T::panel_width(isa)?;
        let panels = n.div_ceil(nr);
        let mut data = vec![T::ZERO; panels * k * nr];
        for p in 0..panels {
            let j = p * nr;
            let width = (n - j).min(nr);
            for i in 0..k {
                let dst = (p * k + i) * nr;
                data[dst..dst + width].copy_from_slice(&rhs[i * n + j..i * n + j + width]);
            }
        }
        Some(Self { data, k, n, isa })
    }
}

/// The micro-kernels of an element type on packed weights: f32 and f64 each have one for
/// AVX-512 and one for AVX2 + FMA.
pub(crate) trait Kernel: Sized + 'static {
    /// Columns of a panel packed for `isa`'s micro-kernel; `None` where it has none.
    fn panel_width(isa: KernelLevel) -> Option<usize>;

    /// [`packed_product`] on `out` (`len` elements), by the micro-kernel the terms are packed
    /// for.
    ///
    /// # Safety
    /// `out` must be valid for `len` writes, and for reads where `accumulate`; the extents
    /// must have passed [`check_extents`].
    unsafe fn packed_kernel(
        out: *mut Self,
        len: usize,
        accumulate: bool,
        terms: &[(&[Self], &PackedB<Self>)],
        epilogue: Option<Epilogue<Self>>,
    );

    /// The part of the epilogue left for after [`Kernel::packed_kernel`] has stored `out`:
    /// nothing for f32 (its tanh is computed in registers); for f64, tanh, the standard
    /// library's (there is no vector f64 tanh here; f64 runs are held to 1e-12), over all of
    /// `out` in one pass. Measured against the same calls on each block just after its store
    /// (docs/performance.md): the pass was as fast or faster in each of six pairs.
    fn after_store(out: &mut [Self], epilogue: Option<Epilogue<Self>>);
}

impl Kernel for f32 {
    fn panel_width(isa: KernelLevel) -> Option<usize> {
        match isa {
            KernelLevel::Avx512 => Some(NR),
            KernelLevel::Avx2 => Some(NR_AVX2),
            KernelLevel::Generic => None,
        }
    }

    fn after_store(_: &mut [f32], _: Option<Epilogue<f32>>) {}

    unsafe fn packed_kernel(
        out: *mut f32,
        len: usize,
        accumulate: bool,
        terms: &[(&[f32], &PackedB<f32>)],
        epilogue: Option<Epilogue<f32>>,
    ) {
        match terms[0].1.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a PackedB for AVX-512 is only made where AVX-512F is present (`isa`);
            // the extents are checked by the caller and the packing's in `PackedB::new`.
            KernelLevel::Avx512 => unsafe {
                avx512_f32::packed_product(out, len, accumulate, terms, epilogue)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2 and FMA.
            KernelLevel::Avx2 => unsafe {
                avx2_f32::packed_product(out, len, accumulate, terms, epilogue)
            },
            // No PackedB is made for the generic level, nor for any level off x86-64.
            _ => {
                let _ = (out, len, accumulate, epilogue);
                unreachable!("weights packed for no micro-kernel")
            }
        }
    }
}

impl Kernel for f64 {
    fn panel_width(isa: KernelLevel) -> Option<usize> {
        match isa {
            KernelLevel::Avx512 => Some(NR_F64),
            KernelLevel::Avx2 => Some(NR_AVX2_F64),
            KernelLevel::Generic => None,
        }
    }

    fn after_store(out: &mut [f64], epilogue: Option<Epilogue<f64>>) {
        if let Some(Epilogue { relu: false, .. }) = epilogue {
            for v in out {
                *v = v.tanh();
            }
        }
    }

    unsafe fn packed_kernel(
        out: *mut f64,
        len: usize,
        accumulate: bool,
        terms: &[(&[f64], &PackedB<f64>)],
        epilogue: Option<Epilogue<f64>>,
    ) {
        match terms[0].1.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for f32.
            KernelLevel::Avx512 => unsafe {
                avx512_f64::packed_product(out, len, accumulate, terms, epilogue)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for f32.
            KernelLevel::Avx2 => unsafe {
                avx2_f64::packed_product(out, len, accumulate, terms, epilogue)
            },
            _ => {
                let _ = (out, len, accumulate, epilogue);
                unreachable!("weights packed for no micro-kernel")
            }
        }
    }
}

/// `out[r][j] += Σ_i lhs[r][i] · b[i][j]` on one thread, with the micro-kernel `b` is packed
/// for: `out` `[rows, n]`, `lhs` `[rows, k]`, row-major.
pub(crate) fn packed_gemm_acc<T: Element>(out: &mut [T], lhs: &[T], b: &PackedB<T>) {
    packed_product(out, true, &[(lhs, b)], None);
}

/// One time step on packed weights: `out = act(x·W_ih + h·W_hh + bias)` with `input` =
/// `(x, W_ih)` and `state` = `(h, W_hh)`, or `out = act(out + h·W_hh + bias)` when `input` is
/// `None` (the projection is already in `out`). Bias and activation are applied before the
/// last pass's store of each block of `out` (passes cover 128 or 256 of the weights' rows at
/// a time), not by a separate pass over `out`; f64's tanh by one pass over the step's rows
/// after the product, while they are in L2.
pub(crate) fn packed_step<T: Element>(
    out: &mut [T],
    input: Option<(&[T], &PackedB<T>)>,
    state: (&[T], &PackedB<T>),
    bias: Option<&[T]>,
    relu: bool,
) {
    let epilogue = Some(Epilogue { bias, relu });
    match input {
        Some(x) => packed_product(out, false, &[x, state], epilogue),
        None => packed_product(out, true, &[state], epilogue),
    }
}

/// What a product does to its sums before storing them: add `bias` (`[n]`), apply tanh or
/// ReLU.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a, T> {
    bias: Option<&'a [T]>,
    relu: bool,
}

/// `out = [out +] Σ_t lhs_t · b_t`, then the epilogue: the terms share `out`'s rows and
/// columns and are summed in order, as one product over their concatenated shared dimension.
fn packed_product<T: Element>(
    out: &mut [T],
    accumulate: bool,
    terms: &[(&[T], &PackedB<T>)],
    epilogue: Option<Epilogue<T>>,
) {
    check_extents(out.len(), terms, epilogue);
    // SAFETY: `out` is initialised and valid for its length; the extents were checked.
    unsafe { T::packed_kernel(out.as_mut_ptr(), out.len(), accumulate, terms, epilogue) };
    T::after_store(out, epilogue);
}

/// [`packed_product`] into memory not yet written (`accumulate` false): returns `out`, every
/// element written.
fn fresh_product<'o, T: Element>(
    out: &'o mut [MaybeUninit<T>],
    terms: &[(&[T], &PackedB<T>)],
    epilogue: Option<Epilogue<T>>,
) -> &'o mut [T] {
    check_extents(out.len(), terms, epilogue);
    let (ptr, len) = (out.as_mut_ptr().cast::<T>(), out.len());
    // SAFETY: as in `packed_product`. Without `accumulate` each kernel's first pass over each
    // block of rows and columns stores every element of it (every row, all its columns,
    // masked to n) before a later pass loads any (f64's tanh runs after the kernel), so no
    // uninitialised value is read.
    unsafe { T::packed_kernel(ptr, len, false, terms, epilogue) };
    // SAFETY: every element was written above, and MaybeUninit<T> has T's layout.
    let out = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    T::after_store(out, epilogue);
    out
}

/// The extents the micro-kernels rely on: `out` `[rows, n]`, each term's left side
/// `[rows, b.k]`, the bias `[n]`.
fn check_extents<T>(len: usize, terms: &[(&[T], &PackedB<T>)], epilogue: Option<Epilogue<T>>) {
    let (n, isa) = (terms[0].1.n, terms[0].1.isa);
    assert!(terms.len() <= 2 && n > 0 && len.is_multiple_of(n));
    let rows = len / n;
    for &(lhs, b) in terms {
        assert!(b.n == n && b.isa == isa && lhs.len() == rows * b.k);
    }
    if let Some(bias) = epilogue.and_then(|e| e.bias) {
        assert!(bias.len() == n);
    }
}

/// Columns of a packed panel for AVX-512: four registers.
const NR: usize = 64;

/// Columns of a packed panel for AVX2: two registers.
const NR_AVX2: usize = 16;

/// Columns of an f64 panel for AVX-512: four registers of 8 (256 bytes, as f32's 64).
const NR_F64: usize = 32;

/// Columns of an f64 panel for AVX2: two registers of 4 (64 bytes, as f32's 16).
const NR_AVX2_F64: usize = 8;

/// Columns handled per register block by [`small_gemm_acc`]: 32 f32 are two AVX-512 or four
/// AVX2 registers of accumulators.
const BLOCK: usize = 32;

/// `out[r][j] += Σ_i lhs[r][i] · rhs[i][j]`, all row-major (`out` `[rows, n]`, `lhs`
/// `[rows, k]`, `rhs` `[k, n]`), where no micro-kernel runs: for each block of 32 columns of a
/// row, accumulators stay in registers while `k` rows of `rhs` stream past. Each element is
/// summed from its value in `out`, over `i` in order, with separate multiplies and adds (the
/// compiler does not fuse them), whatever the row count and whichever build runs.
pub(crate) fn small_gemm_acc<T: Element>(
    level: KernelLevel,
    out: &mut [T],
    lhs: &[T],
    rhs: &[T],
    k: usize,
    n: usize,
) {
    assert!(
        n > 0
            && out.len().is_multiple_of(n)
            && lhs.len() == out.len() / n * k
            && rhs.len() == k * n
    );
    if k == 0 {
        return;
    }
    match isa(level) {
        // SAFETY: the CPU supports AVX-512F (`isa`).
        KernelLevel::Avx512 => unsafe { small_gemm_avx512(out, lhs, rhs, k, n) },
        // SAFETY: the CPU supports AVX2 and FMA (`isa`).
        KernelLevel::Avx2 => unsafe { small_gemm_avx2(out, lhs, rhs, k, n) },
        KernelLevel::Generic => small_gemm_generic(out, lhs, rhs, k, n),
    }
}

/// A vector of `len` elements whose pieces are first written where they are used: `fill` gets
/// the whole buffer as one [`Blank`], splits it, and hands the pieces to threads, each of
/// which writes its own (in its own cache, and not all on one thread before the work splits,
/// which costs a pass over the whole output in a large run): a step on packed weights
/// directly ([`Blank::written_by_step`]), other code after zeroing it ([`Blank::zeroed`]). A
/// piece nobody used is zeroed when it is dropped.
pub(crate) fn written_where_used<T: Element>(
    len: usize,
    fill: impl FnOnce(Blank<'_, T>),
) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    let written = AtomicUsize::new(0);
    fill(Blank {
        data: &mut v.spare_capacity_mut()[..len],
        written: &written,
    });
    let counted = written.load(Ordering::Relaxed);
    debug_assert_eq!(counted, len, "a piece of the output was leaked");
    if counted != len {
        // Only a piece leaked with mem::forget gets here: zero everything rather than expose
        // uninitialised memory.
        v.spare_capacity_mut()[..len].fill(MaybeUninit::new(T::ZERO));
    }
    // SAFETY: the first `len` elements were all written: each piece counts its elements into
    // `written` once they are written (by a step, by zeroing, or when it is dropped), pieces
    // are disjoint, and `fill` has returned (its threads joined), so every piece has been
    // counted; else the fill above wrote them.
    unsafe { v.set_len(len) };
    v
}

/// A piece of [`written_where_used`]'s buffer, not yet written.
pub(crate) struct Blank<'a, T: Element> {
    data: &'a mut [MaybeUninit<T>],
    written: &'a AtomicUsize,
}

impl<'a, T: Element> Blank<'a, T> {
    /// The piece in pieces of `size` elements (the last may be shorter).
    pub(crate) fn chunks(mut self, size: usize) -> BlankChunks<'a, T> {
        BlankChunks {
            chunks: std::mem::take(&mut self.data).chunks_mut(size),
            written: self.written,
        }
    }

    /// The piece, written by one step on packed weights (`out = act(x·W_ih + h·W_hh + bias)`,
    /// as [`packed_step`] with `input`) without being zeroed first: the product's first pass
    /// stores every element before any is read.
    pub(crate) fn written_by_step(
        mut self,
        input: (&[T], &PackedB<T>),
        state: (&[T], &PackedB<T>),
        bias: Option<&[T]>,
        relu: bool,
    ) -> &'a mut [T] {
        let out = std::mem::take(&mut self.data);
        let written = fresh_product(out, &[input, state], Some(Epilogue { bias, relu }));
        self.written.fetch_add(written.len(), Ordering::Relaxed);
        written
    }

    /// The piece, zeroed.
    pub(crate) fn zeroed(mut self) -> &'a mut [T] {
        let data = std::mem::take(&mut self.data);
        data.fill(MaybeUninit::new(T::ZERO));
        self.written.fetch_add(data.len(), Ordering::Relaxed);
        // SAFETY: every element was written just above, and MaybeUninit<T> has T's layout.
        unsafe { &mut *(data as *mut [MaybeUninit<T>] as *mut [T]) }
    }
}

/// The pieces of a [`Blank`]; those not taken are zeroed when this is dropped.
pub(crate) struct BlankChunks<'a, T: Element> {
    chunks: std::slice::ChunksMut<'a, MaybeUninit<T>>,
    written: &'a AtomicUsize,
}

impl<'a, T: Element> Iterator for BlankChunks<'a, T> {
    type Item = Blank<'a, T>;

    fn next(&mut self) -> Option<Blank<'a, T>> {
        let written = self.written;
        self.chunks.next().map(|data| Blank { data, written })
    }
}

impl<T: Element> Drop for BlankChunks<'_, T> {
    fn drop(&mut self) {
        // Each piece zeroes and counts itself as it drops.
        self.by_ref().for_each(drop);
    }
}

impl<T: Element> Drop for Blank<'_, T> {
    fn drop(&mut self) {
        self.data.fill(MaybeUninit::new(T::ZERO));
        self.written.fetch_add(self.data.len(), Ordering::Relaxed);
    }
}

/// `out = act(out + bias)` elementwise, `bias` repeated over rows of its length.
pub(crate) fn bias_activation<T: Element>(
    level: KernelLevel,
    out: &mut [T],
    bias: Option<&[T]>,
    relu: bool,
) {
    match isa(level) {
        // SAFETY: the CPU supports AVX-512F (`isa`).
        KernelLevel::Avx512 => unsafe { bias_activation_avx512(out, bias, relu) },
        // SAFETY: the CPU supports AVX2 and FMA (`isa`).
        KernelLevel::Avx2 => unsafe { bias_activation_avx2(out, bias, relu) },
        KernelLevel::Generic => bias_activation_generic(out, bias, relu),
    }
}

/// Instantiates a function body once per instruction set: the generic build, and copies the
/// compiler may vectorise with AVX2+FMA or AVX-512 (chosen at run time above).
macro_rules! multiversion {
    ($generic:ident, $avx2:ident, $avx512:ident, ($($arg:ident: $ty:ty),*), $body:item) => {
        #[inline(always)]
        $body

        pub(super) fn $generic<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn $avx2<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn $avx512<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }

        #[cfg(not(target_arch = "x86_64"))]
        pub(super) unsafe fn $avx2<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }

        #[cfg(not(target_arch = "x86_64"))]
        pub(super) unsafe fn $avx512<T: Element>($($arg: $ty),*) {
            inner($($arg),*)
        }
    };
}

mod gemm_small {
    use super::{Element, BLOCK};

    multiversion!(
        small_gemm_generic,
        small_gemm_avx2,
        small_gemm_avx512,
        (out: &mut [T], lhs: &[T], rhs: &[T], k: usize, n: usize),
        fn inner<T: Element>(out: &mut [T], lhs: &[T], rhs: &[T], k: usize, n: usize) {
            for (out_row, lhs_row) in out.chunks_exact_mut(n).zip(lhs.chunks_exact(k)) {
                let mut start = 0;
                while start + BLOCK <= n {
                    let mut acc = [T::ZERO; BLOCK];
                    acc.copy_from_slice(&out_row[start..start + BLOCK]);
                    for (i, &a) in lhs_row.iter().enumerate() {
                        let r = &rhs[i * n + start..i * n + start + BLOCK];
                        for j in 0..BLOCK {
                            acc[j] += a * r[j];
                        }
                    }
                    out_row[start..start + BLOCK].copy_from_slice(&acc);
                    start += BLOCK;
                }
                if start < n {
                    let width = n - start;
                    let mut acc = [T::ZERO; BLOCK];
                    acc[..width].copy_from_slice(&out_row[start..]);
                    for (i, &a) in lhs_row.iter().enumerate() {
                        let r = &rhs[i * n + start..(i + 1) * n];
                        for (acc, &r) in acc.iter_mut().zip(r) {
                            *acc += a * r;
                        }
                    }
                    out_row[start..].copy_from_slice(&acc[..width]);
                }
            }
        }
    );
}

/// A stretch of one term's shared dimension within a pass.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Default)]
struct Span {
    term: usize,
    k0: usize,
    depth: usize,
}

/// The spans of the terms' concatenated shared dimension `start..end` (at most one per
/// term).
#[cfg(target_arch = "x86_64")]
fn spans<T>(terms: &[(&[T], &PackedB<T>)], start: usize, end: usize) -> ([Span; 2], usize) {
    let mut spans = [Span::default(); 2];
    let mut count = 0;
    let mut offset = 0;
    for (term, (_, b)) in terms.iter().enumerate() {
        let (lo, hi) = (start.max(offset), end.min(offset + b.k));
        if lo < hi {
            spans[count] = Span {
                term,
                k0: lo - offset,
                depth: hi - lo,
            };
            count += 1;
        }
        offset += b.k;
    }
    (spans, count)
}

/// The f32 micro-kernel for AVX-512 on packed weights ([`PackedB`]): blocks of 6 rows × 64
/// columns in 24 accumulators that stay in registers while the shared dimension streams past;
/// each step of it loads four registers of the packed panel and broadcasts 6 values of the
/// left rows. Columns past `n` are masked off in the loads and stores of `out` (the panel is
/// zero-padded there).
#[cfg(target_arch = "x86_64")]
mod avx512_f32 {
    use std::arch::x86_64::*;

    use super::{spans, Epilogue, PackedB, NR};

    /// Depth of the shared dimension per pass: a 128 × 64 panel slice (32 KiB) stays in L1
    /// while every block of rows passes over it.
    const KC: usize = 128;

    /// Rows per register block: 6 rows × 64 columns are 24 of the 32 zmm registers as
    /// accumulators; each step of the shared dimension loads 4 registers of `b` and
    /// broadcasts 6 values of `lhs` for 24 multiply-adds, so the FMA units, not the loads,
    /// set the pace. Against 12 rows × 32 columns this forms half as many row addresses per
    /// step (integer work that competes with the multiply-adds for issue slots) and reads
    /// the left rows half as often; a C model of both loops ran 1.15× faster this way.
    const MR: usize = 6;
    // The row tails in `rows_product` are matched for 1 to 5 rows.
    const _: () = assert!(MR == 6);

    /// Registers per row of a block.
    const V: usize = NR / 16;

    /// # Safety
    /// The CPU must support AVX-512F; the extents are those [`super::packed_product`] checks.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn packed_product(
        out: *mut f32,
        len: usize,
        accumulate: bool,
        terms: &[(&[f32], &PackedB<f32>)],
        epilogue: Option<Epilogue<f32>>,
    ) {
        let n = terms[0].1.n;
        let rows = len / n;
        let panels = n.div_ceil(NR);
        for p0 in (0..panels).step_by(PANELS_PER_BLOCK) {
            let block = p0..(p0 + PANELS_PER_BLOCK).min(panels);
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + MC).min(rows);
                rows_product(out, r0..r1, block.clone(), accumulate, terms, epilogue);
                r0 = r1;
            }
        }
    }

    /// Panels per column block: [`packed_product`] finishes every pass over 256 columns of
    /// `out` before it starts the next 256 (on the benchmark's large shape, half the
    /// weights: 768 rows × 256 columns, 768 KiB), so less of them is in use at a time.
    /// Against all the columns in each pass it ran the large shape faster relative to torch
    /// in each of four sessions (docs/performance.md, item 10).
    const PANELS_PER_BLOCK: usize = 4;

    /// Rows per call of [`rows_product`]: 80 blocks of MR. Each pass re-reads the rows' left
    /// values once per panel, so they must stay in L2 however many rows there are (every
    /// step's projection at once for a long single sequence, say).
    const MC: usize = 80 * MR;

    /// [`packed_product`] for rows `rows` of `out` and of the terms' left-hand sides, and for
    /// the columns of panels `panels`.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_product(
        out: *mut f32,
        rows: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        accumulate: bool,
        terms: &[(&[f32], &PackedB<f32>)],
        epilogue: Option<Epilogue<f32>>,
    ) {
        let n = terms[0].1.n;
        let count = rows.len();
        let total: usize = terms.iter().map(|(_, b)| b.k).sum();
        // SAFETY: rows.end ≤ len / n (the caller's loop).
        let o = out.add(rows.start * n);
        let mut start = 0;
        loop {
            let end = (start + KC).min(total);
            let (spans, span_count) = spans(terms, start, end);
            let spans = &spans[..span_count];
            let last = end == total;
            for p in panels.clone() {
                let j = p * NR;
                let mut masks = [0; V];
                for (v, m) in masks.iter_mut().enumerate() {
                    *m = mask(n.saturating_sub(j + 16 * v));
                }
                let tile = Tile {
                    o,
                    n,
                    j,
                    masks,
                    load: accumulate || start > 0,
                    epilogue: if last { epilogue } else { None },
                };
                // Each span's operands for rows r..: its term's packed panel p from the span's
                // first row, and its term's rows of `lhs`.
                let operands = |r: usize| {
                    spans.iter().map(move |span| {
                        let (lhs, b) = terms[span.term];
                        Operands {
                            // SAFETY: panel p holds b.k rows of NR floats from (p·b.k)·NR on;
                            // row rows.start + r of lhs has b.k values.
                            b: b.data.as_ptr().add((p * b.k + span.k0) * NR),
                            a: lhs.as_ptr().add((rows.start + r) * b.k + span.k0),
                            stride: b.k,
                            depth: span.depth,
                        }
                    })
                };
                let mut r = 0;
                while r + MR <= count {
                    tile.run::<MR>(r, operands(r));
                    r += MR;
                }
                match count - r {
                    5 => tile.run::<5>(r, operands(r)),
                    4 => tile.run::<4>(r, operands(r)),
                    3 => tile.run::<3>(r, operands(r)),
                    2 => tile.run::<2>(r, operands(r)),
                    1 => tile.run::<1>(r, operands(r)),
                    _ => {}
                }
            }
            if last {
                break;
            }
            start = end;
        }
    }

    /// One span's operands for [`Tile::run`]: its packed panel from the span's first row, and
    /// its first row's left-hand values (row `q`'s at `a + q·stride`).
    struct Operands {
        b: *const f32,
        a: *const f32,
        stride: usize,
        depth: usize,
    }

    /// One pass of [`rows_product`] over columns `j..j + NR` of `out` (`o`, `[rows, n]`).
    #[derive(Clone, Copy)]
    struct Tile<'a> {
        o: *mut f32,
        n: usize,
        j: usize,
        /// The lanes of each register of a row that lie before column `n`.
        masks: [__mmask16; V],
        /// Whether the sums start from `out` (else from zero).
        load: bool,
        epilogue: Option<Epilogue<'a, f32>>,
    }

    impl Tile<'_> {
        /// Rows `r..r + R`, `V·R` accumulators, summed over the spans' operands in order.
        #[inline(always)]
        unsafe fn run<const R: usize>(&self, r: usize, operands: impl Iterator<Item = Operands>) {
            let Tile { o, n, j, masks, .. } = *self;
            // SAFETY (all pointer arithmetic below): rows r..r+R are < rows (the caller's
            // loops), columns j..j+NR are masked to < n (pointers past the first register are
            // formed with wrapping_add, since with n - j ≤ 16·v they may lie past the end,
            // where their all-zero masks touch nothing), ii < depth; each span's `a` starts R
            // rows of at least `depth` values, `stride` apart; its panel has `depth` rows of
            // NR floats from `b`, zero beyond n.
            // Four arrays of R, one per register of a row, rather than one [[_; V]; R]: with
            // the nested array LLVM kept a copy of the accumulators on the stack, stored on
            // every multiply-add. (With V other than 4, `let [m0, m1, m2, m3]` below does not
            // compile.)
            let mut c0 = [_mm512_setzero_ps(); R];
            let mut c1 = [_mm512_setzero_ps(); R];
            let mut c2 = [_mm512_setzero_ps(); R];
            let mut c3 = [_mm512_setzero_ps(); R];
            let [m0, m1, m2, m3] = masks;
            if self.load {
                for q in 0..R {
                    let row = o.add((r + q) * n + j);
                    c0[q] = _mm512_maskz_loadu_ps(m0, row);
                    c1[q] = _mm512_maskz_loadu_ps(m1, row.wrapping_add(16));
                    c2[q] = _mm512_maskz_loadu_ps(m2, row.wrapping_add(32));
                    c3[q] = _mm512_maskz_loadu_ps(m3, row.wrapping_add(48));
                }
            }
            for Operands {
                b,
                a,
                stride,
                depth,
            } in operands
            {
                for ii in 0..depth {
                    let br = b.add(ii * NR);
                    let b0 = _mm512_loadu_ps(br);
                    let b1 = _mm512_loadu_ps(br.add(16));
                    let b2 = _mm512_loadu_ps(br.add(32));
                    let b3 = _mm512_loadu_ps(br.add(48));
                    for q in 0..R {
                        let x = _mm512_set1_ps(*a.add(q * stride + ii));
                        c0[q] = _mm512_fmadd_ps(x, b0, c0[q]);
                        c1[q] = _mm512_fmadd_ps(x, b1, c1[q]);
                        c2[q] = _mm512_fmadd_ps(x, b2, c2[q]);
                        c3[q] = _mm512_fmadd_ps(x, b3, c3[q]);
                    }
                }
            }
            if let Some(Epilogue { bias, relu }) = self.epilogue {
                if let Some(bias) = bias {
                    // Without a bias nothing is added, as in the scalar pass: adding +0 would
                    // turn a sum of -0 into +0.
                    let at = |v: usize| bias.as_ptr().wrapping_add(j + 16 * v);
                    let (bias0, bias1) = (
                        _mm512_maskz_loadu_ps(m0, at(0)),
                        _mm512_maskz_loadu_ps(m1, at(1)),
                    );
                    let (bias2, bias3) = (
                        _mm512_maskz_loadu_ps(m2, at(2)),
                        _mm512_maskz_loadu_ps(m3, at(3)),
                    );
                    for q in 0..R {
                        c0[q] = _mm512_add_ps(c0[q], bias0);
                        c1[q] = _mm512_add_ps(c1[q], bias1);
                        c2[q] = _mm512_add_ps(c2[q], bias2);
                        c3[q] = _mm512_add_ps(c3[q], bias3);
                    }
                }
                for q in 0..R {
                    c0[q] = activate(c0[q], relu);
                    c1[q] = activate(c1[q], relu);
                    c2[q] = activate(c2[q], relu);
                    c3[q] = activate(c3[q], relu);
                }
            }
            for q in 0..R {
                let row = o.add((r + q) * n + j);
                _mm512_mask_storeu_ps(row, m0, c0[q]);
                _mm512_mask_storeu_ps(row.wrapping_add(16), m1, c1[q]);
                _mm512_mask_storeu_ps(row.wrapping_add(32), m2, c2[q]);
                _mm512_mask_storeu_ps(row.wrapping_add(48), m3, c3[q]);
            }
        }
    }

    /// ReLU or tanh of 16 lanes, each lane exactly what `Element::relu` or
    /// [`super::super::tanh_f32`] returns for it.
    #[inline(always)]
    unsafe fn activate(x: __m512, relu: bool) -> __m512 {
        if relu {
            // x < 0 is false for NaN and -0, which pass through, as in the scalar version.
            let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
            _mm512_mask_mov_ps(x, negative, _mm512_setzero_ps())
        } else {
            tanh(x)
        }
    }

    /// [`super::super::tanh_f32`] on 16 lanes: the same operations in the same order
    /// (separate multiplies and adds, no fused ones), so every lane is bit-identical to it.
    #[inline(always)]
    unsafe fn tanh(x: __m512) -> __m512 {
        use super::super::tanh::{A1, A11, A13, A3, A5, A7, A9, B0, B2, B4, B6, CLAMP, TINY};
        let s = _mm512_set1_ps;
        let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, s(CLAMP));
        let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, s(-CLAMP));
        let c = _mm512_mask_mov_ps(_mm512_mask_mov_ps(x, above, s(CLAMP)), below, s(-CLAMP));
        let x2 = _mm512_mul_ps(c, c);
        // Plain loops, not closures: a closure would not inherit the caller's target features.
        let mut p = s(A13);
        for a in [A11, A9, A7, A5, A3, A1] {
            p = _mm512_add_ps(_mm512_mul_ps(p, x2), s(a));
        }
        let p = _mm512_mul_ps(p, c);
        let mut q = s(B6);
        for b in [B4, B2, B0] {
            q = _mm512_add_ps(_mm512_mul_ps(q, x2), s(b));
        }
        let r = _mm512_div_ps(p, q);
        let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(x), s(TINY));
        _mm512_mask_mov_ps(r, tiny, x)
    }

    /// [`activate`] on 16 values, for the tests.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(test)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn activate_lanes(x: [f32; 16], relu: bool) -> [f32; 16] {
        let mut out = [0f32; 16];
        _mm512_storeu_ps(
            out.as_mut_ptr(),
            activate(_mm512_loadu_ps(x.as_ptr()), relu),
        );
        out
    }

    /// Lanes of a 16-lane register to use when `left` columns remain.
    #[inline(always)]
    fn mask(left: usize) -> __mmask16 {
        if left >= 16 {
            0xFFFF
        } else {
            ((1u32 << left) - 1) as __mmask16
        }
    }
}
/// The f32 micro-kernel for AVX2 and FMA on packed weights ([`PackedB`] with panels of
/// [`NR_AVX2`] columns), built as the AVX-512 one is: blocks of 6 rows × 16 columns in 12
/// accumulators (of the 16 ymm registers: 2 more hold the panel's row, 1 the broadcast) that
/// stay in registers while the shared dimension streams past; each step of it loads two
/// registers of the packed panel and broadcasts 6 values of the left rows for 12
/// multiply-adds. The same multiply-adds in the same order as the AVX-512 kernel, and the same
/// tanh, so the two give the same bits.
#[cfg(target_arch = "x86_64")]
mod avx2_f32 {
    use std::arch::x86_64::*;

    use super::{spans, Epilogue, PackedB, NR_AVX2 as NR};

    /// Depth of the shared dimension per pass: a 256 × 16 panel slice (16 KiB) stays in L1
    /// (32 KiB on Zen 3 and Haswell alike) while every block of rows passes over it.
    const KC: usize = 256;

    /// Rows per register block: 6 rows × 16 columns are 12 of the 16 ymm registers (the
    /// classic Haswell shape).
    const MR: usize = 6;
    // The row tails in `rows_product` are matched for 1 to 5 rows.
    const _: () = assert!(MR == 6);

    /// Panels per column block: 256 columns, as the AVX-512 kernel's 4 panels of 64.
    const PANELS_PER_BLOCK: usize = 16;

    /// Rows per call of [`rows_product`], as in the AVX-512 kernel.
    const MC: usize = 80 * MR;

    /// # Safety
    /// The CPU must support AVX2 and FMA; the extents are those [`super::packed_product`]
    /// checks.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn packed_product(
        out: *mut f32,
        len: usize,
        accumulate: bool,
        terms: &[(&[f32], &PackedB<f32>)],
        epilogue: Option<Epilogue<f32>>,
    ) {
        let n = terms[0].1.n;
        let rows = len / n;
        let panels = n.div_ceil(NR);
        for p0 in (0..panels).step_by(PANELS_PER_BLOCK) {
            let block = p0..(p0 + PANELS_PER_BLOCK).min(panels);
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + MC).min(rows);
                rows_product(out, r0..r1, block.clone(), accumulate, terms, epilogue);
                r0 = r1;
            }
        }
    }

    /// [`packed_product`] for rows `rows` of `out` and of the terms' left-hand sides, and for
    /// the columns of panels `panels`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_product(
        out: *mut f32,
        rows: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        accumulate: bool,
        terms: &[(&[f32], &PackedB<f32>)],
        epilogue: Option<Epilogue<f32>>,
    ) {
        let n = terms[0].1.n;
        let count = rows.len();
        let total: usize = terms.iter().map(|(_, b)| b.k).sum();
        // SAFETY: rows.end ≤ len / n (the caller's loop).
        let o = out.add(rows.start * n);
        let mut start = 0;
        loop {
            let end = (start + KC).min(total);
            let (spans, span_count) = spans(terms, start, end);
            let spans = &spans[..span_count];
            let last = end == total;
            let mut first = panels.start;
            if count == 1 {
                while first + WIDE <= panels.end && (first + WIDE) * NR <= n {
                    let load = accumulate || start > 0;
                    let epilogue = if last { epilogue } else { None };
                    wide_row(o, n, first, rows.start, spans, terms, load, epilogue);
                    first += WIDE;
                }
            }
            for p in first..panels.end {
                let j = p * NR;
                let tile = Tile {
                    o,
                    n,
                    j,
                    masks: [mask(n - j), mask(n.saturating_sub(j + 8))],
                    full: n - j >= NR,
                    load: accumulate || start > 0,
                    epilogue: if last { epilogue } else { None },
                };
                // Each span's operands for rows r..: its term's packed panel p from the span's
                // first row, and its term's rows of `lhs`.
                let operands = |r: usize| {
                    spans.iter().map(move |span| {
                        let (lhs, b) = terms[span.term];
                        Operands {
                            // SAFETY: panel p holds b.k rows of NR floats from (p·b.k)·NR on;
                            // row rows.start + r of lhs has b.k values.
                            b: b.data.as_ptr().add((p * b.k + span.k0) * NR),
                            a: lhs.as_ptr().add((rows.start + r) * b.k + span.k0),
                            stride: b.k,
                            depth: span.depth,
                        }
                    })
                };
                let mut r = 0;
                while r + MR <= count {
                    tile.run::<MR>(r, operands(r));
                    r += MR;
                }
                match count - r {
                    5 => tile.run::<5>(r, operands(r)),
                    4 => tile.run::<4>(r, operands(r)),
                    3 => tile.run::<3>(r, operands(r)),
                    2 => tile.run::<2>(r, operands(r)),
                    1 => tile.run::<1>(r, operands(r)),
                    _ => {}
                }
            }
            if last {
                break;
            }
            start = end;
        }
    }

    /// Panels [`wide_row`] takes at once: 64 columns, as the AVX-512 block's row.
    const WIDE: usize = 4;

    /// One row over [`WIDE`] whole panels from panel `p0` (columns `p0·NR..`, all before `n`):
    /// 8 independent accumulators, where [`Tile::run`] with one row has 2 per panel and takes
    /// the panels one after another. A single sequence's step is a chain of dependent
    /// multiply-adds, so the independent chains set its pace (the AVX-512 block has 4 over its
    /// 64 columns). Each sum is formed as in [`Tile::run`], so the result is the same bits.
    ///
    /// # Safety
    /// As [`Tile::run`], for row `row` of `out` (`o` is its row 0) and of the terms' left
    /// sides, with `(p0 + WIDE)·NR ≤ n`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn wide_row(
        o: *mut f32,
        n: usize,
        p0: usize,
        row: usize,
        spans: &[super::Span],
        terms: &[(&[f32], &PackedB<f32>)],
        load: bool,
        epilogue: Option<Epilogue<f32>>,
    ) {
        debug_assert!((p0 + WIDE) * NR <= n);
        let j = p0 * NR;
        let o = o.add(j);
        let mut c = [_mm256_setzero_ps(); 2 * WIDE];
        if load {
            for (v, c) in c.iter_mut().enumerate() {
                *c = _mm256_loadu_ps(o.add(8 * v));
            }
        }
        for span in spans {
            let (lhs, b) = terms[span.term];
            let a = lhs.as_ptr().add(row * b.k + span.k0);
            let base = b.data.as_ptr().add((p0 * b.k + span.k0) * NR);
            let panel = b.k * NR;
            for ii in 0..span.depth {
                let x = _mm256_set1_ps(*a.add(ii));
                for (v, c) in c.iter_mut().enumerate() {
                    let bp = base.add((v / 2) * panel + ii * NR + (v % 2) * 8);
                    *c = _mm256_fmadd_ps(x, _mm256_loadu_ps(bp), *c);
                }
            }
        }
        if let Some(Epilogue { bias, relu }) = epilogue {
            if let Some(bias) = bias {
                for (v, c) in c.iter_mut().enumerate() {
                    *c = _mm256_add_ps(*c, _mm256_loadu_ps(bias.as_ptr().add(j + 8 * v)));
                }
            }
            for c in c.iter_mut() {
                *c = activate(*c, relu);
            }
        }
        for (v, c) in c.iter().enumerate() {
            _mm256_storeu_ps(o.add(8 * v), *c);
        }
    }

    /// One span's operands for [`Tile::run`]: its packed panel from the span's first row, and
    /// its first row's left-hand values (row `q`'s at `a + q·stride`).
    struct Operands {
        b: *const f32,
        a: *const f32,
        stride: usize,
        depth: usize,
    }

    /// One pass of [`rows_product`] over columns `j..j + NR` of `out` (`o`, `[rows, n]`).
    #[derive(Clone, Copy)]
    struct Tile<'a> {
        o: *mut f32,
        n: usize,
        j: usize,
        /// The lanes of each register of a row that lie before column `n` (all bits of a lane
        /// set, as `vmaskmovps` wants).
        masks: [__m256i; 2],
        /// Whether every column of the tile lies before `n` (plain loads and stores then).
        full: bool,
        /// Whether the sums start from `out` (else from zero).
        load: bool,
        epilogue: Option<Epilogue<'a, f32>>,
    }

    impl Tile<'_> {
        /// Loads the two registers of `NR` floats at `at` (lanes past `n` as zero).
        #[inline(always)]
        unsafe fn load(&self, at: *const f32) -> (__m256, __m256) {
            if self.full {
                (_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8)))
            } else {
                let [m0, m1] = self.masks;
                (
                    _mm256_maskload_ps(at, m0),
                    _mm256_maskload_ps(at.wrapping_add(8), m1),
                )
            }
        }

        /// Rows `r..r + R`, `2·R` accumulators, summed over the spans' operands in order.
        #[inline(always)]
        unsafe fn run<const R: usize>(&self, r: usize, operands: impl Iterator<Item = Operands>) {
            let Tile { o, n, j, masks, .. } = *self;
            // SAFETY (all pointer arithmetic below): rows r..r+R are < rows (the caller's
            // loops), columns j..j+NR lie before n where `full`, else are masked to < n (the
            // pointer to the second register is formed with wrapping_add, since with
            // n - j ≤ 8 it may lie past the end, where its all-zero mask touches nothing),
            // ii < depth; each span's `a` starts R rows of at least `depth` values, `stride`
            // apart; its panel has `depth` rows of NR floats from `b`, zero beyond n.
            // Two arrays of R, one per register of a row, as in the AVX-512 kernel (a nested
            // array left a copy of the accumulators on the stack there).
            let mut c0 = [_mm256_setzero_ps(); R];
            let mut c1 = [_mm256_setzero_ps(); R];
            if self.load {
                for q in 0..R {
                    (c0[q], c1[q]) = self.load(o.add((r + q) * n + j));
                }
            }
            for Operands {
                b,
                a,
                stride,
                depth,
            } in operands
            {
                for ii in 0..depth {
                    let br = b.add(ii * NR);
                    let b0 = _mm256_loadu_ps(br);
                    let b1 = _mm256_loadu_ps(br.add(8));
                    for q in 0..R {
                        let x = _mm256_broadcast_ss(&*a.add(q * stride + ii));
                        c0[q] = _mm256_fmadd_ps(x, b0, c0[q]);
                        c1[q] = _mm256_fmadd_ps(x, b1, c1[q]);
                    }
                }
            }
            if let Some(Epilogue { bias, relu }) = self.epilogue {
                if let Some(bias) = bias {
                    // Without a bias nothing is added, as in the scalar pass: adding +0 would
                    // turn a sum of -0 into +0.
                    let (bias0, bias1) = self.load(bias.as_ptr().wrapping_add(j));
                    for q in 0..R {
                        c0[q] = _mm256_add_ps(c0[q], bias0);
                        c1[q] = _mm256_add_ps(c1[q], bias1);
                    }
                }
                for q in 0..R {
                    c0[q] = activate(c0[q], relu);
                    c1[q] = activate(c1[q], relu);
                }
            }
            let [m0, m1] = masks;
            for q in 0..R {
                let row = o.add((r + q) * n + j);
                if self.full {
                    _mm256_storeu_ps(row, c0[q]);
                    _mm256_storeu_ps(row.add(8), c1[q]);
                } else {
                    _mm256_maskstore_ps(row, m0, c0[q]);
                    _mm256_maskstore_ps(row.wrapping_add(8), m1, c1[q]);
                }
            }
        }
    }

    /// ReLU or tanh of 8 lanes, each lane exactly what `Element::relu` or
    /// [`super::super::tanh_f32`] returns for it.
    #[inline(always)]
    unsafe fn activate(x: __m256, relu: bool) -> __m256 {
        if relu {
            // x < 0 is false for NaN and -0, which pass through, as in the scalar version.
            let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
            _mm256_blendv_ps(x, _mm256_setzero_ps(), negative)
        } else {
            tanh(x)
        }
    }

    /// [`super::super::tanh_f32`] on 8 lanes: the same operations in the same order (separate
    /// multiplies and adds, no fused ones), so every lane is bit-identical to it.
    #[inline(always)]
    unsafe fn tanh(x: __m256) -> __m256 {
        use super::super::tanh::{A1, A11, A13, A3, A5, A7, A9, B0, B2, B4, B6, CLAMP, TINY};
        let s = _mm256_set1_ps;
        let above = _mm256_cmp_ps::<_CMP_GT_OQ>(x, s(CLAMP));
        let below = _mm256_cmp_ps::<_CMP_LT_OQ>(x, s(-CLAMP));
        let c = _mm256_blendv_ps(_mm256_blendv_ps(x, s(CLAMP), above), s(-CLAMP), below);
        let x2 = _mm256_mul_ps(c, c);
        // Plain loops, not closures: a closure would not inherit the caller's target features.
        let mut p = s(A13);
        for a in [A11, A9, A7, A5, A3, A1] {
            p = _mm256_add_ps(_mm256_mul_ps(p, x2), s(a));
        }
        let p = _mm256_mul_ps(p, c);
        let mut q = s(B6);
        for b in [B4, B2, B0] {
            q = _mm256_add_ps(_mm256_mul_ps(q, x2), s(b));
        }
        let r = _mm256_div_ps(p, q);
        // |x|: the sign bit cleared.
        let abs = _mm256_andnot_ps(s(-0.0), x);
        let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(abs, s(TINY));
        _mm256_blendv_ps(r, x, tiny)
    }

    /// [`activate`] on 8 values, for the tests.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(test)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn activate_lanes(x: [f32; 8], relu: bool) -> [f32; 8] {
        let mut out = [0f32; 8];
        _mm256_storeu_ps(
            out.as_mut_ptr(),
            activate(_mm256_loadu_ps(x.as_ptr()), relu),
        );
        out
    }

    /// Lanes of an 8-lane register to use when `left` columns remain: all bits set in each.
    #[inline(always)]
    unsafe fn mask(left: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(left.min(8) as i32), lanes)
    }
}

/// The f64 micro-kernel for AVX-512 on packed weights ([`PackedB`] with panels of
/// [`NR_F64`] columns), the f32 one's structure at 8 lanes: blocks of 6 rows × 32 columns in
/// 24 accumulators (of the 32 zmm registers: 4 more hold the panel's row, 1 the broadcast)
/// that stay in registers while the shared dimension streams past; each step of it loads four
/// registers of the packed panel and broadcasts 6 values of the left rows for 24
/// multiply-adds. Against 12 × 16 (also 24 accumulators) it loads 4 registers of `b` per 24
/// multiply-adds where that shape loads 2 and broadcasts 12, so fewer loads per multiply-add
/// (10 against 14), and it forms half as many row addresses, as the f32 kernel's note says.
/// Bias and ReLU are applied in registers before the last store; tanh after the product
/// ([`Kernel::after_store`]).
#[cfg(target_arch = "x86_64")]
mod avx512_f64 {
    use std::arch::x86_64::*;

    use super::{spans, Epilogue, PackedB, NR_F64 as NR};

    /// Depth of the shared dimension per pass: a 128 × 32 panel slice (32 KiB, as f32's)
    /// stays in L1 while every block of rows passes over it.
    const KC: usize = 128;

    /// Rows per register block (the row tails in `rows_product` are matched for 1 to 5).
    const MR: usize = 6;
    const _: () = assert!(MR == 6);

    /// Registers per row of a block.
    const V: usize = NR / 8;

    /// Panels per column block: 128 columns, the same bytes of the weights as f32's 256.
    const PANELS_PER_BLOCK: usize = 4;

    /// Rows per call of [`rows_product`], as in the f32 kernel.
    const MC: usize = 80 * MR;

    /// # Safety
    /// The CPU must support AVX-512F; the extents are those [`super::packed_product`] checks.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn packed_product(
        out: *mut f64,
        len: usize,
        accumulate: bool,
        terms: &[(&[f64], &PackedB<f64>)],
        epilogue: Option<Epilogue<f64>>,
    ) {
        let n = terms[0].1.n;
        let rows = len / n;
        let panels = n.div_ceil(NR);
        for p0 in (0..panels).step_by(PANELS_PER_BLOCK) {
            let block = p0..(p0 + PANELS_PER_BLOCK).min(panels);
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + MC).min(rows);
                rows_product(out, r0..r1, block.clone(), accumulate, terms, epilogue);
                r0 = r1;
            }
        }
    }

    /// [`packed_product`] for rows `rows` of `out` and of the terms' left-hand sides, and for
    /// the columns of panels `panels`.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_product(
        out: *mut f64,
        rows: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        accumulate: bool,
        terms: &[(&[f64], &PackedB<f64>)],
        epilogue: Option<Epilogue<f64>>,
    ) {
        let n = terms[0].1.n;
        let count = rows.len();
        let total: usize = terms.iter().map(|(_, b)| b.k).sum();
        // SAFETY: rows.end ≤ len / n (the caller's loop).
        let o = out.add(rows.start * n);
        let mut start = 0;
        loop {
            let end = (start + KC).min(total);
            let (spans, span_count) = spans(terms, start, end);
            let spans = &spans[..span_count];
            let last = end == total;
            for p in panels.clone() {
                let j = p * NR;
                let mut masks = [0; V];
                for (v, m) in masks.iter_mut().enumerate() {
                    *m = mask(n.saturating_sub(j + 8 * v));
                }
                let tile = Tile {
                    o,
                    n,
                    j,
                    masks,
                    load: accumulate || start > 0,
                    epilogue: if last { epilogue } else { None },
                };
                // Each span's operands for rows r..: its term's packed panel p from the span's
                // first row, and its term's rows of `lhs`.
                let operands = |r: usize| {
                    spans.iter().map(move |span| {
                        let (lhs, b) = terms[span.term];
                        Operands {
                            // SAFETY: panel p holds b.k rows of NR values from (p·b.k)·NR on;
                            // row rows.start + r of lhs has b.k values.
                            b: b.data.as_ptr().add((p * b.k + span.k0) * NR),
                            a: lhs.as_ptr().add((rows.start + r) * b.k + span.k0),
                            stride: b.k,
                            depth: span.depth,
                        }
                    })
                };
                let mut r = 0;
                while r + MR <= count {
                    tile.run::<MR>(r, operands(r));
                    r += MR;
                }
                match count - r {
                    5 => tile.run::<5>(r, operands(r)),
                    4 => tile.run::<4>(r, operands(r)),
                    3 => tile.run::<3>(r, operands(r)),
                    2 => tile.run::<2>(r, operands(r)),
                    1 => tile.run::<1>(r, operands(r)),
                    _ => {}
                }
            }
            if last {
                break;
            }
            start = end;
        }
    }

    /// One span's operands for [`Tile::run`]: its packed panel from the span's first row, and
    /// its first row's left-hand values (row `q`'s at `a + q·stride`).
    struct Operands {
        b: *const f64,
        a: *const f64,
        stride: usize,
        depth: usize,
    }

    /// One pass of [`rows_product`] over columns `j..j + NR` of `out` (`o`, `[rows, n]`).
    #[derive(Clone, Copy)]
    struct Tile<'a> {
        o: *mut f64,
        n: usize,
        j: usize,
        /// The lanes of each register of a row that lie before column `n`.
        masks: [__mmask8; V],
        /// Whether the sums start from `out` (else from zero).
        load: bool,
        epilogue: Option<Epilogue<'a, f64>>,
    }

    impl Tile<'_> {
        /// Rows `r..r + R`, `V·R` accumulators, summed over the spans' operands in order.
        #[inline(always)]
        unsafe fn run<const R: usize>(&self, r: usize, operands: impl Iterator<Item = Operands>) {
            let Tile { o, n, j, masks, .. } = *self;
            // SAFETY (all pointer arithmetic below): as in the f32 kernel, with registers of
            // 8 values: rows r..r+R are < rows, columns j..j+NR are masked to < n (pointers
            // past the first register formed with wrapping_add), ii < depth; each span's `a`
            // starts R rows of at least `depth` values, `stride` apart; its panel has `depth`
            // rows of NR values from `b`, zero beyond n.
            // Four arrays of R, one per register of a row (a nested array kept a copy of the
            // accumulators on the stack in the f32 kernel).
            let mut c0 = [_mm512_setzero_pd(); R];
            let mut c1 = [_mm512_setzero_pd(); R];
            let mut c2 = [_mm512_setzero_pd(); R];
            let mut c3 = [_mm512_setzero_pd(); R];
            let [m0, m1, m2, m3] = masks;
            if self.load {
                for q in 0..R {
                    let row = o.add((r + q) * n + j);
                    c0[q] = _mm512_maskz_loadu_pd(m0, row);
                    c1[q] = _mm512_maskz_loadu_pd(m1, row.wrapping_add(8));
                    c2[q] = _mm512_maskz_loadu_pd(m2, row.wrapping_add(16));
                    c3[q] = _mm512_maskz_loadu_pd(m3, row.wrapping_add(24));
                }
            }
            for Operands {
                b,
                a,
                stride,
                depth,
            } in operands
            {
                for ii in 0..depth {
                    let br = b.add(ii * NR);
                    let b0 = _mm512_loadu_pd(br);
                    let b1 = _mm512_loadu_pd(br.add(8));
                    let b2 = _mm512_loadu_pd(br.add(16));
                    let b3 = _mm512_loadu_pd(br.add(24));
                    for q in 0..R {
                        let x = _mm512_set1_pd(*a.add(q * stride + ii));
                        c0[q] = _mm512_fmadd_pd(x, b0, c0[q]);
                        c1[q] = _mm512_fmadd_pd(x, b1, c1[q]);
                        c2[q] = _mm512_fmadd_pd(x, b2, c2[q]);
                        c3[q] = _mm512_fmadd_pd(x, b3, c3[q]);
                    }
                }
            }
            if let Some(Epilogue { bias, relu }) = self.epilogue {
                if let Some(bias) = bias {
                    // Without a bias nothing is added (adding +0 would turn -0 into +0).
                    let at = |v: usize| bias.as_ptr().wrapping_add(j + 8 * v);
                    let (bias0, bias1) = (
                        _mm512_maskz_loadu_pd(m0, at(0)),
                        _mm512_maskz_loadu_pd(m1, at(1)),
                    );
                    let (bias2, bias3) = (
                        _mm512_maskz_loadu_pd(m2, at(2)),
                        _mm512_maskz_loadu_pd(m3, at(3)),
                    );
                    for q in 0..R {
                        c0[q] = _mm512_add_pd(c0[q], bias0);
                        c1[q] = _mm512_add_pd(c1[q], bias1);
                        c2[q] = _mm512_add_pd(c2[q], bias2);
                        c3[q] = _mm512_add_pd(c3[q], bias3);
                    }
                }
                if relu {
                    for q in 0..R {
                        c0[q] = relu_lanes(c0[q]);
                        c1[q] = relu_lanes(c1[q]);
                        c2[q] = relu_lanes(c2[q]);
                        c3[q] = relu_lanes(c3[q]);
                    }
                }
            }
            for q in 0..R {
                let row = o.add((r + q) * n + j);
                _mm512_mask_storeu_pd(row, m0, c0[q]);
                _mm512_mask_storeu_pd(row.wrapping_add(8), m1, c1[q]);
                _mm512_mask_storeu_pd(row.wrapping_add(16), m2, c2[q]);
                _mm512_mask_storeu_pd(row.wrapping_add(24), m3, c3[q]);
            }
        }
    }

    /// ReLU of 8 lanes, each exactly what `Element::relu` returns for it: x < 0 is false for
    /// NaN and -0, which pass through.
    #[inline(always)]
    unsafe fn relu_lanes(x: __m512d) -> __m512d {
        let negative = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, _mm512_setzero_pd());
        _mm512_mask_mov_pd(x, negative, _mm512_setzero_pd())
    }

    /// Lanes of an 8-lane register to use when `left` columns remain.
    #[inline(always)]
    fn mask(left: usize) -> __mmask8 {
        if left >= 8 {
            0xFF
        } else {
            ((1u32 << left) - 1) as __mmask8
        }
    }
}

/// The f64 micro-kernel for AVX2 and FMA on packed weights ([`PackedB`] with panels of
/// [`NR_AVX2_F64`] columns), the f32 one's structure at 4 lanes: blocks of 6 rows × 8 columns
/// in 12 accumulators (of the 16 ymm registers: 2 more hold the panel's row, 1 the
/// broadcast), the Haswell shape; a single row over 4 panels at once. The same multiply-adds
/// in the same order as the AVX-512 f64 kernel and the same epilogue, so the two give the same
/// bits.
#[cfg(target_arch = "x86_64")]
mod avx2_f64 {
    use std::arch::x86_64::*;

    use super::{spans, Epilogue, PackedB, NR_AVX2_F64 as NR};

    /// Depth of the shared dimension per pass: a 256 × 8 panel slice (16 KiB, as f32's).
    const KC: usize = 256;

    /// Rows per register block (the row tails in `rows_product` are matched for 1 to 5).
    const MR: usize = 6;
    const _: () = assert!(MR == 6);

    /// Panels per column block: 128 columns, as the AVX-512 f64 kernel's 4 panels of 32.
    const PANELS_PER_BLOCK: usize = 16;

    /// Rows per call of [`rows_product`], as in the AVX-512 kernel.
    const MC: usize = 80 * MR;

    /// # Safety
    /// The CPU must support AVX2 and FMA; the extents are those [`super::packed_product`]
    /// checks.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn packed_product(
        out: *mut f64,
        len: usize,
        accumulate: bool,
        terms: &[(&[f64], &PackedB<f64>)],
        epilogue: Option<Epilogue<f64>>,
    ) {
        let n = terms[0].1.n;
        let rows = len / n;
        let panels = n.div_ceil(NR);
        for p0 in (0..panels).step_by(PANELS_PER_BLOCK) {
            let block = p0..(p0 + PANELS_PER_BLOCK).min(panels);
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + MC).min(rows);
                rows_product(out, r0..r1, block.clone(), accumulate, terms, epilogue);
                r0 = r1;
            }
        }
    }

    /// [`packed_product`] for rows `rows` of `out` and of the terms' left-hand sides, and for
    /// the columns of panels `panels`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_product(
        out: *mut f64,
        rows: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        accumulate: bool,
        terms: &[(&[f64], &PackedB<f64>)],
        epilogue: Option<Epilogue<f64>>,
    ) {
        let n = terms[0].1.n;
        let count = rows.len();
        let total: usize = terms.iter().map(|(_, b)| b.k).sum();
        // SAFETY: rows.end ≤ len / n (the caller's loop).
        let o = out.add(rows.start * n);
        let mut start = 0;
        loop {
            let end = (start + KC).min(total);
            let (spans, span_count) = spans(terms, start, end);
            let spans = &spans[..span_count];
            let last = end == total;
            let mut first = panels.start;
            if count == 1 {
                while first + WIDE <= panels.end && (first + WIDE) * NR <= n {
                    let load = accumulate || start > 0;
                    let epilogue = if last { epilogue } else { None };
                    wide_row(o, n, first, rows.start, spans, terms, load, epilogue);
                    first += WIDE;
                }
            }
            for p in first..panels.end {
                let j = p * NR;
                let tile = Tile {
                    o,
                    n,
                    j,
                    masks: [mask(n - j), mask(n.saturating_sub(j + 4))],
                    full: n - j >= NR,
                    load: accumulate || start > 0,
                    epilogue: if last { epilogue } else { None },
                };
                // Each span's operands for rows r..: its term's packed panel p from the span's
                // first row, and its term's rows of `lhs`.
                let operands = |r: usize| {
                    spans.iter().map(move |span| {
                        let (lhs, b) = terms[span.term];
                        Operands {
                            // SAFETY: panel p holds b.k rows of NR values from (p·b.k)·NR on;
                            // row rows.start + r of lhs has b.k values.
                            b: b.data.as_ptr().add((p * b.k + span.k0) * NR),
                            a: lhs.as_ptr().add((rows.start + r) * b.k + span.k0),
                            stride: b.k,
                            depth: span.depth,
                        }
                    })
                };
                let mut r = 0;
                while r + MR <= count {
                    tile.run::<MR>(r, operands(r));
                    r += MR;
                }
                match count - r {
                    5 => tile.run::<5>(r, operands(r)),
                    4 => tile.run::<4>(r, operands(r)),
                    3 => tile.run::<3>(r, operands(r)),
                    2 => tile.run::<2>(r, operands(r)),
                    1 => tile.run::<1>(r, operands(r)),
                    _ => {}
                }
            }
            if last {
                break;
            }
            start = end;
        }
    }

    /// Panels [`wide_row`] takes at once: 32 columns, as the AVX-512 f64 block's row.
    const WIDE: usize = 4;

    /// One row over [`WIDE`] whole panels from panel `p0` (columns `p0·NR..`, all before `n`):
    /// 8 independent accumulators where [`Tile::run`] with one row has 2 per panel, as in the
    /// f32 kernel (a single sequence's step is a chain of dependent multiply-adds). Each sum
    /// is formed as in [`Tile::run`], so the result is the same bits.
    ///
    /// # Safety
    /// As [`Tile::run`], for row `row` of `out` (`o` is its row 0) and of the terms' left
    /// sides, with `(p0 + WIDE)·NR ≤ n`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn wide_row(
        o: *mut f64,
        n: usize,
        p0: usize,
        row: usize,
        spans: &[super::Span],
        terms: &[(&[f64], &PackedB<f64>)],
        load: bool,
        epilogue: Option<Epilogue<f64>>,
    ) {
        debug_assert!((p0 + WIDE) * NR <= n);
        let j = p0 * NR;
        let o = o.add(j);
        let mut c = [_mm256_setzero_pd(); 2 * WIDE];
        if load {
            for (v, c) in c.iter_mut().enumerate() {
                *c = _mm256_loadu_pd(o.add(4 * v));
            }
        }
        for span in spans {
            let (lhs, b) = terms[span.term];
            let a = lhs.as_ptr().add(row * b.k + span.k0);
            let base = b.data.as_ptr().add((p0 * b.k + span.k0) * NR);
            let panel = b.k * NR;
            for ii in 0..span.depth {
                let x = _mm256_set1_pd(*a.add(ii));
                for (v, c) in c.iter_mut().enumerate() {
                    let bp = base.add((v / 2) * panel + ii * NR + (v % 2) * 4);
                    *c = _mm256_fmadd_pd(x, _mm256_loadu_pd(bp), *c);
                }
            }
        }
        if let Some(Epilogue { bias, relu }) = epilogue {
            if let Some(bias) = bias {
                for (v, c) in c.iter_mut().enumerate() {
                    *c = _mm256_add_pd(*c, _mm256_loadu_pd(bias.as_ptr().add(j + 4 * v)));
                }
            }
            if relu {
                for c in c.iter_mut() {
                    *c = relu_lanes(*c);
                }
            }
        }
        for (v, c) in c.iter().enumerate() {
            _mm256_storeu_pd(o.add(4 * v), *c);
        }
    }

    /// One span's operands for [`Tile::run`]: its packed panel from the span's first row, and
    /// its first row's left-hand values (row `q`'s at `a + q·stride`).
    struct Operands {
        b: *const f64,
        a: *const f64,
        stride: usize,
        depth: usize,
    }

    /// One pass of [`rows_product`] over columns `j..j + NR` of `out` (`o`, `[rows, n]`).
    #[derive(Clone, Copy)]
    struct Tile<'a> {
        o: *mut f64,
        n: usize,
        j: usize,
        /// The lanes of each register of a row that lie before column `n` (all bits of a lane
        /// set, as `vmaskmovpd` wants).
        masks: [__m256i; 2],
        /// Whether every column of the tile lies before `n` (plain loads and stores then).
        full: bool,
        /// Whether the sums start from `out` (else from zero).
        load: bool,
        epilogue: Option<Epilogue<'a, f64>>,
    }

    impl Tile<'_> {
        /// Loads the two registers of `NR` values at `at` (lanes past `n` as zero).
        #[inline(always)]
        unsafe fn load(&self, at: *const f64) -> (__m256d, __m256d) {
            if self.full {
                (_mm256_loadu_pd(at), _mm256_loadu_pd(at.add(4)))
            } else {
                let [m0, m1] = self.masks;
                (
                    _mm256_maskload_pd(at, m0),
                    _mm256_maskload_pd(at.wrapping_add(4), m1),
                )
            }
        }

        /// Rows `r..r + R`, `2·R` accumulators, summed over the spans' operands in order.
        #[inline(always)]
        unsafe fn run<const R: usize>(&self, r: usize, operands: impl Iterator<Item = Operands>) {
            let Tile { o, n, j, masks, .. } = *self;
            // SAFETY (all pointer arithmetic below): as in the f32 AVX2 kernel, with
            // registers of 4 values: rows r..r+R are < rows, columns j..j+NR lie before n
            // where `full`, else are masked to < n (the second register's pointer formed with
            // wrapping_add), ii < depth; each span's `a` starts R rows of at least `depth`
            // values, `stride` apart; its panel has `depth` rows of NR values from `b`, zero
            // beyond n.
            let mut c0 = [_mm256_setzero_pd(); R];
            let mut c1 = [_mm256_setzero_pd(); R];
            if self.load {
                for q in 0..R {
                    (c0[q], c1[q]) = self.load(o.add((r + q) * n + j));
                }
            }
            for Operands {
                b,
                a,
                stride,
                depth,
            } in operands
            {
                for ii in 0..depth {
                    let br = b.add(ii * NR);
                    let b0 = _mm256_loadu_pd(br);
                    let b1 = _mm256_loadu_pd(br.add(4));
                    for q in 0..R {
                        let x = _mm256_broadcast_sd(&*a.add(q * stride + ii));
                        c0[q] = _mm256_fmadd_pd(x, b0, c0[q]);
                        c1[q] = _mm256_fmadd_pd(x, b1, c1[q]);
                    }
                }
            }
            if let Some(Epilogue { bias, relu }) = self.epilogue {
                if let Some(bias) = bias {
                    // Without a bias nothing is added (adding +0 would turn -0 into +0).
                    let (bias0, bias1) = self.load(bias.as_ptr().wrapping_add(j));
                    for q in 0..R {
                        c0[q] = _mm256_add_pd(c0[q], bias0);
                        c1[q] = _mm256_add_pd(c1[q], bias1);
                    }
                }
                if relu {
                    for q in 0..R {
                        c0[q] = relu_lanes(c0[q]);
                        c1[q] = relu_lanes(c1[q]);
                    }
                }
            }
            let [m0, m1] = masks;
            for q in 0..R {
                let row = o.add((r + q) * n + j);
                if self.full {
                    _mm256_storeu_pd(row, c0[q]);
                    _mm256_storeu_pd(row.add(4), c1[q]);
                } else {
                    _mm256_maskstore_pd(row, m0, c0[q]);
                    _mm256_maskstore_pd(row.wrapping_add(4), m1, c1[q]);
                }
            }
        }
    }

    /// ReLU of 4 lanes, each exactly what `Element::relu` returns for it: x < 0 is false for
    /// NaN and -0, which pass through.
    #[inline(always)]
    unsafe fn relu_lanes(x: __m256d) -> __m256d {
        let negative = _mm256_cmp_pd::<_CMP_LT_OQ>(x, _mm256_setzero_pd());
        _mm256_blendv_pd(x, _mm256_setzero_pd(), negative)
    }

    /// Lanes of a 4-lane register to use when `left` columns remain: all bits set in each.
    #[inline(always)]
    unsafe fn mask(left: usize) -> __m256i {
        let lanes = _mm256_setr_epi64x(0, 1, 2, 3);
        _mm256_cmpgt_epi64(_mm256_set1_epi64x(left.min(4) as i64), lanes)
    }
}

use gemm_small::{small_gemm_avx2, small_gemm_avx512, small_gemm_generic};

mod activation {
    use super::Element;

    multiversion!(
        bias_activation_generic,
        bias_activation_avx2,
        bias_activation_avx512,
        (out: &mut [T], bias: Option<&[T]>, relu: bool),
        fn inner<T: Element>(out: &mut [T], bias: Option<&[T]>, relu: bool) {
            match (bias, relu) {
                (Some(b), true) => {
                    for row in out.chunks_exact_mut(b.len()) {
                        for (v, &b) in row.iter_mut().zip(b) {
                            *v = (*v + b).relu();
                        }
                    }
                }
                (Some(b), false) => {
                    for row in out.chunks_exact_mut(b.len()) {
                        for (v, &b) in row.iter_mut().zip(b) {
                            *v = (*v + b).fast_tanh();
                        }
                    }
                }
                (None, true) => out.iter_mut().for_each(|v| *v = v.relu()),
                (None, false) => out.iter_mut().for_each(|v| *v = v.fast_tanh()),
            }
        }
    );
}
use activation::{bias_activation_avx2, bias_activation_avx512, bias_activation_generic};

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::super::tanh::{CLAMP, TINY};
    use super::super::{tanh_f32, Element};
    use super::KernelLevel;

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
                (-4096..=4096)
                    .map(move |d| f32::from_bits((bits + d).clamp(0, u32::MAX as i64) as u32))
            });
        let values: Vec<f32> = sweep.chain(near).collect();
        for level in packed_levels() {
            let mut checked = 0;
            for chunk in values.chunks_exact(16) {
                for relu in [false, true] {
                    let got: Vec<f32> = match level {
                        // SAFETY: the CPU supports the level (`packed_levels`).
                        KernelLevel::Avx512 => unsafe {
                            super::avx512_f32::activate_lanes(chunk.try_into().unwrap(), relu)
                        }
                        .to_vec(),
                        _ => chunk
                            .chunks_exact(8)
                            // SAFETY: as above.
                            .flat_map(|c| unsafe {
                                super::avx2_f32::activate_lanes(c.try_into().unwrap(), relu)
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
    /// written (f64's tanh reads what the block stored), would carry into the result. Checked
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
                        let epilogue = Some(super::Epilogue {
                            bias: Some(&bias[..]),
                            relu: cases % 2 == 1,
                        });
                        let mut zeroed = vec![T::ZERO; rows * n];
                        super::packed_product(&mut zeroed, false, &terms, epilogue);
                        let nan = T::from_f64(f64::NAN);
                        let mut fresh = vec![std::mem::MaybeUninit::new(nan); rows * n];
                        let written = super::fresh_product(&mut fresh, &terms, epilogue);
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
                        let epilogue = Some(super::Epilogue {
                            bias: with_bias.then_some(&bias[..]),
                            relu,
                        });
                        let mut plain = if accumulate {
                            start.clone()
                        } else {
                            vec![T::ZERO; rows * n]
                        };
                        let generic = KernelLevel::Generic;
                        super::small_gemm_acc(generic, &mut plain, &x, &w_x, k_x, n);
                        super::small_gemm_acc(generic, &mut plain, &h, &w_h, k_h, n);
                        super::bias_activation_generic(
                            &mut plain,
                            with_bias.then_some(&bias[..]),
                            relu,
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
                            super::packed_product(&mut out, accumulate, &terms, epilogue);
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
}
