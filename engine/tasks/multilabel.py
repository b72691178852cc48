"""The multi-label task plugin: samples with several classes each, sigmoids and set F1.

How a sample's labels travel, and why no int-label code can misread them:

- **Source -> cache.** A table's label column holds a list of labels per row; the
  task's defaults set ``data.label_lists`` so the ingest parses it
  (:mod:`engine.data.label_sets`, errors naming the file and row) into a multi-hot
  ``label_set`` column of the dataset cache *in place of* the int ``label`` column
  (the option is part of the fingerprint). ``DatasetCache.labels()`` refuses such a
  cache, so the classification task cannot read it by mistake.
- **Cache -> data.** :class:`engine.data.multilabel_data.MultiLabelData` holds
  ``label_sets`` uint8 (N, L); its ``labels`` raises, naming ``label_sets``.
- **Data -> training.** The replicas and evaluated models are the registered
  networks with L outputs, trained by the train loop with the multi-label objective
  (:mod:`engine.training.objectives`: sigmoids, BCE summed over labels); each
  objective refuses the other's targets by shape and dtype. Packed replicas are
  refused at validation (``replicas.pack_size``).
- **Training -> shards.** Full shards of per-replica sigmoid probabilities, flagged
  in the schema metadata, with the ``label_set`` column; the reader checks [0, 1]
  rather than row sums and its softmax views refuse them.
- **Shards -> scores.** The scoring pool resolves the spec's score names to the
  multi-label functions (:mod:`engine.scores.multilabel_registry`) because the
  shards are multi-label: confusion = mean over labels of the binary entropy of the
  replica-mean probability, averaged over epochs (label-free); action = BCE summed
  over labels and epochs; data map and forgetting per label, averaged. Directions are
  the registered ones.
- **Scores -> splits.** The shared split builder with no int labels (no per-class
  rule, no image folders by class); split files carry ``label_set``.
- **Splits -> evaluation.** Per pool sample, quality = F1 of the predicted set
  (labels with p > 0.5) against the true set, miss = any label wrong, with exact
  match and Hamming loss as extra columns (:mod:`engine.evaluation.set_metrics`);
  the in-sample ensemble (replica-mean probabilities > 0.5) is measured the same way.
  Report and MLflow go through the shared builders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.multilabel_data import MultiLabelData
from engine.evaluation.evaluate import MetricColumn
from engine.evaluation.set_metrics import multilabel_quality
from engine.evaluation.transfer import format_results_table
from engine.shards import fixed_list
from engine.spec import BenchmarkSpec
from engine.splits.builder import BuiltSplits
from engine.tasks.base import Evaluation, RunContext, UnsupportedByTask
from engine.tasks.classification import (
    ENSEMBLE,
    ClassificationTask,
    evaluate_on_pool,
    registry_param_counts,
)
from engine.tasks.eval_outputs import task_evaluation, write_eval_outputs
from engine.tracking.plots import plot_error_by_bin

ERROR = "1 - F1 of the label set"  # what an evaluation's error_* measures for this task
MISS = "any label wrong"  # what a miss is
METRICS = (MetricColumn("exact_match", "exact match"), MetricColumn("hamming", "Hamming"))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Float64 per-label probabilities of (N, L) logits."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


class MultilabelTask(ClassificationTask):
    """Hooks of the run lifecycle for a multi-label benchmark (see the module docstring).

    Ingest, replica training, evaluated-model training and MLflow models are the
    classification plugin's (the data and the objective differ, not the path); the
    split samples, evaluation and report are this task's.
    """

    name = "multilabel"

    def load_data(
        self, spec: BenchmarkSpec, run_dir: Path | None = None, log: Callable[[str], None] = print
    ) -> MultiLabelData:
        """The label sets and split from the run's dataset cache (ingested on first use).

        Raises:
            ValueError: When the source is not read as label lists (``data.label_lists``).
        """
        from engine.data.loading import load_classification_data
        from engine.distributed.ingest import chunk_map

        data = load_classification_data(spec.data, block_size=spec.shards.block_size,
                                        run_dir=run_dir, map_chunks=chunk_map(),
                                        log=log)  # fmt: skip
        if not isinstance(data, MultiLabelData):
            raise ValueError("a multilabel run reads label lists: set data.label_lists: true")
        return data

    def models_need_scores(self, spec: BenchmarkSpec) -> bool:
        """No mitigation for multi-label models: they train while the replicas are scored."""
        return False

    def evaluate(
        self, ctx: RunContext, scores: pa.Table, built: BuiltSplits, outputs: dict
    ) -> Evaluation:
        """Set F1, exact match and Hamming of the ensemble (in-sample) and every model; ``eval/``."""
        spec, pool = ctx.spec, built.sample_ids
        truth = ctx.data.label_sets[pool]
        params, replica_params = registry_param_counts(spec, ctx.data)
        probs: dict[str, np.ndarray] = {}
        if spec.evaluate.ensemble:
            column = scores.column("ensemble_probs").combine_chunks()
            mean = column.flatten().to_numpy().reshape(len(column), -1)
            probs[ENSEMBLE] = mean[pool]
        probs.update({name: sigmoid(lg[pool]) for name, lg in outputs.items()})
        evaluations, preds = [], {"sample_id": pa.array(pool)}
        preds["label_set"] = fixed_list(truth, pa.uint8())
        for name, p in probs.items():
            f1, miss, extra = multilabel_quality(name, truth, p)
            evaluations.append(evaluate_on_pool(name, built, spec, params, replica_params,
                                                quality=f1, miss=miss, extra=extra))  # fmt: skip
            preds[f"pred_{name}"] = fixed_list((p > 0.5).astype(np.uint8), pa.uint8())
            preds[f"f1_{name}"] = pa.array(f1)
        transfer = {"params": {"replica": replica_params, **params}}
        eval_dir = write_eval_outputs(ctx.run_dir, predictions=preds, evaluations=evaluations,
                                      transfer=transfer)  # fmt: skip
        plots = [plot_error_by_bin(evaluations, spec.splits.score, eval_dir / "error_by_bin.png",
                                   metric=ERROR)]  # fmt: skip
        table = format_results_table(built, evaluations, spec.splits.score, error=ERROR,
                                     miss=f"miss ({MISS})", metrics=METRICS)  # fmt: skip
        return task_evaluation(ctx.run_dir, spec, evaluations=evaluations, table=table,
                               transfer=transfer, plots=plots)  # fmt: skip

    def build_report(self, run_dir: Path) -> Path:
        """The one report (:mod:`engine.tracking.report`) with this task's error, miss and columns."""
        from engine.tracking.report import TaskReport, build_report

        return build_report(run_dir, TaskReport(title="multi-label classification", error=ERROR,
                                                miss=MISS, metrics=METRICS))  # fmt: skip

    def evaluate_model(
        self, run_dir: Path, spec: BenchmarkSpec, status: dict, **kwargs: object
    ) -> dict:
        """Refused: ``hardbench eval`` measures outside single-label classifiers.

        Raises:
            UnsupportedByTask: Always, naming the run.
        """
        raise UnsupportedByTask(
            f"{run_dir} is a multilabel run: hardbench eval measures outside classifiers of one "
            "class per sample; list the models to measure in the spec's evaluate.models"
        )
