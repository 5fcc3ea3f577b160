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

/// Fails unless `t` has exactly the dimensions `expected`.
pub(crate) fn check_dims(name: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    ensure(t.dims() == expected, || {
        format!("{name}: expected shape {expected:?}, found {:?}", t.dims())
    })
}
