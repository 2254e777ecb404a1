"""``docs/results.md`` is what its own command makes of the committed run files."""

import re
import shlex
import shutil
from pathlib import Path

from mtl.cli import main
from mtl.experiments.report.render import BEGIN, END
from mtl.losses import WEIGHTINGS

from .conftest import REPO

DOC = REPO / "docs" / "results.md"


def the_command(text: str) -> list[str]:
    """The ``mtl report`` command written at the top of the document (one line)."""
    line = next(line.strip() for line in text.splitlines() if line.startswith("mtl report "))
    return shlex.split(line)[1:]


def block(text: str) -> str:
    return text[text.index(BEGIN) : text.index(END)]


def test_results_md_is_regenerated_from_the_committed_runs(tmp_path, monkeypatch):
    committed = DOC.read_text()
    argv = the_command(committed)
    copy = tmp_path / "docs"
    shutil.copytree(REPO / "docs", copy)
    monkeypatch.chdir(tmp_path)
    main(argv)
    regenerated = (copy / "results.md").read_text()
    assert block(regenerated) == block(committed)  # the table as committed, nothing stale
    assert regenerated == committed  # and the prose around it untouched
    table = block(regenerated)
    rows: dict[str, str] = {}  # the first table's rows (the "how each row ran" table follows)
    for line in table.splitlines():
        rows.setdefault(line.split(" | ")[0].strip("| "), line)
    cosine = "model.lr_scheduler=CosineAnnealingLR(T_max=30, eta_min=0.0)"
    single = f"single-task smile · data.batch_size=64 · model.init_std=None · {cosine}"
    plain = "model.test_time_flip=False · trainer.max_epochs=30 · trainer.precision=bf16-mixed"
    assert "(12) |" in rows[f"{single} · {plain}"]  # four folds, three seeds (seed_everything)
    assert "(8) |" in rows[f"{single} · {plain.replace('=False', '=True')}"]  # seeds 1-2, flip
    papers = "model.lr_scheduler=ExponentialDecay(decay_steps=10000, rate=0.8, staircase=False)"
    protocol = f"single-task smile · data.batch_size=128 · model.init_std=auto · {papers}"
    for flip in ("False", "True"):  # the flip row: the same models tested again
        tested = (
            f"model.test_time_flip={flip} · trainer.max_epochs=250 · trainer.precision=bf16-mixed"
        )
        assert "(12) |" in rows[f"{protocol} · {tested}"]  # four folds, three seeds
        assert "(12) |" in rows[f"{protocol} · {tested} · + ensemble of 5"]
        assert "(4) |" in rows[f"{protocol} · {tested} · + ensemble of 10"]  # the third seed's
    assert "left out" not in table  # a checkpoint re-tested with 5 members counts once
    multi = (
        "multi-task smile+emotion+gender+age · model.lr_scheduler.T_max={0} · "
        "model.test_time_flip={1} · trainer.max_epochs={0}"
    )
    assert "(12) |" in rows[multi.format(30, "False")]  # four folds, three seeds; paired with them
    assert "(8) |" in rows[multi.format(30, "True")]  # seeds 1 and 2's models, tested with flip
    for flip in ("False", "True"):  # the length chosen on validation: four folds, one seed
        assert "(4) |" in rows[multi.format(60, flip)]
        assert "(4) |" in rows[multi.format(60, flip) + " · + ensemble of 5"]
    # its smile pairs with the 30-epoch single-task row (--baseline_ignoring), and says so
    assert f"{multi.format(60, 'False')}: smile Δ taken against {single} · {plain} (" in table
    # UTKFace's baselines: four folds, one seed, both ways; gender at 30 epochs, age at 30 and 60
    for flip in ("False", "True"):
        assert "(4) |" in rows[f"single-task gender · model.test_time_flip={flip}"]
        for length in (30, 60):
            age = (f"single-task age · model.lr_scheduler.T_max={length} · "
                   f"model.test_time_flip={flip} · trainer.max_epochs={length}")  # fmt: skip
            assert "(4) |" in rows[age]
    for task in ("gender", "age"):  # the 30-epoch multi-task row pairs with them exactly
        assert f"{multi.format(30, 'False')}: {task} Δ taken against" not in table
    # every age Δ pairs exactly (the 60-epoch rows with the 60-epoch age rows); the 60-epoch
    # rows' gender pairs loosely (‡) with the 30-epoch gender row
    assert "age Δ taken against" not in table
    against = ("single-task gender · model.test_time_flip=False (model.lr_scheduler.T_max: "
               "multi-task 60, single-task 30; trainer.max_epochs: multi-task 60")  # fmt: skip
    assert f"{multi.format(60, 'False')}: gender Δ taken against {against}" in table
    delta = rows["Δ vs single-task [95 % CI] (pairs)"].split(" | ")  # the 30-epoch row's
    assert "(4)" in delta[1] and "(4)" in delta[4]  # age, gender: paired over the four folds
    emotion = "single-task emotion · model.lr_scheduler.T_max={} · model.test_time_flip={} · "
    for length, flip in (("30", "False"), ("60", "False"), ("60", "True")):  # official split
        assert "(1) |" in rows[emotion.format(length, flip) + f"trainer.max_epochs={length}"]
    assert "Δ vs single-task [95 % CI] (pairs)" in table
    ran = table[table.index("### How each row ran") :].split("\n\n")[1].splitlines()[2:]
    assert ran and all(not row.endswith("| – |") for row in ran)  # re-tests name their fit's too
    assert "paper: Sang & Cuong" in table
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", table)
    plots = {"bars.png", "curves.png", "deltas.png", "subgroups.png"}
    assert {Path(link).name for link in links} == plots
    assert "| utkface | gender | gender x age | female, 0-15 |" in table  # per subgroup
    for link in links:  # every plot is written inside docs/, beside the committed files
        plot = (copy / link).resolve()
        assert plot.is_relative_to(copy.resolve()) and plot.stat().st_size > 0
        assert (REPO / "docs" / link).is_file()  # and committed


def test_weightings_md_is_regenerated_from_the_committed_runs(tmp_path, monkeypatch):
    doc = REPO / "docs" / "weightings.md"
    committed = doc.read_text()
    copy = tmp_path / "docs"
    shutil.copytree(REPO / "docs", copy)
    monkeypatch.chdir(tmp_path)
    main(the_command(committed))
    regenerated = (copy / "weightings.md").read_text()
    assert regenerated == committed
    rows = [line for line in block(regenerated).splitlines() if line.startswith("| multi-task")]
    weightings = {line.split(" · ")[1].split(" |")[0] for line in rows}
    assert weightings == {w.__name__ for w in WEIGHTINGS.values()}  # every registered one
