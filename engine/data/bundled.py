"""The bundled ``sklearn_digits`` source: scikit-learn's 1,797 8x8 digits, offline.

Pixels are integers in 0..16, stored as they are (the listing's ``scale`` is 16), so
the model inputs are the same float32 values as ``images / 16`` bit for bit.
"""

from __future__ import annotations

import functools

import numpy as np

from engine.data.registry import Item, Listing, SourceInfo, register_source
from engine.spec.sources import SourceConfig

DIGITS_MAX_PIXEL = 16.0  # sklearn digits pixels are integers in [0, 16]
DIGITS_KEY_WIDTH = 4  # digits of a digits key ("0042")


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)


def list_digits(config: SourceConfig) -> Listing:
    """The 1,797 digits in file order, keys ``0000``..``1796``, labels 0..9."""
    _, labels = _digits()
    items = [
        Item(key=f"{i:0{DIGITS_KEY_WIDTH}d}", label=int(labels[i]), split=None, where=i)
        for i in range(len(labels))
    ]
    return Listing(items=items, kind="image", class_names=[str(c) for c in range(10)],
                   class_names_from="the bundled digits 0..9", scale=DIGITS_MAX_PIXEL)  # fmt: skip


def read_digits(config: SourceConfig, items: list[Item]) -> list[object]:
    """Each digit's uint8 (8, 8) image."""
    images, _ = _digits()
    return [images[int(item.where)] for item in items]


register_source(
    SourceInfo(
        name="sklearn_digits",
        description="scikit-learn's bundled 8x8 digits (1,797 images, 10 classes)",
        list_items=list_digits,
        read_items=read_digits,
        needs_path=False,
    )
)
