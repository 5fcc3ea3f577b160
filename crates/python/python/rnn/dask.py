"""The model mapped over a Dask array's chunks along the batch axis, loaded once per worker
process.

>>> import dask.array as da, rnn.dask
>>> x = da.from_array(big, chunks=(seq, 4096, features))        # time-major: batch is axis 1
>>> output = rnn.dask.run("model.safetensors", x).compute()
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import load

_MODELS: Dict[Tuple[str, Tuple[Tuple[str, Any], ...]], Any] = {}
# How many times this process loaded a model: once per (path, options), not once per task.
loads = 0


def _key(options: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    return tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items())
    )


def _model(path: str, key: Tuple[Tuple[str, Any], ...]):
    """This process's model for (path, options): loaded on the first task, then reused."""
    model = _MODELS.get((path, key))
    if model is None:
        global loads
        loads += 1
        model = load(path, **dict(key))
        _MODELS[(path, key)] = model
    return model


def _output_chunk(x, lengths, h0, *, path, key):
    model = _model(path, key)
    output, _ = model(x, h0=h0, lengths=lengths)
    return output


def _whole_chunk(x, *, path, key, index):
    return _model(path, key)(x)[index]


def _run_whole(model, x, lengths, h0, path, key):
    """A whole model (its own input, batch-first: token ids ``[batch, seq]`` or
    ``[batch, seq, features]``) over ``x``'s batch chunks; its output ``[batch, …]``."""
    import dask.array as da

    if lengths is not None or h0 is not None:
        raise ValueError(
            "the model is run whole, from its own input; it takes no lengths or h0"
        )
    if model.onnx_graph:
        raise ValueError(
            "the model is an ONNX graph, whose axes are its own: rnn does not know which is "
            "the batch's, so it does not split it; run it with rnn.load(path)(x)"
        )
    if x.ndim not in (2, 3) or any(len(c) != 1 for c in x.chunks[1:]):
        raise ValueError(
            "x: expected token ids [batch, seq] or [batch, seq, features] chunked along the "
            "batch (axis 0) only; rechunk with x.rechunk({%s})"
            % ", ".join(f"{a}: -1" for a in range(1, x.ndim))
        )
    samples = model(np.zeros((1,) + x.shape[1:], x.dtype))
    lazy = []
    for index, sample in enumerate(samples[: len(model.output_names)]):
        chunks = (x.chunks[0],) + tuple((n,) for n in sample.shape[1:])
        extra = {}
        if sample.ndim > x.ndim:
            extra["new_axis"] = list(range(x.ndim, sample.ndim))
        elif sample.ndim < x.ndim:
            extra["drop_axis"] = list(range(sample.ndim, x.ndim))
        lazy.append(
            da.map_blocks(
                _whole_chunk,
                x,
                chunks=chunks,
                dtype=sample.dtype,
                meta=np.empty((0,) * sample.ndim, sample.dtype),
                path=path,
                key=key,
                index=index,
                **extra,
            )
        )
    return lazy[0] if len(lazy) == 1 else tuple(lazy)


def run(path, x, *, lengths=None, h0=None, **options):
    """The model at ``path`` (loaded with ``options``, as ``rnn.load`` takes them) over the
    Dask array ``x``, one task per chunk of the batch axis; returns the ``output`` as a lazy
    ``dask.array.Array``.

    - ``x``: ``[seq, batch, input_size]`` (``[batch, seq, input_size]`` when the model is
      batch-first); the time and feature axes must be one chunk each.
    - ``lengths``: ``[batch]`` integers, ``h0``: ``[num_layers * num_directions, batch,
      hidden_size]``; numpy or Dask arrays, rechunked to ``x``'s batch chunks.

    A whole model (``Model.output_names`` is not ``None``) takes its own input, token ids
    ``[batch, seq]`` or ``[batch, seq, features]``, chunked along the batch (axis 0), and
    gives its output ``[batch, …]``; a model of several outputs gives a tuple of them, in the
    order of ``Model.output_names``.

    Raises ``ValueError`` when ``x`` is chunked along time or features, and what ``rnn.load``
    raises for the model (loaded here once, for its configuration).
    """
    import dask.array as da

    path = str(path)
    key = _key(options)
    model = _model(path, key)
    if model.output_names is not None:
        return _run_whole(model, x, lengths, h0, path, key)
    if x.ndim != 3:
        raise ValueError(f"x: expected 3 dimensions [seq, batch, features], found {x.ndim}")
    batch_axis = 0 if model.batch_first else 1
    time_axis = 1 - batch_axis
    if len(x.chunks[time_axis]) != 1 or len(x.chunks[2]) != 1:
        raise ValueError(
            "x: chunks along time (axis %d) or features (axis 2) are refused: a sequence's steps "
            "depend on each other, so each chunk must hold whole sequences; rechunk with "
            "x.rechunk({%d: -1, 2: -1})" % (time_axis, time_axis)
        )
    batch_chunks = x.chunks[batch_axis]
    if lengths is not None:
        lengths = da.asarray(lengths).rechunk((batch_chunks,))
    if h0 is not None:
        h0 = da.asarray(h0).astype(x.dtype)
        h0 = h0.rechunk((h0.shape[0], batch_chunks, h0.shape[2]))
    out_features = model(np.zeros((1, 1, model.input_size), x.dtype))[0].shape[-1]
    x_index = "tbf" if batch_axis == 1 else "btf"
    out_index = "tbo" if batch_axis == 1 else "bto"
    args = [x, x_index]
    args += [lengths, "b"] if lengths is not None else [None, None]
    args += [h0, "lbh"] if h0 is not None else [None, None]
    return da.blockwise(
        _output_chunk,
        out_index,
        *args,
        new_axes={"o": out_features},
        concatenate=True,
        dtype=x.dtype,
        path=path,
        key=key,
        meta=np.empty((0, 0, 0), x.dtype),
    )
