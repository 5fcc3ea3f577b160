"""Draws docs/bench/cpu.png from the results `cargo xtask bench` wrote.

Usage: chart.py RESULTS.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results_path, out_path):
    with open(results_path) as f:
        results = json.load(f)
    names = ["rnn", "torch", "onnxruntime", "keras"]
    shapes = results["shapes"]
    labels = ["({batch}, {seq}, {input_size}, {hidden_size})".format(**s["shape"]) for s in shapes]
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.2
    for k, name in enumerate(names):
        values = [s["median_ms"][name] for s in shapes]
        ax.bar([x + (k - 1.5) * width for x in range(len(shapes))], values, width, label=name)
    ax.set_yscale("log")
    ax.set_xticks(range(len(shapes)))
    ax.set_xticklabels(labels)
    ax.set_xlabel("shape (batch, seq, input, hidden)")
    ax.set_ylabel("median ms per forward (log scale)")
    ax.set_title(f"One tanh layer, f32, {results['threads']} threads: lower is better")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
