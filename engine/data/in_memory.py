"""Sources loaded whole into memory, without the dataset cache.

The Rotten Tomatoes snippets (:mod:`engine.data.text`: token ids with a vocabulary
learned from the training split) are read this way by every run that names them; the
bundled digits are read this way by tests and benchmarks that train on them directly
(a run reads the digits through the registered ``sklearn_digits`` source and the
dataset cache).
"""

from __future__ import annotations

from collections.abc import Callable

from engine._util import unknown_name_error
from engine.data.registry import list_registered_sources
from engine.data.sources import ClassificationData, load_sklearn_digits
from engine.data.text import load_rotten_tomatoes

IN_MEMORY_SOURCES: dict[str, Callable[..., ClassificationData]] = {
    "sklearn_digits": load_sklearn_digits,
    "rotten_tomatoes": load_rotten_tomatoes,
}  # source name -> loader(*, heldout_fraction, split_seed)


def list_sources() -> list[str]:
    """Names of the classification sources: the registry's and the in-memory ones."""
    return sorted({*IN_MEMORY_SOURCES, *list_registered_sources()})


def load_dataset(source: str, *, heldout_fraction: float, split_seed: int) -> ClassificationData:
    """Load an in-memory source whole, with its stratified train/held-out split.

    Raises:
        ValueError: For an unknown source (the message lists the valid ones).
    """
    if source not in IN_MEMORY_SOURCES:
        raise unknown_name_error("data source", source, IN_MEMORY_SOURCES)
    return IN_MEMORY_SOURCES[source](heldout_fraction=heldout_fraction, split_seed=split_seed)
