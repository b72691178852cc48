"""``hardbench run --data PATH``: what a folder or table holds, and the spec that benchmarks it.

:func:`find_data` looks at PATH without reading it whole and names the source that
reads it: a folder of class folders (``imagefolder``), of IDX files (``idx``), a
``datasets`` save_to_disk folder (``hf_disk``), ``.tar`` shards (``webdataset``) or a
CSV/Parquet/JSONL table (``table``, its columns found by their conventional names).
Nothing is guessed where two readings are possible: an ambiguous or missing column is
an error listing the columns and the ``--set data.<field>=...`` that settles it.
It sits in the lifecycle, above the data and model registries it reads, because it is
how a run starts from a PATH rather than from a spec file (``hardbench run/validate``).

:func:`recipe_data` turns what was found into spec data that includes a shipped
recipe (``images`` for images, ``texts`` for texts, or any shipped benchmark by
name), so the loader drops the recipe's own source fields as for any include.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.data.errors import BadInputError
from engine.data.paths import IMAGE_SUFFIXES
from engine.spec.benchmark import TaskSpec
from engine.spec.common import NAME_PATTERN, SpecError
from engine.spec.shipped import benchmark_path, list_benchmarks

DATA_TASK = TaskSpec.name  # --data PATH builds benchmarks of the default task
IMAGE_RECIPE = "images"  # the shipped recipe for image data
TEXT_RECIPE = "texts"  # the shipped recipe for text data
TEXT_MODEL_FAMILIES = ("text", "hf")  # model families that read token ids, not pixels
# Conventional column names (compared case-insensitively) of each role in a table.
IMAGE_COLUMNS = ("image", "img", "image_path", "path", "file", "filename", "file_name",
                 "filepath")  # fmt: skip
TEXT_COLUMNS = ("text", "sentence", "review", "content", "comment", "document", "body",
                "tweet", "utterance", "message")  # fmt: skip
LABEL_COLUMNS = ("label", "labels", "class", "category", "target")
SPLIT_COLUMNS = ("split",)  # a train/heldout (test, validation) column
COLUMN_FIELDS = ("image_column", "text_column", "label_column", "split_column")  # --set-able
SAMPLE_ROWS = 64  # rows of a table read to find its columns
TABLE_FORMATS = {".csv": "CSV", ".parquet": "Parquet", ".jsonl": "JSONL", ".json": "JSONL"}
TAR_SUFFIX = ".tar"  # a WebDataset shard
IDX_PATTERN = "*images-idx3-ubyte*"  # an IDX images file (MNIST's naming)
HF_DATASET_FILE = "dataset_info.json"  # a save_to_disk Dataset folder has it
HF_DICT_FILE = "dataset_dict.json"  # a save_to_disk DatasetDict folder has it
GLOB_CHARS = re.compile(r"[*?\[]")  # a path with these is a glob
NAME_JUNK = re.compile(r"[^A-Za-z0-9_.-]+")  # what a benchmark name may not hold
FALLBACK_NAME = "my-data"  # the benchmark's name when PATH's name has no usable character
NAME_MAX = 64  # characters of a benchmark name (NAME_PATTERN's limit)


@dataclass(frozen=True)
class DataFound:
    """What a PATH holds, as the data fields of a spec.

    Attributes:
        source: The registered source that reads it.
        kind: ``image`` or ``text``.
        data: The spec's ``data`` fields: ``source``, ``path`` (absolute) and the
            columns found.
        layout: What was seen, in a few words (``10 class folders``).
    """

    source: str
    kind: str
    data: dict = field(default_factory=dict)
    layout: str = ""

    def describe(self) -> str:
        """One line: the source, what it reads, and the columns found."""
        columns = ", ".join(f"{k} {v!r}" for k, v in self.data.items() if k in COLUMN_FIELDS)
        return f"{self.data['path']}: {self.source} ({self.layout}), {self.kind} data" + (
            f"; {columns}" if columns else ""
        )


def given_data_fields(overrides: list[str] | None) -> dict[str, object]:
    """The ``data.<field>`` values that ``--set`` overrides give (YAML-parsed), by field."""
    given: dict[str, object] = {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if sep and key.startswith("data.") and key.count(".") == 1:
            try:
                given[key[len("data.") :]] = yaml.safe_load(raw)
            except yaml.YAMLError:
                continue  # the loader names the bad override
    return given


def find_data(path: str | Path, given: Mapping[str, object] | None = None) -> DataFound:
    """The source that reads ``path``, with its columns (see the module docstring).

    Args:
        path: A folder, a table file, a ``.tar`` file or a glob of them.
        given: ``data`` fields the user sets (``--set data.label_column=y``); a column
            given is taken as it is, not looked for.

    Raises:
        BadInputError: Naming ``path``, when it does not exist, holds nothing a source
            reads, or a table's columns are missing or ambiguous.
    """
    given = dict(given or {})
    text = str(path)
    if GLOB_CHARS.search(text):
        return _tars(text, sorted(glob.glob(text)), f"tar files matching {text}")
    p = Path(text).expanduser().absolute()
    if not p.exists():
        raise BadInputError(str(p), "does not exist")
    if p.is_file():
        if p.suffix.lower() == TAR_SUFFIX:
            return _tars(str(p), [str(p)], "1 tar file")
        if p.suffix.lower() in TABLE_FORMATS:
            return _table(p, given)
        raise BadInputError(
            str(p),
            f"is a {p.suffix or 'suffix-less'} file; --data reads a folder (class folders, IDX "
            "files, a datasets save_to_disk folder, .tar shards) or a table "
            f"({', '.join(sorted(TABLE_FORMATS))})",
        )
    return _folder(p, given)


def _folder(p: Path, given: Mapping[str, object]) -> DataFound:
    if (p / HF_DATASET_FILE).is_file() or (p / HF_DICT_FILE).is_file():
        return _hf_disk(p, given)
    entries = sorted(e for e in p.iterdir() if not e.name.startswith("."))
    files = [e for e in entries if e.is_file()]
    if any(e.match(IDX_PATTERN) for e in files):
        return DataFound("idx", "image", {"source": "idx", "path": str(p)}, "IDX files")
    tars = [e for e in files if e.suffix.lower() == TAR_SUFFIX]
    if tars:
        count = f"{len(tars)} tar file{'s' if len(tars) > 1 else ''}"
        return _tars(str(p / f"*{TAR_SUFFIX}"), [str(t) for t in tars], count)
    folders = [e for e in entries if e.is_dir()]
    images = [e for e in files if e.suffix.lower() in IMAGE_SUFFIXES]
    if folders:
        data = {"source": "imagefolder", "path": str(p)}
        shown = ", ".join(f.name for f in folders[:3]) + (", ..." if len(folders) > 3 else "")
        return DataFound("imagefolder", "image", data, f"{len(folders)} class folders: {shown}")
    if images:
        raise BadInputError(
            str(p),
            f"holds {len(images)} images and no class folders: the replicas need labelled "
            "images to train on; sort them into class folders (PATH/<class>/<image>), or "
            "score them as an unlabelled pool beside labelled data (data.train + data.pool "
            "in a spec, docs/data.md)",
        )
    raise BadInputError(
        str(p),
        "holds no class folders, images, IDX files, .tar shards or datasets save_to_disk "
        f"files (it has {', '.join(e.name for e in entries[:5]) or 'nothing'})",
    )


def _tars(pattern: str, found: list[str], layout: str) -> DataFound:
    tars = [f for f in found if f.lower().endswith(TAR_SUFFIX)]
    if not tars:
        raise BadInputError(pattern, "matches no .tar file (WebDataset shards)")
    if len(tars) != len(found):
        other = next(f for f in found if f not in tars)
        raise BadInputError(pattern, f"matches {other}, which is not a .tar file")
    path = pattern if GLOB_CHARS.search(pattern) else str(Path(pattern).absolute())
    return DataFound("webdataset", "image", {"source": "webdataset", "path": path}, layout)


def _named(columns: list[str], names: tuple[str, ...]) -> list[str]:
    """The columns whose lower-cased name is one of ``names``, in table order."""
    return [c for c in columns if c.lower() in names]


def _pick(
    role: str,
    candidates: list[str],
    columns: list[str],
    where: str,
    *,
    looked_for: str,
    required: bool = True,
) -> str | None:
    """The one candidate column of a role, or None when not ``required`` and none fits.

    Raises:
        BadInputError: For no candidate (when required) or several, listing the columns
            and the ``--set`` that settles it.
    """
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and not required:
        return None
    found = (
        f"columns {', '.join(repr(c) for c in candidates)} could each be the {role} column"
        if candidates
        else f"no {role} column ({looked_for})"
    )
    raise BadInputError(
        where,
        f"{found}; columns: {', '.join(columns)}; give it with --set data.{role}_column=COLUMN",
    )


def _table(p: Path, given: Mapping[str, object]) -> DataFound:
    columns, values, types = _sample_table(p, given.get("encoding"))
    where = str(p)
    for role in COLUMN_FIELDS:
        name = given.get(role)
        if isinstance(name, str) and name not in columns:
            raise BadInputError(
                where, f"no column {name!r} (--set data.{role}); columns: {', '.join(columns)}"
            )
    data: dict[str, object] = {"source": "table", "path": str(p)}
    if given.get("image_column") or given.get("text_column"):
        image, text = given.get("image_column"), given.get("text_column")
    else:
        images = [c for c in columns if c.lower() in IMAGE_COLUMNS or _holds_images(
            values.get(c, []), types.get(c, ""))]  # fmt: skip
        texts = [c for c in _named(columns, TEXT_COLUMNS) if c not in images]
        if images and texts:
            raise BadInputError(
                where,
                f"could be images (column {images[0]!r}) or texts (column {texts[0]!r}); "
                f"columns: {', '.join(columns)}; give --set data.image_column=COLUMN or "
                "--set data.text_column=COLUMN",
            )
        if texts:
            image, text = None, _pick("text", texts, columns, where, looked_for="")
        else:
            looked = (
                f"an image column is named {', '.join(IMAGE_COLUMNS)} or holds image file "
                f"paths or bytes; a text column is named {', '.join(TEXT_COLUMNS)}"
            )
            if not images:
                raise BadInputError(
                    where,
                    f"no image or text column ({looked}); columns: {', '.join(columns)}; give "
                    "--set data.image_column=COLUMN or --set data.text_column=COLUMN",
                )
            image, text = _pick("image", images, columns, where, looked_for=looked), None
    if "label_column" in given:
        label = given["label_column"]
    else:
        label = _pick("label", _named(columns, LABEL_COLUMNS), columns, where,
                      looked_for=f"named {', '.join(LABEL_COLUMNS)}")  # fmt: skip
    split = given.get("split_column") if "split_column" in given else _pick(
        "split", _named(columns, SPLIT_COLUMNS), columns, where, looked_for="", required=False)  # fmt: skip
    for role, column in (("image_column", image), ("text_column", text),
                         ("label_column", label), ("split_column", split)):  # fmt: skip
        if column is not None or role == "label_column":
            data[role] = column
    kind = "text" if text else "image"
    return DataFound("table", kind, data, f"a {TABLE_FORMATS[p.suffix.lower()]} table")


def _holds_images(values: list, arrow_type: str) -> bool:
    """Whether a column's sampled values are image file paths, or its type is image bytes."""
    if arrow_type.startswith(("binary", "large_binary")) or (
        arrow_type.startswith("struct") and "bytes" in arrow_type
    ):
        return True
    cells = [v for v in values if v is not None]
    return bool(cells) and all(
        isinstance(v, str) and Path(v).suffix.lower() in IMAGE_SUFFIXES for v in cells
    )


def _sample_table(p: Path, encoding: object) -> tuple[list[str], dict[str, list], dict[str, str]]:
    """A table's columns, the first :data:`SAMPLE_ROWS` values of each and their Arrow types.

    Raises:
        BadInputError: For a file pyarrow (or JSON) cannot read.
    """
    import pyarrow as pa

    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(p)
            batch = next(parquet.iter_batches(batch_size=SAMPLE_ROWS), None)
            table = pa.Table.from_batches([batch]) if batch is not None else None
            schema = parquet.schema_arrow
        elif suffix == ".csv":
            import pyarrow.csv as pcsv

            options = pcsv.ReadOptions(encoding=encoding) if isinstance(encoding, str) else None
            reader = pcsv.open_csv(p, read_options=options)
            schema = reader.schema
            try:
                table = pa.Table.from_batches([reader.read_next_batch()]).slice(0, SAMPLE_ROWS)
            except StopIteration:
                table = None
        else:
            rows = []
            with p.open(encoding=encoding if isinstance(encoding, str) else "utf-8") as f:
                for line in f:
                    if line.strip():
                        rows.append(json.loads(line))
                    if len(rows) >= SAMPLE_ROWS:
                        break
            table = pa.Table.from_pylist(rows) if rows else None
            schema = table.schema if table is not None else pa.schema([])
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(str(p), f"unreadable table: {exc}") from None
    columns = list(schema.names)
    if not columns or table is None or table.num_rows == 0:
        raise BadInputError(str(p), "holds no rows")
    values = {c: table.column(c).to_pylist() for c in columns if c in table.column_names}
    return columns, values, {f.name: str(f.type) for f in schema}


def _hf_features(p: Path) -> tuple[dict, str]:
    """The features of a save_to_disk folder (its first split's, for a DatasetDict)."""
    info = p / HF_DATASET_FILE
    layout = "a datasets Dataset"
    if not info.is_file():
        try:
            splits = json.loads((p / HF_DICT_FILE).read_text()).get("splits") or []
        except (OSError, json.JSONDecodeError) as exc:
            raise BadInputError(str(p / HF_DICT_FILE), f"unreadable: {exc}") from None
        if not splits:
            raise BadInputError(str(p / HF_DICT_FILE), "lists no split")
        info = p / str(splits[0]) / HF_DATASET_FILE
        layout = f"a datasets DatasetDict ({', '.join(map(str, splits))})"
    try:
        features = json.loads(info.read_text()).get("features") or {}
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(str(info), f"unreadable: {exc}") from None
    return features, layout


def _hf_disk(p: Path, given: Mapping[str, object]) -> DataFound:
    features, layout = _hf_features(p)
    columns = list(features)
    where = str(p)

    def typed(kind: str) -> list[str]:
        return [c for c, f in features.items() if isinstance(f, dict) and f.get("_type") == kind]

    strings = [c for c, f in features.items() if isinstance(f, dict)
               and f.get("_type") == "Value" and "string" in str(f.get("dtype"))]  # fmt: skip
    data: dict[str, object] = {"source": "hf_disk", "path": where}
    if given.get("image_column") or given.get("text_column"):
        image, text = given.get("image_column"), given.get("text_column")
    elif typed("Image"):
        image, text = _pick("image", typed("Image"), columns, where, looked_for=""), None
    else:
        image = None
        text = _pick("text", _named(strings, TEXT_COLUMNS), columns, where,
                     looked_for=f"no Image feature; a text column is named "
                     f"{', '.join(TEXT_COLUMNS)}")  # fmt: skip
    if "label_column" in given:
        label = given["label_column"]
    else:
        named = typed("ClassLabel") or _named(columns, LABEL_COLUMNS)
        label = _pick("label", named, columns, where,
                      looked_for=f"a ClassLabel, or named {', '.join(LABEL_COLUMNS)}")  # fmt: skip
    for role, column in (("image_column", image), ("text_column", text), ("label_column", label)):
        if column is not None or role == "label_column":
            data[role] = column
    return DataFound("hf_disk", "text" if text else "image", data, layout)


def benchmark_name(path: str | Path) -> str:
    """A benchmark name from a data path: its file or folder name, made to fit the pattern."""
    p = Path(str(path))
    if GLOB_CHARS.search(str(path)):
        p = p.parent
    stem = p.stem if p.suffix.lower() in (*TABLE_FORMATS, TAR_SUFFIX) else p.name
    name = NAME_JUNK.sub("-", stem or Path.cwd().name).strip("-_.")[:NAME_MAX]
    return name if NAME_PATTERN.match(name) else FALLBACK_NAME


def check_recipe(recipe: str, found: DataFound) -> None:
    """Refuse a recipe that cannot read what was found (a QA recipe, text models on images).

    Raises:
        SpecError: Naming the recipe, what it trains and what the data is.
    """
    from engine.models import get_model_config
    from engine.spec.loader import load_spec

    spec = load_spec(benchmark_path(recipe))
    if spec.task.name != DATA_TASK:
        raise SpecError(
            f"--recipe {recipe} is a {spec.task.name} benchmark; --data builds {DATA_TASK} "
            f"benchmarks: write a spec with include: {recipe} and data: {{source: table, "
            "path: ...} (docs/tasks.md)"
        )
    model = spec.replicas.recipe.model
    kind = "text" if get_model_config(model).family in TEXT_MODEL_FAMILIES else "image"
    if kind != found.kind:
        fitting = IMAGE_RECIPE if found.kind == "image" else TEXT_RECIPE
        raise SpecError(
            f"--recipe {recipe} trains {kind} models ({model}) but {found.data['path']} holds "
            f"{found.kind} data: choose {'an image' if found.kind == 'image' else 'a text'} "
            f"recipe, e.g. --recipe {fitting} "
            f"(shipped: {', '.join(list_benchmarks())})"
        )


def recipe_data(
    path: str | Path, recipe: str | None = None, overrides: list[str] | None = None
) -> tuple[dict, DataFound, str]:
    """Spec data for ``hardbench run --data PATH [--recipe NAME]``.

    Args:
        path: What ``--data`` names.
        recipe: A shipped benchmark's name; None: :data:`IMAGE_RECIPE` or
            :data:`TEXT_RECIPE`, as the data is.
        overrides: The ``--set`` overrides: the ``data.<column>`` ones are taken as
            given instead of looked for (the loader applies them all afterwards).

    Returns:
        The spec data (``include:`` of the recipe, ``metadata`` named after the
        data, ``data`` as found), what was found, and the recipe's name.

    Raises:
        BadInputError: For data no source reads (see :func:`find_data`).
        SpecError: For an unknown recipe or one that does not fit the data.
    """
    found = find_data(path, given_data_fields(overrides))
    recipe = recipe or (TEXT_RECIPE if found.kind == "text" else IMAGE_RECIPE)
    check_recipe(recipe, found)
    name = benchmark_name(path)
    data = {
        "include": recipe,
        "metadata": {
            "name": name,
            "description": f"Hard samples of {name} ({found.layout}), {recipe} recipe.",
        },
        "data": dict(found.data),
    }
    return data, found, recipe
