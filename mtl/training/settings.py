"""What sets a run apart as an experiment: its resolved config without the keys that only tell
repetitions, machines or ways of watching apart (:data:`IGNORED_KEYS`).

``mtl report`` groups runs of one identity into rows by these items (a row per combination of
the keys that differ), and a W&B run's group carries their digest (:func:`settings_digest`), so
a dashboard that groups by it draws the runs ``mtl report`` would put in one row as one line or
bar: runs of other lengths, learning rates or ensemble sizes are not averaged together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

IGNORED_KEYS = {
    "seed_everything", "seed", "val_fold", "root", "cache_dir", "default_root_dir", "logger",
    "callbacks", "ckpt_path", "num_workers", "prepare_workers", "prepare_device", "tasks",
    "enable_progress_bar", "enable_model_summary", "log_every_n_steps", "test_after_fit",
    "ensemble", "config", "profiler", "device_data", "foreach", "fused", "channels_last",
    "verbose",
}  # fmt: skip
"""Config keys that tell repetitions or machines apart, or how a run was watched or fed, not
experiments (``device_data``: where the same augmentation is computed; runs before it became
``null`` by default saved ``false``; ``foreach`` and ``fused``: how the optimiser's update is
computed, one call per operation or one kernel, the same update up to rounding, bitwise with
``foreach`` for ``MomentumSGD``, tested; ``channels_last``: the memory layout of the same
convolutions, saved ``null`` by a fit and resolved by a test from its checkpoint). Like
``fused``, a layout changes a seeded run's rounding and so its trajectory, not the experiment:
two runs that differ only there are one experiment's repetitions. How often a run validated is
left out where it changes nothing reported (:func:`validation_leaves_training_alone`)."""

ADDED_OPTIONS = {"model.test_time_flip": "False"}
"""Options added after runs were saved, with the value those runs ran with (the option's
default): a run whose config lacks one is read with it, so it is not told apart from a new run
that kept the default."""


def config_items(config: object, prefix: str = "") -> dict[str, str]:
    """A resolved config as ``dotted.key -> value`` (``init_args`` dropped, a class path
    shortened to the class name, lists indexed), without :data:`IGNORED_KEYS`."""
    if isinstance(config, list):
        config = {str(i): value for i, value in enumerate(config)}
    if not isinstance(config, dict):
        return {prefix: str(config)}
    items: dict[str, str] = {}
    for key, value in config.items():
        if key in IGNORED_KEYS:
            continue
        if key == "class_path":
            items[prefix] = str(value).rsplit(".", 1)[-1]
        elif key == "init_args":
            items |= config_items(value, prefix)
        else:
            items |= config_items(value, f"{prefix}.{key}" if prefix else str(key))
    return items


VALIDATION_KEY = "trainer.check_val_every_n_epoch"


def validation_leaves_training_alone(items: dict[str, str], raw: dict) -> bool:
    """Whether how often a run validated changes nothing it reports: validation draws no random
    numbers (every loader has its own generator), but ``model.precise_bn`` rewrites batch-norm
    statistics at each validation, a plateau scheduler or early stopping act on validations,
    and an unvalidated last epoch leaves other statistics to the test."""
    every = items.get(VALIDATION_KEY, "1")
    epochs = items.get("trainer.max_epochs", "None")
    callbacks = str((raw.get("trainer") or {}).get("callbacks") or "")
    return (
        items.get("model.precise_bn", "0") in ("0", "None")
        and items.get("model.lr_scheduler") != "ReduceLROnPlateau"
        and "EarlyStopping" not in callbacks
        and every.isdigit()
        and epochs.isdigit()
        and int(epochs) % int(every) == 0
    )


ANY = "any"
"""How often a run validated, where that changes nothing it reports: the same for every such run,
and left out of labels."""


def settings_items(config: Mapping) -> dict[str, str]:
    """A resolved config (as ``config.yaml`` saves it) as :func:`config_items`, with the
    :data:`ADDED_OPTIONS` it lacks, and how often it validated read as :data:`ANY` where that
    changes nothing it reports (:func:`validation_leaves_training_alone`)."""
    raw = dict(config)
    items = ADDED_OPTIONS | config_items(raw)
    if validation_leaves_training_alone(items, raw):
        items[VALIDATION_KEY] = ANY
    return items


def settings_digest(config: Mapping) -> str:
    """A short name of a run's :func:`settings_items` and its checkpoint ensemble's size (which
    :data:`IGNORED_KEYS` leaves out, since the report tells ensembles apart by the members they
    averaged, but a dashboard's test-accuracy bars show the ensemble beside the run): equal for
    the folds and seeds of one experiment, different for any other setting.

    A key whose value is ``None`` is left out, as the report reads a key a config lacks as
    ``None``: a fold or seed run after an upgrade that added an option (saved ``null``) stays in
    its experiment's group. Changing what goes into the digest regroups every dashboard, so
    ``tests/test_settings.py`` pins one value."""
    items = {k: v for k, v in settings_items(config).items() if v != "None"}
    items["ensemble"] = str(config.get("ensemble", 0))
    text = json.dumps(sorted(items.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:8]
