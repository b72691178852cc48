"""The Ray Data evaluation pool: models predict samples in actors (model loaded once each).

Two users: the build, where every evaluated model predicts every sample of the dataset
after training (:func:`predict_samples`: one pool for all the models, each model's
logits streamed to a Parquet file in its folder), and ``hardbench eval``, which predicts a built split file
(:func:`predict_split`). Both size the pool with :func:`eval_pool_size`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.evaluation.predictor import SplitPredictor
from engine.shards import fixed_list
from engine.training.model_folder import PREDICTIONS_FILE

EVAL_BATCH_SIZE = 256  # inputs per forward pass in an evaluation actor
PROGRESS_LOG_S = 20.0  # seconds between progress lines of a long prediction


def eval_pool_size(actors: int | str, num_blocks: int, cpus_per_actor: float,
                   gpus_per_actor: float) -> int:  # fmt: skip
    """Prediction actors for ``num_blocks`` input blocks on the connected Ray cluster.

    ``"auto"``: one per block, as many as fit in the cluster's CPUs minus one (Ray
    Data's read tasks need it: a pool holding every CPU starves them) and in its GPUs,
    at least one. A number is taken as it is, capped at ``num_blocks``.

    Raises:
        ValueError: For a GPU request on a cluster without (enough) GPUs, or more
            actors than the cluster can place: Ray would wait for them forever.
    """
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    if gpus_per_actor > gpus:
        raise ValueError(
            f"a prediction actor asks for {gpus_per_actor:g} GPU but the Ray cluster has "
            f"{gpus:g}; set evaluate.gpus_per_actor (--gpus-per-actor) to 0 to predict on CPUs"
        )
    fit = int(max(cpus - 1, 0) / cpus_per_actor)
    if gpus_per_actor > 0:
        fit = min(fit, int(gpus / gpus_per_actor))
    fit = max(fit, 1)
    if actors == "auto":
        return max(1, min(num_blocks, fit))
    if int(actors) > fit:
        raise ValueError(
            f"{actors} prediction actors (evaluate.actors, --actors) do not fit the Ray cluster "
            f"({cpus:g} CPU, {gpus:g} GPU): it fits {fit} of {cpus_per_actor:g} CPU"
            + (f" and {gpus_per_actor:g} GPU" if gpus_per_actor else "")
            + ", one CPU left for Ray Data's reads; lower it or use auto"
        )
    return max(1, min(int(actors), num_blocks))


def _predictor_pool(ds: object, predictor: type, kwargs: dict, *, size: int, batch_size: int,
                    cpus_per_actor: float, gpus_per_actor: float) -> object:  # fmt: skip
    """``ds`` through ``size`` actors of the callable class ``predictor`` (numpy batches)."""
    from ray.data import ActorPoolStrategy

    return ds.map_batches(
        predictor,
        fn_constructor_kwargs=kwargs,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=size),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
    )


def sample_blocks(data: object, block_size: int, *, texts: bool = False) -> list[pa.Table]:
    """The dataset's samples as Arrow blocks of ``sample_id`` (+ ``input``, ``text``).

    Cached images travel as ids only: each actor reads its blocks' pixels from the
    cache's memory map. Inputs held in memory (token ids of a text corpus) travel in
    an ``input`` column; ``texts`` adds the raw texts (Hugging Face classifiers read them).
    """
    from engine.data.cache import CachedInputs

    n = len(data.split)
    cached = isinstance(data.inputs, CachedInputs)
    if cached and not np.array_equal(data.inputs.ids, np.arange(n)):
        raise ValueError("the evaluation pool needs the whole cache, in sample-id order")
    blocks = []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        columns = {"sample_id": pa.array(np.arange(start, stop, dtype=np.int64))}
        if not cached:
            rows = np.asarray(data.inputs[start:stop]).reshape(stop - start, -1)
            columns["input"] = fixed_list(rows, pa.from_numpy_dtype(rows.dtype))
        if texts and data.texts is not None:
            columns["text"] = pa.array(data.texts[start:stop], pa.string())
        blocks.append(pa.table(columns))
    return blocks


def read_predictions(path: Path | str, num_samples: int | None = None) -> np.ndarray:
    """The float32 logits (N, K) of a predictions file, in sample-id order.

    Raises:
        ValueError: When its sample ids are not 0..N-1, each once.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path).sort_by("sample_id")
    ids = table.column("sample_id").to_numpy()
    n = len(ids) if num_samples is None else num_samples
    if len(ids) != n or not np.array_equal(ids, np.arange(n)):
        raise ValueError(f"{path}: {len(ids)} predictions, not one for each of {n} samples")
    logits = table.column("logits").combine_chunks()
    return (
        logits.flatten().to_numpy().astype(np.float32, copy=False).reshape(n, logits.type.list_size)
    )


def predict_samples(
    data: object,
    model_dirs: dict[str, Path | str],
    *,
    actors: int | str = "auto",
    cpus_per_actor: float = 0.5,
    gpus_per_actor: float = 0.0,
    block_size: int = 1024,
    batch_size: int = EVAL_BATCH_SIZE,
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Every sample's logits from each saved model, through one actor pool for them all.

    Each actor loads every model once (:class:`ModelsPredictor`); the rows stream from
    the pool into ``<model_dir>/predictions.parquet`` (``sample_id``, ``logits``) as they
    come, each written to a temporary file renamed into place when every sample is in,
    so a predictions file that is there is complete.

    Args:
        data: The run's :class:`~engine.data.ClassificationData`.
        model_dirs: Model name -> its saved folder (descriptor + weights).
        actors: Pool size, or ``"auto"`` (:func:`eval_pool_size`).
        cpus_per_actor: CPUs each actor reserves.
        gpus_per_actor: GPUs (or a fraction) each actor reserves.
        block_size: Samples per Ray Data block (the cache's block size).
        batch_size: Samples per actor call.
        log: Progress lines.

    Returns:
        Model name -> float32 logits of shape (N, K), in sample-id order.
    """
    import pyarrow.parquet as pq
    import ray

    from engine.data.cache import CachedInputs
    from engine.evaluation.predictor import LOGITS_COLUMN, ModelsPredictor, describe_model_dir
    from engine.models import get_model_config

    dirs = {name: Path(d) for name, d in model_dirs.items()}
    hf = any(get_model_config(describe_model_dir(d)["model"]).family == "hf" for d in dirs.values())
    blocks = sample_blocks(data, block_size, texts=hf)
    size = eval_pool_size(actors, len(blocks), cpus_per_actor, gpus_per_actor)
    kwargs: dict = {"model_dirs": {n: str(d) for n, d in dirs.items()},
                    "input_shape": tuple(data.input_shape)}  # fmt: skip
    if isinstance(data.inputs, CachedInputs):
        kwargs["cache_dir"] = str(data.inputs.cache_dir)
    ds = _predictor_pool(ray.data.from_arrow(blocks), ModelsPredictor, kwargs, size=size,
                         batch_size=batch_size, cpus_per_actor=cpus_per_actor,
                         gpus_per_actor=gpus_per_actor)  # fmt: skip
    n = len(data.split)
    where = f"{size} actor(s) x {cpus_per_actor:g} CPU" + (
        f" + {gpus_per_actor:g} GPU" if gpus_per_actor else "")  # fmt: skip
    log(f"[models] predicting {n} samples with {', '.join(dirs)} on the evaluation pool, {where}")
    tmp = {name: d / (PREDICTIONS_FILE + ".tmp") for name, d in dirs.items()}
    writers: dict[str, pq.ParquetWriter] = {}
    start = last = time.perf_counter()
    seen = 0
    try:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            if isinstance(batch, pa.RecordBatch):
                batch = pa.Table.from_batches([batch])
            for name in dirs:
                part = pa.table({"sample_id": batch.column("sample_id"),
                                 "logits": batch.column(LOGITS_COLUMN.format(name=name))})  # fmt: skip
                if name not in writers:
                    writers[name] = pq.ParquetWriter(tmp[name], part.schema)
                writers[name].write_table(part)
            seen += batch.num_rows
            if time.perf_counter() - last >= PROGRESS_LOG_S and seen < n:
                last = time.perf_counter()
                log(f"[models] predicted {seen}/{n} samples ({seen / (last - start):.0f}/s)")
    finally:
        for writer in writers.values():
            writer.close()
    out = {}
    for name, d in dirs.items():
        if name not in writers:
            raise RuntimeError(f"the evaluation pool returned no predictions for {name}")
        out[name] = read_predictions(tmp[name], n)  # every sample once, or nothing is kept
        with open(tmp[name], "rb+") as f:
            os.fsync(f.fileno())
        tmp[name].replace(d / PREDICTIONS_FILE)
    took = time.perf_counter() - start
    log(f"[models] {n} samples x {len(dirs)} models predicted in {took:.1f} s "
        f"({n * len(dirs) / took:.0f} predictions/s)")  # fmt: skip
    return out


def predict_split(
    parquet: Path | str,
    predictor_kwargs: dict,
    *,
    actors: int | str = "auto",
    cpus_per_actor: float = 0.5,
    gpus_per_actor: float = 0.0,
    batch_size: int = EVAL_BATCH_SIZE,
) -> dict[str, np.ndarray]:
    """Predict every row of a split file with ``SplitPredictor`` actors.

    Args:
        parquet: A split file written by the builder (``sample_id``, ``input`` and, for
            text benchmarks, ``text`` columns).
        predictor_kwargs: Constructor arguments of :class:`SplitPredictor`.
        actors: Pool size, or ``"auto"`` (:func:`eval_pool_size`, one per row group).
        cpus_per_actor: CPUs each actor reserves.
        gpus_per_actor: GPUs (or a fraction) each actor reserves.
        batch_size: Rows per call.

    Returns:
        ``sample_id``, ``pred`` and ``conf`` arrays, sorted by sample id.
    """
    import pyarrow.parquet as pq
    import ray

    from engine.splits.inputs import split_cache

    schema = pq.read_schema(parquet)
    cached = split_cache(schema)  # a split of cached data refers to the cache: no pixels in it
    columns = ["sample_id", *(["input"] if "input" in schema.names else [])]
    if "text" in schema.names:
        columns.append("text")  # Hugging Face classifiers tokenize the texts themselves
    kwargs = dict(predictor_kwargs)
    if cached is not None:
        kwargs["cache_dir"] = str(cached.cache_dir)
    rows = pq.ParquetFile(parquet).metadata.num_rows
    size = eval_pool_size(actors, max(1, -(-rows // batch_size)), cpus_per_actor, gpus_per_actor)
    ds = ray.data.read_parquet(str(parquet)).select_columns(columns)
    if size > 1:
        ds = ds.repartition(size)  # a small split is one file, one block: one actor otherwise
    ds = _predictor_pool(ds, SplitPredictor, kwargs, size=size, batch_size=batch_size,
                         cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor)  # fmt: skip
    table = pa.concat_tables(
        list(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    ).sort_by("sample_id")
    return {name: table.column(name).to_numpy() for name in ("sample_id", "pred", "conf")}
