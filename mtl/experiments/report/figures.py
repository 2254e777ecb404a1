"""What every report plot shares: a headless pyplot, legend labels that fit, distinct colours,
and a figure saved whole."""

from __future__ import annotations

from pathlib import Path


def pyplot():  # noqa: ANN201 (the matplotlib.pyplot module)
    """matplotlib's pyplot on the Agg backend (no display), imported when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


LEGEND_WIDTH = 72
"""Characters per legend line: a row's label (every config key that sets it apart) can run to
200, which squeezed the axes to a sliver or ran off the figure."""


def legend_label(label: str, width: int = LEGEND_WIDTH) -> str:
    """``label`` broken into lines of at most ``width`` characters at its `` · `` separators (a
    part longer than ``width`` keeps a line of its own)."""
    lines: list[str] = []
    for part in label.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def colour(i: int, n: int) -> tuple:
    """The ``i``-th of ``n`` series' colour: matplotlib's 10 colours, or 20 where more series
    than 10 would otherwise share one (beyond 20 they repeat)."""
    from matplotlib import colormaps

    colours = 10 if n <= 10 else 20
    return colormaps[f"tab{colours}"](i % colours)


def save(fig, path: Path) -> None:  # noqa: ANN001 (a matplotlib Figure)
    """Write ``fig`` grown to hold everything drawn outside its axes (the legend beside or
    below), rather than shrinking the axes to make room or cutting the legend off."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
