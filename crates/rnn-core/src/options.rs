//! What a layer of a stack does beyond `torch.nn.RNN`: Keras's `Bidirectional` merge modes,
//! `go_backwards`, ONNX's `reverse`, and what masked steps output.

use candle_core::{Result, Tensor};

use crate::vocabulary::{by_name, Vocabulary};

/// How a bidirectional layer joins its two directions' outputs: Keras's `Bidirectional`
/// `merge_mode`. PyTorch always concatenates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeMode {
    /// `[forward, backward]` along the features: `2 · hidden` features (PyTorch; Keras's
    /// default).
    #[default]
    Concat,
    /// `forward + backward`: `hidden` features.
    Sum,
    /// `(forward + backward) / 2`: `hidden` features.
    Ave,
    /// `forward · backward`, element by element: `hidden` features.
    Mul,
    /// Keras's `merge_mode=None`: the two outputs kept apart. Only the top layer can have it;
    /// [`crate::Rnn::forward`] returns them concatenated, the forward direction's first.
    Separate,
}

impl MergeMode {
    /// Every mode, in the order `--help` lists them.
    pub const ALL: [MergeMode; 5] = [
        MergeMode::Concat,
        MergeMode::Sum,
        MergeMode::Ave,
        MergeMode::Mul,
        MergeMode::Separate,
    ];

    /// Keras's name for it (`"none"` for `merge_mode=None`).
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMode::Concat => "concat",
            MergeMode::Sum => "sum",
            MergeMode::Ave => "ave",
            MergeMode::Mul => "mul",
            MergeMode::Separate => "none",
        }
    }

    /// Parses Keras's name for it (`"none"` for `merge_mode=None`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Features out of a bidirectional layer of `hidden` neurons.
    pub(crate) fn features(self, hidden: usize) -> usize {
        match self {
            MergeMode::Concat | MergeMode::Separate => 2 * hidden,
            MergeMode::Sum | MergeMode::Ave | MergeMode::Mul => hidden,
        }
    }

    /// The layer's output from its directions' outputs `[seq_len, batch, hidden]` each.
    pub(crate) fn merge(self, mut outputs: Vec<Tensor>) -> Result<Tensor> {
        if outputs.len() == 1 {
            return Ok(outputs.remove(0));
        }
        let (forward, backward) = (&outputs[0], &outputs[1]);
        match self {
            MergeMode::Concat | MergeMode::Separate => Tensor::cat(&outputs, 2),
            MergeMode::Sum => forward + backward,
            MergeMode::Ave => (forward + backward)? * 0.5,
            MergeMode::Mul => forward * backward,
        }
    }
}

/// How a one-direction layer reads time: `torch.nn.RNN`'s way, Keras's `go_backwards`, or
/// ONNX's `direction=reverse`. A bidirectional layer reads both ways and takes
/// [`TimeOrder::Forward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeOrder {
    /// From the first step to the last (PyTorch; Keras's and ONNX's default).
    #[default]
    Forward,
    /// Keras's `go_backwards=True`: the layer reads its sequence from the last step to the
    /// first and returns its outputs in that order, so `output[0]` is the state after reading
    /// `input[T-1]`; its final state is the one after reading `input[0]`.
    GoBackwards,
    /// ONNX's `direction=reverse`: the layer reads its sequence from the last step to the
    /// first, as the second direction of a bidirectional layer does, and its outputs stay
    /// indexed by time (`output[t]` is the state after reading `input[t]`; the final state is
    /// the one after reading `input[0]`). Unlike `GoBackwards`, nothing is put in processing
    /// order.
    Reverse,
}

impl TimeOrder {
    /// Every order, in the order `--help` lists them.
    pub const ALL: [TimeOrder; 3] = [
        TimeOrder::Forward,
        TimeOrder::GoBackwards,
        TimeOrder::Reverse,
    ];

    /// Its name in metadata: `"forward"`, `"go_backwards"` (Keras's keyword) or `"reverse"`
    /// (ONNX's `direction`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimeOrder::Forward => "forward",
            TimeOrder::GoBackwards => "go_backwards",
            TimeOrder::Reverse => "reverse",
        }
    }

    /// Whether the layer reads its sequence from the last step.
    pub fn from_end(self) -> bool {
        self != TimeOrder::Forward
    }
}

/// What one layer of a stack does beyond `torch.nn.RNN`: how it reads time and how its two
/// directions are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerOptions {
    /// How a one-direction layer reads time; a bidirectional layer must read
    /// [`TimeOrder::Forward`].
    pub time: TimeOrder,
    /// How the two directions of a bidirectional layer are joined; one-direction layers
    /// ignore it.
    pub merge_mode: MergeMode,
}

impl LayerOptions {
    /// Features out of a layer of `directions` (1 or 2) directions of `hidden` neurons each:
    /// `hidden`, or what [`LayerOptions::merge_mode`] makes of two directions (`2 · hidden`
    /// for concat and none, `hidden` for sum, ave and mul). The next layer's `input_size`.
    pub fn output_size(self, directions: usize, hidden: usize) -> usize {
        if directions == 2 {
            self.merge_mode.features(hidden)
        } else {
            hidden
        }
    }
}

impl Vocabulary for MergeMode {
    const ALL: &'static [Self] = &MergeMode::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn help(self) -> &'static str {
        match self {
            MergeMode::Concat => "forward and backward side by side (PyTorch; Keras's default)",
            MergeMode::Sum => "their sum",
            MergeMode::Ave => "their mean",
            MergeMode::Mul => "their product",
            MergeMode::Separate => {
                "kept apart: output_forward and output_backward (Keras's merge_mode=None)"
            }
        }
    }
}

impl Vocabulary for TimeOrder {
    const ALL: &'static [Self] = &TimeOrder::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn help(self) -> &'static str {
        match self {
            TimeOrder::Forward => "from the first step to the last",
            TimeOrder::GoBackwards => "from the last step, outputs in that order (Keras)",
            TimeOrder::Reverse => "from the last step, outputs indexed by time (ONNX)",
        }
    }
}

impl Vocabulary for MaskedSteps {
    const ALL: &'static [Self] = &[MaskedSteps::Zeros, MaskedSteps::RepeatLast];
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn help(self) -> &'static str {
        match self {
            MaskedSteps::Zeros => "zeros (PyTorch, TensorFlow's sequence_length)",
            MaskedSteps::RepeatLast => "the last valid output, repeated (Keras's masking)",
        }
    }
}

by_name!(MergeMode, TimeOrder, MaskedSteps);

/// What a layer outputs at the steps past a sequence's length (with `lengths`, or Keras's
/// mask). The final state is the state at the last valid step either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskedSteps {
    /// Zeros: PyTorch's packed sequences, TensorFlow's `sequence_length`.
    #[default]
    Zeros,
    /// Keras's convention: a plain one-direction layer repeats its last valid output (zeros
    /// for an empty sequence). A `go_backwards` layer meets the masked steps before any valid
    /// one, so it outputs zeros there, and `Bidirectional` zeroes both directions' masked
    /// steps, as Keras 3 does.
    RepeatLast,
}

impl MaskedSteps {
    /// Its name in metadata and on the command line: `"zeros"` or `"repeat-last"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskedSteps::Zeros => "zeros",
            MaskedSteps::RepeatLast => "repeat-last",
        }
    }

    /// Parses [`MaskedSteps::as_str`]'s names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::parse_name(name).ok()
    }
}
