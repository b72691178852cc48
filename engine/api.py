"""The Python API: build a benchmark from a notebook or a script, and open finished runs.

Everything the CLI does to a run goes through the same lifecycle
(:mod:`engine.lifecycle`); this module wraps it in objects::

    from engine import api

    run = api.run(
        "benchmarks/digits.yaml",
        overrides={"replicas.epochs": 4, "shards.grad_epochs": [0, 3]},
    )
    scores = run.scores_frame()              # pandas: one row per sample
    hard = run.split("hard")                 # pyarrow: the hard split's rows
    print(run.card["splits"]["hard_rule_text"], run.report_path, run.mlflow_run_id)

    again = api.open_run(run.run_dir)        # the same run, from its directory

A :class:`Run` reads its files lazily and never writes into the run directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from engine.layout import (
    BENCHMARK_DIR,
    CARD_JSON_FILE,
    CARD_MD_FILE,
    EVAL_DIR,
    METRICS_FILE,
    REPORT_FILE,
    RUN_FILE,
    SCORES_FILE,
    SPLITS_DIR,
    TRANSFER_FILE,
)
from engine.lifecycle.driver import run_state
from engine.lifecycle.rundir import RunSetupError, read_run_spec, read_status
from engine.spec import BenchmarkSpec, apply_overrides, load_spec, parse_spec

if TYPE_CHECKING:
    import pandas as pd

Overrides = Mapping[str, object] | Iterable[str] | None
"""``{"replicas.epochs": 3}`` or ``["replicas.epochs=3"]``: what ``--set`` takes."""


def _override_strings(overrides: Overrides) -> list[str]:
    """``--set``-style strings from a mapping (values written as YAML) or from strings."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise TypeError("overrides must be a mapping or a list of 'section.field=value' strings")
    return list(overrides)


def load(spec: str | Path | BenchmarkSpec | Mapping, overrides: Overrides = None) -> BenchmarkSpec:
    """A validated spec from a YAML file, a mapping or a spec, with overrides applied.

    Args:
        spec: A spec file, spec data as read from YAML, or a :class:`BenchmarkSpec`.
        overrides: ``{"section.field": value}`` or ``["section.field=value", ...]``.

    Returns:
        The validated spec.

    Raises:
        SpecError: For a missing file, bad YAML or an invalid field (named by its path).
    """
    strings = _override_strings(overrides)
    if isinstance(spec, BenchmarkSpec):
        if not strings:
            return spec
        return parse_spec(apply_overrides(spec.to_dict(), strings), spec.metadata.name)
    if isinstance(spec, Mapping):
        return parse_spec(apply_overrides(dict(spec), strings), "<mapping>")
    return load_spec(spec, strings)


def run(
    spec: str | Path | BenchmarkSpec | Mapping,
    *,
    overrides: Overrides = None,
    runs_dir: str | Path = "runs",
    run_id: str | None = None,
    num_cpus: int | None = None,
    output: str | None = None,
    log: Callable[[str], None] | None = print,
) -> Run:
    """Build a benchmark end to end: replicas, scores, splits, evaluation, card, report, MLflow.

    Ray is started locally (``num_cpus``) unless ``RAY_ADDRESS`` points at a cluster;
    MLflow records into ``<runs_dir>/mlflow.db`` unless ``MLFLOW_TRACKING_URI`` is set.

    Args:
        spec: A spec file, spec data or a :class:`BenchmarkSpec`.
        overrides: Applied to the spec before validation (see :func:`load`).
        runs_dir: Parent of the run directory.
        run_id: The run directory's name; a fresh ``<name>-<UTC time>-<hex>`` by default.
        num_cpus: CPUs of the local Ray cluster.
        output: Mirror the run there after every stage (a path or a filesystem URI).
        log: Where progress lines go; ``None`` for none.

    Returns:
        The finished run.

    Raises:
        SpecError: The spec is invalid; nothing was written.
        RunSetupError: A bad run id, an existing run directory or an unusable output.
        Exception: Whatever failed the build; ``run.json`` says so, and
            :func:`resume` continues from the finished stages.
    """
    from engine.lifecycle import run_benchmark

    result = run_benchmark(
        load(spec, overrides),
        runs_dir=runs_dir,
        run_id=run_id,
        num_cpus=num_cpus,
        output=output,
        log=log or (lambda line: None),
    )
    return Run(result.run_dir, table=result.table)


def resume(
    run_dir: str | Path,
    *,
    num_cpus: int | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = print,
) -> Run:
    """Finish a failed or interrupted run, redoing only what is missing.

    Args:
        run_dir: The run directory (or a mirrored run's URI).
        num_cpus: CPUs of the local Ray cluster.
        force: Resume a run marked running by a driver on another host that cannot be
            checked (a fresh heartbeat, or none); not needed once the run is interrupted.
        log: Where progress lines go; ``None`` for none.

    Returns:
        The finished run.

    Raises:
        RunSetupError: Not a run, already complete, or its driver still running.
    """
    from engine.lifecycle import resume_run

    result = resume_run(run_dir, num_cpus=num_cpus, force=force, log=log or (lambda line: None))
    return Run(result.run_dir, table=result.table)


def open_run(run_dir: str | Path) -> Run:
    """A run from its directory, finished or not (``Run.state`` says which).

    Raises:
        RunSetupError: If the directory is not a run.
    """
    run_dir = Path(run_dir).resolve()
    read_status(run_dir)  # refuses a directory that is not a run
    return Run(run_dir)


def list_runs(runs_dir: str | Path = "runs") -> list[Run]:
    """Every run under ``runs_dir``, sorted by run id (none when it does not exist).

    Each run's :attr:`Run.state` says whether it is complete, failed, killed, running,
    or ``interrupted`` (marked running, but its driver is gone: resume it with
    :func:`resume` or ``hardbench run --resume RUN_DIR``).
    """
    root = Path(runs_dir)
    return [Run(p.parent.resolve()) for p in sorted(root.glob(f"*/{RUN_FILE}"))]


@dataclass(eq=False)
class Run:
    """One run directory, read lazily.

    Attributes:
        run_dir: The run directory (absolute).
        table: The results table the build printed (only for a run built or resumed here).
    """

    run_dir: Path
    table: str | None = None

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, status={self.state!r}, dir={str(self.run_dir)!r})"

    @property
    def run_id(self) -> str:
        """The run directory's name."""
        return self.run_dir.name

    @property
    def status(self) -> dict:
        """``run.json`` as it is now: ``status`` (running, complete, failed, killed), timings, attempts.

        ``status["status"]`` is what the driver last wrote: a driver killed with SIGKILL or
        lost with its machine leaves ``running`` there for ever; :attr:`state` tells.
        """
        return read_status(self.run_dir)

    @property
    def state(self) -> str:
        """The run's effective state: ``run.json``'s status, or ``interrupted`` if its driver is gone.

        A run marked running is ``interrupted`` when its last driver is on this host and
        no longer runs (pid and process start time), or is on another host and left no
        heartbeat for ``HEARTBEAT_STALE_S`` (:mod:`engine.lifecycle.driver`); resume it with
        :func:`resume`. Computed on each read; ``run.json`` is not rewritten.
        """
        return run_state(self.run_dir, self.status).status

    @property
    def complete(self) -> bool:
        """Whether the run finished."""
        return self.status.get("status") == "complete"

    @cached_property
    def spec(self) -> BenchmarkSpec:
        """The resolved spec the run was made with."""
        return read_run_spec(self.run_dir)

    @property
    def task(self) -> str:
        """``classification``, ``qa`` or ``seq2seq``."""
        return self.spec.task.name

    def _need(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise RunSetupError(
                f"run {self.run_id} has no {path.relative_to(self.run_dir)} "
                f"(status {self.status.get('status')!r}): {what} is not there yet"
            )
        return path

    def scores(self, columns: list[str] | None = None) -> pa.Table:
        """The per-sample scores, one row per scored sample.

        Columns: ``sample_id``, ``split``, ``label`` (where labelled), one float column
        per score (direction per score in ``card["score_directions"]``: e.g. confusion
        higher = harder, aum lower = harder) and the ensemble's prediction.

        Args:
            columns: Read only these columns.
        """
        path = self._need(self.run_dir / SCORES_FILE, "the score table")
        return pq.read_table(path, columns=columns)

    def scores_frame(self, columns: list[str] | None = None) -> pd.DataFrame:
        """:meth:`scores` as a pandas DataFrame."""
        return self.scores(columns).to_pandas()

    @property
    def splits(self) -> dict[str, Path]:
        """Split name (``pool``, ``hard``, ``rest``, ``bin_0`` easiest ... ``bin_{n-1}`` hardest) -> file."""
        split_dir = self._need(self.run_dir / BENCHMARK_DIR / SPLITS_DIR, "the splits")
        return {p.stem: p for p in sorted(split_dir.glob("*.parquet"))}

    def split(self, name: str) -> pa.Table:
        """One split's rows (sample ids, labels, scores and the sample's content).

        Raises:
            KeyError: For a split the run does not have, naming those it has.
        """
        files = self.splits
        if name not in files:
            raise KeyError(f"run {self.run_id} has no split {name!r}; it has {', '.join(files)}")
        return pq.read_table(files[name])

    @cached_property
    def card(self) -> dict:
        """The benchmark card (``benchmark/card.json``): splits, rule, statistics, evaluation."""
        path = self._need(self.run_dir / BENCHMARK_DIR / CARD_JSON_FILE, "the benchmark card")
        return json.loads(path.read_text())

    @property
    def card_path(self) -> Path:
        """The human-readable card, ``benchmark/card.md``."""
        return self._need(self.run_dir / BENCHMARK_DIR / CARD_MD_FILE, "the benchmark card")

    @property
    def report_path(self) -> Path:
        """``report.html``: open it in a browser."""
        return self._need(self.run_dir / REPORT_FILE, "the report")

    @property
    def evaluations(self) -> list[dict]:
        """One record per evaluated model: error on every split and bin, rho, AUROC, params.

        Records of runs written before issue 25 get today's keys (``num_errors`` is read
        as ``num_misses``).
        """
        from engine.evaluation.evaluate import upgrade_evaluation

        path = self._need(self.run_dir / EVAL_DIR / METRICS_FILE, "the evaluation")
        return [upgrade_evaluation(ev) for ev in json.loads(path.read_text())]

    @property
    def transfer(self) -> dict:
        """Transfer metrics across models (Kendall tau and its reference models)."""
        path = self._need(self.run_dir / EVAL_DIR / TRANSFER_FILE, "the transfer record")
        return json.loads(path.read_text())

    @property
    def tracking_uri(self) -> str | None:
        """The MLflow store the run is recorded in."""
        return self.status.get("mlflow", {}).get("tracking_uri")

    @property
    def mlflow_run_id(self) -> str | None:
        """The MLflow parent run's id (RUNNING while the build runs)."""
        return self.status.get("mlflow", {}).get("parent_run_id")

    @property
    def model_runs(self) -> dict[str, str]:
        """Evaluated model -> its nested MLflow run's id (``runs:/<id>/model`` loads it)."""
        return dict(self.status.get("mlflow", {}).get("model_runs", {}))
