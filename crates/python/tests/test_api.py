"""The module's behaviour beyond the numbers: errors, dtypes, attributes, streams, the GIL."""

import threading
import time

import numpy as np
import pytest

import rnn
from conftest import ARTICLE, FIXTURES, read_safetensors


def test_attributes_of_the_article_model():
    model = rnn.load(ARTICLE)
    assert (model.input_size, model.hidden_size, model.num_layers) == (3, 5, 1)
    assert model.bidirectional is False and model.batch_first is False
    assert model.device == "cpu"
    assert "cpu" in rnn.devices()


def test_bidirectional_batch_first_attributes():
    model = rnn.load(
        FIXTURES / "torch_l3_bidir_relu_batch_first_h0.safetensors",
        nonlinearity="relu",
        batch_first=True,
    )
    assert model.bidirectional and model.batch_first and model.num_layers == 3


def test_float64_in_float64_out_and_float32_in_float32_out():
    model = rnn.load(ARTICLE)
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    out64, h64 = model(x)
    out32, h32 = model(x.astype(np.float32))
    assert out64.dtype == np.float64 and h64.dtype == np.float64
    assert out32.dtype == np.float32 and h32.dtype == np.float32
    assert np.allclose(out64, out32, atol=1e-5)


def test_dtype_option_fixes_the_result_dtype():
    model = rnn.load(ARTICLE, dtype="float64")
    out, _ = model(np.ones((2, 4, 3), np.float32))
    assert out.dtype == np.float64


def test_non_contiguous_and_list_inputs_give_the_same_numbers():
    model = rnn.load(ARTICLE)
    x = np.random.default_rng(1).standard_normal((4, 2, 3)).astype(np.float32)
    want, _ = model(np.ascontiguousarray(x.transpose(1, 0, 2)))
    got, _ = model(x.transpose(1, 0, 2))
    assert np.array_equal(got, want)
    listed, _ = model(x.transpose(1, 0, 2).tolist())
    assert np.array_equal(listed, want)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16])
def test_lengths_take_any_integer_array(dtype):
    model = rnn.load(ARTICLE)
    x = np.ones((3, 2, 3), np.float32)
    out, _ = model(x, lengths=np.array([3, 1], dtype))
    assert np.all(out[1:, 1] == 0) and np.any(out[1:, 0] != 0)


def test_float_lengths_are_a_type_error():
    with pytest.raises(TypeError, match="lengths"):
        rnn.load(ARTICLE)(np.ones((3, 2, 3), np.float32), lengths=np.array([1.0, 2.0]))


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'nonlinarity'"):
        rnn.load(ARTICLE, nonlinarity="relu")


def test_errors_name_the_keyword():
    with pytest.raises(rnn.RnnError, match="cannot read the model") as caught:
        rnn.load("/nonexistent/model.safetensors")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(rnn.RnnError, match=r"load\(nonlinearity=…\): `tahn` is not one of"):
        rnn.load(ARTICLE, nonlinearity="tahn")
    with pytest.raises(
        rnn.RnnError, match=r"load\(nonlinearity=…\): expected one value or 1 \(one per layer"
    ):
        rnn.load(ARTICLE, nonlinearity=["tanh", "relu"])
    with pytest.raises(rnn.RnnError, match=r"load\(merge_mode=…\): this model has no bidirectional"):
        rnn.load(ARTICLE, merge_mode="sum")
    with pytest.raises(rnn.RnnError, match=r"load\(clip=…\): expected a positive bound, found -1"):
        rnn.load(ARTICLE, clip=-1.0)
    with pytest.raises(rnn.RnnError, match=r"load\(device=…\): `tpu` is not a device"):
        rnn.load(ARTICLE, device="tpu")
    with pytest.raises(rnn.RnnError, match="expected shape"):
        rnn.load(ARTICLE)(np.ones((2, 4, 7), np.float32))


def test_keywords_take_the_clis_vocabulary():
    # The library's names, as the CLI's flags and file metadata spell them; `_` for `-`.
    rnn.load(ARTICLE, masked_steps="repeat_last", nonlinearity="leaky_relu(0.1)")
    rnn.load(ARTICLE, masked_steps="repeat-last", weights_format="article")
    with pytest.raises(
        rnn.RnnError,
        match=r"load\(weights_format=…\): `pytroch` is not one of the accepted values: "
        r"pytorch, keras, tf1, article",
    ):
        rnn.load(ARTICLE, weights_format="pytroch")
    with pytest.raises(
        rnn.RnnError,
        match=r"load\(merge_mode=…\): `avg` is not one of the accepted values: "
        r"concat, sum, ave, mul, none",
    ):
        rnn.load(ARTICLE, merge_mode="avg")


def test_ambiguous_file_lists_the_candidates():
    with pytest.raises(rnn.RnnError, match="--prefix"):
        rnn.load(FIXTURES / "tf1_two_rnns.safetensors")
    model = rnn.load(FIXTURES / "tf1_two_rnns.safetensors", prefix="bidirectional_rnn/")
    assert model.bidirectional


def test_refused_framework_file():
    with pytest.raises(rnn.RnnError, match="refused_torchscript.pt"):
        rnn.load(FIXTURES / "files" / "refused_torchscript.pt")


def test_stream_matches_the_whole_run():
    model = rnn.load(ARTICLE)
    x = np.random.default_rng(2).standard_normal((6, 4, 3)).astype(np.float32)
    want, _ = model(x)
    stream = model.stream(4)
    got = np.stack([stream.step(x[t]) for t in range(6)])
    assert stream.steps == 6
    assert np.allclose(got, want, atol=1e-6)


def test_stream_refuses_a_bidirectional_model():
    model = rnn.load(FIXTURES / "torch_bidir_lengths.safetensors")
    with pytest.raises(rnn.RnnError, match="bidirectional"):
        model.stream(2)


def test_stream_refuses_a_model_whose_file_fixes_h0():
    """An ONNX graph whose initialisers fix initial_h runs whole from that state (ONNX
    Runtime's numbers); a stream starts from the state its caller gives, so it is refused, as
    the CLI's --stream is, rather than run from zeros."""
    model = rnn.load(FIXTURES / "files" / "onnx_fixed_h0.onnx")
    tensors, _ = read_safetensors(FIXTURES / "files" / "onnx_fixed_h0.safetensors")
    output, h_n = model(tensors["input"])
    assert np.allclose(output, tensors["output"], atol=1e-5)
    assert np.allclose(h_n, tensors["h_n"], atol=1e-5)
    with pytest.raises(rnn.RnnError, match="the model fixes h0"):
        model.stream(2)


def test_python_runs_while_a_model_computes():
    """The GIL is released while a model computes: the main thread keeps running Python code in
    the middle half of a long call made by another thread. Were the GIL held, the main thread
    could run only at the call's edges (a switch before the call enters Rust, or after it
    leaves), never in its middle; no speed ratio is asserted, so a busy machine does not flake.
    One sequence, so the call itself runs on one core."""
    model = rnn.load(ARTICLE)
    x = np.ones((2_000_000, 1, 3), np.float32)
    span = []

    def call():
        start = time.perf_counter()
        model(x)
        span.extend([start, time.perf_counter()])

    thread = threading.Thread(target=call)
    ticks = []
    thread.start()
    while thread.is_alive():
        ticks.append(time.perf_counter())
    thread.join()
    start, end = span
    quarter = (end - start) / 4
    middle = [t for t in ticks if start + quarter < t < end - quarter]
    assert middle, f"the main thread did not run during a {end - start:.3f} s call"



KERAS_MASK_ZERO = FIXTURES / "files" / "keras_embedding_mask_zero.keras"


def test_a_mask_made_before_the_rnn_needs_lengths():
    """Keras 3.15's Embedding(mask_zero=True) → SimpleRNN(5): its embedded, post-padded inputs
    give Keras's final states with each sequence's unmasked steps as lengths, and are refused
    without them (the RNN would run over the padding), also as a stream."""
    fixture = np.load(FIXTURES / "files" / "keras_embedding_mask_zero_lengths.npz")
    model = rnn.load(KERAS_MASK_ZERO, stack="simple_rnn/")
    with pytest.raises(rnn.RnnError, match="mask_zero=True.*lengths"):
        model(fixture["input"])
    _, h_n = model(fixture["input"], lengths=fixture["lengths"])
    assert np.allclose(h_n, fixture["h_n"], atol=1e-5, rtol=0)
    with pytest.raises(rnn.RnnError, match="stream cannot apply"):
        model.stream(3)


def test_an_input_without_data_is_refused():
    model = rnn.load(ARTICLE)
    with pytest.raises(rnn.RnnError, match="at least one step"):
        model(np.zeros((0, 2**40, 3), np.float32))


def test_convert_writes_the_files_torch_loaded(tmp_path):
    """rnn.convert writes the bytes `rnn convert` does (the committed conversions, which torch
    itself loaded and ran: xtask/fixtures/torch_converted.py), and the canonical layout that
    rnn.load reads back to the same numbers."""
    converted = FIXTURES / "converted"
    source = FIXTURES / "torch_l3_bidir_relu_batch_first_h0.safetensors"
    code = rnn.convert(source, tmp_path / "m.pt", nonlinearity="relu", batch_first=True)
    assert code.startswith("import torch\nrnn = torch.nn.RNN(input_size=4, hidden_size=6, num_layers=3, "
                           "nonlinearity='relu', bias=True, batch_first=True, "
                           "bidirectional=True)\n")
    assert (tmp_path / "m.pt").read_bytes() == (converted / "torch_l3_bidir_relu.pt").read_bytes()
    assert rnn.convert(source, tmp_path / "m.safetensors", nonlinearity="relu",
                       batch_first=True) is None
    tensors, _ = read_safetensors(converted / "torch_l3_bidir_relu.safetensors")
    output, h_n = rnn.load(tmp_path / "m.safetensors")(tensors["input"], tensors["h0"])
    assert np.allclose(output, tensors["output"], atol=1e-5)
    assert np.allclose(h_n, tensors["h_n"], atol=1e-5)
    with pytest.raises(rnn.RnnError, match="nn.RNN cannot express activation selu"):
        rnn.convert(source, tmp_path / "selu.pt", nonlinearity="selu")
    assert not (tmp_path / "selu.pt").exists()
    with pytest.raises(rnn.RnnError, match="name the output so"):
        rnn.convert(source, tmp_path / "m.h5")
    with pytest.raises(TypeError, match="convert\\(\\) got an unexpected keyword argument 'dtype'"):
        rnn.convert(source, tmp_path / "m.pt", dtype="float64")
