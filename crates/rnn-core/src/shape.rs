//! Run-time shape checks whose errors name the tensor, what was expected and what was found.

use candle_core::{Error, Result, Tensor};

/// Fails with `msg` unless `cond` holds.
pub(crate) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::Msg(msg()))
    }
}

/// Fails, instead of aborting the process as an allocation that fails does, unless `elements`
/// of `dtype` (`None`: more than a `usize` counts) can be allocated now: the memory is reserved
/// and given back at once, untouched.
pub(crate) fn ensure_allocatable(
    what: &str,
    elements: Option<usize>,
    dtype: candle_core::DType,
) -> Result<()> {
    let bytes = elements.and_then(|n| n.checked_mul(dtype.size_in_bytes()));
    let fits = bytes.is_some_and(|b| Vec::<u8>::new().try_reserve_exact(b).is_ok());
    ensure(fits, || {
        format!(
            "{what}: {} elements of {dtype:?} cannot be allocated on this machine",
            elements.map_or("more than 2^64".to_string(), |n| n.to_string())
        )
    })
}

/// Fails unless `t` has exactly the dimensions `expected`.
pub(crate) fn check_dims(name: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    ensure(t.dims() == expected, || {
        format!("{name}: expected shape {expected:?}, found {:?}", t.dims())
    })
}
