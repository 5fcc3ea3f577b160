//! The `rnn` Python module's native part (`rnn._rnn`): `load` reads a weights file through
//! rnn-weights with the CLI's reading options (by their long names, as keywords), and a
//! `Model` runs it on numpy arrays with the GIL released. The pure-Python package around it
//! (`python/rnn/`) re-exports these and adds `rnn.dask`.
//!
//! Copies: an input is copied once into the tensor rnn-core computes on (candle tensors own
//! their storage, and this crate has no `unsafe` to borrow numpy's), and the output once out
//! of it into a vector numpy adopts without copying again.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device, Tensor};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use rnn_core::{MaskedSteps, MergeMode, Nonlinearity, Rnn};
use rnn_weights::{Form, Inputs, LoadedWeights, Naming, ReadOptions, Selection, TensorFile};

create_exception!(
    rnn,
    RnnError,
    PyValueError,
    "A file, a shape or an option rnn cannot use; the message is the rnn CLI's."
);

/// The keywords [`load`] takes: the CLI's reading options by their long names.
const OPTIONS: &[&str] = &[
    "nonlinearity",
    "go_backwards",
    "merge_mode",
    "masked_steps",
    "mask_value",
    "clip",
    "batch_first",
    "time_major",
    "weights_format",
    "prefix",
    "stack",
    "dtype",
    "device",
];

fn rnn_error(error: impl std::fmt::Display) -> PyErr {
    RnnError::new_err(error.to_string())
}

/// One value or a list of them (a string may also hold them comma-separated, as the flag does,
/// unless it is one parametrised activation such as `affine(1.0,0.5)`).
fn names(value: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if value.is_instance_of::<PyString>() {
        let text: String = value.extract()?;
        if text.contains('(') {
            return Ok(vec![text]);
        }
        return Ok(text.split(',').map(|s| s.trim().to_string()).collect());
    }
    value.extract::<Vec<String>>()
}

fn parse_each<T>(
    option: &str,
    value: &Bound<'_, PyAny>,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> PyResult<Vec<T>> {
    names(value)?
        .iter()
        .map(|name| {
            parse(name).ok_or_else(|| {
                rnn_error(format!(
                    "{option}: `{name}` is not one of the accepted values: {expected}"
                ))
            })
        })
        .collect()
}

fn floats(value: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    match value.extract::<f64>() {
        Ok(one) => Ok(vec![one]),
        Err(_) => value.extract::<Vec<f64>>(),
    }
}

/// What `load`'s keywords say, checked: the reading options, the dtype and the device.
struct Options {
    read: ReadOptions,
    dtype: Option<DType>,
    device: Device,
    device_name: String,
}

fn parse_dtype(name: &str) -> Option<DType> {
    match name {
        "float32" | "f32" => Some(DType::F32),
        "float64" | "f64" => Some(DType::F64),
        _ => None,
    }
}

fn parse_options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
    let mut read = ReadOptions::default();
    let mut selection = Selection::default();
    let mut dtype = None;
    let mut device_name = "cpu".to_string();
    let mut time_major = false;
    let mut batch_first = false;
    if let Some(kwargs) = kwargs {
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            if value.is_none() {
                continue;
            }
            match key.as_str() {
                "nonlinearity" => {
                    read.nonlinearity = parse_each(
                        "--nonlinearity",
                        &value,
                        Nonlinearity::from_name,
                        "tanh, relu, sigmoid, hard_sigmoid, linear, elu, selu, softsign, \
                         softplus, gelu, silu (swish), exponential",
                    )?
                }
                "go_backwards" => read.go_backwards = value.extract()?,
                "merge_mode" => {
                    read.merge_mode = parse_each(
                        "--merge-mode",
                        &value,
                        MergeMode::from_name,
                        "concat, sum, ave, mul, none",
                    )?
                }
                "masked_steps" => {
                    let name: String = value.extract()?;
                    let name = name.replace('_', "-");
                    read.masked_steps = Some(MaskedSteps::from_name(&name).ok_or_else(|| {
                        rnn_error(format!(
                            "--masked-steps: `{name}` is not one of the accepted values: zeros, \
                             repeat-last"
                        ))
                    })?)
                }
                "mask_value" => read.mask_value = Some(value.extract()?),
                "clip" => read.clip = floats(&value)?,
                "batch_first" => batch_first = value.extract()?,
                "time_major" => time_major = value.extract()?,
                "weights_format" => {
                    let name: String = value.extract()?;
                    selection.naming = Some(match name.as_str() {
                        "pytorch" => Naming::Pytorch,
                        "keras" => Naming::Keras,
                        "tf1" => Naming::Tf1,
                        "article" => Naming::Article,
                        other => {
                            return Err(rnn_error(format!(
                                "--weights-format: `{other}` is not one of the accepted values: \
                                 pytorch, keras, tf1, article"
                            )))
                        }
                    })
                }
                "prefix" => selection.prefix = Some(value.extract()?),
                "stack" => selection.stack = names(&value)?,
                "dtype" => {
                    let name: String = value.extract()?;
                    dtype = Some(parse_dtype(&name).ok_or_else(|| {
                        rnn_error(format!(
                            "--dtype: `{name}` is not one of the accepted values: float32, float64"
                        ))
                    })?)
                }
                "device" => device_name = value.extract()?,
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "load() got an unexpected keyword argument '{other}'; the options are: {}",
                        OPTIONS.join(", ")
                    )))
                }
            }
        }
    }
    if batch_first && time_major {
        return Err(rnn_error("--batch-first: cannot be used with --time-major"));
    }
    read.batch_first = match (batch_first, time_major) {
        (_, true) => Some(false),
        (true, false) => Some(true),
        (false, false) => None,
    };
    if selection.prefix.is_some() && !selection.stack.is_empty() {
        return Err(rnn_error("--prefix: cannot be used with --stack"));
    }
    read.selection = selection;
    let (device, device_name) = open_device(&device_name)?;
    Ok(Options {
        read,
        dtype,
        device,
        device_name,
    })
}

/// Opens `cpu`, `cuda` or `cuda:N`; nothing falls back to the CPU.
fn open_device(name: &str) -> PyResult<(Device, String)> {
    let ordinal = match name {
        "cpu" => return Ok((Device::Cpu, "cpu".into())),
        "cuda" | "gpu" => Some(0),
        _ => name
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok()),
    };
    let Some(n) = ordinal else {
        return Err(rnn_error(format!(
            "`{name}` is not a device: expected cpu, cuda or cuda:N (N = 0, 1, …)"
        )));
    };
    if !cfg!(feature = "cuda") {
        return Err(rnn_error(format!(
            "--device cuda:{n}: this rnn module was built without CUDA support; build the wheel \
             with `maturin build --features cuda` on a machine with a CUDA 13 toolkit"
        )));
    }
    let device = Device::new_cuda(n)
        .map_err(|e| rnn_error(format!("--device cuda:{n}: cannot open the GPU: {e}")))?;
    Ok((device, format!("cuda:{n}")))
}

/// The devices this module can compute on: `"cpu"`, then `"cuda:N"` for each GPU that opens
/// (none unless the module was built with CUDA).
#[pyfunction]
fn devices() -> Vec<String> {
    let mut found = vec!["cpu".to_string()];
    if cfg!(feature = "cuda") {
        found.extend((0..64).map_while(|n| Device::new_cuda(n).ok().map(|_| format!("cuda:{n}"))));
    }
    found
}

/// A loaded RNN, ready to run on numpy arrays.
///
/// `model(x, h0=None, lengths=None) -> (output, h_n)`:
///
/// - `x`: `[seq, batch, input_size]` (`[batch, seq, input_size]` when `batch_first`), or one
///   sequence `[seq, input_size]`; float32 or float64 (others are converted to float32).
/// - `h0`: `[num_layers * num_directions, batch, hidden_size]`, zeros when `None`.
/// - `lengths`: one integer per sequence, each at most `seq`; steps past it are padding.
/// - returns `output` like `x` with the top layer's output features, and `h_n` like `h0`
///   (`None` when the layers' hidden sizes differ, so their states cannot be stacked).
///
/// The result has the input's dtype, unless `load` was given `dtype=`, which fixes the dtype
/// of every computation and result. The GIL is released while it computes.
///
/// Raises `rnn.RnnError` (a `ValueError`) when a shape does not fit.
#[pyclass(frozen, module = "rnn")]
struct Model {
    file: TensorFile,
    read: ReadOptions,
    dtype: Option<DType>,
    device: Device,
    device_name: String,
    mask_value: Option<f64>,
    f32: OnceLock<Rnn>,
    f64: OnceLock<Rnn>,
    first: Rnn,
}

impl Model {
    fn build(&self, dtype: DType) -> Result<Rnn, String> {
        let weights = LoadedWeights::select(&self.file, dtype, &self.read.selection)
            .map_err(|e| e.to_string())?;
        build_rnn(&weights, &self.read, &self.device)
    }

    /// The network in `dtype`, built on first use.
    fn rnn(&self, dtype: DType) -> PyResult<&Rnn> {
        if dtype == self.first.dtype() {
            return Ok(&self.first);
        }
        let cell = if dtype == DType::F64 {
            &self.f64
        } else {
            &self.f32
        };
        if let Some(rnn) = cell.get() {
            return Ok(rnn);
        }
        let rnn = self.build(dtype).map_err(rnn_error)?;
        Ok(cell.get_or_init(|| rnn))
    }
}

fn build_rnn(weights: &LoadedWeights, read: &ReadOptions, device: &Device) -> Result<Rnn, String> {
    let config = weights
        .stack_config(read, Form::Sequence)
        .map_err(|e| e.to_string())?;
    config
        .build(&weights.weights)
        .and_then(|rnn| rnn.to_device(device))
        .map_err(|e| format!("the weights do not form a valid RNN: {e}"))
}

/// An input array as the dtype the model computes in: float32 and float64 arrays as they are,
/// anything else through `numpy.asarray(x, dtype)`.
fn tensor(
    py: Python<'_>,
    what: &str,
    x: &Bound<'_, PyAny>,
    dtype: Option<DType>,
    device: &Device,
) -> PyResult<Tensor> {
    let result = if let Ok(array) = x.cast::<PyArrayDyn<f32>>() {
        let array = array.readonly();
        let shape = array.shape().to_vec();
        match array.as_slice() {
            Ok(slice) => Tensor::from_slice(slice, shape, device),
            Err(_) => Tensor::from_vec(array.as_array().iter().copied().collect(), shape, device),
        }
    } else if let Ok(array) = x.cast::<PyArrayDyn<f64>>() {
        let array = array.readonly();
        let shape = array.shape().to_vec();
        match array.as_slice() {
            Ok(slice) => Tensor::from_slice(slice, shape, device),
            Err(_) => Tensor::from_vec(array.as_array().iter().copied().collect(), shape, device),
        }
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

/// A tensor as a new numpy array (float32 or float64), adopting the copied-out buffer.
fn array<'py>(py: Python<'py>, tensor: &Tensor) -> PyResult<Bound<'py, PyAny>> {
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
fn lengths(value: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
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

#[pymethods]
impl Model {
    /// Runs the model: see the class's documentation for the shapes.
    #[pyo3(signature = (x, h0=None, lengths=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        h0: Option<&Bound<'py, PyAny>>,
        lengths: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let input = tensor(py, "x", x, self.dtype, &self.device)?;
        let dtype = input.dtype();
        let h0 = h0
            .map(|h| tensor(py, "h0", h, Some(dtype), &self.device))
            .transpose()?;
        let given = lengths.map(self::lengths).transpose()?;
        let rnn = self.rnn(dtype)?;
        let fixed = self.file.metadata().contains_key(rnn_weights::MODEL_INPUTS);
        let mask_value = self.mask_value;
        let file = &self.file;
        let result = py.detach(move || -> Result<(Tensor, Option<Tensor>), String> {
            let mut inputs = Inputs {
                form: Form::Sequence,
                input,
                h0,
                lengths: given,
                names: vec!["input".into()],
            };
            if fixed {
                inputs = inputs
                    .with_model_inputs(file, dtype)
                    .map_err(|e| e.to_string())?;
            }
            if let Some(mask_value) = mask_value {
                let from_mask =
                    rnn_core::lengths_from_mask(&inputs.input, mask_value, rnn.batch_first())
                        .map_err(|e| format!("x: {e}"))?;
                if let Some(given) = &inputs.lengths {
                    if *given != from_mask {
                        return Err(format!(
                            "lengths {given:?} disagree with the mask of value {mask_value}, \
                             which gives {from_mask:?}"
                        ));
                    }
                }
                inputs.lengths = Some(from_mask);
            }
            let (output, states) = rnn
                .forward_states(&inputs.input, inputs.h0.as_ref(), inputs.lengths.as_deref())
                .map_err(|e| format!("cannot run the model on the inputs: {e}"))?;
            let h_n = rnn.stack_states(&states).map_err(|e| e.to_string())?;
            Ok((output, h_n))
        });
        let (output, h_n) = result.map_err(rnn_error)?;
        let output = array(py, &output)?;
        let h_n = match h_n {
            Some(h_n) => array(py, &h_n)?,
            None => py.None().into_bound(py),
        };
        PyTuple::new(py, [output, h_n])
    }

    /// A stream that feeds the model one time step at a time, its states kept between steps.
    ///
    /// - `batch`: sequences fed side by side.
    /// - `h0`: `[num_layers, batch, hidden_size]`, zeros when `None`.
    ///
    /// Raises `rnn.RnnError` for a bidirectional or `go_backwards` model, which needs a
    /// sequence's last step first.
    #[pyo3(signature = (batch=1, h0=None))]
    fn stream(
        &self,
        py: Python<'_>,
        batch: usize,
        h0: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Stream> {
        let dtype = self.first.dtype();
        let h0 = h0
            .map(|h| tensor(py, "h0", h, Some(dtype), &self.device))
            .transpose()?;
        let stream = self.first.stream(batch, h0.as_ref()).map_err(rnn_error)?;
        Ok(Stream {
            stream: Mutex::new(stream),
            device: self.device.clone(),
        })
    }

    /// Features per input step.
    #[getter]
    fn input_size(&self) -> usize {
        self.first.input_size()
    }

    /// Hidden size of the layers (a list when they differ).
    #[getter]
    fn hidden_size<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let sizes = self.first.hidden_sizes();
        if sizes.iter().all(|&h| h == sizes[0]) {
            Ok(sizes[0].into_pyobject(py)?.into_any())
        } else {
            Ok(PyList::new(py, sizes)?.into_any())
        }
    }

    /// Number of stacked layers.
    #[getter]
    fn num_layers(&self) -> usize {
        self.first.num_layers()
    }

    /// Whether the (first) layer runs both directions.
    #[getter]
    fn bidirectional(&self) -> bool {
        self.first.num_directions() == 2
    }

    /// Whether `x` and `output` are `[batch, seq, features]`.
    #[getter]
    fn batch_first(&self) -> bool {
        self.first.batch_first()
    }

    /// Where it computes: `"cpu"` or `"cuda:N"`.
    #[getter]
    fn device(&self) -> String {
        self.device_name.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "rnn.Model({}, input_size={}, hidden_size={:?}, num_layers={}, bidirectional={}, \
             batch_first={}, device={:?})",
            self.file.path().display(),
            self.first.input_size(),
            self.first.hidden_sizes(),
            self.first.num_layers(),
            self.first.num_directions() == 2,
            self.first.batch_first(),
            self.device_name
        )
    }
}

/// A model fed one time step at a time (`Model.stream()`).
#[pyclass(frozen, module = "rnn")]
struct Stream {
    stream: Mutex<rnn_core::Stream>,
    device: Device,
}

#[pymethods]
impl Stream {
    /// Feeds one step `x` `[batch, input_size]`; returns the top layer's new state
    /// `[batch, hidden_size]`, the model's output for this step. Releases the GIL.
    fn step<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let dtype = self
            .stream
            .lock()
            .map_err(|_| rnn_error("the stream failed in another thread"))?
            .rnn()
            .dtype();
        let x = tensor(py, "x", x, Some(dtype), &self.device)?;
        let output = py.detach(|| -> Result<Tensor, String> {
            let mut stream = self
                .stream
                .lock()
                .map_err(|_| "the stream failed in another thread".to_string())?;
            stream.step(&x).map_err(|e| e.to_string())
        });
        array(py, &output.map_err(rnn_error)?)
    }

    /// Steps fed so far.
    #[getter]
    fn steps(&self) -> PyResult<usize> {
        Ok(self
            .stream
            .lock()
            .map_err(|_| rnn_error("the stream failed in another thread"))?
            .steps())
    }
}

/// Loads the RNN in the file at `path` (safetensors, torch, ONNX, Keras, TF checkpoint, …).
///
/// Keywords: the `rnn` CLI's reading options by their long names: `nonlinearity` (one name, or
/// one per layer), `go_backwards`, `merge_mode`, `masked_steps` (`"zeros"`,
/// `"repeat-last"`), `mask_value`, `clip`, `batch_first`, `time_major`, `weights_format`,
/// `prefix`, `stack`, `dtype` (`"float32"`, `"float64"`; by default each call computes in its
/// input's dtype), `device` (`"cpu"`, `"cuda"`, `"cuda:N"`).
///
/// Raises `TypeError` for a keyword that is none of these, and `rnn.RnnError` (a `ValueError`)
/// with the CLI's message for a file, a structure or an option rnn cannot use.
#[pyfunction]
#[pyo3(signature = (path, **options))]
fn load(py: Python<'_>, path: PathBuf, options: Option<&Bound<'_, PyDict>>) -> PyResult<Model> {
    let options = parse_options(options)?;
    let dtype = options.dtype.unwrap_or(DType::F32);
    let read = options.read;
    let device = options.device;
    let (file, first, mask_value) = py
        .detach(|| -> Result<_, String> {
            let file =
                TensorFile::read(&path).map_err(|e| format!("cannot read the model: {e}"))?;
            let weights =
                LoadedWeights::select(&file, dtype, &read.selection).map_err(|e| e.to_string())?;
            let mask_value = weights
                .stack_config(&read, Form::Sequence)
                .map_err(|e| e.to_string())?
                .mask_value;
            let first = build_rnn(&weights, &read, &device)?;
            Ok((file, first, mask_value))
        })
        .map_err(rnn_error)?;
    Ok(Model {
        file,
        read,
        dtype: options.dtype,
        device,
        device_name: options.device_name,
        mask_value,
        f32: OnceLock::new(),
        f64: OnceLock::new(),
        first,
    })
}

/// The `rnn._rnn` extension module.
#[pymodule]
fn _rnn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_class::<Model>()?;
    m.add_class::<Stream>()?;
    m.add("RnnError", m.py().get_type::<RnnError>())?;
    Ok(())
}
