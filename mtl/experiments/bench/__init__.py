"""Speed measurements behind ``mtl bench``: ``train`` (the framework against a bare PyTorch
loop, one process, as a ratio) and ``infer`` (eager, compiled, ONNX Runtime, end to end)."""
