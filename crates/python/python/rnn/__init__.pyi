"""Type stubs of the ``rnn`` module (its native part is ``rnn._rnn``)."""

from os import PathLike
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Names = Union[str, Sequence[str]]
_Floats = Union[float, Sequence[float]]

class RnnError(ValueError):
    """A file, a shape or an option rnn cannot use; the message is the rnn CLI's."""

def load(
    path: Union[str, PathLike[str]],
    *,
    nonlinearity: Optional[_Names] = ...,
    go_backwards: bool = ...,
    merge_mode: Optional[_Names] = ...,
    masked_steps: Optional[str] = ...,
    mask_value: Optional[float] = ...,
    clip: Optional[_Floats] = ...,
    batch_first: bool = ...,
    time_major: bool = ...,
    weights_format: Optional[str] = ...,
    prefix: Optional[str] = ...,
    stack: Optional[_Names] = ...,
    dtype: Optional[str] = ...,
    device: str = ...,
) -> Model:
    """Loads the RNN in ``path`` with the CLI's reading options (by their long names).

    Raises ``TypeError`` for an unknown option and ``RnnError`` (a ``ValueError``) with the
    CLI's message for a file, structure or option rnn cannot use."""

def convert(
    path: Union[str, PathLike[str]],
    output: Union[str, PathLike[str]],
    *,
    nonlinearity: Optional[_Names] = ...,
    go_backwards: bool = ...,
    merge_mode: Optional[_Names] = ...,
    masked_steps: Optional[str] = ...,
    mask_value: Optional[float] = ...,
    clip: Optional[_Floats] = ...,
    batch_first: bool = ...,
    time_major: bool = ...,
    weights_format: Optional[str] = ...,
    prefix: Optional[str] = ...,
    stack: Optional[_Names] = ...,
) -> Optional[str]:
    """Writes the RNN in ``path`` to ``output`` as its extension says: ``.safetensors`` (the
    canonical layout, every option recorded), ``.pt``/``.pth`` (a ``torch.save`` state_dict
    of ``torch.nn.RNN``), ``.onnx`` (a graph of ONNX ``RNN`` nodes), ``.keras`` (a Keras 3
    model) or ``.weights.h5`` (its weights alone). Returns, for every target but
    ``.safetensors``, the Python that loads it in its framework, else ``None``.

    Raises ``RnnError`` for what the target cannot express (named; nothing is written)."""

def devices() -> list[str]:
    """``"cpu"``, then ``"cuda:N"`` for each GPU (none unless built with CUDA)."""

class Model:
    """A loaded RNN.

    ``model(x, h0=None, lengths=None) -> (output, h_n)``:

    - ``x``: ``[seq, batch, input_size]`` (``[batch, seq, input_size]`` when ``batch_first``),
      or one sequence ``[seq, input_size]``; float32 or float64.
    - ``h0``: ``[num_layers * num_directions, batch, hidden_size]``; zeros when ``None``.
    - ``lengths``: one integer per sequence, each at most ``seq``.
    - ``output``: like ``x`` with the top layer's output features; ``h_n`` like ``h0``
      (``None`` when the layers' hidden sizes differ).

    Results have the input's dtype unless ``load(dtype=...)`` fixed one. Releases the GIL.
    Raises ``RnnError`` when a shape does not fit.

    A whole model (``output_names`` is not ``None``: a Keras file whose layers around the RNN
    rnn runs, or an ONNX graph of RNN nodes and the ops around them that rnn evaluates) takes
    its own input, token ids or floats (Keras: ``[batch, seq]`` or ``[batch, seq, features]``;
    ONNX: as the graph's input says), and returns ``(output, None)``, its output as Keras's
    ``predict`` or ONNX Runtime gives it; an ONNX graph of several outputs returns them all,
    in ``output_names``' order."""

    input_size: int
    output_names: Optional[list[str]]
    onnx_graph: bool
    hidden_size: Union[int, list[int]]
    num_layers: int
    bidirectional: bool
    batch_first: bool
    device: str
    def __call__(
        self,
        x: npt.ArrayLike,
        h0: Optional[npt.ArrayLike] = None,
        lengths: Optional[npt.ArrayLike] = None,
    ) -> Tuple[np.ndarray, Optional[np.ndarray]]: ...
    def stream(self, batch: int = 1, h0: Optional[npt.ArrayLike] = None) -> Stream:
        """Feeds the model one step at a time; ``h0`` is ``[num_layers, batch, hidden_size]``.

        The stream computes in the dtype the model was loaded in (float32 unless
        ``load(dtype="float64")``), whatever the dtype of the steps fed to it. Raises
        ``RnnError`` for a model that reads a sequence from its end (bidirectional,
        ``go_backwards``), masks steps, or whose file fixes ``h0`` or ``lengths`` (an ONNX
        graph's initialisers). A whole model streams its own input (token ids ``[batch]`` per
        step where it starts with an embedding), from zeros; a step it masks (padding)
        raises, since Keras skips it."""

class Stream:
    """A model fed one step at a time (``Model.stream()``)."""

    steps: int
    def step(self, x: npt.ArrayLike) -> np.ndarray:
        """``x`` ``[batch, input_size]`` -> the top layer's new state ``[batch, hidden_size]``
        (a whole model: token ids ``[batch]`` -> its output for the steps so far)."""
