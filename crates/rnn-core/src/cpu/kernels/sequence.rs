//! One sequence's whole recurrence in one call, at each level with a micro-kernel (`avx512_f32`,
//! `avx2_f32`, `avx512_f64`, `avx2_f64`): `out[t] = act(x_t·W_ih + h·W_hh + bias)` step after
//! step (from the last step when `backward`), `h` the previous step's output, `h0` first.
//!
//! Each step's sums are those the micro-kernels form, in the same order (from +0, over `x_t`,
//! then over `h`), so the bits are the same. One step's sums over `h` are a dependent chain
//! of multiply-adds per register. A row is taken in blocks of registers whose chains run side
//! by side, and the input projections are summed where they cost least:
//! - f32 ([`BESIDE`]): a block of 4 registers (64 columns for AVX-512, one packed panel; 32 for
//!   AVX2, two), whose chains leave an FMA unit idle; the next step's input projection is
//!   summed beside them in the same loop, off the chain's path.
//! - f64 ([`AHEAD`]): a block of 8 registers (64 columns for AVX-512, 32 for AVX2), enough
//!   chains to keep both FMA units busy, so every step's projection is summed first, in a loop
//!   of its own, and each step's loop reads only `W_hh` (32 KiB at hidden 64, which fits the
//!   L1 cache beside nothing else). On (1, 1000, 64, 64), Intel Xeon (Emerald Rapids), one
//!   thread: 0.41 ms against the per-step path's 0.51 (AVX-512) and 0.74 against 0.78 (AVX2),
//!   medians of 5 alternating rounds, 2026-12-08. The same loop as f32's, 4 registers with
//!   the projection beside, ran slower than the per-step path (0.76 against 0.65 ms at
//!   AVX-512, 2026-12-07): its two blocks of 32 columns ran one chain after the other; with
//!   8 registers and the projection beside, 0.62.

use std::arch::x86_64::*;

use super::gemm::Sequence;
use super::packing::{PackedB, NR, NR_AVX2, NR_AVX2_F64, NR_F64};
use super::{avx2_f32, avx2_f64, avx512_f32, avx512_f64};
use crate::cpu::{Element, Fused};

/// Where [`run`] sums each step's input projection: beside the previous step's chain.
const BESIDE: bool = false;
/// Where [`run`] sums each step's input projection: every step's first, in a loop of its own.
const AHEAD: bool = true;

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

impl Lanes for __m512d {
    type T = f64;
    type Mask = __mmask8;
    const LANES: usize = 8;
    const PANEL: usize = NR_F64;
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm512_setzero_pd()
    }
    #[inline(always)]
    unsafe fn splat(a: f64) -> Self {
        _mm512_set1_pd(a)
    }
    #[inline(always)]
    unsafe fn mask(left: usize) -> __mmask8 {
        avx512_f64::mask(left)
    }
    #[inline(always)]
    unsafe fn load(at: *const f64, mask: __mmask8) -> Self {
        _mm512_maskz_loadu_pd(mask, at)
    }
    #[inline(always)]
    unsafe fn store(at: *mut f64, mask: __mmask8, v: Self) {
        _mm512_mask_storeu_pd(at, mask, v)
    }
    #[inline(always)]
    unsafe fn load_panel(at: *const f64) -> Self {
        _mm512_loadu_pd(at)
    }
    #[inline(always)]
    unsafe fn fmadd(x: Self, b: Self, c: Self) -> Self {
        _mm512_fmadd_pd(x, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        _mm512_add_pd(a, b)
    }
    #[inline(always)]
    unsafe fn activate(x: Self, activation: Fused) -> Self {
        avx512_f64::activate(x, activation)
    }
}

impl Lanes for __m256d {
    type T = f64;
    type Mask = __m256i;
    const LANES: usize = 4;
    const PANEL: usize = NR_AVX2_F64;
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm256_setzero_pd()
    }
    #[inline(always)]
    unsafe fn splat(a: f64) -> Self {
        _mm256_set1_pd(a)
    }
    #[inline(always)]
    unsafe fn mask(left: usize) -> __m256i {
        avx2_f64::mask(left)
    }
    #[inline(always)]
    unsafe fn load(at: *const f64, mask: __m256i) -> Self {
        _mm256_maskload_pd(at, mask)
    }
    #[inline(always)]
    unsafe fn store(at: *mut f64, mask: __m256i, v: Self) {
        _mm256_maskstore_pd(at, mask, v)
    }
    #[inline(always)]
    unsafe fn load_panel(at: *const f64) -> Self {
        _mm256_loadu_pd(at)
    }
    #[inline(always)]
    unsafe fn fmadd(x: Self, b: Self, c: Self) -> Self {
        _mm256_fmadd_pd(x, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        _mm256_add_pd(a, b)
    }
    #[inline(always)]
    unsafe fn activate(x: Self, activation: Fused) -> Self {
        avx2_f64::activate(x, activation)
    }
}

/// [`run`] compiled for AVX-512F, f32.
///
/// # Safety
/// The CPU must support AVX-512F; `out` must be valid for `seq · n` writes; `seq ≥ 1`; the
/// extents are those [`super::gemm::fresh_sequence`] checks, the weights packed for AVX-512.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f32(out: *mut f32, seq: usize, s: &Sequence<f32>) {
    run::<__m512, 4, BESIDE>(out, seq, s)
}

/// [`run`] compiled for AVX2 and FMA, f32; as [`avx512_f32()`] for AVX2.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn avx2_f32(out: *mut f32, seq: usize, s: &Sequence<f32>) {
    run::<__m256, 4, BESIDE>(out, seq, s)
}

/// [`run`] compiled for AVX-512F, f64; as [`avx512_f32()`] for f64 lanes.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f64(out: *mut f64, seq: usize, s: &Sequence<f64>) {
    run::<__m512d, 8, AHEAD>(out, seq, s)
}

/// [`run`] compiled for AVX2 and FMA, f64; as [`avx512_f32()`] for AVX2 and f64 lanes.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn avx2_f64(out: *mut f64, seq: usize, s: &Sequence<f64>) {
    run::<__m256d, 8, AHEAD>(out, seq, s)
}

/// The recurrence (module docs) on lanes `L`, blocks of `V` registers, each step's input
/// projection summed [`AHEAD`] or [`BESIDE`] the chain. Everything it calls is inlined into
/// the caller, which is compiled for `L`'s instruction set (and so are no closures that touch
/// registers: a closure would not inherit the target features).
#[inline(always)]
unsafe fn run<L: Lanes, const V: usize, const PROJECT_AHEAD: bool>(
    out: *mut L::T,
    seq: usize,
    s: &Sequence<L::T>,
) {
    let (n, ki) = (s.w_hh.n, s.w_ih.k);
    let width = V * L::LANES;
    let order = |i: usize| if s.backward { seq - 1 - i } else { i };
    // SAFETY (all pointer arithmetic below): rows t < seq of `out` hold n values and of `x`
    // ki; each block's panel rows are `panel_rows`'; columns past n are masked off in the
    // loads and stores of `out` and the bias (pointers formed with wrapping_add, since a
    // masked register may start past the end).
    let row = |t: usize, j: usize| out.add(t * n).wrapping_add(j);
    if PROJECT_AHEAD {
        for t in 0..seq {
            project::<L, V>(row(t, 0), t, s);
        }
    } else {
        project::<L, V>(row(order(0), 0), order(0), s);
    }
    for i in 0..seq {
        let t = order(i);
        let h = if i == 0 {
            s.h0.as_ptr()
        } else {
            row(order(i - 1), 0).cast_const()
        };
        let next = (!PROJECT_AHEAD && i + 1 < seq).then(|| order(i + 1));
        for j in (0..n).step_by(width) {
            let masks = masks::<L, V>(n, j);
            let bh = panel_rows::<L, V>(s.w_hh, j);
            let mut c = load(row(t, j), masks);
            match next {
                Some(next) => {
                    let xn = s.x.as_ptr().add(next * ki);
                    let bi = panel_rows::<L, V>(s.w_ih, j);
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
                let b = load::<L, V>(bias.as_ptr().wrapping_add(j), masks);
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

/// Step `t`'s input projection, from +0 over `x_t`, into `out` (its row, `n` values).
#[inline(always)]
unsafe fn project<L: Lanes, const V: usize>(out: *mut L::T, t: usize, s: &Sequence<L::T>) {
    let (n, ki) = (s.w_hh.n, s.w_ih.k);
    // SAFETY: as in `run`.
    let xt = s.x.as_ptr().add(t * ki);
    for j in (0..n).step_by(V * L::LANES) {
        let bi = panel_rows::<L, V>(s.w_ih, j);
        let mut q = [L::zero(); V];
        for k in 0..ki {
            q = multiply_add(q, *xt.add(k), &bi, k);
        }
        store(out.wrapping_add(j), q, masks::<L, V>(n, j));
    }
}

/// Where each register of the block at column `j` reads row 0 of its panel of `b`; a row `k`
/// is `k · PANEL` further. A register wholly past the last panel (a block of two panels
/// where `b` has one) reads the first panel's rows instead: its lanes lie past n, so they
/// are never stored.
#[inline(always)]
unsafe fn panel_rows<L: Lanes, const V: usize>(b: &PackedB<L::T>, j: usize) -> [*const L::T; V] {
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
unsafe fn multiply_add<L: Lanes, const V: usize>(
    c: [L; V],
    a: L::T,
    rows: &[*const L::T; V],
    k: usize,
) -> [L; V] {
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
unsafe fn masks<L: Lanes, const V: usize>(n: usize, j: usize) -> [L::Mask; V] {
    let mut masks = [L::mask(0); V];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = L::mask(n.saturating_sub(j + v * L::LANES));
    }
    masks
}

/// A block of a row from `at` (its first column), masked.
#[inline(always)]
unsafe fn load<L: Lanes, const V: usize>(at: *const L::T, masks: [L::Mask; V]) -> [L; V] {
    let mut c = [L::zero(); V];
    for (v, c) in c.iter_mut().enumerate() {
        *c = L::load(at.wrapping_add(v * L::LANES), masks[v]);
    }
    c
}

/// `c` into a block of a row at `at` (its first column), masked.
#[inline(always)]
unsafe fn store<L: Lanes, const V: usize>(at: *mut L::T, c: [L; V], masks: [L::Mask; V]) {
    for (v, c) in c.iter().enumerate() {
        L::store(at.wrapping_add(v * L::LANES), masks[v], *c);
    }
}
