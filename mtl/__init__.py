"""mtl: multi-source, multi-task face-attribute learning on PyTorch Lightning."""

__version__ = "0.1.0"
