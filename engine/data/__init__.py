"""Dataset sources. Every source returns a :class:`ClassificationData` with a fixed split."""

from engine.data.sources import (
    SPLIT_HELDOUT,
    SPLIT_TRAIN,
    ClassificationData,
    list_sources,
    load_dataset,
)

__all__ = [
    "SPLIT_HELDOUT",
    "SPLIT_TRAIN",
    "ClassificationData",
    "list_sources",
    "load_dataset",
]
