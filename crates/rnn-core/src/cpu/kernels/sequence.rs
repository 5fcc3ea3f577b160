//! One sequence's whole recurrence in one call, in f32 at each level with a micro-kernel
//! (`avx512_f32`, `avx2_f32`): `out[t] = act(x_t·W_ih + h·W_hh + bias)` step after step (from
//! the last step when `backward`), `h` the previous step's output, `h0` first.
//!
//! Each step's sums are those the micro-kernels form, in the same order (from +0, over `x_t`,
//! then over `h`), so the bits are the same. One step's sums over `h` are a dependent chain
//! of multiply-adds per register, which leaves an FMA unit idle; the next step's input
//! projection is summed beside them in the same loop, off the chain's path. A row is taken in
//! blocks of 4 registers (64 columns for AVX-512, one packed panel; 32 for AVX2, two).
//!
//! f64 has no such kernel: the same loop on f64 lanes (a trait over the four kinds of
//! register) ran (1, 1000, 64, 64) slower than the per-step path, whose projection of every
//! step up front reuses each panel row for 6 rows: 0.76 against 0.65 ms (AVX-512) and 1.08
//! against 0.99 ms (AVX2), fastest of 7 alternating rounds, Intel Xeon, 2026-12-07.

use std::arch::x86_64::*;

use super::gemm::Sequence;
use super::packing::{PackedB, NR, NR_AVX2};
use super::{avx2_f32, avx512_f32};
use crate::cpu::{Element, Fused};

/// Registers per block of a row.
const V: usize = 4;

/// One register of lanes at one level, as [`run`] uses it.
trait Lanes: Copy {
    type T: Element;
    type Mask: Copy;
    const LANES: usize;
    /// Columns of a panel packed for this level and type.
    const PANEL: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(a: Self::T) -> Self;
    /// The lanes of a register that lie before column `n` when `left` columns remain.
    unsafe fn mask(left: usize) -> Self::Mask;
    unsafe fn load(at: *const Self::T, mask: Self::Mask) -> Self;
    unsafe fn store(at: *mut Self::T, mask: Self::Mask, v: Self);
    unsafe fn load_panel(at: *const Self::T) -> Self;
    /// `x · b + c`, fused, as the micro-kernels form it.
    unsafe fn fmadd(x: Self, b: Self, c: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    unsafe fn activate(x: Self, activation: Fused) -> Self;
}

impl Lanes for __m512 {
    type T = f32;
    type Mask = __mmask16;
    const LANES: usize = 16;
    const PANEL: usize = NR;
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(a: f32) -> Self {
        _mm512_set1_ps(a)
    }
    #[inline(always)]
    unsafe fn mask(left: usize) -> __mmask16 {
        avx512_f32::mask(left)
    }
    #[inline(always)]
    unsafe fn load(at: *const f32, mask: __mmask16) -> Self {
        _mm512_maskz_loadu_ps(mask, at)
    }
    #[inline(always)]
    unsafe fn store(at: *mut f32, mask: __mmask16, v: Self) {
        _mm512_mask_storeu_ps(at, mask, v)
    }
    #[inline(always)]
    unsafe fn load_panel(at: *const f32) -> Self {
        _mm512_loadu_ps(at)
    }
    #[inline(always)]
    unsafe fn fmadd(x: Self, b: Self, c: Self) -> Self {
        _mm512_fmadd_ps(x, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn activate(x: Self, activation: Fused) -> Self {
        avx512_f32::activate(x, activation)
    }
}

impl Lanes for __m256 {
    type T = f32;
    type Mask = __m256i;
    const LANES: usize = 8;
    const PANEL: usize = NR_AVX2;
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(a: f32) -> Self {
        _mm256_set1_ps(a)
    }
    #[inline(always)]
    unsafe fn mask(left: usize) -> __m256i {
        avx2_f32::mask(left)
    }
    #[inline(always)]
    unsafe fn load(at: *const f32, mask: __m256i) -> Self {
        _mm256_maskload_ps(at, mask)
    }
    #[inline(always)]
    unsafe fn store(at: *mut f32, mask: __m256i, v: Self) {
        _mm256_maskstore_ps(at, mask, v)
    }
    #[inline(always)]
    unsafe fn load_panel(at: *const f32) -> Self {
        _mm256_loadu_ps(at)
    }
    #[inline(always)]
    unsafe fn fmadd(x: Self, b: Self, c: Self) -> Self {
        _mm256_fmadd_ps(x, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn activate(x: Self, activation: Fused) -> Self {
        avx2_f32::activate(x, activation)
    }
}

/// [`run`] compiled for AVX-512F, f32.
///
/// # Safety
/// The CPU must support AVX-512F; `out` must be valid for `seq · n` writes; `seq ≥ 1`; the
/// extents are those [`super::gemm::fresh_sequence`] checks, the weights packed for AVX-512.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f32(out: *mut f32, seq: usize, s: &Sequence<f32>) {
    run::<__m512>(out, seq, s)
}

/// [`run`] compiled for AVX2 and FMA, f32; as [`avx512_f32`] for AVX2.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn avx2_f32(out: *mut f32, seq: usize, s: &Sequence<f32>) {
    run::<__m256>(out, seq, s)
}

/// The recurrence (module docs) on lanes `L`. Everything it calls is inlined into the
/// caller, which is compiled for `L`'s instruction set (and so are no closures that touch
/// registers: a closure would not inherit the target features).
#[inline(always)]
unsafe fn run<L: Lanes>(out: *mut L::T, seq: usize, s: &Sequence<L::T>) {
    let (n, ki) = (s.w_hh.n, s.w_ih.k);
    let width = V * L::LANES;
    let order = |i: usize| if s.backward { seq - 1 - i } else { i };
    // SAFETY (all pointer arithmetic below): rows t < seq of `out` hold n values and of `x`
    // ki; each block's panel rows are `panel_rows`'; columns past n are masked off in the
    // loads and stores of `out` and the bias (pointers formed with wrapping_add, since a
    // masked register may start past the end).
    let row = |t: usize, j: usize| out.add(t * n).wrapping_add(j);
    // The first step's projection.
    let first = s.x.as_ptr().add(order(0) * ki);
    for j in (0..n).step_by(width) {
        let bi = panel_rows::<L>(s.w_ih, j);
        let mut q = [L::zero(); V];
        for k in 0..ki {
            q = multiply_add(q, *first.add(k), &bi, k);
        }
        store(row(order(0), j), q, masks::<L>(n, j));
    }
    for i in 0..seq {
        let t = order(i);
        let h = if i == 0 {
            s.h0.as_ptr()
        } else {
            row(order(i - 1), 0).cast_const()
        };
        let next = (i + 1 < seq).then(|| order(i + 1));
        for j in (0..n).step_by(width) {
            let masks = masks::<L>(n, j);
            let bh = panel_rows::<L>(s.w_hh, j);
            let mut c = load(row(t, j), masks);
            match next {
                Some(next) => {
                    let xn = s.x.as_ptr().add(next * ki);
                    let bi = panel_rows::<L>(s.w_ih, j);
                    let mut q = [L::zero(); V];
                    let both = ki.min(n);
                    for k in 0..both {
                        c = multiply_add(c, *h.add(k), &bh, k);
                        q = multiply_add(q, *xn.add(k), &bi, k);
                    }
                    for k in both..n {
                        c = multiply_add(c, *h.add(k), &bh, k);
                    }
                    for k in both..ki {
                        q = multiply_add(q, *xn.add(k), &bi, k);
                    }
                    store(row(next, j), q, masks);
                }
                None => {
                    for k in 0..n {
                        c = multiply_add(c, *h.add(k), &bh, k);
                    }
                }
            }
            if let Some(bias) = s.epilogue.bias {
                // Without a bias nothing is added: adding +0 would turn a sum of -0 into +0.
                let b = load::<L>(bias.as_ptr().wrapping_add(j), masks);
                for (c, b) in c.iter_mut().zip(b) {
                    *c = L::add(*c, b);
                }
            }
            for c in &mut c {
                *c = L::activate(*c, s.epilogue.activation);
            }
            store(row(t, j), c, masks);
        }
    }
}

/// Where each register of the block at column `j` reads row 0 of its panel of `b`; a row `k`
/// is `k · PANEL` further. A register wholly past the last panel (a block of two panels
/// where `b` has one) reads the first panel's rows instead: its lanes lie past n, so they
/// are never stored.
#[inline(always)]
unsafe fn panel_rows<L: Lanes>(b: &PackedB<L::T>, j: usize) -> [*const L::T; V] {
    let panels = b.n.div_ceil(L::PANEL);
    let base = b.panels().as_ptr();
    let mut at = [base; V];
    for (v, at) in at.iter_mut().enumerate() {
        let column = j + v * L::LANES;
        if column / L::PANEL < panels {
            // Panel column / PANEL holds b.k rows of PANEL values from (panel · b.k) · PANEL,
            // and column % PANEL + LANES ≤ PANEL. Formed with wrapping_add: with b.k = 0 (an
            // input of no features) the panels are empty and the address lies past them,
            // though no row of them is ever read.
            *at = base.wrapping_add((column / L::PANEL * b.k) * L::PANEL + column % L::PANEL);
        }
    }
    at
}

/// `c + a · (row k of each register's panel)`, one multiply-add per register.
#[inline(always)]
unsafe fn multiply_add<L: Lanes>(c: [L; V], a: L::T, rows: &[*const L::T; V], k: usize) -> [L; V] {
    let a = L::splat(a);
    let mut c = c;
    for (c, row) in c.iter_mut().zip(rows) {
        // SAFETY: the caller's: k < the panel's rows.
        *c = L::fmadd(a, L::load_panel(row.add(k * L::PANEL)), *c);
    }
    c
}

/// The masks of the registers of the block at column `j` of a row of `n` columns.
#[inline(always)]
unsafe fn masks<L: Lanes>(n: usize, j: usize) -> [L::Mask; V] {
    let mut masks = [L::mask(0); V];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = L::mask(n.saturating_sub(j + v * L::LANES));
    }
    masks
}

/// A block of a row from `at` (its first column), masked.
#[inline(always)]
unsafe fn load<L: Lanes>(at: *const L::T, masks: [L::Mask; V]) -> [L; V] {
    let mut c = [L::zero(); V];
    for (v, c) in c.iter_mut().enumerate() {
        *c = L::load(at.wrapping_add(v * L::LANES), masks[v]);
    }
    c
}

/// `c` into a block of a row at `at` (its first column), masked.
#[inline(always)]
unsafe fn store<L: Lanes>(at: *mut L::T, c: [L; V], masks: [L::Mask; V]) {
    for (v, c) in c.iter().enumerate() {
        L::store(at.wrapping_add(v * L::LANES), masks[v], *c);
    }
}
