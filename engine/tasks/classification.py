"""The classification task plugin: labelled samples (images or token ids) and top-1 error.

Replicas train on Ray Train workers or as packed Ray tasks and write full, mean or
reduced shards; evaluated models train as Ray tasks after scoring (a mitigation may
read the scores); each is measured by top-1 error on the pool, the hard split and
every bin, and the small ensemble's hardness is compared with the reference models'
confusion (Kendall's tau).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data import ClassificationData
from engine.data.loading import load_classification_data
from engine.evaluation.evaluate import BOOTSTRAP_RESAMPLES, evaluate_predictions, top1_quality
from engine.evaluation.label_free import evaluate_label_free, format_label_free_table
from engine.evaluation.model_confusion import confusion_vs_accuracy
from engine.evaluation.score_comparison import (
    compare_scores,
    comparison_summary,
    format_score_comparison,
    write_score_comparison,
)
from engine.evaluation.transfer import (
    format_results_table,
    model_parameter_counts,
    reference_models,
    softmax,
    transfer_metrics,
)
from engine.layout import BENCHMARK_DIR, MODELS_DIR, SPLITS_DIR
from engine.spec import BenchmarkSpec
from engine.splits.builder import BuiltSplits, build_splits
from engine.splits.display import SCORER, format_tau_matrix, mark_in_sample, pool_in_sample_reason
from engine.splits.samples import classification_samples
from engine.tasks.base import Evaluation, Ready, RunContext
from engine.tasks.eval_outputs import task_evaluation, write_eval_outputs
from engine.tasks.seed_ensemble_taus import seed_ensemble_taus, seed_ensemble_values
from engine.tasks.training_figures import add_training_figures, format_training_lines
from engine.tracking.plots import (
    plot_confusion_vs_accuracy,
    plot_error_by_bin,
    plot_error_by_width_bin,
    plot_score_histogram,
    plot_seed_ensemble_scatter,
    plot_train_vs_heldout,
)
from engine.training.model_folder import DESCRIPTOR_FILE

ENSEMBLE = SCORER  # the replicas' ensemble in evaluations and prediction columns


class ClassificationTask:
    """Hooks of the run lifecycle for a classification benchmark."""

    name = "classification"

    def load_data(
        self, spec: BenchmarkSpec, run_dir: Path | None = None, log: Callable[[str], None] = print
    ) -> ClassificationData:
        """The dataset with its split, and the injected label noise if the spec asks.

        Registered sources are read from the run's dataset cache (ingested on the
        connected Ray cluster, or in this process, when the run has none yet; a text
        source's token ids from its token cache, built the same way).
        """
        from engine.distributed.ingest import chunk_map

        data = load_classification_data(spec.data, block_size=spec.shards.block_size,
                                        run_dir=run_dir, map_chunks=chunk_map(),
                                        log=log)  # fmt: skip
        if not data.labelled:
            check_label_free(spec, data)
        return data

    def train_replicas(self, ctx: RunContext) -> None:
        """Ray Train workers (or packed Ray tasks) train the replicas and write their shards."""
        from engine.distributed.replicas import train_replicas

        train_replicas(ctx.run_dir, ctx.spec, attempt=ctx.attempt, log=ctx.log)

    def models_need_scores(self, spec: BenchmarkSpec) -> bool:
        """Evaluated models train after scoring: a mitigation ranks samples by a score."""
        return True

    def start_models(self, ctx: RunContext, scores: pa.Table | None) -> Ready:
        """Train every evaluated model as a Ray task (finished ones are loaded); their logits."""
        from engine.distributed.models import train_eval_models

        spec = ctx.spec
        logits = train_eval_models(ctx.run_dir, spec, log=ctx.log) if spec.evaluate.models else {}
        return Ready(logits)

    def build_splits(self, ctx: RunContext, scores: pa.Table) -> BuiltSplits:
        """The hard split, bins and exports of the pool (see :mod:`engine.splits.builder`)."""
        samples = classification_samples(ctx.data)
        built = build_splits(ctx.run_dir, ctx.spec.splits, samples, scores)
        ctx.log(
            f"[build] pool {ctx.spec.splits.pool}: {len(built.sample_ids)} samples, hard split "
            f"{int(built.is_hard.sum())}, {len(built.bin_edges)} bins -> {BENCHMARK_DIR}/{SPLITS_DIR}"
        )
        return built

    def evaluate(
        self, ctx: RunContext, scores: pa.Table, built: BuiltSplits, outputs: dict
    ) -> Evaluation:
        """Top-1 error of the ensemble (in-sample) and every model; Kendall tau; ``eval/``.

        The scores are compared (:mod:`engine.evaluation.score_comparison`, written to
        ``eval/score_comparison.json``): each one's AUROC for each model's misses, its
        wrong predictions on the pool. An unlabelled pool has no misses: the comparison
        holds the scores' rank agreement only and says why.
        """
        spec, run_dir = ctx.spec, ctx.run_dir
        pool_pos = built.sample_ids
        params, replica_params = registry_param_counts(spec, ctx.data)
        predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # model -> (pred, confidence)
        if spec.evaluate.ensemble:
            predictions[ENSEMBLE] = (
                scores.column("ensemble_pred").to_numpy()[pool_pos],
                scores.column("ensemble_conf").to_numpy()[pool_pos],
            )
        model_probs = {name: softmax(lg[pool_pos]) for name, lg in outputs.items()}
        seed = spec.replicas.recipe.seed
        if (built.labels < 0).any():
            comparison = compare_scores(scores, pool_pos, {}, seed=seed, no_misses_reason=(
                "the pool has no labels, so no model's misses are known"))  # fmt: skip
            write_score_comparison(run_dir, comparison)
            evaluation = self._evaluate_label_free(
                ctx, scores, built, model_probs, params, replica_params
            )
            evaluation.table = "\n".join([evaluation.table, *format_score_comparison(comparison)])
            evaluation.summary.update(comparison_summary(comparison))
            return evaluation
        predictions.update(_top1(model_probs))
        evaluations, misses = [], {}
        for name, (pred, conf) in predictions.items():
            quality, miss = top1_quality(name, built.labels, pred)
            misses[name] = miss
            evaluations.append(evaluate_on_pool(name, built, spec, params, replica_params,
                                                quality=quality, miss=miss, confidence=conf))  # fmt: skip
        mitigations = {m.name: m.mitigation for m in spec.evaluate.models}
        for ev in evaluations:
            mit = mitigations.get(ev["model"])
            if mit is not None and mit.method != "erm":
                ev["mitigation"] = asdict(mit)
        _add_training_records(run_dir, evaluations)
        train_view = None
        if spec.splits.pool == "heldout":  # the paper's Figure 2: training beside held-out
            train_view = add_training_figures(
                evaluations, spec, scores,
                scores.column("ensemble_pred").to_numpy() if spec.evaluate.ensemble else None,
                outputs,
            )  # fmt: skip
        reference, rule = reference_models(spec, params, replica_params)
        transfer = transfer_metrics(built, {n: model_probs[n] for n in reference}, rule, seed)
        transfer["params"] = {"replica": replica_params, **params}
        if train_view is not None:
            transfer["train_view"] = train_view
        taus = seed_ensemble_taus(run_dir, spec, scores)
        if taus is not None:
            transfer["seed_ensembles"] = taus
        transfer["confusion_vs_accuracy"] = confusion_vs_accuracy(
            model_probs, built.labels, n_boot=BOOTSTRAP_RESAMPLES, seed=seed
        )
        columns = {"sample_id": pa.array(pool_pos), "label": pa.array(built.labels)}
        eval_dir = write_eval_outputs(
            run_dir, predictions=_prediction_columns(columns, predictions, transfer),
            evaluations=evaluations, transfer=transfer,
        )  # fmt: skip
        comparison = compare_scores(scores, pool_pos, misses, seed=seed)
        write_score_comparison(run_dir, comparison)
        split_values = np.asarray(scores.column("split").to_pylist())
        score_values = scores.column(spec.splits.score).to_numpy()
        plots = [
            plot_error_by_bin(evaluations, spec.splits.score, eval_dir / "error_by_bin.png"),
            plot_score_histogram(
                {s: score_values[split_values == s] for s in sorted(set(split_values))},
                spec.splits.score,
                eval_dir / f"{spec.splits.score}_histogram.png",
            ),
        ]
        if built.width is not None:
            plots.append(plot_error_by_width_bin(
                evaluations, spec.splits.score, eval_dir / "error_by_width_bin.png"))  # fmt: skip
        if taus is not None:
            plots.append(plot_seed_ensemble_scatter(
                seed_ensemble_values(run_dir, spec, scores), taus, eval_dir / "seed_ensembles.png",
                split=np.asarray(scores.column("split").to_pylist())))  # fmt: skip
        if train_view is not None:
            plots.append(plot_train_vs_heldout(
                evaluations, spec.splits.score, eval_dir / "train_vs_heldout.png"))  # fmt: skip
        if transfer["confusion_vs_accuracy"]["models"]:
            plots.append(plot_confusion_vs_accuracy(
                transfer["confusion_vs_accuracy"], eval_dir / "confusion_vs_accuracy.png"))  # fmt: skip
        return task_evaluation(
            run_dir, spec, evaluations=evaluations,
            table="\n".join([format_results_table(built, evaluations, spec.splits.score, transfer),
                             *format_training_lines(evaluations, spec.splits.score),
                             *format_tau_matrix(transfer.get("seed_ensembles") or {"names": []}),
                             *format_score_comparison(comparison)]),
            summary={**_kendall_summary(transfer), **comparison_summary(comparison)},
            transfer=transfer, plots=plots,
        )  # fmt: skip

    def _evaluate_label_free(
        self, ctx: RunContext, scores: pa.Table, built: BuiltSplits, model_probs: dict,
        params: dict, replica_params: int,
    ) -> Evaluation:  # fmt: skip
        """An unlabelled pool: each model's confusion and disagreement (:mod:`engine.evaluation.label_free`).

        A model's disagreement is with the vote of the other evaluated models only: the
        replicas' ensemble, whose score cut the bins, votes in
        ``disagreement_with_scorer_*`` alone.
        """
        spec, run_dir = ctx.spec, ctx.run_dir
        ensemble = scores.column("ensemble_pred").to_numpy()[built.sample_ids]
        predictions = _top1(model_probs)
        reason = pool_in_sample_reason(spec.splits.pool)
        evaluations = []
        for name, probs in model_probs.items():
            others = [pred for o, (pred, _) in predictions.items() if o != name]
            votes = np.asarray(others, dtype=np.int64).reshape(len(others), len(ensemble))
            evaluations.append(evaluate_label_free(
                name, probs, votes, built, scorer=ensemble, params=params[name],
                in_sample_reason=reason, seed=spec.replicas.recipe.seed,
            ))  # fmt: skip
        _add_training_records(run_dir, evaluations)
        reference, rule = reference_models(spec, params, replica_params)
        transfer = transfer_metrics(
            built, {n: model_probs[n] for n in reference}, rule, spec.replicas.recipe.seed
        )
        columns = {"sample_id": pa.array(built.sample_ids), "pred_ensemble": pa.array(ensemble)}
        write_eval_outputs(
            run_dir, predictions=_prediction_columns(columns, predictions, transfer),
            evaluations=evaluations, transfer=transfer,
        )  # fmt: skip
        return task_evaluation(
            run_dir, spec, evaluations=evaluations,
            table=format_label_free_table(built, evaluations, spec.splits.score, transfer),
            summary=_kendall_summary(transfer), transfer=transfer,
        )  # fmt: skip

    def mlflow_model(
        self, ctx: RunContext, name: str
    ) -> tuple[object, np.ndarray, list[Path]] | None:
        """Evaluated model ``name`` rebuilt from its folder, for ``mlflow.pytorch.log_model``.

        Returns:
            ``(module in eval mode, an input example of two samples, the folder's
            descriptor and weights)``: the MLflow Model carries them as extra files, which
            is what ``hardbench eval --model-uri`` loads (with ``weights_only=True``).
        """
        from engine.evaluation.predictor import (
            Preprocessed,
            describe_model_dir,
            descriptor_preprocess,
        )
        from engine.models import create_model

        folder = ctx.run_dir / MODELS_DIR / name
        info = describe_model_dir(folder)
        module = create_model(
            info["model"], num_classes=info["num_classes"], input_shape=tuple(info["input_shape"]),
            weights_file=info["weights_file"], **info["model_kwargs"],
        ).eval()  # fmt: skip
        preprocess = descriptor_preprocess(info)
        if preprocess is not None:  # a fine-tuned model: its transform travels with it
            module = Preprocessed(module, preprocess).eval()
        example = np.asarray(ctx.data.inputs[:2])
        if not np.issubdtype(example.dtype, np.integer):
            example = example.astype(np.float32)
        return module, example, [folder / DESCRIPTOR_FILE, Path(info["weights_file"])]

    def class_names(self, data: ClassificationData) -> list[str]:
        """The dataset's class names."""
        return data.class_names

    def build_report(self, run_dir: Path) -> Path:
        """The HTML report with the paper's figures (:mod:`engine.tracking.report`)."""
        from engine.tracking.report import build_report

        return build_report(run_dir)

    def evaluate_model(
        self, run_dir: Path, spec: BenchmarkSpec, status: dict, **kwargs: object
    ) -> dict:
        """``hardbench eval``: see :func:`engine.tasks.classification_eval.evaluate_classifier`."""
        from engine.tasks.classification_eval import evaluate_classifier

        return evaluate_classifier(run_dir, spec, status, **kwargs)


def registry_param_counts(spec: BenchmarkSpec, data: object) -> tuple[dict[str, int], int]:
    """Parameters of every evaluated model and of one seed replica, counted from the registry.

    Args:
        spec: The run's spec (the replicas' and evaluated models' recipes).
        data: The run's samples (their ``num_classes`` and ``input_shape``).

    Returns:
        ``(evaluated model name -> parameters, parameters of one replica)``.
    """
    params = model_parameter_counts(spec, data.num_classes, data.input_shape)
    return params, params.pop("replica")


def evaluate_on_pool(
    name: str,
    built: BuiltSplits,
    spec: BenchmarkSpec,
    params: dict[str, int],
    replica_params: int,
    *,
    quality: np.ndarray,
    miss: np.ndarray,
    **options: object,
) -> dict:
    """One model's evaluation on the pool, the replicas' ensemble as the in-sample scorer.

    The ensemble (:data:`ENSEMBLE`) is in-sample, counts all its replicas' parameters
    and records how many replicas it has; every other model is named in ``params``.
    On a ``splits.pool`` of ``train`` or ``all`` every model is in-sample, with
    ``in_sample_reason`` (:func:`engine.splits.display.mark_in_sample`).

    Args:
        name: The model, or :data:`ENSEMBLE`.
        built: The built benchmark.
        spec: The run's spec (the replica count and the bootstrap seed).
        params: Evaluated model name -> parameters (:func:`registry_param_counts`).
        replica_params: Parameters of one replica.
        quality: Float (P,) per-sample quality.
        miss: Bool (P,) per-sample misses.
        **options: ``confidence`` or ``extra`` of :func:`evaluate_predictions`.

    Returns:
        What :func:`evaluate_predictions` returns, plus ``replicas`` for the ensemble and
        ``in_sample_reason`` on a pool that holds the models' training samples.
    """
    scorer = name == ENSEMBLE
    ev = evaluate_predictions(
        name, built, quality=quality, miss=miss, seed=spec.replicas.recipe.seed,
        in_sample=scorer, params=spec.replicas.count * replica_params if scorer else params[name],
        **options,
    )  # fmt: skip
    if scorer:
        ev["replicas"] = spec.replicas.count
    return mark_in_sample(ev, spec.splits.pool)


def _top1(model_probs: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Model -> (predicted class, its probability) of (P, K) probabilities."""
    return {name: (p.argmax(axis=1), p.max(axis=1)) for name, p in model_probs.items()}


def _prediction_columns(
    columns: dict[str, pa.Array], predictions: dict[str, tuple[np.ndarray, np.ndarray]],
    transfer: dict,
) -> dict[str, pa.Array]:  # fmt: skip
    """``columns``, then ``pred_<model>``, ``conf_<model>`` and ``large_confusion``.

    ``large_confusion`` (one value per pool sample) moves out of ``transfer``: it is
    written with the predictions, not in ``eval/transfer.json``.
    """
    for name, (pred, conf) in predictions.items():
        columns[f"pred_{name}"] = pa.array(pred)
        columns[f"conf_{name}"] = pa.array(conf)
    if "large_confusion" in transfer:
        columns["large_confusion"] = pa.array(transfer.pop("large_confusion"))
    return columns


def _add_training_records(run_dir: Path, evaluations: list[dict]) -> None:
    """Add ``training`` (:func:`_training_record`) to each evaluation of a pretrained model."""
    for ev in evaluations:
        training = _training_record(run_dir / MODELS_DIR / ev["model"])
        if training:
            ev["training"] = training


def _kendall_summary(transfer: dict) -> dict:
    """The parent run's Kendall tau of small vs large confusion, when it was measured."""
    tau = transfer.get("kendall_tau_small_large")
    out = {} if tau is None else {"kendall_tau_small_large": tau}
    matrix = transfer.get("seed_ensembles") or {"names": [], "sets": {}}
    names = matrix["names"]
    for set_name, rec in matrix["sets"].items():  # the seed ensembles' tau matrix, pair by pair
        for i, a in enumerate(names):
            for j in range(i + 1, len(names)):
                out[f"kendall_tau_{a}_{names[j]}_{set_name}"] = rec["tau"][i][j]
    return out


def _training_record(folder: Path) -> dict | None:
    """How a pretrained evaluated model was made (for the card), from its descriptor, or None.

    ``{"weights", "finetune": {mode, epochs, image_size, ...}}`` for a fine-tuned model,
    ``{"weights", "as_is": True, "imagenet_classes": [...]}`` for one evaluated as it is.
    """
    path = folder / DESCRIPTOR_FILE
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    if info.get("finetune"):
        keep = ("mode", "epochs", "lr", "batch_size", "image_size", "workers", "augment")
        return {"weights": info.get("weights_source"),
                "finetune": {k: info["finetune"][k] for k in keep}}  # fmt: skip
    if info.get("imagenet_classes"):
        return {"weights": info.get("weights_source"), "as_is": True,
                "imagenet_classes": info["imagenet_classes"]}  # fmt: skip
    return None


def check_label_free(spec: BenchmarkSpec, data: ClassificationData) -> None:
    """An unlabelled pool can only be scored and evaluated without labels: refuse what needs them.

    The replicas' ensemble is not evaluated (its error needs labels); evaluated models
    are measured by :mod:`engine.evaluation.label_free`.

    Raises:
        ValueError: Naming the label-aware scores, the per-class split rule or label noise.
    """
    from engine.tasks.preflight import refuse_label_aware

    refuse_label_aware(spec, f"the pool has {int((data.labels < 0).sum())} unlabelled samples")
