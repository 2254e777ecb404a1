"""A run's console says what the run did: its progress, its tables and real warnings, without
third-party notices, and one test table (mtl.cli.console)."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

from mtl.cli import main
from mtl.cli.console import LIGHTNING_LOGGERS, quiet_console

from .conftest import tiny_fit_args


def test_a_fit_with_its_test_prints_no_notices_and_one_test_table(in_tmp):
    argv = [*tiny_fit_args(), "--test_after_fit=true"]
    done = subprocess.run(  # a fresh interpreter: warnings shown once per process are shown
        [sys.executable, "-m", "mtl", *argv], capture_output=True, text=True, cwd=in_tmp
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "LeafSpec" not in out
    assert "Tip:" not in out and "litlogger" not in out
    assert out.count("Test results") == 1  # the run's own table (RunSummary) …
    assert "Test metric" not in out  # … and not Lightning's beside it
    assert "Validation after epoch" in out


def test_the_filters_hold_only_while_a_command_runs(in_tmp):
    before = list(warnings.filters)
    with quiet_console():
        assert len(warnings.filters) > len(before)
        assert all(logging.getLogger(name).filters for name in LIGHTNING_LOGGERS)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", UserWarning)
            warnings.warn("a real warning", UserWarning, stacklevel=1)
        assert [str(w.message) for w in seen] == ["a real warning"]
    assert warnings.filters == before
    assert not any(logging.getLogger(name).filters for name in LIGHTNING_LOGGERS)
    main([*tiny_fit_args(), "--trainer.max_epochs=1"])
    assert warnings.filters == before
