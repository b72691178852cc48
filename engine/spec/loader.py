"""Read specs: YAML files, ``include:`` bases, ``--set`` overrides, one schema for every task.

A spec file may name a base with ``include:``: a shipped benchmark by its name
(``include: fashion-mnist``: no slash, no suffix; :mod:`engine.spec.shipped`), or a
``.yaml``/``.yml`` path relative to the including file, which must stay inside the
spec root: ``$HARDBENCH_SPEC_ROOT`` if set, else the top-level spec's project (nearest
ancestor with ``pyproject.toml`` or ``.git``), else its directory, so a spec cannot
make the engine read arbitrary files (a shipped spec includes only shipped specs).
Its keys are deep-merged over the base, less what is the including spec's own: the
benchmark's identity (``metadata.name``, ``metadata.description``,
``tracking.experiment``) and, when its ``data`` names another source, the base's
source-specific data fields; ``load_spec(..., notes=lines)`` says what each include
gave and did not. ``load_spec`` also takes ``--set``-style overrides
(``replicas.epochs=3``, ``evaluate.models[0].epochs=2``). Every field error names the
field's dotted path and the allowed values.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path

import yaml

from engine.spec.benchmark import BenchmarkSpec
from engine.spec.common import FieldError, SpecError
from engine.spec.evaluate import FINETUNE_OWNS
from engine.spec.finetune import FinetuneOptions
from engine.spec.legacy import refuse_legacy_layout
from engine.spec.shipped import benchmark_path, is_benchmark_name, shipped_dir, shipped_hint
from engine.spec.validate import registered_task

MAX_INCLUDE_DEPTH = 8  # guards against include cycles
# Who a benchmark is and where it is recorded: never taken from an included spec.
IDENTITY_FIELDS = {"metadata": ("name", "description"), "tracking": ("experiment",)}
# data fields that say the including spec reads another source than its include
SOURCE_SWITCHES = ("source", "path", "train", "pool")
# data fields an include still gives to another source: how images are converted and
# how the split is drawn; every other data field describes the include's own data
INHERITED_DATA_FIELDS = (
    "image_size", "channels", "max_pixels", "on_bad", "cache_dir", "heldout_fraction",
    "split_seed",
)  # fmt: skip


def _coerce(value: object, hint: object, path: str, recipe: type) -> object:
    """Convert YAML ``value`` to the annotated type ``hint`` or raise a FieldError."""
    origin = typing.get_origin(hint)
    if hint is type(None):
        if value is not None:
            raise FieldError(path, f"must be null, got {value!r}")
        return None
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, path, recipe=recipe)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, path, recipe)
            except FieldError as exc:
                if dataclasses.is_dataclass(option) and isinstance(value, dict):
                    raise  # a section with a bad field: that field's own error
                errors.append(exc.reason)
        raise FieldError(path, " or ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise FieldError(path, f"must be a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(hint) or (object,)
        return [_coerce(v, item, f"{path}[{i}]", recipe) for i, v in enumerate(value)]
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise FieldError(path, f"must be a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise FieldError(path, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(path, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(path, f"must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise FieldError(path, f"must be a string, got {value!r}")
        return value
    return value


def build_section(cls: type, data: object, path: str, *, recipe: type) -> object:
    """Build spec dataclass ``cls`` from a YAML mapping, naming unknown and missing fields.

    Sections with a ``recipe`` field (replicas, evaluated models) take the fields of
    the task's ``recipe`` dataclass inline, as the YAML writes them.
    """
    if not isinstance(data, dict):
        raise FieldError(path, f"must be a mapping, got {type(data).__name__} {data!r}")
    data = dict(data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    nested = "recipe" if "recipe" in fields else None
    kwargs: dict[str, object] = {}
    recipe_fields: set[str] = set()
    if nested:
        recipe_fields = {f.name for f in dataclasses.fields(recipe)}
        recipe_data = {k: data.pop(k) for k in list(data) if k in recipe_fields}
        if "finetune" in fields and isinstance(data.get("finetune"), dict):
            recipe_data = _finetune_recipe(recipe_data, data["finetune"], path)
        elif "weights" in fields and data.get("weights") is not None:  # evaluated as it is
            recipe_data = _finetune_recipe(recipe_data, {"epochs": 1}, path, as_is=True)
        kwargs[nested] = build_section(recipe, recipe_data, path, recipe=recipe)
    allowed = sorted(set(fields) - {nested}) + sorted(recipe_fields)
    for key, value in data.items():
        if key not in fields or key == nested:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FieldError(
                _join(path, str(key)), f"unknown field{hint}; allowed fields: {', '.join(allowed)}"
            )
        kwargs[key] = _coerce(value, hints[key], _join(path, key), recipe)
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in kwargs and no_default:
            raise FieldError(_join(path, name), "is required")
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise exc.prefixed(path) from None


def _finetune_recipe(recipe_data: dict, finetune: dict, path: str, *, as_is: bool = False) -> dict:
    """A fine-tuned entry's recipe: its training options live under ``finetune:``.

    Raises:
        FieldError: For a training option also given at the entry's top level (or at
            all, for a pretrained model evaluated as it is).
    """
    clash = sorted(k for k in recipe_data if k in FINETUNE_OWNS)
    if clash and as_is:
        raise FieldError(
            _join(path, clash[0]),
            "a pretrained model without finetune: is evaluated as it is (no training); "
            "add a finetune: section to train it",
        )
    if clash:
        raise FieldError(
            _join(path, clash[0]),
            f"a fine-tuned model takes {', '.join(clash)} under finetune: (finetune.{clash[0]})",
        )
    epochs = finetune.get("epochs", FinetuneOptions.epochs)
    return {**recipe_data, "epochs": epochs if isinstance(epochs, int) and epochs >= 1 else 1}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _deep_merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def spec_root(top: Path) -> Path:
    """The directory that includes of the spec ``top`` must stay inside (see module doc)."""
    return _folder_root(top.resolve().parent)


def _folder_root(folder: Path) -> Path:
    """The spec root of a spec in ``folder``: the env, its project, or ``folder`` itself."""
    env = os.environ.get("HARDBENCH_SPEC_ROOT")
    if env:
        return Path(env).resolve()
    folder = folder.resolve()
    for parent in (folder, *folder.parents):
        if (parent / "pyproject.toml").exists() or (parent / ".git").exists():
            return parent
    return folder


def _load_mapping(path: Path) -> dict:
    """The YAML mapping in ``path``.

    Raises:
        SpecError: For a missing file, bad YAML or a document that is not a mapping.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise SpecError(f"spec file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping, got {type(data).__name__}")
    return data


def _read_yaml(path: Path, depth: int, root: Path, notes: list[str]) -> dict:
    """A spec file's data with its includes merged in (notes on what they gave appended)."""
    if depth > MAX_INCLUDE_DEPTH:
        raise SpecError(f"{path}: include chain deeper than {MAX_INCLUDE_DEPTH} (a cycle?)")
    data = _load_mapping(path)
    return _resolve_include(data, path.parent, path.name, depth, root, notes)


def _include_target(include: object, folder: Path, label: str, root: Path) -> tuple[Path, Path]:
    """The file an ``include:`` names and the root its own includes must stay inside.

    A bare name (no slash, no suffix) is a shipped benchmark, whose includes stay among
    the shipped specs; anything else is a path relative to ``folder`` inside ``root``.

    Raises:
        SpecError: Naming the including spec, for a target that is not a YAML file
            inside the root or does not exist (saying how shipped specs are named).
    """
    if not isinstance(include, str):
        raise SpecError(
            f"{label}: include must be a shipped benchmark's name or a file name, got {include!r}"
        )
    if is_benchmark_name(include):
        try:
            return benchmark_path(include), shipped_dir()
        except SpecError as exc:
            raise SpecError(f"{label}: include {include!r}: {exc}") from None
    target = (folder / include).resolve()
    if target.suffix not in (".yaml", ".yml"):
        raise SpecError(
            f"{label}: include must name a .yaml or .yml file or a shipped benchmark, "
            f"got {include!r}; {shipped_hint(include)}"
        )
    if not target.is_relative_to(root):
        raise SpecError(
            f"{label}: include {include!r} resolves to {target}, outside the spec root {root} "
            f"(set HARDBENCH_SPEC_ROOT to widen it); {shipped_hint(include)}"
        )
    if not target.is_file():
        raise SpecError(
            f"{label}: include {include!r}: no file {target} (a path is taken from the "
            f"including spec's folder); {shipped_hint(include)}"
        )
    return target, root


def _resolve_include(
    data: dict, folder: Path, label: str, depth: int, root: Path, notes: list[str]
) -> dict:
    """``data`` merged over the spec its ``include:`` names (if any), recursively."""
    data = dict(data)
    include = data.pop("include", None)
    if include is None:
        return data
    target, base_root = _include_target(include, folder, label, root)
    base = _read_yaml(target, depth + 1, base_root, notes)
    merged, taken = _merge_include(base, data, label=f"{label}: include {include}")
    if taken:
        notes.append(f"{label} includes {include}: {taken}")
    return merged


def _merge_include(base: dict, spec: dict, *, label: str = "") -> tuple[dict, str]:
    """``spec`` deep-merged over an included ``base``, less what ``spec`` must own.

    Not taken from the base: its ``metadata.name``, ``metadata.description`` and
    ``tracking`` (who the benchmark is and where it is recorded belong to the
    including spec), and, when ``spec``'s ``data`` names another source (sets one of
    :data:`SOURCE_SWITCHES`), every data field but the conversion and split options
    of :data:`INHERITED_DATA_FIELDS` (a class list, columns, a limit or label noise
    describe the base's data, not another's).

    Args:
        base: The included spec's data (its own includes resolved).
        spec: The including spec's data.
        label: Names the including spec and its include in errors.

    Returns:
        The merged data, and a note on what the base's ``data`` gave and what was not
        taken ("" when there is nothing to say).

    Raises:
        SpecError: When ``spec`` gives ``data.path`` without ``data.source`` while the
            base reads another source (its source is not guessed to fit the path).
    """
    base = dict(base)

    def own(section: str) -> dict:
        value = spec.get(section)
        return value if isinstance(value, dict) else {}

    identity = []
    for section, fields in IDENTITY_FIELDS.items():
        if isinstance(base.get(section), dict):
            ours = [k for k in base[section] if k in fields]
            identity += [f"{section}.{k}" for k in ours if k not in own(section)]
            base[section] = {k: v for k, v in base[section].items() if k not in fields}
    parts = []
    data = base.get("data")
    if isinstance(data, dict) and data:
        given = own("data")
        switches = [k for k in SOURCE_SWITCHES if k in given]
        if "path" in given and "source" not in given and data.get("source") is not None:
            raise SpecError(
                f"{label}: data.path is given without data.source; the included source "
                f"{data['source']!r} is not taken for another path: set data.source "
                "(hardbench sources lists them)"
            )
        dropped = []
        if switches:
            dropped = [k for k in data if k not in INHERITED_DATA_FIELDS and k not in given]
            data = {k: v for k, v in data.items() if k in INHERITED_DATA_FIELDS}
            base["data"] = data
        inherited = [f"data.{k}" for k in data if k not in given]
        if inherited:
            parts.append(f"data from it: {', '.join(inherited)}")
        if dropped:
            parts.append(f"not taken (another source): {', '.join(f'data.{k}' for k in dropped)}")
    if identity:
        parts.append(f"not taken (the including spec's own): {', '.join(identity)}")
    return _deep_merge(base, spec), "; ".join(parts)


_KEY_STEP = re.compile(r"^([^\[\]]+)((?:\[[^\]]*\])*)$")  # name, then [index] ...


def _override_steps(key: str, item: str) -> list[str | int]:
    """``evaluate.models[0].model`` as ``["evaluate", "models", 0, "model"]``.

    Raises:
        SpecError: Naming the override, for an empty part or an index that is not a
            whole number.
    """
    steps: list[str | int] = []
    for part in key.split("."):
        match = _KEY_STEP.match(part)
        if not match:
            raise SpecError(f"override {item!r}: {part!r} is not a field name or name[index]")
        steps.append(match.group(1))
        for index in re.findall(r"\[([^\]]*)\]", match.group(2)):
            if not index.isdigit():
                raise SpecError(f"override {item!r}: index [{index}] must be a whole number >= 0")
            steps.append(int(index))
    return steps


def _step_path(steps: list[str | int]) -> str:
    """``["evaluate", "models", 0]`` as ``evaluate.models[0]``."""
    out = ""
    for step in steps:
        out = f"{out}[{step}]" if isinstance(step, int) else _join(out, step)
    return out


def _descend(node: object, step: str | int, after: list[str | int], item: str) -> object:
    """The child of ``node`` at ``step``, checked to take the next step of an override.

    Raises:
        SpecError: For an index into what is not a list or past its end, a field of a
            list, or a field of what is not a mapping; naming the override.
    """
    where = _step_path(after)
    if isinstance(step, int):
        if not isinstance(node, list):
            kind = "a mapping" if isinstance(node, dict) else repr(node)
            raise SpecError(
                f"override {item!r}: {where} is {kind}, not a list: it takes no [index]"
            )
        if step >= len(node):
            raise SpecError(
                f"override {item!r}: index {step} is out of range: {where} has "
                f"{len(node)} entr{'y' if len(node) == 1 else 'ies'}"
                + (f" (indices 0..{len(node) - 1})" if node else "")
            )
        return node
    if isinstance(node, list):
        raise SpecError(
            f"override {item!r}: {where} is a list of {len(node)}: index it, e.g. {where}[0].{step}"
        )
    if not isinstance(node, dict):
        raise SpecError(f"override {item!r}: {where} is not a mapping (it is {node!r})")
    return node


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to spec data.

    A part of the key may index a list: ``evaluate.models[0].epochs=2``,
    ``scores[1]=aum``. A missing mapping on the way is created; a missing list is not.

    Raises:
        SpecError: Naming the override: one without ``=``, a field of what is not a
            mapping, an index into what is not a list or past its end (with its length).
    """
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError(f"override {item!r} must look like section.field=value")
        steps = _override_steps(key, item)
        node: object = data
        for i, step in enumerate(steps):
            node = _descend(node, step, steps[:i], item)
            if i == len(steps) - 1:
                node[step] = yaml.safe_load(raw)  # type: ignore[index]
                break
            child = node[step] if isinstance(step, int) else node.get(step)  # type: ignore[union-attr]
            if child is None and isinstance(step, str):
                if isinstance(steps[i + 1], int):
                    raise SpecError(
                        f"override {item!r}: {_step_path(steps[: i + 1])} is not set in the "
                        f"spec, so it has no entry to index; set the whole list "
                        f"(--set '{_step_path(steps[: i + 1])}=[...]')"
                    )
                child = node[step] = {}  # type: ignore[index]
            node = child
    return data


ATOMIC_DEFAULTS = (("splits", "hard"), ("splits", "bins"))  # a task default the spec replaces whole


def _with_defaults(defaults: dict, data: dict, at: tuple[str, ...] = ()) -> dict:
    """``data`` deep-merged over a task's ``defaults``; atomic sections are taken whole."""
    merged = dict(defaults)
    for key, value in data.items():
        here = (*at, key)
        if (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and here not in ATOMIC_DEFAULTS
        ):
            merged[key] = _with_defaults(merged[key], value, here)
        else:
            merged[key] = value
    return merged


def parse_spec(data: dict, source: str = "<spec>") -> BenchmarkSpec:
    """Validate spec data (a mapping as read from YAML) into a :class:`BenchmarkSpec`.

    ``task.name`` (default ``classification``) picks the registered task
    (:func:`engine.spec.validate.registered_task`), whose recipe the replicas and models
    sections carry and whose defaults fill what the spec leaves out; the built spec's
    registered names are checked as it is built (:func:`engine.spec.validate.check_registered`).

    Raises:
        SpecError: With ``source``, the field's dotted path, and what is allowed.
    """
    try:
        if not isinstance(data, dict):
            raise FieldError("", f"a spec must be a mapping, got {type(data).__name__}")
        refuse_legacy_layout(data)
        task = data.get("task") or {}
        name = task.get("name", "classification") if isinstance(task, dict) else None
        info = registered_task(name)
        merged = _with_defaults(dict(info.defaults), data)
        spec = build_section(BenchmarkSpec, merged, "", recipe=info.recipe)
    except FieldError as exc:
        raise SpecError(f"{source}: {exc}") from None
    return spec  # type: ignore[return-value]


def load_spec(
    path: Path | str, overrides: list[str] | None = None, *, notes: list[str] | None = None
) -> BenchmarkSpec:
    """Read, resolve (includes, overrides) and validate a spec file.

    Args:
        path: YAML file; a bare name (``fashion-mnist``, no slash or suffix) that is
            no file in the working directory is the shipped spec of that name.
        overrides: ``section.field=value`` strings applied after includes.
        notes: If given, one line per include is appended: which ``data`` fields it
            gave and which it did not (another source, the benchmark's identity).

    Returns:
        The validated spec.

    Raises:
        SpecError: For a missing file, bad YAML, a bad include or override, or an
            invalid field.
    """
    path = Path(path)
    if is_benchmark_name(str(path)) and not path.exists():
        path = benchmark_path(str(path))
    found: list[str] = []
    resolved = path.resolve()
    data = apply_overrides(_read_yaml(resolved, 0, spec_root(resolved), found), overrides or [])
    if notes is not None:
        notes.extend(found)
    return parse_spec(data, str(path))


def load_spec_data(
    data: dict,
    overrides: list[str] | None = None,
    *,
    source: str = "<mapping>",
    notes: list[str] | None = None,
) -> BenchmarkSpec:
    """Resolve and validate spec data that may ``include:`` a spec, as a file would.

    An include is a shipped benchmark's name or a path from the working directory
    (inside its project, as for a file there).

    Args:
        data: Spec data as read from YAML (``hardbench run --data`` builds it).
        overrides: ``section.field=value`` strings applied after the include.
        source: Names the data in errors and notes.
        notes: As for :func:`load_spec`.

    Raises:
        SpecError: As :func:`load_spec`.
    """
    found: list[str] = []
    here = Path.cwd()
    merged = _resolve_include(dict(data), here, source, 0, _folder_root(here), found)
    merged = apply_overrides(merged, overrides or [])
    if notes is not None:
        notes.extend(found)
    return parse_spec(merged, source)
