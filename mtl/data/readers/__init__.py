"""Readers: a dataset's raw files, in the layout its authors distribute, to labelled records.

One module per dataset format; each reader is selectable by its dataset name
(``mtl prepare <name>``) through :data:`READERS`.
"""

from mtl.data.readers.adience import AdienceReader
from mtl.data.readers.base import Reader
from mtl.data.readers.celeba import CelebAReader
from mtl.data.readers.fer2013 import Fer2013Reader
from mtl.data.readers.genki4k import Genki4kReader
from mtl.data.readers.imdb_wiki import ImdbReader, WikiReader
from mtl.data.readers.utkface import UTKFaceReader

READERS: dict[str, type[Reader]] = {
    cls.name: cls
    for cls in (
        Genki4kReader,
        Fer2013Reader,
        UTKFaceReader,
        ImdbReader,
        WikiReader,
        AdienceReader,
        CelebAReader,
    )
}
"""Every reader by dataset name."""

__all__ = [
    "READERS",
    "AdienceReader",
    "CelebAReader",
    "Fer2013Reader",
    "Genki4kReader",
    "ImdbReader",
    "Reader",
    "UTKFaceReader",
    "WikiReader",
]
