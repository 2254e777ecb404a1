"""Hyper-parameters as plain data: class paths and arguments, never live objects.

A checkpoint's hyper-parameters must load with ``torch.load(weights_only=True)`` and rebuild the
model with no config file. The CLI already hands the model its config as plain data; a model
built in Python gets classes, ``functools.partial``\\ s, dataclasses and backbone modules, which
:func:`to_plain` turns into the same ``{"class_path": ..., "init_args": ...}`` form. Loading
goes through Lightning's jsonargparse instantiator, exactly like a CLI checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"
"""Rebuilds a module from plain hyper-parameters (Lightning's own, also used by LightningCLI)."""


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _partial_class(value: functools.partial) -> type | None:
    """The class a partial builds with keywords only: ``partial(cls, **kw)`` or jsonargparse's
    ``partial(instantiate, ..., cls, **kw)``; None if it also binds positional arguments."""
    if isinstance(value.func, type):
        return None if value.args else value.func
    last = value.args[-1] if value.args else None
    return last if isinstance(last, type) else None


def to_plain(value: Any, name: str = "value") -> Any:
    """``value`` as plain data (None, bool, int, float, str, lists, dicts), or a TypeError
    naming the argument that cannot be written that way."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_plain(v, name) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, f"{name}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name), name) for f in dataclasses.fields(value)}
    if isinstance(value, type):
        return {"class_path": class_path(value)}
    if isinstance(value, functools.partial) and (cls := _partial_class(value)) is not None:
        return {"class_path": class_path(cls), "init_args": to_plain(value.keywords, name)}
    config = getattr(value, "config", None)
    if callable(config):  # objects that describe themselves, e.g. backbones
        return to_plain(config(), name)
    raise TypeError(
        f"{name}: a {type(value).__name__} cannot be saved as a plain hyper-parameter; pass a "
        "class, a functools.partial of a class with keyword arguments, a dataclass or a Backbone"
    )


def plain_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Every hyper-parameter as plain data, with the instantiator that rebuilds the module."""
    plain = {key: to_plain(value, key) for key, value in hparams.items()}
    plain.setdefault("_instantiator", INSTANTIATOR)
    return plain
