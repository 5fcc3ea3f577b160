//! The CLI's side of the model pipeline ([`rnn_weights::Model`], which the Python module
//! shares): reading the weights file or the built-in model, its notes on stderr, reading and
//! screening the inputs, the memory a run may take, and errors with the paths they concern.
//! It depends on no command.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use rnn_weights::{
    expected_outputs, Form, Inputs, LoadedWeights, Model, Run, TensorFile, F64_SUFFIX,
};

use crate::cli::{ModelOptions, ReadOptions, Sources};
use crate::screen::{screen, Padding};
use rnn_weights::FileFormat;

/// The article's model (recovered by `cargo xtask recover-seed`), with its inputs and the
/// table it printed, built into the binary so that `rnn run` needs no file.
const ARTICLE_MODEL: &[u8] = include_bytes!("../../../models/seed/article.safetensors");
const ARTICLE_MODEL_NAME: &str = "<built-in article model>";

/// Reads a weights file, or the built-in article model when `path` is `None`.
pub fn read_model_file(path: Option<&Path>) -> Result<TensorFile> {
    match path {
        Some(path) => TensorFile::read(path).context("cannot read the model"),
        None => TensorFile::from_safetensors_bytes(Path::new(ARTICLE_MODEL_NAME), ARTICLE_MODEL)
            .context("the built-in article model is damaged"),
    }
}

/// The weights the options pick, in `dtype`; says on stderr what the file's notes say
/// ([`rnn_weights::notes`]: another compute dtype, a length an ONNX graph had fixed).
pub fn load_weights(file: &TensorFile, dtype: DType, read: &ReadOptions) -> Result<LoadedWeights> {
    let weights = LoadedWeights::select(file, dtype, &read.options().selection)?;
    for note in rnn_weights::notes(file, dtype) {
        eprintln!(
            "warning: {}",
            rnn_weights::clip(&note, rnn_weights::MESSAGE_CHARS)
        );
    }
    Ok(weights)
}

/// The model the options configure from the picked `weights`, for inputs of `form`, on the
/// device the user chose.
pub fn build(
    file: &TensorFile,
    weights: &LoadedWeights,
    options: &ModelOptions,
    form: Form,
) -> Result<Model> {
    let device = crate::device::open(options.device)?;
    build_on(file, weights, &options.read, form, &device)
}

/// [`build`] on a device already open.
pub fn build_on(
    file: &TensorFile,
    weights: &LoadedWeights,
    read: &ReadOptions,
    form: Form,
    device: &candle_core::Device,
) -> Result<Model> {
    Ok(Model::new(file, weights, &read.options(), form, device)?)
}

/// Screens the weights (as stored) and the inputs for NaN and Inf.
pub fn screen_sources(
    model_file: &TensorFile,
    model: &LoadedWeights,
    input_file: &TensorFile,
    inputs: &Inputs,
    batch_first: bool,
    strict: bool,
) -> Result<()> {
    let mut weights: Vec<&str> = model.source_names();
    weights.dedup();
    let stored = weights
        .into_iter()
        .filter_map(|n| model_file.raw(n).map(|t| (n, t, None)));
    let what = format!("{}: weight", model_file.path().display());
    screen(&what, stored, strict)?;
    let padding = Padding::of(inputs.lengths.as_deref(), batch_first);
    let stored = inputs.names.iter().filter_map(|n| {
        let padding = padding.filter(|_| n == "input");
        input_file.raw(n).map(|t| (n.as_str(), t, padding))
    });
    screen(
        &format!("{}: input", input_file.path().display()),
        stored,
        strict,
    )
}

/// Runs the model on prepared inputs, keeping every layer's output when `keep_layers`, after
/// refusing a run that would take more memory than the machine has.
pub fn forward(model: &Model, inputs: &Inputs, source: &Path, keep_layers: bool) -> Result<Run> {
    let rnn = model.rnn();
    let input = &inputs.input;
    // What the run allocates in this machine's memory, refused before it aborts: per step of
    // each sequence, about three buffers as wide as the widest layer's outputs (its input
    // projection, its output, the next layer's input), and every layer's output when they are
    // kept.
    let positions = (input.elem_count() / rnn.input_size().max(1)) as u128;
    let widths: Vec<u128> = rnn
        .hidden_sizes()
        .iter()
        .map(|&h| (h * rnn.num_directions()) as u128)
        .collect();
    let widest = widths.iter().copied().max().unwrap_or(0);
    // On a GPU only the outputs come back to this machine's memory.
    let mut per_position = if rnn.device().is_cpu() {
        3 * widest
    } else {
        widths.last().copied().unwrap_or(0)
    };
    if keep_layers {
        per_position += widths.iter().sum::<u128>();
    }
    let size = rnn.dtype().size_in_bytes() as u128;
    if let Some(widest) = model.widest_layer() {
        // A whole model: each step of each sequence (`[batch, steps]` ids or
        // `[batch, steps, features]`) becomes vectors as wide as its widest layer, a few of
        // them at once (a layer's input and output, the masked run's gathered copy).
        let positions = input
            .dims()
            .iter()
            .take(2)
            .map(|&d| d as u128)
            .product::<u128>();
        let per_position = 4 * widest.max(input.dims().get(2).copied().unwrap_or(0)) as u128;
        return crate::memory::ensure_fits(
            &format!("running the model on the inputs of {}", source.display()),
            positions.checked_mul(per_position * size),
        )
        .and_then(|()| {
            model.run(inputs, keep_layers).with_context(|| {
                format!("cannot run the model on the inputs of {}", source.display())
            })
        });
    }
    // (An input of another feature count is refused by the run itself, with its shape.)
    if input.dims().last() == Some(&rnn.input_size()) {
        crate::memory::ensure_fits(
            &format!("running the model on the inputs of {}", source.display()),
            positions.checked_mul(per_position * size),
        )?;
    }
    model
        .run(inputs, keep_layers)
        .with_context(|| format!("cannot run the model on the inputs of {}", source.display()))
}

/// Reads the inputs from `path`, or from the model's own file when there is none.
pub fn read_inputs(
    model_file: &TensorFile,
    path: Option<&Path>,
    format: Option<FileFormat>,
    dtype: DType,
) -> Result<(TensorFile, Inputs)> {
    let input_file = match path {
        Some(path) => TensorFile::read_as(path, format).context("cannot read the input")?,
        None => model_file.clone(),
    };
    let inputs = Inputs::from_file(&input_file, dtype)?.with_context(|| {
        format!(
            "{} has no inputs (`input` or `X0`, `X1`, …); pass --input FILE",
            input_file.path().display()
        )
    })?;
    if path.is_some() {
        check_all_read(&input_file, &inputs, model_file)?;
    }
    Ok((input_file, inputs))
}

/// Fails when a file of inputs (not the model's own file) holds tensors that `rnn` does not
/// read: a misspelt `h0` would otherwise be silently left out of the run. RNN weights beside
/// the inputs (a fixture carries the model it was made with) are not inputs, and pass.
pub fn check_all_read(file: &TensorFile, inputs: &Inputs, model_file: &TensorFile) -> Result<()> {
    let mut expected = expected_outputs(file, inputs.form, false)?;
    // A whole model's output, named as its framework names it.
    if let Some(graph) = model_file.graph() {
        expected.extend(rnn_weights::expected_named(file, &graph.outputs(), false)?);
    }
    // A Keras model of recurrent layers alone whose top returns its last step: its output.
    if let Some(name) = rnn_weights::keras_last_step_output(model_file) {
        expected.extend(rnn_weights::expected_named(file, &[name], false)?);
    }
    let read: BTreeSet<String> = inputs
        .names
        .iter()
        .cloned()
        .chain(rnn_weights::weight_names(file))
        .chain(
            expected
                .iter()
                .flat_map(|e| [e.name.clone(), format!("{}{F64_SUFFIX}", e.name)]),
        )
        .collect();
    let unread: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !read.contains(n))
        .collect();
    if unread.is_empty() {
        return Ok(());
    }
    bail!(
        "{}: {} not read by rnn, which reads {} and compares {}; rename or remove {}",
        file.path().display(),
        unread
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
        match inputs.form {
            Form::Sequence => "input, h0 and lengths (or sequence_length)",
            Form::Steps => "X0, X1, …, h0 and lengths (or sequence_length)",
        },
        match inputs.form {
            Form::Sequence => "output (or output_forward and output_backward) and h_n",
            Form::Steps => "Y0, Y1, …",
        },
        if unread.len() == 1 { "it" } else { "them" }
    )
}

/// `inputs` made ready for `model` ([`Model::prepare`]: what the model's file fixes, its masks,
/// its device); `input_file` is where they were read from, named in errors.
pub fn prepare_inputs(
    model: &Model,
    inputs: Inputs,
    input_file: &TensorFile,
    from_model_file: bool,
) -> Result<Inputs> {
    Ok(model.prepare(inputs, input_file.path(), from_model_file)?)
}

/// Builds the model of `run --stream` and `run --batch-size`, whose inputs come later, for
/// inputs of `form` (each mode then says what it refuses: [`Model::stream`],
/// [`Model::check_stepwise`]).
pub fn prepare(model_file: &TensorFile, options: &ModelOptions, form: Form) -> Result<Model> {
    let weights = load_weights(model_file, options.dtype.into(), &options.read)?;
    build(model_file, &weights, options, form)
}

/// The model and inputs of `run` and `plot`, screened for NaN and Inf, on the device. The
/// weights are read first, so that their errors come before the inputs'.
pub fn prepare_with_inputs(
    sources: &Sources,
    options: &ModelOptions,
) -> Result<(Model, TensorFile, Inputs)> {
    let dtype: DType = options.dtype.into();
    let model_file = read_model_file(sources.model.as_deref())?;
    let weights = load_weights(&model_file, dtype, &options.read)?;
    let (input_file, inputs) = read_inputs(
        &model_file,
        sources.input.as_deref(),
        sources.input_format,
        dtype,
    )?;
    let model = build(&model_file, &weights, options, inputs.form)?;
    let inputs = prepare_inputs(&model, inputs, &input_file, sources.input.is_none())?;
    screen_sources(
        &model_file,
        &weights,
        &input_file,
        &inputs,
        model.rnn().batch_first(),
        options.strict,
    )?;
    Ok((model, input_file, inputs))
}
