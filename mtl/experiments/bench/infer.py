"""``mtl bench infer``: how fast a trained model answers.

* batched throughput (images/s) and single-image latency (ms, median) of the network alone on
  face crops already in memory, in PyTorch eager, ``torch.compile`` and ONNX Runtime;
* end to end: photos decoded, faces found by MTCNN, cropped as in training and classified
  (``mtl analyze``'s pipeline without writing files), in frames per second.

The papers' figures stand beside them: Sang & Cuong report 0.02 s per image for Multi-task
BKNet, Rohani et al. 12-20 frames/s on video.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mtl.data.preprocessing import Preprocessing
from mtl.errors import UserError
from mtl.experiments.bench.common import autocast, synchronize, timed
from mtl.experiments.bench.result import BenchResult, Column, Table
from mtl.inference.model import AttributeNet, Predictor
from mtl.tasks import DEFAULT_TASK_NAMES, build_tasks


@dataclass
class InferResult:
    """One way of running the network."""

    mode: str
    batch: int
    images_per_s: float
    latency_ms: float  # one image, median


def fresh_net() -> tuple[AttributeNet, Preprocessing]:
    """Multi-task BKNet with its default initialisation (speed does not depend on training)."""
    from mtl.training.module import MultiTaskModule

    torch.manual_seed(0)
    module = MultiTaskModule(list(DEFAULT_TASK_NAMES))
    return AttributeNet([module.net], build_tasks(DEFAULT_TASK_NAMES)).eval(), Preprocessing()


def latency_ms(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median milliseconds of one call (each call synchronised)."""
    times = [timed(run, device, 1) for _ in range(repeats)]
    return 1000 * statistics.median(times)


def torch_modes(
    net: AttributeNet,
    shape: tuple[int, int, int],
    device: torch.device,
    batch: int,
    repeats: int,
    compile: bool,
    precision: str,
    channels_last: bool,
) -> list[InferResult]:
    """Eager (and compiled) throughput and latency of the network on ``device``."""
    net = net.to(device).eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        net.to(memory_format=fmt)
    big = torch.rand(batch, *shape, device=device).contiguous(memory_format=fmt)
    one = torch.rand(1, *shape, device=device).contiguous(memory_format=fmt)
    suffix = "" if precision == "32-true" else f" {precision}"
    modes = [("eager" + suffix, net)]
    if compile:
        modes.append(("compiled" + suffix, torch.compile(net)))
    results = []
    for name, forward in modes:
        with torch.inference_mode(), autocast(device, precision):
            for x in (big, one, big):  # warm-up; compiles both shapes
                forward(x)
            seconds = timed(lambda f=forward: f(big), device, repeats)
            lat = latency_ms(lambda f=forward: f(one), device, max(repeats, 20))
        results.append(InferResult(name, batch, repeats * batch / seconds, lat))
    return results


def onnx_mode(
    net: AttributeNet, preprocessing: Preprocessing, batch: int, repeats: int
) -> InferResult | str:
    """ONNX Runtime (CPU) throughput and latency, or why it could not run."""
    from mtl.inference.export import export_onnx
    from mtl.inference.model import OnnxPredictor

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(net.cpu(), preprocessing, Path(tmp) / "model.onnx")
            predictor = OnnxPredictor(path)
    except Exception as err:  # no onnx / onnxruntime installed, or an export failure
        return f"{type(err).__name__}: {err}"
    shape = preprocessing.input_shape
    big = np.random.rand(batch, *shape).astype(np.float32)
    one = np.random.rand(1, *shape).astype(np.float32)
    predictor(big), predictor(one)
    seconds = timed(lambda: predictor(big), "cpu", repeats)
    lat = latency_ms(lambda: predictor(one), torch.device("cpu"), max(repeats, 20))
    return InferResult("onnxruntime (cpu)", batch, repeats * batch / seconds, lat)


def end_to_end(predictor: Predictor, photos: list[Path], device: str, batch_size: int = 16) -> dict:
    """Frames/s of photo -> decode -> MTCNN -> crop -> model, over ``photos`` (one warm-up
    batch first)."""
    from mtl.data.faces import make_detector
    from mtl.inference.analyze import Analyzer
    from mtl.inference.media import MediaFile

    analyzer = Analyzer(predictor, make_detector("mtcnn", device))
    files = [MediaFile(p, p.name) for p in photos]
    list(analyzer.run(_frames(files[:batch_size]), batch_size))  # warm-up
    start = time.perf_counter()
    n = faces = 0
    for _, found in analyzer.run(_frames(files), batch_size):
        n += 1
        faces += len(found)
    synchronize(device)
    seconds = time.perf_counter() - start
    if n == 0:
        raise UserError(f"end to end: none of the {len(photos)} photos could be read")
    return {"frames": n, "faces": faces, "seconds": round(seconds, 2), "frames_per_s": n / seconds}


def _frames(files: list) -> Iterator:
    from mtl.inference.media import Frame, read_frames

    for file in files:
        yield from (f for f in read_frames(file) if isinstance(f, Frame))


def bench_infer(
    checkpoint: Path | None = None,
    device: str = "auto",
    batch_size: int = 256,
    repeats: int = 20,
    compile: bool = True,
    onnx: bool = True,
    precision: str = "32-true",
    channels_last: bool = False,
    photos: Path | None = None,
    max_photos: int = 200,
) -> BenchResult:
    """Every mode of running the network (and end to end, with ``photos``), beside the papers'
    figures."""
    from mtl.experiments.bench.common import PAPERS, measured_on
    from mtl.inference.media import IMAGE_SUFFIXES
    from mtl.inference.model import TorchPredictor, load_checkpoint_net, resolve_device

    where_to = torch.device(resolve_device(device))
    net, preprocessing = load_checkpoint_net(checkpoint) if checkpoint else fresh_net()
    results = torch_modes(
        net, preprocessing.input_shape, where_to, batch_size, repeats, compile, precision,
        channels_last,
    )  # fmt: skip
    notes = []
    if onnx:
        measured = onnx_mode(net, preprocessing, batch_size, repeats)
        if isinstance(measured, str):
            notes.append(f"[yellow]ONNX Runtime not measured: {measured}")
        else:
            results.append(measured)
    e2e = None
    if photos is not None:
        files = sorted(p for p in photos.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            predictor = TorchPredictor(net.to(where_to), preprocessing, str(where_to))
            e2e = end_to_end(predictor, files[:max_photos], str(where_to))
        else:
            notes.append(f"[yellow]end to end not measured: no photos in {photos}")
    where = measured_on(where_to)
    rows = [vars(r) for r in results]
    if e2e:
        fps = e2e["frames_per_s"]
        rows.append({"mode": "end to end: photo → MTCNN → model", "batch": "16 frames",
                     "throughput": f"{fps:.1f} fps", "latency": "-"})  # fmt: skip
    modes = Table(
        f"mtl bench infer: {checkpoint or 'Multi-task BKNet'}, {where}",
        [
            Column("mode", lambda r: r["mode"], left=True),
            Column("batch", lambda r: str(r["batch"])),
            Column("images/s", lambda r: r.get("throughput") or f"{r['images_per_s']:,.0f}"),
            Column("1-image latency", lambda r: r.get("latency") or f"{r['latency_ms']:.2f} ms"),
        ],
        rows,
    )
    eager = results[0]
    papers_rows = [
        {
            "paper": PAPERS["sang_cuong"],
            "here": f"{eager.latency_ms:.2f} ms per face, {eager.images_per_s:,.0f} faces/s "
            f"batched ({eager.mode})",
        }
    ]
    if e2e:
        here = f"{e2e['frames_per_s']:.1f} frames/s, photo to attributes"
        papers_rows.append({"paper": PAPERS["rohani"], "here": here})
    papers = Table(
        "beside the papers",
        [Column("paper's figure", lambda r: r["paper"], left=True),
         Column("here", lambda r: r["here"], left=True)],
        papers_rows,
    )  # fmt: skip
    record = {
        "device": where,
        "model": str(checkpoint or "Multi-task BKNet (fresh)"),
        "results": [vars(r) for r in results],
        "end_to_end": e2e,
        "papers": PAPERS,
    }
    return BenchResult([modes, papers], record, notes)
