"""The spec layout of the text tasks before the one schema, refused in files and migrated in runs.

Before one schema served every task, QA and seq2seq specs wrote ``task: qa``, a nested
``replicas.recipe``, ``replicas.cpus``/``gpus``, ``splits.hard_fraction``, an integer
``splits.bins`` and a top-level ``models`` list. A spec file in that layout is refused
with the new spelling of each key; a run directory written then still opens, because
its stored ``spec.yaml`` is migrated (:func:`migrate_legacy`).
"""

from __future__ import annotations

import copy

from engine.spec.common import FieldError

NEW_SPELLINGS = {
    "task": "task: {name: qa} (or seq2seq)",
    "models": "evaluate: {models: [...]}",
    "replicas.recipe": "the recipe's fields inline in replicas (dim, layers, epochs, ...)",
    "replicas.cpus": "replicas.cpus_per_worker",
    "replicas.gpus": "replicas.gpus_per_worker",
    "splits.hard_fraction": "splits.hard: {hardest_fraction: ...}",
    "splits.bins": "splits.bins: {count: ...}",
}  # old key -> how the one schema writes it


def _legacy_keys(data: dict) -> list[str]:
    if not isinstance(data, dict):
        return []
    found = []
    if isinstance(data.get("task"), str):
        found.append("task")
    if "models" in data:
        found.append("models")
    replicas = data.get("replicas") if isinstance(data.get("replicas"), dict) else {}
    found += [f"replicas.{k}" for k in ("recipe", "cpus", "gpus") if k in replicas]
    splits = data.get("splits") if isinstance(data.get("splits"), dict) else {}
    if "hard_fraction" in splits:
        found.append("splits.hard_fraction")
    if isinstance(splits.get("bins"), int) and not isinstance(splits.get("bins"), bool):
        found.append("splits.bins")
    return found


def refuse_legacy_layout(data: dict) -> None:
    """Raise a FieldError naming every key of the old text-task layout and its new spelling."""
    found = _legacy_keys(data)
    if found:
        raise FieldError(
            found[0],
            "this is the text-task layout from before the one spec schema; write "
            + "; ".join(f"{k} as {NEW_SPELLINGS[k]}" for k in found)
            + " (docs/specs.md)",
        )


def migrate_legacy(data: dict) -> dict:
    """A spec mapping in the old text-task layout rewritten in the one schema (else unchanged)."""
    if not _legacy_keys(data):
        return data
    out = copy.deepcopy(data)
    if isinstance(out.get("task"), str):
        out["task"] = {"name": out["task"]}
    replicas = out.get("replicas", {})
    replicas.update(replicas.pop("recipe", {}))
    for old, new in (("cpus", "cpus_per_worker"), ("gpus", "gpus_per_worker")):
        if old in replicas:
            replicas[new] = replicas.pop(old)
    splits = out.get("splits", {})
    if "hard_fraction" in splits:
        splits["hard"] = {"hardest_fraction": splits.pop("hard_fraction")}
    if isinstance(splits.get("bins"), int):
        splits["bins"] = {"count": splits["bins"]}
    if "models" in out:
        models = [{**{k: v for k, v in m.items() if k != "recipe"}, **m.get("recipe", {})}
                  for m in out.pop("models")]  # fmt: skip
        out.setdefault("evaluate", {})["models"] = models
    return out
