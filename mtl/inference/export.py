"""Export a trained model for deployment: ONNX (dynamic batch) and TorchScript.

The exported graph is :class:`~mtl.inference.model.AttributeNet`: faces in (B x C x H x W
float32 in [0, 1]), one output per task out (class probabilities B x C_t, or regression values
B), named after the tasks. The preprocessing (face crop margin, size, grey or colour, pixel
scale) and the tasks with their class names go into the file's metadata (ONNX
``metadata_props``; TorchScript extra file ``mtl.json``), so a deployment reads them instead of
re-typing them, and ``mtl analyze model.onnx`` runs it with ONNX Runtime.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from mtl.data.preprocessing import PREPROCESSING_KEY, TASKS_KEY, Preprocessing
from mtl.inference.model import AttributeNet, tasks_to_json

OPSET = 18
OUTPUTS = "per task, in order: class probabilities (B x C) or a regression value (B)"


def metadata(net: AttributeNet, preprocessing: Preprocessing) -> dict[str, str]:
    """The strings every exported file carries (readable without ``mtl``)."""
    classes = {t.name: t.kind.output_names(t) for t in net.tasks}
    return {
        PREPROCESSING_KEY: json.dumps(preprocessing.to_dict()),
        TASKS_KEY: tasks_to_json(net.tasks),
        "mtl_classes": json.dumps(classes),
        "mtl_outputs": json.dumps(OUTPUTS),
    }


def example_input(preprocessing: Preprocessing, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, *preprocessing.input_shape, generator=torch.Generator().manual_seed(0))


def export_onnx(net: AttributeNet, preprocessing: Preprocessing, path: Path) -> Path:
    """``path`` (.onnx) with a dynamic batch dimension and the metadata; needs ``onnx``."""
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "ONNX export needs onnx and onnxscript: pip install 'mtl-faces[onnx]'"
        ) from None
    names = [t.name for t in net.tasks]
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net.eval(),
            (example_input(preprocessing),),
            input_names=["image"],
            output_names=names,
            dynamic_shapes={"image": {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    program.optimize()
    model = program.model_proto
    onnx.helper.set_model_props(model, metadata(net, preprocessing))
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))
    return path


def export_torchscript(net: AttributeNet, preprocessing: Preprocessing, path: Path) -> Path:
    """``path`` (.pt): the traced network with ``mtl.json`` (the metadata) inside."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        traced = torch.jit.trace(net.eval(), example_input(preprocessing), check_trace=True)
    meta = {key: json.loads(value) for key, value in metadata(net, preprocessing).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(traced, str(path), _extra_files={"mtl.json": json.dumps(meta)})
    return path
