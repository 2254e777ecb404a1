"""``mtl sweep``: W&B's search methods and distributions (pure functions), and real local sweeps
of tiny trials: resumed, interrupted, shared by two workers, pruned, capped, on every storage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from mtl.cli import main
from mtl.experiments.sweep import results
from mtl.experiments.sweep import runner as runner_module
from mtl.experiments.sweep.bayes import suggest
from mtl.experiments.sweep.command import build_command
from mtl.experiments.sweep.config import SweepConfig
from mtl.experiments.sweep.params import draw, grid, sample
from mtl.experiments.sweep.runner import SweepRunner, open_storage
from tests import raw_fixtures as F

# --- what to run next: pure functions -------------------------------------------------------


def test_grid_is_the_product_of_values_in_parameter_name_order():
    params = {
        "b": {"values": ["x", "y"]},
        "a": {"distribution": "int_uniform", "min": 1, "max": 2},
        "c": {"value": 7},
        "d": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.5},
    }
    points = grid(params)
    assert len(points) == 2 * 2 * 1 * 2
    assert points[:3] == [
        {"a": 1, "b": "x", "c": 7, "d": 0.0},
        {"a": 1, "b": "x", "c": 7, "d": 0.5},  # q_uniform: arange(min, max, q), max excluded
        {"a": 1, "b": "y", "c": 7, "d": 0.0},
    ]
    with pytest.raises(ValueError, match="'lr': grid search takes only"):
        grid({"lr": {"distribution": "log_uniform_values", "min": 0.1, "max": 1}})


def test_random_draws_follow_wandb_distributions():
    rng = np.random.default_rng(0)
    specs = {
        "int": {"distribution": "int_uniform", "min": 2, "max": 4},
        "logv": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "log": {"distribution": "log_uniform", "min": -2, "max": 0},  # natural-log bounds
        "inv": {"distribution": "inv_log_uniform_values", "min": 0.5, "max": 2},
        "qint": {"distribution": "q_uniform", "min": 0, "max": 64, "q": 8},
        "qfloat": {"distribution": "q_log_uniform_values", "min": 1, "max": 10, "q": 0.5},
        "cat": {"values": [[1], [2]], "probabilities": [1.0, 0.0]},
        "normal": {"distribution": "q_normal", "mu": 5, "sigma": 1, "q": 1},
    }
    draws = [draw(specs, rng) for _ in range(300)]
    assert {d["int"] for d in draws} == {2, 3, 4}
    assert all(1e-4 <= d["logv"] <= 1e-1 for d in draws)
    assert np.mean([d["logv"] < 1e-3 for d in draws]) == pytest.approx(1 / 3, abs=0.1)
    assert all(np.exp(-2) <= d["log"] <= 1 and 0.5 <= d["inv"] <= 2 for d in draws)
    assert all(isinstance(d["qint"], int) and d["qint"] % 8 == 0 for d in draws)
    assert all(
        isinstance(d["qfloat"], float) and d["qfloat"] * 2 == int(d["qfloat"] * 2) for d in draws
    )
    assert all(d["cat"] == [1] for d in draws) and all(isinstance(d["normal"], int) for d in draws)
    assert sample({"value": "x"}, rng) == "x"


def test_bayes_suggests_in_the_same_space():
    specs = {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "tasks": {"values": [["smile"], ["smile", "age"]]},
        "bs": {"distribution": "int_uniform", "min": 16, "max": 64},
    }
    trial = optuna.trial.FixedTrial({"lr": 0.01, "tasks": json.dumps(["smile", "age"]), "bs": 32})
    assert {n: suggest(trial, n, s) for n, s in specs.items()} == {
        "lr": 0.01,
        "tasks": ["smile", "age"],  # categoricals travel as JSON text: any storage keeps them
        "bs": 32,
    }
    with pytest.raises(ValueError, match="'w': method bayes takes"):
        suggest(trial, "w", {"distribution": "normal"})


def test_command_macros_and_values_the_cli_reads():
    argv = build_command(
        ["mtl", "fit", "--config", "c.yaml", "${args}"],
        {"data.tasks": ["smile"], "model.init_std": None, "x": True, "name": "a"},
    )
    assert argv[4:] == ['--data.tasks=["smile"]', "--model.init_std=null", "--x=true", "--name=a"]
    assert build_command(None, {"a": 1}, program="train.py") == [
        "/usr/bin/env", "python", "train.py", "--a=1",
    ]  # fmt: skip


# --- real sweeps of tiny trials -------------------------------------------------------------

TINY = {
    "data": {
        "class_path": "mtl.data.SyntheticDataModule",
        "init_args": {
            "sources": [
                {"name": "a", "tasks": ["smile"], "train": 32, "val": 16, "test": 4},
                {"name": "b", "tasks": ["emotion"], "train": 32, "val": 16, "test": 4},
            ],
            "batch_size": 16,
        },
    },
    "model": {
        "backbone": {
            "class_path": "mtl.models.BKNet",
            "init_args": {"channels": [[4], [8], [8], [8]]},
        },
        "head": {"hidden": [8]},
    },
    "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False},
}


def write_sweep(folder: Path, **sweep) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    spec = {
        "name": "tiny",
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "command": ["mtl", "fit", "--config", str(folder / "tiny.yaml"), "${args}"],
        **sweep,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


LRS = {"model.optimizer.lr": {"values": [0.01, 0.02]}}
FAKE = str(Path(__file__).with_name("fake_trial.py"))


def write_fake_sweep(folder: Path, **sweep) -> Path:
    """A sweep whose trials are tests/fake_trial.py: the runner's work, without training."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "tiny",
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "command": [sys.executable, FAKE, "${args}"],
        **sweep,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


FAKE_LRS = {"lr": {"values": [0.5, 0.25]}}


def sweep_args(path: Path, *more: str) -> list[str]:
    return ["sweep", str(path), "--out", str(path.parent / "out"), "--poll", "0.5", *more]


def study(path: Path, storage: str | None = None) -> optuna.Study:
    url = storage or f"journal:{path.parent / 'out' / 'tiny' / 'study.journal'}"
    return optuna.load_study(study_name="tiny", storage=open_storage(url))


def running(path: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials running now; none before the workers have created the sweep."""
    if not (path.parent / "out" / "tiny" / "study.journal").exists():
        return []
    try:
        return study(path).get_trials(states=(optuna.trial.TrialState.RUNNING,))
    except KeyError:  # the journal exists, the study is not in it yet
        return []


def done(path: Path, storage: str | None = None) -> list[dict]:
    return [r for r in results.rows(study(path, storage)) if r["state"] == "complete"]


def test_a_grid_sweep_runs_every_point_and_reports(tmp_path, capsys):
    path = write_sweep(tmp_path, parameters=LRS)
    main(sweep_args(path))  # trials log to W&B offline too, in the sweep's group
    rows = done(path)
    assert sorted(r["model.optimizer.lr"] for r in rows) == [0.01, 0.02]
    assert all(np.isfinite(r["value"]) and "val/smile/acc" in r for r in rows)
    out = tmp_path / "out" / "tiny"
    assert yaml.safe_load((out / "best.yaml").read_text())["model.optimizer.lr"] in (0.01, 0.02)
    assert (out / "trials.csv").read_text().count("\n") == 3
    assert "sweep tiny: 2 trials" in capsys.readouterr().err
    wandb_runs = list((out / "trial-000").rglob("offline-run-*"))
    assert len(wandb_runs) == 1
    command = study(path).trials[0].user_attrs["command"]
    assert any('"group": "tiny"' in a for a in command)


def test_a_restarted_sweep_does_not_rerun_finished_trials_sqlite(tmp_path):
    path = write_fake_sweep(tmp_path, parameters={"lr": {"values": [0.5, 0.25, 0.125]}})
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    main(sweep_args(path, "--storage", url, "--count", "1"))
    assert len(done(path, url)) == 1
    main(sweep_args(path, "--storage", url))  # the rest, and only the rest
    rows = done(path, url)
    assert sorted(r["lr"] for r in rows) == [0.125, 0.25, 0.5]
    assert len(results.rows(study(path, url))) == 3
    best = yaml.safe_load((tmp_path / "out" / "tiny" / "best.yaml").read_text())
    assert best == {"lr": 0.5}  # the lowest loss


def _interruptible() -> None:
    """In the child before exec: Ctrl-C at its default, as in a terminal. A process that starts
    with SIGINT ignored (inherited from this one, should anything in the test run have set
    that) never gets KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def runner_process(path: Path, *more: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mtl", *sweep_args(path, *more)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)  # fmt: skip


def test_an_interrupted_trial_runs_again_after_a_restart(tmp_path):
    # Each trial waits for `release`, written after the interrupt: the interrupt lands inside
    # the first trial however loaded the machine, and the restarted sweep does not wait.
    release = tmp_path / "release"
    held = {**FAKE_LRS, "hold": {"value": str(release)}}
    path = write_fake_sweep(tmp_path, parameters=held)
    worker = runner_process(path)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the first trial is running, then Ctrl-C
        states = [t.state for t in study(path).get_trials()] if (tmp_path / "out").exists() else []
        if optuna.trial.TrialState.RUNNING in states:
            break
        time.sleep(0.5)
    time.sleep(2)
    try:
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=60) != 0
    finally:
        release.touch()  # no trial left waiting, whatever happened
    interrupted = [t for t in study(path).trials if t.user_attrs.get("failed") == "interrupted"]
    assert len(interrupted) == 1
    main(sweep_args(path))
    assert sorted(r["lr"] for r in done(path)) == [0.25, 0.5]  # both points, once each


def test_two_workers_share_one_sweep_without_running_a_trial_twice(tmp_path):
    # Each trial waits for `release`, written once both workers hold a trial: however unequal
    # their start-up on a loaded machine, neither can run the whole grid before the other starts.
    release = tmp_path / "release"
    lrs = {"lr": {"values": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}, "hold": {"value": str(release)}}
    path = write_fake_sweep(tmp_path, parameters=lrs)
    workers = [runner_process(path) for _ in range(2)]  # both create the sweep at once
    deadline = time.time() + 300
    try:
        while time.time() < deadline and len(running(path)) < 2:
            ended = [w for w in workers if w.poll() is not None]
            assert not ended, f"a worker ended holding no trial: {ended[0].stderr.read()[-2000:]}"
            time.sleep(0.2)
        held = len(running(path))
    finally:
        release.touch()
    assert held == 2, "the two workers did not each take a trial within 5 minutes"
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-2000:]
    rows = done(path)
    assert sorted(r["lr"] for r in rows) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # each point once
    finished = [t for t in study(path).trials if t.state.name == "COMPLETE"]
    owners = {t.user_attrs["worker"]["pid"] for t in finished}
    assert len(owners) == 2  # both workers ran trials


def test_a_worker_starting_while_another_queues_the_grid_runs_every_point(tmp_path, monkeypatch):
    """Found by CI: of two workers started at once, one found the grid marked as queued before
    its points were, no point waiting, and ended; the other ran the whole grid alone. A worker
    stopped while queuing leaves no mark, so the next one queues what is missing."""
    path = write_fake_sweep(tmp_path, parameters={"lr": {"values": [0.5, 0.25, 0.125]}})
    url = f"journal:{tmp_path / 'study.journal'}"
    config = SweepConfig.load(path)
    queue = SweepRunner._enqueue

    def stop_after_one_point(runner: SweepRunner, index: int, again: bool = False) -> None:
        if index > 0:
            raise KeyboardInterrupt  # the first worker, still queuing (or stopped there)
        queue(runner, index, again)

    monkeypatch.setattr(SweepRunner, "_enqueue", stop_after_one_point)
    with pytest.raises(KeyboardInterrupt):
        SweepRunner(config, url, tmp_path / "out", echo=lambda _: None)
    monkeypatch.undo()
    second = SweepRunner(config, url, tmp_path / "out", poll_s=0.1, echo=lambda _: None)
    assert second.run() == 3
    assert sorted(r["lr"] for r in done(path, url)) == [0.125, 0.25, 0.5]  # each point once


def test_a_starting_worker_leaves_other_workers_trials_alone(tmp_path, monkeypatch):
    """A worker starting while another has just asked for a trial (its owner not yet written)
    must not fail it; an ownerless trial left past the grace, or one whose worker of this host
    is gone, is failed and its grid point queued again (found by CI: two workers at once)."""
    path = write_fake_sweep(tmp_path, parameters={"lr": {"values": [0.5, 0.25, 0.125]}})
    url = f"journal:{tmp_path / 'study.journal'}"
    config = SweepConfig.load(path)
    first = SweepRunner(config, url, tmp_path / "out", echo=lambda _: None)
    asked = first.study.ask()  # between ask and naming its owner
    dead = first.study.ask()
    dead.set_user_attr("worker", {"host": socket.gethostname(), "pid": dead_pid()})
    SweepRunner(config, url, tmp_path / "out", echo=lambda _: None)
    states = {t.number: t.state.name for t in study(path, url).trials}
    assert states[asked.number] == "RUNNING" and states[dead.number] == "FAIL"
    monkeypatch.setattr(runner_module, "OWNERLESS_GRACE_S", -1.0)  # now long past
    SweepRunner(config, url, tmp_path / "out", echo=lambda _: None)
    trials = study(path, url).trials
    assert trials[asked.number].state.name == "FAIL"
    waiting = [t.user_attrs["grid_index"] for t in trials if t.state.name == "WAITING"]
    assert sorted(waiting) == [0, 1, 2]  # every point still to run exactly once


def test_a_trial_closed_by_another_worker_while_it_ran_is_said_and_runs_again(tmp_path):
    """Workers whose clocks disagree may take a just-asked trial for an orphan: its owner says
    so when the trial ends, instead of stopping on Optuna's error, and its point is queued."""
    path = write_fake_sweep(tmp_path, parameters={"lr": {"values": [0.5, 0.25]}})
    url = f"journal:{tmp_path / 'study.journal'}"
    said: list[str] = []
    owner = SweepRunner(SweepConfig.load(path), url, tmp_path / "out", echo=said.append)
    trial, _ = owner.next_trial()
    owner._give_up(trial, "taken for an orphan")  # what the other worker does
    owner._record(trial, 0, optuna.trial.TrialState.COMPLETE, tmp_path / "trial")
    assert "another worker closed it" in said[-1]
    waiting = [t.user_attrs["grid_index"] for t in study(path, url).trials if t.state.name ==
               "WAITING"]  # fmt: skip
    assert trial.user_attrs["grid_index"] in waiting


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_two_workers_on_an_empty_face_cache_run_both_trials(tmp_path):
    """Each trial's ``mtl fit`` prepares the GENKI-4K cache it trains on, both starting at once:
    one builds it, the other waits for it or finds it built (the waiting itself is forced in
    test_prepare.py's three-process test); both trials finish."""
    F.write_genki_values(tmp_path / "raw", [60 + 4 * n for n in range(40)])
    genki = {
        "class_path": "mtl.data.Genki4kDataModule",
        "init_args": {
            "root": str(tmp_path / "raw"),
            "cache_dir": str(tmp_path / "cache"),  # empty
            "face": {"detector": "none"},
            "prepare_workers": 0,
            "batch_size": 8,
        },
    }
    path = write_sweep(tmp_path / "sweep", parameters=LRS)
    (tmp_path / "sweep" / "tiny.yaml").write_text(yaml.safe_dump(TINY | {"data": genki}))
    workers = [runner_process(path, "--wandb", "off") for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-2000:]
    assert sorted(r["model.optimizer.lr"] for r in done(path)) == [0.01, 0.02]
    (cache,) = (tmp_path / "cache" / "genki4k").iterdir()
    assert (cache / "manifest.json").is_file() and not (cache / ".partial").exists()


def test_hyperband_stops_a_trial_falling_behind_and_kills_its_process_group(tmp_path):
    child = tmp_path / "child.pid"
    params = {
        "lr": {"values": [0.5, 0.4, 0.01]},
        "epochs": {"value": 30},
        "seconds": {"value": 0.1},
        "child": {"value": str(child)},
    }
    et = {"type": "hyperband", "min_iter": 1, "eta": 2}
    path = write_fake_sweep(tmp_path, parameters=params, early_terminate=et)
    main(sweep_args(path))
    trials = {json.loads(t.user_attrs["params"])["lr"]: t for t in study(path).trials}
    assert [trials[lr].state.name for lr in (0.5, 0.4, 0.01)] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert len(trials[0.01].intermediate_values) < 30  # stopped before its last epoch
    pid = int(child.read_text())  # the last trial's child: killed with its group
    time.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_run_cap_ends_a_random_sweep_and_bayes_suggests(tmp_path):
    params = {"lr": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.1}}
    for method in ("random", "bayes"):
        path = write_fake_sweep(tmp_path / method, method=method, run_cap=3, parameters=params)
        main(sweep_args(path))  # no --count: the cap ends it
        rows = results.rows(study(path))
        assert len(rows) == 3 and all(0.001 <= r["lr"] <= 0.1 for r in rows), method
        assert len({r["lr"] for r in rows}) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A real PostgreSQL server in a fresh folder (the Debian `postgresql` package's binaries;
    run as the `postgres` user when the tests run as root, which initdb refuses)."""
    initdb = shutil.which("initdb") or next(
        iter(Path("/usr/lib/postgresql").glob("*/bin/initdb")), None
    )
    if initdb is None:
        missing = "the PostgreSQL server (initdb, pg_ctl; Debian: apt-get install postgresql)"
        if os.environ.get("MTL_REQUIRE_POSTGRES"):  # CI: .ci/run installs it
            pytest.fail(f"MTL_REQUIRE_POSTGRES is set but {missing} is not installed")
        pytest.skip(f"{missing} is not installed")
    bin_dir = Path(initdb).resolve().parent
    root = Path(tempfile.mkdtemp(prefix="mtl-pg-"))  # outside pytest's root-only tmp folders
    data, port = root / "data", _free_port()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    run = lambda *a: subprocess.run([*as_user, *a], check=True, capture_output=True)  # noqa: E731
    run(str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    log = str(root / "server.log")  # the server must not hold our pipes open
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
    try:
        run(
            str(bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "sweeps",
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/sweeps"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_a_sweep_on_a_postgresql_server(tmp_path, postgres):
    path = write_fake_sweep(tmp_path / "sweep", parameters=FAKE_LRS)
    main(sweep_args(path, "--storage", postgres, "--count", "1"))
    main(sweep_args(path, "--storage", postgres))  # a second worker (here: later) shares it
    assert sorted(r["lr"] for r in done(path, postgres)) == [0.25, 0.5]


def test_a_sweep_file_the_runner_cannot_run_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"method": "grid", "parameters": {"lr": {"min": 0.1, "max": 1.0}}})
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(path)])
    assert exit_info.value.code == 2
    assert "'lr': grid search takes only" in capsys.readouterr().err
    assert SweepConfig.load(write_sweep(tmp_path / "ok", parameters=LRS)).metric == "val/loss"
