"""Every reader against a tiny fixture in its real format, bad records included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from mtl.data.cache import FaceCache
from mtl.data.faces import FaceSettings
from mtl.data.prepare import prepare
from mtl.data.readers import (
    AdienceReader,
    CelebAReader,
    Fer2013Reader,
    Genki4kReader,
    ImdbReader,
    Reader,
    UTKFaceReader,
    WikiReader,
)
from mtl.data.readers.imdb_wiki import age_at_photo, datenum_to_date
from tests import raw_fixtures as F

DECODE_REASONS = {"unreadable image", "missing file"}
"""What only decoding an image finds: a reader may keep such an item; ``prepare`` skips it."""

CASES: dict[str, tuple[Callable[[Path], dict], Callable[[Path], Reader]]] = {
    "genki4k": (F.write_genki, Genki4kReader),
    "fer2013-csv": (F.write_fer_csv, lambda r: Fer2013Reader(r, layout="csv")),
    "fer2013-folders": (F.write_fer_folders, Fer2013Reader),
    "utkface": (F.write_utkface, UTKFaceReader),
    "wiki": (F.write_imdb_wiki, WikiReader),
    "adience": (F.write_adience, AdienceReader),
    "celeba": (F.write_celeba, CelebAReader),
}


@pytest.fixture(params=sorted(CASES))
def case(request, tmp_path) -> tuple[Reader, dict]:
    write, make = CASES[request.param]
    expected = write(tmp_path / "raw")
    return make(tmp_path / "raw"), expected


def test_scan_reads_labels_and_reports_bad_records(case):
    reader, expected = case
    scan = reader.scan()
    labels = {item.id: item.labels for item in scan.items}
    for item_id, (want, *_rest) in expected["good"].items():
        assert labels[item_id] == want, item_id
    reasons = {issue.item: issue.reason for issue in scan.rejected}
    dropped = {issue.item: issue.reason for issue in scan.dropped}
    for item_id, reason in expected["bad"].items():
        if reason in DECODE_REASONS and item_id in labels:  # kept now, rejected by prepare
            continue
        assert reasons.get(item_id) == reason, item_id
    for item_id, reason in expected.get("dropped", {}).items():
        assert reason in [i.reason for i in scan.dropped if i.item == item_id], (item_id, dropped)
    assert set(expected["good"]).isdisjoint(reasons)
    for note in expected.get("notes", []):
        assert note in scan.notes


def test_prepare_keeps_good_items_with_their_own_labels(case, tmp_path):
    reader, expected = case
    cache = prepare(
        reader, tmp_path / "cache", FaceSettings(detector="none"), workers=0, progress=False
    )
    table = cache.table
    row_of = {item_id: i for i, item_id in enumerate(table["id"])}
    assert set(row_of) == set(expected["good"])
    for item_id, (labels, value, *official) in expected["good"].items():
        i = row_of[item_id]
        for name in ("smile", "emotion", "gender"):
            assert table[name][i] == labels.get(name, -1), (item_id, name)
        assert (
            np.isnan(table["age"][i]) if "age" not in labels else table["age"][i] == labels["age"]
        )
        if value:  # the image is this item's own (nothing shifted)
            centre = cache.images[i][cache.images.shape[1] // 2, cache.images.shape[2] // 2]
            assert abs(int(centre) - value) <= 3, item_id
        if official and isinstance(official[0], str):
            assert table["split"][i] == official[0]
    status = _items_csv(cache)
    for item_id, reason in expected["bad"].items():
        assert status[item_id] == ("skipped", reason), item_id
    skipped = cache.manifest["counts"]["skipped"]
    assert sum(skipped.values()) == len(expected["bad"])
    assert cache.manifest["counts"]["kept"] == len(expected["good"])


def _items_csv(cache: FaceCache) -> dict[str, tuple[str, str]]:
    import csv

    with (cache.path / "items.csv").open() as f:
        return {r["id"]: (r["status"], r["reason"]) for r in csv.DictReader(f)}


def test_fer_folders_map_classes_by_name_not_sorted_position(tmp_path):
    F.write_fer_folders(tmp_path)
    labels = {i.id: i.labels["emotion"] for i in Fer2013Reader(tmp_path).scan().items}
    assert labels["train/happy/Training_1.jpg"] == 3  # 'happy' is 3rd alphabetically, csv index 3
    assert labels["test/neutral/PublicTest_3.jpg"] == 6  # alphabetically 4th, csv index 6


def test_adience_folds_are_official(tmp_path):
    expected = F.write_adience(tmp_path)
    folds = {i.id: i.fold for i in AdienceReader(tmp_path).scan().items}
    for item_id, (_, _, fold) in expected["good"].items():
        assert folds[item_id] == fold


def test_imdb_wiki_dates_and_filters(tmp_path):
    assert datenum_to_date(F.datenum(1980, 3, 1)).isoformat() == "1980-03-01"
    assert age_at_photo(F.datenum(1990, 6, 30), 2010) == 20  # birthday before 1 July
    assert age_at_photo(F.datenum(1990, 7, 2), 2010) == 19
    F.write_imdb_wiki(tmp_path)
    relaxed = WikiReader(
        tmp_path, require_single_face=False, require_gender=False, min_face_score=0
    )
    scan = relaxed.scan()
    ids = {i.id for i in scan.items}
    assert {"04/d_second.jpg", "05/e_nangender.jpg", "06/f_lowscore.jpg"} <= ids
    assert "gender" not in next(i for i in scan.items if i.id == "05/e_nangender.jpg").labels
    assert "03/c_noface.jpg" not in ids  # -inf face score is never a usable face


def test_missing_root_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.txt"):
        Genki4kReader(tmp_path).scan()
    with pytest.raises(FileNotFoundError, match="fer2013"):
        Fer2013Reader(tmp_path).scan()


def resave_like_a_spreadsheet(root: Path) -> list[Path]:
    """Re-save every text label file under ``root`` as Excel or Windows would: a UTF-8
    byte-order mark, CRLF line ends and blank lines at the end."""
    files = sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".csv"))
    for path in files:
        lines = path.read_bytes().decode("utf-8").splitlines()
        path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n\r\n\r\n").encode("utf-8"))
    return files


def summary(scan) -> tuple:
    items = [(i.id, i.labels, i.split, i.fold) for i in scan.items]
    return items, [str(i) for i in scan.rejected], [str(i) for i in scan.dropped], scan.notes


@pytest.mark.parametrize("name", ["genki4k", "fer2013-csv", "adience", "celeba"])
def test_a_resaved_label_file_reads_exactly_like_the_original(name, tmp_path):
    write, make = CASES[name]
    write(tmp_path / "plain")
    write(tmp_path / "resaved")
    assert resave_like_a_spreadsheet(tmp_path / "resaved"), "the fixture has no label file"
    assert summary(make(tmp_path / "resaved").scan()) == summary(make(tmp_path / "plain").scan())


def test_imdb_and_wiki_items_name_their_person(tmp_path):
    F.write_imdb_wiki(tmp_path / "wiki", "wiki")
    F.write_imdb_wiki(tmp_path / "imdb", "imdb")
    wiki = {i.id: i.group for i in WikiReader(tmp_path / "wiki").scan().items}
    imdb = {i.id: i.group for i in ImdbReader(tmp_path / "imdb").scan().items}
    assert wiki == {"01/a_good.jpg": "Person 0", "02/b_good.jpg": "Person 1",
                    "07/g_unborn.jpg": "Person 6"}  # fmt: skip
    assert imdb == {"01/a_good.jpg": "1", "02/b_good.jpg": "2", "07/g_unborn.jpg": "7"}
    assert (WikiReader.group_field, ImdbReader.group_field) == ("name", "celeb_id")
    # a copy without the field still reads, and says that splits cannot group by person
    mat = tmp_path / "imdb" / "imdb.mat"
    struct = scipy.io.loadmat(mat, simplify_cells=True)["imdb"]
    del struct["celeb_id"]
    scipy.io.savemat(mat, {"imdb": struct})
    scan = ImdbReader(tmp_path / "imdb").scan()
    assert all(i.group is None for i in scan.items) and len(scan.items) == 3
    assert any("no 'celeb_id' field" in note for note in scan.notes)
