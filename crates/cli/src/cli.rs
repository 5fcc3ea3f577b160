//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rnn_core::{MaskedSteps, MergeMode, Vocabulary};
use rnn_weights::{FileFormat, Naming};

use crate::device::DeviceChoice;

const AFTER_HELP: &str = "\
Examples:
  rnn run                                  the article's table (built-in model and inputs)
  rnn run model.safetensors --input x.npy --format json
  rnn check tests/fixtures/tf1_article_seed0.safetensors
  rnn inspect model.safetensors
  rnn run model.safetensors --stream < steps.csv   one output line per input line
  rnn plot -o article.png                  the article's hidden states as a heatmap

Exit codes:
  0  success, or every compared tensor within tolerance
  1  `rnn check`: a tensor outside the tolerance
  2  an error: usage, file, format, shapes

Environment:
  RNN_CPU_KERNEL=avx512|avx2|generic   force the CPU kernels (default: the best this CPU has;
                                       `rnn devices` lists them)";

/// Run basic (Elman) recurrent networks from the files PyTorch, Keras, TensorFlow and ONNX
/// write, and check them against reference outputs.
#[derive(Debug, Parser)]
#[command(name = "rnn", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a model on inputs and print (or save) its outputs.
    Run(RunArgs),
    /// Run a model on a fixture's inputs and compare with the fixture's expected outputs.
    Check(CheckArgs),
    /// Show a weights file's detected format, configuration and tensors.
    Inspect(InspectArgs),
    /// Write random weights (PyTorch's uniform(−1/√H, 1/√H)) in the canonical format.
    Init(InitArgs),
    /// Time forwards of a random model on random inputs: median, min, max ms and GFLOP/s.
    Bench(BenchArgs),
    /// What this binary can compute on: compiled backends, the CPU, and each GPU.
    Devices(DevicesArgs),
    /// Rewrite weights of any recognised format in the canonical layout (PyTorch's names),
    /// with the configuration in the file's metadata, or as a PyTorch state_dict (.pt), an
    /// ONNX graph (.onnx) or a Keras model (.keras).
    Convert(ConvertArgs),
    /// Draw each layer's hidden state over time as a heatmap (PNG or SVG).
    Plot(PlotArgs),
    /// Print a shell completion script: `rnn completions bash > /etc/bash_completion.d/rnn`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): `rnn man > rnn.1 && man ./rnn.1`.
    Man,
}

/// Which RNN of a weights file to read, when its names do not settle it.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Read the weights in this naming scheme when more than one fits.
    #[arg(long, value_parser = choice::<Naming>())]
    pub weights_format: Option<Naming>,
    /// Read only the tensors whose names start with this, when the file holds several RNNs
    /// (an encoder and a decoder, two TF1 scopes): e.g. `encoder.rnn.` or
    /// `bidirectional_rnn/`.
    #[arg(long, conflicts_with = "stack")]
    pub prefix: Option<String>,
    /// Stack the RNNs under these prefixes, bottom layer first, when the names do not give
    /// the order (Keras layers named by hand, TF1 layers in scopes of their own): e.g.
    /// `--stack layer_0/,layer_1/`.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub stack: Vec<String>,
}

impl SelectArgs {
    /// The selection these flags make.
    pub fn selection(&self) -> rnn_weights::Selection {
        rnn_weights::Selection {
            naming: self.weights_format,
            prefix: self.prefix.clone(),
            stack: self.stack.clone(),
        }
    }
}

/// How to read the weights: flags that a weights file may not carry.
#[derive(Debug, Args)]
pub struct ReadOptions {
    /// Activation: one for every layer, or one per layer (comma-separated); overrides the
    /// weights file's metadata (default tanh). Keras's names: hard_sigmoid is Keras 3's
    /// relu6(x + 3) / 6, gelu the exact (erf) form.
    #[arg(long, value_parser = parse_nonlinearities, num_args = 1..)]
    pub nonlinearity: Vec<Vec<rnn_core::Nonlinearity>>,
    /// Every one-direction layer reads its sequence from the end, as Keras's
    /// `go_backwards=True`: outputs in the order they are computed (the last input's first),
    /// h_n the state after the first input.
    #[arg(long)]
    pub go_backwards: bool,
    /// How a bidirectional layer joins its two directions (Keras's `merge_mode`): one for
    /// every bidirectional layer, or one per layer. `none` (top layer only) gives
    /// `output_forward` and `output_backward` instead of `output`.
    #[arg(long, value_parser = choice::<MergeMode>(), value_delimiter = ',', num_args = 1..)]
    pub merge_mode: Vec<MergeMode>,
    /// What the outputs hold past a sequence's `lengths`: `repeat-last`, the last valid
    /// output (Keras's masking; the default for Keras weights), or `zeros` (PyTorch's packed
    /// sequences and TensorFlow's sequence_length; the default otherwise).
    #[arg(long, value_parser = choice::<MaskedSteps>())]
    pub masked_steps: Option<MaskedSteps>,
    /// Keras's `Masking(mask_value=V)` before the RNN: a step whose features all equal V is
    /// masked, and each sequence's `lengths` is its steps before the first masked one (masks
    /// with holes are refused). A negative V may follow the flag (`--mask-value -1`).
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    pub mask_value: Option<f64>,
    /// ONNX's `clip`: each step's pre-activation clamped to [-C, C] before the activation;
    /// one for every layer, or one per layer (comma-separated); overrides the weights file's
    /// metadata. Clipped layers run the plain (unfused) loop.
    #[arg(long, value_name = "C", value_delimiter = ',', num_args = 1..)]
    pub clip: Vec<f64>,
    /// Sequence inputs and outputs are [batch, seq, features] (the default for Keras and TF1
    /// weights).
    #[arg(long, conflicts_with = "time_major")]
    pub batch_first: bool,
    /// Sequence inputs and outputs are [seq, batch, features] (the default for PyTorch
    /// weights).
    #[arg(long)]
    pub time_major: bool,
    #[command(flatten)]
    pub select: SelectArgs,
}

impl ReadOptions {
    /// The options these flags give, as rnn-weights (and the Python module) take them.
    pub fn options(&self) -> rnn_weights::ReadOptions {
        rnn_weights::ReadOptions {
            nonlinearity: self.nonlinearity.iter().flatten().copied().collect(),
            go_backwards: self.go_backwards,
            merge_mode: self.merge_mode.clone(),
            masked_steps: self.masked_steps,
            mask_value: self.mask_value,
            clip: self.clip.clone(),
            // clap refuses both; the time-major flag was the one read first.
            batch_first: if self.time_major {
                Some(false)
            } else if self.batch_first {
                Some(true)
            } else {
                None
            },
            selection: self.select.selection(),
        }
    }
}

/// How to build and feed the model.
#[derive(Debug, Args)]
pub struct ModelOptions {
    #[command(flatten)]
    pub read: ReadOptions,
    /// Element type to compute in; weights and inputs are converted on load.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
    /// NaN or Inf in the weights, the inputs or the outputs is an error (exit 2), not a
    /// warning.
    #[arg(long)]
    pub strict: bool,
    /// Where to compute: cpu, cuda, cuda:N, or auto (the first GPU that opens, else the CPU).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// The model and the inputs it runs on: `run` and `plot`.
#[derive(Debug, Args)]
pub struct Sources {
    /// The model: any file rnn reads (README's table of files). Without it, the article's
    /// model built into `rnn`.
    pub model: Option<PathBuf>,
    /// Inputs: sequence form (input, optional h0 and lengths) or step form (X0, X1, …) in
    /// .safetensors, .npz or .json (an object of arrays); one `input` array in .npy, .json or
    /// .csv (one row per time step). Without it, the inputs stored in the model file.
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Read the input as this format instead of the one its extension names.
    #[arg(long, value_parser = choice::<FileFormat>(), requires = "input")]
    pub input_format: Option<FileFormat>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sources: Sources,
    /// Also write the outputs to this file: .safetensors, .npz or .json get every output
    /// (Y0, Y1, … or output and h_n); .npy and .csv get `output` alone.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write the output as this format instead of the one its extension names.
    #[arg(long, value_parser = choice::<FileFormat>(), requires = "output")]
    pub output_format: Option<FileFormat>,
    /// Read one time step per line on stdin (a JSON array or comma-separated numbers) and
    /// print each step's output as soon as it is computed, keeping the hidden state.
    #[arg(long, conflicts_with_all = ["input", "output", "plot"])]
    pub stream: bool,
    /// Also draw each layer's hidden states to this .png or .svg file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Run the input's sequences this many at a time, reading each batch from --input and
    /// writing its outputs into --output as it goes (.npy or .safetensors): memory holds one
    /// batch, whatever the size of the files.
    #[arg(long, conflicts_with_all = ["stream", "plot"])]
    pub batch_size: Option<usize>,
    /// How to print the outputs.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Print every element of the outputs. Without it, text output is as numpy's `str()`:
    /// outputs of more than 1000 elements show 3 items at each end of every long axis around
    /// `...`, and rows wrap at 75 characters. `--format json` and --output files always hold
    /// every element.
    #[arg(long)]
    pub print_all: bool,
    #[command(flatten)]
    pub options: ModelOptions,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    #[command(flatten)]
    pub sources: Sources,
    /// The picture to write: .png or .svg.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Draw only this sequence of the batch (default: every sequence, up to 16 panels).
    #[arg(long)]
    pub sequence: Option<usize>,
    #[command(flatten)]
    pub options: ModelOptions,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The model: any file rnn reads (README's table of files).
    pub model: PathBuf,
    /// Fixture with inputs and expected outputs; without it, MODEL's own file.
    #[arg(long)]
    pub fixture: Option<PathBuf>,
    /// Absolute tolerance: |got − want| ≤ atol + rtol·|want| (default per dtype: 1e-5 for f32
    /// and f64, 1e-2 for f16, 6e-2 for bf16).
    #[arg(long)]
    pub atol: Option<f64>,
    /// Relative tolerance (default per dtype: 1e-4 for f32 and f64, 1e-2 for f16, 6e-2 for
    /// bf16).
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Compare with the float64 references (`output_f64`, …) even in f32 (other dtypes always
    /// do where the fixture has them).
    #[arg(long)]
    pub float64_reference: bool,
    /// Run on each of these devices (comma-separated, e.g. cpu,cuda) and report each against
    /// the fixture and their divergence from the first.
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Option<Vec<DeviceChoice>>,
    #[command(flatten)]
    pub options: ModelOptions,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model: any file rnn reads (README's table of files).
    pub model: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Time this model file instead of a random RNN (a whole model too), run as `rnn run`
    /// runs it with no other flag, on the inputs of --input.
    #[arg(long, requires = "input", conflicts_with_all = ["batch", "seq", "input_size", "hidden_size", "save_case", "reference"])]
    pub model: Option<PathBuf>,
    /// The inputs of --model, as `rnn run --input` reads them.
    #[arg(long, requires = "model")]
    pub input: Option<PathBuf>,
    /// Sequences per forward.
    #[arg(
        long,
        required_unless_present = "model",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub batch: usize,
    /// Time steps.
    #[arg(
        long,
        required_unless_present = "model",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub seq: usize,
    /// Features per input step.
    #[arg(
        long,
        required_unless_present = "model",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub input_size: usize,
    /// Neurons per layer.
    #[arg(
        long,
        required_unless_present = "model",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub hidden_size: usize,
    /// Stacked layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Two directions per layer.
    #[arg(long)]
    pub bidirectional: bool,
    #[arg(long, value_parser = parse_nonlinearity, default_value = "tanh")]
    pub nonlinearity: rnn_core::Nonlinearity,
    /// Element type.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
    /// Where to run: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Threads for the matrix products (default: all cores; sets RAYON_NUM_THREADS).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed forwards.
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Untimed forwards first.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Time the plain candle-ops reference instead of the fused fast path.
    #[arg(long)]
    pub reference: bool,
    /// Also write the weights (canonical), the input and the last output to this
    /// .safetensors file, for comparing with other frameworks.
    #[arg(long)]
    pub save_case: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Weights in any file rnn reads (README's table of files).
    pub input: PathBuf,
    /// Where to write: a .safetensors file (the canonical layout, every option in its
    /// metadata), a .pt/.pth file (a torch.save state_dict of torch.nn.RNN), a .onnx file (a
    /// graph of ONNX RNN nodes), a .keras file (a Keras 3 model) or a .weights.h5 file (its
    /// weights alone); the Python that loads it is printed; a name that promises another
    /// format is refused.
    #[arg(long, short)]
    pub output: PathBuf,
    #[command(flatten)]
    pub read: ReadOptions,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Features per input step.
    #[arg(long)]
    pub input_size: usize,
    /// Neurons per layer.
    #[arg(long)]
    pub hidden_size: usize,
    /// Stacked layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Two directions per layer.
    #[arg(long)]
    pub bidirectional: bool,
    /// No bias tensors.
    #[arg(long)]
    pub no_bias: bool,
    /// Seed of the random generator; the same seed gives the same weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Activation recorded in the file's metadata.
    #[arg(long, value_parser = parse_nonlinearity, default_value = "tanh")]
    pub nonlinearity: rnn_core::Nonlinearity,
    /// Where to write the weights (.safetensors).
    #[arg(long, short)]
    pub output: PathBuf,
}

/// An activation by PyTorch's or Keras's name, or a parametrised one as the file metadata
/// writes it (`Nonlinearity`'s `FromStr`, which the Python module and the readers share).
fn parse_nonlinearity(text: &str) -> Result<rnn_core::Nonlinearity, String> {
    text.parse()
}

/// The values of a library enum, by their [`Vocabulary`] names, with each one's meaning in
/// `--help` and the completions.
fn choice<T: Vocabulary + Clone + Send + Sync>() -> impl TypedValueParser<Value = T> {
    let values = T::ALL
        .iter()
        .map(|v| PossibleValue::new(v.name()).help(v.help()));
    PossibleValuesParser::new(values).try_map(|name| T::parse_name(&name))
}

/// One activation or one per layer, comma-separated; commas inside parentheses belong to a
/// parametrised activation (`affine(0.7,1.5),tanh`).
fn parse_nonlinearities(text: &str) -> Result<Vec<rnn_core::Nonlinearity>, String> {
    rnn_weights::split_entries(text)
        .ok_or_else(|| format!("`{text}`: unpaired parentheses"))?
        .into_iter()
        .map(parse_nonlinearity)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    F32,
    F64,
    F16,
    Bf16,
}

impl From<Dtype> for candle_core::DType {
    fn from(d: Dtype) -> Self {
        match d {
            Dtype::F32 => candle_core::DType::F32,
            Dtype::F64 => candle_core::DType::F64,
            Dtype::F16 => candle_core::DType::F16,
            Dtype::Bf16 => candle_core::DType::BF16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tensors as numpy prints them, one per step.
    Text,
    /// One JSON object with "schema_version".
    Json,
}
