"""Every memory layout numpy can hand over gives the numbers of the same values in C order.

The reference is the framework's own output recorded in the fixture (PyTorch's, for a C-ordered
input): each layout of `x`, `h0`, `lengths` and a stream step must reproduce it, never read the
buffer in another order."""

import numpy as np
import pytest

import rnn
from conftest import FIXTURES, read_safetensors

BIDIR_H0 = FIXTURES / "torch_l3_bidir_relu_batch_first_h0.safetensors"
LENGTHS = FIXTURES / "torch_bidir_lengths.safetensors"
STACK = FIXTURES / "torch_l2_no_bias.safetensors"


def _fortran(a):
    return np.asfortranarray(a)


def _transposed_back(a):
    """The `.T` of an array held in reverse axis order: F-contiguous, the values of `a`."""
    return np.ascontiguousarray(a.T).T


def _strided(a):
    """A view taking every other element of a buffer twice as long on the last axis."""
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


def _negative_strides(a):
    """A view with negative strides on every axis over the reversed buffer."""
    return np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])[
        (slice(None, None, -1),) * a.ndim
    ]


def _big_endian(a):
    return a.astype(a.dtype.newbyteorder(">"))


def _fortran_big_endian(a):
    return np.asfortranarray(_big_endian(a))


def _fortran_float16(a):
    return np.asfortranarray(a.astype(np.float16))


LAYOUTS = {
    "fortran": _fortran,
    "transposed_back": _transposed_back,
    "strided": _strided,
    "negative_strides": _negative_strides,
    "big_endian": _big_endian,
    "fortran_big_endian": _fortran_big_endian,
}


def _bidir():
    tensors, _ = read_safetensors(BIDIR_H0)
    model = rnn.load(BIDIR_H0, nonlinearity="relu", batch_first=True)
    return model, tensors


def _assert_framework_numbers(t, output, h_n):
    """float64 runs against torch's float64 outputs, float32 ones against its float32 outputs."""
    suffix, tolerance = ("_f64", 1e-12) if output.dtype == np.float64 else ("", 1e-5)
    assert np.allclose(output, t["output" + suffix], atol=tolerance, rtol=0)
    assert np.allclose(h_n, t["h_n" + suffix], atol=tolerance, rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_x_in_any_layout_gives_the_framework_numbers(layout, dtype):
    model, t = _bidir()
    x, h0 = t["input"].astype(dtype), t["h0"].astype(dtype)
    view = LAYOUTS[layout](x)
    assert np.array_equal(view, x)
    output, h_n = model(view, h0=h0)
    _assert_framework_numbers(t, output, h_n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_h0_in_any_layout_gives_the_framework_numbers(layout, dtype):
    model, t = _bidir()
    x, h0 = t["input"].astype(dtype), t["h0"].astype(dtype)
    view = LAYOUTS[layout](h0)
    assert np.array_equal(view, h0)
    output, h_n = model(x, h0=view)
    _assert_framework_numbers(t, output, h_n)


def test_a_converted_dtype_keeps_the_layout_s_values():
    """float16 in Fortran order goes through numpy's conversion, which keeps the order."""
    model, t = _bidir()
    x16 = t["input"].astype(np.float16)
    want, _ = model(np.ascontiguousarray(x16), h0=t["h0"])
    got, _ = model(_fortran_float16(t["input"]), h0=t["h0"])
    assert np.array_equal(got, want)


LENGTH_LAYOUTS = {
    "fortran_2d": lambda l: np.asfortranarray(l.reshape(-1, 1)).ravel(),
    "column_of_a_fortran_array": lambda l: np.asfortranarray(np.stack([l, l], axis=1))[:, 0],
    "strided": lambda l: np.repeat(l, 2)[::2],
    "negative_strides": lambda l: l[::-1].copy()[::-1],
    "big_endian": lambda l: l.astype(">i4"),
}


@pytest.mark.parametrize("layout", LENGTH_LAYOUTS)
def test_lengths_in_any_layout_give_the_framework_numbers(layout):
    tensors, _ = read_safetensors(LENGTHS)
    model = rnn.load(LENGTHS)
    lengths = np.asarray(tensors["lengths"], np.int64)
    x = np.asfortranarray(tensors["input"])
    output, h_n = model(x, lengths=LENGTH_LAYOUTS[layout](lengths))
    assert np.allclose(output, tensors["output"], atol=1e-5, rtol=0)
    assert np.allclose(h_n, tensors["h_n"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_stream_steps_in_any_layout_give_the_framework_numbers(layout):
    tensors, _ = read_safetensors(STACK)
    x = tensors["input"]  # [T, B, I]
    model = rnn.load(STACK)
    stream = model.stream(x.shape[1])
    steps = np.stack([stream.step(LAYOUTS[layout](np.ascontiguousarray(x[t]))) for t in range(x.shape[0])])
    assert np.allclose(steps, tensors["output"], atol=1e-5, rtol=0)
