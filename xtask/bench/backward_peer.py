"""Times torch.nn.RNN's forward and backward on a case written by rnn-core's `bench_backward`
example (the same weights, input and grad_output), and checks its gradients against the ones
the example computed. Prints one JSON line.

Usage: backward_peer.py CASE.safetensors --threads N --runs N [--warmup N]
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch
from safetensors.numpy import load_file


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    case = load_file(args.case)
    hidden, input_size = case["weight_ih_l0"].shape
    rnn = torch.nn.RNN(input_size, hidden)
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    rnn.load_state_dict({n: torch.from_numpy(case[n]) for n in names})
    x = torch.from_numpy(case["input"]).requires_grad_(True)
    grad_output = torch.from_numpy(case["grad_output"])

    def step():
        rnn.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = rnn(x)
        (out * grad_output).sum().backward()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    ours = {n: case["grad_" + n] for n in names + ["input"]}
    theirs = {n: p.grad.numpy() for n, p in rnn.named_parameters()}
    theirs["input"] = x.grad.numpy()
    diff = max(float(np.abs(ours[n] - theirs[n]).max()) for n in ours)
    scale = max(float(np.abs(theirs[n]).max()) for n in theirs)
    print(json.dumps({"peer": "torch", "median_ms": statistics.median(times),
                      "min_ms": min(times), "max_abs_diff": diff, "max_abs_gradient": scale,
                      "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
