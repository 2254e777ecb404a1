"""Errors that mean "the input is wrong", not "the program is wrong".

The ``mtl`` command prints a :class:`UserError` as one line naming what to fix and exits with
status 2, instead of a traceback (set ``MTL_TRACEBACK=1`` to see the traceback anyway).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave (a config value, a data folder, a damaged cache)."""


class ConfigError(UserError, ValueError):
    """Settings that cannot work together, found only once the data is known (so after the
    command line was parsed): e.g. one balancing weight per source, for three sources."""
