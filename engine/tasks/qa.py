"""The extractive-QA task plugin: span readers on (question, passage window) samples, EM and F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.qa import CONTEXT_LEN, QUESTION_LEN, SEQ_LEN, QAData, build_qa, load_quoref
from engine.data.text import VOCAB_SIZE
from engine.data.text_cache import table_samples
from engine.data.text_tables import describe, read_qa_table
from engine.evaluation.text_eval import evaluate_reader
from engine.tasks.base import RunContext
from engine.tasks.text import TextTask


class QATask(TextTask):
    """Hooks of the run lifecycle for an extractive-QA benchmark."""

    name = "qa"

    def load_data(self, spec: object, run_dir: object = None, log: object = print) -> QAData:
        """The tokenized samples (bundled Quoref, or a user's table), split by passage.

        A table is tokenized once per run's source and options; the run's processes
        read the saved samples (:mod:`engine.data.text_cache`).
        """
        d = spec.data
        if d.source != "table":
            return load_quoref(
                heldout_fraction=d.heldout_fraction, split_seed=d.split_seed, limit=d.limit
            )

        def build() -> QAData:
            passages, rows, split, skipped = read_qa_table(d)
            data = build_qa(Path(d.path).stem, passages, rows, heldout_fraction=d.heldout_fraction,
                            split_seed=d.split_seed, limit=d.limit, split=split)  # fmt: skip
            data.dataset = describe(Path(d.path), d, len(data), skipped)
            return data

        return table_samples(QAData, "qa", d, run_dir, build, log=log, constants={
            "seq_len": SEQ_LEN, "question_len": QUESTION_LEN, "context_len": CONTEXT_LEN,
            "vocab_size": VOCAB_SIZE})  # fmt: skip

    def split_texts(self, data: QAData, pool: np.ndarray) -> dict[str, list]:
        """Question, passage and answer of each pool sample."""
        return {
            "question": [data.questions[i] for i in pool],
            "context": [data.contexts[i] for i in pool],
            "answer": [data.answers[i] for i in pool],
        }

    def measure(
        self, ctx: RunContext, scores: pa.Table, pool: np.ndarray, outputs: dict, args: tuple
    ) -> list[tuple[dict, dict]]:
        """EM and F1 of the ensemble's best span (in-sample) and of every reader's."""
        data = ctx.data
        runs = []
        if ctx.spec.evaluate.ensemble:  # the scorer: its best span of the replica means
            code = scores.column("ensemble_pred").to_numpy()
            length = data.input_ids.shape[1]
            runs.append(("ensemble", code // length, code % length))
        runs += [(name, out["start"], out["end"]) for name, out in outputs.items()]
        return [evaluate_reader(name, data, pool, s, e, *args) for name, s, e in runs]
