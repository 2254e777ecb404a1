"""A quiet console for ``mtl`` commands: a run prints its progress, its tables and real warnings.

Third-party notices that say nothing about the run are dropped while a command runs (and only
then: the filters are scoped to :func:`quiet_console`, never installed globally on import):

* torch's ``FutureWarning`` that ``isinstance(treespec, LeafSpec)`` is deprecated, raised by
  Lightning's own ``_pytree`` helper on every fit (Lightning's to update, nothing a user can do);
* Lightning's tip advertising another logging product, printed when a trainer gets its loggers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

IGNORED_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)
"""(message regex, category) of the third-party warnings a command does not show."""

IGNORED_LOG_PREFIXES: tuple[str, ...] = ("💡 Tip:",)
"""Starts of Lightning's informational lines a command does not show."""

LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)
"""The loggers Lightning's ``rank_zero_info`` writes to."""


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(IGNORED_LOG_PREFIXES)


@contextmanager
def quiet_console() -> Iterator[None]:
    """While the block runs: the notices above are not shown; everything else is."""
    notices = _DropNotices()
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    with warnings.catch_warnings():
        for message, category in IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        for logger in loggers:
            logger.addFilter(notices)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(notices)
