"""One sequence fed step by step from Python: rnn's `Model.stream(1).step(x)` against torch's
`nn.RNNCell` called in a loop on the same weights, in alternating rounds in one process.

Each round feeds the same 1000 steps (hidden 64, input 64, float32) through both and times the
loop; the medians of the rounds are compared. Both loops hold their own state between steps,
as a program reading a live input would. The two final states are checked to agree within
1e-5, so a fast wrong answer cannot pass.

Run with a Python that has numpy, torch and the `rnn` wheel (the wheel built by
`maturin build --release -m crates/python/Cargo.toml` and put on PYTHONPATH, say), with
OPENBLAS_NUM_THREADS=1 so numpy's idle BLAS threads do not spin on the other core:

    OPENBLAS_NUM_THREADS=1 python xtask/bench/python_stream.py [--rounds 7] [--threads 2]
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch

import rnn

HIDDEN, INPUT, STEPS = 64, 64, 1000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cell = torch.nn.RNNCell(INPUT, HIDDEN)
    layer = torch.nn.RNN(INPUT, HIDDEN)
    with torch.no_grad():
        for ours, theirs in [("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"),
                             ("bias_ih", "bias_ih_l0"), ("bias_hh", "bias_hh_l0")]:
            getattr(layer, theirs).copy_(getattr(cell, ours))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rnn.pt")
        torch.save(layer.state_dict(), path)
        model = rnn.load(path)
    xs = np.random.default_rng(0).standard_normal((STEPS, 1, INPUT)).astype(np.float32)
    xt = torch.from_numpy(xs)

    def rnn_loop():
        stream = model.stream(1)
        start = time.perf_counter()
        for t in range(STEPS):
            y = stream.step(xs[t])
        return (time.perf_counter() - start) / STEPS * 1e6, np.asarray(y)

    def torch_loop():
        h = torch.zeros(1, HIDDEN)
        with torch.inference_mode():
            start = time.perf_counter()
            for t in range(STEPS):
                h = cell(xt[t], h)
        return (time.perf_counter() - start) / STEPS * 1e6, h.numpy()

    ours, theirs = [], []
    for _ in range(args.rounds):
        a, y_rnn = rnn_loop()
        b, y_torch = torch_loop()
        ours.append(a)
        theirs.append(b)
    diff = float(np.abs(y_rnn.reshape(-1) - y_torch.reshape(-1)).max())
    if diff > 1e-5:
        raise SystemExit(f"the two final states differ by {diff:.2e}")
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"rounds: {args.rounds}, steps: {STEPS}, hidden {HIDDEN}, input {INPUT}, float32")
    print(f"rnn Model.stream(1).step: {a:.2f} µs per step")
    print(f"torch {torch.__version__} nn.RNNCell loop: {b:.2f} µs per step")
    print(f"rnn / torch: {a / b:.3f} (final states within {diff:.1e})")


if __name__ == "__main__":
    main()
