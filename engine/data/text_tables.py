"""QA and seq2seq samples from a user's table (``data.source: table``; Parquet, CSV or JSONL).

Extractive QA: columns ``question``, ``context`` and ``answers`` (a string, or a list
whose first entry is the gold answer), optionally ``answer_start`` (the answer's first
character in the context; default its first occurrence). Seq2seq: ``source`` and
``target`` (a string, or a list of reference strings, the first one trained on).
Both take the spec's ``id_column`` (rows are ordered by it, so ids do not depend on
the row order) and ``split_column`` (``train``/``heldout``; default: split by passage,
or by source, with ``heldout_fraction``). A bad row is an error naming it, or with
``on_bad: skip`` left out and listed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.errors import BadInputError, skip_or_raise
from engine.data.paths import data_root, stat_file
from engine.data.table_files import read_table
from engine.data.tables import SPLIT_NAMES

QA_COLUMNS = ("question", "context", "answers")  # what a QA table must hold
SEQ2SEQ_COLUMNS = ("source", "target")  # what a seq2seq table must hold


def _rows(path: Path, need: tuple[str, ...], data: object) -> tuple[list[dict], list[str]]:
    """The table's rows (dicts) in key order, and each row's name for errors."""
    table = read_table(path, encoding=data.encoding)
    for column in (*need, data.id_column, data.split_column):
        if column is not None and column not in table.column_names:
            raise BadInputError(str(path), f"no column {column!r}; columns: "
                                f"{', '.join(table.column_names)}")  # fmt: skip
    rows = table.to_pylist()
    names = [f"{path} row {i}" for i in range(len(rows))]
    if data.id_column:
        seen: dict[str, int] = {}
        for i, r in enumerate(rows):
            key = str(r[data.id_column])
            if key in seen:
                raise BadInputError(names[i], f"duplicate id {key!r} (also row {seen[key]})")
            seen[key] = i
        order = sorted(range(len(rows)), key=lambda i: str(rows[i][data.id_column]))
        rows, names = [rows[i] for i in order], [names[i] for i in order]
    if not rows:
        raise BadInputError(str(path), "has no samples")
    return rows, names


def _texts(value: object, row: str, column: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    values = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if not values:
        raise BadInputError(row, f"empty {column!r}")
    return values


def _split(value: object, row: str) -> str:
    split = SPLIT_NAMES.get(str(value))
    if split is None:
        raise BadInputError(row, f"split {value!r} is not one of {', '.join(sorted(SPLIT_NAMES))}")
    return split


def table_fingerprint(path: Path, data: object) -> str:
    """SHA-256 of the table's path, size and modification time, and its id and split columns."""
    size, mtime = stat_file(path)
    return hashlib.sha256(
        f"{path}|{size}|{mtime}|{data.id_column}|{data.split_column}".encode()
    ).hexdigest()


def describe(path: Path, data: object, n: int, skipped: list[tuple[str, str]]) -> dict:
    """What ``run.json`` and the card record of a text table (as a dataset cache's describe).

    ``cache`` is None here; :func:`engine.data.text_cache.table_samples` fills in the
    folder its tokenized samples are saved in.
    """
    return {
        "cache": None,
        "fingerprint": table_fingerprint(path, data),
        "source": {"source": "table", "path": str(path)},
        "num_samples": n,
        "shape": None,
        "class_names": [],
        "skipped": [{"key": k, "reason": r} for k, r in skipped],
    }


def _parse(path: Path, rows: list[dict], names: list[str], data: object,
           parse: Callable[[dict, str], object]) -> tuple[list, np.ndarray | None, list]:  # fmt: skip
    """``parse`` every row (with its split), skipping or refusing bad ones (``on_bad``)."""
    out, splits, skipped = [], [], []
    for r, row in zip(rows, names, strict=True):
        try:
            item = parse(r, row)
            split = _split(r[data.split_column], row) if data.split_column else None
        except BadInputError as exc:
            skip_or_raise(exc, data.on_bad, skipped)
            continue
        out.append(item)
        splits.append(split)
    if not out:
        raise BadInputError(str(path), f"has no usable sample ({len(skipped)} skipped)")
    return out, (np.asarray(splits, dtype=str) if data.split_column else None), skipped


def read_qa_table(
    data: object,
) -> tuple[list[str], list[tuple[int, str, str, int]], np.ndarray | None, list]:
    """Passages, ``(passage, question, answer, answer_start)`` rows, the source's split, skips.

    Raises:
        BadInputError: For a missing file or column, an empty field, an answer not in its
            context, or a bad split (``on_bad: error``).
    """
    path = data_root(data.path, "table")
    rows, names = _rows(path, QA_COLUMNS, data)
    passages: dict[str, int] = {}

    def parse(r: dict, row: str) -> tuple[str, str, str, int]:
        question = _texts(r["question"], row, "question")[0]
        context = _texts(r["context"], row, "context")[0]
        answer = _texts(r["answers"], row, "answers")[0]
        given = r.get("answer_start")
        start = context.find(answer) if given is None else (given[0] if isinstance(given, list)
                                                             else given)  # fmt: skip
        if start is None or start < 0 or context[int(start) : int(start) + len(answer)] != answer:
            at = "" if given is None else f" at answer_start {given}"
            raise BadInputError(row, f"the answer {answer[:40]!r} is not in its context{at}")
        return context, question, answer, int(start)

    parsed, split, skipped = _parse(path, rows, names, data, parse)
    out = [(passages.setdefault(c, len(passages)), q, a, s) for c, q, a, s in parsed]
    return list(passages), out, split, skipped


def read_seq2seq_table(
    data: object,
) -> tuple[list[tuple[str, None, list[str]]], np.ndarray | None, list]:
    """``(source, None, [references])`` rows, the source's split, and the skipped rows.

    Raises:
        BadInputError: For a missing file or column, an empty field or a bad split
            (``on_bad: error``).
    """
    path = data_root(data.path, "table")
    rows, names = _rows(path, SEQ2SEQ_COLUMNS, data)

    def parse(r: dict, row: str) -> tuple[str, None, list[str]]:
        return _texts(r["source"], row, "source")[0], None, _texts(r["target"], row, "target")

    return _parse(path, rows, names, data, parse)
