"""One score recomputed for many (epochs, replicas) subsets of a run's shards, in one pool pass.

Each setting of an ablation (:mod:`engine.evaluation.ablation`) is scored exactly as
the scoring stage scores a run whose shards are those epochs and replicas
(:func:`engine.distributed.scoring.score_block` on that subset, then the score's
whole-column step), so a setting equals such a run's score column bit for bit. The
pool reads each block once per setting; one actor holds one block at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.distributed.scoring import POOL_CPUS_PER_ACTOR, map_blocks, score_block
from engine.scores import finalize_scores
from engine.shards import MANIFEST_NAME, ShardManifestError, preds_dir
from engine.shards.integrity import expected_entries


class SettingsScorer:
    """Callable class for ``map_batches``: a batch of block ids in, one score column per setting out.

    Reads the run manifest once and checks every shard against its entry there.
    """

    def __init__(
        self,
        run_dir: str,
        settings: dict[str, dict[str, list[int]]],
        score: str,
        options: dict[str, dict] | None = None,
    ) -> None:
        rows = json.loads((preds_dir(run_dir) / MANIFEST_NAME).read_text())["rows"]
        self.expected = expected_entries(run_dir, rows)
        self.run_dir, self.settings, self.score = run_dir, settings, score
        self.options = options or {}

    def _block(self, block: int) -> pa.Table:
        columns: dict[str, pa.Array] = {}
        for name, used in self.settings.items():
            table = score_block(
                self.run_dir, block, replicas=used["replicas"], epochs=used["epochs"],
                scores=[self.score], expected=self.expected, options=self.options,
            )  # fmt: skip
            if not columns:
                columns["sample_id"] = table.column("sample_id")
                if "label" in table.column_names:
                    columns["label"] = table.column("label")
            columns[name] = table.column(self.score)
        return pa.table(columns)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Score every block id in ``batch["block"]`` under every setting."""
        return pa.concat_tables([self._block(b) for b in batch.column("block").to_pylist()])


def score_settings(
    run_dir: Path | str,
    settings: dict[str, dict[str, list[int]]],
    *,
    score: str,
    num_blocks: int,
    options: dict[str, dict] | None = None,
    groups: np.ndarray | None = None,
    cpus_per_actor: float = POOL_CPUS_PER_ACTOR,
    num_actors: int | str = "auto",
    has_classes: bool = True,
) -> pa.Table:
    """Score ``score`` under every setting through one Ray Data actor pool pass.

    Needs Ray to be initialised.

    Args:
        run_dir: The run directory (its ``preds/_manifest.json`` lists the shards).
        settings: Column name -> ``{"replicas": [...], "epochs": [...]}`` (ascending
            indices the run recorded).
        score: A registered score name.
        num_blocks: Sample blocks of the run.
        options: Score name -> its options (the spec's ``score_options``).
        groups: (N,) group of each sample id for the score's whole-column step (the
            data split), or None.
        cpus_per_actor: CPUs each actor reserves.
        num_actors: Pool size, or ``"auto"``.
        has_classes: False for a task whose labels are no classes (QA, seq2seq): a
            per-class whole-column step then works within ``groups`` only.

    Returns:
        ``sample_id``, ``label`` (where the shards hold labels) and one float64 column
        per setting, sorted by ``sample_id``: one row per sample of the run.

    Raises:
        ShardManifestError: On missing or inconsistent shards (named), or duplicate ids.
    """
    table = map_blocks(
        SettingsScorer,
        {
            "run_dir": str(Path(run_dir).resolve()),
            "settings": {k: {"replicas": list(v["replicas"]), "epochs": list(v["epochs"])}
                         for k, v in settings.items()},
            "score": score,
            "options": dict(options or {}),
        },
        num_blocks=num_blocks,
        cpus_per_actor=cpus_per_actor,
        num_actors=num_actors,
    )  # fmt: skip
    ids = table.column("sample_id").to_numpy()
    if len(np.unique(ids)) != len(ids):
        raise ShardManifestError("the ablation pool returned duplicate sample ids")
    labels_col = table.column("label") if "label" in table.column_names else None
    labels = None if labels_col is None or labels_col.null_count else labels_col.to_numpy()
    group_of = None if groups is None else groups[ids]
    for name in settings:
        column = table.column(name).to_numpy()
        final = finalize_scores({score: column}, options or {}, labels, group_of,
                                has_classes=has_classes)[score]  # fmt: skip
        if final is not column:
            i = table.column_names.index(name)
            table = table.set_column(i, name, pa.array(final, pa.float64()))
    return table
