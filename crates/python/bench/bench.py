"""The Python module's numbers for docs/performance.md (not a test; run by hand, see below).

1. Per-call overhead of ``Model(x)`` on the article's shape (batch 4, seq 2, input 3, hidden 5)
   against torch's ``nn.RNN`` in the same process: the median over rounds of each round's mean
   call time, and their ratio.
2. Dask: the same workload on a LocalCluster of 1 and of 2 worker processes (one thread each,
   RAYON_NUM_THREADS=1 in each), and the single-process rate (rnn's own threads) against
   ``rnn run --batch-size`` on the same .npy file.

Usage: python bench.py overhead            (torch and the rnn wheel importable)
       python bench.py dask DIR RNN_BINARY   (dask, distributed and the wheel; DIR receives the
                                              workload's model, input and output files)
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import rnn

REPO = Path(__file__).resolve().parents[3]
ARTICLE = REPO / "models" / "seed" / "article.safetensors"


def per_call(fn, calls, rounds=7):
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        means.append((time.perf_counter() - start) / calls)
    return statistics.median(means)


def overhead():
    import torch

    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    model = rnn.load(ARTICLE)
    torch_rnn = torch.nn.RNN(3, 5)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        for _ in range(2000):
            model(x)
            torch_rnn(xt)
        ours = per_call(lambda: model(x), 20000)
        theirs = per_call(lambda: torch_rnn(xt), 20000)
    print(
        f"overhead: rnn Model(x) {ours * 1e6:.2f} us, torch nn.RNN {theirs * 1e6:.2f} us "
        f"(torch {torch.__version__}, {torch.get_num_threads()} threads), "
        f"ratio {ours / theirs:.3f}"
    )


def dask_rates(model_dir, binary):
    import dask.array as da
    import distributed

    import rnn.dask

    seq, batch, input_size, hidden, chunk = 100, 1800, 64, 1024, 225
    model_path = model_dir / "bench_model.safetensors"
    input_path = model_dir / "bench_input.npy"
    subprocess.run(
        [binary, "init", "--input-size", str(input_size), "--hidden-size", str(hidden),
         "-o", str(model_path)],
        check=True,
    )
    x = np.random.default_rng(1).standard_normal((seq, batch, input_size)).astype(np.float32)
    np.save(input_path, x)
    model = rnn.load(model_path)
    model(x[:, :64])
    print(f"workload: seq {seq}, batch {batch}, input {input_size}, hidden {hidden}, chunks of {chunk}")
    start = time.perf_counter()
    want, _ = model(x)
    one_process = time.perf_counter() - start
    print(f"single process, rnn's threads: {one_process:.2f} s, {batch / one_process:,.0f} sequences/s")

    out = model_dir / "bench_out.npy"
    start = time.perf_counter()
    subprocess.run(
        [binary, "run", str(model_path), "--input", str(input_path), "--batch-size", str(chunk),
         "-o", str(out)],
        check=True, stdout=subprocess.DEVNULL,
    )
    cli = time.perf_counter() - start
    print(f"rnn run --batch-size {chunk} (whole process, file in and out): {cli:.2f} s, "
          f"{batch / cli:,.0f} sequences/s")

    results = {}
    for workers in (1, 2):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            env={"RAYON_NUM_THREADS": "1"},
        )
        with distributed.Client(cluster):
            xd = da.from_array(x, chunks=(seq, chunk, input_size))
            rnn.dask.run(model_path, xd[:, : 2 * chunk]).compute()
            times = []
            for _ in range(3):
                start = time.perf_counter()
                got = rnn.dask.run(model_path, xd).compute()
                times.append(time.perf_counter() - start)
            assert np.array_equal(got, want)
        cluster.close()
        results[workers] = statistics.median(times)
        print(f"dask, {workers} worker process(es) x 1 thread: median {results[workers]:.2f} s "
              f"of {['%.2f' % t for t in times]}, {batch / results[workers]:,.0f} sequences/s")
    print(f"dask speed-up, 2 workers over 1: {results[1] / results[2]:.2f}x")


if __name__ == "__main__":
    with open("/proc/cpuinfo") as f:
        info = f.read().splitlines()
    for key in ("model name", "cpu family", "model\t"):
        print(next(line for line in info if line.startswith(key)))
    print(f"cores: {os.cpu_count()}")
    if sys.argv[1] == "overhead":
        overhead()
    else:
        dask_rates(Path(sys.argv[2]), sys.argv[3])
