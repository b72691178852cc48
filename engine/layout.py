"""The run directory's layout: the name of every entry a run writes, in one place.

A run directory ``<runs>/<run_id>/`` holds::

    run.json  spec.yaml  dataset.json  scores.parquet  report.html  report_figures/
    preds/        prediction shards (engine.shards.layout names what is inside)
    checkpoints/  per-epoch replica checkpoints
    quarantine/   shards that failed verification
    benchmark/    splits/<name>.parquet, card.json, card.md, data_report.json, exports
    models/       one folder per evaluated model (engine.models.folder names what is inside)
    eval/         metrics.json, transfer.json, predictions.parquet; extra/<model>/ for
                  models evaluated after the build
    ensembles/    <model>/: an evaluated model's seed ensemble (evaluate.models[].seeds),
                  laid out as a run: spec.yaml, dataset.json, preds/, scores.parquet
    audit/        one folder per label audit
    datasets/     v1, v2, ...: relabelled versions of the labels
    ray_train/    Ray Train's own bookkeeping

This module is at the bottom of the layers: it imports nothing of the engine. The
names are what is on disk: changing one makes older run directories unreadable.
"""

from __future__ import annotations

RUN_FILE = "run.json"  # status, timings and outputs of a run, rewritten after each stage
SPEC_FILE = "spec.yaml"  # the resolved spec, next to every result
DATASET_FILE = "dataset.json"  # the run's record of its cache: folder, fingerprint, skips
SCORES_FILE = "scores.parquet"  # one row per sample: sample_id, split, label, scores
REPORT_FILE = "report.html"  # the run's HTML report
REPORT_FIGURES_DIR = "report_figures"  # the report's PNG figures
HEARTBEAT_FILE = ".heartbeat"  # the driver (JSON); its mtime is the last beat
PREDS_DIR = "preds"  # prediction shards and their manifests
CHECKPOINTS_DIR = "checkpoints"  # per-epoch checkpoints of the replicas
QUARANTINE_DIR = "quarantine"  # shards that failed verification
RAY_TRAIN_DIR = "ray_train"  # Ray Train's storage path: its own bookkeeping, not an output

BENCHMARK_DIR = "benchmark"  # splits/, exports, the card and the data report
SPLITS_DIR = "splits"  # under benchmark/: one Parquet file per split
CARD_JSON_FILE = "card.json"  # under benchmark/: the benchmark card, machine-readable
CARD_MD_FILE = "card.md"  # under benchmark/: the benchmark card, for people
DATA_REPORT_FILE = "data_report.json"  # under benchmark/: the data report, for MLflow

MODELS_DIR = "models"  # one folder per evaluated model

EVAL_DIR = "eval"  # the build's evaluation of its models on the splits
METRICS_FILE = "metrics.json"  # under eval/: per-model metrics on every split and bin
TRANSFER_FILE = "transfer.json"  # under eval/: the transfer record (correlations, Kendall)
EVAL_PREDICTIONS_FILE = "predictions.parquet"  # under eval/: per-sample predictions
EVAL_EXTRA_DIR = "extra"  # under eval/: models evaluated on a finished run, one folder each
SCORE_COMPARISON_FILE = "score_comparison.json"  # under eval/: Spearman, AUROC of the scores
LABELS_EVAL_PREFIX = "labels-"  # under eval/: labels-<version>/, the models on corrected labels
CORRECTNESS_FILE = "correctness.parquet"  # in labels-<version>/: right/wrong per sample and set

ENSEMBLES_DIR = "ensembles"  # <name>/: an evaluated model's seed ensemble, laid out as a run
AUDIT_DIR = "audit"  # one folder per label audit
DATASETS_DIR = "datasets"  # v1, v2, ...: relabelled versions of the labels
