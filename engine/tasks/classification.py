"""The classification task plugin: labelled samples (images or token ids) and top-1 error."""

from __future__ import annotations

import dataclasses

from engine.data import ClassificationData, load_dataset
from engine.data.sources import flip_labels


class ClassificationTask:
    """Hooks of the run lifecycle for a classification benchmark."""

    name = "classification"

    def load_data(self, spec: object) -> ClassificationData:
        """The dataset with its split, and the injected label noise if the spec asks."""
        d = spec.data
        data = load_dataset(d.source, heldout_fraction=d.heldout_fraction, split_seed=d.split_seed)
        noise = d.label_noise
        if noise is not None:
            noisy, _ = flip_labels(
                data.labels, fraction=noise.fraction, kind=noise.kind, seed=noise.seed,
                num_classes=data.num_classes, confusable=noise.confusable,
            )  # fmt: skip
            data = dataclasses.replace(data, labels=noisy, clean_labels=data.labels)
        return data
