"""``mtl analyze`` and ``mtl export``: photos, folders and videos -> one row per face, with the
preprocessing the checkpoint was trained with; ONNX and TorchScript match PyTorch."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.data import astronaut

from mtl.cli import main
from mtl.data.faces import FaceSettings
from mtl.data.preprocessing import PREPROCESSING_KEY, Preprocessing
from mtl.inference.analyze import Analyzer
from mtl.inference.media import Frame, MediaFile, find_media, read_frames
from mtl.inference.model import (
    OnnxPredictor,
    Predictor,
    TorchPredictor,
    TorchScriptPredictor,
    load_checkpoint_net,
    load_predictor,
)
from tests.conftest import tiny_fit_args

TASKS = ["smile", "emotion", "gender", "age"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny multi-task model trained for two epochs, keeping both as ensemble members."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        main(tiny_fit_args(train=32, val=16, test=16) + ["--trainer.max_epochs=2", "--ensemble=2"])
    return root / "runs/mtl/version_0/checkpoints/last.ckpt"


def head() -> np.ndarray:
    """The astronaut's head and shoulders (a real photo, scikit-image's test data)."""
    return astronaut()[0:300, 100:350]  # 300 x 250 x 3


def two_faces() -> np.ndarray:
    """A drawn scene: a grey canvas with the head pasted twice (once mirrored)."""
    canvas = np.full((420, 800, 3), 180, np.uint8)
    canvas[60:360, 40:290] = head()
    canvas[60:360, 500:750] = head()[:, ::-1]
    return canvas


def write_video(path: Path, frames: int = 5, fps: float = 10.0) -> None:
    """One face moving right by 12 pixels per frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (480, 360))
    for i in range(frames):
        frame = np.full((360, 480, 3), 120, np.uint8)
        frame[30:330, 20 + 12 * i : 270 + 12 * i] = head()
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_vfr_video(path: Path, times: list[float]) -> list[float]:
    """A variable-frame-rate MP4 whose frames are shown at ``times`` (seconds), as a phone
    records one; returns the times the container holds, read back with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 40 * i, np.uint8), "rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def corrupt_frame(path: Path, index: int) -> None:
    """Zero the JPEG data of an MJPG AVI's ``index``-th frame chunk (``00dc``, its size, then
    the JPEG), keeping the chunk headers so the frames after it still decode."""
    data = bytearray(path.read_bytes())
    soi = [i for i in range(8, len(data) - 1) if data[i : i + 2] == b"\xff\xd8"]  # JPEG SOI
    frames = [i for i in soi if data[i - 8 : i - 4] == b"00dc"]  # chunk payload starts
    begin = frames[index]
    size = int.from_bytes(data[begin - 4 : begin], "little")
    data[begin : begin + size] = bytes(size)
    path.write_bytes(bytes(data))


def read_rows(out: Path) -> list[dict]:
    with (out / "faces.csv").open() as f:
        return list(csv.DictReader(f))


def read_jsonl(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]


def test_checkpoint_records_the_training_preprocessing(checkpoint):
    saved = torch.load(checkpoint, weights_only=True)
    face = saved[PREPROCESSING_KEY]["face"]
    assert (face["size"], face["grayscale"], face["detector"]) == (48, True, "none")


@pytest.mark.numeric  # a trained model's labels against its rounded probabilities
def test_photos_folder_and_video_give_one_row_per_face(checkpoint, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    cv2.imwrite(str(media / "astronaut.png"), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(media / "two.jpg"), cv2.cvtColor(two_faces(), cv2.COLOR_RGB2BGR))
    write_video(media / "clip.avi")
    write_video(media / "dropout.avi")
    corrupt_frame(media / "dropout.avi", 2)
    (media / "broken.jpg").write_bytes(b"not a JPEG at all")
    (media / "broken.mp4").write_bytes(b"\x00" * 64)
    out = tmp_path / "out"
    main(["analyze", str(checkpoint), str(media), str(tmp_path / "gone.png"), "--out", str(out)])

    rows = read_rows(out)
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(Path(row["file"]).name, []).append(row)
    assert len(by_file["astronaut.png"]) == 1
    assert sorted(r["face"] for r in by_file["two.jpg"]) == ["0", "1"]
    assert sorted(float(r["x1"]) < 400 for r in by_file["two.jpg"]) == [False, True]
    clip = by_file["clip.avi"]
    assert [int(r["frame"]) for r in clip] == [0, 1, 2, 3, 4]  # one face per frame
    assert [float(r["time"]) for r in clip] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    x1 = [float(r["x1"]) for r in clip]
    assert all(b > a for a, b in zip(x1, x1[1:], strict=False))  # the face moves right
    assert [int(r["frame"]) for r in by_file["dropout.avi"]] == [0, 1, 3, 4]  # 2 is corrupt
    for row in rows:
        assert float(row["score"]) > 0.9 and float(row["x2"]) > float(row["x1"])
        for task in TASKS:
            assert row[task] and 0.0 < float(row[f"{task}_prob"]) <= 1.0

    lines = read_jsonl(out)
    assert len(lines) == len(rows) == 1 + 2 + 5 + 4
    for line in lines:
        for task in TASKS:
            probs = line["probs"][task]
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
            # the label has the highest probability; rounded to 5 decimals, a near-tie (this
            # barely trained model's gender is about 0.5 / 0.5) may be an exact tie
            assert probs[line[task]] == max(probs.values()) == line[f"{task}_prob"]

    with (out / "problems.csv").open() as f:
        problems = {(Path(r["file"]).name, r["frame"]) for r in csv.DictReader(f)}
    assert problems == {
        ("broken.jpg", ""),
        ("broken.mp4", ""),
        ("gone.png", ""),
        ("dropout.avi", "2"),
    }
    annotated = out / "annotated" / "media"
    assert (annotated / "two.jpg").is_file() and (annotated / "astronaut.png").is_file()
    video = cv2.VideoCapture(str(annotated / "clip.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_video_frames_carry_the_containers_timestamps(tmp_path):
    path = tmp_path / "phone.mp4"
    stored = write_vfr_video(path, [0.0, 0.04, 0.32, 0.36, 1.2])  # gaps of 40 to 840 ms
    assert stored == pytest.approx([0.0, 0.04, 0.32, 0.36, 1.2])
    frames = [f for f in read_frames(MediaFile(path, path.name)) if isinstance(f, Frame)]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.time for f in frames] == pytest.approx(stored, abs=1e-3)
    assert frames[4].time != pytest.approx(4 / frames[4].fps)  # not index / mean frame rate
    every_other = list(read_frames(MediaFile(path, path.name), every=2))
    assert [f.index for f in every_other] == [0, 2, 4]
    assert [f.time for f in every_other] == pytest.approx([0.0, 0.32, 1.2], abs=1e-3)


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mtl export`` of the checkpoint's two-member ensemble: model.onnx and model.pt."""
    out = tmp_path_factory.mktemp("export")
    main(["export", str(checkpoint), "--out", str(out), "--ensemble", "2"])
    return out


def test_export_writes_both_formats_with_the_preprocessing(exported, checkpoint):
    assert (exported / "model.onnx").is_file() and (exported / "model.pt").is_file()
    _, preprocessing = load_checkpoint_net(checkpoint)
    for model in (load_predictor(exported / "model.onnx"), load_predictor(exported / "model.pt")):
        assert model.preprocessing == preprocessing
        assert [t.name for t in model.tasks] == TASKS


@pytest.mark.numeric
def test_onnx_and_torchscript_match_pytorch_at_any_batch_size(checkpoint, exported):
    net, preprocessing = load_checkpoint_net(checkpoint, ensemble=2)
    reference = TorchPredictor(net, preprocessing)
    onnx = OnnxPredictor(exported / "model.onnx")
    script = TorchScriptPredictor(exported / "model.pt")
    rng = np.random.default_rng(0)
    for batch in (1, 7):
        faces = rng.random((batch, *preprocessing.input_shape), dtype=np.float32)
        expected = reference(faces)
        for model in (onnx, script):
            got = model(faces)
            assert [g.shape for g in got] == [e.shape for e in expected]
            diffs = [float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True)]
            assert max(diffs) < 1e-4


@pytest.mark.numeric
def test_analyze_runs_the_ensemble_and_its_onnx_export_alike(checkpoint, exported, tmp_path):
    photo = tmp_path / "two.png"
    cv2.imwrite(str(photo), cv2.cvtColor(two_faces(), cv2.COLOR_RGB2BGR))
    runs = {"ckpt": [str(checkpoint), "--ensemble", "2"], "onnx": [str(exported / "model.onnx")]}
    for name, model in runs.items():
        main(["analyze", *model, str(photo), "--out", str(tmp_path / name), "--annotate", "false"])
    torch_rows, onnx_rows = read_jsonl(tmp_path / "ckpt"), read_jsonl(tmp_path / "onnx")
    assert len(torch_rows) == len(onnx_rows) == 2
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        for task in TASKS:
            pa, pb = a["probs"][task], b["probs"][task]
            assert pa == pytest.approx(pb, abs=1e-4)  # every class, the two runtimes alike
            top, second = sorted(pa.values(), reverse=True)[:2]
            if top - second > 2e-4:  # a clear winner is the same label in both
                assert a[task] == b[task]
            else:  # a near-tie may go either way between floating-point paths
                assert pb[b[task]] == pytest.approx(top, abs=2e-4)


def test_output_names_never_collide(tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clip.mp4").write_bytes(b"")
    (tmp_path / "x" / "a.png").write_bytes(b"")
    (tmp_path / "x" / "a.jpg").write_bytes(b"")
    files, problems = find_media([tmp_path / "x" / "clip.mp4", tmp_path / "y" / "clip.mp4"])
    assert [f.name for f in files] == ["clip.mp4", "clip-2.mp4"] and not problems
    files, _ = find_media([tmp_path / "x"])
    assert [f.name for f in files] == ["x/a.jpg", "x/a.png", "x/clip.mp4"]


class ColourModel(Predictor):
    """A stand-in model trained on 32 x 32 colour faces: returns each face's mean pixel."""

    tasks = ()
    preprocessing = Preprocessing(FaceSettings(size=32, grayscale=False))
    name = "colour"

    def __call__(self, faces):
        return []


def test_colour_models_get_colour_crops_of_their_size():
    analyzer = Analyzer(ColourModel(), detector=None)  # type: ignore[arg-type]
    frame = Frame(MediaFile(Path("a.png"), "a.png"), 0, None, astronaut())
    crops = analyzer.crops([frame], [[((100.0, 20.0, 300.0, 260.0), 0.99)]])
    assert crops.shape == (1, 3, 32, 32) and crops.dtype == np.float32
    assert crops.min() >= 0.0 and crops.max() <= 1.0


def test_a_checkpoint_whose_preprocessing_contradicts_its_network_is_refused(checkpoint, tmp_path):
    saved = torch.load(checkpoint, weights_only=True)
    saved[PREPROCESSING_KEY]["face"]["grayscale"] = False
    torch.save(saved, tmp_path / "odd.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(tmp_path / "odd.ckpt"), str(tmp_path)])
    assert exit_info.value.code == 2
