//! `Model`: a loaded network called on numpy arrays, and its step-by-step `Stream`.

use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device, Tensor};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use rnn_weights::{Form, Inputs, LoadedWeights, ReadOptions, TensorFile};

use crate::arrays::{array, lengths, tensor, token_ids};
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
/// A whole model (a Keras file whose layers around the RNN `rnn` runs: `Embedding`, `Masking`,
/// `Dense`, …; an ONNX graph of RNN nodes with the ops around them that `rnn` evaluates) takes
/// its own input instead: token ids (any integer dtype) where its first layer is an
/// embedding (`[batch, seq]` for Keras; as the graph's input says for ONNX), else floats; it
/// returns `(output, None)`, `output` being the model's output as Keras's `predict` or ONNX
/// Runtime gives it (an ONNX graph of several outputs: all of them, in the graph's order,
/// named by `output_names`), and takes no `h0` or `lengths` (its layers make its masks).
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
    pub(crate) f32: OnceLock<Built>,
    pub(crate) f64: OnceLock<Built>,
    pub(crate) first: Built,
}

/// The library's model (the pipeline the CLI runs too), in one dtype.
pub(crate) type Built = rnn_weights::Model;

impl Model {
    /// The model in `dtype`, built on first use.
    fn model(&self, dtype: DType) -> PyResult<&Built> {
        if dtype == self.first.rnn().dtype() {
            return Ok(&self.first);
        }
        let cell = if dtype == DType::F64 {
            &self.f64
        } else {
            &self.f32
        };
        if let Some(model) = cell.get() {
            return Ok(model);
        }
        let model = build(&self.file, dtype, &self.read, &self.device).map_err(rnn_error)?;
        Ok(cell.get_or_init(|| model))
    }
}

/// The model `read` picks and configures from `file`, in `dtype`, on `device`.
pub(crate) fn build(
    file: &TensorFile,
    dtype: DType,
    read: &ReadOptions,
    device: &Device,
) -> Result<Built, String> {
    let weights = LoadedWeights::select(file, dtype, &read.selection).map_err(|e| e.to_string())?;
    Built::new(file, &weights, read, Form::Sequence, device).map_err(|e| message(&e))
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
        let input = match self.first.vocabulary() {
            Some(_) => token_ids(py, "x", x, &self.device)?,
            None => tensor(py, "x", x, self.dtype, &self.device)?,
        };
        if input.elem_count() == 0 {
            // As the CLI's inputs: a shape that holds no data may claim any batch.
            return Err(rnn_error(format!(
                "x: expected at least one step of one sequence, as torch.nn.RNN requires, found \
                 shape {:?}",
                input.dims()
            )));
        }
        // Token ids compute in the dtype `load` fixed, else the first model's.
        let dtype = if input.dtype().is_float() {
            input.dtype()
        } else {
            self.dtype.unwrap_or(self.first.rnn().dtype())
        };
        let h0 = h0
            .map(|h| tensor(py, "h0", h, Some(dtype), &self.device))
            .transpose()?;
        let given = lengths.map(self::lengths).transpose()?;
        let model = self.model(dtype)?;
        let result = py.detach(move || -> Result<Vec<Option<Tensor>>, String> {
            let inputs = Inputs {
                form: Form::Sequence,
                input,
                h0,
                lengths: given,
                names: vec!["input".into()],
                mask: None,
            };
            let inputs = model
                .prepare(inputs, std::path::Path::new("x"), false)
                .map_err(|e| e.to_string())?;
            let run = model
                .run(&inputs, false)
                .map_err(|e| format!("cannot run the model on the inputs: {e}"))?;
            // A whole model of several outputs (an ONNX graph's): each, in its order.
            if model.output_names().is_some_and(|names| names.len() > 1) {
                return Ok(run.named.into_iter().map(|(_, t)| Some(t)).collect());
            }
            Ok(vec![Some(run.output), run.h_n])
        });
        let outputs = result.map_err(rnn_error)?;
        let outputs = outputs
            .iter()
            .map(|t| match t {
                Some(t) => array(py, t),
                None => Ok(py.None().into_bound(py)),
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, outputs)
    }

    /// A stream that feeds the model one time step at a time, its states kept between steps.
    ///
    /// - `batch`: sequences fed side by side.
    /// - `h0`: `[num_layers, batch, hidden_size]`, zeros when `None`.
    ///
    /// Raises `rnn.RnnError` for a bidirectional or `go_backwards` model, which needs a
    /// sequence's last step first, for a model that masks steps (Keras's `Masking`, or a
    /// mask made before the RNN), and for one whose file fixes `h0` or `lengths` (an ONNX
    /// graph's initialisers), which a stream cannot apply. A whole model streams its own
    /// input (token ids `[batch]` per step where it starts with an embedding), from zeros;
    /// a step it masks (padding) raises, since Keras skips it.
    #[pyo3(signature = (batch=1, h0=None))]
    fn stream(
        &self,
        py: Python<'_>,
        batch: usize,
        h0: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Stream> {
        let dtype = self.first.rnn().dtype();
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
        self.first.rnn().input_size()
    }

    /// Hidden size of the layers (a list when they differ).
    #[getter]
    fn hidden_size<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let sizes = self.first.rnn().hidden_sizes();
        if sizes.iter().all(|&h| h == sizes[0]) {
            Ok(sizes[0].into_pyobject(py)?.into_any())
        } else {
            Ok(PyList::new(py, sizes)?.into_any())
        }
    }

    /// Number of stacked layers.
    #[getter]
    fn num_layers(&self) -> usize {
        self.first.rnn().num_layers()
    }

    /// Whether the (first) layer runs both directions.
    #[getter]
    fn bidirectional(&self) -> bool {
        self.first.rnn().num_directions() == 2
    }

    /// A whole model's outputs, named as its framework names them (Keras's output layer);
    /// `None` for an RNN run alone (`output`, `h_n`).
    #[getter]
    fn output_names(&self) -> Option<Vec<String>> {
        self.first.output_names()
    }

    /// Whether the model is an ONNX graph that rnn evaluates around its RNN nodes (its input's
    /// and outputs' axes are the graph's own).
    #[getter]
    fn onnx_graph(&self) -> bool {
        self.first.evaluates_onnx_graph()
    }

    /// Whether `x` and `output` are `[batch, seq, features]`.
    #[getter]
    fn batch_first(&self) -> bool {
        self.first.rnn().batch_first()
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
            self.first.rnn().input_size(),
            self.first.rnn().hidden_sizes(),
            self.first.rnn().num_layers(),
            self.first.rnn().num_directions() == 2,
            self.first.rnn().batch_first(),
            self.device_name
        )
    }
}

/// A model fed one time step at a time (`Model.stream()`).
#[pyclass(frozen, module = "rnn")]
pub(crate) struct Stream {
    stream: Mutex<rnn_weights::Stream>,
    device: Device,
}

#[pymethods]
impl Stream {
    /// Feeds one step `x` `[batch, input_size]` (a whole model's token ids `[batch]`); returns
    /// the model's output for this step: the top layer's new state `[batch, hidden_size]`, or
    /// a whole model's output for the steps so far. Releases the GIL.
    fn step<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let (dtype, ids) = {
            let stream = self
                .stream
                .lock()
                .map_err(|_| rnn_error("the stream failed in another thread"))?;
            (stream.dtype(), stream.takes_ids())
        };
        let x = if ids {
            token_ids(py, "x", x, &self.device)?
        } else {
            tensor(py, "x", x, Some(dtype), &self.device)?
        };
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
