"""What a spec alone decides about its data, checked before a run directory is made.

Parsing a spec (:func:`engine.spec.load_spec`) never touches the filesystem: a run's
stored ``spec.yaml`` must parse wherever the run is read, long after its data moved.
:func:`check_inputs` adds the checks that look at the data's paths, cheaply (no
listing, no decoding): every path the spec names exists; a training source is not
unlabelled; and a pool the spec makes unlabelled (``label_column: null``, or a flat
image folder, without ``pool_labels``) is not asked for label-aware scores, a
per-class hard rule or label noise. ``hardbench validate`` and ``hardbench ingest``
run it, and so does every build before it writes anything, so none of these fails
after an ingest or leaves a failed run behind. It also returns the warnings a user
should read before a run (one replica is not an ensemble).
"""

from __future__ import annotations

import glob
from pathlib import Path

from engine.spec import BenchmarkSpec, SpecError

PATTERN_SOURCES = ("webdataset",)  # sources whose data.path is a glob
FOLDER_SOURCES = ("imagefolder",)  # sources whose labels are their class folders


def check_inputs(spec: BenchmarkSpec, where: str = "<spec>") -> list[str]:
    """Refuse what the spec decides about its data; return warnings.

    Args:
        spec: A parsed :class:`engine.spec.BenchmarkSpec`.
        where: The spec's name in errors (its file).

    Returns:
        Warning lines (e.g. for ``replicas.count: 1``), possibly none.

    Raises:
        SpecError: Naming the field: a path that does not exist (a glob that matches
            nothing), an unlabelled training source, or what an unlabelled pool cannot
            give (label-aware scores, ``splits.hard.per_class``, ``data.label_noise``).
    """
    try:
        _check_paths(spec)
        _check_labels(spec)
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
    warnings = []
    if spec.replicas.count == 1:
        warnings.append(
            "replicas.count: 1: the confusion of one model is its own predictive entropy, not "
            "the disagreement of a seed ensemble (the paper's score); use 3 or more replicas"
        )
    return warnings


def _sources(spec: BenchmarkSpec) -> list[tuple[str, object]]:
    """``(field, section)`` of every source the spec reads: data (or data.train) and data.pool."""
    d = spec.data
    return [("data", d)] if d.pool is None else [
        ("data.train" if d.train is not None else "data", d.train or d), ("data.pool", d.pool)]  # fmt: skip


def _check_paths(spec: BenchmarkSpec) -> None:
    for field, src in _sources(spec):
        path = src.path
        if not path or "://" in path:
            continue
        if src.source in PATTERN_SOURCES:
            if not glob.glob(path):
                raise ValueError(f"{field}.path: {path} matches no file")
        elif not Path(path).exists():
            raise ValueError(f"{field}.path: {path} does not exist")
    labels = spec.data.pool_labels
    if labels and not Path(labels).is_file():
        raise ValueError(f"data.pool_labels: {labels} does not exist")


def unlabelled_reason(src: object) -> str | None:
    """Why a source section gives no labels (``label_column: null``, a flat folder), or None.

    A flat image folder is one whose top holds files and no class folder (hidden
    entries aside); the look is one ``scandir`` of that top.
    """
    if src.source in FOLDER_SOURCES:
        path = Path(src.path or "")
        try:
            top = [e for e in path.iterdir() if not e.name.startswith(".")]
        except OSError:
            return None  # missing: _check_paths says so
        if top and not any(e.is_dir() for e in top):
            return f"{src.path} is a flat folder of images (no class folders)"
        return None
    if src.label_column is None:
        return "label_column is null"
    return None


def refuse_label_aware(spec: BenchmarkSpec, why: str) -> None:
    """Refuse what an unlabelled pool cannot give.

    Args:
        spec: The spec.
        why: Why the pool is unlabelled, in words.

    Raises:
        ValueError: Naming the label-aware scores (and the label-free ones to use), the
            per-class hard rule, or label noise.
    """
    from engine.scores import get_score, list_scores

    aware = [s for s in spec.scores if get_score(s).needs_labels]
    if aware:
        free = [s for s in list_scores() if not get_score(s).needs_labels]
        raise ValueError(
            f"scores: {', '.join(aware)} need labels, and {why}; use label-free ones "
            f"({', '.join(free)}), or give the pool's labels (data.pool_labels)"
        )
    if spec.splits.hard.per_class:
        raise ValueError(f"splits.hard.per_class needs labels, and {why}")
    if spec.data.label_noise is not None:
        raise ValueError(f"data.label_noise flips labels, and {why}")


def _check_labels(spec: BenchmarkSpec) -> None:
    if spec.task.name != "classification":
        return
    (lead_field, lead), *pool = _sources(spec)
    reason = unlabelled_reason(lead)
    if reason is not None:
        raise ValueError(
            f"{lead_field}: {reason}, but the replicas train on labelled samples: give the "
            "labels, and put unlabelled samples in data.pool"
        )
    if pool and spec.data.pool_labels is None:
        reason = unlabelled_reason(pool[0][1])
        if reason is not None:
            refuse_label_aware(spec, f"the pool is unlabelled (data.pool: {reason})")
