"""Mixed precision chosen per machine: bf16 where the kernels run it natively, fp32 elsewhere,
recorded in the saved config, one flag away from either."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from mtl.cli import main, run_cli
from mtl.training import precision

from .conftest import tiny_fit_args


@pytest.fixture(autouse=True)
def own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test's runs resolve is undone after it (set first, so monkeypatch restores
    the variables' state from before the test, set or not)."""
    for name in (precision.INHERITED, "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the CPU timing probe by a machine whose bf16 runs at ``speedup[0]`` x fp32;
    records how often it was asked."""
    speedup = [2.0]
    calls = []

    def fake(repeats: int = 3) -> float:
        calls.append(repeats)
        return speedup[0]

    monkeypatch.setattr(precision, "cpu_bf16_speedup", fake)
    precision._cpu_choice.cache_clear()
    yield speedup, calls
    precision._cpu_choice.cache_clear()


def saved_precision(root: Path) -> str:
    (config,) = root.rglob("config.yaml")
    return yaml.safe_load(config.read_text())["trainer"]["precision"]


@pytest.mark.parametrize(("speedup", "expected"), [(2.0, "bf16-mixed"), (0.1, "32-true")])
def test_cpu_choice_follows_what_the_kernels_do(probe, speedup, expected):
    probe[0][0] = speedup
    choice = precision.choose("cpu")
    assert choice.precision == expected
    assert f"{speedup:.2f}x" in choice.reason


def test_the_bar_sits_between_emulated_and_native(probe):
    probe[0][0] = precision.SPEEDUP_REQUIRED - 0.01
    assert precision.choose("cpu").precision == "32-true"
    precision._cpu_choice.cache_clear()
    probe[0][0] = precision.SPEEDUP_REQUIRED
    assert precision.choose("cpu").precision == "bf16-mixed"


def test_probe_runs_once_per_process(probe):
    for _ in range(3):
        precision.choose("cpu")
    assert len(probe[1]) == 1


def test_probe_leaves_the_seeded_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    precision.cpu_bf16_speedup(repeats=1)
    assert torch.equal(torch.rand(3), expected)


def test_the_real_probe_gives_a_positive_ratio_and_restores_the_thread_count():
    threads = torch.get_num_threads()
    assert precision.cpu_bf16_speedup(repeats=1) > 0
    assert torch.get_num_threads() == threads


def test_gpu_choice_is_native_bf16(monkeypatch, probe):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    for native, expected in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(
            torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: n
        )
        assert precision.choose("auto").precision == expected
        assert precision.choose("gpu").precision == expected
    assert precision.choose("cpu").precision == "bf16-mixed"  # the CPU probe, not the GPU
    assert precision.choose("mps").precision == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # gpu asked, none there:
    assert precision.choose("gpu").precision == "32-true"  # Lightning will say so, not us


def test_ddp_ranks_take_the_launchers_choice(monkeypatch, probe):
    assert precision.resolve("cpu").precision == "bf16-mixed"
    precision._cpu_choice.cache_clear()
    probe[0][0] = 0.1  # a rank that would time differently still follows rank 0
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert precision.choose("cpu").precision == "bf16-mixed"
    monkeypatch.setenv("LOCAL_RANK", "0")  # the launcher itself probes (its own cache)
    assert precision.choose("cpu").precision == "32-true"


def test_ranks_started_by_an_outside_launcher_agree_on_fp32(monkeypatch, probe):
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun, srun: no process resolved for the others
    monkeypatch.setenv("LOCAL_RANK", "0")
    choice = precision.choose("cpu")
    assert choice.precision == "32-true" and "several processes" in choice.reason
    assert probe[1] == []  # no timing that could differ between ranks


@pytest.mark.parametrize(("speedup", "expected"), [(2.0, "bf16-mixed"), (0.1, "32-true")])
def test_fit_trains_in_the_chosen_precision_and_saves_it(in_tmp, probe, caplog, speedup, expected):
    probe[0][0] = speedup
    with caplog.at_level("INFO"):
        cli = run_cli([*tiny_fit_args(), "--trainer.accelerator=cpu"])
    assert cli.trainer.precision == expected
    assert saved_precision(in_tmp / "runs") == expected
    assert f"mtl: precision {expected}" in caplog.text


def test_a_named_precision_wins_and_skips_the_probe(in_tmp, probe):
    main([*tiny_fit_args(), "--trainer.precision=32-true"])
    assert saved_precision(in_tmp / "runs") == "32-true"
    assert probe[1] == []


def test_a_resumed_run_keeps_the_precision_it_was_trained_in(in_tmp, probe):
    main([*tiny_fit_args(), "--trainer.accelerator=cpu"])  # bf16 here
    first = json.loads(next((in_tmp / "runs").rglob("run.json")).read_text())
    assert first["ran"]["precision"] == "bf16-mixed" and first["fit_seconds"] > 0
    checkpoint = torch.load(next((in_tmp / "runs").rglob("last.ckpt")), weights_only=True)
    assert "RunReport" in checkpoint["callbacks"]  # the key checkpoints had before the rename
    probe[0][0] = 0.1  # the machine now says fp32 (another machine, a busy one)
    precision._cpu_choice.cache_clear()
    cli = run_cli([*tiny_fit_args(), "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert cli.trainer.precision == "bf16-mixed"  # as the checkpoint was trained
    resumed = json.loads(next((in_tmp / "runs").rglob("run.json")).read_text())
    assert resumed["fit_seconds"] > first["fit_seconds"]  # the time before the checkpoint too
