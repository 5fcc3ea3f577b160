//! The whole model a file records around its RNN ([`Graph`], described in `config.rs`) built
//! on a device into `rnn_core::around` layers ([`Whole`]), which `pipeline.rs` runs from the
//! model's own inputs to its own output; and the token ids such a model takes.

use candle_core::{DType, Device, Tensor};
use rnn_core::around::Layer;

use crate::config::{Graph, Part, PartKind};

use crate::error::Result;
use crate::file::TensorFile;
use crate::onnx_program::Program;

/// A [`Graph`] built on a device: what [`crate::Model`] runs around the RNN.
#[derive(Debug, Clone)]
pub(crate) struct Whole {
    pub(crate) before: Vec<Layer>,
    pub(crate) after: Vec<Layer>,
    pub(crate) return_sequences: bool,
    /// The model's outputs, by name, in its order.
    pub(crate) outputs: Vec<String>,
    /// The embedding's vocabulary where the model takes token ids.
    pub(crate) vocabulary: Option<usize>,
    /// An ONNX graph's nodes, evaluated around the RNN in place of `before` and `after`.
    pub(crate) onnx: Option<Program>,
}

impl Whole {
    /// How the user runs the RNN alone instead ([`Graph::alone`]).
    pub(crate) fn alone(&self) -> &'static str {
        crate::config::run_alone(self.onnx.is_some())
    }

    /// The layers before the RNN applied to `x`, with the step mask they make.
    pub(crate) fn front(
        &self,
        x: &Tensor,
    ) -> candle_core::Result<(Tensor, Option<rnn_core::around::StepMask>)> {
        let (mut x, mut mask) = (x.clone(), None);
        for layer in &self.before {
            (x, mask) = layer.forward(&x, mask)?;
        }
        Ok((x, mask))
    }

    /// The layers after the RNN applied to `y` (its last step, or every step).
    pub(crate) fn head(&self, mut y: Tensor) -> candle_core::Result<Tensor> {
        for layer in &self.after {
            y = layer.forward(&y, None)?.0;
        }
        Ok(y)
    }
}

impl Graph {
    /// The layers built from `file`'s tensors in `dtype` on `device`.
    ///
    /// # Errors
    /// A tensor missing or of the wrong dtype, or shaped other than its layer needs
    /// ([`WeightsError::Shape`] naming it).
    pub(crate) fn build(&self, file: &TensorFile, dtype: DType, device: &Device) -> Result<Whole> {
        if let Some(nodes) = &self.onnx {
            let program = nodes
                .0
                .on(dtype, device)
                .map_err(|e| file.tensor_error(e))?;
            return Ok(Whole {
                before: Vec::new(),
                after: Vec::new(),
                return_sequences: false,
                outputs: program.outputs.clone(),
                vocabulary: program.vocabulary,
                onnx: Some(program),
            });
        }
        let load = |name: &str| -> Result<Tensor> {
            file.float(name, dtype)?
                .to_device(device)
                .map_err(|e| file.tensor_error(e))
        };
        let build = |part: &Part| -> Result<Option<Layer>> {
            Ok(Some(match &part.kind {
                PartKind::Embedding { table, mask_zero } => {
                    let table_tensor = load(table)?;
                    if table_tensor.rank() != 2 {
                        return Err(file.shape_error(
                            table,
                            format!("[vocabulary, features] (the table of `{}`)", part.name),
                            table_tensor.dims(),
                        ));
                    }
                    Layer::Embedding {
                        table: table_tensor,
                        mask_zero: *mask_zero,
                    }
                }
                PartKind::Masking { value } => Layer::Masking { value: *value },
                PartKind::Dense {
                    kernel,
                    bias,
                    activation,
                } => {
                    let kernel_tensor = load(kernel)?;
                    let (_, units) = kernel_tensor.dims2().map_err(|_| {
                        file.shape_error(
                            kernel,
                            format!("[in, units] (the kernel of `{}`)", part.name),
                            kernel_tensor.dims(),
                        )
                    })?;
                    let bias = match bias {
                        Some(name) => {
                            let b = load(name)?;
                            if b.dims() != [units] {
                                return Err(file.shape_error(
                                    name,
                                    format!("[{units}] (the bias of `{}`)", part.name),
                                    b.dims(),
                                ));
                            }
                            Some(b)
                        }
                        None => None,
                    };
                    Layer::Dense {
                        kernel: kernel_tensor,
                        bias,
                        activation: *activation,
                    }
                }
                PartKind::Activation(activation) => Layer::Activation(*activation),
                PartKind::Flatten => Layer::Flatten,
                PartKind::Identity => return Ok(None),
            }))
        };
        let before = self
            .before
            .iter()
            .filter_map(|p| build(p).transpose())
            .collect::<Result<Vec<_>>>()?;
        let after = self
            .after
            .iter()
            .filter_map(|p| build(p).transpose())
            .collect::<Result<Vec<_>>>()?;
        let vocabulary = match before.first() {
            Some(Layer::Embedding { table, .. }) => Some(table.dims()[0]),
            _ => None,
        };
        Ok(Whole {
            before,
            after,
            return_sequences: self.return_sequences,
            outputs: vec![self.output.clone()],
            vocabulary,
            onnx: None,
        })
    }
}

/// The token ids of `input` (any integer dtype, or floats that are whole numbers) as u32 for
/// an embedding of `vocabulary` rows, on `input`'s device.
///
/// # Errors
/// The first id outside `[0, vocabulary)` or not a whole number, with its place, in words.
pub(crate) fn token_ids(input: &Tensor, vocabulary: usize) -> std::result::Result<Tensor, String> {
    if input.rank() != 2 {
        return Err(format!(
            "input: expected token ids [batch, steps] (the model's first layer is an \
             Embedding), found shape {:?}",
            input.dims()
        ));
    }
    let steps = input.dims()[1];
    // Above this, the float type does not hold every whole number: the id read may not be the
    // one written (a JSON or CSV file is read as float32).
    let exact = match input.dtype() {
        DType::F16 => Some(1u64 << 11),
        DType::BF16 => Some(1 << 8),
        DType::F32 => Some(1 << 24),
        DType::F64 => Some(1 << 53),
        _ => None,
    };
    let values: Vec<f64> = input
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all()?.to_vec1())
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(values.len());
    for (k, &v) in values.iter().enumerate() {
        if exact.is_some_and(|limit| v >= limit as f64) {
            return Err(format!(
                "input: token id {v} at [{}, {}] is {} or more, past which {} does not hold \
                 every whole number; store the ids as integers (an int64 .npy or safetensors)",
                k / steps.max(1),
                k % steps.max(1),
                exact.unwrap_or_default(),
                crate::dtype::name(input.dtype())
            ));
        }
        if v.fract() != 0.0 || !(0.0..vocabulary as f64).contains(&v) {
            return Err(format!(
                "input: expected token ids, whole numbers in [0, {vocabulary}) (the embedding's \
                 vocabulary), found {v} at [{}, {}]",
                k / steps.max(1),
                k % steps.max(1)
            ));
        }
        ids.push(v as u32);
    }
    Tensor::from_vec(ids, input.dims(), input.device()).map_err(|e| e.to_string())
}
