//! The output allocated once, uninitialised, and handed out in pieces: a piece is written
//! in full before it is read ([`written_where_used`], [`Blank`]).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::gemm::{fresh_product, fresh_sequence, Epilogue, Sequence};
use super::packing::PackedB;
use crate::cpu::Element;
use crate::cpu::Fused;

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
        activation: Fused,
    ) -> &'a mut [T] {
        let out = std::mem::take(&mut self.data);
        let written = fresh_product(out, &[input, state], Some(Epilogue { bias, activation }));
        self.written.fetch_add(written.len(), Ordering::Relaxed);
        written
    }

    /// The piece as one sequence's outputs `[seq, n]`, written by its whole recurrence on
    /// packed weights (each step as [`Blank::written_by_step`] writes it, the same bits)
    /// where the weights' level has a kernel for that; else the piece back, unwritten.
    pub(crate) fn written_by_sequence(mut self, s: &Sequence<T>) -> Result<&'a mut [T], Self> {
        let out = std::mem::take(&mut self.data);
        match fresh_sequence(out, s) {
            Ok(written) => {
                self.written.fetch_add(written.len(), Ordering::Relaxed);
                Ok(written)
            }
            Err(data) => {
                self.data = data;
                Err(self)
            }
        }
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
