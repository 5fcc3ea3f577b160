"""rnn.dask.run: the model over a Dask array's batch chunks, on a LocalCluster of two worker
processes, equal bit for bit to the one-process run."""

import numpy as np
import pytest

import rnn

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import rnn.dask  # noqa: E402

from conftest import ARTICLE, FIXTURES  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def test_two_worker_processes_give_the_one_process_bits(client):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 64, 3)).astype(np.float32)
    lengths = rng.integers(1, 8, size=64)
    want, _ = rnn.load(ARTICLE)(x, lengths=lengths)
    lazy = rnn.dask.run(ARTICLE, da.from_array(x, chunks=(7, 8, 3)), lengths=lengths)
    got = lazy.compute()
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
    pids = client.run(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == 2
    loads = client.run(lambda: __import__("rnn.dask").dask.loads)
    # 8 tasks; each worker process loaded the model at most once.
    assert all(n <= 1 for n in loads.values()) and sum(loads.values()) >= 1, loads


def test_batch_first_bidirectional_with_h0_and_options(client):
    path = FIXTURES / "torch_l3_bidir_relu_batch_first_h0.safetensors"
    options = dict(nonlinearity="relu", batch_first=True)
    model = rnn.load(path, **options)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 5, model.input_size))
    h0 = rng.standard_normal((6, 12, model.hidden_size))
    want, _ = model(x, h0=h0)
    got = rnn.dask.run(path, da.from_array(x, chunks=(4, 5, -1)), h0=h0, **options).compute()
    assert got.dtype == np.float64
    assert np.array_equal(got, want)


def test_chunks_along_time_are_refused():
    x = da.zeros((8, 4, 3), chunks=(4, 4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="chunks along time"):
        rnn.dask.run(ARTICLE, x)


def test_a_whole_model_over_chunks_of_token_ids(client):
    import dask.array as da

    from conftest import read_safetensors

    files = FIXTURES / "files"
    for name in ["keras_whole_classifier", "keras_whole_tagger_ids", "keras_whole_tagger"]:
        tensors, _ = read_safetensors(files / f"{name}.safetensors")
        x = tensors.pop("input")
        ((_, want),) = tensors.items()
        lazy = rnn.dask.run(str(files / f"{name}.keras"), da.from_array(x, chunks=(2,) + x.shape[1:]))
        got = lazy.compute()
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
        # The same bits as one call in this process.
        whole, _ = rnn.load(files / f"{name}.keras")(x)
        assert np.array_equal(got, whole)


def test_a_whole_model_of_several_outputs_gives_a_tuple_in_its_order(client):
    import dask.array as da

    from conftest import read_safetensors

    files = FIXTURES / "files"
    tensors, _ = read_safetensors(files / "keras_whole_states.safetensors")
    x = tensors.pop("input")
    lazy = rnn.dask.run(
        str(files / "keras_whole_states.keras"), da.from_array(x, chunks=(2,) + x.shape[1:])
    )
    assert isinstance(lazy, tuple) and len(lazy) == 4
    for name, part in zip(["tags", "topic", "birnn", "birnn_1"], lazy):
        np.testing.assert_allclose(part.compute(), tensors[name], atol=1e-5, rtol=1e-4)


def test_an_onnx_graph_is_not_split_since_its_batch_axis_is_its_own():
    import dask.array as da

    from conftest import read_safetensors

    files = FIXTURES / "files"
    tensors, _ = read_safetensors(files / "onnx_whole_features.safetensors")
    x = tensors["input"]
    with pytest.raises(ValueError, match="ONNX graph"):
        rnn.dask.run(str(files / "onnx_whole_features.onnx"), da.from_array(x, chunks=2))
