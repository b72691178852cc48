"""A spec's data, read by its task's plugin: the one entry every stage loads samples through."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.tasks.registry import get_task

if TYPE_CHECKING:
    from engine.spec import BenchmarkSpec


def load_data(
    spec: BenchmarkSpec, run_dir: Path | str | None = None, log: Callable[[str], None] = print
) -> object:
    """The task's data for ``spec`` (classification, QA or seq2seq samples).

    Args:
        spec: The benchmark; ``spec.task.name`` picks the plugin that reads the data.
        run_dir: The run directory: its dataset cache is used (recorded in
            ``dataset.json`` on the first load); None builds the data without a run.
        log: Where ingest progress goes.
    """
    folder = Path(run_dir) if run_dir is not None else None
    return get_task(spec.task.name).runtime().load_data(spec, folder, log)
