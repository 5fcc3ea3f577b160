//! Devices by name (`cpu`, `cuda`, `cuda:N`) and `rnn.devices()`.

use candle_core::Device;
use pyo3::prelude::*;

use crate::error::{keyword, rnn_error};

/// Opens `cpu`, `cuda` or `cuda:N`; nothing falls back to the CPU.
pub(crate) fn open_device(name: &str) -> PyResult<(Device, String)> {
    let ordinal = match name {
        "cpu" => return Ok((Device::Cpu, "cpu".into())),
        "cuda" | "gpu" => Some(0),
        _ => name
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok()),
    };
    let Some(n) = ordinal else {
        return Err(rnn_error(keyword(
            "device",
            format!("`{name}` is not a device: expected cpu, cuda or cuda:N (N = 0, 1, …)"),
        )));
    };
    if !cfg!(feature = "cuda") {
        return Err(rnn_error(keyword(
            "device",
            format!(
                "cuda:{n}: this rnn module was built without CUDA support; build the wheel \
                 with `maturin build --features cuda` on a machine with a CUDA 13 toolkit"
            ),
        )));
    }
    let device = Device::new_cuda(n).map_err(|e| {
        rnn_error(keyword(
            "device",
            format!("cuda:{n}: cannot open the GPU: {e}"),
        ))
    })?;
    Ok((device, format!("cuda:{n}")))
}

/// The devices this module can compute on: `"cpu"`, then `"cuda:N"` for each GPU that opens
/// (none unless the module was built with CUDA).
#[pyfunction]
pub(crate) fn devices() -> Vec<String> {
    let mut found = vec!["cpu".to_string()];
    if cfg!(feature = "cuda") {
        found.extend((0..64).map_while(|n| Device::new_cuda(n).ok().map(|_| format!("cuda:{n}"))));
    }
    found
}
