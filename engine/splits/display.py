"""How evaluated models appear in every table: the card, the report, ``hardbench compare``.

The replicas' own ensemble is scored on bins cut from its own score: it is marked as
the in-sample scorer wherever it is shown, and left out of every transfer result.
"""

from __future__ import annotations

IN_SAMPLE_LABEL = "scorer, in-sample"  # how the replicas' own ensemble is marked in every table
SINGLE_REPLICA = "single replica"  # what the "ensemble" of replicas.count: 1 is called
PARAM_SCALES = ((1e9, "B"), (1e6, "M"), (1e3, "k"))  # parameter-count suffixes, largest first


def transfer_rows(evaluations: list[dict]) -> list[dict]:
    """The evaluations that are transfer results: every model but the in-sample scorer."""
    return [ev for ev in evaluations if not ev.get("in_sample")]


def display_name(ev: dict) -> str:
    """A model's label in tables and plots: the ensemble is marked as the in-sample scorer.

    One replica is no ensemble: its column reads ``single replica (scorer, in-sample)``.
    """
    if not ev.get("in_sample"):
        return ev["model"]
    name = SINGLE_REPLICA if ev.get("replicas") == 1 else ev["model"]
    return f"{name} ({IN_SAMPLE_LABEL})"


def format_params(count: int | None) -> str:
    """A parameter count for tables: ``4.8k``, ``11.2M``; ``?`` when unknown."""
    if count is None:
        return "?"
    for scale, suffix in PARAM_SCALES:
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return str(count)
