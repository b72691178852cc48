"""The sequence-to-sequence task plugin: encoder-decoders on fact pairs, ROUGE-L and reference NLL."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.data.seq2seq import Seq2SeqData, load_qasc_fusion
from engine.evaluation.text_eval import evaluate_generator
from engine.tasks.base import RunContext
from engine.tasks.text import TextTask


class Seq2SeqTask(TextTask):
    """Hooks of the run lifecycle for a sequence-to-sequence benchmark."""

    name = "seq2seq"

    def load_data(self, spec: object) -> Seq2SeqData:
        """The tokenized QASC fact pairs, split by first fact."""
        d = spec.data
        return load_qasc_fusion(
            heldout_fraction=d.heldout_fraction, split_seed=d.split_seed, limit=d.limit
        )

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
