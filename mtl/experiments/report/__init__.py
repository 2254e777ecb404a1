"""``mtl report``: finished runs compared in the papers' table layout
(:mod:`mtl.experiments.report.table`), multi-task against single-task with paired differences
(:mod:`mtl.experiments.report.comparison`)."""
