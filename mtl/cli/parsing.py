"""The argument parsers of every ``mtl`` command: a mistake on the command line or in a config
file is one message naming the key, not the usage text of every option.

jsonargparse (and argparse) answer a bad value by printing the whole usage (60 lines for
``mtl fit``) before the one line that matters. Here the parser raises a :class:`UserError`
instead, which ``mtl`` prints as ``mtl: error: …`` with exit status 2 (``MTL_TRACEBACK=1``
shows the traceback); ``--help`` still lists every option.

Short class names also follow the Lightning idiom: ``--trainer.logger=WandbLogger`` (and
``CSVLogger``) name the project's loggers, which extend Lightning's classes of the same names
(:data:`CLASS_ALIASES`); any other name that two classes share is one line listing both.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any, NoReturn

import jsonargparse
import yaml

from mtl.errors import UserError

CLASS_ALIASES = {
    "trainer.logger": {
        "WandbLogger": "mtl.training.loggers.WandbLogger",
        "CSVLogger": "mtl.training.loggers.CSVLogger",
    },
}
"""Short class names that mean the project's class where Lightning has one of the same name,
by the option they are given to."""

_KEY = re.compile(r'Parser key "([^"]+)":')
_AMBIGUOUS = re.compile(r"Multiple subclasses with name (\w+)\. Give the full class path to "
                        r"avoid ambiguity: ([\w., ]+?)\.?$", re.MULTILINE)  # fmt: skip
_REASON = re.compile(r'Parser key "[^"]+":\n\s*(Expected [^\n]*Got value: [^\n]*)$', re.MULTILINE)
_TYPE = re.compile(r"^\s*- Expected a <class '(\w+)'>$", re.MULTILINE)
_GIVEN = re.compile(r"^\s*Given value: (.*)$", re.MULTILINE)


def concise(message: str) -> str:
    """A parser's error message as one line where its shape is known (the key, dotted through
    nested classes, and what was wrong), else as jsonargparse wrote it; a short class name that
    two classes share says what to write instead."""
    key = ".".join(_KEY.findall(message))
    ambiguous = _AMBIGUOUS.search(message)
    if ambiguous:
        name, paths = ambiguous.group(1), " or ".join(ambiguous.group(2).split(", "))
        return f"{key or 'a class name'}: {name} could be {paths}; write the full class path"
    reasons = _REASON.findall(message)
    if key and len(reasons) == 1 and message.count("class_path") <= 1:
        return f"{key}: {reasons[0]}"
    types, given = _TYPE.findall(message), _GIVEN.search(message)
    if key and given and types and "Union subtypes" in message and "class_path" not in message:
        names = [{"NoneType": "null"}.get(t, t) for t in types]
        return f"{key}: expected {' or '.join(names)}, got {given.group(1)}"
    return message.strip()


class ConciseErrors:
    """Parser mixin: errors raise :class:`UserError` (no usage text) when the parser would exit;
    inside jsonargparse's own attempts (``exit_on_error`` off) they stay its exceptions."""

    exit_on_error: bool
    prog: str

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not getattr(self, "exit_on_error", True):
            base = super().error  # type: ignore[misc]
            base(message) if ex is None else base(message, ex)  # argparse takes no ``ex``
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        raise UserError(f"{concise(message)}\n(`{prog} --help` lists the options)")


class ArgumentParser(ConciseErrors, jsonargparse.ArgumentParser):
    """jsonargparse's parser, with one-message errors."""


class CommandArgumentParser(ConciseErrors, argparse.ArgumentParser):
    """argparse's parser (``mtl cv``, which passes unknown options on), with one-message
    errors."""


def expand_class_aliases(argv: list[str]) -> list[str]:
    """``--trainer.logger=WandbLogger`` with :data:`CLASS_ALIASES` written out as full class
    paths, where a name stands for a class: the whole value (also after ``+=``, or as the next
    argument), a list's items, a ``class_path`` (also ``--trainer.logger.class_path=…``)."""
    out, pending = [], None
    for arg in argv:
        if pending is not None:
            out.append(_expand(arg, pending))
            pending = None
            continue
        key, eq, value = arg.partition("=")
        option = key.removeprefix("--").removesuffix("+").removesuffix(".class_path")
        aliases = CLASS_ALIASES.get(option) if arg.startswith("--") else None
        if aliases and eq:
            arg = f"{key}={_expand(value, aliases)}"
        elif aliases:
            pending = aliases
        out.append(arg)
    return out


def _expand(value: str, aliases: dict[str, str]) -> str:
    try:
        given = yaml.safe_load(value)
    except yaml.YAMLError:
        return value  # jsonargparse will say what is wrong with it
    expanded = _expand_node(given, aliases)
    if expanded == given:
        return value
    return expanded if isinstance(expanded, str) else json.dumps(expanded)


def _expand_node(node: Any, aliases: dict[str, str]) -> Any:
    if isinstance(node, str):
        return aliases.get(node, node)
    if isinstance(node, list):
        return [_expand_node(item, aliases) for item in node]
    if isinstance(node, dict) and isinstance(node.get("class_path"), str):
        return node | {"class_path": aliases.get(node["class_path"], node["class_path"])}
    return node


def normalize_agent_args(argv: list[str]) -> list[str]:
    """Read ``None`` the way a W&B sweep agent writes null (Python's ``str()``). A whole float
    (``32.0``) is left alone: a float option such as ``limit_train_batches`` means something else
    as 32; quantized distributions give integers when their ``q`` is an integer."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        out.append(f"{key}=null" if arg.startswith("--") and eq and value == "None" else arg)
    return out
