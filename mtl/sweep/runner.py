"""Run a W&B sweep file with no W&B server: Optuna keeps the ledger, each trial is a process.

The study (one per sweep name) lives in Optuna storage, so a sweep interrupted and restarted
never reruns finished trials, and several workers (processes or machines) share it: a journal
file on one host, an RDB URL (PostgreSQL, MySQL; SQLite on a local disk) across machines.

* grid: every grid point is enqueued once and each worker takes the next waiting one (a waiting
  trial is handed to exactly one worker, so no point runs twice);
* random: each trial draws its parameters with W&B's distributions, seeded by (seed, trial);
* bayes: Optuna's TPE sampler suggests them (:mod:`mtl.sweep.bayes`).

Each trial runs the sweep's ``command`` as its own process group (a trial may be a multi-GPU
run); for an ``mtl`` command the runner adds the trial's loggers (CSV, which it reads, and W&B
in the sweep's group). While it runs, the runner reports every new value of the metric to the
pruner (hyperband) and kills the whole process group when the trial is to stop.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from mtl.errors import UserError
from mtl.sweep.bayes import suggest
from mtl.sweep.command import build_command
from mtl.sweep.config import SweepConfig
from mtl.sweep.params import draw, grid

STARTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
KILL_GRACE_S = 10.0
TRIAL_DIR_VAR = "MTL_TRIAL_DIR"
"""Set for every trial: its folder. An ``mtl`` command gets its loggers pointed there; any
other program can be swept by writing ``$MTL_TRIAL_DIR/logs/metrics.csv`` (a header row with
the metric's name, one row per logged value), which the runner reads."""


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``journal:<path>`` (one host, several processes) or an RDB URL (several machines)."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)


def metric_values(metrics_csv: Path, metric: str) -> list[float]:
    """Every value of ``metric`` logged so far, in order (a row being written is skipped)."""
    if not metrics_csv.is_file():
        return []
    with metrics_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    values = []
    for row in rows:
        try:
            values.append(float(row.get(metric) or ""))
        except ValueError:
            continue
    return values


def summary(metrics_csv: Path) -> dict[str, float]:
    """The last logged value of every validation metric (what a trial table shows)."""
    last: dict[str, float] = {}
    if metrics_csv.is_file():
        with metrics_csv.open(newline="") as f:
            for row in csv.DictReader(f):
                for key, value in row.items():
                    if key and key.startswith("val/") and value:
                        last[key] = float(value)
    return last


def kill_group(process: subprocess.Popen) -> None:
    """Stop a trial and every process it started (DDP ranks included)."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class SweepRunner:
    """One worker of a sweep: takes trials from the study and runs them, one at a time."""

    def __init__(
        self,
        config: SweepConfig,
        storage: str,
        out: Path,
        wandb: str = "offline",
        project: str = "mtl",
        seed: int = 0,
        poll_s: float = 2.0,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.config, self.out, self.wandb, self.project = config, Path(out), wandb, project
        self.seed, self.poll_s, self.echo = seed, poll_s, echo
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner says what happens
        self.storage = open_storage(storage)
        sampler = optuna.samplers.TPESampler(seed=seed) if config.method == "bayes" else None
        pruner = config.hyperband.pruner() if config.hyperband else optuna.pruners.NopPruner()
        self.study = optuna.create_study(
            study_name=config.name,
            storage=self.storage,
            direction=config.direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        self.points = grid(config.parameters) if config.method == "grid" else []
        self.worker = {"host": socket.gethostname(), "pid": os.getpid()}
        self._fail_stale()
        if self.points and "grid_size" not in self.study.user_attrs:
            self.study.set_user_attr("grid_size", len(self.points))
            for index in range(len(self.points)):
                self._enqueue(index)

    def _enqueue(self, index: int, again: bool = False) -> None:
        """Queue grid point ``index`` (once; ``again``: also if a trial of it failed)."""
        self.study.enqueue_trial({"grid_index": index}, skip_if_exists=not again)

    def _fail_stale(self) -> None:
        """Trials left running by a worker of this host that is gone are failed (and their grid
        points queued again); RDB storage also fails trials whose heartbeat stopped."""
        if isinstance(self.storage, optuna.storages.RDBStorage):
            optuna.storages.fail_stale_trials(self.study)
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = trial.user_attrs
            if attrs.get("host") == self.worker["host"] and not _alive(attrs.get("pid", -1)):
                self._give_up(trial, "its worker is gone")

    def _give_up(self, trial: optuna.Trial | optuna.trial.FrozenTrial, why: str) -> None:
        """Fail a trial that did not finish; its grid point is queued to run again."""
        self.storage.set_trial_user_attr(trial._trial_id, "failed", why)
        self.study.tell(trial.number, state=TrialState.FAIL)
        if "grid_index" in trial.params:
            self._enqueue(trial.params["grid_index"], again=True)

    def started(self) -> int:
        trials = self.study.get_trials(deepcopy=False, states=STARTED)
        return sum(1 for t in trials if "dropped" not in t.user_attrs)

    def next_trial(self) -> tuple[optuna.Trial, dict[str, Any]] | None:
        """The next trial and its parameters, or None when the sweep is done."""
        cap = self.config.run_cap
        if cap is not None and self.started() >= cap:
            return None
        if self.points and not self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return None
        trial = self.study.ask()
        fixed = self.storage.get_trial_system_attrs(trial._trial_id).get("fixed_params", {})
        if (self.points and "grid_index" not in fixed) or (
            cap is not None and self.started() > cap
        ):
            trial.set_user_attr("dropped", "nothing left to run")  # another worker took it
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial, self.params(trial)

    def params(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's parameter values (W&B names), recorded with it."""
        if self.points:
            params = self.points[trial.suggest_int("grid_index", 0, len(self.points) - 1)]
        elif self.config.method == "random":
            params = draw(self.config.parameters, np.random.default_rng([self.seed, trial.number]))
        else:
            params = {n: suggest(trial, n, s) for n, s in sorted(self.config.parameters.items())}
        trial.set_user_attr("params", json.dumps(params))
        return params

    def command(self, trial: optuna.Trial, params: dict[str, Any], folder: Path) -> list[str]:
        argv = build_command(self.config.command, params, self.config.program, folder / "args.json")
        if argv[0] != "mtl":
            return argv
        argv = [sys.executable, "-m", "mtl", *argv[1:]]  # this very mtl, whatever the PATH
        loggers = [
            {
                "class_path": "mtl.loggers.CSVLogger",
                "init_args": {"save_dir": str(folder), "name": "", "version": "logs",
                              "flush_logs_every_n_steps": 1},
            }
        ]  # fmt: skip
        if self.wandb != "off":
            loggers.append(
                {
                    "class_path": "mtl.loggers.WandbLogger",
                    "init_args": {"project": self.project, "save_dir": str(folder),
                                  "group": self.config.name,
                                  "name": f"{self.config.name}-{trial.number:03d}"},
                }
            )  # fmt: skip
        return [*argv, f"--trainer.logger={json.dumps(loggers)}"]

    def run(self, count: int | None = None) -> int:
        """Run trials until the sweep is done or ``count`` trials ran here; returns how many."""
        ran = 0
        while count is None or ran < count:
            nxt = self.next_trial()
            if nxt is None:
                break
            self.execute(*nxt)
            ran += 1
        return ran

    def execute(self, trial: optuna.Trial, params: dict[str, Any]) -> None:
        """Run one trial's process to its end (or until the pruner stops it) and record it."""
        folder = self.out / self.config.name / f"trial-{trial.number:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "args.json").write_text(json.dumps(params))
        argv = self.command(trial, params, folder)
        for key, value in {**self.worker, "dir": str(folder), "command": argv}.items():
            trial.set_user_attr(key, value)
        self.echo(f"trial {trial.number}: {' '.join(f'{k}={v}' for k, v in params.items())}")
        env = {k: v for k, v in os.environ.items() if k not in ("WANDB_RUN_ID", "WANDB_SWEEP_ID")}
        env[TRIAL_DIR_VAR] = str(folder)
        if self.wandb in ("offline", "online"):
            env["WANDB_MODE"] = self.wandb
        with (folder / "output.log").open("w") as log:
            try:
                process = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            except OSError as err:
                self._give_up(trial, f"cannot start {argv[0]}: {err}")
                raise UserError(f"trial {trial.number}: cannot start {argv[0]}: {err}") from None
            try:
                state = self._watch(trial, process, folder / "logs" / "metrics.csv")
            except BaseException:  # interrupted: stop the trial, let its point run again
                kill_group(process)
                self._give_up(trial, "interrupted")
                raise
        self._record(trial, process.returncode, state, folder)

    def _watch(self, trial: optuna.Trial, process: subprocess.Popen, metrics: Path) -> TrialState:
        reported = 0
        while True:
            running = process.poll() is None
            values = metric_values(metrics, self.config.metric)
            for value in values[reported:]:
                trial.report(value, step=reported)  # value i of the metric is step i
                reported += 1
                # asked also once the trial ended: the pruner records each rung's values then
                if trial.should_prune() and running:
                    kill_group(process)
                    return TrialState.PRUNED
            if not running:
                return TrialState.COMPLETE
            if isinstance(self.storage, optuna.storages.RDBStorage):
                self.storage.record_heartbeat(trial._trial_id)
            time.sleep(self.poll_s)

    def _record(
        self, trial: optuna.Trial, returncode: int, state: TrialState, folder: Path
    ) -> None:
        metrics = folder / "logs" / "metrics.csv"
        trial.set_user_attr("summary", summary(metrics))
        values = metric_values(metrics, self.config.metric)
        if state == TrialState.PRUNED:
            self.study.tell(trial, state=TrialState.PRUNED)
            self.echo(f"trial {trial.number}: pruned after {len(values)} values")
        elif returncode != 0 or not values:
            why = f"exit status {returncode}" if returncode else f"{self.config.metric} not logged"
            trial.set_user_attr("failed", f"{why}; see {folder / 'output.log'}")
            self.study.tell(trial, state=TrialState.FAIL)
            self.echo(f"trial {trial.number}: failed ({why})")
        else:
            self.study.tell(trial, values[-1])
            self.echo(f"trial {trial.number}: {self.config.metric} = {values[-1]:.4f}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError, OverflowError):
        return False
    return True
