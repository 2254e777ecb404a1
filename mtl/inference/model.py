"""A trained model behind one small interface: face crops in, every task's probabilities out.

:class:`Predictor` hides where the model came from (a checkpoint with its optional checkpoint
ensemble, an exported ONNX file run by ONNX Runtime, a TorchScript file) and carries the
:class:`Preprocessing` it was trained with, read from the file, never re-typed: the face crop
(margin, size, grey or colour) and the scale of pixel values.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtl.data.preprocessing import PREPROCESSING_KEY, TASKS_KEY, Preprocessing
from mtl.errors import UserError
from mtl.models.ensemble import EnsembleNet, average_outputs, member_files
from mtl.tasks import DEFAULT_AGE_EDGES, Task, build_tasks


class AttributeNet(nn.Module):
    """Image batch (B x C x H x W in [0, 1]) -> a tuple, in task order, of class probabilities
    (B x C_t) and regression values (B), averaged over one or more member networks (the
    checkpoint ensemble's, :class:`~mtl.models.ensemble.EnsembleNet`). Plain tensors in and out, so
    it exports to ONNX and TorchScript."""

    def __init__(self, nets: Sequence[nn.Module], tasks: Sequence[Task]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.tasks = list(tasks)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        averaged = average_outputs([net(image) for net in self.nets], self.tasks)
        return tuple(averaged[t.name] for t in self.tasks)


class Predictor:
    """Face crops -> every task's outputs. Subclasses run a network of some format."""

    tasks: tuple[Task, ...]
    preprocessing: Preprocessing
    name: str

    def __call__(self, faces: np.ndarray) -> list[np.ndarray]:
        """``faces`` N x C x H x W float32 in [0, 1] -> per task: N x C_t probabilities (a
        classification) or N values (a regression)."""
        raise NotImplementedError


class TensorPredictor(Predictor):
    """Runs a module that maps a face tensor to per-task tensors, on :attr:`device`."""

    forward: nn.Module
    device: torch.device

    @torch.inference_mode()
    def __call__(self, faces: np.ndarray) -> list[np.ndarray]:
        image = torch.from_numpy(np.ascontiguousarray(faces)).to(self.device)
        return [out.float().cpu().numpy() for out in self.forward(image)]


class TorchPredictor(TensorPredictor):
    """A PyTorch :class:`AttributeNet` (eager or compiled) on a device."""

    def __init__(
        self,
        net: AttributeNet,
        preprocessing: Preprocessing,
        device: str = "cpu",
        compile: bool = False,
        name: str = "torch",
    ) -> None:
        self.net = net.eval().to(device)
        self.tasks = tuple(net.tasks)
        self.preprocessing, self.device, self.name = preprocessing, torch.device(device), name
        self.forward = torch.compile(self.net) if compile else self.net


class OnnxPredictor(Predictor):
    """An exported ONNX model run by ONNX Runtime (``pip install 'mtl-faces[onnx]'``)."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(
                f"{path}: running an ONNX model needs ONNX Runtime: pip install 'mtl-faces[onnx]'"
            ) from None
        providers: list = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            index = torch.device(device).index or 0
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
        self.session = ort.InferenceSession(str(path), providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        if PREPROCESSING_KEY not in meta or TASKS_KEY not in meta:
            raise UserError(f"{path}: not exported by `mtl export` (no {TASKS_KEY} metadata)")
        self.preprocessing = Preprocessing.from_dict(json.loads(meta[PREPROCESSING_KEY]))
        self.tasks = tasks_from_json(meta[TASKS_KEY])
        self.input = self.session.get_inputs()[0].name
        self.name = "onnxruntime"

    def __call__(self, faces: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input: np.ascontiguousarray(faces, np.float32)})


class TorchScriptPredictor(TensorPredictor):
    """An exported TorchScript model (``torch.jit.load``)."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        extra = {"mtl.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            self.forward = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        if not extra["mtl.json"]:
            raise UserError(f"{path}: not exported by `mtl export` (no mtl.json inside)")
        meta = json.loads(extra["mtl.json"])
        self.preprocessing = Preprocessing.from_dict(meta[PREPROCESSING_KEY])
        self.tasks = tasks_from_json(json.dumps(meta[TASKS_KEY]))
        self.device, self.name = torch.device(device), "torchscript"


def tasks_to_json(tasks: Sequence[Task]) -> str:
    ages = next((t.age_edges for t in tasks if t.age_edges), DEFAULT_AGE_EDGES)
    return json.dumps({"names": [t.name for t in tasks], "age_edges": list(ages)})


def tasks_from_json(text: str) -> tuple[Task, ...]:
    data = json.loads(text)
    return build_tasks(data["names"], data["age_edges"])


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_checkpoint_net(path: Path, ensemble: int = 0) -> tuple[AttributeNet, Preprocessing]:
    """The checkpoint's network (or, with ``ensemble`` N > 0, its last N epochs' members, found
    in ``ensemble/`` beside it) as an :class:`AttributeNet`, with its preprocessing."""
    from mtl.training.module import MultiTaskModule

    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    module = MultiTaskModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    nets: list[nn.Module] = [module.net]
    if ensemble:
        files = member_files(path.parent / "ensemble", ensemble)
        if not files:
            raise UserError(
                f"--ensemble {ensemble}: no members in {path.parent / 'ensemble'} (train with "
                "--ensemble N to keep them)"
            )
        nets = list(EnsembleNet(module.net, files, module.tasks).members)
    bb = module.net.backbone
    try:
        preprocessing = Preprocessing.from_checkpoint(
            checkpoint, (bb.in_chans, bb.input_size, bb.input_size)
        )
    except ValueError as err:
        raise UserError(f"{path}: {err}") from None
    return AttributeNet(nets, module.tasks).eval(), preprocessing


SHIPPED_MODEL = Path(__file__).parent / "pretrained" / "multitask_bknet"
"""The pretrained Multi-task BKNet installed with the package (its card: README.md there)."""
MODEL_SUFFIXES = (".ckpt", ".onnx", ".pt", ".ts", ".torchscript")


def is_model_folder(path: Path) -> bool:
    """A Hub-layout folder (``save_pretrained``, ``mtl publish``)."""
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def is_model(path: str | Path) -> bool:
    """A file or folder :func:`load_predictor` reads by its form (a Hub id is not told apart
    from a relative path, so it is named with ``--model``)."""
    path = Path(path)
    return (path.is_file() and path.suffix in MODEL_SUFFIXES) or is_model_folder(path)


def load_pretrained_net(name: str | Path) -> tuple[AttributeNet, Preprocessing]:
    """A pretrained model folder or Hub id (``MultiTaskModule.from_pretrained``) as an
    :class:`AttributeNet`, with its preprocessing."""
    from mtl.training.module import MultiTaskModule

    module = MultiTaskModule.from_pretrained(str(name))
    preprocessing = module.preprocessing or Preprocessing.from_checkpoint({}, module.input_shape)
    return AttributeNet([module.net], module.tasks).eval(), preprocessing


def load_predictor(
    path: str | Path | None = None,
    device: str = "auto",
    ensemble: int = 0,
    compile: bool = False,
) -> Predictor:
    """A predictor for a checkpoint (``.ckpt``), an ONNX file (``.onnx``) or a TorchScript file
    (``.pt``/``.ts``), by its suffix; a pretrained model folder or Hugging Face Hub id; None:
    the shipped pretrained model."""
    path, device = Path(path or SHIPPED_MODEL), resolve_device(device)
    if path.suffix != ".ckpt" and (ensemble or compile):
        raise UserError(f"{path}: --ensemble and --compile apply to checkpoints (.ckpt) only")
    if path.is_dir() or (path.suffix not in MODEL_SUFFIXES and not path.exists()):
        net, preprocessing = load_pretrained_net(path)
        name = "shipped Multi-task BKNet" if path == SHIPPED_MODEL else "pretrained"
        return TorchPredictor(net, preprocessing, device, compile, name)
    if path.suffix == ".onnx":
        return OnnxPredictor(path, device)
    if path.suffix in (".pt", ".ts", ".torchscript"):
        return TorchScriptPredictor(path, device)
    net, preprocessing = load_checkpoint_net(path, ensemble)
    name = f"ensemble of {len(net.nets)}" if ensemble else "torch"
    return TorchPredictor(net, preprocessing, device, compile, name)
