//! The subcommands.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use rnn_core::{compare, InitConfig, Rnn, Tolerance};
use rnn_weights::{expected_outputs, name_outputs, Form, Inputs, Model, TensorFile};
use serde::Serialize;

use crate::cli::{CheckArgs, InitArgs, InspectArgs, ModelOptions, OutputFormat, RunArgs};
use crate::print::{numpy_string, JsonTensor};
use crate::{emit, Outcome};

/// The article's model (recovered by `cargo xtask recover-seed`), with its inputs and the
/// table it printed, built into the binary so that `rnn run` needs no file.
const ARTICLE_MODEL: &[u8] = include_bytes!("../../../models/seed/article.safetensors");
const ARTICLE_MODEL_NAME: &str = "<built-in article model>";

/// Version of the JSON objects `rnn` prints.
const SCHEMA_VERSION: u32 = 1;

/// Reads a weights file, or the built-in article model when `path` is `None`.
fn read_model_file(path: Option<&Path>) -> Result<TensorFile> {
    match path {
        Some(path) => TensorFile::read(path).context("cannot read the model"),
        None => TensorFile::from_safetensors_bytes(Path::new(ARTICLE_MODEL_NAME), ARTICLE_MODEL)
            .context("the built-in article model is damaged"),
    }
}

/// Builds the network: flags override what the file's metadata says.
fn build_rnn(model: &Model, options: &ModelOptions, form: Form) -> Result<Rnn> {
    let nonlinearity = options
        .nonlinearity
        .map(Into::into)
        .or(model.nonlinearity)
        .unwrap_or_default();
    // Step-form inputs are stacked time-major whatever the flag says.
    let batch_first =
        form == Form::Sequence && (options.batch_first || model.batch_first.unwrap_or(false));
    let rnn = Rnn::from_weights(&model.weights, nonlinearity)
        .context("the weights do not form a valid RNN")?;
    Ok(rnn.with_batch_first(batch_first))
}

/// Runs the network on the inputs and names the results as the inputs' form does.
fn forward(rnn: &Rnn, inputs: &Inputs, source: &Path) -> Result<Vec<(String, Tensor)>> {
    let (output, h_n) = rnn
        .forward(&inputs.input, inputs.h0.as_ref())
        .with_context(|| format!("cannot run the model on the inputs of {}", source.display()))?;
    Ok(name_outputs(inputs.form, &output, Some(&h_n))?)
}

pub fn run(args: &RunArgs) -> Result<Outcome> {
    let dtype: DType = args.options.dtype.into();
    let model_file = read_model_file(args.model.as_deref())?;
    let model = Model::from_file(&model_file, dtype)?;
    let input_file = match &args.input {
        Some(path) => TensorFile::read(path).context("cannot read the input")?,
        None => model_file.clone(),
    };
    let inputs = Inputs::from_file(&input_file, dtype)?.with_context(|| {
        format!(
            "{} has no inputs (`input` or `X0`, `X1`, …); pass --input FILE",
            input_file.path().display()
        )
    })?;
    let rnn = build_rnn(&model, &args.options, inputs.form)?;
    let outputs = forward(&rnn, &inputs, input_file.path())?;

    if let Some(path) = &args.output {
        let meta = HashMap::from([("producer".to_string(), "rnn run".to_string())]);
        rnn_weights::write_safetensors(path, &outputs, meta).context("cannot write the outputs")?;
        let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!("wrote {} ({})", path.display(), names.join(", "));
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

pub fn check(args: &CheckArgs) -> Result<Outcome> {
    let dtype: DType = args.options.dtype.into();
    let model_file = read_model_file(Some(&args.model))?;
    let model = Model::from_file(&model_file, dtype)?;
    let fixture = match &args.fixture {
        Some(path) => TensorFile::read(path).context("cannot read the fixture")?,
        None => model_file.clone(),
    };
    let inputs = Inputs::require(&fixture, dtype)?;
    let expected = expected_outputs(&fixture, inputs.form, dtype)?;
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
    let rnn = build_rnn(&model, &args.options, inputs.form)?;
    let got: HashMap<String, Tensor> = forward(&rnn, &inputs, fixture.path())?
        .into_iter()
        .collect();
    let tol = Tolerance {
        atol: args.atol,
        rtol: args.rtol,
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
    let mut failed = 0;
    for (name, want) in &expected {
        let got = got.get(name).with_context(|| {
            format!(
                "{}: expected output `{name}` has no counterpart: the inputs give {} steps",
                fixture.path().display(),
                inputs.input.dims()[0]
            )
        })?;
        let c = compare(got, want, tol)
            .with_context(|| format!("{}: tensor `{name}`", fixture.path().display()))?;
        let verdict = if c.passed() { "ok" } else { "MISMATCH" };
        write!(
            report,
            "{verdict:<8} {name:<8} {:?}  max abs {:.3e}  max rel {:.3e}",
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
    }
    let used: BTreeSet<&str> = inputs
        .names
        .iter()
        .chain(expected.iter().map(|(n, _)| n))
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
    writeln!(
        report,
        "{} of {} tensors within tolerance",
        expected.len() - failed,
        expected.len()
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
    let model = Model::from_file(&file, DType::F64)?;
    let mut text = String::new();
    writeln!(text, "file:          {}", file.path().display())?;
    writeln!(text, "format:        {}", model.format.as_str())?;
    writeln!(text, "input size:    {}", model.input_size())?;
    writeln!(text, "hidden size:   {:?}", model.hidden_sizes())?;
    writeln!(text, "layers:        {}", model.weights.len())?;
    writeln!(text, "directions:    {}", model.num_directions())?;
    writeln!(text, "bias:          {}", model.has_bias())?;
    let nonlinearity = match model.nonlinearity {
        Some(n) => n.to_string(),
        None => "not recorded (tanh unless --nonlinearity says otherwise)".into(),
    };
    writeln!(text, "nonlinearity:  {nonlinearity}")?;
    writeln!(text, "\ntensors:")?;
    for name in file.names() {
        let shape = file
            .raw(&name)
            .map(|t| format!("{:?}", t.dims()))
            .unwrap_or_default();
        let dtype = file.dtype_name(&name).unwrap_or_default();
        let role = match model.mapping.iter().find(|m| m.source == name) {
            Some(m) if m.source == m.target => "weight".to_string(),
            Some(m) => format!("-> {} ({})", m.target, m.transform),
            None => "not a weight".into(),
        };
        writeln!(text, "  {name:<20} {shape:<12} {dtype:<5} {role}")?;
    }
    emit(&text)?;
    Ok(Outcome::Success)
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
    let weights =
        rnn_core::uniform_weights(&config, args.seed, DType::F32, &candle_core::Device::Cpu)?;
    rnn_weights::save_canonical(&args.output, &weights, args.nonlinearity.into(), None, &[])
        .context("cannot write the weights")?;
    eprintln!("wrote {}", args.output.display());
    Ok(Outcome::Success)
}
