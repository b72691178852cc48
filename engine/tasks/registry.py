"""Registry of tasks: what the spec needs to know about each, and where its plugin lives.

A task is registered with a :class:`TaskInfo`: its recipe (the fields of a replicas or
model entry), its data sources, the spec values it sets unless a spec does, and its
own checks. The heavy part, the plugin with the lifecycle hooks (read and batch the
samples, train replicas and models, measure per-sample quality), is imported only
when a run needs it (``TaskInfo.runtime()``), so parsing a spec stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

from engine._util import unknown_name_error
from engine.spec import BenchmarkSpec


@dataclass(frozen=True)
class TaskInfo:
    """What the engine knows about one task before it runs.

    Attributes:
        name: Registry name (the spec's ``task.name``).
        description: One line for ``hardbench tasks``.
        recipe: The recipe dataclass of the replicas and of every evaluated model.
        sources: Returns the data sources the task reads.
        plugin: ``"module:Class"`` of the runtime plugin (:mod:`engine.tasks.base`).
        defaults: Spec values the task sets where the spec sets none (deep-merged
            under the spec; ``splits.hard`` and ``splits.bins`` count as one value each).
        validate: ``validate(spec)`` raises ``FieldError`` for what only this task refuses.
        nothing_to_ingest: ``nothing_to_ingest(spec)``: why ``hardbench ingest`` has no
            dataset cache to build for the spec (what its first run reads instead), or
            None when it builds one.
        reduced_gradients: Whether the task's reduced shards (``shards.mode: reduced``)
            carry input gradients on ``shards.grad_epochs`` (the text tasks' side-by-side
            replicas record them; a classification pack does not).
    """

    name: str
    description: str
    recipe: type
    sources: Callable[[], list[str]]
    plugin: str
    defaults: Mapping = field(default_factory=dict)
    validate: Callable[[BenchmarkSpec], None] = lambda spec: None
    nothing_to_ingest: Callable[[BenchmarkSpec], str | None] = lambda spec: None
    reduced_gradients: bool = False

    def runtime(self) -> object:
        """The plugin instance (imported on first use)."""
        return _load_plugin(self.plugin)


@cache
def _load_plugin(path: str) -> object:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)()


_TASKS: dict[str, TaskInfo] = {}


def register_task(info: TaskInfo) -> TaskInfo:
    """Add ``info`` to the registry; a second task with the same name is an error."""
    if info.name in _TASKS:
        raise ValueError(f"task {info.name!r} is already registered")
    _TASKS[info.name] = info
    return info


def get_task(name: str) -> TaskInfo:
    """Return the registered task ``name``.

    Raises:
        ValueError: For an unknown name; the message lists close matches.
    """
    if name not in _TASKS:
        raise unknown_name_error("task", name, _TASKS)
    return _TASKS[name]


def list_tasks() -> list[str]:
    """Names of the registered tasks, sorted."""
    return sorted(_TASKS)
