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
from engine.data.text_tables import describe, read_seq2seq_table
from engine.evaluation.text_eval import evaluate_generator
from engine.tasks.base import RunContext
from engine.tasks.text import TextTask


class Seq2SeqTask(TextTask):
    """Hooks of the run lifecycle for a sequence-to-sequence benchmark."""

    name = "seq2seq"

    def load_data(self, spec: object, run_dir: object = None, log: object = print) -> Seq2SeqData:
        """The tokenized pairs (bundled QASC fact pairs, or a user's table), split by source.

        A table is tokenized once per run's source and options; the run's processes
        read the saved samples (:mod:`engine.data.text_cache`).
        """
        d = spec.data
        if d.source != "table":
            return load_qasc_fusion(
                heldout_fraction=d.heldout_fraction, split_seed=d.split_seed, limit=d.limit
            )

        def build() -> Seq2SeqData:
            rows, split, skipped = read_seq2seq_table(d)
            data = build_seq2seq(Path(d.path).stem, rows, heldout_fraction=d.heldout_fraction,
                                 split_seed=d.split_seed, limit=d.limit, split=split)  # fmt: skip
            data.dataset = describe(Path(d.path), d, len(data), skipped)
            return data

        return table_samples(Seq2SeqData, "seq2seq", d, run_dir, build, log=log, constants={
            "source_len": SOURCE_LEN, "target_len": TARGET_LEN, "vocab": VOCAB})  # fmt: skip

    def split_texts(self, data: Seq2SeqData, pool: np.ndarray) -> dict[str, list]:
        """Source, first reference and all references of each pool sample."""
        return {
            "source": [data.sources[i] for i in pool],
            "reference": [data.references[i][0] for i in pool],
            "references": [data.references[i] for i in pool],
        }

    def measure(
        self, ctx: RunContext, scores: pa.Table, pool: np.ndarray, outputs: dict, args: tuple
    ) -> list[tuple[dict, dict]]:
        """ROUGE-L of every model's greedy decoding and its reference NLL."""
        return [
            evaluate_generator(name, ctx.data, pool, out["texts"], out["loss"], *args)
            for name, out in outputs.items()
        ]
