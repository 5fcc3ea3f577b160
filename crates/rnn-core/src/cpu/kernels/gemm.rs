//! The safe entry points to the micro-kernels on packed weights: a product accumulated into
//! `out` ([`packed_gemm_acc`]), or a step's product written with bias and activation
//! ([`packed_step`]), each checking the extents before any `unsafe` call.

use std::mem::MaybeUninit;

use super::packing::PackedB;
use crate::cpu::Element;
use crate::cpu::Fused;

/// `out[r][j] += Σ_i lhs[r][i] · b[i][j]` on one thread, with the micro-kernel `b` is packed
/// for: `out` `[rows, n]`, `lhs` `[rows, k]`, row-major.
pub(crate) fn packed_gemm_acc<T: Element>(out: &mut [T], lhs: &[T], b: &PackedB<T>) {
    packed_product(out, true, &[(lhs, b)], None);
}

/// `out[r][j] = Σ_i lhs[r][i] · b[i][j]` ([`packed_gemm_acc`] without `out`'s values).
pub(crate) fn packed_gemm<T: Element>(out: &mut [T], lhs: &[T], b: &PackedB<T>) {
    packed_product(out, false, &[(lhs, b)], None);
}

/// One time step on packed weights: `out = act(x·W_ih + h·W_hh + bias)` with `input` =
/// `(x, W_ih)` and `state` = `(h, W_hh)`, or `out = act(out + h·W_hh + bias)` when `input` is
/// `None` (the projection is already in `out`). Bias and activation are applied before the
/// last pass's store of each block of `out` (passes cover 128 or 256 of the weights' rows at
/// a time), not by a separate pass over `out`.
pub(crate) fn packed_step<T: Element>(
    out: &mut [T],
    input: Option<(&[T], &PackedB<T>)>,
    state: (&[T], &PackedB<T>),
    bias: Option<&[T]>,
    activation: Fused,
) {
    let epilogue = Some(Epilogue { bias, activation });
    match input {
        Some(x) => packed_product(out, false, &[x, state], epilogue),
        None => packed_product(out, true, &[state], epilogue),
    }
}

/// What a product does to its sums before storing them: add `bias` (`[n]`), apply tanh or
/// ReLU.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a, T> {
    pub(crate) bias: Option<&'a [T]>,
    pub(crate) activation: Fused,
}

/// `out = [out +] Σ_t lhs_t · b_t`, then the epilogue: the terms share `out`'s rows and
/// columns and are summed in order, as one product over their concatenated shared dimension.
pub(super) fn packed_product<T: Element>(
    out: &mut [T],
    accumulate: bool,
    terms: &[(&[T], &PackedB<T>)],
    epilogue: Option<Epilogue<T>>,
) {
    check_extents(out.len(), terms, epilogue);
    // SAFETY: `out` is initialised and valid for its length; the extents were checked.
    unsafe { T::packed_kernel(out.as_mut_ptr(), out.len(), accumulate, terms, epilogue) };
}

/// [`packed_product`] into memory not yet written (`accumulate` false): returns `out`, every
/// element written.
pub(super) fn fresh_product<'o, T: Element>(
    out: &'o mut [MaybeUninit<T>],
    terms: &[(&[T], &PackedB<T>)],
    epilogue: Option<Epilogue<T>>,
) -> &'o mut [T] {
    check_extents(out.len(), terms, epilogue);
    let (ptr, len) = (out.as_mut_ptr().cast::<T>(), out.len());
    // SAFETY: as in `packed_product`. Without `accumulate` each kernel's first pass over each
    // block of rows and columns stores every element of it (every row, all its columns,
    // masked to n) before a later pass loads any, so no uninitialised value is read.
    unsafe { T::packed_kernel(ptr, len, false, terms, epilogue) };
    // SAFETY: every element was written above, and MaybeUninit<T> has T's layout.
    let out = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    out
}

#[cfg(test)]
thread_local! {
    /// Sequences this thread has run through a sequence kernel, for the tests to see that
    /// the one-sequence path is taken (its bits are the per-step path's, so they cannot).
    pub(crate) static SEQUENCE_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One sequence's whole recurrence written into `out` (`[seq, n]`, not yet written) where
/// the weights' level has a kernel for it (`sequence.rs`): each step as [`packed_step`] forms
/// it, the same bits. Returns `out` written, or gives it back unwritten where there is no
/// such kernel or no step (the caller then runs the steps one by one).
pub(super) fn fresh_sequence<'o, T: Element>(
    out: &'o mut [MaybeUninit<T>],
    s: &Sequence<T>,
) -> Result<&'o mut [T], &'o mut [MaybeUninit<T>]> {
    let n = s.w_hh.n;
    assert!(
        n > 0
            && s.w_hh.k == n
            && s.w_ih.n == n
            && s.w_ih.isa == s.w_hh.isa
            && s.h0.len() == n
            && out.len().is_multiple_of(n)
            && s.x.len() == out.len() / n * s.w_ih.k
            && s.epilogue.bias.is_none_or(|b| b.len() == n)
    );
    if out.is_empty() {
        return Err(out);
    }
    let (ptr, len) = (out.as_mut_ptr().cast::<T>(), out.len());
    // SAFETY: `out` is valid for `len` writes (at least one step), the extents were checked,
    // and the kernel writes each step's row before reading it.
    if !unsafe { T::sequence_kernel(ptr, len / n, s) } {
        return Err(out);
    }
    #[cfg(test)]
    SEQUENCE_RUNS.with(|runs| runs.set(runs.get() + 1));
    // SAFETY: the kernel wrote every element (every step's row, all columns up to n), and
    // MaybeUninit<T> has T's layout.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// What one sequence's recurrence reads: `x` `[seq, w_ih.k]`, `h0` `[w_hh.n]`.
#[derive(Clone, Copy)]
pub(crate) struct Sequence<'a, T> {
    pub(crate) x: &'a [T],
    pub(crate) w_ih: &'a PackedB<T>,
    pub(crate) h0: &'a [T],
    pub(crate) w_hh: &'a PackedB<T>,
    pub(crate) epilogue: Epilogue<'a, T>,
    pub(crate) backward: bool,
}

/// The extents the micro-kernels rely on: `out` `[rows, n]`, each term's left side
/// `[rows, b.k]`, the bias `[n]`.
pub(super) fn check_extents<T>(
    len: usize,
    terms: &[(&[T], &PackedB<T>)],
    epilogue: Option<Epilogue<T>>,
) {
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

/// A stretch of one term's shared dimension within a pass.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Default)]
pub(super) struct Span {
    pub(super) term: usize,
    pub(super) k0: usize,
    pub(super) depth: usize,
}

/// The spans of the terms' concatenated shared dimension `start..end` (at most one per
/// term).
#[cfg(target_arch = "x86_64")]
pub(super) fn spans<T>(
    terms: &[(&[T], &PackedB<T>)],
    start: usize,
    end: usize,
) -> ([Span; 2], usize) {
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
