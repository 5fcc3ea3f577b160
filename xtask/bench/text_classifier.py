"""The text classifier of issue 27 for `cargo xtask bench`: Keras 3's
Embedding(10000, 128, mask_zero=True) -> SimpleRNN(128) -> Dense(1, sigmoid) on a batch of 64
sequences of 100 token ids, padded at the end (each sequence 50 to 100 ids long).

`make DIR` writes DIR/text_classifier.keras (seeded), DIR/ids.npy (int64 [64, 100]) and
DIR/text_classifier.onnx: the same model as an ONNX graph of the ops tf2onnx and PyTorch's
exporters write for it (Gather on the table, the mask's lengths as the RNN's sequence_lens,
RNN, MatMul, Add, Sigmoid), with the Keras model's weights.

`time DIR --threads N --runs N [--warmup N] [--rnn-output OUT.npy]` times Keras's predict,
the Keras model called in a tf.function, and ONNX Runtime on the ONNX graph, interleaved in
one process, printing one JSON object per line; each output is checked against Keras's
predict (and rnn's, where given).
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

BATCH, STEPS, VOCABULARY, EMBEDDING, HIDDEN = 64, 100, 10_000, 128, 128


def make(directory):
    import keras
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    os.makedirs(directory, exist_ok=True)
    keras.utils.set_random_seed(29)
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(VOCABULARY, EMBEDDING, mask_zero=True),
        keras.layers.SimpleRNN(HIDDEN),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    rng = np.random.default_rng(29)
    ids = rng.integers(1, VOCABULARY, size=(BATCH, STEPS)).astype(np.int64)
    for row, length in zip(ids, rng.integers(50, STEPS + 1, size=BATCH)):
        row[length:] = 0
    model.save(os.path.join(directory, "text_classifier.keras"))
    np.save(os.path.join(directory, "ids.npy"), ids)

    table = model.layers[0].get_weights()[0]
    kernel, recurrent, bias = model.layers[1].get_weights()
    dense, dense_bias = model.layers[2].get_weights()
    init = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(kernel.T[None], "W"),
        numpy_helper.from_array(recurrent.T[None], "R"),
        numpy_helper.from_array(np.concatenate([bias, np.zeros_like(bias)])[None], "B"),
        numpy_helper.from_array(dense, "dense"),
        numpy_helper.from_array(dense_bias, "dense_bias"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["embedded"]),
        helper.make_node("Transpose", ["embedded"], ["x"], perm=[1, 0, 2]),
        helper.make_node("Equal", ["ids", "zero"], ["padding"]),
        helper.make_node("Not", ["padding"], ["valid"]),
        helper.make_node("Cast", ["valid"], ["valid_i32"], to=TensorProto.INT32),
        helper.make_node("ReduceSum", ["valid_i32", "axis1"], ["lengths"], keepdims=0),
        helper.make_node("RNN", ["x", "W", "R", "B", "lengths"], ["Y", "Y_h"],
                         hidden_size=HIDDEN),
        helper.make_node("Squeeze", ["Y_h", "axis0"], ["last"]),
        helper.make_node("MatMul", ["last", "dense"], ["logit_nobias"]),
        helper.make_node("Add", ["logit_nobias", "dense_bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes, "text_classifier",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "steps"])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        init)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, os.path.join(directory, "text_classifier.onnx"))


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return out, times


def report(peer, times, diff):
    print(json.dumps({"peer": peer, "median_ms": statistics.median(times), "min_ms": min(times),
                      "max_ms": max(times), "max_abs_diff": diff}), flush=True)


def time_peers(args):
    import onnxruntime as ort
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    ids = np.load(os.path.join(args.directory, "ids.npy"))
    model = keras.models.load_model(os.path.join(args.directory, "text_classifier.keras"))
    want = model.predict(ids, batch_size=BATCH, verbose=0)
    if args.rnn_output:
        print(json.dumps({"peer": "rnn", "max_abs_diff":
                          float(np.abs(np.load(args.rnn_output) - want).max())}), flush=True)

    out, times = timed(lambda: model.predict(ids, batch_size=BATCH, verbose=0),
                       args.runs, args.warmup)
    report("keras", times, float(np.abs(out - want).max()))

    call = tf.function(lambda x: model(x, training=False))
    ids_tensor = tf.constant(ids.astype(np.int32))
    out, times = timed(lambda: call(ids_tensor).numpy(), args.runs, args.warmup)
    report("keras_call", times, float(np.abs(out - want).max()))

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(args.directory, "text_classifier.onnx"),
                                   options, providers=["CPUExecutionProvider"])
    out, times = timed(lambda: session.run(["probability"], {"ids": ids})[0],
                       args.runs, args.warmup)
    report("onnxruntime", times, float(np.abs(out - want).max()))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["make", "time"])
    p.add_argument("directory")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rnn-output")
    args = p.parse_args()
    if args.command == "make":
        make(args.directory)
    else:
        time_peers(args)


if __name__ == "__main__":
    sys.exit(main())
