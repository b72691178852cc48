"""The extractive-QA task plugin: span readers on (question, passage window) samples, EM and F1."""

from __future__ import annotations

from engine.data.qa import QAData, load_quoref


class QATask:
    """Hooks of the run lifecycle for an extractive-QA benchmark."""

    name = "qa"

    def load_data(self, spec: object) -> QAData:
        """The tokenized Quoref samples, split by passage."""
        d = spec.data
        return load_quoref(
            heldout_fraction=d.heldout_fraction, split_seed=d.split_seed, limit=d.limit
        )
