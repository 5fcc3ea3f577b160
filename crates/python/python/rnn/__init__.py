"""Run exported Elman RNNs on numpy arrays: every file the ``rnn`` CLI reads (safetensors,
torch.save, ONNX, Keras, TensorFlow checkpoints), CPU or CUDA, without torch.

>>> import numpy as np, rnn
>>> model = rnn.load("model.safetensors", nonlinearity="tanh")
>>> output, h_n = model(np.zeros((2, 4, model.input_size), np.float32))
"""

from ._rnn import Model, RnnError, Stream, convert, devices, load

__all__ = ["Model", "RnnError", "Stream", "convert", "devices", "load"]
