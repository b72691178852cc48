"""The sequence-to-sequence task plugin: encoder-decoders on fact pairs, ROUGE-L and reference NLL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.seq2seq import (
    SOURCE_LEN,
    TARGET_LEN,
    VOCAB,
    Seq2SeqData,
    build_seq2seq,
    load_qasc_fusion,
)
from engine.data.text_cache import table_samples
from engine.data.text_noise import inject_answer_noise
from engine.data.text_tables import describe, read_seq2seq_table
from engine.distributed.text_tasks import TextTraining
from engine.evaluation.evaluate import MetricColumn
from engine.evaluation.text_eval import MISS_ROUGE_L, generator_quality
from engine.models.text import Seq2SeqModel
from engine.spec import BenchmarkSpec
from engine.tasks.base import RunContext
from engine.tasks.text import TextTask
from engine.tasks.text_sections import TextMeasure
from engine.training.seq2seq import predict_loss_and_text, train_seq2seq


def with_no_prediction(data: Seq2SeqData, reduced: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One epoch's token reductions (:func:`engine.training.seq2seq.reduce_epoch`) as shard rows.

    An ensemble of encoder-decoders has no single decoding to store: ``ensemble_pred``
    holds 0 for every sample, as the ``label`` column does (there is no class).
    """
    return {**reduced, "ensemble_pred": no_labels(data)}


def no_labels(data: Seq2SeqData) -> np.ndarray:
    """Int64 zeros (N,): the shards' label column of a task without classes."""
    return np.zeros(len(data.split), np.int64)


def generator_outputs(model: Seq2SeqModel, data: Seq2SeqData, device: str) -> dict[str, np.ndarray]:
    """An evaluated model's greedy decodings and the token-averaged NLL of each reference.

    Returns:
        ``texts`` (N,) strings and ``loss`` (N,) float.
    """
    loss, texts = predict_loss_and_text(model, data, device)
    return {"texts": np.asarray(texts, dtype=np.str_), "loss": loss}


# How seq2seq models train, what a replica epoch reduces to and what an evaluated model outputs
SEQ2SEQ_TRAINING = TextTraining(
    train=train_seq2seq,
    reduce_epoch=with_no_prediction,
    shard_labels=no_labels,
    model_outputs=generator_outputs,
)


class Seq2SeqTask(TextTask):
    """Hooks of the run lifecycle for a sequence-to-sequence benchmark."""

    name = "seq2seq"
    measurement = TextMeasure(
        title="sequence to sequence",
        metrics=(MetricColumn("rouge_l", "ROUGE-L"), MetricColumn("nll", "NLL", percent=False)),
        miss=f"ROUGE-L F of the greedy decoding <= {MISS_ROUGE_L:g} against the best reference",
        inputs=("source", "reference"),
    )

    def load_data(
        self, spec: BenchmarkSpec, run_dir: object = None, log: object = print
    ) -> Seq2SeqData:
        """The tokenized pairs (bundled QASC fact pairs, or a user's table), split by source.

        A table is tokenized once per run's source and options; the run's processes
        read the saved samples (:mod:`engine.data.text_cache`).
        """
        d = spec.data
        if d.source != "table":
            samples = load_qasc_fusion(
                heldout_fraction=d.heldout_fraction, split_seed=d.split_seed, limit=d.limit
            )
            return inject_answer_noise(samples, d.label_noise)

        def build() -> Seq2SeqData:
            rows, split, skipped = read_seq2seq_table(d)
            data = build_seq2seq(Path(d.path).stem, rows, heldout_fraction=d.heldout_fraction,
                                 split_seed=d.split_seed, limit=d.limit, split=split)  # fmt: skip
            data.dataset = describe(Path(d.path), d, len(data), skipped)
            return data

        samples = table_samples(Seq2SeqData, "seq2seq", d, run_dir, build, log=log, constants={
            "source_len": SOURCE_LEN, "target_len": TARGET_LEN, "vocab": VOCAB})  # fmt: skip
        return inject_answer_noise(samples, d.label_noise)

    def training(self) -> TextTraining:
        """Encoder-decoders: the seed ensemble's and every evaluated model's pieces."""
        return SEQ2SEQ_TRAINING

    def split_texts(self, data: Seq2SeqData, pool: np.ndarray) -> dict[str, list]:
        """Source, first reference and all references of each pool sample."""
        return {
            "source": [data.sources[i] for i in pool],
            "reference": [data.references[i][0] for i in pool],
            "references": [data.references[i] for i in pool],
        }

    def measure(
        self, ctx: RunContext, scores: pa.Table, pool: np.ndarray, outputs: dict
    ) -> dict[str, dict[str, np.ndarray]]:
        """ROUGE-L of every model's greedy decoding, its reference NLL and its misses.

        A miss is read from the decoding alone (ROUGE-L F at most
        :data:`engine.evaluation.text_eval.MISS_ROUGE_L`), never from the NLL.
        """
        return {
            name: generator_quality(ctx.data, pool, out["texts"], out["loss"])
            for name, out in outputs.items()
        }
