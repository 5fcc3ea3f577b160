//! Weights packed into panels for one level's micro-kernel ([`PackedB`]), and the panel
//! widths of each micro-kernel.

use super::dispatch::isa;
use crate::cpu::level::KernelLevel;
use crate::cpu::Element;

/// A right-hand matrix `[k, n]` packed once for [`packed_step`] and [`packed_gemm_acc`],
/// which multiply by it many times (`W_ih` and `W_hh` in every step): panels of
/// [`Kernel::panel_width`] columns (256 bytes of a row for AVX-512, 64 for AVX2), zero-padded,
/// each `k` rows of that many contiguous elements. A panel's rows are then one stream for the
/// hardware prefetcher and never collide in the L1 sets, as rows `n` elements apart do.
pub(crate) struct PackedB<T> {
    // Read by the micro-kernels, which exist on x86-64 only; elsewhere nothing is packed.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    data: Vec<T>,
    /// Where the panels start in `data`: the first element on a 64-byte boundary, so that no
    /// register's load of a panel row straddles two cache lines. Unaligned, the one-row
    /// recurrence of a 64 × 64 layer ran 1.2× slower in a C model of its loop (Intel Xeon,
    /// 2026-12-07).
    start: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    /// The micro-kernel it is packed for (`Avx2` or `Avx512`, which the CPU supports), which
    /// sets the panels' width.
    pub(super) isa: KernelLevel,
}

impl<T: Element> PackedB<T> {
    /// Packs `rhs` for `level`'s micro-kernel; `None` where that level has none (generic, a
    /// level this CPU lacks).
    pub(crate) fn new(level: KernelLevel, rhs: &[T], k: usize, n: usize) -> Option<Self> {
        if rhs.len() != k * n {
            return None;
        }
        let mut packed = Self::zeroed(level, k, n)?;
        let nr = packed.width();
        if k > 0 {
            for (p, panel) in packed.panels_mut().chunks_mut(k * nr).enumerate() {
                let j = p * nr;
                for (row, dst) in rhs.chunks(n).zip(panel.chunks_mut(nr)) {
                    let values = &row[j..(j + nr).min(n)];
                    dst[..values.len()].copy_from_slice(values);
                }
            }
        }
        Some(packed)
    }

    /// A `[k, n]` matrix of zeros packed for `level`'s micro-kernel, for its writer to fill
    /// through [`PackedB::panels_mut`] (the backward packs `[X | H_prev]` as it forms it).
    /// `None` as for [`PackedB::new`].
    pub(crate) fn zeroed(level: KernelLevel, k: usize, n: usize) -> Option<Self> {
        let isa = isa(level);
        if isa != level || n == 0 {
            return None;
        }
        let nr = T::panel_width(isa)?;
        let slack = ALIGN / std::mem::size_of::<T>();
        let data = vec![T::ZERO; n.div_ceil(nr) * k * nr + slack];
        let start = data.as_ptr().align_offset(ALIGN).min(slack);
        Some(Self {
            data,
            start,
            k,
            n,
            isa,
        })
    }

    /// Columns per panel.
    pub(crate) fn width(&self) -> usize {
        T::panel_width(self.isa).unwrap_or(self.n)
    }

    /// The panels, writable: `n.div_ceil(width)` panels of `k` rows of
    /// [`PackedB::width`] elements, one after the other; element `[i][j]` of the matrix is
    /// at `((j / width) · k + i) · width + j % width`, and the columns past `n` must stay
    /// zero.
    pub(crate) fn panels_mut(&mut self) -> &mut [T] {
        let len = self.n.div_ceil(self.width()) * self.k * self.width();
        &mut self.data[self.start..self.start + len]
    }

    /// The panels: `n.div_ceil(panel width)` panels of `k` rows, one after the other.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn panels(&self) -> &[T] {
        &self.data[self.start..]
    }
}

/// The alignment of [`PackedB`]'s panels in bytes: a cache line, and one AVX-512 register.
const ALIGN: usize = 64;

/// Columns of a packed panel for AVX-512: four registers.
pub(super) const NR: usize = 64;

/// Columns of a packed panel for AVX2: two registers.
pub(super) const NR_AVX2: usize = 16;

/// Columns of an f64 panel for AVX-512: four registers of 8 (256 bytes, as f32's 64).
pub(super) const NR_F64: usize = 32;

/// Columns of an f64 panel for AVX2: two registers of 4 (64 bytes, as f32's 16).
pub(super) const NR_AVX2_F64: usize = 8;
