"""Face preparation: detector policies, resumability, content-addressed caches, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mtl.cli import main
from mtl.data import Genki4kDataModule
from mtl.data import cache as C
from mtl.data import prepare as P
from mtl.data.faces import FaceSettings, HaarDetector, MTCNNDetector, crop_face
from mtl.data.readers import Genki4kReader
from tests import raw_fixtures as F

VALUES = [30, 100, 200, 110, 120, 130, 140]  # <50: no face; >150: two faces; else one


class FakeDetector(P.Detector):
    """Finds faces by brightness, so each policy can be exercised without real faces."""

    def __init__(self) -> None:
        self.seen = 0

    def detect(self, images, given=None):
        self.seen += len(images)
        found = []
        for im in images:
            value = im.mean()
            one = [(4.0, 4.0, 20.0, 20.0)]
            found.append([] if value < 50 else one + [(0.0, 0.0, 8.0, 8.0)] if value > 150 else one)
        return found


@pytest.fixture
def fake(monkeypatch) -> FakeDetector:
    detector = FakeDetector()
    monkeypatch.setattr(P, "make_detector", lambda name, device: detector)
    return detector


def run(root: Path, out: Path, **face) -> P.C.FaceCache:
    settings = FaceSettings(detector="mtcnn", **face)
    return P.prepare(
        Genki4kReader(root), out, settings, workers=0, batch_size=2, chunk_batches=1, progress=False
    )


@pytest.mark.parametrize(
    ("face", "kept", "skipped"),
    [
        ({}, 6, {"no face found": 1}),
        ({"no_face": "center"}, 7, {}),
        ({"multi_face": "skip"}, 5, {"no face found": 1, "several faces": 1}),
    ],
)
def test_face_policies(tmp_path, fake, face, kept, skipped):
    F.write_genki_values(tmp_path / "raw", VALUES)
    cache = run(tmp_path / "raw", tmp_path / "out", **face)
    assert cache.manifest["counts"]["kept"] == kept
    assert cache.manifest["counts"]["skipped"] == skipped
    remarks = cache.manifest["counts"]["kept_with_remark"]
    if face.get("multi_face") != "skip":
        assert remarks["several faces: largest kept"] == 1
    assert cache.images.shape[1:] == (48, 48)


def test_interrupted_prepare_resumes_and_matches_a_clean_run(tmp_path, fake, monkeypatch):
    F.write_genki_values(tmp_path / "raw", VALUES)
    clean = run(tmp_path / "raw", tmp_path / "clean")
    fake.seen = 0
    saves = []
    original = P._ChunkRunner._save

    def crash_on_second_chunk(self, c):
        if saves:
            raise KeyboardInterrupt
        saves.append(c)
        original(self, c)

    monkeypatch.setattr(P._ChunkRunner, "_save", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "raw", tmp_path / "out")
    folder = next((tmp_path / "out" / "genki4k").iterdir())
    assert not (folder / "manifest.json").exists()  # incomplete: never mistaken for a cache
    assert len(list((folder / ".partial").glob("chunk*.npz"))) == 1
    monkeypatch.setattr(P._ChunkRunner, "_save", original)
    fake.seen = 0
    resumed = run(tmp_path / "raw", tmp_path / "out")
    assert fake.seen == 5  # the first chunk (2 images) was not redone
    np.testing.assert_array_equal(resumed.images, clean.images)
    assert list(resumed.table["id"]) == list(clean.table["id"])
    assert not (folder / ".partial").exists()


def test_changed_setting_never_reuses_a_stale_cache(tmp_path, fake):
    F.write_genki_values(tmp_path / "raw", VALUES)
    first = run(tmp_path / "raw", tmp_path / "out")
    fake.seen = 0
    again = run(tmp_path / "raw", tmp_path / "out")
    assert again.path == first.path and fake.seen == 0  # complete cache reused as is
    assert run(tmp_path / "raw", tmp_path / "out", margin=0.3).path != first.path
    assert run(tmp_path / "raw", tmp_path / "out", size=64).images.shape[1:] == (64, 64)
    (tmp_path / "raw" / "labels.txt").write_text("\n".join("1 0 0 0" for _ in VALUES))
    assert run(tmp_path / "raw", tmp_path / "out").path != first.path  # labels changed
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["face"]["margin"] == 0.1 and manifest["dataset"]["name"] == "genki4k"


def test_crop_is_square_with_margin_and_black_outside():
    rgb = np.full((40, 40, 3), 255, np.uint8)
    face = crop_face(rgb, (0.0, 0.0, 40.0, 40.0), FaceSettings(size=20, margin=0.25))
    assert face.shape == (20, 20)
    assert face[0, 0] == 0 and face[10, 10] == 255  # margin beyond the image is black


def test_real_detectors_load_offline_and_find_no_face_in_a_blank_image():
    blank = np.full((120, 100, 3), 127, np.uint8)
    assert HaarDetector().detect([blank]) == [[]]
    assert MTCNNDetector("cpu").detect([blank, blank]) == [[], []]


def test_prepare_command(tmp_path, capsys):
    F.write_genki(tmp_path / "raw")
    main(
        [
            "prepare",
            "genki4k",
            "--root",
            str(tmp_path / "raw"),
            "--out",
            str(tmp_path / "out"),
            "--face.detector",
            "none",
            "--workers",
            "0",
            "--progress",
            "false",
        ]
    )
    err = capsys.readouterr().err
    assert "unreadable image" in err and "no label line" in err and "cache:" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "genki4k", "--root", str(tmp_path / "nowhere"), "--progress", "false"])
    assert exit_info.value.code == 2
    assert "labels.txt not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "genki4k", "--root", str(tmp_path), "--face.detector", "dlib"])
    assert exit_info.value.code == 2


def test_a_damaged_cache_is_noticed_and_rebuilt(tmp_path, fake):
    F.write_genki_values(tmp_path / "raw", VALUES)
    first = run(tmp_path / "raw", tmp_path / "out")
    images = first.path / "images.npy"
    data = images.read_bytes()
    images.write_bytes(data[: len(data) // 2])  # a full disk, a killed copy
    with pytest.raises(C.DamagedCache, match="images.npy has .* bytes, the manifest recorded"):
        C.FaceCache.open(first.path)
    fake.seen = 0
    rebuilt = run(tmp_path / "raw", tmp_path / "out")
    assert rebuilt.path == first.path and fake.seen == len(VALUES)  # prepared again
    np.testing.assert_array_equal(rebuilt.images, first.images)
    edited = bytearray(images.read_bytes())
    edited[-1] ^= 0xFF  # same size, other content
    images.write_bytes(bytes(edited))
    with pytest.raises(C.DamagedCache, match="images.npy has changed since it was written"):
        C.FaceCache.open(first.path)
    labels = first.path / "labels.csv"
    labels.write_text(labels.read_text().replace(",1,", ",0,", 1))
    run(tmp_path / "raw", tmp_path / "out")  # rebuilt once more
    manifest = first.path / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])  # the manifest itself cut short
    with pytest.raises(C.DamagedCache, match="manifest.json is unreadable"):
        C.FaceCache.open(first.path)
    run(tmp_path / "raw", tmp_path / "out")
    C.FaceCache.open(first.path)


def test_a_datamodule_rebuilds_a_damaged_cache_or_names_the_file_and_the_fix(tmp_path):
    F.write_genki(tmp_path / "raw")
    kwargs = dict(root=tmp_path / "raw", cache_dir=tmp_path / "cache", prepare_workers=0)
    dm = Genki4kDataModule(face=FaceSettings(detector="none"), **kwargs)
    dm.prepare_data()
    (dm.cache.path / "labels.csv").write_text("row,id\n")
    other_rank = Genki4kDataModule(face=FaceSettings(detector="none"), **kwargs)
    with pytest.raises(C.DamagedCache, match=r"labels.csv .*mtl prepare genki4k --root"):
        other_rank.setup("fit")  # a rank that did not prepare: one line, the file and the fix
    dm.prepare_data()  # the rank that prepares rebuilds it
    other_rank.setup("fit")
    assert len(other_rank.sources[0].train) > 0


def test_three_processes_preparing_one_cache_build_it_once(tmp_path):
    F.write_genki_values(tmp_path / "raw", [100 + n for n in range(20)])
    out, start = tmp_path / "out", tmp_path / "sync" / "start"
    start.parent.mkdir()
    worker = str(Path(__file__).with_name("prepare_worker.py"))
    argv = [sys.executable, worker, str(tmp_path / "raw"), str(out), str(start)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]  # fmt: skip
    deadline = time.time() + 300
    while len(list(start.parent.glob("ready-*"))) < 3 and time.time() < deadline:
        time.sleep(0.1)
    start.touch()  # all three start together; one builds (20 images, 0.2 s per 2)
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        results.append((json.loads(stdout.strip().splitlines()[-1]), stderr))
    assert len({r["path"] for r, _ in results}) == 1 and {r["kept"] for r, _ in results} == {20}
    assert sorted(r["seen"] for r, _ in results) == [0, 0, 20]  # built once, then reused
    waited = [err for r, err in results if r["seen"] == 0]
    assert all("another process is preparing" in err for err in waited)
    assert C.FaceCache.open(Path(results[0][0]["path"])).manifest["counts"]["kept"] == 20
