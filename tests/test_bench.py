"""``mtl bench data`` runs end to end on a fixture (the figures themselves are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtl.cli import main
from mtl.data import Genki4kDataModule, UTKFaceDataModule
from mtl.data.faces import FaceSettings
from tests import raw_fixtures as F


def test_bench_data_reports_every_throughput(tmp_path, capsys):
    F.write_utkface(tmp_path / "utk")
    out = tmp_path / "bench.json"
    main(
        [
            "bench",
            "data",
            "--data_root",
            str(tmp_path / "none"),
            "--roots",
            f"{{utkface: {tmp_path / 'utk'}}}",
            "--batch_size",
            "2",
            "--workers",
            "0",
            "--max_batches",
            "2",
            "--train_steps",
            "1",
            "--json",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    row = result["datasets"][0]
    assert row["dataset"] == "utkface" and row["kept"] == 21  # a bad race field still counts
    assert row["prepare_images_per_s"] > 0 and row["load_samples_per_s"] > 0
    assert result["train_samples_per_s"] > 0
    assert "data throughput" in capsys.readouterr().err


def test_bench_train_compares_the_framework_with_a_bare_loop(tmp_path, capsys):
    F.write_utkface(tmp_path / "data" / "utkface")
    out = tmp_path / "train.json"
    args = ["--data_root", str(tmp_path / "data"), "--cache_dir", str(tmp_path / "cache")]
    args += ["--batch_size", "4", "--steps", "2", "--warmup", "1", "--workers", "0"]
    main(["bench", "train", *args, "--variants", "[eager, channels_last+bf16]", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["sources"] == ["utkface"] and result["device_data"]  # fits: in memory
    assert [r["variant"] for r in result["results"]] == ["eager fp32", "channels_last+bf16-mixed"]
    # exactly one row trains in the precision mtl fit would choose on this machine
    chosen = result["default_precision"]["precision"]
    assert [r["default_precision_here"] for r in result["results"]] == [
        chosen == "32-true",
        chosen == "bf16-mixed",
    ]
    for row in result["results"]:
        assert row["framework_images_per_s"] > 0 and row["bare_images_per_s"] > 0
        framework, bare = row["framework_images_per_s"], row["bare_images_per_s"]
        # the ratio of the unrounded figures; each figure is rounded to 0.1 img/s in the JSON
        low, high = (framework - 0.05) / (bare + 0.05), (framework + 0.05) / (bare - 0.05)
        assert low - 1e-3 <= row["ratio"] <= high + 1e-3
    assert "mtl bench train" in capsys.readouterr().err

    # the cache alone (no raw data) trains, and is refused for another dataset
    cache = next((tmp_path / "cache" / "utkface").iterdir())
    dm = UTKFaceDataModule(cache_path=cache, batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.sources[0].train) > 0 and dm.face_settings().detector == "none"
    with pytest.raises(ValueError, match="holds utkface faces"):
        Genki4kDataModule(cache_path=cache).prepare_data()


def utkface_cache(tmp_path: Path, face: FaceSettings) -> Path:
    """A prepared UTKFace cache of the fixture's faces cropped as ``face`` says."""
    F.write_utkface(tmp_path / "utk")
    UTKFaceDataModule(root=tmp_path / "utk", cache_dir=tmp_path / "cache", face=face).prepare_data()
    return next((tmp_path / "cache" / "utkface").iterdir())


def test_bench_train_builds_its_network_for_the_caches_faces(tmp_path):
    """A cache prepared at another size or in colour is benchmarked, not refused: ``bench``
    takes no backbone options, so its Multi-task BKNet is built for the faces it is given."""
    cache = utkface_cache(tmp_path, FaceSettings(size=32, grayscale=False))
    out = tmp_path / "train.json"
    args = ["--data_root", str(tmp_path / "none"), "--caches", f"{{utkface: {cache}}}"]
    args += ["--batch_size", "4", "--steps", "1", "--warmup", "1", "--workers", "0"]
    main(["bench", "train", *args, "--variants", "[eager]", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["input"] == "3 x 32 x 32 (colour)"  # recorded: not the papers' 48 x 48 grey
    (row,) = result["results"]
    assert row["framework_images_per_s"] > 0 and row["bare_images_per_s"] > 0


def test_bench_train_refuses_faces_bknet_cannot_take_naming_them(tmp_path, capsys):
    cache = utkface_cache(tmp_path, FaceSettings(size=40))
    args = ["--data_root", str(tmp_path / "none"), "--caches", f"{{utkface: {cache}}}"]
    with pytest.raises(SystemExit):
        main(["bench", "train", *args, "--steps", "1", "--warmup", "1", "--workers", "0"])
    err = capsys.readouterr().err
    assert "--caches: faces of 1 x 40 x 40 (grey), which BKNet cannot take" in err
    assert "Traceback" not in err


def test_bench_infer_reports_every_mode_and_the_papers(tmp_path, capsys):
    import cv2
    from skimage.data import astronaut

    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos/a.png"), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "infer.json"
    args = ["--batch_size", "4", "--repeats", "1", "--compile", "false"]
    main(["bench", "infer", *args, "--photos", str(tmp_path / "photos"), "--json", str(out)])
    result = json.loads(out.read_text())
    assert [r["mode"] for r in result["results"]] == ["eager", "onnxruntime (cpu)"]
    assert all(r["images_per_s"] > 0 and r["latency_ms"] > 0 for r in result["results"])
    assert result["end_to_end"]["frames"] == 1 and result["end_to_end"]["faces"] == 1
    assert "Sang & Cuong" in capsys.readouterr().err


def test_one_renderer_prints_every_table_and_writes_the_record(tmp_path):
    from rich.console import Console

    from mtl.experiments.bench.result import BenchResult, Column, Table, show

    rows = [{"name": "a", "value": 1.234}, {"name": "b", "value": 20.0}]
    table = Table("t", [Column("name", lambda r: r["name"], left=True),
                        Column("value", lambda r: f"{r['value']:.1f}")], rows)  # fmt: skip
    console = Console(record=True, width=80)
    show(BenchResult([table], {"rows": rows}, ["a note"]), console, tmp_path / "r.json")
    text = console.export_text()
    assert "1.2" in text and "20.0" in text and text.rstrip().endswith("a note")
    record = json.loads((tmp_path / "r.json").read_text())
    assert record.pop("measured").keys() == {"date", "commit", "dirty", "mtl", "torch"}
    assert record == {"rows": rows}


def test_bench_overhead_compares_the_framework_with_a_bare_loop_and_lightning(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    args = ["--steps", "3", "--warmup", "1", "--rounds", "1", "--weightings", "[fixed, dwa]"]
    main(["bench", "overhead", *args, "--json", str(out)])
    result = json.loads(out.read_text())
    sides = [r["side"] for r in result["results"]]
    assert sides == ["bare loop", "Lightning alone", "framework (fixed)", "framework (dwa)"]
    for row in result["results"]:
        assert row["ms_per_step"] > 0 and row["mean_ms_per_step"] > 0
        assert row["ms_per_step"] == min(row["rounds_ms"])
        assert len(row["rounds_median_ms"]) == 1
        assert (row["within"] is None) == (not row["side"].startswith("framework"))
    assert result["clock"] == "thread CPU time"
    assert "host ms per training step" in capsys.readouterr().err


def test_overhead_takes_the_quietest_rounds_and_keeps_the_paired_median():
    from mtl.experiments.bench.overhead import Steps, _row, step_ms

    assert step_ms([0.0, 0.001, 0.003, 0.006]) == pytest.approx(Steps(1.0, 2.0, 2.0))
    times = {  # quiet, median, mean per round; the second round of both sides was slowed down
        "bare": [Steps(1.0, 1.1, 1.2), Steps(2.0, 2.2, 2.4), Steps(1.1, 1.2, 1.3)],
        "fixed": [Steps(1.5, 1.7, 1.9), Steps(3.0, 3.3, 3.6), Steps(1.4, 1.5, 1.6)],
    }
    row = _row("framework (fixed)", "fixed", times, framework=True)
    assert row["ms_per_step"] == 1.4 and row["mean_ms_per_step"] == 1.6  # its quietest round
    assert row["above_bare_ms"] == pytest.approx(0.4)  # 1.4 against the bare loop's 1.0
    assert row["above_bare_paired_ms"] == pytest.approx(0.6)  # median of 0.6, 1.1, 0.3
    assert row["within"] is True


def test_a_record_outside_a_git_checkout_names_no_commit(tmp_path, monkeypatch):
    from mtl.experiments.bench import result

    assert result._git(tmp_path, "rev-parse", "HEAD") is None  # tmp_path: no repository
    monkeypatch.setattr(result, "_git", lambda folder, *args: None)  # installed, no git
    measured = result.provenance()
    assert measured["commit"] is None and measured["dirty"] is None
    assert measured["date"].endswith("+00:00")


def test_overhead_with_more_than_one_thread_is_timed_in_wall_time():
    from mtl.experiments.bench.overhead import bench_overhead

    result = bench_overhead(steps=3, warmup=1, rounds=1, threads=2, echo=lambda line: None)
    assert result.record["clock"] == "wall time"


def test_overhead_can_give_the_bare_sides_the_framework_update(monkeypatch):
    """``--bare_update framework``: the bare loop and Lightning alone update with
    MomentumSGD (fused on a CPU), so the overhead leaves the framework's faster update out."""
    import torch

    from mtl.experiments.bench import overhead
    from mtl.training.optim import MomentumSGD

    built = []
    original = overhead._sgd
    monkeypatch.setattr(
        overhead, "_sgd", lambda p, u="torch": built.append(original(p, u)) or built[-1]
    )
    result = overhead.bench_overhead(steps=3, warmup=1, rounds=1, bare_update="framework",
                                     echo=lambda line: None)  # fmt: skip
    assert len(built) == 2 and all(type(o) is MomentumSGD for o in built)
    assert all(o.defaults["fused"] for o in built)
    assert result.record["bare_update"] == "framework"
    assert "the framework's SGD update on every side" in result.tables[0].title
    assert type(original(torch.nn.Linear(2, 1).parameters())) is torch.optim.SGD  # the default
