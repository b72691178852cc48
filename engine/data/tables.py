"""Table sources: ``table`` (Parquet, CSV or JSONL) and ``hf_disk`` (a ``datasets`` save_to_disk folder).

A row is a sample: ``image_column`` holds an image path (relative to the table's
folder, never leaving it) or encoded image bytes (Parquet, HF), or ``text_column`` a
text; ``label_column`` a class name or index (``null`` in the spec: unlabelled);
``id_column`` an optional unique key and ``split_column`` an optional
``train``/``heldout``. Keys default to the image path, else the row number, so sample
ids follow the key order whatever the row order.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.errors import BadInputError, skip_or_raise
from engine.data.label_sets import list_label_lists
from engine.data.labels import LabelError, clean_label
from engine.data.paths import data_root, inside, stat_file
from engine.data.registry import Item, Listing, SourceInfo, register_source
from engine.data.table_files import read_table
from engine.spec.sources import SourceConfig

SPLIT_NAMES = {"train": "train", "heldout": "heldout", "test": "heldout", "validation": "heldout"}
ROW_KEY_WIDTH = 9  # digits of a row-number key ("row000000012"), so keys sort as numbers


def _need(table: pa.Table, column: str | None, where: str, option: str) -> None:
    if column is not None and column not in table.column_names:
        raise BadInputError(
            where,
            f"no column {column!r} (data.{option}); columns: {', '.join(table.column_names)}",
        )


def list_rows(
    config: SourceConfig,
    table: pa.Table,
    *,
    where: str,
    root: Path | None,
    image_is_path: bool,
    skipped: list[tuple[str, str]],
    split_of_row: list[str | None] | None = None,
) -> list[Item]:
    """One item per row of ``table`` (the columns of ``config``), keys unique.

    With ``label_lists`` the label column holds a list of labels per row, parsed here
    in row order (:mod:`engine.data.label_sets`): an item's label is then the tuple
    of its class names. A bad row (an empty or repeated id, an empty, NaN or list label, a path out of the
    root or to no file, a split other than train/heldout) stops the listing with an
    error naming the row, or with ``on_bad: skip`` is left out and added to
    ``skipped`` (a repeated id keeps its first row).

    Args:
        config: The source's options.
        table: The rows (the image column may be left out when it holds bytes).
        where: The table's name in errors.
        root: Folder image paths are relative to (``image_is_path``).
        image_is_path: Whether the image column holds paths (else bytes, read later).
        split_of_row: A split per row from outside the table (HF split names).
        skipped: Where ``(row, reason)`` of skipped rows go.

    Raises:
        BadInputError: Naming the row, for a bad row (``on_bad: error``).
    """
    n = table.num_rows
    col = {name: table.column(name).to_pylist() for name in table.column_names}
    labels = col[config.label_column] if config.label_column else [None] * n
    ids = col[config.id_column] if config.id_column else None
    splits = col[config.split_column] if config.split_column else split_of_row
    paths = col[config.image_column] if image_is_path else None
    lists = None
    if config.label_lists and config.label_column:
        lists, _ = list_label_lists(config, labels, where=where, keys=ids, skipped=skipped)
    items, first_row = [], {}
    for i in range(n):
        row = f"{where} row {i}"
        if lists is not None and i not in lists:
            continue  # a bad label list, skipped (on_bad: skip) and listed already
        label = lists[i] if lists is not None else labels[i]
        try:
            items.append(_row_item(config, i, row, label, ids, splits, paths, root, first_row))
        except BadInputError as exc:
            skip_or_raise(exc, config.on_bad, skipped)
    return items


def _row_item(config: SourceConfig, i: int, row: str, label: object, ids: list | None,
              splits: list | None, paths: list | None, root: Path | None,
              first_row: dict[str, int]) -> Item:  # fmt: skip
    """The item of row ``i`` (see :func:`list_rows`), or the BadInputError naming it."""
    if ids is not None:
        if ids[i] is None or not str(ids[i]).strip():
            raise BadInputError(row, f"empty id in column {config.id_column!r}")
        key = str(ids[i])
    elif paths is not None:
        if paths[i] is None or not str(paths[i]).strip():
            raise BadInputError(row, f"empty path in column {config.image_column!r}")
        key = str(paths[i])
    else:
        key = f"row{i:0{ROW_KEY_WIDTH}d}"
    if key in first_row:
        raise BadInputError(row, f"duplicate id {key!r} (also row {first_row[key]})")
    if config.label_column and not config.label_lists:
        try:
            clean_label(label)
        except LabelError as exc:
            raise BadInputError(row, f"{exc} in column {config.label_column!r}") from None
    split = None
    if splits is not None:
        split = SPLIT_NAMES.get(str(splits[i]).strip().lower())
        if split is None:
            raise BadInputError(
                row, f"split {splits[i]!r} is not one of {', '.join(sorted(SPLIT_NAMES))}"
            )
    size = mtime = 0
    locator: object = i
    if paths is not None:
        file = inside(root, str(paths[i]), row)
        if not file.is_file():
            raise BadInputError(row, f"image file {paths[i]!r} does not exist")
        size, mtime = stat_file(file)
        locator = str(paths[i])
    first_row[key] = i
    return Item(key=key, label=label, split=split, where=locator, size=size, mtime_ns=mtime)


def list_table(config: SourceConfig) -> Listing:
    """List a Parquet/CSV/JSONL table: one sample per row (see the module docstring).

    Raises:
        BadInputError: For a missing file or column, or a bad row.
    """
    path = data_root(config.path, "table")
    if (config.image_column is None) == (config.text_column is None):
        raise BadInputError(str(path), "set exactly one of data.image_column and data.text_column")
    skipped: list[tuple[str, str]] = []
    table = read_table(path, encoding=config.encoding, on_bad=config.on_bad, skipped=skipped)
    for column, option in ((config.image_column, "image_column"),
                           (config.text_column, "text_column"),
                           (config.label_column, "label_column"), (config.id_column, "id_column"),
                           (config.split_column, "split_column")):  # fmt: skip
        _need(table, column, str(path), option)
    ftype = table.schema.field(config.image_column).type if config.image_column else None
    image_is_path = ftype is not None and (
        pa.types.is_string(ftype) or pa.types.is_large_string(ftype)
    )
    keep = [c for c in table.column_names if c != config.image_column or image_is_path]
    items = list_rows(config, table.select(keep), where=str(path), root=path.parent,
                      image_is_path=image_is_path, skipped=skipped)  # fmt: skip
    size, mtime = stat_file(path)
    kind = "text" if config.text_column else "image"
    return Listing(items=items, kind=kind, files=[(str(path), size, mtime)], skipped=skipped)


@functools.lru_cache(maxsize=4)
def _column(path: str, column: str, mtime_ns: int, encoding: str | None,
            on_bad: str) -> pa.ChunkedArray:  # fmt: skip
    """One column of a table file, read once per process (``mtime_ns`` keys the cache).

    Read with the listing's options, so the same ragged rows are skipped and row
    numbers agree with the items'.
    """
    return read_table(Path(path), columns=[column], encoding=encoding,
                      on_bad=on_bad).column(column)  # fmt: skip


def _payload(value: object, key: str) -> object:
    if isinstance(value, dict):  # an HF Image cell: {"bytes": ..., "path": ...}
        value = value.get("bytes")
    if value is None:
        return BadInputError(key, "empty image cell")
    return value


def read_table_items(config: SourceConfig, items: list[Item]) -> list[object]:
    """Each row's image bytes (read from the file at its path, or from the table) or text."""
    path = Path(config.path)
    column = config.text_column or config.image_column
    if config.image_column is not None and isinstance(items[0].where, str):
        out: list[object] = []
        for item in items:
            try:
                out.append((path.parent / item.where).read_bytes())
            except OSError as exc:
                out.append(BadInputError(f"{path} row {item.key}", f"unreadable: {exc.strerror}"))
        return out
    values = _column(str(path), column, stat_file(path)[1], config.encoding, config.on_bad)
    taken = values.take(pa.array([int(i.where) for i in items], pa.int64())).to_pylist()
    if config.text_column:
        return [str(v) if v is not None else "" for v in taken]
    return [_payload(v, f"{path} row {i.where}") for v, i in zip(taken, items, strict=True)]


def _hf_tables(path: Path) -> list[tuple[str | None, object]]:
    """``(split name or None, Dataset)`` of a save_to_disk folder (a Dataset or a DatasetDict)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise BadInputError(str(path), f"not a datasets save_to_disk folder: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        return sorted(loaded.items())
    return [(None, loaded)]


def _hf_image_column(ds: object) -> str | None:
    import datasets

    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            return name
    return None


def list_hf_disk(config: SourceConfig) -> Listing:
    """List a ``datasets`` save_to_disk folder; a DatasetDict's splits give the split.

    The image column defaults to the one with the ``Image`` feature; a ``ClassLabel``
    label column gives the class names. Keys are ``<split>/<row>`` (or the id column).

    Raises:
        BadInputError: For a folder ``datasets`` cannot load, a missing column or a bad row.
    """
    import datasets

    path = data_root(config.path, "hf_disk")
    items, names, files, skipped, names_from = [], None, [], [], ""
    for split_name, ds in _hf_tables(path):
        image_column = config.image_column or (None if config.text_column else _hf_image_column(ds))
        if image_column is None and config.text_column is None:
            raise BadInputError(str(path), "no Image column: set data.image_column or text_column")
        table = ds.data.table
        where = f"{path}" + (f" split {split_name}" if split_name else "")
        for column, option in ((image_column, "image_column"), (config.text_column, "text_column"),
                               (config.label_column, "label_column"),
                               (config.id_column, "id_column"),
                               (config.split_column, "split_column")):  # fmt: skip
            _need(table, column, where, option)
        label_feature = ds.features.get(config.label_column) if config.label_column else None
        if isinstance(label_feature, datasets.ClassLabel):
            names = list(label_feature.names)
            names_from = f"the ClassLabel feature of column {config.label_column!r} in {path}"
        split = None
        if split_name is not None and config.split_column is None:
            split = SPLIT_NAMES.get(split_name)
            if split is None:
                raise BadInputError(where, f"split {split_name!r} is not train/test/validation")
        keep = [c for c in table.column_names if c != image_column]
        rows = list_rows(config, table.select(keep), where=where, root=None, image_is_path=False,
                         split_of_row=None if split is None else [split] * table.num_rows,
                         skipped=skipped)  # fmt: skip
        prefix = f"{split_name}/" if split_name and config.id_column is None else ""
        items.extend(
            Item(key=prefix + r.key, label=r.label, split=r.split,
                 where=[split_name, image_column or config.text_column, int(r.where)])
            for r in rows
        )  # fmt: skip
        for f in sorted(ds.cache_files, key=lambda c: c["filename"]):
            size, mtime = stat_file(Path(f["filename"]))
            files.append((f["filename"], size, mtime))
    kind = "text" if config.text_column else "image"
    return Listing(items=items, kind=kind, class_names=names, files=files, skipped=skipped,
                   class_names_from=names_from if names is not None else "")  # fmt: skip


@functools.lru_cache(maxsize=2)
def _hf_loaded(path: str) -> dict:
    return dict(_hf_tables(Path(path)))


def read_hf_items(config: SourceConfig, items: list[Item]) -> list[object]:
    """Each row's image bytes or text, read from the memory-mapped Arrow files."""
    loaded = _hf_loaded(str(config.path))
    out: list[object] = [None] * len(items)
    by_split: dict[tuple, list[int]] = {}
    for pos, item in enumerate(items):
        split_name, column, _ = item.where
        by_split.setdefault((split_name, column), []).append(pos)
    for (split_name, column), positions in by_split.items():
        table = loaded[split_name].data.table
        rows = np.asarray([items[p].where[2] for p in positions], dtype=np.int64)
        values = table.column(column).take(pa.array(rows)).to_pylist()
        for p, v in zip(positions, values, strict=True):
            out[p] = (
                (str(v) if v is not None else "")
                if config.text_column
                else _payload(v, f"{config.path} row {items[p].key}")
            )
    return out


register_source(
    SourceInfo(
        name="table",
        description="a Parquet, CSV or JSONL table: image paths or bytes, or texts; labels",
        list_items=list_table,
        read_items=read_table_items,
    )
)
register_source(
    SourceInfo(
        name="hf_disk",
        description="a Hugging Face datasets save_to_disk folder (Dataset or DatasetDict)",
        list_items=list_hf_disk,
        read_items=read_hf_items,
    )
)
