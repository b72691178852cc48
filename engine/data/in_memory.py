"""Sources loaded whole into memory, without the dataset cache.

The bundled digits are read this way by tests and benchmarks that train on them
directly; a run reads them through the registered ``sklearn_digits`` source and the
dataset cache, as it reads every source (the Rotten Tomatoes snippets included:
:mod:`engine.data.sentiment_source`).
"""

from __future__ import annotations

from collections.abc import Callable

from engine._util import unknown_name_error
from engine.data.registry import list_registered_sources
from engine.data.sources import ClassificationData, load_sklearn_digits

IN_MEMORY_SOURCES: dict[str, Callable[..., ClassificationData]] = {
    "sklearn_digits": load_sklearn_digits,
}  # source name -> loader(*, heldout_fraction, split_seed)


def list_sources() -> list[str]:
    """Names of the classification sources: the registry's and the in-memory ones."""
    return sorted({*IN_MEMORY_SOURCES, *list_registered_sources()})


def load_dataset(source: str, *, heldout_fraction: float, split_seed: int) -> ClassificationData:
    """Load an in-memory source whole, with its stratified train/held-out split.

    Raises:
        ValueError: For a source read through the dataset cache only, or an unknown
            source (the message lists the valid ones).
    """
    if source not in IN_MEMORY_SOURCES and source in list_registered_sources():
        raise ValueError(
            f"the {source} source is read through the dataset cache, not whole into memory: "
            "load it with engine.data.loading.load_classification_data"
        )
    if source not in IN_MEMORY_SOURCES:
        raise unknown_name_error("data source", source, IN_MEMORY_SOURCES)
    return IN_MEMORY_SOURCES[source](heldout_fraction=heldout_fraction, split_seed=split_seed)
