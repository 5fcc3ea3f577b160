//! `Model`: a loaded network called on numpy arrays, and its step-by-step `Stream`.

use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device, Tensor};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use rnn_core::Rnn;
use rnn_weights::{Form, Inputs, LoadedWeights, ReadOptions, StackConfig, TensorFile};

use crate::arrays::{array, lengths, tensor};
use crate::error::{message, rnn_error};

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
pub(crate) struct Model {
    pub(crate) file: TensorFile,
    pub(crate) read: ReadOptions,
    pub(crate) dtype: Option<DType>,
    pub(crate) device: Device,
    pub(crate) device_name: String,
    /// The stack's configuration as loaded: its masks apply to every call.
    pub(crate) config: StackConfig,
    pub(crate) f32: OnceLock<Rnn>,
    pub(crate) f64: OnceLock<Rnn>,
    pub(crate) first: Rnn,
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

pub(crate) fn build_rnn(
    weights: &LoadedWeights,
    read: &ReadOptions,
    device: &Device,
) -> Result<Rnn, String> {
    let config = weights
        .stack_config(read, Form::Sequence)
        .map_err(|e| message(&e))?;
    config
        .build(&weights.weights)
        .and_then(|rnn| rnn.to_device(device))
        .map_err(|e| format!("the weights do not form a valid RNN: {e}"))
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
        if input.elem_count() == 0 {
            // As the CLI's inputs: a shape that holds no data may claim any batch.
            return Err(rnn_error(format!(
                "x: expected at least one step of one sequence, as torch.nn.RNN requires, found \
                 shape {:?}",
                input.dims()
            )));
        }
        let dtype = input.dtype();
        let h0 = h0
            .map(|h| tensor(py, "h0", h, Some(dtype), &self.device))
            .transpose()?;
        let given = lengths.map(self::lengths).transpose()?;
        let rnn = self.rnn(dtype)?;
        let fixed = self.file.metadata().contains_key(rnn_weights::MODEL_INPUTS);
        let config = &self.config;
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
            inputs.apply_masks(config, rnn.batch_first())?;
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
    /// sequence's last step first, and for a model that masks steps (Keras's `Masking`, or a
    /// mask made before the RNN), which a stream cannot apply.
    #[pyo3(signature = (batch=1, h0=None))]
    fn stream(
        &self,
        py: Python<'_>,
        batch: usize,
        h0: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Stream> {
        self.config.check_stepwise().map_err(rnn_error)?;
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
pub(crate) struct Stream {
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
