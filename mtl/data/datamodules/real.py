"""One LightningDataModule per real dataset (select with ``data.class_path`` in a config).

Each is a :class:`~mtl.data.datamodules.cached.CachedDataModule` naming its dataset's reader,
plus the reader's own options. Splits: FER-2013 and CelebA use their official ones, Adience its five
folds (``test_fold``), the others a seeded stratified split (GENKI-4K 3,000 / 1,000 as in the
papers; UTKFace, IMDB and WIKI 80 / 10 / 10).
"""

from __future__ import annotations

from typing import Literal

from mtl.data.datamodules.cached import CachedDataModule
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


class Genki4kDataModule(CachedDataModule):
    """GENKI-4K smile; 3,000 train / 1,000 test, stratified by class."""

    reader_class = Genki4kReader
    split_fractions = (0.75, 0.0, 0.25)


class Fer2013DataModule(CachedDataModule):
    """FER-2013 emotion, from ``fer2013.csv`` or the image folders; Usage splits kept
    (PublicTest validates; a test reports PublicTest and PrivateTest separately)."""

    reader_class = Fer2013Reader
    test_parts = {"public": "val", "private": "test"}

    def __init__(self, layout: Literal["auto", "csv", "folders"] = "auto", **kwargs) -> None:
        super().__init__(**kwargs)
        self.layout = layout

    def make_reader(self) -> Reader:
        return Fer2013Reader(root=self.root, layout=self.layout)


class UTKFaceDataModule(CachedDataModule):
    """UTKFace gender and age group."""

    reader_class = UTKFaceReader


class _ImdbWikiDataModule(CachedDataModule):
    def __init__(
        self,
        min_face_score: float = 1.0,
        require_single_face: bool = True,
        min_age: float = 0.0,
        max_age: float = 100.0,
        require_gender: bool = True,
        **kwargs,
    ) -> None:
        """
        Args:
            min_face_score: drop images whose detector score is below this.
            require_single_face: drop images with a second face.
            min_age: drop images whose computed age is below this (years).
            max_age: drop images whose computed age is above this (years).
            require_gender: drop images of unknown gender (else keep them for age only).
        """
        super().__init__(**kwargs)
        self.filters = {
            "min_face_score": min_face_score,
            "require_single_face": require_single_face,
            "min_age": min_age,
            "max_age": max_age,
            "require_gender": require_gender,
        }

    def make_reader(self) -> Reader:
        return self.reader_class(root=self.root, **self.filters)


class ImdbDataModule(_ImdbWikiDataModule):
    """IMDB (IMDB-WIKI) gender and age group, with the usual cleaning filters."""

    reader_class = ImdbReader


class WikiDataModule(_ImdbWikiDataModule):
    """WIKI (IMDB-WIKI) gender and age group, with the usual cleaning filters."""

    reader_class = WikiReader


class AdienceDataModule(CachedDataModule):
    """Adience gender and age group; test on one official fold (default 4)."""

    reader_class = AdienceReader

    def __init__(
        self, layout: Literal["aligned", "faces"] = "aligned", test_fold: int | None = 4, **kwargs
    ) -> None:
        super().__init__(test_fold=test_fold, **kwargs)
        self.layout = layout

    def make_reader(self) -> Reader:
        return AdienceReader(root=self.root, layout=self.layout)


class CelebADataModule(CachedDataModule):
    """CelebA smile (``Smiling``) and gender (``Male``); official partition."""

    reader_class = CelebAReader


DATAMODULES: dict[str, type[CachedDataModule]] = {
    cls.reader_class.name: cls
    for cls in (
        Genki4kDataModule,
        Fer2013DataModule,
        UTKFaceDataModule,
        ImdbDataModule,
        WikiDataModule,
        AdienceDataModule,
        CelebADataModule,
    )
}
"""The DataModule of each real dataset, by dataset name."""
