"""Tiny datasets written in each real on-disk format, bad records included.

Every good image is a flat grey square whose value encodes its item, so a test can check that
each cached face carries its own label (nothing shifted). ``EXPECTED`` lists, per source, the
labels the good items must load with and the reasons the bad ones must be reported with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

SIDE = 32


def grey_jpeg(
    path: Path, value: int, size: tuple[int, int] = (SIDE, SIDE), mode: str = "RGB"
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = value if mode == "L" else (value, value, value)
    Image.new(mode, size, fill).save(path, quality=100)


def truncated_jpeg(path: Path) -> None:
    grey_jpeg(path, 128, (64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def garbage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image")


def write_genki(root: Path) -> dict:
    """8 labelled lines; files 1-4 good, 5 truncated, 6 malformed line, 7 out of range,
    8 non-numeric, 9 labelled but missing, 10 present without a label line."""
    files = root / "files"
    smiles = {1: 1, 2: 0, 3: 1, 4: 0}
    lines = [f"{smiles[n]} 0.1 -0.2 0.05" for n in range(1, 5)]
    lines += ["1 0.0 0.0 0.0", "1 0.2", "2 0 0 0", "x 0 0 0", "0 0 0 0"]
    for n in smiles:
        grey_jpeg(files / f"file{n:04d}.jpg", 20 * n, (40, 36))
    truncated_jpeg(files / "file0005.jpg")
    for n in (6, 7, 8, 10):
        grey_jpeg(files / f"file{n:04d}.jpg", 200)
    root.joinpath("labels.txt").write_text("\n".join(lines))  # no trailing newline, like GENKI
    return {
        "good": {f"file{n:04d}.jpg": ({"smile": s}, 20 * n) for n, s in smiles.items()},
        "bad": {
            "file0005.jpg": "unreadable image",
            "file0006.jpg": "malformed label line",
            "file0007.jpg": "label out of range",
            "file0008.jpg": "malformed label",
            "file0009.jpg": "missing file",
            "file0010.jpg": "no label line",
        },
    }


def write_genki_values(root: Path, values: list[int]) -> None:
    """A clean GENKI-4K layout: one grey photo per value, smiles alternating 0, 1, 0 …"""
    for n, v in enumerate(values, start=1):
        grey_jpeg(root / "files" / f"file{n:04d}.jpg", v)
    (root / "labels.txt").write_text("\n".join(f"{n % 2} 0 0 0" for n in range(len(values))))


def _pixels(value: int, n: int = 48 * 48) -> str:
    return " ".join([str(value)] * n)


def write_fer_csv(root: Path) -> dict:
    rows = [
        "emotion,pixels,Usage",
        f"3,{_pixels(30)},Training",
        f"0,{_pixels(60)},PublicTest",
        f"6,{_pixels(90)},PrivateTest",
        f"4,{_pixels(120, 2000)},Training",  # wrong pixel count
        f"4,{_pixels(120)[:-3]} ab,Training",  # non-numeric pixel
        f"9,{_pixels(150)},Training",  # label out of range
        f"2,{_pixels(180)},Validation",  # unknown Usage
        "5,Training",  # short row
    ]
    root.mkdir(parents=True, exist_ok=True)
    root.joinpath("fer2013.csv").write_text("\n".join(rows) + "\n")
    return {
        "good": {
            "row00001": ({"emotion": 3}, 30, "train"),
            "row00002": ({"emotion": 0}, 60, "val"),
            "row00003": ({"emotion": 6}, 90, "test"),
        },
        "bad": {
            "row00004": "malformed csv row",
            "row00005": "malformed csv row",
            "row00006": "label out of range",
            "row00007": "malformed csv row",
            "row00008": "malformed csv row",
        },
    }


def write_fer_folders(root: Path) -> dict:
    good = {
        "train/happy/Training_1.jpg": ({"emotion": 3}, 30, "train"),
        "train/surprise/Training_1.jpg": ({"emotion": 5}, 50, "train"),  # same id, other class
        "train/angry/Training_2.jpg": ({"emotion": 0}, 70, "train"),
        "train/fear/Training_8.jpg": ({"emotion": 2}, 130, "train"),  # 4 folds: 4 faces
        "test/neutral/PublicTest_3.jpg": ({"emotion": 6}, 90, "val"),
        "test/disgust/PrivateTest_4.jpg": ({"emotion": 1}, 110, "test"),
    }
    for rel, (_, value, _) in good.items():
        grey_jpeg(root / rel, value, (48, 48), mode="L")
    grey_jpeg(root / "train/joy/Training_5.jpg", 10, mode="L")
    grey_jpeg(root / "train/sad/img_6.jpg", 10, mode="L")
    garbage(root / "train/fear/Training_7.jpg")
    return {
        "good": good,
        "bad": {
            "train/joy/Training_5.jpg": "unknown class folder",
            "train/sad/img_6.jpg": "unparsable file name",
            "train/fear/Training_7.jpg": "unreadable image",
        },
    }


def write_utkface(root: Path) -> dict:
    folder = root / "UTKFace"
    good = {
        "25_0_0_20170116174525125.jpg.chip.jpg": ({"age": 25.0, "gender": 1, "race": 0}, 40),
        "3_1_2_20170109142408075.jpg.chip.jpg": ({"age": 3.0, "gender": 0, "race": 2}, 80),
        "61_1_20170109150557335.jpg.chip.jpg": ({"age": 61.0, "gender": 0}, 120),  # no race
        "33_1_9_20170109150557335.jpg.chip.jpg": ({"age": 33.0, "gender": 0}, 140),  # race 9
        "40_5_0_20170109150557335.jpg.chip.jpg": ({"age": 40.0, "race": 0}, 160),  # gender 5
        "200_0_1_20170109150557335.jpg.chip.jpg": ({"gender": 1, "race": 1}, 200),  # age 200
    }
    for k in range(15):  # enough faces for every split of a seeded 80/10/10 split
        age, utk_gender = 5 + 6 * k, k % 2
        name = f"{age}_{utk_gender}_{k % 5}_2017011{k:02d}.jpg.chip.jpg"
        good[name] = ({"age": float(age), "gender": 1 - utk_gender, "race": k % 5}, 0)
    for name, (_, value) in good.items():
        grey_jpeg(folder / name, value or 90, (50, 50))
    for name in ("abc_1_0_x.jpg.chip.jpg", "25_1.jpg.chip.jpg", "300_7_0_2017.jpg.chip.jpg"):
        grey_jpeg(folder / name, 10)
    return {
        "good": good,
        "bad": {
            "abc_1_0_x.jpg.chip.jpg": "unparsable file name",
            "25_1.jpg.chip.jpg": "unparsable file name",
            "300_7_0_2017.jpg.chip.jpg": "no usable label",
        },
        "dropped": {
            "40_5_0_20170109150557335.jpg.chip.jpg": "label out of range",
            "200_0_1_20170109150557335.jpg.chip.jpg": "impossible age",
        },
        "notes": [
            "1 file names lack the race field (age/gender read)",
            "1 file names have a race outside 0-4 (race unknown)",
        ],
    }


def datenum(year: int, month: int, day: int) -> float:
    """MATLAB datenum of a date."""
    from datetime import date

    return float(date(year, month, day).toordinal() + 366)


def write_imdb_wiki(root: Path, key: str = "wiki") -> dict:
    nan, inf = float("nan"), float("inf")
    rows = [  # path, dob, photo_taken, gender, face_score, second_face_score
        ("01/a_good.jpg", datenum(1980, 3, 1), 2010, 1.0, 3.5, nan),  # 30, male
        ("02/b_good.jpg", datenum(1990, 9, 1), 2010, 0.0, 2.0, nan),  # 19 (July rule), female
        ("03/c_noface.jpg", datenum(1980, 1, 1), 2010, 1.0, -inf, nan),
        ("04/d_second.jpg", datenum(1980, 1, 1), 2010, 1.0, 3.0, 1.5),
        ("05/e_nangender.jpg", datenum(1980, 1, 1), 2010, nan, 3.0, nan),
        ("06/f_lowscore.jpg", datenum(1980, 1, 1), 2010, 0.0, 0.5, nan),
        ("07/g_unborn.jpg", datenum(2015, 1, 1), 2010, 0.0, 3.0, nan),  # photo before birth
    ]
    for i, (rel, *_rest) in enumerate(rows):
        grey_jpeg(root / rel, 30 + 20 * i, (60, 60))
    struct = {
        "full_path": np.array([r[0] for r in rows], dtype=object),
        "dob": np.array([r[1] for r in rows]),
        "photo_taken": np.array([r[2] for r in rows]),
        "gender": np.array([r[3] for r in rows]),
        "face_score": np.array([r[4] for r in rows]),
        "second_face_score": np.array([r[5] for r in rows]),
        "face_location": _cells([np.array([[10.0, 10.0, 50.0, 50.0]]) for _ in rows]),
        "name": np.array([f"Person {i}" for i in range(len(rows))], dtype=object),
    }
    if key == "imdb":  # IMDB also numbers the celebrities (WIKI has names only)
        struct["celeb_id"] = np.arange(1, len(rows) + 1)
    scipy.io.savemat(root / f"{key}.mat", {key: struct})
    return {
        "good": {
            "01/a_good.jpg": ({"age": 30.0, "gender": 1}, 30),
            "02/b_good.jpg": ({"age": 19.0, "gender": 0}, 50),
            "07/g_unborn.jpg": ({"gender": 0}, 150),
        },
        "bad": {
            "03/c_noface.jpg": "no face (face_score -inf)",
            "04/d_second.jpg": "filtered: second face",
            "05/e_nangender.jpg": "unknown gender (NaN)",
            "06/f_lowscore.jpg": "filtered: face score below min",
        },
        "dropped": {"07/g_unborn.jpg": "impossible age"},
    }


def _cells(values: list) -> np.ndarray:
    """A 1-D object array (a MATLAB cell array once saved) of the given arrays."""
    cells = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        cells[i] = v
    return cells


ADIENCE_HEADER = (
    "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\t"
    "fiducial_yaw_angle\tfiducial_score"
)


def write_adience(root: Path) -> dict:
    rows = {
        0: [
            "u1\ta.jpg\t1\t(25, 32)\tf\t0\t0\t10\t10\t0\t0\t50",
            "u1\tb.jpg\t2\t35\tm\t0\t0\t10\t10\t0\t0\t50",
            "u2\tc.jpg\t3\tNone\tm\t0\t0\t10\t10\t0\t0\t50",
            "u2\td.jpg\t4\t(8, 12)\tu\t0\t0\t10\t10\t0\t0\t50",
            "u2\te.jpg\t5\tNone\t\t0\t0\t10\t10\t0\t0\t50",  # no usable label
            "u3\t9509",
        ],  # malformed (cut short)
        1: [
            "u4\tf.jpg\t6\t(60, 100)\tf\t626\t1276",  # truncated after the labels
            "u4\tg.jpg\t7\t(x, 3\tm\t0\t0\t10\t10\t0\t0\t50",
        ],  # garbled age, gender kept
    }
    good = {
        "aligned/u1/landmark_aligned_face.1.a.jpg": ({"age": 28.5, "gender": 0}, 0),
        "aligned/u1/landmark_aligned_face.2.b.jpg": ({"age": 35.0, "gender": 1}, 0),
        "aligned/u2/landmark_aligned_face.3.c.jpg": ({"gender": 1}, 0),
        "aligned/u2/landmark_aligned_face.4.d.jpg": ({"age": 10.0}, 0),
        "aligned/u4/landmark_aligned_face.6.f.jpg": ({"age": 80.0, "gender": 0}, 1),
        "aligned/u4/landmark_aligned_face.7.g.jpg": ({"gender": 1}, 1),
    }
    root.mkdir(parents=True, exist_ok=True)
    for fold, lines in rows.items():
        text = "\r\n".join([ADIENCE_HEADER, *lines]) + "\r\n"
        root.joinpath(f"fold_{fold}_data.txt").write_bytes(text.encode())
    for k in range(2, 5):
        root.joinpath(f"fold_{k}_data.txt").write_bytes((ADIENCE_HEADER + "\r\n").encode())
    for i, rel in enumerate(good):
        grey_jpeg(root / rel, 40 + 30 * i)
    return {
        "good": {
            rel: (labels, 40 + 30 * i, fold) for i, (rel, (labels, fold)) in enumerate(good.items())
        },
        "bad": {
            "aligned/u2/landmark_aligned_face.5.e.jpg": "no usable label",
            "fold_0:line7": "malformed label line",
        },
        "dropped": {
            "aligned/u4/landmark_aligned_face.6.f.jpg": "truncated line (labels intact)",
            "aligned/u4/landmark_aligned_face.7.g.jpg": "malformed label",
        },
    }


def write_celeba(root: Path) -> dict:
    names = [f"A{i}" for i in range(38)]
    names[3], names[20] = "Smiling", "Male"

    def row(name: str, smiling: int, male: int) -> str:
        values = ["-1"] * 38
        values[3], values[20] = str(smiling), str(male)
        return name + " " + "  ".join(values)

    lines = [
        "100",
        " ".join(names),
        row("000001.jpg", 1, -1),
        row("000002.jpg", -1, 1),
        row("000003.jpg", 1, 1),
        "000004.jpg 1 -1 1",
        row("000005.jpg", 1, 1).replace("-1", "0", 1),
    ]
    (root / "Anno").mkdir(parents=True, exist_ok=True)
    (root / "Anno/list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "Eval").mkdir()
    (root / "Eval/list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 1\n000004.jpg 0\n000005.jpg 2\n"
    )
    for i in range(1, 6):
        grey_jpeg(root / "img_align_celeba" / f"{i:06d}.jpg", 30 * i, (36, 44))
    return {
        "good": {
            "000001.jpg": ({"smile": 1, "gender": 0}, 30, "train"),
            "000002.jpg": ({"smile": 0, "gender": 1}, 60, "val"),
        },
        "bad": {
            "000003.jpg": "no partition entry",
            "000004.jpg": "malformed label line",
            "000005.jpg": "malformed label line",
        },
        "notes": ["header says '100' images but the file has 5 rows"],
    }
