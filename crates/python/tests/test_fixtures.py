"""The committed framework fixtures (weights, inputs, and the outputs PyTorch, Keras,
TensorFlow or ONNX Runtime computed) run through the Python module and held against the
framework's numbers with numpy.allclose (the CLI's tolerance: atol 1e-5, rtol 1e-4)."""

import numpy as np
import pytest

import rnn
from conftest import FIXTURES, check_options, read_safetensors

ATOL, RTOL = 1e-5, 1e-4


def _inputs(tensors):
    """(x, h0, lengths, expected by name) in sequence form; step form (X0, X1, …) stacked
    time-major, its Y<t> as output[t]."""
    h0 = tensors.get("h0")
    lengths = tensors.get("lengths", tensors.get("sequence_length"))
    if "input" in tensors:
        return tensors["input"], h0, lengths, "sequence"
    steps = sorted(
        (int(n[1:]), t) for n, t in tensors.items() if n[0] == "X" and n[1:].isdigit()
    )
    return np.stack([t for _, t in steps]), h0, lengths, "steps"


def _expected(tensors, form, f64):
    suffix = "_f64" if f64 else ""
    if form == "steps":
        return {
            n: tensors[n + suffix]
            for n in tensors
            if n[0] == "Y" and n[1:].isdigit() and n + suffix in tensors
        }
    names = ["output", "output_forward", "output_backward", "h_n"]
    found = {n: tensors[n + suffix] for n in names if n + suffix in tensors}
    if not found:
        # A whole model's output, named as its framework names it (Keras's output layer).
        inputs = {"input", "h0", "lengths", "sequence_length"}
        found = {
            n: tensors[n + suffix]
            for n in tensors
            if n not in inputs and not n.endswith("_f64") and n + suffix in tensors
        }
    return found


def _run(model_path, fixture, dtype):
    tensors, metadata = read_safetensors(fixture)
    x, h0, lengths, form = _inputs(tensors)
    options = check_options(metadata)
    if form == "steps":
        # The steps are stacked time-major, as the CLI stacks them.
        options["time_major"] = True
    model = rnn.load(model_path, **options)
    results = model(x.astype(dtype), h0=None if h0 is None else h0.astype(dtype), lengths=lengths)
    # A whole model's outputs by the names its framework gives them (one, or several).
    named = dict(zip(model.output_names or [], results))
    output, h_n = results[0], results[1]
    assert output.dtype == dtype
    expected = _expected(tensors, form, dtype == np.float64)
    if not expected and dtype == np.float64:
        pytest.skip("the framework wrote no float64 reference")
    assert expected, f"{fixture.name}: no expected outputs"
    half = output.shape[-1] // 2
    compared = 0
    for name, want in expected.items():
        if name in named:
            got = named[name]
        elif name == "h_n":
            got = h_n
        elif name == "output_forward":
            got = output[..., :half]
        elif name == "output_backward":
            got = output[..., half:]
        elif name.startswith("Y"):
            got = output[int(name[1:])]
        else:
            got = output
        if got is None or got.ndim != want.ndim:
            # Keras's return_sequences=False: the merged final states, which the Python
            # module does not return.
            continue
        assert got.shape == want.shape, f"{fixture.name}: {name}"
        assert np.allclose(got, want, atol=ATOL, rtol=RTOL), (
            f"{fixture.name}: {name}: worst |error| {np.abs(got - want).max()}"
        )
        compared += 1
    return compared


FIXTURE_FILES = sorted(FIXTURES.glob("*.safetensors"))


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_fixture(fixture, dtype):
    if _run(fixture, fixture, dtype) == 0:
        pytest.skip("only a return_sequences=False output, which Model does not return")


def _framework_files():
    """Each model file of tests/fixtures/files/ with the fixture of the same stem."""
    directory = FIXTURES / "files"
    pairs = []
    for fixture in sorted(directory.glob("*.safetensors")):
        stem = fixture.name.split(".")[0]
        for model in sorted(directory.glob(stem + ".*")):
            # A TensorFlow checkpoint is read from its .index, which names its data shards.
            if model.name != fixture.name and ".data-" not in model.name:
                pairs.append((model, fixture))
    return pairs


@pytest.mark.parametrize(
    "model,fixture", _framework_files(), ids=lambda p: p.name if hasattr(p, "name") else p
)
def test_framework_file(model, fixture):
    if _run(model, fixture, np.float32) == 0:
        pytest.skip("only a return_sequences=False output, which Model does not return")


def test_framework_files_are_found():
    kinds = {m.suffix for m, _ in _framework_files()}
    assert {".onnx", ".pt", ".h5", ".keras", ".index"} <= kinds, kinds


ONNX_EXPORTS = [
    "onnx_dynamo_1l", "onnx_dynamo_2l", "onnx_dynamo_bidir", "onnx_dynamo_relu_no_bias",
    "onnx_dynamo_h0", "onnx_dynamo_batch_first_dynamic", "onnx_legacy_batch_first",
    "onnx_legacy_h0_input",
]


@pytest.mark.parametrize("name", ONNX_EXPORTS)
def test_onnx_export(name):
    """torch.onnx.export on both exporters (xtask/fixtures/onnx_exports.py): ONNX Runtime's
    numbers on the file; for the default exporter's unrolled graph, torch's numbers at another
    length and batch too, with a warning that says what the graph fixed."""
    directory = FIXTURES / "files"
    fixtures = [directory / f"{name}.npz"]
    if "dynamo" in name:
        fixtures.append(directory / f"{name}_other.npz")
    for path in fixtures:
        fixture = np.load(path)
        h0 = fixture["h0"] if "h0" in fixture else None
        if "dynamo" in name:
            with pytest.warns(UserWarning, match="unrolls the RNN over 4 steps"):
                model = rnn.load(directory / f"{name}.onnx")
        else:
            model = rnn.load(directory / f"{name}.onnx")
        output, h_n = model(fixture["input"], h0=h0)
        assert np.allclose(output, fixture["output"], atol=1e-5, rtol=0), path
        assert np.allclose(h_n, fixture["h_n"], atol=1e-5, rtol=0), path


@pytest.mark.parametrize("name", ["tfkeras_savedmodel", "tfkeras_savedmodel_bidir"])
def test_tf_keras_savedmodel_folder(name):
    """tf-keras model.save("dir") read from the folder (xtask/fixtures/tfkeras_saved_models.py):
    the last layer returns its last step, tf-keras's predict on the model loaded back."""
    fixture = np.load(FIXTURES / "files" / f"{name}.npz")
    output, _ = rnn.load(FIXTURES / "files" / name)(fixture["input"])
    assert np.allclose(output[:, -1], fixture["output"], atol=1e-5, rtol=0)


def test_keras3_checkpoint_with_its_optimizer():
    """tf.train.Checkpoint(model=…, optimizer=…) of a Keras 3 model: the model's weights, found
    through the checkpoint's object graph."""
    fixture = np.load(FIXTURES / "files" / "keras3_train_checkpoint.npz")
    output, _ = rnn.load(FIXTURES / "files" / "keras3_train_checkpoint.index")(fixture["input"])
    assert np.allclose(output[:, -1], fixture["output"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["torch_export_2l", "torch_export_relu_bidir", "torch_export_f64"])
def test_torch_export_archive(name):
    """torch.export.save archives: the exported program's own outputs (torch_export.py)."""
    fixture = np.load(FIXTURES / "files" / f"{name}.npz")
    h0 = fixture["h0"] if "h0" in fixture else None
    output, h_n = rnn.load(FIXTURES / "files" / f"{name}.pt2")(fixture["input"], h0=h0)
    assert np.allclose(output, fixture["output"], atol=1e-5, rtol=0)
    assert np.allclose(h_n, fixture["h_n"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", ["tf2onnx_stack", "tf2onnx_relu_sequences",
                                     "tf2onnx_relu_sequences_other"])
def test_tf2onnx_loop(fixture):
    """tf2onnx's Keras SimpleRNN in Loop nodes: ONNX Runtime's (and Keras's) numbers."""
    name = fixture.removesuffix("_other")
    data = np.load(FIXTURES / "files" / f"{fixture}.npz")
    output, _ = rnn.load(FIXTURES / "files" / f"{name}.onnx")(data["input"])
    want = data["output"]
    got = output if want.ndim == 3 else output[:, -1]
    assert np.allclose(got, want, atol=1e-5, rtol=0)
