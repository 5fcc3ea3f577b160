//! Expected outputs in a tensor file and the names of a run's outputs, in the two forms:
//! step form (`Y0`, `Y1`, …) and sequence form (`output`, Keras's `output_forward` and
//! `output_backward`, `h_n`), with their float64 references (`_f64`).

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::file::TensorFile;
use crate::inputs::{step_names, Form};

/// One expected output of a fixture.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The output it is compared with (`Y0`, `output`, `h_n`).
    pub name: String,
    /// The tensor's name in the file: `name`, or `name_f64` for a float64 reference.
    pub source: String,
    /// The values, as f64.
    pub tensor: Tensor,
}

/// Suffix of the float64 references stored beside float32 ones (`output_f64`).
pub const F64_SUFFIX: &str = "_f64";

/// The expected outputs a fixture holds for inputs of `form`: `Y<t>` for step form, `output`
/// (or Keras's `output_forward` and `output_backward`) and `h_n` for sequence form, as far as
/// they are present, read as f64. With `prefer_f64`, a
/// float64 reference (`output_f64`) is used where the fixture has one.
pub fn expected_outputs(file: &TensorFile, form: Form, prefer_f64: bool) -> Result<Vec<Expected>> {
    let names: Vec<String> = match form {
        Form::Steps => step_names(file, "Y"),
        Form::Sequence => ["output", "output_forward", "output_backward", "h_n"]
            .into_iter()
            .map(String::from)
            .collect(),
    };
    expected_named(file, &names, prefer_f64)
}

/// The expected outputs of the given names that a fixture holds (a whole model's outputs,
/// named as its framework names them), read as f64, preferring float64 references as
/// [`expected_outputs`] does.
pub fn expected_named(
    file: &TensorFile,
    names: &[String],
    prefer_f64: bool,
) -> Result<Vec<Expected>> {
    names
        .iter()
        .filter(|n| file.contains(n))
        .map(|name| {
            let wide = format!("{name}{F64_SUFFIX}");
            let source = if prefer_f64 && file.contains(&wide) {
                wide
            } else {
                name.clone()
            };
            let tensor = file.float(&source, DType::F64)?;
            Ok(Expected {
                name: name.clone(),
                source,
                tensor,
            })
        })
        .collect()
}

/// Names the results of a run as the matching form does: `Y<t>` = `output[t]` for step form
/// (`output` time-major), `output` and `h_n` for sequence form.
pub fn name_outputs(
    form: Form,
    output: &Tensor,
    h_n: Option<&Tensor>,
) -> candle_core::Result<Vec<(String, Tensor)>> {
    match form {
        Form::Steps => (0..output.dim(0)?)
            .map(|t| Ok((format!("Y{t}"), output.get(t)?)))
            .collect(),
        Form::Sequence => {
            let mut named = vec![("output".to_string(), output.clone())];
            if let Some(h_n) = h_n {
                named.push(("h_n".into(), h_n.clone()));
            }
            Ok(named)
        }
    }
}
