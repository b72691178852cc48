"""Labels as sources spell them, cleaned, checked and resolved to class indices.

Every source hands the ingest labels as it reads them: a folder's name, a table
cell, a ``.cls`` member, an IDX byte. :func:`clean_label` turns one into a class
name (``str``) or a class index (``int``) or says why it cannot be one: an empty
cell, NaN, a list (multi-label data), bytes, a non-integral number. Surrounding
whitespace is stripped (``"trouser "`` and ``"trouser"`` are one class), and the
ingest counts and reports how many labels it stripped. :func:`resolve_labels` maps
the cleaned labels onto the class list and says where that list came from, and
:func:`check_classes` refuses a dataset with fewer than two classes or with a class
that has no sample, before anything is decoded or trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.data.errors import BadInputError
from engine.data.registry import Item
from engine.data.sources import SPLIT_HELDOUT, SPLIT_TRAIN, UNLABELLED
from engine.spec.sources import SourceConfig

MIN_CLASSES = 2  # a benchmark's classifier needs at least this many classes
SHOWN_CLASSES = 12  # class names listed in an error before "..."


class LabelError(ValueError):
    """A label that cannot be a class; ``str(exc)`` says why (the caller names the row)."""


@dataclass
class LabelNotes:
    """What resolving the labels changed or found, for the data report and the card.

    Attributes:
        stripped: Labels whose surrounding whitespace was stripped.
        class_list_from: Where the class list came from, in words.
    """

    stripped: int = 0
    class_list_from: str = ""


def clean_label(value: object) -> str | int:
    """A label as a class name (whitespace stripped) or a class index.

    Integers (and integral floats such as ``3.0``, as a CSV or Parquet column with a
    gap stores them) are class indices; strings and booleans are class names.

    Raises:
        LabelError: For None, NaN, an empty or blank string, bytes, a list or other
            non-scalar value, a negative index or a non-integral number.
    """
    if value is None:
        raise LabelError("empty label")
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise LabelError(f"label {int(value)} is negative (class indices start at 0)")
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            raise LabelError("empty label (NaN)")
        if not float(value).is_integer():
            raise LabelError(f"label {value!r} is neither a class index nor a class name")
        return clean_label(int(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise LabelError("empty label" if not value else f"blank label {value!r}")
        return text
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise LabelError(f"label is bytes ({bytes(value)[:20]!r}), not a class name or index")
    kind = type(value).__name__
    shown = repr(value)[:40]
    raise LabelError(
        f"label {shown} is a {kind}, not one class (several labels per sample are "
        "multi-label data; this task takes one class per sample)"
    )


def is_stripped(value: object) -> bool:
    """Whether :func:`clean_label` strips whitespace off ``value``."""
    return isinstance(value, str) and value != value.strip()


def _shown(names: Sequence[str]) -> str:
    head = ", ".join(names[:SHOWN_CLASSES])
    return head + (", ..." if len(names) > SHOWN_CLASSES else "")


def resolve_labels(
    config: SourceConfig,
    items: list[Item],
    names: list[str] | None,
    skipped: list[tuple[str, str]],
    *,
    lead: str = "",
    names_from: str = "",
    where: str = "",
) -> tuple[list[Item], np.ndarray, list[str], LabelNotes]:
    """Class indices of the items' (already cleaned) labels; bad ones dropped or refused.

    The class list is ``config.class_names``, else ``names`` (the leading source's own,
    e.g. its class folders), else the leading source's labels (keys starting with
    ``lead``): ``0..max`` for integer labels, or the sorted distinct names.

    Args:
        config: The leading source's options (``class_names``, ``on_bad``).
        items: The samples in key order; ``label`` None is an unlabelled sample.
        names: The class list the leading source defines, or None.
        skipped: Where ``(key, reason)`` of skipped samples go (``on_bad: skip``).
        lead: Key prefix of the leading source's samples.
        names_from: Where ``names`` came from, in words (for errors and the card).
        where: The source, named in errors (``/data/x.csv: row000000004: ...``).

    Returns:
        ``(kept items, int64 (N,) class indices (-1 unlabelled), class names, notes)``.

    Raises:
        BadInputError: For a label outside the class list (``on_bad: error``).
    """
    notes = LabelNotes()
    if config.class_names:
        given, notes.class_list_from = list(config.class_names), "data.class_names"
    elif names is not None:
        given, notes.class_list_from = list(names), names_from or "the source"
    else:
        values = [i.label for i in items if i.label is not None and i.key.startswith(lead)]
        if values and all(isinstance(v, int) for v in values):
            given = [str(c) for c in range(max(values) + 1)]
            notes.class_list_from = "the integer labels (0..max)"
        else:
            given = sorted({str(v) for v in values})
            notes.class_list_from = "the sorted label names"
    index = {name: k for k, name in enumerate(given)}
    kept, labels = [], []
    prefix = f"{where}: " if where else ""
    for item in items:
        if item.label is None:
            kept.append(item)
            labels.append(UNLABELLED)
            continue
        label = item.label
        k = (label if label < len(given) else None) if isinstance(label, int) else index.get(label)
        if k is None:
            reason = (
                f"label {label!r} is not in the class list ({_shown(given)}), which "
                f"comes from {notes.class_list_from}"
            )
            if config.on_bad == "skip":
                skipped.append((item.key, reason))
                continue
            raise BadInputError(prefix + item.key, reason)
        kept.append(item)
        labels.append(k)
    return kept, np.asarray(labels, dtype=np.int64), given, notes


def check_classes(labels: np.ndarray, class_names: list[str], *, where: str, origin: str) -> None:
    """Refuse a dataset the replicas cannot learn: fewer than 2 classes, or an empty class.

    Args:
        labels: Int64 (N,) class indices, -1 for unlabelled samples.
        class_names: The K class names.
        where: The source, named in the error.
        origin: Where the class list came from, in words.

    Raises:
        BadInputError: Naming the classes that have no sample, or the one class.
    """
    if len(class_names) < MIN_CLASSES:
        raise BadInputError(
            where,
            f"has {len(class_names)} class ({_shown(class_names)}; from {origin}): a benchmark "
            f"needs at least {MIN_CLASSES} classes to learn and to be confused between",
        )
    counts = np.bincount(labels[labels >= 0], minlength=len(class_names))
    empty = [class_names[k] for k in np.flatnonzero(counts == 0)]
    if empty:
        raise BadInputError(
            where,
            f"class{'es' if len(empty) > 1 else ''} {_shown(empty)} (from {origin}) "
            f"{'have' if len(empty) > 1 else 'has'} no sample: add samples, or leave "
            "the class out of the class list",
        )


def split_warnings(labels: np.ndarray, split: np.ndarray, class_names: list[str]) -> list[str]:
    """Warnings for classes with no training or no held-out sample after the split.

    Args:
        labels: Int64 (N,) class indices, -1 unlabelled.
        split: (N,) ``train`` / ``heldout``.
        class_names: The K class names.

    Returns:
        One sentence per problem (empty when every class is on both sides).
    """
    k = len(class_names)

    def missing(side: str) -> list[str]:
        mask = (split == side) & (labels >= 0)
        return [class_names[c] for c in np.flatnonzero(np.bincount(labels[mask], minlength=k) == 0)]

    out = []
    untrained, unheld = missing(SPLIT_TRAIN), missing(SPLIT_HELDOUT)
    if untrained:
        out.append(
            f"no training sample of {_shown(untrained)}: the replicas and the evaluated models "
            "never learn it, so its held-out samples are errors for every model"
        )
    if unheld and (labels[split == SPLIT_HELDOUT] >= 0).any():
        out.append(f"no held-out sample of {_shown(unheld)}: the benchmark's pool holds none of it")
    return out
