"""Several DataModules, one run: each brings its sources, each source labels some tasks.

The children are any :class:`FaceDataModule` (a real dataset's, the synthetic one), each
optionally restricted to some tasks with its own ``tasks`` option. The run's tasks are the
union of theirs, or the run's own ``tasks`` (then every child is narrowed to those it labels).
The run's sources are the children's sources in order; training balances all of them, and
validation and test report metrics per source as well as per task.

One rule for shared settings: the run's ``seed`` and ``age_edges`` replace every child's (so
the same seed gives a dataset the same split alone and in a mix, and one age binning holds), and
so do its ``k_folds``, ``val_fold`` and a ``test_fold`` it sets (one fold of every source in
cross-validation); the children's own ``batch_size``, ``num_workers``, ``balance`` and
``weights`` are not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from mtl.data.datamodules.base import SPLIT_NAMES, FaceDataModule, SourceData
from mtl.data.datasets import TaskView
from mtl.data.faces import FaceSettings
from mtl.data.preprocessing import Preprocessing, describe_input
from mtl.errors import ConfigError
from mtl.tasks import TASK_NAMES, Task, build_tasks


def offered(child: FaceDataModule) -> list[str]:
    """The tasks a child can bring to the run: those it was restricted to, else all it labels."""
    return child.requested_tasks if child.requested_tasks is not None else child.labelled_tasks()


class MultiSourceDataModule(FaceDataModule):
    """Combines the sources of several DataModules (the papers' multi-source mix)."""

    def __init__(
        self,
        datamodules: list[FaceDataModule],
        k_folds: int = 4,
        val_fold: int | None = None,
        test_fold: int | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            datamodules: the DataModules whose sources the run mixes.
            k_folds: folds of every child's k-fold pool (cross-validation).
            val_fold: hold out this fold of every child (validated on; tested on where the
                dataset has no official test split); None: the usual splits.
            test_fold: test on this fold of every child instead (None: each child's own test
                split or fold, such as Adience's official fold 4). With ``val_fold`` too, a run
                trains and validates inside the other folds only: how a schedule is chosen
                from validation curves without looking at the fold it will be tested on.
            **kwargs: :class:`~mtl.data.datamodules.base.FaceDataModule` options (tasks, age
                edges, batch size, seed, balance …); the seed and age edges reach every child.
        """
        if not datamodules:
            raise ValueError("MultiSourceDataModule needs at least one DataModule")
        for name, fold in (("val_fold", val_fold), ("test_fold", test_fold)):
            if fold is not None and not 0 <= fold < k_folds:
                raise ValueError(f"{name} must be in 0..{k_folds - 1}, got {fold}")
        if val_fold is not None and val_fold == test_fold:
            raise ValueError(
                f"val_fold and test_fold are both {val_fold}: a fold is one or the other"
            )
        unable = [type(c).__name__ for c in datamodules if not hasattr(c, "test_fold")]
        if test_fold is not None and unable:
            raise ValueError(f"test_fold: {', '.join(unable)} cannot test on a fold")
        self.datamodules = list(datamodules)
        self.k_folds, self.val_fold, self.test_fold = k_folds, val_fold, test_fold
        super().__init__(**kwargs)
        run = set(self.task_names)
        for child in self.datamodules:
            child.seed = self.seed
            child.k_folds, child.val_fold = k_folds, val_fold  # type: ignore[attr-defined]
            if test_fold is not None:  # else each child keeps its own (Adience: fold 4)
                child.test_fold = test_fold  # type: ignore[attr-defined]
            child.age_edges = list(self.age_edges)
            child.tasks = build_tasks([t for t in offered(child) if t in run], self.age_edges)
            if not child.tasks:
                rank_zero_info(f"{type(child).__name__} labels none of the run's tasks: left out")
        self.datamodules = [child for child in self.datamodules if child.tasks]

    def labelled_tasks(self) -> list[str]:
        owned = {t for child in self.datamodules for t in offered(child)}
        return [t for t in TASK_NAMES if t in owned]

    def select_tasks(self, requested: Sequence[str] | None) -> tuple[Task, ...]:
        """By default the union of the children's tasks: what each was restricted to (an
        opt-in ``age_years`` included), or the default tasks of a child that names none."""
        if requested is None:
            requested = [t for child in self.datamodules for t in child.task_names]
        return super().select_tasks(requested)

    def face_settings(self) -> FaceSettings | None:
        """The crop of the first child that detects faces in photos (what new photos get),
        else the first child's."""
        known = [s for s in (child.face_settings() for child in self.datamodules) if s]
        return next((s for s in known if s.detector != "none"), known[0] if known else None)

    def prepare_data(self) -> None:
        for child in self.datamodules:
            child.prepare_data()

    def _check_same_faces(self) -> None:
        """Every child's faces of one size and colour (known once set up: a prepared cache
        says): batches stack them and one network takes them all, so a difference would
        otherwise fail late, stacking the first mixed batch."""
        shapes = [(type(child).__name__, child.face_settings()) for child in self.datamodules]
        found = [(name, Preprocessing(face).input_shape) for name, face in shapes if face]
        if len({shape for _, shape in found}) > 1:
            listed = ", ".join(f"{name} {describe_input(shape)}" for name, shape in found)
            raise ConfigError(
                f"the sources' faces differ ({listed}): give every source the same face.size "
                "and face.grayscale"
            )

    def load_sources(self, stage: str | None) -> list[SourceData]:
        run = self.task_names
        parts: list[tuple[FaceDataModule, SourceData]] = []
        for child in self.datamodules:
            child.setup(stage)
            parts += [(child, source) for source in child.sources]
        self._check_same_faces()
        names = [source.name for _, source in parts]
        sources = []
        for i, (child, source) in enumerate(parts):
            name = source.name if names.count(source.name) == 1 else f"{source.name}{i}"
            columns = [run.index(t) for t in child.task_names]
            views = (TaskView(getattr(source, s), columns, len(run), i) for s in SPLIT_NAMES)
            parts = {p: TaskView(d, columns, len(run), i) for p, d in source.test_parts.items()}
            sources.append(SourceData(name, list(source.tasks), *views, test_parts=parts,
                                      tested_on=source.tested_on))  # fmt: skip
        return sources
