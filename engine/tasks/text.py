"""What QA and seq2seq share as task plugins: a side-by-side ensemble, text splits, per-sample quality.

The replicas train side by side in one Ray task (their confusion needs every
replica's distributions in one place) and write reduced shards; the evaluated models
train in parallel Ray tasks from the start (they read no score). The splits carry
the samples' texts. Subclasses say which texts a split holds and how a model's
outputs become per-sample quality (:meth:`TextTask.measure`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.qa import SPLIT_HELDOUT
from engine.evaluation.text_eval import TEXT_METRICS, compare_scores, text_results_table
from engine.scores import hardness
from engine.shards import atomic_write_bytes, atomic_write_table
from engine.splits.builder import BENCHMARK_DIR, BuiltSplits, bin_ranges
from engine.splits.selectors import quantile_bins, top_fraction
from engine.tasks.base import Evaluation, RunContext
from engine.tracking.plots import plot_error_by_bin

DATA_REF = "data_ref"  # RunContext.state key: the data in Ray's object store, put once


class TextTask:
    """The hooks QA and seq2seq share; subclasses set ``name`` and the per-task pieces."""

    name = "text"

    def load_data(self, spec: object, run_dir: object = None, log: object = print) -> object:
        """The tokenized samples (subclasses; the bundled corpora need no cache)."""
        raise NotImplementedError

    def split_texts(self, data: object, pool: np.ndarray) -> dict[str, list]:
        """The text columns of the split files for the pool samples (subclasses)."""
        raise NotImplementedError

    def measure(
        self, ctx: RunContext, scores: pa.Table, pool: np.ndarray, outputs: dict, args: tuple
    ) -> list[tuple[dict, dict]]:
        """``(evaluation, per-sample arrays)`` of every evaluated model (subclasses)."""
        raise NotImplementedError

    def _data_ref(self, ctx: RunContext) -> object:
        import ray

        if DATA_REF not in ctx.state:  # the driver's copy goes to the object store once
            ctx.state[DATA_REF] = ray.put(ctx.data)
        return ctx.state[DATA_REF]

    def train_replicas(self, ctx: RunContext) -> None:
        """The side-by-side ensemble as one Ray task; resumes from its checkpoint."""
        from engine.distributed.text_tasks import run_ensemble

        spec = ctx.spec
        out = run_ensemble(ctx.run_dir, spec, self._data_ref(ctx), attempt=ctx.attempt)
        ctx.log(
            f"[train] {spec.replicas.count} replicas x {spec.replicas.recipe.epochs} epochs side "
            f"by side: {out['written']} epochs written, {out['skipped']} done before"
            + (
                f", resumed from epoch {out['resumed_from']}"
                if out["resumed_from"] is not None
                else ""
            )
        )

    def models_need_scores(self, spec: object) -> bool:
        """The evaluated text models read no score: they train beside the replicas."""
        return False

    def start_models(self, ctx: RunContext, scores: pa.Table | None) -> object:
        """One Ray task per evaluated model not finished before."""
        from engine.distributed.text_tasks import TextModels

        if ctx.spec.evaluate.models:
            ctx.log(f"[models] {', '.join(m.name for m in ctx.spec.evaluate.models)}")
        return TextModels(ctx.run_dir, ctx.spec, self._data_ref(ctx), log=ctx.log)

    def build_splits(self, ctx: RunContext, scores: pa.Table) -> BuiltSplits:
        """The hardest fraction and equal-count bins of the pool, with the samples' texts."""
        spec, data = ctx.spec, ctx.data
        ids = scores.column("sample_id").to_numpy()
        pool = np.flatnonzero(data.split == SPLIT_HELDOUT) if spec.splits.pool == "heldout" else ids
        score = scores.column(spec.splits.score).to_numpy()[pool]
        hard_by = hardness(spec.splits.score, score)  # higher = harder, whatever the score
        bins = quantile_bins(hard_by, pool, spec.splits.bins.count)
        is_hard = top_fraction(hard_by, pool, spec.splits.hard.value)
        columns = {
            "sample_id": pa.array(pool),
            **{k: pa.array(v) for k, v in self.split_texts(data, pool).items()},
            **{
                name: pa.array(scores.column(name).to_numpy()[pool])
                for name in dict.fromkeys(("confusion", "action", spec.splits.score))
            },
            "bin": pa.array(bins),
            "is_hard": pa.array(is_hard),
        }
        masks = {"pool": np.ones(len(pool), bool), "hard": is_hard, "rest": ~is_hard}
        masks.update({f"bin_{b}": bins == b for b in range(spec.splits.bins.count)})
        table = pa.table(columns)
        split_dir = ctx.run_dir / BENCHMARK_DIR / "splits"
        files = {}
        for name, mask in masks.items():
            files[name] = split_dir / f"{name}.parquet"
            atomic_write_table(files[name], table.filter(pa.array(mask)))
        ctx.log(
            f"[build] pool {len(pool)} samples, hard {int(is_hard.sum())}, "
            f"{spec.splits.bins.count} bins -> {BENCHMARK_DIR}/splits"
        )
        return BuiltSplits(
            sample_ids=pool, labels=np.zeros(len(pool), np.int64), score=score, bins=bins,
            is_hard=is_hard, bin_edges=bin_ranges(score, bins, spec.splits.bins.count),
            files=files, score_name=spec.splits.score,
        )  # fmt: skip

    def evaluate(
        self, ctx: RunContext, scores: pa.Table, built: BuiltSplits, outputs: dict
    ) -> Evaluation:
        """Per-sample quality per bin, action vs confusion, each score's AUROC for the misses."""
        from engine.distributed.models import MODELS_DIR, model_history

        spec, run_dir, pool = ctx.spec, ctx.run_dir, built.sample_ids
        args = (built.bins, built.is_hard, spec.splits.bins.count, built.hardness)
        measured = self.measure(ctx, scores, pool, outputs, args)
        evaluations = [ev for ev, _ in measured]
        per_sample = {ev["model"]: arrays for ev, arrays in measured}
        comparison = compare_scores(scores, pool, {n: a["miss"] for n, a in per_sample.items()})
        eval_dir = run_dir / "eval"
        preds = {"sample_id": pa.array(pool)}
        for name, arrays in per_sample.items():
            preds[f"pred_{name}"] = pa.array(list(arrays["prediction"]), pa.string())
            for metric, values in arrays.items():
                if metric != "prediction":
                    preds[f"{metric}_{name}"] = pa.array(values)
        atomic_write_table(eval_dir / "predictions.parquet", pa.table(preds))
        atomic_write_bytes(eval_dir / "metrics.json", json.dumps(evaluations, indent=2).encode())
        atomic_write_bytes(eval_dir / "transfer.json", json.dumps(comparison, indent=2).encode())
        metric = TEXT_METRICS[self.name]["metric"]
        plots = [plot_error_by_bin(evaluations, spec.splits.score, eval_dir / "error_by_bin.png",
                                   metric=f"1 - {metric}")]  # fmt: skip
        summary = {
            f"spearman_action_confusion_{k}": v
            for k, v in comparison["spearman_action_confusion"].items()
        }
        for name, aucs in comparison["auroc"].items():
            summary.update({f"auroc_{name}_{k}": v for k, v in aucs.items()})
        names = [m.name for m in spec.evaluate.models]
        return Evaluation(
            evaluations=evaluations,
            table=text_results_table(self.name, evaluations, comparison, spec.splits.score),
            summary=summary,
            transfer=comparison,
            plots=plots,
            model_dirs={n: run_dir / MODELS_DIR / n for n in names},
            histories={n: model_history(run_dir, n) for n in names},
        )

    def mlflow_model(self, ctx: RunContext, name: str) -> None:
        """Text models are logged as their folders (state dict, curve, outputs), not MLflow Models."""
        return None

    def class_names(self, data: object) -> None:
        """Text tasks have no classes."""
        return None

    def build_report(self, run_dir: Path) -> Path:
        """The HTML report of a text run (:mod:`engine.tracking.text_report`)."""
        from engine.tracking.text_report import build_text_report

        return build_text_report(run_dir)
