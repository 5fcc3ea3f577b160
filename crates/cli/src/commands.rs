//! The subcommands.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use rnn_core::{compare, non_finite, InitConfig, MergeMode, Rnn, Tolerance};
use rnn_weights::{
    expected_outputs, name_outputs, Expected, Form, Inputs, Model, StackConfig, TensorFile,
    F64_SUFFIX,
};
use serde::Serialize;

use clap::CommandFactory;

use crate::cli::{
    CheckArgs, Cli, CompletionsArgs, ConvertArgs, DevicesArgs, FileFormat, InitArgs, InspectArgs,
    ModelOptions, OutputFormat, ReadOptions, RunArgs, Sources,
};
use crate::device::DeviceChoice;
use crate::print::{numpy_string, JsonTensor};
use crate::{emit, Outcome};

/// The article's model (recovered by `cargo xtask recover-seed`), with its inputs and the
/// table it printed, built into the binary so that `rnn run` needs no file.
const ARTICLE_MODEL: &[u8] = include_bytes!("../../../models/seed/article.safetensors");
const ARTICLE_MODEL_NAME: &str = "<built-in article model>";

/// Version of the JSON objects `rnn` prints.
const SCHEMA_VERSION: u32 = 1;

/// Reads a weights file, or the built-in article model when `path` is `None`.
pub(crate) fn read_model_file(path: Option<&Path>) -> Result<TensorFile> {
    match path {
        Some(path) => TensorFile::read(path).context("cannot read the model"),
        None => TensorFile::from_safetensors_bytes(Path::new(ARTICLE_MODEL_NAME), ARTICLE_MODEL)
            .context("the built-in article model is damaged"),
    }
}

/// Recognises the weights in a file: the RNN the user's selection flags pick, if any.
fn load_model(file: &TensorFile, dtype: DType, read: &ReadOptions) -> Result<Model> {
    Ok(Model::select(file, dtype, &read.select.selection())?)
}

/// One value for every layer, or one per layer, from a flag that takes either.
fn per_layer<T: Copy>(flag: &str, values: &[T], layers: usize) -> Result<Vec<T>> {
    match values {
        [one] => Ok(vec![*one; layers]),
        many if many.len() == layers => Ok(many.to_vec()),
        many => bail!(
            "{flag}: expected one value or {layers} (one per layer of the model), found {}",
            many.len()
        ),
    }
}

/// The stack's configuration: each flag, else the file's metadata, else its framework's
/// default.
fn stack_config(model: &Model, read: &ReadOptions, form: Form) -> Result<StackConfig> {
    let layers = model.weights.len();
    let mut config = model.recorded_config();
    if !read.nonlinearity.is_empty() {
        config.nonlinearity = per_layer("--nonlinearity", &read.nonlinearity, layers)?
            .into_iter()
            .map(Into::into)
            .collect();
        // The flag names one activation per layer, for both of its directions.
        config.nonlinearity_reverse.clear();
    }
    if !read.merge_mode.is_empty() {
        if model.weights.iter().all(|l| l.len() == 1) {
            bail!("--merge-mode: this model has no bidirectional layer, whose directions it joins");
        }
        let modes = per_layer("--merge-mode", &read.merge_mode, layers)?;
        for (options, mode) in config.layer_options.iter_mut().zip(modes) {
            options.merge_mode = mode.into();
        }
    }
    if read.go_backwards {
        if model.weights.iter().all(|l| l.len() == 2) {
            bail!(
                "--go-backwards: every layer of this model is bidirectional; Keras's \
                 go_backwards applies to one-direction layers"
            );
        }
        for (options, layer) in config.layer_options.iter_mut().zip(&model.weights) {
            options.go_backwards = layer.len() == 1;
        }
    }
    if let Some(masked_steps) = read.masked_steps {
        config.masked_steps = masked_steps.into();
    }
    if read.mask_value.is_some() {
        config.mask_value = read.mask_value;
    }
    if !read.clip.is_empty() {
        if let Some(c) = read.clip.iter().find(|c| c.is_nan() || **c <= 0.0) {
            bail!("--clip: expected a positive bound, found {c}");
        }
        config.clip = per_layer("--clip", &read.clip, layers)?
            .into_iter()
            .map(Some)
            .collect();
    }
    config.batch_first = Some(batch_first(model, read, form));
    Ok(config)
}

/// Whether sequence inputs are batch-first: the flags, else the file's metadata, else its
/// framework's default. Step-form inputs are stacked time-major whatever the flags say.
fn batch_first(model: &Model, read: &ReadOptions, form: Form) -> bool {
    match form {
        Form::Steps => false,
        Form::Sequence if read.time_major => false,
        Form::Sequence if read.batch_first => true,
        Form::Sequence => model.batch_first_by_default(),
    }
}

fn build_rnn(model: &Model, read: &ReadOptions, form: Form) -> Result<Rnn> {
    stack_config(model, read, form)?
        .build(&model.weights)
        .context("the weights do not form a valid RNN")
}

/// The padding of a batch of sequences: the time steps at and past `lengths[b]` of sequence
/// `b`, which no run reads and whose values mean nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Padding<'a> {
    pub lengths: &'a [usize],
    /// `[batch, seq, ...]`; otherwise `[seq, batch, ...]`.
    pub batch_first: bool,
}

impl<'a> Padding<'a> {
    /// The padding of `lengths`, if there are any.
    pub fn of(lengths: Option<&'a [usize]>, batch_first: bool) -> Option<Self> {
        lengths.map(|lengths| Self {
            lengths,
            batch_first,
        })
    }

    /// `t` with its padding set to 0, so that only what is read is screened; `t` as it is when
    /// its shape is not a batch of these sequences (`[seq, features]` is one unbatched one).
    fn cleared(self, t: &Tensor) -> Result<Tensor> {
        let dims = t.dims();
        let (time_axis, batch_axis) = match (dims.len(), self.batch_first) {
            (3, false) => (0, Some(1)),
            (3, true) => (1, Some(0)),
            (2, _) if self.lengths.len() == 1 => (0, None),
            _ => return Ok(t.clone()),
        };
        if batch_axis.is_some_and(|b| dims[b] != self.lengths.len()) {
            return Ok(t.clone());
        }
        let mut values = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let features = dims[dims.len() - 1].max(1);
        for (i, chunk) in values.chunks_mut(features).enumerate() {
            // The index of this row in the leading (time and batch) dims.
            let (time, batch) = match batch_axis {
                None => (i, 0),
                Some(_) if time_axis == 0 => (i / dims[1], i % dims[1]),
                Some(_) => (i % dims[1], i / dims[1]),
            };
            if self.lengths.get(batch).is_some_and(|&len| time >= len) {
                chunk.fill(0.0);
            }
        }
        Ok(Tensor::from_vec(values, dims, t.device())?)
    }
}

/// Warns on stderr about NaN and infinite values in `tensors` (name, tensor, the padding of a
/// batch of sequences, which is left out), or, with `strict`, fails. `what` says where they
/// are (`model.safetensors: weight`).
pub(crate) fn screen<'a>(
    what: &str,
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor, Option<Padding<'a>>)>,
    strict: bool,
) -> Result<()> {
    for (name, t, padding) in tensors {
        if !t.dtype().is_float() {
            continue;
        }
        let read = match padding {
            Some(padding) => padding.cleared(t)?,
            None => t.clone(),
        };
        if let Some(n) = non_finite(&read)? {
            let message = format!(
                "{what} `{name}` has {} NaN/Inf value{} (first at {:?}: {})",
                n.count,
                if n.count == 1 { "" } else { "s" },
                n.first_index,
                n.first_value
            );
            if strict {
                bail!("{message} (--strict)");
            }
            eprintln!("warning: {message}");
        }
    }
    Ok(())
}

/// Screens the weights (as stored) and the inputs for NaN and Inf.
fn screen_sources(
    model_file: &TensorFile,
    model: &Model,
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
struct Results {
    named: Vec<(String, Tensor)>,
    output: Tensor,
    last: Tensor,
}

/// Runs the network on the inputs. `h_n` is left out when the layers' hidden sizes differ,
/// since their states cannot be stacked into one tensor.
fn forward(rnn: &Rnn, inputs: &Inputs, source: &Path) -> Result<Results> {
    let context = || format!("cannot run the model on the inputs of {}", source.display());
    let (output, states) = rnn
        .forward_states(&inputs.input, inputs.h0.as_ref(), inputs.lengths.as_deref())
        .with_context(context)?;
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
    })
}

/// Reads the inputs from `path`, or from the model's own file when there is none.
fn read_inputs(
    model_file: &TensorFile,
    path: Option<&Path>,
    format: Option<FileFormat>,
    dtype: DType,
) -> Result<(TensorFile, Inputs)> {
    let input_file = match path {
        Some(path) => {
            TensorFile::read_as(path, format.map(Into::into)).context("cannot read the input")?
        }
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
fn check_all_read(file: &TensorFile, inputs: &Inputs) -> Result<()> {
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

/// Keras's `Masking`: each sequence's `lengths` from its mask
/// ([`rnn_core::lengths_from_mask`], which refuses masks with holes); `lengths` the inputs
/// also give must agree with it.
fn lengths_from_mask(
    file: &TensorFile,
    inputs: &mut Inputs,
    mask_value: f64,
    batch_first: bool,
) -> Result<()> {
    let lengths = rnn_core::lengths_from_mask(&inputs.input, mask_value, batch_first)
        .with_context(|| file.path().display().to_string())?;
    if let Some(given) = &inputs.lengths {
        if *given != lengths {
            bail!(
                "{}: lengths {given:?} disagree with the mask of value {mask_value}, which gives \
                 {lengths:?}",
                file.path().display()
            );
        }
    }
    inputs.lengths = Some(lengths);
    Ok(())
}

/// A model ready to run on inputs of `form`, on the device the user chose.
pub(crate) struct Prepared {
    pub rnn: Rnn,
    pub device: candle_core::Device,
}

/// Builds the model of `run --stream`, whose inputs come later, for inputs of `form`.
pub(crate) fn prepare(
    model_file: &TensorFile,
    options: &ModelOptions,
    form: Form,
) -> Result<Prepared> {
    if let Some(fixed) = model_file.metadata().get(rnn_weights::MODEL_INPUTS) {
        bail!(
            "{}: the model fixes {fixed} (ONNX initialisers), which --stream and --batch-size \
             do not apply; run it whole",
            model_file.path().display()
        );
    }
    let model = load_model(model_file, options.dtype.into(), &options.read)?;
    if let Some(value) = stack_config(&model, &options.read, form)?.mask_value {
        bail!(
            "{}: the model masks steps by their values (a Keras Masking layer, mask value \
             {value}), which --stream and --batch-size do not apply; run it without them",
            model_file.path().display()
        );
    }
    build(&model, options, form)
}

fn build(model: &Model, options: &ModelOptions, form: Form) -> Result<Prepared> {
    let device = crate::device::open(options.device)?;
    let rnn = build_rnn(model, &options.read, form)?.to_device(&device)?;
    Ok(Prepared { rnn, device })
}

/// The model and inputs of `run` and `plot`, screened for NaN and Inf, on the device. The
/// weights are read first, so that their errors come before the inputs'.
pub(crate) fn prepare_with_inputs(
    sources: &Sources,
    options: &ModelOptions,
) -> Result<(Prepared, TensorFile, Inputs)> {
    let dtype: DType = options.dtype.into();
    let model_file = read_model_file(sources.model.as_deref())?;
    let weights = load_model(&model_file, dtype, &options.read)?;
    let (input_file, mut inputs) = read_inputs(
        &model_file,
        sources.input.as_deref(),
        sources.input_format,
        dtype,
    )?;
    let layout = batch_first(&weights, &options.read, inputs.form);
    if let Some(mask_value) = stack_config(&weights, &options.read, inputs.form)?.mask_value {
        lengths_from_mask(&input_file, &mut inputs, mask_value, layout)?;
    }
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

pub fn run(args: &RunArgs) -> Result<Outcome> {
    if args.stream {
        return crate::stream::run(args);
    }
    if let Some(batch_size) = args.batch_size {
        return crate::batched::run(args, batch_size);
    }
    if let Some(path) = &args.plot {
        crate::heatmap::image_format(path)?;
    }
    let (prepared, input_file, inputs) = prepare_with_inputs(&args.sources, &args.options)?;
    let rnn = &prepared.rnn;
    let progress = crate::progress::Progress::new(None, "running");
    let results = forward(rnn, &inputs, input_file.path())?;
    drop(progress);
    let outputs = results
        .named
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_device(&candle_core::Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    let padding = Padding::of(inputs.lengths.as_deref(), rnn.batch_first());
    let named = outputs
        .iter()
        .map(|(n, t)| (n.as_str(), t, padding.filter(|_| n == "output")));
    screen("computed output", named, args.options.strict)?;
    if let Some(path) = &args.plot {
        crate::heatmap::draw(rnn, &inputs, input_file.path(), path, None)?;
    }

    if let Some(path) = &args.output {
        let format = args
            .output_format
            .map(Into::into)
            .unwrap_or_else(|| rnn_weights::FileFormat::from_path(path));
        let output = results.output.to_device(&candle_core::Device::Cpu)?;
        write_outputs(path, format, &outputs, &output, rnn.batch_first())?;
        return Ok(Outcome::Success);
    }
    match args.format {
        OutputFormat::Text => emit(&text_outputs(&outputs)?)?,
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct RunJson {
                schema_version: u32,
                outputs: Vec<JsonTensor>,
            }
            let json = RunJson {
                schema_version: SCHEMA_VERSION,
                outputs: outputs
                    .iter()
                    .map(|(n, t)| JsonTensor::new(n, t))
                    .collect::<Result<_>>()?,
            };
            emit(&(serde_json::to_string(&json)? + "\n"))?;
        }
    }
    Ok(Outcome::Success)
}

/// Writes the outputs of a run in `format`: every named output, or, in a format of one array,
/// the whole `output` alone (CSV: one sequence's `[steps, features]`).
fn write_outputs(
    path: &Path,
    format: rnn_weights::FileFormat,
    named: &[(String, Tensor)],
    output: &Tensor,
    batch_first: bool,
) -> Result<()> {
    let cannot = "cannot write the outputs";
    let written: Vec<(String, Tensor)> = if format.holds_one_array() {
        let output = match (format, output.dims()) {
            (rnn_weights::FileFormat::Csv, [_, 1, _]) if !batch_first => output.squeeze(1)?,
            (rnn_weights::FileFormat::Csv, [1, _, _]) if batch_first => output.squeeze(0)?,
            (rnn_weights::FileFormat::Csv, dims @ [_, _, _]) => bail!(
                "{cannot}: {}: a CSV file holds one sequence, and this run has {} (shape \
                 {dims:?}); write .npy, .npz, .json or .safetensors",
                path.display(),
                dims[if batch_first { 0 } else { 1 }],
            ),
            _ => output.clone(),
        };
        vec![("output".to_string(), output)]
    } else {
        named.to_vec()
    };
    let meta = HashMap::from([("producer".to_string(), "rnn run".to_string())]);
    rnn_weights::write_tensors(path, &written, format, meta).context(cannot)?;
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    let note = if format.holds_one_array() && named.iter().any(|(n, _)| n == "h_n") {
        "; h_n left out: the format holds one array"
    } else {
        ""
    };
    eprintln!("wrote {} ({}{note})", path.display(), names.join(", "));
    Ok(())
}

/// `Y0 (t = 0)` then the matrix, numpy-style, for each output.
fn text_outputs(outputs: &[(String, Tensor)]) -> Result<String> {
    let mut text = String::new();
    for (i, (name, t)) in outputs.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let label = match name.strip_prefix('Y') {
            Some(step) if step.parse::<usize>().is_ok() => format!("{name} (t = {step})"),
            _ => format!("{name} {:?}", t.dims()),
        };
        writeln!(text, "{label}\n{}", numpy_string(t)?)?;
    }
    Ok(text)
}

/// Default tolerances per dtype, from the errors measured against the frameworks' float64
/// results (README, "Precision"): f32 and f64 as numpy.allclose's usual bounds, wider for the
/// half-precision types.
fn default_tolerance(dtype: DType) -> Tolerance {
    match dtype {
        DType::F16 => Tolerance {
            atol: 1e-2,
            rtol: 1e-2,
        },
        DType::BF16 => Tolerance {
            atol: 6e-2,
            rtol: 6e-2,
        },
        _ => Tolerance::default(),
    }
}

/// The devices a check runs on: `--devices a,b` or `--device`.
fn check_devices(args: &CheckArgs) -> Vec<DeviceChoice> {
    match &args.devices {
        Some(list) if !list.is_empty() => list.clone(),
        _ => vec![args.options.device],
    }
}

pub fn check(args: &CheckArgs) -> Result<Outcome> {
    let dtype: DType = args.options.dtype.into();
    let model_file = read_model_file(Some(&args.model))?;
    let model = load_model(&model_file, dtype, &args.options.read)?;
    let fixture = match &args.fixture {
        Some(path) => TensorFile::read(path).context("cannot read the fixture")?,
        None => model_file.clone(),
    };
    let mut inputs = Inputs::require(&fixture, dtype)?;
    if args.fixture.is_some() {
        check_all_read(&fixture, &inputs)?;
        inputs = inputs.with_model_inputs(&model_file, dtype)?;
    }
    let config = stack_config(&model, &args.options.read, inputs.form)?;
    if let Some(mask_value) = config.mask_value {
        let layout = batch_first(&model, &args.options.read, inputs.form);
        lengths_from_mask(&fixture, &mut inputs, mask_value, layout)?;
    }
    // f32 runs compare with the framework's f32 outputs; every other dtype with its float64
    // results where the fixture has them.
    let expected = expected_outputs(
        &fixture,
        inputs.form,
        dtype != DType::F32 || args.float64_reference,
    )?;
    if expected.is_empty() {
        bail!(
            "{}: no expected outputs to compare with: expected {} beside the inputs",
            fixture.path().display(),
            match inputs.form {
                Form::Steps => "Y0, Y1, …",
                Form::Sequence => "`output` and/or `h_n`",
            }
        );
    }
    let layout = batch_first(&model, &args.options.read, inputs.form);
    screen_sources(
        &model_file,
        &model,
        &fixture,
        &inputs,
        layout,
        args.options.strict,
    )?;
    let defaults = default_tolerance(dtype);
    let tol = Tolerance {
        atol: args.atol.unwrap_or(defaults.atol),
        rtol: args.rtol.unwrap_or(defaults.rtol),
    };
    let against = match &args.fixture {
        Some(path) => format!("against {}", path.display()),
        None => "against its own expected outputs".into(),
    };
    let mut report = format!(
        "checking {} {against} (atol {:e}, rtol {:e}, {dtype:?})\n",
        model_file.path().display(),
        tol.atol,
        tol.rtol,
    );
    let devices = check_devices(args);
    let mut failed = 0;
    // Each device's outputs, compared as they would be with the fixture.
    let mut per_device: Vec<(String, Vec<(String, Tensor)>)> = Vec::new();
    for choice in &devices {
        let device = crate::device::open(*choice)?;
        let rnn = build_rnn(&model, &args.options.read, inputs.form)?.to_device(&device)?;
        let results = forward(&rnn, &inputs.to_device(&device)?, fixture.path())?;
        let padding = Padding::of(inputs.lengths.as_deref(), rnn.batch_first());
        let named = results
            .named
            .iter()
            .map(|(n, t)| (n.as_str(), t, padding.filter(|_| n == "output")));
        screen("computed output", named, args.options.strict)?;
        let got: HashMap<String, Tensor> = results.named.into_iter().collect();
        let label = if devices.len() > 1 {
            format!("[{choice}] ")
        } else {
            String::new()
        };
        let mut compared = Vec::new();
        for Expected {
            name,
            source,
            tensor: want,
        } in &expected
        {
            let got = match got.get(name) {
                // Keras's return_sequences=False: only the last step's output was kept.
                Some(full) if name == "output" && want.rank() + 1 == full.rank() => &results.last,
                Some(full) => full,
                None => bail!(
                    "{}: expected output `{name}` has no counterpart in this run (it gives {})",
                    fixture.path().display(),
                    got.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            let c = compare(got, want, tol)
                .with_context(|| format!("{}: tensor `{source}`", fixture.path().display()))?;
            let verdict = if c.passed() { "ok" } else { "MISMATCH" };
            write!(
                report,
                "{label}{verdict:<8} {source:<10} {:?}  max abs {:.3e}  max rel {:.3e}",
                want.dims(),
                c.max_abs,
                c.max_rel
            )?;
            if let Some((at, g, w)) = &c.worst {
                write!(report, "  worst at {at:?}: got {g:.9} want {w:.9}")?;
            }
            if !c.passed() {
                write!(
                    report,
                    "  ({} of {} elements outside)",
                    c.mismatches, c.elements
                )?;
                failed += 1;
            }
            report.push('\n');
            compared.push((source.clone(), got.to_device(&candle_core::Device::Cpu)?));
        }
        per_device.push((choice.to_string(), compared));
    }
    if let Some(((first, base), rest)) = per_device.split_first() {
        for (other, outputs) in rest {
            for ((name, a), (_, b)) in base.iter().zip(outputs) {
                let d = compare(
                    b,
                    a,
                    Tolerance {
                        atol: 0.0,
                        rtol: 0.0,
                    },
                )?;
                writeln!(
                    report,
                    "divergence {other} vs {first}  {name:<10} max abs {:.3e}",
                    d.max_abs
                )?;
            }
        }
    }
    // Expected outputs are known in both precisions even when only one is compared.
    let compared: Vec<String> = expected
        .iter()
        .flat_map(|e| [e.name.clone(), format!("{}{F64_SUFFIX}", e.name)])
        .collect();
    let used: BTreeSet<&str> = inputs
        .names
        .iter()
        .chain(&compared)
        .map(String::as_str)
        .chain(
            model
                .source_names()
                .into_iter()
                .filter(|_| args.fixture.is_none()),
        )
        .collect();
    let ignored: Vec<String> = fixture
        .names()
        .into_iter()
        .filter(|n| !used.contains(n.as_str()))
        .collect();
    if !ignored.is_empty() {
        writeln!(report, "ignored: {}", ignored.join(", "))?;
    }
    let total = expected.len() * devices.len();
    writeln!(
        report,
        "{} of {total} tensors within tolerance",
        total - failed
    )?;
    emit(&report)?;
    Ok(if failed == 0 {
        Outcome::Success
    } else {
        Outcome::Mismatch
    })
}

pub fn inspect(args: &InspectArgs) -> Result<Outcome> {
    let file = read_model_file(Some(&args.model))?;
    let selection = args.select.selection();
    let model = Model::select(&file, DType::F64, &selection)?;
    let mut text = String::new();
    writeln!(text, "file:          {}", file.path().display())?;
    writeln!(text, "format:        {}", model.format.as_str())?;
    writeln!(text, "input size:    {}", model.input_size())?;
    writeln!(text, "hidden size:   {:?}", model.hidden_sizes())?;
    writeln!(text, "layers:        {}", model.weights.len())?;
    let directions: Vec<usize> = model.weights.iter().map(Vec::len).collect();
    writeln!(text, "directions:    {}", join_per_layer(&directions))?;
    writeln!(text, "bias:          {}", model.has_bias())?;
    let recorded = |values: Option<String>, otherwise: &str| match values {
        Some(v) => v,
        None => format!("not recorded ({otherwise})"),
    };
    let nonlinearity = model.nonlinearity.as_ref().map(|v| join_per_layer(v));
    writeln!(
        text,
        "nonlinearity:  {}",
        recorded(nonlinearity, "tanh unless --nonlinearity says otherwise")
    )?;
    // Shown only where the file records them (ONNX's per-direction activations and clip).
    if let Some(reverse) = &model.nonlinearity_reverse {
        writeln!(text, "reverse:       {}", join_per_layer(reverse))?;
    }
    if let Some(clip) = &model.clip {
        let clip: Vec<String> = clip
            .iter()
            .map(|c| c.map_or("none".into(), |c| c.to_string()))
            .collect();
        writeln!(text, "clip:          {}", join_per_layer(&clip))?;
    }
    let go_backwards = model.go_backwards.as_ref().map(|v| join_per_layer(v));
    writeln!(
        text,
        "go_backwards:  {}",
        recorded(go_backwards, "false unless --go-backwards")
    )?;
    let merge_mode = model.merge_mode.as_ref().map(|v| {
        let names: Vec<&str> = v.iter().map(|m| m.as_str()).collect();
        join_per_layer(&names)
    });
    writeln!(
        text,
        "merge_mode:    {}",
        recorded(merge_mode, "concat unless --merge-mode says otherwise")
    )?;
    writeln!(
        text,
        "masked steps:  {}",
        model.masked_steps_by_default().as_str()
    )?;
    let mask_value = model.mask_value.map(|v| format!("{v} (Keras Masking)"));
    writeln!(
        text,
        "mask value:    {}",
        recorded(mask_value, "none unless --mask-value")
    )?;
    writeln!(text, "\ntensors:")?;
    for name in file.names() {
        let shape = file
            .raw(&name)
            .map(|t| format!("{:?}", t.dims()))
            .unwrap_or_default();
        let dtype = file.dtype_name(&name).unwrap_or_default();
        let targets: Vec<String> = model
            .mapping
            .iter()
            .filter(|m| m.source == name)
            .map(|m| format!("-> {} ({})", m.target, m.transform.describe()))
            .collect();
        let mut role = if targets.is_empty() {
            format!("not used: {}", why_unused(&name, &selection))
        } else {
            targets.join("; ")
        };
        if let Some(stored) = file.alias_of(&name) {
            role.push_str(&format!(" [stored as {stored}]"));
        }
        writeln!(text, "  {name:<20} {shape:<12} {dtype:<5} {role}")?;
    }
    emit(&text)?;
    Ok(Outcome::Success)
}

/// `a` for values that are all equal, else `a, b, c` (one per layer).
fn join_per_layer<T: PartialEq + std::fmt::Display>(values: &[T]) -> String {
    match values.first() {
        Some(first) if values.iter().all(|v| v == first) => first.to_string(),
        _ => values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Why `rnn inspect` shows a tensor as unused: an input, an expected output, outside the
/// selection, or a name no reader knows.
fn why_unused(name: &str, selection: &rnn_weights::Selection) -> String {
    let base = name.strip_suffix(F64_SUFFIX).unwrap_or(name);
    let step = |prefix: &str| {
        base.strip_prefix(prefix)
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    };
    if ["input", "h0", "lengths", "sequence_length"].contains(&base) || step("X") {
        return "an input".into();
    }
    if ["output", "h_n", "output_forward", "output_backward"].contains(&base) || step("Y") {
        return "an expected output".into();
    }
    if let Some(p) = selection.prefix.as_deref().filter(|p| !name.starts_with(p)) {
        return format!("outside --prefix {p}");
    }
    if !selection.stack.is_empty() && !selection.stack.iter().any(|p| name.starts_with(p.as_str()))
    {
        return format!("outside --stack {}", selection.stack.join(","));
    }
    "not a weight of any RNN rnn reads".into()
}

pub fn init(args: &InitArgs) -> Result<Outcome> {
    if args.layers == 0 || args.hidden_size == 0 || args.input_size == 0 {
        bail!("--input-size, --hidden-size and --layers must be at least 1");
    }
    let config = InitConfig {
        input_size: args.input_size,
        hidden_sizes: vec![args.hidden_size; args.layers],
        bidirectional: args.bidirectional,
        bias: !args.no_bias,
    };
    // Drawing holds each tensor in f64 beside its f32 copy: 12 bytes per parameter at most.
    let bytes = parameter_count(&config).and_then(|n| n.checked_mul(12));
    crate::memory::ensure_fits("these weights", bytes)?;
    let weights =
        rnn_core::uniform_weights(&config, args.seed, DType::F32, &candle_core::Device::Cpu)?;
    let config = StackConfig::uniform(args.nonlinearity.into(), None);
    rnn_weights::save_canonical(&args.output, &weights, &config, &[])
        .context("cannot write the weights")?;
    eprintln!("wrote {}", args.output.display());
    Ok(Outcome::Success)
}

/// Parameters of a stack: per layer and direction `H·I + H·H (+ 2H)`; `None` on overflow.
fn parameter_count(config: &InitConfig) -> Option<u128> {
    let directions: u128 = if config.bidirectional { 2 } else { 1 };
    let mut input = config.input_size as u128;
    let mut total: u128 = 0;
    for &h in &config.hidden_sizes {
        let h = h as u128;
        let bias = if config.bias { 2 * h } else { 0 };
        let cell = h
            .checked_mul(input)?
            .checked_add(h.checked_mul(h)?)?
            .checked_add(bias)?;
        total = total.checked_add(cell.checked_mul(directions)?)?;
        input = directions * h;
    }
    Some(total)
}

pub fn convert(args: &ConvertArgs) -> Result<Outcome> {
    let file = TensorFile::read(&args.input).context("cannot read the weights")?;
    let model = load_model(&file, DType::F32, &args.read)?;
    // Keep the source's precision: read again in f64 only if the file holds f64 weights.
    let wide = model
        .mapping
        .iter()
        .any(|m| file.raw(&m.source).is_some_and(|t| t.dtype() == DType::F64));
    let model = if wide {
        load_model(&file, DType::F64, &args.read)?
    } else {
        model
    };
    let config = stack_config(&model, &args.read, Form::Sequence)?;
    config
        .build(&model.weights)
        .context("the weights do not form a valid RNN")?;
    rnn_weights::save_canonical(&args.output, &model.weights, &config, &[])
        .context("cannot write the weights")?;
    eprintln!(
        "wrote {} ({} weights, {} tensors, canonical layout)",
        args.output.display(),
        model.format.as_str(),
        model.mapping.len()
    );
    Ok(Outcome::Success)
}

pub fn devices(args: &DevicesArgs) -> Result<Outcome> {
    let inv = crate::device::inventory();
    match args.format {
        OutputFormat::Json => {
            let json = serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "backends": {"cpu": true, "cuda": inv.cuda_compiled},
                "cpu": {
                    "threads": inv.cpu_threads,
                    "features": inv.cpu_features,
                    "kernel": inv.cpu_kernel.as_str(),
                    "kernels_available": inv.cpu_kernels.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
                },
                "gpus": inv.gpus,
                "gpu_problem": inv.gpu_problem,
            });
            emit(&(json.to_string() + "\n"))?;
        }
        OutputFormat::Text => {
            let mut text = String::new();
            let kernels: Vec<&str> = inv.cpu_kernels.iter().map(|l| l.as_str()).collect();
            writeln!(
                text,
                "cpu     available, {} threads, {}; {} kernels (available: {}; {} forces one)",
                inv.cpu_threads,
                inv.cpu_features.join(" "),
                inv.cpu_kernel,
                kernels.join(", "),
                crate::device::CPU_KERNEL_VAR,
            )?;
            if !inv.cuda_compiled {
                writeln!(text, "cuda    not compiled in: {}", crate::device::REBUILD)?;
            } else if let Some(problem) = &inv.gpu_problem {
                writeln!(text, "cuda    compiled in; no GPU usable: {problem}")?;
            }
            for g in &inv.gpus {
                writeln!(
                    text,
                    "cuda:{}  {}, {}, compute capability {}",
                    g.ordinal,
                    g.name,
                    crate::memory::human(g.memory_bytes as u128),
                    g.compute_capability
                )?;
            }
            emit(&text)?;
        }
    }
    Ok(Outcome::Success)
}

pub fn completions(args: &CompletionsArgs) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "rnn", &mut script);
    emit(&String::from_utf8(script)?)?;
    Ok(Outcome::Success)
}

pub fn man() -> Result<Outcome> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    emit(&String::from_utf8(page)?)?;
    Ok(Outcome::Success)
}
