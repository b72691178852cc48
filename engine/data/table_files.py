"""Read a Parquet, CSV or JSON-lines file as an Arrow table, or say exactly what is wrong with it.

Text files are UTF-8 unless ``data.encoding`` names another encoding (any Python
codec name, e.g. ``cp1252`` or ``latin-1``). Nothing guesses: a byte that is not
UTF-8 (a CSV saved by a spreadsheet in Windows-1252, say) is an error naming the
line, the column and the byte, and asking for ``data.encoding``, because decoding it
as some other encoding could turn a label into another string without a word.

A CSV row with more or fewer fields than the header is named by its line number;
with ``on_bad: skip`` it is left out and listed, as every other bad sample is. A
JSON line that does not parse is named by its line number too.
"""

from __future__ import annotations

import codecs
import io
import json
from pathlib import Path

import pyarrow as pa

from engine.data.errors import BadInputError

TABLE_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
UTF8 = "utf-8"  # what text tables are read as unless data.encoding says otherwise
SHOWN_ROW_CHARS = 60  # characters of a bad row shown in an error
ENCODING_HINT = "set data.encoding to the file's encoding (e.g. cp1252 or latin-1)"


def check_encoding(encoding: str | None) -> str | None:
    """``encoding`` normalised to Python's codec name, or None for UTF-8.

    Raises:
        ValueError: For a name Python has no codec for.
    """
    if encoding is None:
        return None
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"unknown encoding {encoding!r} (a Python codec name, e.g. cp1252)"
        ) from None
    return None if name == "utf-8" else name


def read_table(
    path: Path,
    columns: list[str] | None = None,
    *,
    encoding: str | None = None,
    on_bad: str = "error",
    skipped: list[tuple[str, str]] | None = None,
) -> pa.Table:
    """A Parquet, CSV or JSON-lines file as an Arrow table (Parquet: only ``columns``).

    Args:
        path: The file; its suffix says the format (:data:`TABLE_SUFFIXES`).
        columns: Columns to read (Parquet only; text files are read whole).
        encoding: The text encoding of a CSV or JSON-lines file (default UTF-8).
        on_bad: ``skip`` leaves out CSV rows with the wrong number of fields.
        skipped: Where ``(file line N, reason)`` of rows left out go.

    Returns:
        The table; a CSV row skipped is absent, so row numbers after it shift (every
        reader of the same file skips the same rows).

    Raises:
        BadInputError: For an unknown suffix, an unreadable file, bytes that are not in
            the encoding, a ragged CSV row or a JSON line that does not parse (naming
            the line).
    """
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise BadInputError(
            str(path), f"unknown table format; use one of {', '.join(sorted(TABLE_SUFFIXES))}"
        )
    try:
        encoding = check_encoding(encoding)
    except ValueError as exc:
        raise BadInputError(str(path), str(exc)) from None
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=columns)
        if kind == "csv":
            return _read_csv(path, encoding, on_bad, skipped)
        return _read_jsonl(path, encoding)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInputError(str(path), f"unreadable table: {exc}") from None


def _read_csv(path: Path, encoding: str | None, on_bad: str,
              skipped: list[tuple[str, str]] | None) -> pa.Table:  # fmt: skip
    """A CSV read single-threaded, so every bad row's line number is known."""
    import pyarrow.csv as pcsv

    bad: list[tuple[int | None, int, int, str]] = []

    def invalid_row(row: object) -> str:
        bad.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip" if on_bad == "skip" else "error"

    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(use_threads=False, encoding=encoding or "utf8"),
            parse_options=pcsv.ParseOptions(invalid_row_handler=invalid_row),
        )
    except pa.ArrowInvalid:
        if not bad:
            raise
        raise BadInputError(*_ragged(path, *bad[-1])) from None
    if encoding is None and any(pa.types.is_binary(f.type) for f in table.schema):
        _refuse_undecodable(path)  # pyarrow keeps undecodable columns as binary
    for row in bad:
        if skipped is not None:
            skipped.append(_ragged(path, *row))
    return table


def _ragged(path: Path, number: int | None, expected: int, actual: int, text: str) -> tuple:
    where = f"{path} line {number}" if number is not None else str(path)
    return where, f"{actual} fields where the header has {expected}: {text[:SHOWN_ROW_CHARS]!r}"


def _read_jsonl(path: Path, encoding: str | None) -> pa.Table:
    """A JSON-lines file, validated as UTF-8 (or transcoded from ``encoding``) first."""
    import pyarrow.json as pjson

    raw = path.read_bytes()
    if encoding is not None:
        try:
            raw = raw.decode(encoding).encode(UTF8)
        except UnicodeDecodeError as exc:
            raise BadInputError(str(path), f"not {encoding} text: {exc}") from None
    else:
        try:
            raw.decode(UTF8)  # pyarrow's JSON reader does not check
        except UnicodeDecodeError:
            _refuse_undecodable(path, raw)
    try:
        return pjson.read_json(io.BytesIO(raw))
    except pa.ArrowInvalid as exc:
        for number, line in enumerate(raw.decode(UTF8).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as bad:
                raise BadInputError(f"{path} line {number}", f"not valid JSON: {bad}") from None
        raise BadInputError(str(path), f"unreadable table: {exc}") from None


def _refuse_undecodable(path: Path, raw: bytes | None = None) -> None:
    """Raise the error naming the first byte of ``path`` that is not UTF-8 (line, column)."""
    raw = path.read_bytes() if raw is None else raw
    try:
        raw.decode(UTF8)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BadInputError(
            f"{path} line {line}, byte {column}",
            f"byte 0x{raw[exc.start]:02x} is not UTF-8: {ENCODING_HINT}",
        ) from None
    raise BadInputError(str(path), f"holds bytes that are not text: {ENCODING_HINT}")
