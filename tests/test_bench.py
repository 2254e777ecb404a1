"""``mtl bench data`` runs end to end on a fixture (the figures themselves are not asserted)."""

from __future__ import annotations

import json

from mtl.cli import main
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
    assert row["dataset"] == "utkface" and row["kept"] == 20
    assert row["prepare_images_per_s"] > 0 and row["load_samples_per_s"] > 0
    assert result["train_samples_per_s"] > 0
    assert "data throughput" in capsys.readouterr().err
