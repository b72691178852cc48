"""The extractive-QA task plugin: span readers on (question, passage window) samples, EM and F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.qa import (
    CONTEXT_LEN,
    MAX_ANSWER_TOKENS,
    QUESTION_LEN,
    SEQ_LEN,
    QAData,
    build_qa,
    load_quoref,
)
from engine.data.text import VOCAB_SIZE
from engine.data.text_cache import table_samples
from engine.data.text_noise import inject_answer_noise
from engine.data.text_tables import describe, read_qa_table
from engine.distributed.text_tasks import TextTraining
from engine.evaluation.evaluate import MetricColumn
from engine.evaluation.text_eval import reader_quality
from engine.models.text import SpanReader
from engine.scores.qa import best_spans, span_entropy, span_losses, span_margins
from engine.spec import BenchmarkSpec
from engine.tasks.base import RunContext
from engine.tasks.text import TextTask
from engine.tasks.text_sections import TextMeasure
from engine.training.qa import span_log_probs, train_readers


def reduce_reader_epoch(
    data: QAData,
    start_log_probs: np.ndarray,
    end_log_probs: np.ndarray,
    input_grad: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-sample reductions of one epoch's R replica predictions (each (R, N, L) float32).

    Args:
        data: The QA samples.
        start_log_probs: Float32 (R, N, L).
        end_log_probs: Float32 (R, N, L).
        input_grad: On an epoch of ``shards.grad_epochs``, the replicas' gradients of the
            gold span's log-likelihood w.r.t. the embedded tokens, (R, N, L, D) with NaN
            at padding (:func:`engine.training.qa.span_input_gradients`); else None.

    Returns:
        ``mean_entropy`` (N,) span entropy of the replica means; ``ensemble_pred`` (N,)
        best span of the means coded ``start * L + end``; ``ensemble_conf`` (N,) its
        probability; ``loss``, ``margin`` (R, N) and ``correct`` (R, N) bool (both
        argmaxes on the gold positions); ``input_grad`` as given, when given.
    """
    ps, pe = np.exp(start_log_probs), np.exp(end_log_probs)
    length = ps.shape[-1]
    bs, be, bp = best_spans(ps.mean(axis=0), pe.mean(axis=0), max_tokens=MAX_ANSWER_TOKENS)
    return {
        "mean_entropy": span_entropy(ps, pe),
        "ensemble_pred": bs * length + be,
        "ensemble_conf": bp,
        "loss": span_losses(start_log_probs, end_log_probs, data.start, data.end),
        "margin": span_margins(start_log_probs, end_log_probs, data.start, data.end),
        "correct": (start_log_probs.argmax(-1) == data.start)
        & (end_log_probs.argmax(-1) == data.end),
        **({} if input_grad is None else {"input_grad": input_grad}),
    }


def gold_span_codes(data: QAData) -> np.ndarray:
    """The gold span of every sample coded like ``ensemble_pred`` (``start * L + end``)."""
    return data.start * data.input_ids.shape[1] + data.end


def reader_outputs(model: SpanReader, data: QAData, device: str) -> dict[str, np.ndarray]:
    """An evaluated reader's best span on every sample and its span loss on the gold span.

    Returns:
        ``start``, ``end`` (N,) int and ``loss`` (N,) float.
    """
    s, e = span_log_probs(model, data, device)
    bs, be, _ = best_spans(np.exp(s), np.exp(e), max_tokens=MAX_ANSWER_TOKENS)
    return {"start": bs, "end": be, "loss": span_losses(s[None], e[None], data.start, data.end)[0]}


# How QA models train, what a replica epoch reduces to and what an evaluated reader outputs
QA_TRAINING = TextTraining(
    train=train_readers,
    reduce_epoch=reduce_reader_epoch,
    shard_labels=gold_span_codes,
    model_outputs=reader_outputs,
)


class QATask(TextTask):
    """Hooks of the run lifecycle for an extractive-QA benchmark."""

    name = "qa"
    measurement = TextMeasure(
        title="extractive QA",
        metrics=(MetricColumn("em", "EM"), MetricColumn("f1", "F1")),
        miss="EM = 0",
        inputs=("question", "answer"),
    )

    def load_data(self, spec: BenchmarkSpec, run_dir: object = None, log: object = print) -> QAData:
        """The tokenized samples (bundled Quoref, or a user's table), split by passage.

        A table is tokenized once per run's source and options; the run's processes
        read the saved samples (:mod:`engine.data.text_cache`).
        """
        d = spec.data
        if d.source != "table":
            samples = load_quoref(
                heldout_fraction=d.heldout_fraction, split_seed=d.split_seed, limit=d.limit
            )
            return inject_answer_noise(samples, d.label_noise)

        def build() -> QAData:
            passages, rows, split, skipped = read_qa_table(d)
            data = build_qa(Path(d.path).stem, passages, rows, heldout_fraction=d.heldout_fraction,
                            split_seed=d.split_seed, limit=d.limit, split=split)  # fmt: skip
            data.dataset = describe(Path(d.path), d, len(data), skipped)
            return data

        samples = table_samples(QAData, "qa", d, run_dir, build, log=log, constants={
            "seq_len": SEQ_LEN, "question_len": QUESTION_LEN, "context_len": CONTEXT_LEN,
            "vocab_size": VOCAB_SIZE})  # fmt: skip
        return inject_answer_noise(samples, d.label_noise)

    def training(self) -> TextTraining:
        """Span readers: the seed ensemble's and every evaluated reader's pieces."""
        return QA_TRAINING

    def split_texts(self, data: QAData, pool: np.ndarray) -> dict[str, list]:
        """Question, passage and answer of each pool sample."""
        return {
            "question": [data.questions[i] for i in pool],
            "context": [data.contexts[i] for i in pool],
            "answer": [data.answers[i] for i in pool],
        }

    def measure(
        self, ctx: RunContext, scores: pa.Table, pool: np.ndarray, outputs: dict
    ) -> dict[str, dict[str, np.ndarray]]:
        """EM and F1 of the ensemble's best span (in-sample) and of every reader's."""
        data = ctx.data
        runs = []
        if ctx.spec.evaluate.ensemble:  # the scorer: its best span of the replica means
            code = scores.column("ensemble_pred").to_numpy()
            length = data.input_ids.shape[1]
            runs.append(("ensemble", code // length, code % length))
        runs += [(name, out["start"], out["end"]) for name, out in outputs.items()]
        return {name: reader_quality(data, pool, s, e) for name, s, e in runs}
