//! Comparing a result with a reference, elementwise, as `numpy.allclose` does.

use candle_core::{CpuStorage, DType, Error, Result, Storage, Tensor};

/// `|got − want| ≤ atol + rtol·|want|`, numpy.allclose's test, as [`compare`] applies it.
///
/// The default, atol 1e-5 and rtol 1e-4, is looser than numpy's (atol 1e-8, rtol 1e-5):
/// float32 results computed in another order than the frameworks' differ in the last bits.
/// Every float32 fixture of this project passes it with room to spare (worst 3.0e-7).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance, times `|want|`.
    pub rtol: f64,
}

impl Default for Tolerance {
    /// atol 1e-5, rtol 1e-4.
    fn default() -> Self {
        Self {
            atol: 1e-5,
            rtol: 1e-4,
        }
    }
}

/// The outcome of comparing two tensors of the same shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Number of elements compared.
    pub elements: usize,
    /// Elements outside the tolerance (NaN on either side counts as outside).
    pub mismatches: usize,
    /// Largest `|got − want|`.
    pub max_abs: f64,
    /// Largest `|got − want| / |want|` over elements with `want ≠ 0`.
    pub max_rel: f64,
    /// The element furthest outside (or least inside) the tolerance: its index, got and want.
    pub worst: Option<(Vec<usize>, f64, f64)>,
}

impl Comparison {
    /// Whether every element is within the tolerance.
    pub fn passed(&self) -> bool {
        self.mismatches == 0
    }
}

/// Compares `got` with `want` elementwise; both are read as f64 on the CPU.
///
/// Unlike a bare `allclose`, the result says by how much and where: the largest absolute and
/// relative errors, the number of elements outside the tolerance, and the worst element.
/// `want` is the reference: `rtol` scales with `|want|`, so the test is not symmetric.
///
/// # Shapes
/// `got` and `want` must have the same shape; any rank, any dtype.
///
/// # Errors
/// When the shapes differ.
///
/// # Example
///
/// ```
/// use candle_core::{Device, Tensor};
/// use rnn_weights::{compare, Tolerance};
///
/// let dev = Device::Cpu;
/// let want = Tensor::new(&[[1.0f64, 2.0], [-3.0, 4.0]], &dev)?;
/// let got = Tensor::new(&[[1.0f64, 2.0001], [-3.0, 4.5]], &dev)?;
///
/// // [0, 1]: |0.0001| ≤ 1e-5 + 1e-4·2 = 2.1e-4, inside; [1, 1]: |0.5| > 1e-5 + 1e-4·4, outside.
/// let c = compare(&got, &want, Tolerance::default())?;
/// assert!(!c.passed());
/// assert_eq!((c.elements, c.mismatches), (4, 1));
/// assert!((c.max_abs - 0.5).abs() < 1e-12);
/// assert_eq!(c.worst, Some((vec![1, 1], 4.5, 4.0)));
///
/// // A looser tolerance passes: 0.5 ≤ 0 + 0.2·4.
/// let loose = Tolerance { atol: 0.0, rtol: 0.2 };
/// assert!(compare(&got, &want, loose)?.passed());
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn compare(got: &Tensor, want: &Tensor, tol: Tolerance) -> Result<Comparison> {
    if got.dims() != want.dims() {
        return Err(Error::Msg(format!(
            "expected shape {:?} (the reference), found {:?}",
            want.dims(),
            got.dims()
        )));
    }
    let as_f64 = |t: &Tensor| t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
    let (g, w) = (as_f64(got)?, as_f64(want)?);
    let mut result = Comparison {
        elements: g.len(),
        mismatches: 0,
        max_abs: 0.0,
        max_rel: 0.0,
        worst: None,
    };
    let mut worst_ratio = f64::NEG_INFINITY;
    let mut worst_at = None;
    for (i, (&g, &w)) in g.iter().zip(&w).enumerate() {
        // Equal infinities are close, as in numpy; NaN is never close.
        let diff = if g == w { 0.0 } else { (g - w).abs() };
        let allowed = tol.atol + tol.rtol * w.abs();
        let ratio = match diff {
            d if d.is_nan() => f64::INFINITY,
            0.0 => 0.0,
            d => d / allowed,
        };
        let close = diff <= allowed; // false for NaN
        if !close {
            result.mismatches += 1;
        }
        result.max_abs = result.max_abs.max(diff);
        if w != 0.0 {
            result.max_rel = result.max_rel.max(diff / w.abs());
        }
        if ratio > worst_ratio {
            worst_ratio = ratio;
            worst_at = Some((i, g, w));
        }
        if diff.is_nan() {
            result.max_abs = f64::NAN;
        }
    }
    result.worst = worst_at.map(|(i, g, w)| (unravel(i, want.dims()), g, w));
    Ok(result)
}

/// The multi-dimensional index of flat index `i` in a row-major tensor of `dims`.
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut index = vec![0; dims.len()];
    for (slot, &d) in index.iter_mut().zip(dims).rev() {
        *slot = i % d.max(1);
        i /= d.max(1);
    }
    index
}

/// NaN and infinite elements of a tensor: how many, and the first in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct NonFinite {
    /// Number of NaN or ±Inf elements.
    pub count: usize,
    /// Index of the first of them.
    pub first_index: Vec<usize>,
    /// Its value (NaN, inf or -inf).
    pub first_value: f64,
}

/// Counts the NaN and infinite elements of a floating-point tensor; `None` when all are finite.
///
/// # Shapes
/// `t`: any shape; the index returned is in `t`'s dimensions.
pub fn non_finite(t: &Tensor) -> Result<Option<NonFinite>> {
    if !t.device().is_cpu() || !t.is_contiguous() {
        let t = t.to_device(&candle_core::Device::Cpu)?.contiguous()?;
        return non_finite(&t);
    }
    // Read in place: a large input is screened without a copy of it (let alone an f64 one).
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::Msg("a CPU tensor without CPU storage".into()));
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::Msg("a contiguous tensor without contiguous offsets".into()))?;
    let found = match cpu {
        CpuStorage::F32(v) => first_non_finite(&v[start..end], |x| f64::from(*x)),
        CpuStorage::F64(v) => first_non_finite(&v[start..end], |x| *x),
        CpuStorage::F16(v) => first_non_finite(&v[start..end], |x| x.to_f64()),
        CpuStorage::BF16(v) => first_non_finite(&v[start..end], |x| x.to_f64()),
        _ => None,
    };
    Ok(found.map(|(first, first_value, count)| NonFinite {
        count,
        first_index: unravel(first, t.dims()),
        first_value,
    }))
}

/// The first non-finite value's index and value, and how many there are.
fn first_non_finite<T>(values: &[T], to_f64: impl Fn(&T) -> f64) -> Option<(usize, f64, usize)> {
    let mut bad = values
        .iter()
        .enumerate()
        .filter(|(_, v)| !to_f64(v).is_finite());
    let (first, value) = bad.next()?;
    Some((first, to_f64(value), 1 + bad.count()))
}

#[cfg(test)]
mod tests;
