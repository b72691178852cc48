"""The sequence-to-sequence task plugin: encoder-decoders on fact pairs, ROUGE-L and reference NLL."""

from __future__ import annotations

from engine.data.seq2seq import Seq2SeqData, load_qasc_fusion


class Seq2SeqTask:
    """Hooks of the run lifecycle for a sequence-to-sequence benchmark."""

    name = "seq2seq"

    def load_data(self, spec: object) -> Seq2SeqData:
        """The tokenized QASC fact pairs, split by first fact."""
        d = spec.data
        return load_qasc_fusion(
            heldout_fraction=d.heldout_fraction, split_seed=d.split_seed, limit=d.limit
        )
