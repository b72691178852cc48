"""Evaluate a model on a built split through a Ray Data actor pool (model loaded once per actor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.evaluation.predictor import SplitPredictor

EVAL_BATCH_SIZE = 256  # inputs per forward pass in an evaluation actor


def predict_split(
    parquet: Path | str,
    predictor_kwargs: dict,
    *,
    actors: int = 1,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    batch_size: int = EVAL_BATCH_SIZE,
) -> dict[str, np.ndarray]:
    """Predict every row of a split file with ``SplitPredictor`` actors.

    Args:
        parquet: A split file written by the builder (``sample_id``, ``input`` and, for
            text benchmarks, ``text`` columns).
        predictor_kwargs: Constructor arguments of :class:`SplitPredictor`.
        actors: Actor pool size.
        cpus_per_actor: CPUs each actor reserves.
        gpus_per_actor: GPUs (or a fraction) each actor reserves.
        batch_size: Rows per call.

    Returns:
        ``sample_id``, ``pred`` and ``conf`` arrays, sorted by sample id.
    """
    import pyarrow.parquet as pq
    import ray
    from ray.data import ActorPoolStrategy

    from engine.splits.inputs import split_cache

    schema = pq.read_schema(parquet)
    cached = split_cache(schema)  # a split of cached data refers to the cache: no pixels in it
    columns = ["sample_id", *(["input"] if "input" in schema.names else [])]
    if "text" in schema.names:
        columns.append("text")  # Hugging Face classifiers tokenize the texts themselves
    kwargs = dict(predictor_kwargs)
    if cached is not None:
        kwargs["cache_dir"] = str(cached.cache_dir)
    ds = ray.data.read_parquet(str(parquet)).select_columns(columns)
    ds = ds.map_batches(
        SplitPredictor,
        fn_constructor_kwargs=kwargs,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
    )
    table = pa.concat_tables(
        list(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    ).sort_by("sample_id")
    return {name: table.column(name).to_numpy() for name in ("sample_id", "pred", "conf")}
