"""Times the peers of `rnn bench` on one case written by `rnn bench --save-case`: torch.nn.RNN
under inference_mode, ONNX Runtime on an ONNX RNN node, Keras SimpleRNN (in a tf.function), all
with the case's weights and input, and a single torch GEMM of the same total work. Checks each
output against rnn's. Prints one JSON object per line. With --dtype float64 (a case saved by
`rnn bench --dtype f64`), torch runs in float64; ONNX Runtime's RNN kernel and the Keras peer
are float32 only here and are refused.

Usage: peers.py CASE.safetensors --threads N --runs N [--warmup N] [--dtype float32|float64]
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    out = None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return out, times


def report(peer, times, diff=None, **extra):
    line = {"peer": peer, "median_ms": statistics.median(times), "min_ms": min(times),
            "max_ms": max(times), "max_abs_diff": diff}
    line.update(extra)
    print(json.dumps(line), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--peers", default="torch,onnxruntime,keras,gemm")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = p.parse_args()
    peers = args.peers.split(",")
    if args.dtype == "float64" and ({"onnxruntime", "keras"} & set(peers)):
        p.error("--dtype float64 runs torch and gemm only")

    import numpy as np
    from safetensors.numpy import load_file

    case = load_file(args.case)
    x = case["input"]  # [T, B, I], time-major
    want = case["output"]  # [T, B, H]
    w_ih, w_hh = case["weight_ih_l0"], case["weight_hh_l0"]
    b_ih, b_hh = case["bias_ih_l0"], case["bias_hh_l0"]
    seq, batch, inputs = x.shape
    hidden = w_hh.shape[0]

    if "torch" in peers or "gemm" in peers:
        import torch
        torch.set_num_threads(args.threads)
        dtype = getattr(torch, args.dtype)
    if "torch" in peers:
        rnn = torch.nn.RNN(inputs, hidden, dtype=dtype)
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(torch.from_numpy(w_ih))
            rnn.weight_hh_l0.copy_(torch.from_numpy(w_hh))
            rnn.bias_ih_l0.copy_(torch.from_numpy(b_ih))
            rnn.bias_hh_l0.copy_(torch.from_numpy(b_hh))
        xt = torch.from_numpy(x).to(dtype)

        def torch_forward():
            with torch.inference_mode():
                return rnn(xt)[0]

        out, times = timed(torch_forward, args.runs, args.warmup)
        report("torch", times, float(np.abs(out.numpy() - want).max()))

    if "gemm" in peers:
        # One GEMM with the same FLOPs as the forward: [B·T, I + H] x [I + H, H].
        a = torch.rand(seq * batch, inputs + hidden, dtype=dtype)
        b = torch.rand(inputs + hidden, hidden, dtype=dtype)
        _, times = timed(lambda: torch.mm(a, b), args.runs, args.warmup)
        report("gemm", times)

    if "onnxruntime" in peers:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden)
        graph = helper.make_graph(
            [node], "rnn",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, batch, inputs])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
             helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(w_ih[None], "W"), numpy_helper.from_array(w_hh[None], "R"),
             numpy_helper.from_array(np.concatenate([b_ih, b_hh])[None], "B")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        out, times = timed(lambda: session.run(["Y"], {"X": x})[0], args.runs, args.warmup)
        report("onnxruntime", times, float(np.abs(out[:, 0] - want).max()))

    if "keras" in peers:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras
        layer = keras.layers.SimpleRNN(hidden, return_sequences=True)
        layer.build((batch, seq, inputs))
        layer.set_weights([w_ih.T, w_hh.T, b_ih + b_hh])
        xb = tf.constant(np.ascontiguousarray(x.transpose(1, 0, 2)))
        forward = tf.function(lambda v: layer(v))
        out, times = timed(lambda: forward(xb).numpy(), args.runs, args.warmup)
        report("keras", times, float(np.abs(out.transpose(1, 0, 2) - want).max()))


if __name__ == "__main__":
    sys.exit(main())
