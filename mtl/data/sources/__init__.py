"""Raw dataset readers, one per dataset, selectable by name (``mtl prepare <name>``)."""

from mtl.data.sources.adience import Adience
from mtl.data.sources.base import RawSource
from mtl.data.sources.celeba import CelebA
from mtl.data.sources.fer2013 import Fer2013
from mtl.data.sources.genki import Genki4k
from mtl.data.sources.imdb_wiki import Imdb, Wiki
from mtl.data.sources.utkface import UTKFace

SOURCES: dict[str, type[RawSource]] = {
    cls.name: cls for cls in (Genki4k, Fer2013, UTKFace, Imdb, Wiki, Adience, CelebA)
}

__all__ = [
    "SOURCES",
    "Adience",
    "CelebA",
    "Fer2013",
    "Genki4k",
    "Imdb",
    "RawSource",
    "UTKFace",
    "Wiki",
]
