"""The ONNX graphs `rnn convert` writes (tests/fixtures/converted_onnx, made and run by ONNX
Runtime in xtask/fixtures/onnx_converted.py), written again by this wheel's rnn.convert and run
here by ONNX Runtime and by rnn on each fixture's inputs: the same bytes, the same numbers.
CI installs onnxruntime beside the wheel; without it these tests are skipped."""

import numpy as np
import pytest

import rnn
from conftest import FIXTURES, read_safetensors

ort = pytest.importorskip("onnxruntime")

CONVERTED = FIXTURES / "converted_onnx"
CASES = sorted(CONVERTED.glob("*.safetensors"))


def _options(flags):
    """`rnn convert`'s flags (`--masked-steps zeros --batch-first`) as rnn.convert's keywords."""
    words, options = flags.split(), {}
    while words:
        key = words.pop(0).removeprefix("--").replace("-", "_")
        options[key] = words.pop(0) if words and not words[0].startswith("--") else True
    return options


def test_every_case_is_here():
    assert len(CASES) >= 20


@pytest.mark.parametrize("fixture", CASES, ids=lambda p: p.stem)
def test_onnx_runtime_and_rnn_agree_on_the_converted_graph(fixture, tmp_path):
    tensors, meta = read_safetensors(fixture)
    written = tmp_path / "m.onnx"
    code = rnn.convert(FIXTURES / meta["convert_source"], written, **_options(meta["convert_args"]))
    assert code.startswith("import onnxruntime\n")
    assert written.read_bytes() == (CONVERTED / meta["onnx"]).read_bytes()

    options = ort.SessionOptions()
    options.log_severity_level = 3  # h0 and lengths are overridable defaults by design
    session = ort.InferenceSession(str(written), options, providers=["CPUExecutionProvider"])
    # `input` is required; h0 and lengths are optional (overridable initialisers).
    assert [i.name for i in session.get_inputs()] == ["input"]
    inputs = {"input"} | {i.name for i in session.get_overridable_initializers()}
    feeds = {"input": np.ascontiguousarray(tensors["input"], np.float32)}
    if "h0" in tensors:
        feeds["h0"] = np.ascontiguousarray(tensors["h0"], np.float32)
    if "lengths" in tensors:
        feeds["lengths"] = np.asarray(tensors["lengths"], np.int32)
    assert set(feeds) <= inputs
    runtime = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))

    output, h_n = rnn.load(written)(
        tensors["input"], h0=tensors.get("h0"), lengths=tensors.get("lengths"))
    assert np.allclose(output, runtime["output"], atol=1e-5, rtol=0)
    if "h_n" in runtime:
        assert np.allclose(h_n, runtime["h_n"], atol=1e-5, rtol=0)
    else:
        assert h_n is None  # hidden sizes differ: neither stacks the final states
    # And both are the numbers ONNX Runtime gave when the fixture was made.
    assert np.allclose(runtime["output"], tensors["output"], atol=1e-6, rtol=0)
