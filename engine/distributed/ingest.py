"""The ingest pool: Ray Data tasks decode chunks of a source into the dataset cache.

The same pool counts and encodes the token cache's chunks (:mod:`engine.data.tokens`):
the shared kwargs name the chunk function (:func:`engine.data.ingest.run_chunk`).

:func:`ray_map_chunks` is the ``map_chunks`` of :func:`engine.data.ingest.ingest`: one
row per chunk (its items as JSON), grouped into batches of a few chunks so each CPU
runs about ``TASKS_PER_CPU`` Ray tasks (each decodes and writes its chunks' blocks),
results streamed back as tasks finish.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.data.loading import load_classification_data
from engine.data.multilabel_data import MultiLabelData
from engine.data.sources import ClassificationData
from engine.spec import BenchmarkSpec

INGEST_CPUS_PER_TASK = 1.0  # CPUs a decoding task reserves (PIL decodes on one core)
TASKS_PER_CPU = 3  # chunks are grouped so each CPU gets about this many tasks (less overhead)


class _ChunkDecoder:
    """What ``map_batches`` calls: a batch of chunk rows in, one result row per chunk out."""

    def __init__(self, shared: dict) -> None:
        self.shared = shared

    def __call__(self, batch: dict) -> dict:
        from engine.data.ingest import run_chunk

        out = []
        for chunk, items in zip(batch["chunk"], batch["items"], strict=True):
            res = run_chunk(self.shared, {"chunk": int(chunk), "items": json.loads(items)})
            out.append(json.dumps(res))
        return {"result": out}


def chunk_map() -> object:
    """:func:`ray_map_chunks` on a driver connected to Ray, else None (decode in process).

    Inside a Ray task or actor the ingest never starts a Ray Data job: the task holds
    CPUs the decoding tasks would wait for, which deadlocks a small cluster (the
    drivers ingest before they start tasks, so a task only ever finds the cache).
    """
    import ray

    if not ray.is_initialized():
        return None
    worker = ray.get_runtime_context().worker
    return ray_map_chunks if worker.mode == ray.SCRIPT_MODE else None


def load_run_data(
    spec: BenchmarkSpec, run_dir: Path | str | None, log: Callable[[str], None] = print
) -> ClassificationData | MultiLabelData:
    """A classification (or multi-label) run's data, as its drivers and Ray workers load it.

    :func:`engine.data.loading.load_classification_data` with the spec's options; a
    driver connected to Ray ingests on the cluster (:func:`chunk_map`), a worker only
    ever opens the run's cache.
    """
    return load_classification_data(spec.data, block_size=spec.shards.block_size,
                                    run_dir=run_dir, map_chunks=chunk_map(), log=log)  # fmt: skip


def ray_map_chunks(tasks: list[dict], shared: dict) -> Iterator[dict]:
    """Decode every chunk on the connected Ray cluster, yielding results as they finish.

    Args:
        tasks: ``{"chunk", "items"}`` per chunk (see :func:`engine.data.ingest.ingest_chunk`).
        shared: The arguments every chunk shares (config, out_dir, shape; ``chunk_fn``).

    Yields:
        One result dict per chunk, in completion order.
    """
    import ray

    rows = [{"chunk": t["chunk"], "items": json.dumps(t["items"])} for t in tasks]
    ctx = ray.data.DataContext.get_current()
    # Ray Data reserves part of the cluster per operator and hands the rest out only
    # later: on 2 CPUs the second decoder started ~1 s late (measured, bench_ingest.py).
    # This one-operator job needs no reservation; the setting is restored afterwards.
    reserved, ctx.op_resource_reservation_enabled = ctx.op_resource_reservation_enabled, False
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1) / INGEST_CPUS_PER_TASK))
    per_task = max(1, -(-len(rows) // (TASKS_PER_CPU * cpus)))  # chunks per Ray task
    ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // per_task)))
    ds = ds.map_batches(
        _ChunkDecoder(shared),
        batch_size=per_task,
        batch_format="numpy",
        num_cpus=INGEST_CPUS_PER_TASK,
    )
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for res in batch["result"]:
                yield json.loads(res)
    finally:
        ctx.op_resource_reservation_enabled = reserved
