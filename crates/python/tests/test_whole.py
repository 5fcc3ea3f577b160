"""Whole Keras models (a file whose layers around the RNN rnn runs): token ids or vectors in,
the model's output out, against Keras's predict (fixtures written by
xtask/fixtures/keras_whole.py and tfkeras_whole.py)."""

import numpy as np
import pytest

import rnn
from conftest import FIXTURES, read_safetensors

FILES = FIXTURES / "files"
CASES = [
    ("keras_whole_classifier.keras", "keras_whole_classifier"),
    ("keras_whole_tagger.keras", "keras_whole_tagger"),
    ("keras_whole_functional.keras", "keras_whole_functional"),
    ("keras_whole_flatten.keras", "keras_whole_flatten"),
    ("keras_whole_tagger_ids.keras", "keras_whole_tagger_ids"),
    ("tfkeras_whole_classifier.h5", "tfkeras_whole_classifier"),
    ("tfkeras_whole_tagger.h5", "tfkeras_whole_tagger"),
    ("tfkeras_whole_classifier.keras", "tfkeras_whole_classifier"),
    ("tfkeras_whole_tagger.keras", "tfkeras_whole_tagger"),
    ("keras_whole_nested_h5_encoder.h5", "keras_whole_nested_h5_encoder"),
    ("tfkeras_whole_nested_head.h5", "tfkeras_whole_nested_head"),
]


def expected(fixture):
    tensors, _ = read_safetensors(FILES / f"{fixture}.safetensors")
    x = tensors.pop("input")
    (name, y), = tensors.items()
    return x, y


@pytest.mark.parametrize("model_file,fixture", CASES)
def test_a_whole_model_gives_keras_s_output(model_file, fixture):
    x, want = expected(fixture)
    output, h_n = rnn.load(FILES / model_file)(x)
    assert h_n is None
    assert output.shape == want.shape
    np.testing.assert_allclose(output, want, atol=1e-5, rtol=1e-4)


# Functional models that branch after their RNN (xtask/fixtures/keras_whole_outputs.py and
# tfkeras_whole.py): each output in Keras's order, named as tf-keras names them.
SEVERAL = [
    ("keras_whole_two_heads.keras", ["sentiment", "topic"]),
    ("keras_whole_states.keras", ["tags", "topic", "birnn", "birnn_1"]),
    ("keras_whole_merges.keras", ["out", "lower"]),
    ("keras_whole_nested.keras", ["tags", "gate"]),
    ("keras_whole_nested_head.keras", ["head", "from_state"]),
    ("keras_whole_lower_head.keras", ["head", "upper"]),
    ("tfkeras_whole_states.h5", ["topic", "birnn", "tags", "birnn_1", "birnn_2"]),
    ("tfkeras_whole_states.keras", ["topic", "birnn", "tags", "birnn_1", "birnn_2"]),
    # A tf-keras SavedModel folder (xtask/fixtures/tfkeras_saved_models.py).
    ("tfkeras_savedmodel_whole", ["tags", "topic"]),
]


@pytest.mark.parametrize("model_file,names", SEVERAL)
def test_a_model_of_several_outputs_gives_each_in_keras_s_order(model_file, names):
    tensors, _ = read_safetensors(FILES / (model_file.rsplit(".", 1)[0] + ".safetensors"))
    x = tensors.pop("input")
    model = rnn.load(FILES / model_file)
    assert model.output_names == names
    outputs = model(x)
    assert len(outputs) == len(names)
    for name, got in zip(names, outputs):
        assert got.shape == tensors[name].shape, name
        np.testing.assert_allclose(got, tensors[name], atol=1e-5, rtol=1e-4, err_msg=name)


def test_a_model_of_several_outputs_does_not_stream():
    model = rnn.load(FILES / "keras_whole_two_heads.keras")
    with pytest.raises(rnn.RnnError, match="sentiment, topic"):
        model.stream(batch=1)


def test_token_ids_of_any_integer_dtype_and_layout_give_the_same_output():
    x, want = expected("keras_whole_classifier")
    model = rnn.load(FILES / "keras_whole_classifier.keras")
    for ids in [x.astype(np.int64), x.astype(np.uint16), np.asfortranarray(x), x.astype(np.float64)]:
        output, _ = model(ids)
        np.testing.assert_allclose(output, want, atol=1e-5, rtol=1e-4)


def test_a_token_id_outside_the_vocabulary_is_refused():
    model = rnn.load(FILES / "keras_whole_classifier.keras")
    with pytest.raises(rnn.RnnError, match="found 40"):
        model(np.array([[1, 40]], dtype=np.int64))
    with pytest.raises(rnn.RnnError, match="whole numbers"):
        model(np.array([[1.5, 2.0]]))
    # An id past float32's whole numbers is not rounded into the vocabulary, and float32 ids
    # past them are refused.
    with pytest.raises(rnn.RnnError, match="16777217"):
        model(np.array([[16777217]], dtype=np.int64))
    with pytest.raises(rnn.RnnError, match="does not hold every whole number"):
        model(np.array([[16777218]], dtype=np.float32))


def test_a_whole_model_takes_no_lengths():
    x, _ = expected("keras_whole_classifier")
    model = rnn.load(FILES / "keras_whole_classifier.keras")
    with pytest.raises(rnn.RnnError, match="no h0 or lengths"):
        model(x, lengths=[3] * len(x))


def test_stack_still_picks_the_rnn_alone():
    model = rnn.load(FILES / "keras_whole_tagger.keras", stack=["rnn/"])
    x = np.zeros((1, 2, 3), dtype=np.float32) + 1
    output, h_n = model(x)
    assert output.shape == (1, 2, 4) and h_n.shape == (1, 1, 4)


def test_a_whole_model_streamed_token_by_token_gives_its_output_for_each_prefix():
    model = rnn.load(FILES / "keras_whole_classifier.keras")
    ids = np.array([[5, 17, 3, 22, 9], [1, 2, 3, 4, 5]])
    stream = model.stream(batch=2)
    for t in range(ids.shape[1]):
        step = stream.step(ids[:, t])
        whole, _ = model(ids[:, : t + 1])
        assert np.array_equal(step, whole)
    # Padding is skipped by Keras, not by a stream: refused; a step is [batch] ids.
    with pytest.raises(rnn.RnnError, match="masked"):
        stream.step(np.array([0, 3]))
    with pytest.raises(rnn.RnnError, match=r"one token id per sequence, \[batch\], found shape \[2, 1\]"):
        stream.step(np.array([[1], [2]]))


ONNX_CASES = [
    "classifier",
    "final_state",
    "tagger",
    "glue",
    "features",
    "dynamo_classifier",
    "dynamo_final_state",
    "dynamo_tagger",
    "dynamo_two_steps",
    "dynamo_final",
    "dynamo_finals_bidirectional",
    "dynamo_two_rnns",
    "dynamo_twice",
    "pooled",
    "dynamo_pooled",
]
TF2ONNX_CASES = ["tf2onnx_whole_classifier", "tf2onnx_whole_tagger"]


@pytest.mark.parametrize("name", [f"onnx_whole_{n}" for n in ONNX_CASES] + TF2ONNX_CASES)
def test_an_onnx_whole_model_gives_onnx_runtime_s_output(name):
    """PyTorch models exported whole by torch.onnx.export, either exporter
    (xtask/fixtures/onnx_whole.py), and tf-keras models converted by tf2onnx
    (tf2onnx_loop.py), against ONNX Runtime on the file."""
    x, want = expected(name)
    model = rnn.load(FILES / f"{name}.onnx")
    output, h_n = model(x)
    assert h_n is None
    np.testing.assert_allclose(output, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["state", "state_bidirectional", "dynamo_state"])
def test_an_onnx_whole_model_that_takes_h0_runs_from_the_h0_given(name):
    """forward(ids, h0) exported by either exporter: h0 is the graph's second input, and
    Model(x, h0=...) gives ONNX Runtime's logits and h_n; without h0 the RNN starts from
    zeros, as nn.RNN's forward does."""
    tensors, _ = read_safetensors(FILES / f"onnx_whole_{name}.safetensors")
    model = rnn.load(FILES / f"onnx_whole_{name}.onnx")
    assert model.output_names == ["logits", "h_n"]
    logits, h_n = model(tensors["input"], h0=tensors["h0"])
    np.testing.assert_allclose(logits, tensors["logits"], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(h_n, tensors["h_n"], atol=1e-5, rtol=1e-4)
    from_nothing = model(tensors["input"])
    from_zeros = model(tensors["input"], h0=np.zeros_like(tensors["h0"]))
    for a, b in zip(from_nothing, from_zeros):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(rnn.RnnError, match="h0"):
        model(tensors["input"], h0=tensors["h0"][:1])


def test_an_onnx_whole_model_of_two_outputs_gives_both_in_the_graph_s_order():
    tensors, _ = read_safetensors(FILES / "onnx_whole_tied.safetensors")
    model = rnn.load(FILES / "onnx_whole_tied.onnx")
    assert model.output_names == ["logits", "h_n"]
    logits, h_n = model(tensors["input"].astype(np.int32))
    np.testing.assert_allclose(logits, tensors["logits"], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(h_n, tensors["h_n"], atol=1e-5, rtol=1e-4)
    with pytest.raises(rnn.RnnError, match="found 30"):
        model(np.array([[1, 30]], dtype=np.int64))
