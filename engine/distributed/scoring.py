"""The scoring pool: Ray Data actors turn sample blocks of shards into per-sample scores.

``score_block`` is the plain per-block function; ``BlockScorer`` wraps it as the
callable class Ray Data runs as actors; ``score_run`` drives the pool.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.scores import finalize_scores, get_score
from engine.scores.multilabel import DECISION_THRESHOLD
from engine.scores.multilabel_registry import get_multilabel_score
from engine.shards import MANIFEST_NAME, BlockReader, EpochBlock, ShardManifestError, preds_dir
from engine.shards.integrity import expected_entries

POOL_CPUS_PER_ACTOR = 0.5  # CPUs each scoring actor reserves; one CPU stays free for reads


def score_block(
    run_dir: Path | str,
    block: int,
    *,
    replicas: list[int],
    epochs: list[int],
    scores: list[str],
    expected: dict[str, dict] | None = None,
    options: dict[str, dict] | None = None,
) -> pa.Table:
    """Scores of the samples in one block, streaming one epoch (R shards) at a time.

    Whole-column steps (:func:`engine.scores.finalize_scores`) are not applied here:
    :func:`score_run` applies them once every block is scored.

    Args:
        run_dir: The run directory.
        block: Block index.
        replicas: Replica indices to use.
        epochs: Epoch indices to use, ascending.
        scores: Registered score names.
        expected: Manifest entries by shard path (default: read the run's manifests);
            a shard that does not match its entry is never scored.
        options: Score name -> its options (the spec's ``score_options``; defaults
            where missing).

    Returns:
        Table with ``sample_id``, ``label`` (nullable), one float64 column per score, and
        ``ensemble_pred`` and ``ensemble_conf``: the argmax and max of the replica-mean
        probabilities at the last epoch. Multi-label shards are scored with the
        multi-label entries of the same names
        (:mod:`engine.scores.multilabel_registry`), without ``label``, and the ensemble
        columns are those of :func:`multilabel_ensemble_columns`.

    Raises:
        ShardManifestError: On missing or inconsistent shards, or a score whose inputs the
            shards do not hold (the message names the file or the missing column).
        ShardValueError: On invalid values, naming the shard and the first bad sample id.
    """
    options = options or {}
    reader = iter(BlockReader(run_dir, block, replicas, epochs, expected=expected))
    first = next(reader)
    lookup = get_multilabel_score if first.multilabel else get_score  # the shards say which
    infos = [lookup(name) for name in scores]
    accs = {info.name: info.make_accumulator(options.get(info.name)) for info in infos}
    needs = {info.name: info.inputs(options.get(info.name)) for info in infos}
    last = None
    for eb in itertools.chain([first], reader):
        for info in infos:
            missing = [
                need
                for need in needs[info.name]
                if need != "input_grad" and getattr(eb, need) is None
            ]
            if info.needs_labels and eb.labels is None and eb.label_sets is None:
                missing.insert(0, "labels")
            if missing:
                raise ShardManifestError(
                    f"score {info.name!r} needs {', '.join(missing)}, which the shards of block "
                    f"{block} epoch {eb.epoch} do not hold"
                )
            info.feed(accs[info.name], eb)
        last = eb
    assert last is not None  # epochs is non-empty
    n = len(last.sample_ids)
    columns = {"sample_id": pa.array(last.sample_ids, pa.int64())}
    if not last.multilabel:  # a multi-label table has no int label column to misread
        columns["label"] = (
            pa.array(last.labels, pa.int64())
            if last.labels is not None
            else pa.nulls(n, pa.int64())
        )
    for info in infos:
        try:
            columns[info.name] = pa.array(info.result(accs[info.name]), pa.float64())
        except ValueError as exc:
            raise ShardManifestError(f"score {info.name!r} on block {block}: {exc}") from None
    if last.multilabel:
        columns.update(multilabel_ensemble_columns(last))
    else:
        columns["ensemble_pred"] = pa.array(np.asarray(last.ensemble_pred, dtype=np.int64))
        columns["ensemble_conf"] = pa.array(np.asarray(last.ensemble_conf, dtype=np.float64))
    return pa.table(columns)


def multilabel_ensemble_columns(block: EpochBlock) -> dict[str, pa.Array]:
    """The in-sample ensemble of a multi-label block's last epoch, as score-table columns.

    ``ensemble_probs`` (float64 (L,) per sample): the replica-mean sigmoid probabilities;
    ``ensemble_set`` (uint8 (L,)): 1 where that mean is above the decision threshold.
    """
    mean = np.asarray(block.probs, dtype=np.float64).mean(axis=0)
    width = mean.shape[1]
    return {
        "ensemble_probs": pa.FixedSizeListArray.from_arrays(pa.array(mean.ravel()), width),
        "ensemble_set": pa.FixedSizeListArray.from_arrays(
            pa.array((mean > DECISION_THRESHOLD).astype(np.uint8).ravel()), width
        ),
    }


class BlockScorer:
    """Callable class for ``map_batches``: a batch of block ids in, their score rows out.

    Reads the run manifest ``preds/_manifest.json`` once, and checks every shard it
    scores against its entry there.
    """

    def __init__(
        self,
        run_dir: str,
        replicas: list[int],
        epochs: list[int],
        scores: list[str],
        options: dict[str, dict] | None = None,
    ) -> None:
        rows = json.loads((preds_dir(run_dir) / MANIFEST_NAME).read_text())["rows"]
        self.kwargs = {
            "replicas": replicas,
            "epochs": epochs,
            "scores": scores,
            "expected": expected_entries(run_dir, rows),
            "options": options or {},
        }
        self.run_dir = run_dir

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Score every block id in ``batch["block"]``."""
        blocks = batch.column("block").to_pylist()
        return pa.concat_tables([score_block(self.run_dir, b, **self.kwargs) for b in blocks])


def pool_size(
    num_blocks: int, cluster_cpus: float, cpus_per_actor: float = POOL_CPUS_PER_ACTOR
) -> int:
    """Scoring actors: one per block, as many as fit in all CPUs but one (reads need it)."""
    return max(1, min(num_blocks, int(max(cluster_cpus - 1, 0) / cpus_per_actor)))


def score_run(
    run_dir: Path | str,
    *,
    replicas: list[int],
    epochs: list[int],
    num_blocks: int,
    scores: list[str],
    cpus_per_actor: float = POOL_CPUS_PER_ACTOR,
    num_actors: int | str = "auto",
    options: dict[str, dict] | None = None,
    groups: np.ndarray | None = None,
    has_classes: bool = True,
) -> pa.Table:
    """Score every block of a run through a Ray Data actor pool.

    Each actor holds one block across the R shards of one epoch at a time, so memory is
    bounded by the block size, not by N, R or E. Scores with a whole-column step (VoG's
    per-class normalisation) get it once every block is in.

    Args:
        run_dir: The run directory (its ``preds/_manifest.json`` lists the shards).
        replicas: Replica indices to use.
        epochs: Epoch indices to use.
        num_blocks: Sample blocks.
        scores: Registered score names.
        cpus_per_actor: CPUs each scoring actor reserves.
        num_actors: Pool size, or ``"auto"`` (see :func:`pool_size`).
        options: Score name -> its options (defaults where missing).
        groups: (N,) group of each sample id for the whole-column steps (the data
            split), or None.
        has_classes: False for a task whose labels are no classes (QA, seq2seq):
            per-class whole-column steps then work within ``groups`` only.

    Returns:
        The scores table sorted by ``sample_id`` (columns as in :func:`score_block`).
    """
    table = map_blocks(
        BlockScorer,
        {
            "run_dir": str(Path(run_dir).resolve()),
            "replicas": list(replicas),
            "epochs": list(epochs),
            "scores": list(scores),
            "options": dict(options or {}),
        },
        num_blocks=num_blocks,
        cpus_per_actor=cpus_per_actor,
        num_actors=num_actors,
    )
    ids = table.column("sample_id").to_numpy()
    if len(np.unique(ids)) != len(ids):
        raise ShardManifestError("the scoring pool returned duplicate sample ids")
    labels_col = table.column("label") if "label" in table.column_names else None
    labels = None if labels_col is None or labels_col.null_count else labels_col.to_numpy()
    columns = {name: table.column(name).to_numpy() for name in scores}
    final = finalize_scores(columns, options or {}, labels,
                            None if groups is None else groups[ids],
                            has_classes=has_classes)  # fmt: skip
    for name in scores:
        if final[name] is not columns[name]:
            i = table.column_names.index(name)
            table = table.set_column(i, name, pa.array(final[name], pa.float64()))
    return table


def map_blocks(
    scorer: type,
    kwargs: dict,
    *,
    num_blocks: int,
    cpus_per_actor: float = POOL_CPUS_PER_ACTOR,
    num_actors: int | str = "auto",
) -> pa.Table:
    """Run a block scorer class over every block id through a Ray Data actor pool.

    Args:
        scorer: A callable class for ``map_batches``: built with ``**kwargs`` once per
            actor, called with a table of ``block`` ids, returning rows with ``sample_id``.
        kwargs: Its constructor arguments.
        num_blocks: Sample blocks (ids 0 .. num_blocks - 1).
        cpus_per_actor: CPUs each actor reserves.
        num_actors: Pool size, or ``"auto"`` (see :func:`pool_size`).

    Returns:
        Every block's rows in one table, sorted by ``sample_id``.
    """
    import ray
    from ray.data import ActorPoolStrategy

    size = (
        pool_size(num_blocks, float(ray.cluster_resources().get("CPU", 1)), cpus_per_actor)
        if num_actors == "auto"
        else min(int(num_actors), num_blocks)
    )
    ds = ray.data.from_items(
        [{"block": b} for b in range(num_blocks)], override_num_blocks=num_blocks
    )
    ds = ds.map_batches(
        scorer,
        fn_constructor_kwargs=kwargs,
        batch_format="pyarrow",
        batch_size=1,
        compute=ActorPoolStrategy(size=size),
        num_cpus=cpus_per_actor,
    )
    tables = [
        pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
        for b in ds.iter_batches(batch_format="pyarrow", batch_size=None)
    ]
    return pa.concat_tables(tables).sort_by("sample_id")
