"""The data report: what a dataset holds, what the ingest did to it, its duplicates and leaks.

The ingest records what does not depend on the split (image modes and sizes, the
conversions applied, skipped samples, stripped labels, duplicate groups: see
:mod:`engine.data.duplicates`) in the cache's ``meta.json``. :func:`data_report`
adds what does, once the split is known (a seeded split is cut at load time): the
counts per class and split, classes missing from a side, and the duplicates within
the training split, within the held-out pool and **across** them. A held-out sample
that duplicates a training sample (an exact or a near copy) **leaks**: every model
trained on the training split has seen it. :func:`leak_partners` names, for each
held-out sample, the training sample it duplicates; the split builder leaves those
samples out of the hard split unless ``splits.keep_leaked`` says otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from engine.data.decode import CONVERTED_PREFIX, MODE_PREFIX, SIZE_PREFIX, TO_GREY
from engine.data.duplicates import NO_GROUP
from engine.data.labels import split_warnings
from engine.data.sources import SPLIT_HELDOUT, SPLIT_TRAIN, UNLABELLED

MAX_SIZES = 10  # most common image sizes listed in the report
SHOWN_LEAKS = 24  # leaked (held-out, training) pairs listed in the report (all are in the splits)
SHOWN_SKIP_REASONS = 8  # most common skip reasons listed
NO_PARTNER = -1  # leak partner of a sample that duplicates no training sample
DUPLICATE_ROWS = (  # the duplicate table's rows (card, report.html): key in the report, label
    ("within_train", "training samples with a training copy"),
    ("within_heldout", "held-out samples with a held-out copy"),
    ("heldout_with_train_copy", "held-out samples with a training copy (leak)"),
    ("label_conflicts", "duplicate groups whose labels disagree"),
)


def seen_summary(seen: Mapping[str, int]) -> dict:
    """What the decoder saw, from its ``seen`` counts (:func:`engine.data.decode.decode_image`).

    Returns:
        ``{"modes": {mode: count}, "sizes": {"WxH": count} (the most common),
        "distinct_sizes", "width": [min, max], "height": [min, max],
        "converted": {conversion: count}}``; empty dicts for text.
    """

    def strip(prefix: str) -> Counter[str]:
        return Counter({k[len(prefix) :]: v for k, v in seen.items() if k.startswith(prefix)})

    sizes = strip(SIZE_PREFIX)
    dims = [tuple(int(d) for d in s.split("x")) for s in sizes]
    return {
        "modes": dict(strip(MODE_PREFIX).most_common()),
        "sizes": dict(sizes.most_common(MAX_SIZES)),
        "distinct_sizes": len(sizes),
        "width": [min(w for w, _ in dims), max(w for w, _ in dims)] if dims else None,
        "height": [min(h for _, h in dims), max(h for _, h in dims)] if dims else None,
        "converted": dict(strip(CONVERTED_PREFIX).most_common()),
    }


def format_counts(counter: Mapping[str, int]) -> str:
    """``L (70,000), RGB (12)`` for a report's counts; ``none`` when empty."""
    return ", ".join(f"{k} ({v:,})" for k, v in counter.items()) or "none"


def leak_partners(
    split: np.ndarray, exact: np.ndarray, near: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each held-out sample, the training sample it duplicates, and whether exactly.

    Args:
        split: (N,) ``train`` / ``heldout``.
        exact: Int64 (N,) exact-duplicate groups (:data:`NO_GROUP` for none).
        near: Int64 (N,) near-duplicate groups (containing the exact ones).

    Returns:
        ``(partner int64 (N,), exact bool (N,))``: the smallest training sample id in the
        same near group (:data:`NO_PARTNER` for training samples and for held-out samples
        with no training copy), and whether that held-out sample has an exact training copy.
    """
    n = len(split)
    train = split == SPLIT_TRAIN

    def smallest_train(groups: np.ndarray) -> np.ndarray:
        first = np.full(n, np.iinfo(np.int64).max, np.int64)
        has = train & (groups != NO_GROUP)
        np.minimum.at(first, groups[has], np.flatnonzero(has))
        out = np.full(n, NO_PARTNER, np.int64)
        held = (split == SPLIT_HELDOUT) & (groups != NO_GROUP)
        found = first[groups[held]]
        out[np.flatnonzero(held)] = np.where(found < n, found, NO_PARTNER)
        return out

    return smallest_train(near), smallest_train(exact) != NO_PARTNER


def _within(split: np.ndarray, groups: np.ndarray, side: str) -> int:
    """Samples of ``side`` that have a copy on the same side."""
    mask = (split == side) & (groups != NO_GROUP)
    counts = Counter(groups[mask].tolist())
    return int(sum(c for c in counts.values() if c > 1))


def _conflicts(labels: np.ndarray, groups: np.ndarray) -> int:
    """Groups whose labelled members disagree on the label."""
    mask = (groups != NO_GROUP) & (labels != UNLABELLED)
    seen: dict[int, set[int]] = {}
    for g, y in zip(groups[mask].tolist(), labels[mask].tolist(), strict=True):
        seen.setdefault(g, set()).add(y)
    return sum(len(ys) > 1 for ys in seen.values())


def data_report(
    meta: Mapping,
    labels: np.ndarray,
    split: np.ndarray,
    exact: np.ndarray,
    near: np.ndarray,
    keys: list[str],
) -> tuple[dict, np.ndarray]:
    """The report of a dataset cache under a split, and each sample's leak partner.

    Args:
        meta: The cache's ``meta.json`` (seen, skipped, labels, duplicates, class names).
        labels: Int64 (N,) class indices, -1 unlabelled.
        split: (N,) ``train`` / ``heldout``.
        exact: Int64 (N,) exact-duplicate groups.
        near: Int64 (N,) near-duplicate groups.
        keys: The N sample keys (named in the report's leak list).

    Returns:
        ``(report, partner)``: the report (JSON-able: ``counts``, ``seen``,
        ``skipped``, ``labels``, ``warnings``, ``duplicates``) and int64 (N,) leak
        partners (:func:`leak_partners`).
    """
    names = list(meta["class_names"])
    k = len(names)
    counts = {}
    for side in (SPLIT_TRAIN, SPLIT_HELDOUT):
        mine = labels[split == side]
        counts[side] = {
            "total": len(mine),
            "per_class": np.bincount(mine[mine >= 0], minlength=k).astype(int).tolist(),
            "unlabelled": int((mine == UNLABELLED).sum()),
        }
    partner, exact_leak = leak_partners(split, exact, near)
    leaked = np.flatnonzero(partner != NO_PARTNER)
    reasons = Counter(s["reason"] for s in meta.get("skipped", []))
    warnings = split_warnings(labels, split, names)
    if len(leaked):
        warnings.append(
            f"{len(leaked)} held-out samples duplicate a training sample "
            f"({int(exact_leak.sum())} exact copies): every model trained on the training "
            "split has seen them"
        )
    stripped = int(meta.get("labels", {}).get("stripped", 0))
    if stripped:
        warnings.append(f"{stripped} labels had surrounding whitespace, stripped")
    greyed = ((meta.get("seen") or {}).get("converted") or {}).get(TO_GREY, 0)
    if greyed and (meta.get("source") or {}).get("channels") is None:
        warnings.append(
            f"{greyed:,} colour images were converted to grey because the first image is grey "
            "(data.channels unset takes the first image's): set data.channels: 3 to keep colour"
        )
    dup = dict(meta.get("duplicates") or {})
    for kind, groups in (("exact", exact), ("near", near)):
        dup[kind] = {
            "within_train": _within(split, groups, SPLIT_TRAIN),
            "within_heldout": _within(split, groups, SPLIT_HELDOUT),
            "heldout_with_train_copy": int(
                ((partner != NO_PARTNER) & (exact_leak if kind == "exact" else True)).sum()
            ),
            "label_conflicts": _conflicts(labels, groups),
        }
    dup["leaked"] = len(leaked)
    dup["leaked_shown"] = [
        {"heldout": int(i), "heldout_key": keys[i], "train": int(partner[i]),
         "train_key": keys[int(partner[i])], "exact": bool(exact_leak[i])}
        for i in leaked[:SHOWN_LEAKS]
    ]  # fmt: skip
    report = {
        "class_names": names,
        "counts": counts,
        "seen": meta.get("seen") or {},
        "skipped": {
            "count": len(meta.get("skipped", [])),
            "reasons": dict(reasons.most_common(SHOWN_SKIP_REASONS)),
        },
        "labels": dict(meta.get("labels") or {}),
        "warnings": warnings,
        "duplicates": dup,
    }
    return report, partner


def data_metrics(report: dict) -> dict[str, float]:
    """The report's headline numbers as MLflow metrics (``data_*``)."""
    dup = report.get("duplicates") or {}
    out = {
        "data_train_samples": report["counts"]["train"]["total"],
        "data_heldout_samples": report["counts"]["heldout"]["total"],
        "data_skipped": (report.get("skipped") or {}).get("count", 0),
        "data_warnings": len(report.get("warnings") or []),
    }
    if "exact" in dup:
        out.update(
            data_exact_duplicate_samples=dup.get("exact_samples", 0),
            data_near_duplicate_pairs=dup.get("near_pairs", 0),
            data_leaked=dup.get("leaked", 0),
            data_label_conflicts=dup["exact"]["label_conflicts"] + dup["near"]["label_conflicts"],
        )
    return {k: float(v) for k, v in out.items()}
