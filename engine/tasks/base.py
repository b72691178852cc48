"""What the one run lifecycle asks of a task plugin, and what it gets back.

The lifecycle (:mod:`engine.lifecycle.run`) runs the same stages for every task:
ray_init, ingest, train_replicas, score, build, train_models, evaluate, track. Between
them it keeps ``run.json``, mirrors the run, writes the card and report and records
everything in MLflow. A plugin supplies what differs per task, as the methods of
:class:`TaskPlugin`; each gets the :class:`RunContext` of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from engine.spec import BenchmarkSpec
from engine.splits.builder import BuiltSplits


@dataclass
class RunContext:
    """One attempt of one run, as the plugin hooks see it.

    Attributes:
        run_dir: The run directory.
        run_id: Its id.
        spec: The resolved spec.
        data: The task's data (``load_data``), loaded once per attempt.
        attempt: Which start of the run this is (1, then 2, ... after ``--resume``).
        log: Where progress lines go.
        state: Scratch space a plugin may keep between its hooks (e.g. the data's
            Ray object reference).
    """

    run_dir: Path
    run_id: str
    spec: BenchmarkSpec
    data: object
    attempt: int = 1
    log: Callable[[str], None] = print
    state: dict = field(default_factory=dict)


@dataclass
class Evaluation:
    """What a task's evaluation stage produced (its files are already written under ``eval/``).

    Attributes:
        evaluations: One dict per evaluated model (and the in-sample ensemble), with at
            least ``model``, ``in_sample``, ``error_all``, ``error_hard``,
            ``error_rest``, ``error_per_bin``, ``pearson_rho``, ``auroc_score_error``.
        table: The results table printed at the end of a run.
        summary: Parent-run metrics (MLflow) beyond the stage timings.
        transfer: The transfer or comparison record (``eval/transfer.json``), for the card.
        plots: Figures logged with the run.
        model_dirs: Evaluated model name -> its saved folder.
        histories: Evaluated model name -> per-epoch ``{"epoch", "train_loss", ...}``.
    """

    evaluations: list[dict]
    table: str
    summary: dict = field(default_factory=dict)
    transfer: dict = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    model_dirs: dict[str, Path] = field(default_factory=dict)
    histories: dict[str, list[dict]] = field(default_factory=dict)


class UnsupportedByTask(ValueError):
    """A command that has no meaning for a run's task; the message names the run and says why."""


class ModelsHandle(Protocol):
    """Evaluated models being trained; ``result()`` waits for them."""

    def result(self) -> dict[str, object]:
        """Model name -> the task's per-sample outputs of that model."""


@dataclass
class Ready:
    """A :class:`ModelsHandle` whose outputs are already there."""

    outputs: dict[str, object]

    def result(self) -> dict[str, object]:
        """The outputs."""
        return self.outputs


class TaskPlugin(Protocol):
    """The hooks of one task (see the module docstring for where each is called)."""

    name: str

    def load_data(
        self, spec: BenchmarkSpec, run_dir: Path | None = None, log: Callable[[str], None] = print
    ) -> object:
        """The task's samples, with a ``split`` array indexed by sample id.

        With ``run_dir`` the run's dataset cache is used (and recorded there on the
        first load); ``log`` receives ingest progress.
        """

    def train_replicas(self, ctx: RunContext) -> None:
        """Train the seed replicas on Ray and write their shards, resuming what is done."""

    def start_models(self, ctx: RunContext, scores: pa.Table | None) -> ModelsHandle:
        """Start training the evaluated models (after scoring when ``models_need_scores``)."""

    def models_need_scores(self, spec: BenchmarkSpec) -> bool:
        """Whether the evaluated models read the run's scores (mitigation)."""

    def build_splits(self, ctx: RunContext, scores: pa.Table) -> BuiltSplits:
        """Cut the hard split and bins and write the split files."""

    def evaluate(
        self, ctx: RunContext, scores: pa.Table, built: BuiltSplits, outputs: dict
    ) -> Evaluation:
        """Measure every evaluated model per sample and write ``eval/``."""

    def mlflow_model(self, ctx: RunContext, name: str) -> tuple | None:
        """An evaluated model to log as an MLflow Model, or None to log its folder as files.

        Returns ``(torch module, input example, extra files)`` for MLflow.
        """

    def class_names(self, data: object) -> list[str] | None:
        """Class names for the card's per-class counts (None: the task has no classes)."""

    def build_report(self, run_dir: Path) -> Path:
        """(Re)build ``report.html`` from the run's files."""

    def evaluate_model(
        self, run_dir: Path, spec: BenchmarkSpec, status: dict, **kwargs: object
    ) -> dict:
        """``hardbench eval``: measure an outside model on a complete run's splits.

        Args:
            run_dir: The complete run.
            spec: Its spec.
            status: Its ``run.json``.
            **kwargs: The task's options (the model, the split, the resources).

        Returns:
            The evaluation dict, with ``split`` and ``mlflow_run``.

        Raises:
            UnsupportedByTask: When the task measures no outside model.
            ValueError: For a model or split the run cannot measure (the message says
                which and why).
        """
