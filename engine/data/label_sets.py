"""Multi-label sources in the ingest: label-list cells listed, then multi-hot rows in the cache.

A source read with ``label_lists`` (set by the multi-label task's defaults, never
guessed from the data) holds a list of labels per row (:mod:`engine.data.label_lists`
says which cells are accepted). Listing parses the label column once, in the table's
own row order, so every error names the file and the row (and its id); an item's
label is then the tuple of its class names. Planning turns those tuples into
multi-hot rows over the leading source's class list, and the cache stores them as its
``label_set`` column in place of the int ``label`` column: there is no int label in a
multi-label cache for a consumer of class indices to misread
(:meth:`engine.data.cache.DatasetCache.labels` refuses such a cache, naming it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.data.errors import BadInputError
from engine.data.label_lists import (
    FROM_GIVEN,
    FROM_INDICES,
    FROM_NAMES,
    LabelLists,
    check_label_lists,
    parse_label_lists,
)
from engine.data.registry import Item
from engine.spec.sources import SourceConfig


def list_label_lists(
    config: SourceConfig,
    cells: Sequence[object],
    *,
    where: str,
    keys: Sequence[str] | None,
    skipped: list[tuple[str, str]],
) -> tuple[dict[int, tuple[str, ...]], LabelLists]:
    """Each good row's class names, from a column of label lists (see the module docstring).

    Every row needs a non-empty list: an empty cell, an empty list, a cell that is
    not a list, a repeated label or a label outside ``data.class_names`` stops the
    listing with an error naming the row, or with ``on_bad: skip`` leaves the row out
    (listed in ``skipped``).

    Args:
        config: The source's options (``label_column``, ``class_names``, ``on_bad``).
        cells: The label column's cells, in row order.
        where: The table, named in errors.
        keys: Each row's id (``id_column``), named in errors, or None.
        skipped: Where ``(row, reason)`` of skipped rows go.

    Returns:
        ``(row number -> sorted tuple of class names, the parsed column)``.

    Raises:
        BadInputError: Naming the file, row and column, for a bad cell (``on_bad: error``).
    """
    lists = parse_label_lists(
        cells, where=where, column=str(config.label_column),
        keys=[str(k) for k in keys] if keys is not None else None,
        class_names=config.class_names, required=True, allow_empty=False,
        on_bad=config.on_bad, skipped=skipped,
    )  # fmt: skip
    names = lists.class_names
    rows = {
        int(r): tuple(names[k] for k in np.flatnonzero(hot))
        for r, hot in zip(lists.rows, lists.multi_hot, strict=True)
    }
    return rows, lists


def multi_hot(items: Sequence[Item], class_names: Sequence[str], *, where: str) -> np.ndarray:
    """Uint8 (N, L) multi-hot rows of ``items`` (labels: tuples of class names) over the list.

    Args:
        items: The samples, each ``label`` a tuple of class names (a pool's too).
        class_names: The L class names of the leading source.
        where: The source, named in errors.

    Raises:
        BadInputError: For a sample without a label list, or with a class outside
            the leading source's list (a pool naming a class the training data lacks).
    """
    index = {name: k for k, name in enumerate(class_names)}
    out = np.zeros((len(items), len(class_names)), np.uint8)
    for i, item in enumerate(items):
        if not item.label:
            raise BadInputError(
                f"{where}: {item.key}", "no list of labels (a multi-label source needs one per row)"
            )
        for name in item.label:
            k = index.get(name)
            if k is None:
                raise BadInputError(
                    f"{where}: {item.key}",
                    f"label {name!r} is not in the class list of the training source",
                )
            out[i, k] = 1
    return out


def check_label_sets(label_sets: np.ndarray, class_names: list[str], *, where: str) -> None:
    """Refuse a multi-hot table the replicas cannot learn (see :func:`check_label_lists`)."""
    check_label_lists(
        LabelLists(multi_hot=label_sets, class_names=class_names,
                   labelled=np.ones(len(label_sets), bool),
                   rows=np.arange(len(label_sets), dtype=np.int64),
                   class_list_from="the cached label lists"),
        where=where,
    )  # fmt: skip


def label_set_names(items: Sequence[Item], given: Sequence[str] | None) -> tuple[list[str], str]:
    """The class list of a multi-label source, and where it came from (for errors and the card).

    ``data.class_names`` when given; else the distinct names of ``items`` (the
    leading source's), in index order when every name is a class index (``0..max``,
    as :func:`parse_label_lists` names them), else sorted.
    """
    if given:
        return list(given), FROM_GIVEN
    names = {name for item in items for name in item.label or ()}
    if names and all(name.isdigit() for name in names):
        return [str(k) for k in range(max(int(n) for n in names) + 1)], FROM_INDICES
    return sorted(names), FROM_NAMES
