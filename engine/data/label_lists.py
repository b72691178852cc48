"""Multi-label cells: a list of labels per sample, checked and turned into multi-hot rows.

A multi-label table (Parquet, CSV, JSON lines, HF) holds one list of labels per row.
:func:`parse_label_list` reads one cell; :func:`parse_label_lists` reads a column into
a multi-hot uint8 (N, L) array over the class list, naming the file and the row of
every bad cell; :func:`check_label_lists` refuses a class list the replicas cannot
learn. Accepted cells:

- a list: a Parquet/Arrow ``list<string>`` column, a JSON-lines array, a tuple or a
  1-D NumPy array (as pandas reads a Parquet list); elements are class names
  (strings, surrounding whitespace stripped) or class indices (non-negative
  integers), one kind per column;
- a string holding a list (CSV): JSON ``'["shirt", "bag"]'``, or the Python literal
  ``"['shirt', 'bag']"`` that pandas' ``to_csv`` writes;
- only when a ``separator`` is given: a string joining the labels with it, e.g.
  ``"shirt|bag"``. The separator is never guessed (``"t-shirt/top"`` is one class
  name), and a cell that looks like a list (``[...]``) is then refused rather than
  split.

A null, NaN or blank cell is a sample without a label list: unlabelled (a pool
sample) when labels are not required, an error otherwise. An empty list ``[]`` is a
sample with no positive label, refused unless ``allow_empty`` (a task whose samples
always hold something: an empty list is then more likely a lost cell than a fact).
A label repeated within one cell is refused, not merged: ``["bag", "bag"]`` is the
mark of a join or export bug that merging would hide.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.data.errors import BadInputError, skip_or_raise
from engine.data.labels import MIN_CLASSES, SHOWN_CLASSES, LabelError

SHOWN_CELL_CHARS = 40  # characters of a bad cell shown in an error
CLOSE_MATCHES = 3  # class names suggested for an unknown label
CLOSE_CUTOFF = 0.6  # difflib similarity a suggested class name needs
LIST_OPEN, LIST_CLOSE = "[", "]"  # how a string cell holding a list starts and ends
FROM_GIVEN = "data.class_names"  # class_list_from when the class names are given
FROM_NAMES = "the sorted label names"  # ... when they are the distinct names in the column
FROM_INDICES = "the integer labels (0..max)"  # ... when the column holds class indices


@dataclass(frozen=True)
class LabelLists:
    """A multi-label column as multi-hot rows.

    Attributes:
        multi_hot: Uint8 (N, L): 1 where the row holds the class (all 0 for an
            unlabelled row).
        class_names: The L class names, in column order of ``multi_hot``.
        labelled: Bool (N,): False for a row without a label list (an empty cell).
        rows: Int64 (N,): each kept row's number in the input (rows skipped under
            ``on_bad: skip`` are left out).
        class_list_from: Where the class list came from, in words (for errors and the card).
    """

    multi_hot: np.ndarray
    class_names: list[str]
    labelled: np.ndarray
    rows: np.ndarray
    class_list_from: str


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CELL_CHARS else text[: SHOWN_CELL_CHARS - 3] + "..."


def _shown_names(names: Sequence[str]) -> str:
    head = ", ".join(names[:SHOWN_CLASSES])
    return head + (", ..." if len(names) > SHOWN_CLASSES else "")


def _is_empty_cell(cell: object) -> bool:
    if cell is None:
        return True
    if isinstance(cell, (float, np.floating)) and math.isnan(cell):
        return True
    return isinstance(cell, str) and not cell.strip()


def _kind(value: object) -> str:
    """What ``value`` is, in words, for an error."""
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (int, float, np.number)):
        return "a number"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, dict):
        return "a mapping"
    return f"an object of type {type(value).__name__}"


def _clean_element(value: object) -> str | int:
    """One element of a label list as a class name (stripped) or a class index."""
    if isinstance(value, (bool, np.bool_)):
        raise LabelError(f"label {value!r} is a boolean, not a class name or index")
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise LabelError(f"label {int(value)} is negative (class indices start at 0)")
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value) or not float(value).is_integer():
            raise LabelError(f"label {float(value)!r} is neither a class name nor a class index")
        return _clean_element(int(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise LabelError(f"blank label {value!r} in the list")
        return text
    if value is None:
        raise LabelError("null label in the list")
    raise LabelError(
        f"label {_shown(value)} is {_kind(value)}, not a class name or index "
        "(a list of labels must be flat)"
    )


def _list_from_string(text: str, separator: str | None) -> list[object]:
    stripped = text.strip()
    looks_like_list = stripped.startswith(LIST_OPEN) and stripped.endswith(LIST_CLOSE)
    if separator is not None:
        if looks_like_list:
            raise LabelError(
                f"cell {_shown(text)} looks like a list, but the labels are read as joined "
                f"with {separator!r}: leave out the separator option for list cells"
            )
        return text.split(separator)
    if not stripped.startswith(LIST_OPEN):
        raise LabelError(
            f"cell {_shown(text)} is a plain string, not a list of labels: write it as a "
            f"list ({json.dumps([stripped])}), or give the separator if the cells join "
            "their labels with one (e.g. 'shirt|bag')"
        )
    try:
        parsed = json.loads(stripped)
    except json.JSONDecodeError:
        try:
            parsed = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise LabelError(
                f"cell {_shown(text)} does not parse as a list (JSON, e.g. "
                '["shirt", "bag"], or a Python list literal)'
            ) from None
    if not isinstance(parsed, list):
        raise LabelError(f"cell {_shown(text)} parses as {_kind(parsed)}, not a list")
    return parsed


def parse_label_list(cell: object, *, separator: str | None = None) -> list[str | int] | None:
    """One multi-label cell as its labels (class names or indices), in cell order.

    Args:
        cell: The cell as the table reader gives it (a list, a string, None, ...).
        separator: The string joining a cell's labels, or None for list cells only.

    Returns:
        The cleaned labels (an empty list for ``[]``), or None for an empty cell
        (null, NaN or a blank string).

    Raises:
        LabelError: For a cell that is not a list (a number, a plain string, a dict,
            bytes), a list that does not parse, an element that is not a class name or
            index, a class name and an index mixed, or a label repeated in the cell.
    """
    if _is_empty_cell(cell):
        return None
    if isinstance(cell, str):
        elements = _list_from_string(cell, separator)
    elif isinstance(cell, (list, tuple)) or (isinstance(cell, np.ndarray) and cell.ndim == 1):
        elements = list(cell)
    else:
        raise LabelError(f"cell {_shown(cell)} is {_kind(cell)}, not a list of labels")
    labels = [_clean_element(v) for v in elements]
    if len({type(v) for v in labels}) > 1:
        raise LabelError(f"cell {_shown(cell)} mixes class names and class indices")
    seen: set[str | int] = set()
    for label in labels:
        if label in seen:
            raise LabelError(
                f"label {label!r} appears more than once in the list {_shown(cell)} "
                "(repeated labels are refused, not merged: check how the column was built)"
            )
        seen.add(label)
    return labels


def _given_names(class_names: Sequence[str]) -> list[str]:
    names = [str(n) for n in class_names]
    if any(not n.strip() or n != n.strip() for n in names):
        raise BadInputError(FROM_GIVEN, "class names must be non-blank, without surrounding spaces")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadInputError(FROM_GIVEN, f"class names repeated: {_shown_names(repeated)}")
    return names


def _unknown(label: str | int, names: list[str], origin: str) -> str:
    if isinstance(label, int):
        return (
            f"label index {label} is outside the class list of {len(names)} classes "
            f"(0..{len(names) - 1}, from {origin})"
        )
    close = difflib.get_close_matches(label, names, n=CLOSE_MATCHES, cutoff=CLOSE_CUTOFF)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"label {label!r} is not in the class list ({_shown_names(names)}; from {origin}){hint}"


def parse_label_lists(
    cells: Sequence[object],
    *,
    where: str,
    column: str,
    keys: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    separator: str | None = None,
    required: bool = True,
    allow_empty: bool = False,
    on_bad: str = "error",
    skipped: list[tuple[str, str]] | None = None,
) -> LabelLists:
    """A column of label lists as multi-hot rows over the class list.

    The class list is ``class_names`` when given, else the sorted distinct class names
    of the column, else (a column of class indices) ``"0".."max"``.

    Args:
        cells: One cell per row, as the table reader gives them (``to_pylist()``).
        where: The table, named in errors (``/data/t.csv row 4: ...``).
        column: The label column, named in errors.
        keys: Each row's sample key (its id), named in errors with the row number.
        class_names: The class list (``data.class_names``), or None.
        separator: The string joining a cell's labels, or None (list cells only).
        required: Whether every row needs a label list; if False an empty cell is an
            unlabelled row (``labelled`` False, an all-zero multi-hot row).
        allow_empty: Whether an empty list ``[]`` (no class present) is a valid row.
        on_bad: ``error``: a bad row raises; ``skip``: it is left out and listed in
            ``skipped`` as ``(row, reason)``.
        skipped: Where skipped rows go (``on_bad: skip``).

    Returns:
        The :class:`LabelLists` of the kept rows.

    Raises:
        BadInputError: Naming the file, the row (and its key) and the column, for an
            empty cell where labels are required, an empty list without
            ``allow_empty``, a cell that is not a list, a repeated label, or a label
            outside the given class list (close matches listed); naming
            ``data.class_names`` for a blank or repeated class name.
    """
    if keys is not None and len(keys) != len(cells):
        raise ValueError(f"keys has {len(keys)} entries for {len(cells)} cells")
    skipped = [] if skipped is None else skipped
    given = _given_names(class_names) if class_names is not None else None
    parsed: list[tuple[int, list[str | int] | None]] = []
    kind: type | None = None
    for i, cell in enumerate(cells):
        row = f"{where} row {i}" + (f" (id {keys[i]!r})" if keys is not None else "")
        try:
            labels = _parse_row(cell, separator, required, allow_empty, kind)
        except LabelError as exc:
            skip_or_raise(BadInputError(row, f"column {column!r}: {exc}"), on_bad, skipped)
            continue
        if labels and kind is None:
            kind = type(labels[0])
        parsed.append((i, labels))
    if given is not None:
        names, origin = given, FROM_GIVEN
    elif kind is int:
        top = max((max(labels) for _, labels in parsed if labels), default=-1)
        names, origin = [str(k) for k in range(top + 1)], FROM_INDICES
    else:
        names = sorted({str(v) for _, labels in parsed for v in labels or ()})
        origin = FROM_NAMES
    index = {name: k for k, name in enumerate(names)}
    hot, labelled, rows = [], [], []
    for i, labels in parsed:
        out = np.zeros(len(names), np.uint8)
        for label in labels or ():
            k = (
                (label if label < len(names) else None)
                if isinstance(label, int)
                else index.get(label)
            )
            if k is None:
                row = f"{where} row {i}" + (f" (id {keys[i]!r})" if keys is not None else "")
                exc = BadInputError(row, f"column {column!r}: {_unknown(label, names, origin)}")
                skip_or_raise(exc, on_bad, skipped)
                break
            out[k] = 1
        else:
            hot.append(out)
            labelled.append(labels is not None)
            rows.append(i)
    return LabelLists(
        multi_hot=np.stack(hot) if hot else np.zeros((0, len(names)), np.uint8),
        class_names=names,
        labelled=np.asarray(labelled, dtype=bool),
        rows=np.asarray(rows, dtype=np.int64),
        class_list_from=origin,
    )


def _parse_row(
    cell: object, separator: str | None, required: bool, allow_empty: bool, kind: type | None
) -> list[str | int] | None:
    """One row's labels, or the LabelError saying why the row cannot be used."""
    labels = parse_label_list(cell, separator=separator)
    if labels is None:
        if required:
            raise LabelError("empty cell where a list of labels is required")
        return None
    if not labels and not allow_empty:
        raise LabelError(
            "empty list of labels (a sample with no class present is refused for this data)"
        )
    if labels and kind is not None and type(labels[0]) is not kind:
        first = "class indices" if kind is int else "class names"
        raise LabelError(f"cell {_shown(cell)} breaks the column's {first}: use one kind")
    return labels


def check_label_lists(lists: LabelLists, *, where: str) -> None:
    """Refuse a class list the replicas cannot learn: under 2 classes, or a class never present.

    Args:
        lists: The parsed column.
        where: The source, named in the error.

    Raises:
        BadInputError: Naming the classes that no labelled row holds, or the one class.
    """
    names = lists.class_names
    if len(names) < MIN_CLASSES:
        raise BadInputError(
            where,
            f"has {len(names)} class ({_shown_names(names)}; from {lists.class_list_from}): "
            f"a multi-label benchmark needs at least {MIN_CLASSES} classes",
        )
    counts = lists.multi_hot[lists.labelled].sum(axis=0)
    absent = [names[k] for k in np.flatnonzero(counts == 0)]
    if absent:
        plural = len(absent) > 1
        raise BadInputError(
            where,
            f"class{'es' if plural else ''} {_shown_names(absent)} (from "
            f"{lists.class_list_from}) {'are' if plural else 'is'} in no labelled row: add "
            "samples, or leave the class out of the class list",
        )
