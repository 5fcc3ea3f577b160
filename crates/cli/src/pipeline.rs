//! The loading pipeline every command that runs a model shares: read the weights file, pick the
//! RNN the selection flags name, configure it (flags over what the file records), read and
//! screen the inputs, build the `Rnn` on the chosen device, and run it with its outputs named.
//! It depends on no command.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use rnn_core::{MergeMode, Rnn};
use rnn_weights::{
    expected_outputs, name_outputs, Form, Inputs, LoadedWeights, StackConfig, TensorFile,
    F64_SUFFIX,
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

/// The stack's configuration: each flag, else the file's metadata, else its framework's
/// default ([`LoadedWeights::stack_config`], which the Python module shares).
pub fn stack_config(model: &LoadedWeights, read: &ReadOptions, form: Form) -> Result<StackConfig> {
    Ok(model.stack_config(&read.options(), form)?)
}

/// Whether sequence inputs are batch-first: the flags, else the file's metadata, else its
/// framework's default. Step-form inputs are stacked time-major whatever the flags say.
pub fn batch_first(model: &LoadedWeights, read: &ReadOptions, form: Form) -> bool {
    model.batch_first(&read.options(), form)
}

pub fn build_rnn(model: &LoadedWeights, read: &ReadOptions, form: Form) -> Result<Rnn> {
    stack_config(model, read, form)?
        .build(&model.weights)
        .context("the weights do not form a valid RNN")
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

/// The results of a run: the outputs named as the inputs' form names them, the whole output
/// (in the inputs' layout; step form's is time-major), and the last layer's final states
/// (Keras's `return_sequences=False` output).
pub struct Results {
    pub named: Vec<(String, Tensor)>,
    pub output: Tensor,
    pub last: Tensor,
    /// Every layer's output, time-major (what `--plot` draws); empty unless asked for.
    pub layer_outputs: Vec<Tensor>,
}

/// Runs the network on the inputs, keeping every layer's output when `keep_layers`. `h_n`
/// is left out when the layers' hidden sizes differ, since their states cannot be stacked
/// into one tensor.
pub fn forward(rnn: &Rnn, inputs: &Inputs, source: &Path, keep_layers: bool) -> Result<Results> {
    let context = || format!("cannot run the model on the inputs of {}", source.display());
    let (input, h0, lengths) = (&inputs.input, inputs.h0.as_ref(), inputs.lengths.as_deref());
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
    let size = input.dtype().size_in_bytes() as u128;
    // (An input of another feature count is refused by the run itself, with its shape.)
    let fits_model = input.dims().last() == Some(&rnn.input_size());
    if fits_model {
        crate::memory::ensure_fits(
            &format!("running the model on the inputs of {}", source.display()),
            positions.checked_mul(per_position * size),
        )?;
    }
    let (output, states, layer_outputs) = if keep_layers {
        let run = rnn
            .forward_layers(input, h0, lengths)
            .with_context(context)?;
        (run.output, run.states, run.layer_outputs)
    } else {
        let (output, states) = rnn
            .forward_states(input, h0, lengths)
            .with_context(context)?;
        (output, states, Vec::new())
    };
    let h_n = rnn.stack_states(&states)?;
    let mut named = name_outputs(inputs.form, &output, h_n.as_ref())?;
    let top = rnn.layer_options()[rnn.num_layers() - 1];
    if top.merge_mode == MergeMode::Separate && inputs.form == Form::Sequence {
        // Keras's merge_mode=None: the two directions' outputs as two tensors.
        let half = rnn.output_size() / 2;
        let features = output.rank() - 1;
        named.retain(|(n, _)| n != "output");
        named.insert(
            0,
            ("output_forward".into(), output.narrow(features, 0, half)?),
        );
        named.insert(
            1,
            (
                "output_backward".into(),
                output.narrow(features, half, half)?,
            ),
        );
    }
    Ok(Results {
        named,
        last: rnn.merge_final_states(&states).with_context(context)?,
        output,
        layer_outputs,
    })
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
        check_all_read(&input_file, &inputs)?;
    }
    let inputs = if path.is_some() {
        inputs.with_model_inputs(model_file, dtype)?
    } else {
        inputs
    };
    Ok((input_file, inputs))
}

/// Fails when a file of inputs (not the model's own file) holds tensors that `rnn` does not
/// read: a misspelt `h0` would otherwise be silently left out of the run. RNN weights beside
/// the inputs (a fixture carries the model it was made with) are not inputs, and pass.
pub fn check_all_read(file: &TensorFile, inputs: &Inputs) -> Result<()> {
    let expected = expected_outputs(file, inputs.form, false)?;
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

/// The masks a file records, applied to the inputs read from `file`, or refused
/// ([`Inputs::apply_masks`]).
pub fn apply_masks(
    file: &TensorFile,
    inputs: &mut Inputs,
    config: &StackConfig,
    batch_first: bool,
) -> Result<()> {
    inputs
        .apply_masks(config, batch_first)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.path().display()))
}

/// A model ready to run on inputs of `form`, on the device the user chose.
pub struct Prepared {
    pub rnn: Rnn,
    pub device: candle_core::Device,
}

/// Builds the model of `run --stream`, whose inputs come later, for inputs of `form`.
pub fn prepare(model_file: &TensorFile, options: &ModelOptions, form: Form) -> Result<Prepared> {
    if let Some(fixed) = model_file.metadata().get(rnn_weights::MODEL_INPUTS) {
        bail!(
            "{}: the model fixes {fixed} (ONNX initialisers), which --stream and --batch-size \
             do not apply; run it whole",
            model_file.path().display()
        );
    }
    let model = load_weights(model_file, options.dtype.into(), &options.read)?;
    stack_config(&model, &options.read, form)?
        .check_stepwise()
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_file.path().display()))?;
    build(&model, options, form)
}

fn build(model: &LoadedWeights, options: &ModelOptions, form: Form) -> Result<Prepared> {
    let device = crate::device::open(options.device)?;
    let rnn = build_rnn(model, &options.read, form)?.to_device(&device)?;
    Ok(Prepared { rnn, device })
}

/// The model and inputs of `run` and `plot`, screened for NaN and Inf, on the device. The
/// weights are read first, so that their errors come before the inputs'.
pub fn prepare_with_inputs(
    sources: &Sources,
    options: &ModelOptions,
) -> Result<(Prepared, TensorFile, Inputs)> {
    let dtype: DType = options.dtype.into();
    let model_file = read_model_file(sources.model.as_deref())?;
    let weights = load_weights(&model_file, dtype, &options.read)?;
    let (input_file, mut inputs) = read_inputs(
        &model_file,
        sources.input.as_deref(),
        sources.input_format,
        dtype,
    )?;
    let layout = batch_first(&weights, &options.read, inputs.form);
    let config = stack_config(&weights, &options.read, inputs.form)?;
    apply_masks(&input_file, &mut inputs, &config, layout)?;
    screen_sources(
        &model_file,
        &weights,
        &input_file,
        &inputs,
        layout,
        options.strict,
    )?;
    let prepared = build(&weights, options, inputs.form)?;
    let inputs = inputs.to_device(&prepared.device)?;
    Ok((prepared, input_file, inputs))
}
