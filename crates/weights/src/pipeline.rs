//! The one model pipeline that the CLI and the Python module share: the weights a file holds,
//! configured with the user's options and built on a device ([`Model::new`]); inputs
//! prepared for it (what the file fixes, its masks, the device: [`Model::prepare`]); a run
//! with its outputs named ([`Model::run`]); or a stream of steps where the model allows one
//! ([`Model::stream`]). Each interface only parses its arguments and renders the results.

use std::path::Path;

use candle_core::{Device, Tensor};
use rnn_core::{MergeMode, Rnn};

use crate::config::StackConfig;
use crate::error::{Result, WeightsError};
use crate::expected::name_outputs;
use crate::file::TensorFile;
use crate::inputs::{Form, Inputs, MODEL_INPUTS};
use crate::model::LoadedWeights;
use crate::options::ReadOptions;
use crate::whole::Whole;

/// A model ready to run: its configuration (the options over what the file records) and the
/// network built from it on a device, for inputs of one [`Form`].
#[derive(Debug, Clone)]
pub struct Model {
    file: TensorFile,
    config: StackConfig,
    rnn: Rnn,
    /// The layers around the RNN, where the file records a whole model and the user picked no
    /// layers (`--stack`, `--prefix` run the RNN alone).
    whole: Option<Whole>,
    /// The name of a Keras model's own output where the file records a model that is its
    /// recurrent layers alone, whose top layer returns its last step only
    /// (`return_sequences=False`), and the user picked no layers: that output (the top layer's
    /// final states, merged) is given beside `output` and `h_n`.
    model_output: Option<String>,
}

/// What a run gives: the outputs named as the inputs' form names them (`output` and `h_n`, or
/// `Y<t>`; a top layer with `merge_mode` none gives `output_forward` and `output_backward`
/// instead of `output`; a Keras model of recurrent layers alone whose top returns its last
/// step also gives that, [`Run::last`], under the name Keras gives the model's output), the
/// whole output (in the inputs' layout; step form's is
/// time-major), `h_n` where the layers' states stack, and the last layer's final states
/// merged (Keras's `return_sequences=False` output).
pub struct Run {
    /// The outputs by name.
    pub named: Vec<(String, Tensor)>,
    /// The top layer's output for every step.
    pub output: Tensor,
    /// `[layers · directions, batch, hidden]`; `None` when the layers' hidden sizes differ.
    pub h_n: Option<Tensor>,
    /// `[batch, features]`: the last layer's final states, merged as its merge mode says.
    pub last: Tensor,
    /// Every layer's output, time-major; empty unless asked for.
    pub layer_outputs: Vec<Tensor>,
}

impl Model {
    /// The model that `weights` (picked from `file`) make with the options `read`, for inputs
    /// of `form`, on `device`: every layer's configuration checked against the others once,
    /// where the merge modes are known.
    ///
    /// # Errors
    /// [`WeightsError::Option`] for an option that does not fit the model, and
    /// [`WeightsError::Tensor`] when the weights and configuration do not form a valid stack
    /// or cannot be moved to the device.
    pub fn new(
        file: &TensorFile,
        weights: &LoadedWeights,
        read: &ReadOptions,
        form: Form,
        device: &Device,
    ) -> Result<Self> {
        let mut config = weights.stack_config(read, form)?;
        let whole = match file.graph() {
            Some(graph) if !read.selection.picks_layers() => {
                whole_options(read, form, graph.alone())?;
                // The model's own layers make its masks.
                config.mask_value = None;
                config.input_mask = None;
                Some(graph.build(file, weights.weights[0][0].w_ih.dtype(), device)?)
            }
            _ => None,
        };
        let rnn = weights
            .build(file, &config)?
            .to_device(device)
            .map_err(|e| file.tensor_error(e))?;
        let model_output =
            (whole.is_none() && !read.selection.picks_layers() && form == Form::Sequence)
                .then(|| keras_last_step_output(file))
                .flatten();
        Ok(Self {
            file: file.clone(),
            config,
            rnn,
            whole,
            model_output,
        })
    }

    /// The names of the model's outputs where they are its framework's (a whole model's:
    /// Keras's output layer); `None` where they are rnn's (`output`, `h_n`, `Y<t>`).
    pub fn output_names(&self) -> Option<Vec<String>> {
        self.whole.as_ref().map(|w| w.outputs.clone())
    }

    /// The Keras model's own output that a run of its recurrent layers alone gives beside
    /// `output` and `h_n` ([`keras_last_step_output`]), where it does.
    pub fn model_output(&self) -> Option<&str> {
        self.model_output.as_deref()
    }

    /// Whether the model is an ONNX graph evaluated around its RNN nodes (its axes are the
    /// graph's own: rnn does not know which is the batch's).
    pub fn evaluates_onnx_graph(&self) -> bool {
        self.whole.as_ref().is_some_and(|w| w.onnx.is_some())
    }

    /// A whole model's widest layer output (features per step), for what a run allocates per
    /// step of each sequence, with the values its layers after the RNN hold until the outputs
    /// are taken counted as more layers that wide (four values to a layer); `None` for an RNN
    /// run alone.
    pub fn widest_layer(&self) -> Option<usize> {
        let whole = self.whole.as_ref()?;
        if let Some(program) = &whole.onnx {
            return Some(program.widest);
        }
        Some(
            self.widest_base(whole)
                .saturating_mul(1 + head_reads(whole).div_ceil(4)),
        )
    }

    /// The widest output of a Keras whole model's layers, its RNN's and its input.
    fn widest_base(&self, whole: &Whole) -> usize {
        let rnn =
            self.rnn.hidden_sizes().into_iter().max().unwrap_or(0) * self.rnn.num_directions();
        whole
            .before
            .iter()
            .chain(whole.after.iter().filter_map(|(op, _)| match op {
                crate::whole::Op::Layer(layer) => Some(layer),
                _ => None,
            }))
            .map(rnn_core::around::Layer::width)
            .fold(rnn.max(self.rnn.input_size()), usize::max)
    }

    /// The elements a whole model's layers after the RNN may hold together on `positions`
    /// steps of sequences: its widest layer's output at each, four times and once more for each
    /// input the layers after the RNN read (each value as wide as what it reads, a
    /// concatenation as wide as all it joins).
    fn head_budget(&self, positions: usize) -> usize {
        self.whole.as_ref().map_or(0, |whole| {
            self.widest_base(whole)
                .saturating_mul(positions)
                .saturating_mul(head_reads(whole).saturating_add(4))
        })
    }

    /// Whether the model takes token ids (its first layer is an embedding), and of how large
    /// a vocabulary.
    pub fn vocabulary(&self) -> Option<usize> {
        self.whole.as_ref().and_then(|w| w.vocabulary)
    }

    /// The network as built.
    pub fn rnn(&self) -> &Rnn {
        &self.rnn
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// `inputs` (read from `source`) made ready for this model: the inputs its file fixes
    /// added ([`Inputs::with_model_inputs`]; not when the inputs were read from the model's
    /// own file, which holds them already), its masks applied ([`Inputs::apply_masks`]), on
    /// its device.
    ///
    /// # Errors
    /// As [`Inputs::with_model_inputs`]; [`WeightsError::Inputs`] naming `source` when the
    /// masks refuse the inputs; [`WeightsError::Tensor`] when they cannot be moved to the
    /// device.
    pub fn prepare(&self, inputs: Inputs, source: &Path, from_model_file: bool) -> Result<Inputs> {
        let refuse = |reason: String| WeightsError::Inputs {
            path: source.to_owned(),
            reason,
        };
        if let Some(whole) = &self.whole {
            return self.prepare_whole(whole, inputs).map_err(refuse);
        }
        if !inputs.input.dtype().is_float() {
            return Err(refuse(format!(
                "input: expected floating-point features, found {} (token ids are the input of \
                 a model whose first layer is an Embedding, run whole)",
                crate::dtype::name(inputs.input.dtype())
            )));
        }
        let mut inputs = if from_model_file {
            inputs
        } else {
            let dtype = inputs.input.dtype();
            inputs.with_model_inputs(&self.file, dtype)?
        };
        inputs
            .apply_masks(&self.config, self.rnn.batch_first())
            .map_err(|reason| WeightsError::Inputs {
                path: source.to_owned(),
                reason,
            })?;
        if self.file.metadata().contains_key(ZERO_LENGTH_STATE) {
            empty_sequences_start_from_zero(&inputs).map_err(|reason| WeightsError::Inputs {
                path: source.to_owned(),
                reason,
            })?;
        }
        inputs
            .to_device(self.rnn.device())
            .map_err(|error| WeightsError::Tensor {
                path: source.to_owned(),
                error,
            })
    }

    /// A whole model's inputs: its own input (token ids where it starts with an embedding,
    /// checked against its vocabulary; else floats), and `h0` where its graph takes the RNN's
    /// initial state as an input, on its device.
    fn prepare_whole(
        &self,
        whole: &Whole,
        mut inputs: Inputs,
    ) -> std::result::Result<Inputs, String> {
        let takes_h0 = whole.onnx.as_ref().is_some_and(|p| p.stack.state.is_some());
        let refused = if inputs.lengths.is_some() || (inputs.h0.is_some() && !takes_h0) {
            Some(if takes_h0 {
                "its RNN starts from zeros or the h0 given and its own layers make its masks, \
                 so it takes no lengths"
            } else {
                "its RNN starts from zeros and its own layers make its masks, so it takes no h0 \
                 or lengths"
            })
        } else {
            None
        };
        if let Some(refused) = refused {
            return Err(format!(
                "the model is run whole, from its own input: {refused} ({} to give them)",
                whole.alone()
            ));
        }
        let device = self.rnn.device();
        inputs.h0 = inputs
            .h0
            .map(|h0| h0.to_device(device))
            .transpose()
            .map_err(|e| e.to_string())?;
        inputs.input = match whole.vocabulary {
            Some(vocabulary) => crate::whole::token_ids(&inputs.input, vocabulary)?,
            None if !inputs.input.dtype().is_float() => {
                return Err(format!(
                    "input: expected floating-point features (the model's first layer takes \
                     vectors), found {}",
                    crate::dtype::name(inputs.input.dtype())
                ))
            }
            None => inputs.input,
        }
        .to_device(device)
        .map_err(|e| e.to_string())?;
        Ok(inputs)
    }

    /// Runs the model on prepared inputs, keeping every layer's output when `keep_layers`.
    ///
    /// # Errors
    /// When a shape does not fit the model (the input's features, `h0`, `lengths`).
    pub fn run(&self, inputs: &Inputs, keep_layers: bool) -> candle_core::Result<Run> {
        if let Some(whole) = &self.whole {
            return self.run_whole(whole, inputs, keep_layers);
        }
        let rnn = &self.rnn;
        let (input, h0, lengths) = (&inputs.input, inputs.h0.as_ref(), inputs.lengths.as_deref());
        let (output, states, layer_outputs) = if let Some(mask) = &inputs.mask {
            if keep_layers {
                return Err(candle_core::Error::Msg(
                    "the mask has masked steps before valid ones, under which rnn does not \
                     keep each layer's outputs (rnn plot); pad at the end instead"
                        .into(),
                ));
            }
            let (output, states) = rnn_core::around::run_masked(rnn, input, Some(mask))?;
            (output, states, Vec::new())
        } else if keep_layers {
            let run = rnn.forward_layers(input, h0, lengths)?;
            (run.output, run.states, run.layer_outputs)
        } else {
            let (output, states) = rnn.forward_states(input, h0, lengths)?;
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
        let last = rnn.merge_final_states(&states)?;
        if let Some(name) = &self.model_output {
            if top.merge_mode != MergeMode::Separate && !named.iter().any(|(n, _)| n == name) {
                named.push((name.clone(), last.clone()));
            }
        }
        Ok(Run {
            named,
            last,
            output,
            h_n,
            layer_outputs,
        })
    }

    /// A whole model run from its own input to its own output: the layers before the RNN
    /// (which make its mask), the RNN under that mask ([`rnn_core::around::run_masked`]), its
    /// last step or every step, the layers after it. An ONNX graph's RNN starts from
    /// `inputs.h0` where the graph takes it (prepare refused it elsewhere).
    fn run_whole(
        &self,
        whole: &Whole,
        inputs: &Inputs,
        keep_layers: bool,
    ) -> candle_core::Result<Run> {
        let input = &inputs.input;
        if keep_layers {
            return Err(candle_core::Error::Msg(format!(
                "a whole model's layers are not drawn; {}",
                whole.alone()
            )));
        }
        if let Some(program) = &whole.onnx {
            // Token ids as ONNX's int64 (prepare checked them against the vocabulary).
            let input = match input.dtype() {
                d if d.is_float() => input.clone(),
                _ => input.to_dtype(candle_core::DType::I64)?,
            };
            let named = program.run(&input, &|x| {
                let run = self.rnn.forward_layers(x, inputs.h0.as_ref(), None)?;
                Ok((run.layer_outputs, run.states))
            })?;
            let first = named
                .first()
                .map(|(_, t)| t.clone())
                .ok_or_else(|| candle_core::Error::Msg("the graph has no output".into()))?;
            return Ok(Run {
                named,
                output: first.clone(),
                h_n: None,
                last: first,
                layer_outputs: Vec::new(),
            });
        }
        let (x, mask) = whole.front(input)?;
        let (sequence, states) = rnn_core::around::run_masked(&self.rnn, &x, mask.as_ref())?;
        let last = self.rnn.merge_final_states(&states)?;
        let top = if whole.return_sequences {
            &sequence
        } else {
            &last
        };
        let positions = input.dims().iter().take(2).product::<usize>();
        let outputs = whole.head(top, &states, self.head_budget(positions))?;
        let named: Vec<(String, Tensor)> = whole.outputs.iter().cloned().zip(outputs).collect();
        let first = named
            .first()
            .map(|(_, t)| t.clone())
            .ok_or_else(|| candle_core::Error::Msg("the model has no output".into()))?;
        Ok(Run {
            named,
            output: first,
            h_n: None,
            last,
            layer_outputs: Vec::new(),
        })
    }

    /// Refuses to feed the model part of its inputs at a time (a stream of steps, or a run
    /// batch by batch) where that would change its numbers: a model whose file fixes inputs
    /// (an ONNX graph's `initial_h` or `sequence_lens` initialisers: a stream starts from the
    /// state its caller gives), or one that masks steps ([`StackConfig::check_stepwise`]).
    ///
    /// # Errors
    /// The refusal in words, naming what the file fixes or masks.
    pub fn check_stepwise(&self) -> std::result::Result<(), String> {
        if let Some(whole) = &self.whole {
            return Err(format!(
                "the model is run whole (its layers around the RNN), which rnn does not run a \
                 batch at a time (--batch-size); run it on whole inputs{}; or {}",
                if whole.onnx.is_some() {
                    ""
                } else {
                    " (or stream it)"
                },
                whole.alone()
            ));
        }
        if let Some(fixed) = self.file.metadata().get(MODEL_INPUTS) {
            return Err(format!(
                "the model fixes {fixed} (ONNX initialisers), which a stream does not apply, \
                 nor a run batch by batch (--stream, --batch-size, Model.stream); run it on \
                 whole inputs"
            ));
        }
        self.config.check_stepwise()
    }

    /// Starts feeding the model one step at a time from `h0` (zeros when `None`).
    ///
    /// # Errors
    /// As [`Model::check_stepwise`] and [`rnn_core::Rnn::stream`] (a model that reads a
    /// sequence from its end); a whole model takes no `h0`, and is refused where it has
    /// several outputs, or its output needs every step at once (a `Flatten` of every step's
    /// output, a final state).
    pub fn stream(&self, batch: usize, h0: Option<&Tensor>) -> std::result::Result<Stream, String> {
        let Some(whole) = &self.whole else {
            self.check_stepwise()?;
            let inner = self.rnn.stream(batch, h0).map_err(|e| e.to_string())?;
            return Ok(Stream {
                inner,
                whole: None,
                head_budget: 0,
            });
        };
        if h0.is_some() {
            return Err("the model is run whole, from a state of zeros; it takes no h0".into());
        }
        if whole.onnx.is_some() {
            return Err(
                "the model is an ONNX graph around its RNN, which rnn evaluates on whole \
                 sequences; run it on whole inputs"
                    .into(),
            );
        }
        if whole.outputs.len() > 1 {
            return Err(format!(
                "the model has several outputs ({}), which rnn does not give one step at a \
                 time; run it on whole inputs",
                whole.outputs.join(", ")
            ));
        }
        if !whole.stepwise() {
            return Err(format!(
                "the model's output `{}` reads a recurrent layer's final state, known only at a \
                 sequence's end; run it on whole inputs",
                whole.outputs.join(", ")
            ));
        }
        let flattened = whole.after.iter().any(|(op, _)| {
            matches!(
                op,
                crate::whole::Op::Layer(rnn_core::around::Layer::Flatten)
            )
        });
        if whole.return_sequences && flattened {
            return Err(
                "the model flattens every step's output into one, which needs the whole \
                 sequence; run it on whole inputs"
                    .into(),
            );
        }
        let inner = self.rnn.stream(batch, None).map_err(|e| e.to_string())?;
        Ok(Stream {
            inner,
            whole: Some(whole.clone()),
            head_budget: self.head_budget(batch),
        })
    }
}

/// A model fed one time step at a time ([`Model::stream`]): its RNN's states kept between
/// steps, and for a whole model the layers around it applied to each step (the embedding
/// before, the head after: its output for the steps so far, Keras's `predict` on them).
pub struct Stream {
    inner: rnn_core::Stream,
    whole: Option<Whole>,
    /// [`Model::head_budget`] for one step of the batch.
    head_budget: usize,
}

impl Stream {
    /// Values per step of each sequence: the RNN's input size, or a whole model's input (1,
    /// a token id, where it starts with an embedding; else its first layer's features).
    pub fn input_size(&self) -> usize {
        match &self.whole {
            Some(whole) if whole.vocabulary.is_some() => 1,
            Some(whole) => match whole.before.first() {
                Some(rnn_core::around::Layer::Dense { kernel, .. }) => kernel.dims()[0],
                _ => self.inner.rnn().input_size(),
            },
            None => self.inner.rnn().input_size(),
        }
    }

    /// Whether a step is token ids (`[batch]`), not vectors.
    pub fn takes_ids(&self) -> bool {
        self.whole.as_ref().is_some_and(|w| w.vocabulary.is_some())
    }

    /// The element type the stream computes in.
    pub fn dtype(&self) -> candle_core::DType {
        self.inner.rnn().dtype()
    }

    /// Steps fed so far.
    pub fn steps(&self) -> usize {
        self.inner.steps()
    }

    /// Feeds one step: `x` `[batch, input_size]` (a whole model's token ids `[batch]`, any
    /// number type); returns the model's output for this step, `[batch, features]`.
    ///
    /// # Errors
    /// A shape that does not fit; a token id outside the vocabulary; a step that the model
    /// masks (padding: id 0 of an `Embedding(mask_zero=True)`, a `Masking` value), which Keras
    /// skips and a stream does not: send only the steps that are not padding.
    pub fn step(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
        let Some(whole) = &self.whole else {
            return self.inner.step(x);
        };
        let rank = if whole.vocabulary.is_some() { 1 } else { 2 };
        if x.rank() != rank {
            return Err(candle_core::Error::Msg(format!(
                "a step of this model is {}, found shape {:?}",
                if rank == 1 {
                    "one token id per sequence, [batch]"
                } else {
                    "[batch, features]"
                },
                x.dims()
            )));
        }
        let x = match whole.vocabulary {
            Some(vocabulary) => crate::whole::token_ids(&x.unsqueeze(1)?, vocabulary)
                .map_err(candle_core::Error::Msg)?
                .to_device(self.inner.rnn().device())?,
            None => x.unsqueeze(1)?,
        };
        let (h, mask) = whole.front(&x)?;
        if let Some(b) = mask.iter().flatten().position(|steps| !steps[0]) {
            return Err(candle_core::Error::Msg(format!(
                "sequence {b}'s step is masked (padding), which Keras skips and a stream does \
                 not; send only the steps that are not padding"
            )));
        }
        let state = self.inner.step(&h.squeeze(1)?)?;
        // One output reading no final state (Model::stream refuses the others).
        let first = |outputs: Vec<Tensor>| {
            outputs
                .into_iter()
                .next()
                .ok_or_else(|| candle_core::Error::Msg("the model has no output".into()))
        };
        if whole.return_sequences {
            first(whole.head(&state.unsqueeze(1)?, &[], self.head_budget)?)?.squeeze(1)
        } else {
            first(whole.head(&state, &[], self.head_budget)?)
        }
    }
}

/// The inputs a Keras whole model's layers after the RNN read, together.
fn head_reads(whole: &Whole) -> usize {
    whole.after.iter().map(|(_, inputs)| inputs.len()).sum()
}

/// Where `file` records a Keras model that is its recurrent layers alone and whose top layer
/// returns its last step only (`return_sequences=False`), the name Keras gives that model's
/// output: its top layer's (the last of the recorded stack `simple_rnn/,simple_rnn_1/`, the
/// last part of its path within nested models). A run that picks no layers gives it beside
/// `output` and `h_n` ([`Run::named`]), and `rnn check` compares it where a fixture has it.
pub fn keras_last_step_output(file: &TensorFile) -> Option<String> {
    use crate::readers::keras::{RETURN_SEQUENCES, STACK};
    let meta = file.metadata();
    if file.graph().is_some() || meta.get(RETURN_SEQUENCES).map(String::as_str) != Some("false") {
        return None;
    }
    let stack = meta.get(STACK)?;
    let top = stack.rsplit(',').next()?.trim_end_matches('/');
    let name = top.rsplit('/').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Refuses the options that a whole model's own layers settle: step form (its input is one
/// tensor) and a mask value (its `Masking` and `Embedding` layers make its masks).
fn whole_options(read: &ReadOptions, form: Form, alone: &str) -> Result<()> {
    if form == Form::Steps {
        return Err(WeightsError::Option {
            option: "input",
            reason: "the model is run whole, from its own input `input` (token ids or \
                     [batch, steps, features]), not from steps X0, X1, …"
                .into(),
        });
    }
    if read.mask_value.is_some() {
        return Err(WeightsError::Option {
            option: "mask_value",
            reason: format!(
                "the model is run whole, and its own layers make its masks; {alone} to give one"
            ),
        });
    }
    // The file settles the RNN's options and the input's layout for a whole model.
    let set: [(&'static str, bool); 6] = [
        ("nonlinearity", !read.nonlinearity.is_empty()),
        ("go_backwards", read.go_backwards),
        ("merge_mode", !read.merge_mode.is_empty()),
        ("masked_steps", read.masked_steps.is_some()),
        ("clip", !read.clip.is_empty()),
        ("batch_first", read.batch_first.is_some()),
    ];
    if let Some((option, _)) = set.iter().find(|(_, given)| *given) {
        return Err(WeightsError::Option {
            option,
            reason: format!(
                "the model is run whole, as its file records it (its layers' options and its \
                 input's layout); {alone} to give the RNN's options"
            ),
        });
    }
    Ok(())
}

/// Metadata key of a model whose framework gives a sequence of length 0 a final state of zeros
/// (ONNX Runtime's `RNN`), where rnn gives it its initial state (TensorFlow's convention, and
/// the state at its last valid step read literally).
pub(crate) const ZERO_LENGTH_STATE: &str = "zero_length_state";

/// For a model that records [`ZERO_LENGTH_STATE`]: no sequence of length 0 may start from a
/// nonzero `h0`, where rnn and the model's framework would give different final states.
fn empty_sequences_start_from_zero(inputs: &Inputs) -> std::result::Result<(), String> {
    let (Some(lengths), Some(h0)) = (&inputs.lengths, &inputs.h0) else {
        return Ok(());
    };
    for (b, _) in lengths.iter().enumerate().filter(|(_, &l)| l == 0) {
        let nonzero = h0
            .narrow(1, b, 1)
            .and_then(|h| {
                h.abs()?
                    .max_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()
            })
            .map_err(|e| e.to_string())?
            != 0.0;
        if nonzero {
            return Err(format!(
                "sequence {b} has length 0 and a nonzero h0: ONNX Runtime gives it a final state \
                 of 0, rnn its initial state; drop the empty sequence, or give it an h0 of zeros"
            ));
        }
    }
    Ok(())
}
