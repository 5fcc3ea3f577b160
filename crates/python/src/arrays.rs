//! numpy arrays to and from candle tensors, and `lengths` from any integer array.

use candle_core::{DType, Device, Tensor};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::error::rnn_error;

/// An input array as the dtype the model computes in: float32 and float64 arrays as they are,
/// anything else through `numpy.asarray(x, dtype)`.
pub(crate) fn tensor(
    py: Python<'_>,
    what: &str,
    x: &Bound<'_, PyAny>,
    dtype: Option<DType>,
    device: &Device,
) -> PyResult<Tensor> {
    let result = if let Ok(array) = x.cast::<PyArrayDyn<f32>>() {
        logical_order(array, device)
    } else if let Ok(array) = x.cast::<PyArrayDyn<f64>>() {
        logical_order(array, device)
    } else {
        let name = if dtype == Some(DType::F64) {
            "float64"
        } else {
            "float32"
        };
        let numpy = py.import("numpy")?;
        let array = numpy.call_method1("asarray", (x, name)).map_err(|e| {
            PyTypeError::new_err(format!("{what}: expected an array of numbers ({e})"))
        })?;
        return tensor(py, what, &array, dtype, device);
    };
    let tensor = result.map_err(|e| rnn_error(format!("{what}: {e}")))?;
    match dtype {
        Some(dtype) if dtype != tensor.dtype() => tensor.to_dtype(dtype).map_err(rnn_error),
        _ => Ok(tensor),
    }
}

/// Token ids for a model whose first layer is an embedding: integer arrays (and bools) as
/// int64, so no id is rounded through a float; float arrays as they are (the model refuses
/// any that is not a whole number).
pub(crate) fn token_ids(
    py: Python<'_>,
    what: &str,
    x: &Bound<'_, PyAny>,
    device: &Device,
) -> PyResult<Tensor> {
    let numpy = py.import("numpy")?;
    let array = numpy.call_method1("asarray", (x,)).map_err(|e| {
        PyTypeError::new_err(format!("{what}: expected an array of token ids ({e})"))
    })?;
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "i" | "u" | "b") {
        return tensor(py, what, &array, None, device);
    }
    let ids = numpy.call_method1("asarray", (array, "int64"))?;
    let ids = ids
        .cast::<PyArrayDyn<i64>>()
        .map_err(|e| PyTypeError::new_err(format!("{what}: {e}")))?;
    logical_order(ids, device).map_err(|e| rnn_error(format!("{what}: {e}")))
}

/// The array's values in C (row-major) order, whatever its strides: numpy hands over
/// Fortran-ordered arrays (`np.asfortranarray`, a `.T`, `np.load` of a Fortran-order `.npy`),
/// strided views and negative strides, and only a C-contiguous buffer can be read as it lies
/// (`as_slice` alone accepts a Fortran-contiguous one too, which would read it transposed).
fn logical_order<T: numpy::Element + candle_core::WithDType>(
    array: &Bound<'_, PyArrayDyn<T>>,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let array = array.readonly();
    let shape = array.shape().to_vec();
    match array.as_slice() {
        Ok(slice) if array.is_c_contiguous() => Tensor::from_slice(slice, shape, device),
        _ => Tensor::from_vec(array.as_array().iter().copied().collect(), shape, device),
    }
}

/// A tensor as a new numpy array (float32 or float64), adopting the copied-out buffer.
pub(crate) fn array<'py>(py: Python<'py>, tensor: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let shape = IxDyn(tensor.dims());
    let flat = tensor.flatten_all().map_err(rnn_error)?;
    let bad_shape = |e: numpy::ndarray::ShapeError| rnn_error(e);
    Ok(match tensor.dtype() {
        DType::F64 => {
            let values = flat.to_vec1::<f64>().map_err(rnn_error)?;
            ArrayD::from_shape_vec(shape, values)
                .map_err(bad_shape)?
                .into_pyarray(py)
                .into_any()
        }
        _ => {
            let values = flat
                .to_dtype(DType::F32)
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(rnn_error)?;
            ArrayD::from_shape_vec(shape, values)
                .map_err(bad_shape)?
                .into_pyarray(py)
                .into_any()
        }
    })
}

/// `lengths` as sequence lengths: any integer array or sequence, none negative.
pub(crate) fn lengths(value: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let numpy = value.py().import("numpy")?;
    let array = numpy.call_method1("asarray", (value,))?;
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    if kind != "i" && kind != "u" {
        return Err(PyTypeError::new_err(format!(
            "lengths: expected integers, found dtype {}",
            array.getattr("dtype")?.str()?
        )));
    }
    let values: Vec<i64> = array
        .call_method0("ravel")?
        .call_method0("tolist")?
        .extract()?;
    values
        .into_iter()
        .map(|l| {
            usize::try_from(l)
                .map_err(|_| rnn_error(format!("lengths: expected no negative length, found {l}")))
        })
        .collect()
}
