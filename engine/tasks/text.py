"""What QA and seq2seq share as task plugins: a side-by-side ensemble, text splits, per-sample quality.

The replicas train side by side in one Ray task (their confusion needs every
replica's distributions in one place) and write reduced shards; the evaluated models
train in parallel Ray tasks from the start, or after scoring when one of them has a
mitigation (it ranks the training samples by a score). The splits carry
the samples' texts. Subclasses say which texts a split holds and how a model's
outputs become per-sample quality (:meth:`TextTask.measure`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.distributed.text_tasks import (
    PARAMS_KEY,
    TextModels,
    TextTraining,
    data_ref,
    run_ensemble,
)
from engine.evaluation.evaluate import evaluate_predictions
from engine.evaluation.score_comparison import (
    compare_scores,
    comparison_summary,
    format_score_comparison,
    write_score_comparison,
)
from engine.evaluation.transfer import format_results_table
from engine.layout import BENCHMARK_DIR, SPLITS_DIR
from engine.spec import BenchmarkSpec
from engine.splits.builder import BuiltSplits, build_splits
from engine.splits.display import SCORER, mark_in_sample
from engine.splits.samples import SplitSamples
from engine.tasks.base import Evaluation, RunContext, UnsupportedByTask
from engine.tasks.eval_outputs import task_evaluation, write_eval_outputs
from engine.tasks.text_sections import TextMeasure, text_task_report
from engine.tracking.plots import plot_error_by_bin


class TextTask:
    """The hooks QA and seq2seq share; subclasses set ``name`` and the per-task pieces."""

    name = "text"

    def load_data(self, spec: BenchmarkSpec, run_dir: object = None, log: object = print) -> object:
        """The tokenized samples (subclasses; the bundled corpora need no cache)."""
        raise NotImplementedError

    def split_texts(self, data: object, pool: np.ndarray) -> dict[str, list]:
        """The text columns of the split files for the pool samples (subclasses)."""
        raise NotImplementedError

    measurement: TextMeasure  # what the task measures per sample (subclasses)

    def measure(
        self, ctx: RunContext, scores: pa.Table, pool: np.ndarray, outputs: dict
    ) -> dict[str, dict[str, np.ndarray]]:
        """Model -> its per-sample arrays on the pool (subclasses).

        Each holds ``prediction`` (the output as text), ``miss`` (bool) and one float
        array per metric of :attr:`measurement` (the quality first).
        """
        raise NotImplementedError

    def training(self) -> TextTraining:
        """How the task's models train and what they output (subclasses)."""
        raise NotImplementedError

    def train_replicas(self, ctx: RunContext) -> None:
        """The side-by-side ensemble as one Ray task; resumes from its checkpoint."""
        spec = ctx.spec
        ref = data_ref(ctx.state, ctx.data)  # the driver's copy goes to the object store once
        out = run_ensemble(ctx.run_dir, spec, ref, self.training(), attempt=ctx.attempt)
        ctx.log(
            f"[train] {spec.replicas.count} replicas x {spec.replicas.recipe.epochs} epochs side "
            f"by side: {out['written']} epochs written, {out['skipped']} done before"
            + (
                f", resumed from epoch {out['resumed_from']}"
                if out["resumed_from"] is not None
                else ""
            )
        )

    def models_need_scores(self, spec: BenchmarkSpec) -> bool:
        """Whether an evaluated model has a mitigation (it ranks samples by a score).

        An erm-only run's models read no score: they train beside the replicas. With a
        mitigation they all start after scoring, as classification's models do.
        """
        return any(m.mitigation.method != "erm" for m in spec.evaluate.models)

    def start_models(self, ctx: RunContext, scores: pa.Table | None) -> object:
        """One Ray task per evaluated model not finished before.

        ``scores`` is None when the models start beside the replicas; a mitigated
        model's task reads the written ``scores.parquet`` itself (as classification's do).

        Raises:
            ValueError: When a model has a mitigation and the scores do not exist yet.
        """
        if scores is None and self.models_need_scores(ctx.spec):
            raise ValueError(
                "an evaluated model with a mitigation ranks its training samples by a score: "
                "start the models after scoring"
            )
        if ctx.spec.evaluate.models:
            ctx.log(f"[models] {', '.join(m.name for m in ctx.spec.evaluate.models)}")
        ref = data_ref(ctx.state, ctx.data)
        return TextModels(ctx.run_dir, ctx.spec, ref, self.training(), log=ctx.log)

    def build_splits(self, ctx: RunContext, scores: pa.Table) -> BuiltSplits:
        """The pool's hard split, bins and exports by the shared builder, with the samples' texts.

        Every hard rule, equal-count or fixed-edge bins and the ``hf`` export work as for
        classification (:func:`engine.splits.builder.build_splits`). A split file holds
        ``sample_id``, ``confusion``, ``action`` (and the splitting score), ``bin``,
        ``is_hard`` and the texts of :meth:`split_texts`; there are no classes, so
        :attr:`BuiltSplits.labels` is None.
        """
        spec, data = ctx.spec, ctx.data
        if spec.splits.label_free:  # the spec refuses it (engine.tasks.definitions)
            raise ValueError(f"{self.name} splits carry their answers: label_free is refused")

        def texts(ids: np.ndarray) -> dict[str, pa.Array]:
            return {name: pa.array(values) for name, values in self.split_texts(data, ids).items()}

        samples = SplitSamples(
            columns=texts, score_columns=("confusion", "action", spec.splits.score)
        )
        built = build_splits(ctx.run_dir, spec.splits, samples, scores)
        ctx.log(
            f"[build] pool {spec.splits.pool}: {len(built.sample_ids)} samples, hard split "
            f"{int(built.is_hard.sum())}, {len(built.bin_edges)} bins -> {BENCHMARK_DIR}/{SPLITS_DIR}"
        )
        return built

    def evaluate(
        self, ctx: RunContext, scores: pa.Table, built: BuiltSplits, outputs: dict
    ) -> Evaluation:
        """Per-sample quality per bin, and the scores compared with each other and the misses.

        The comparison (:mod:`engine.evaluation.score_comparison`) is written to
        ``eval/score_comparison.json`` and, as before, to ``eval/transfer.json``.

        An evaluated model's ``params`` is its trained parameter count, saved with its
        outputs; the in-sample ensemble's, and a model's saved before the count was
        recorded, is None. On a ``splits.pool`` of ``train`` or ``all`` every model is
        in-sample (``in_sample_reason``: the pool holds its training samples).
        """
        spec, pool = ctx.spec, built.sample_ids
        per_sample = self.measure(ctx, scores, pool, outputs)
        measurement = self.measurement
        evaluations = [
            mark_in_sample(evaluate_predictions(
                name, built, quality=arrays[measurement.quality.key], miss=arrays["miss"],
                seed=spec.replicas.recipe.seed, in_sample=name == SCORER,
                params=outputs.get(name, {}).get(PARAMS_KEY),
                extra={m.key: arrays[m.key] for m in measurement.metrics},
            ), spec.splits.pool)
            for name, arrays in per_sample.items()
        ]  # fmt: skip
        mitigations = {m.name: m.mitigation for m in spec.evaluate.models}
        for ev in evaluations:  # recorded as classification records it (MLflow params)
            mit = mitigations.get(ev["model"])
            if mit is not None and mit.method != "erm":
                ev["mitigation"] = asdict(mit)
        comparison = compare_scores(scores, pool, {n: a["miss"] for n, a in per_sample.items()},
                                    seed=spec.replicas.recipe.seed)  # fmt: skip
        preds = {"sample_id": pa.array(pool)}
        for name, arrays in per_sample.items():
            preds[f"pred_{name}"] = pa.array(list(arrays["prediction"]), pa.string())
            for metric, values in arrays.items():
                if metric != "prediction":
                    preds[f"{metric}_{name}"] = pa.array(values)
        eval_dir = write_eval_outputs(ctx.run_dir, predictions=preds, evaluations=evaluations,
                                      transfer=comparison)  # fmt: skip
        write_score_comparison(ctx.run_dir, comparison)
        plots = [plot_error_by_bin(evaluations, spec.splits.score, eval_dir / "error_by_bin.png",
                                   metric=measurement.error)]  # fmt: skip
        summary = comparison_summary(comparison)
        table = format_results_table(
            built, evaluations, spec.splits.score, error=measurement.error,
            miss=f"miss ({measurement.miss})", metrics=measurement.metrics,
        )  # fmt: skip
        return task_evaluation(
            ctx.run_dir, spec, evaluations=evaluations,
            table="\n".join([table, *format_score_comparison(comparison)]),
            summary=summary, transfer=comparison, plots=plots,
        )  # fmt: skip

    def mlflow_model(self, ctx: RunContext, name: str) -> None:
        """Text models are logged as their folders (state dict, curve, outputs), not MLflow Models."""
        return None

    def evaluate_model(
        self, run_dir: Path, spec: BenchmarkSpec, status: dict, **kwargs: object
    ) -> dict:
        """Refused: a text run's evaluated models are the ones its spec lists.

        Raises:
            UnsupportedByTask: Always, naming the run and its task.
        """
        raise UnsupportedByTask(
            f"{run_dir} is a {spec.task.name} run: hardbench eval measures outside models on "
            "classification runs; a text run's evaluated models are in its spec"
        )

    def class_names(self, data: object) -> None:
        """Text tasks have no classes."""
        return None

    def build_report(self, run_dir: Path) -> Path:
        """The one report (:mod:`engine.tracking.report`) with the task's columns and examples."""
        from engine.tracking.report import build_report

        return build_report(run_dir, text_task_report(Path(run_dir), self.measurement))
