"""Read specs: YAML files, ``include:`` bases, ``--set`` overrides, one schema for every task.

A spec file may name a base with ``include: other.yaml`` (resolved relative to
the including file); its keys are deep-merged over the base. An include must be a
``.yaml``/``.yml`` file inside the spec root: ``$HARDBENCH_SPEC_ROOT`` if set, else
the top-level spec's project (nearest ancestor with ``pyproject.toml`` or ``.git``),
else its directory, so a spec cannot make the engine read arbitrary files. ``load_spec`` also
takes ``--set``-style overrides (``replicas.epochs=3``). Every field error names
the field's dotted path and the allowed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path

import yaml

from engine.spec.benchmark import BenchmarkSpec
from engine.spec.common import FieldError, SpecError
from engine.spec.legacy import refuse_legacy_layout
from engine.tasks import get_task, list_tasks

MAX_INCLUDE_DEPTH = 8  # guards against include cycles


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
    from engine.spec.evaluate import FINETUNE_OWNS
    from engine.training.finetune import FinetuneOptions

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
    env = os.environ.get("HARDBENCH_SPEC_ROOT")
    if env:
        return Path(env).resolve()
    for parent in top.resolve().parents:
        if (parent / "pyproject.toml").exists() or (parent / ".git").exists():
            return parent
    return top.resolve().parent


def _read_yaml(path: Path, depth: int = 0, root: Path | None = None) -> dict:
    root = root or spec_root(path)
    if depth > MAX_INCLUDE_DEPTH:
        raise SpecError(f"{path}: include chain deeper than {MAX_INCLUDE_DEPTH} (a cycle?)")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping, got {type(data).__name__}")
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str):
        raise SpecError(f"{path}: include must be a file name, got {include!r}")
    target = (path.parent / include).resolve()
    if target.suffix not in (".yaml", ".yml"):
        raise SpecError(f"{path}: include must name a .yaml or .yml file, got {include!r}")
    if not target.is_relative_to(root):
        raise SpecError(
            f"{path}: include {include!r} resolves to {target}, outside the spec root {root} "
            "(set HARDBENCH_SPEC_ROOT to widen it)"
        )
    base = _read_yaml(target, depth + 1, root)
    return _deep_merge(base, data)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to spec data.

    Raises:
        SpecError: On an override without ``=`` or that descends into a non-mapping.
    """
    data = _deep_merge({}, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError(f"override {item!r} must look like section.field=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(f"override {item!r}: {part!r} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
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

    ``task.name`` (default ``classification``) picks the task, whose recipe the
    replicas and models sections carry and whose defaults fill what the spec leaves out.

    Raises:
        SpecError: With ``source``, the field's dotted path, and what is allowed.
    """
    try:
        if not isinstance(data, dict):
            raise FieldError("", f"a spec must be a mapping, got {type(data).__name__}")
        refuse_legacy_layout(data)
        task = data.get("task") or {}
        name = task.get("name", "classification") if isinstance(task, dict) else None
        if name not in list_tasks():
            raise FieldError("task.name", f"must be one of {', '.join(list_tasks())}, got {name!r}")
        info = get_task(name)
        merged = _with_defaults(dict(info.defaults), data)
        spec = build_section(BenchmarkSpec, merged, "", recipe=info.recipe)
    except FieldError as exc:
        raise SpecError(f"{source}: {exc}") from None
    return spec  # type: ignore[return-value]


def load_spec(path: Path | str, overrides: list[str] | None = None) -> BenchmarkSpec:
    """Read, resolve (includes, overrides) and validate a spec file.

    Args:
        path: YAML file.
        overrides: ``section.field=value`` strings applied after includes.

    Returns:
        The validated spec.

    Raises:
        SpecError: For a missing file, bad YAML, or an invalid field.
    """
    path = Path(path)
    data = apply_overrides(_read_yaml(path.resolve()), overrides or [])
    return parse_spec(data, str(path))
