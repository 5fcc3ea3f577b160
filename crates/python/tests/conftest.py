"""Shared helpers: the repository's fixtures, read with numpy alone (no safetensors package)."""

import json
import struct
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
ARTICLE = REPO / "models" / "seed" / "article.safetensors"

_DTYPES = {
    "F32": np.float32,
    "F64": np.float64,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "U32": np.uint32,
    "U8": np.uint8,
    "I8": np.int8,
}


def read_safetensors(path):
    """(tensors by name as numpy arrays, metadata) of a safetensors file."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    metadata = header.pop("__metadata__", {}) or {}
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in _DTYPES:
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(info["shape"])
    return tensors, metadata


def check_options(metadata):
    """A fixture's `check_args` (the CLI flags it needs) as rnn.load keywords."""
    words = metadata.get("check_args", "").split()
    options = {}
    i = 0
    while i < len(words):
        name = words[i][2:].replace("-", "_")
        if i + 1 < len(words) and not words[i + 1].startswith("--"):
            options[name] = words[i + 1]
            i += 2
        else:
            options[name] = True
            i += 1
    return options
