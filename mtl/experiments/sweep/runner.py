"""Run a W&B sweep file with no W&B server: Optuna keeps the ledger, each trial is a process.

The study (one per sweep name) lives in Optuna storage, so a sweep interrupted and restarted
never reruns finished trials, and several workers (processes or machines) share it: a journal
file on one host, an RDB URL (PostgreSQL, MySQL; SQLite on a local disk) across machines.

* grid: every grid point is queued and each worker takes the next waiting one; a point that two
  workers queued at the same moment, or that is already running or done, is dropped when it is
  taken, so no point runs twice (the rules: :mod:`mtl.experiments.sweep.plan`);
* random: each trial draws its parameters with W&B's distributions, seeded by (seed, trial);
* bayes: Optuna's TPE sampler suggests them (:mod:`mtl.experiments.sweep.bayes`), seeded per
  worker and counting running trials as "liars", so parallel workers do not propose the same point.

Each trial runs the sweep's ``command`` in its own process group
(:mod:`mtl.experiments.sweep.trial`); for an ``mtl`` command the runner adds the trial's loggers
(CSV, which it reads, and W&B in the sweep's group). While it runs, every new value of the metric
goes to the pruner (hyperband as W&B's rule), which may stop the trial: its whole process
group is killed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from mtl.errors import UserError
from mtl.experiments.sweep import plan
from mtl.experiments.sweep.bayes import suggest
from mtl.experiments.sweep.command import build_command, with_trial_loggers
from mtl.experiments.sweep.config import SweepConfig
from mtl.experiments.sweep.params import grid
from mtl.experiments.sweep.plan import TrialRecord
from mtl.experiments.sweep.trial import alive, kill_group, metric_values, summary

OWNERLESS_GRACE_S = 600.0
"""A running trial with no owner recorded yet is another worker's, between asking for it and
writing its name (a moment); only after this long is it taken for one whose worker died in
between. The age is read from the trial's start time, written with the asking host's clock:
workers sharing a sweep need clocks that agree (and, on RDB storage, one time zone). If they
do not, a just-asked trial may be failed by another worker: its owner then sees that and
asks again, and its point is queued again, so nothing is lost."""

TRIAL_DIR_VAR = "MTL_TRIAL_DIR"
"""Set for every trial: its folder. An ``mtl`` command gets its loggers pointed there; any
other program can be swept by writing ``$MTL_TRIAL_DIR/logs/metrics.csv`` (a header row with
the metric's name, one row per logged value), which the runner reads."""


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``journal:<path>`` (one host, several processes) or an RDB URL (several machines; a
    trial whose worker stops sending heartbeats is failed and its parameters queued again)."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=30,
        grace_period=120,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
    )


class SweepRunner:
    """One worker of a sweep: takes trials from the study and runs them, one at a time."""

    def __init__(
        self,
        config: SweepConfig,
        storage: str,
        out: Path,
        *,
        wandb: str = "offline",
        project: str = "mtl",
        seed: int = 0,
        poll_s: float = 2.0,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.config, self.out, self.wandb, self.project = config, Path(out), wandb, project
        self.seed, self.poll_s, self.echo = seed, poll_s, echo
        self.worker = {"host": socket.gethostname(), "pid": os.getpid()}
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner says what happens
        self.storage = open_storage(storage)
        self.study = optuna.create_study(
            study_name=config.name,
            storage=self.storage,
            direction=config.goal,
            sampler=self._sampler(),
            pruner=config.pruner(),
            load_if_exists=True,
        )
        self.points = grid(config.parameters) if config.method == "grid" else []
        self._fail_stale()
        if self.points and "grid_size" not in self.study.user_attrs:
            # Every point queued before the mark that says so: a worker starting meanwhile
            # queues them too (each once; a point queued twice runs once, see next_trial)
            # instead of finding the mark, no waiting point, and the sweep "done".
            for index in range(len(self.points)):
                self._enqueue(index)
            self.study.set_user_attr("grid_size", len(self.points))

    def _sampler(self) -> optuna.samplers.BaseSampler | None:
        if self.config.method != "bayes":
            return None
        host = zlib.crc32(self.worker["host"].encode())
        worker_seed = np.random.SeedSequence([self.seed, host, self.worker["pid"]])
        seed = int(worker_seed.generate_state(1)[0])
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    def _enqueue(self, index: int, again: bool = False) -> None:
        """Queue grid point ``index`` (once; ``again``: also if a trial of it failed)."""
        attrs = {"grid_index": index}
        self.study.enqueue_trial(attrs, user_attrs=attrs, skip_if_exists=not again)

    def _fail_stale(self) -> None:
        """Trials left running by a worker of this host that is gone (or by none at all) are
        failed and their grid points queued again; RDB storage also fails trials whose
        heartbeat stopped (then its callback queues them again)."""
        if isinstance(self.storage, optuna.storages.RDBStorage):
            optuna.storages.fail_stale_trials(self.study)
        now = datetime.now()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = trial.user_attrs.get("worker")
            if owner is None:  # asked a moment ago, or its worker died before naming itself
                started = trial.datetime_start or now
                gone = (now - started).total_seconds() > OWNERLESS_GRACE_S
            else:
                gone = owner["host"] == self.worker["host"] and not alive(owner["pid"])
            if gone:
                self._give_up(trial, "its worker is gone")

    def _give_up(self, trial: optuna.Trial | FrozenTrial, why: str) -> None:
        """Fail a trial that did not finish; its grid point is queued to run again. Another
        worker may have done so first: then nothing is left to do."""
        try:
            self.storage.set_trial_user_attr(trial._trial_id, "failed", why)
            self.study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # already finished (by another worker)
            return
        if "grid_index" in trial.user_attrs:
            self._enqueue(trial.user_attrs["grid_index"], again=True)

    def _drop(self, trial: optuna.Trial, why: str) -> None:
        """Close a trial that will not run (kept out of the trial table)."""
        trial.set_user_attr("dropped", why)
        self.study.tell(trial, state=TrialState.FAIL)

    def records(self) -> list[TrialRecord]:
        """Every trial of the study, as the planning functions read them."""
        states = {
            TrialState.WAITING: "waiting",
            TrialState.RUNNING: "running",
            TrialState.COMPLETE: "complete",
            TrialState.PRUNED: "pruned",
            TrialState.FAIL: "failed",
        }
        return [
            TrialRecord(
                t.number,
                states[t.state],
                t.user_attrs.get("grid_index"),
                dropped="dropped" in t.user_attrs,
            )
            for t in self.study.get_trials(deepcopy=False)
            if t.state in states
        ]

    def next_trial(self) -> tuple[optuna.Trial, dict[str, Any]] | None:
        """The next trial and its parameters, or None when the sweep is done: what runs is
        :mod:`~mtl.experiments.sweep.plan`'s to say; this asks Optuna and records it."""
        grid = self.config.method == "grid"
        while plan.finished(self.config, self.records(), grid) is None:
            trial = self.study.ask()
            try:
                trial.set_user_attr("worker", self.worker)  # the owner, in one write, first
            except UpdateFinishedTrialError:  # taken for an orphan by another worker: re-queued
                continue
            asked = TrialRecord(trial.number, "running", trial.user_attrs.get("grid_index"))
            refused = plan.refusal(self.config, self.records(), asked, grid)
            if refused is None:
                return trial, self.params(trial, asked)
            self._drop(trial, refused.why)
            if refused.sweep_done:
                return None
        return None

    def params(self, trial: optuna.Trial, record: TrialRecord) -> dict[str, Any]:
        """The trial's parameter values (W&B names), recorded with it."""
        params = plan.planned_params(self.config, self.points, record, self.seed)
        if params is None:  # bayes: Optuna's sampler, from the finished trials
            params = {n: suggest(trial, n, s) for n, s in sorted(self.config.parameters.items())}
        trial.set_user_attr("params", json.dumps(params))
        return params

    def command(self, trial: optuna.Trial, params: dict[str, Any], folder: Path) -> list[str]:
        argv = build_command(self.config.command, params, self.config.program, folder / "args.json")
        name = f"{self.config.name}-{trial.number:03d}"
        return with_trial_loggers(argv, folder, self.wandb, self.project, self.config.name, name)

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
        trial.set_user_attr("dir", str(folder))
        trial.set_user_attr("command", argv)
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
            values = metric_values(metrics, self.config.ledger_metric)
            for value in values[reported:]:
                trial.report(value, step=reported)  # value i of the metric is step i
                reported += 1
                if running and trial.should_prune():
                    kill_group(process)
                    return TrialState.PRUNED
            if not running:
                return TrialState.COMPLETE
            if isinstance(self.storage, optuna.storages.RDBStorage):
                self.storage.record_heartbeat(trial._trial_id)  # Optuna's own trials do this
            time.sleep(self.poll_s)

    def _record(
        self, trial: optuna.Trial, returncode: int, state: TrialState, folder: Path
    ) -> None:
        try:
            self._tell(trial, returncode, state, folder)
        except UpdateFinishedTrialError:  # failed meanwhile by another worker, which re-queued it
            self.echo(
                f"trial {trial.number}: another worker closed it while it ran (see the sweep "
                f"guide on workers' clocks); its point runs again, this result is in {folder}"
            )

    def _tell(self, trial: optuna.Trial, returncode: int, state: TrialState, folder: Path) -> None:
        metrics = folder / "logs" / "metrics.csv"
        trial.set_user_attr("summary", summary(metrics))
        values = metric_values(metrics, self.config.ledger_metric)
        if state == TrialState.PRUNED:
            self.study.tell(trial, state=TrialState.PRUNED)
            self.echo(f"trial {trial.number}: stopped early after {len(values)} values")
        elif returncode != 0 or not values:
            missing = f"{self.config.ledger_metric} not logged"
            why = f"exit status {returncode}" if returncode else missing
            trial.set_user_attr("failed", f"{why}; see {folder / 'output.log'}")
            self.study.tell(trial, state=TrialState.FAIL)
            self.echo(f"trial {trial.number}: failed ({why})")
        else:
            self.study.tell(trial, values[-1])
            self.echo(f"trial {trial.number}: {self.config.ledger_metric} = {values[-1]:.4f}")
