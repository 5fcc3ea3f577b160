//! Writing a stack as Keras 3 reads it: a `.keras` archive (a zip of `metadata.json`,
//! `config.json` and `model.weights.h5`, as `model.save("m.keras")` writes it) of a
//! `Sequential` model that `keras.models.load_model(path)` loads and `predict`s.
//!
//! The model: an `InputLayer` of `[batch, seq_len, input_size]` (Keras is batch-first; a
//! time-major source's inputs are transposed by the user), a `Masking` layer where the source
//! records a mask value, then per layer a `SimpleRNN` (`return_sequences=True`, its
//! activation, `use_bias`, `go_backwards`) or a `Bidirectional` of one (`merge_mode`). The
//! weights file holds each cell's `kernel` (`W_ihᵀ`), `recurrent_kernel` (`W_hhᵀ`) and `bias`
//! (`b_ih + b_hh`, Keras's one bias: the only arithmetic of the conversion) under the paths
//! Keras 3 saves them at (`layers/simple_rnn_1/cell/vars/0`, …), written with hdf5-pure.
//! Keras's model has no `h0` or `lengths` input: it starts from zeros and runs whole sequences
//! (or those its `Masking` layer gives).

use std::io::{Cursor, Write};
use std::path::Path;

use candle_core::{DType, Tensor};
use hdf5_pure::{AttrValue, FileBuilder, GroupBuilder};
use rnn_core::{LayerWeights, MaskedSteps, MergeMode, Nonlinearity, TimeOrder};
use serde_json::{json, Value};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::config::{LayerConfig, StackConfig};
use crate::error::{Result, WeightsError};
use crate::write::write_atomically;

/// The Keras version whose `.keras` layout this writer follows and its tests load with.
pub const KERAS_VERSION: &str = "3.15.0";

/// What [`save_keras`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerasModel {
    /// Features per input step.
    pub input_size: usize,
    /// Whether the model's output is two tensors (`merge_mode=None` at the top).
    pub separate: bool,
    /// For a weights file alone, the model they load into as Keras's JSON.
    pub model_json: Option<String>,
}

impl KerasModel {
    /// The Python that runs the file written at `path` with Keras.
    pub fn loader(&self, path: &Path) -> String {
        let path = format!("{:?}", path.display().to_string());
        let output = if self.separate {
            "output_forward, output_backward"
        } else {
            "output"
        };
        // The JSON holds no quote of its own kind nor backslash: names and numbers only.
        let load = match &self.model_json {
            None => format!("model = keras.models.load_model({path})"),
            Some(json) => format!(
                "model = keras.models.model_from_json('{json}')\nmodel.load_weights({path})"
            ),
        };
        format!(
            "import keras\n{load}\n# x: float32 [batch, seq_len, {}]\n{output} = model.predict(x)",
            self.input_size
        )
    }
}

fn refuse(path: &Path, what: String, advice: &str) -> WeightsError {
    WeightsError::Unwritable {
        path: path.to_owned(),
        format: "a Keras model",
        reason: format!("Keras's SimpleRNN cannot express {what}; {advice}"),
    }
}

const SAFETENSORS: &str = "write a .safetensors file, which records it";

/// Keras's name of `n`, where Keras has it.
fn activation(path: &Path, n: Nonlinearity, k: usize) -> Result<&'static str> {
    match n {
        Nonlinearity::Tanh
        | Nonlinearity::Relu
        | Nonlinearity::Sigmoid
        | Nonlinearity::HardSigmoid
        | Nonlinearity::Linear
        | Nonlinearity::Elu
        | Nonlinearity::Selu
        | Nonlinearity::Softsign
        | Nonlinearity::Softplus
        | Nonlinearity::Gelu
        | Nonlinearity::Silu
        | Nonlinearity::Exponential => Ok(n.as_str()),
        other => Err(refuse(
            path,
            format!("activation {other} (layer {k}), an ONNX one"),
            "its activations are Keras's own (tanh, relu, sigmoid, hard_sigmoid, linear, elu, \
             selu, softsign, softplus, gelu, silu, exponential); write a .onnx or .safetensors \
             file",
        )),
    }
}

/// The layers' configurations after refusing what Keras cannot express.
fn check(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
) -> Result<Vec<LayerConfig>> {
    config.check_writable(path, weights)?;
    let layers = config.layers_for(weights.len()).unwrap_or_default();
    let dtype = weights[0][0].w_ih.dtype();
    if dtype != DType::F32 {
        return Err(refuse(
            path,
            format!("{dtype:?} weights yet (rnn writes float32 Keras models)"),
            "write a .pt or .safetensors file, which keep them",
        ));
    }
    for (k, (layer, dirs)) in layers.iter().zip(weights).enumerate() {
        activation(path, layer.nonlinearity, k)?;
        if dirs.len() == 2 && layer.nonlinearity_reverse != layer.nonlinearity {
            return Err(refuse(
                path,
                format!(
                    "a backward activation ({}) other than the forward one ({}) at layer {k}",
                    layer.nonlinearity_reverse, layer.nonlinearity
                ),
                SAFETENSORS,
            ));
        }
        if let Some(clip) = layer.clip {
            return Err(refuse(
                path,
                format!("ONNX's clip ({clip} at layer {k})"),
                "it does not clamp its pre-activations; write a .onnx or .safetensors file",
            ));
        }
        if layer.time == TimeOrder::Reverse {
            return Err(refuse(
                path,
                format!("ONNX's reverse direction (layer {k}), whose outputs keep time order"),
                "go_backwards gives them in processing order; write a .onnx or .safetensors \
                 file",
            ));
        }
    }
    if let Some(layer) = &config.input_mask {
        return Err(refuse(
            path,
            format!("a mask made before it at {layer}"),
            SAFETENSORS,
        ));
    }
    if let Some(value) = config.mask_value.filter(|v| !v.is_finite()) {
        return Err(refuse(
            path,
            format!("a Masking layer's mask value {value} in its config.json"),
            "JSON has no such number (Keras would read null); give a finite mask value",
        ));
    }
    if config.mask_value.is_some() && config.masked_steps != MaskedSteps::RepeatLast {
        return Err(refuse(
            path,
            format!(
                "masked steps {} behind a Masking layer (Keras repeats the last valid output)",
                config.masked_steps
            ),
            "pass --masked-steps repeat-last to accept Keras's, or write a .safetensors file",
        ));
    }
    Ok(layers)
}

/// Writes `weights` with `config` at `path` as a Keras 3 `.keras` archive (module docs),
/// atomically.
///
/// # Errors
/// [`WeightsError::Unwritable`] naming what Keras cannot express: float64 weights, an ONNX
/// activation, a backward activation other than the forward one, `clip`, ONNX's `reverse`, a
/// mask made before the RNN, masked steps other than Keras's behind a `Masking` layer; weights
/// that do not form the stack ([`StackConfig::build`]); an I/O error.
pub fn save_keras(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
) -> Result<KerasModel> {
    let (model, h5, written) = build(path, weights, config)?;
    let metadata = json!({"keras_version": KERAS_VERSION, "date_saved": "1980-01-01@00:00:00"});
    let bytes = archive(&metadata.to_string(), &model.to_string(), &h5).map_err(|e| {
        WeightsError::Unwritable {
            path: path.to_owned(),
            format: "a Keras model",
            reason: e.to_string(),
        }
    })?;
    write_atomically(path, &bytes).map_err(|error| WeightsError::Io {
        path: path.to_owned(),
        error,
    })?;
    Ok(written)
}

/// Writes the weights of the model [`save_keras`] writes at `path`, alone, as
/// `model.save_weights("w.weights.h5")` writes them (HDF5), atomically; the model they load
/// into is [`KerasModel::model_json`] (`keras.models.model_from_json`).
///
/// # Errors
/// As [`save_keras`].
pub fn save_keras_weights(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
) -> Result<KerasModel> {
    let (model, h5, written) = build(path, weights, config)?;
    write_atomically(path, &h5).map_err(|error| WeightsError::Io {
        path: path.to_owned(),
        error,
    })?;
    Ok(KerasModel {
        model_json: Some(model.to_string()),
        ..written
    })
}

/// The model's `config.json` and `model.weights.h5`, and what the model takes and gives.
fn build(
    path: &Path,
    weights: &[Vec<LayerWeights>],
    config: &StackConfig,
) -> Result<(Value, Vec<u8>, KerasModel)> {
    let layers = check(path, weights, config)?;
    let tensor_error = |error| WeightsError::Tensor {
        path: path.to_owned(),
        error,
    };
    let input_size = weights[0][0].w_ih.dims()[1];
    let shape = |features: usize| json!([null, null, features]);
    let mut configs = vec![json!({
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {"batch_shape": shape(input_size), "dtype": "float32", "name": "input_layer"},
        "registered_name": null,
    })];
    let mut h5 = FileBuilder::new();
    let mut saved = h5.create_group("layers");
    if let Some(value) = config.mask_value {
        configs.push(json!({
            "module": "keras.layers",
            "class_name": "Masking",
            "config": {"name": "masking", "mask_value": value, "dtype": "float32"},
            "registered_name": null,
            "build_config": {"input_shape": shape(input_size)},
        }));
        let mut masking = saved.create_group("masking");
        vars(&mut masking, "masking");
        saved.add_group(masking.finish());
    }
    let (mut simple, mut bidirectional) = (0, 0);
    let mut features = input_size;
    for (dirs, layer) in weights.iter().zip(&layers) {
        let units = dirs[0].w_hh.dims()[0];
        let use_bias = dirs.iter().any(|c| c.b_ih.is_some() || c.b_hh.is_some());
        let rnn = |name: &str, go_backwards: bool| {
            json!({
                "module": "keras.layers",
                "class_name": "SimpleRNN",
                "config": {
                    "name": name,
                    "units": units,
                    "activation": layer.nonlinearity.as_str(),
                    "use_bias": use_bias,
                    "return_sequences": true,
                    "go_backwards": go_backwards,
                    "dtype": "float32",
                },
                "registered_name": null,
                "build_config": {"input_shape": shape(features)},
            })
        };
        if dirs.len() == 1 {
            // Keras saves a model's layers of one class under simple_rnn, simple_rnn_1, …
            // (Bidirectional's inner layers not counted); the config's names are free.
            let name = numbered("simple_rnn", &mut simple);
            configs.push(rnn(&name, layer.time == TimeOrder::GoBackwards));
            let mut group = saved.create_group(&name);
            cell(&mut group, &dirs[0], use_bias).map_err(tensor_error)?;
            vars(&mut group, &name);
            saved.add_group(group.finish());
        } else {
            let name = numbered("bidirectional", &mut bidirectional);
            let inner = name.clone();
            let merge_mode = match layer.merge_mode {
                MergeMode::Separate => Value::Null,
                other => json!(other.as_str()),
            };
            configs.push(json!({
                "module": "keras.layers",
                "class_name": "Bidirectional",
                "config": {
                    "name": name,
                    "merge_mode": merge_mode,
                    "layer": rnn(&format!("forward_{inner}"), false),
                    "backward_layer": rnn(&format!("backward_{inner}"), true),
                    "dtype": "float32",
                },
                "registered_name": null,
                "build_config": {"input_shape": shape(features)},
            }));
            let mut group = saved.create_group(&name);
            for (d, side) in ["forward_layer", "backward_layer"].into_iter().enumerate() {
                let mut part = group.create_group(side);
                cell(&mut part, &dirs[d], use_bias).map_err(tensor_error)?;
                let prefix = if d == 0 { "forward" } else { "backward" };
                vars(&mut part, &format!("{prefix}_{inner}"));
                group.add_group(part.finish());
            }
            vars(&mut group, &name);
            saved.add_group(group.finish());
        }
        features = layer.options().output_size(dirs.len(), units);
    }
    h5.add_group(saved.finish());
    let mut model_vars = h5.create_group("vars");
    model_vars.set_attr("name", AttrValue::String("sequential".into()));
    h5.add_group(model_vars.finish());
    let h5 = h5.finish().map_err(|e| WeightsError::Unwritable {
        path: path.to_owned(),
        format: "a Keras model",
        reason: format!("its weights file: {e}"),
    })?;
    let model = json!({
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "trainable": true, "dtype": "float32", "layers": configs},
        "registered_name": null,
        "build_config": {"input_shape": shape(input_size)},
        "compile_config": null,
    });
    let separate = layers.last().is_some_and(|l| {
        l.merge_mode == MergeMode::Separate && weights[weights.len() - 1].len() == 2
    });
    let written = KerasModel {
        input_size,
        separate,
        model_json: None,
    };
    Ok((model, h5, written))
}

/// `base`, then `base_1`, `base_2`, … as `count` goes up.
fn numbered(base: &str, count: &mut usize) -> String {
    let name = if *count == 0 {
        base.to_string()
    } else {
        format!("{base}_{count}")
    };
    *count += 1;
    name
}

/// The `vars` group Keras writes in each object's group, with the object's `name`.
fn vars(parent: &mut GroupBuilder, name: &str) {
    let mut vars = parent.create_group("vars");
    vars.set_attr("name", AttrValue::String(name.to_string()));
    parent.add_group(vars.finish());
}

/// A SimpleRNN cell's variables under `group/cell/vars`: `0` the kernel `[input, units]`, `1`
/// the recurrent kernel `[units, units]`, `2` the bias `[units]` where the layer has one.
fn cell(group: &mut GroupBuilder, w: &LayerWeights, use_bias: bool) -> candle_core::Result<()> {
    let mut cell = group.create_group("cell");
    let mut held = cell.create_group("vars");
    held.set_attr("name", AttrValue::String("simple_rnn_cell".into()));
    let mut put = |index: &str, t: &Tensor| -> candle_core::Result<()> {
        let values = t.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let shape: Vec<u64> = t.dims().iter().map(|&d| d as u64).collect();
        held.create_dataset(index)
            .with_f32_data(&values)
            .with_shape(&shape);
        Ok(())
    };
    put("0", &w.w_ih.t()?)?;
    put("1", &w.w_hh.t()?)?;
    if use_bias {
        let units = w.w_hh.dims()[0];
        let zeros = || Tensor::zeros(units, DType::F32, w.w_hh.device());
        let bias = match (&w.b_ih, &w.b_hh) {
            (Some(a), Some(b)) => (a + b)?,
            (Some(a), None) | (None, Some(a)) => a.clone(),
            (None, None) => zeros()?,
        };
        put("2", &bias)?;
    }
    cell.add_group(held.finish());
    group.add_group(cell.finish());
    Ok(())
}

/// The zip `model.save("m.keras")` writes, entries dated 1980-01-01.
fn archive(metadata: &str, config: &str, weights: &[u8]) -> zip::result::ZipResult<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    for (name, bytes) in [
        ("metadata.json", metadata.as_bytes()),
        ("config.json", config.as_bytes()),
        ("model.weights.h5", weights),
    ] {
        zip.start_file(name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}
