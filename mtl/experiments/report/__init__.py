"""``mtl report``: finished runs compared in the papers' table layout
(:mod:`mtl.experiments.report.table`)."""
