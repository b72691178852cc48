"""Dataset sources. Every source returns a :class:`ClassificationData` with a fixed split.

The source registry (:mod:`engine.data.registry`) imports none of its sources: this
package imports them, so importing any ``engine.data`` module registers every built-in
source (the timm way).
"""

from engine.data import (  # noqa: F401  (registers the built-in sources)
    archives,
    bundled,
    folders,
    sentiment_source,
    tables,
)
from engine.data.in_memory import list_sources, load_dataset
from engine.data.sources import SPLIT_HELDOUT, SPLIT_TRAIN, ClassificationData

__all__ = [
    "SPLIT_HELDOUT",
    "SPLIT_TRAIN",
    "ClassificationData",
    "list_sources",
    "load_dataset",
]
