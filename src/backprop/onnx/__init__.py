"""``backprop.onnx``: export a model to ONNX (``pip install 'backprop[onnx]'``).

``export(model, example_input, path)`` runs the model once on ``example_input`` under the
engine's op recorder (``autograd.graph.record_ops``) and translates what ran: layers with an
ONNX operator of their own (Linear, Conv1d/2d, BatchNorm in eval, pooling, Flatten, Dropout in
eval, LSTM, GRU) become that operator; every other op a custom ``forward`` applies (ReLU, tanh,
additions, reshapes, ...) is translated op by op. The file has input ``input``, output
``output``, opset 17 and a dynamic batch dimension.
"""

from backprop.onnx.export import OPSET, UnsupportedOpError, export

__all__ = ["OPSET", "UnsupportedOpError", "export"]
