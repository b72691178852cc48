"""The benchmark card: what was built, how, from what, and how models fared (JSON + Markdown)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.report import DUPLICATE_ROWS, format_counts
from engine.layout import BENCHMARK_DIR, CARD_JSON_FILE, CARD_MD_FILE
from engine.shards import atomic_write_bytes
from engine.spec import HARD_RULES
from engine.splits.builder import BuiltSplits
from engine.splits.display import (
    display_name,
    format_params,
    format_tau_matrix,
    in_sample_note,
    is_scorer,
)

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)  # score quantiles reported per split


def score_statistics(scores: pa.Table, names: list[str]) -> dict:
    """Per score and per data split: count, mean, std and quantiles.

    Samples where a score is undefined (NaN: forgetting counted during training, for
    held-out samples) are left out; a split with none defined gets ``count: 0`` and
    None statistics.
    """
    split = np.asarray(scores.column("split").to_pylist())
    stats: dict = {}
    for name in names:
        values = scores.column(name).to_numpy()
        stats[name] = {}
        for part in sorted(set(split)):
            v = values[split == part]
            v = v[~np.isnan(v)]
            keys = ["mean", "std", *(f"q{int(q * 100)}" for q in QUANTILES)]
            if not len(v):
                stats[name][part] = {"count": 0, **dict.fromkeys(keys)}
                continue
            stats[name][part] = {
                "count": len(v),
                "mean": float(v.mean()),
                "std": float(v.std()),
                **{f"q{int(q * 100)}": float(np.quantile(v, q)) for q in QUANTILES},
            }
    return stats


HISTOGRAM_BINS = 30  # equal-width bins of the card's score histograms


def score_histograms(scores: pa.Table, names: list[str]) -> dict:
    """Per score: shared bin edges and the counts of each data split."""
    split = np.asarray(scores.column("split").to_pylist())
    out: dict = {}
    for name in names:
        values = scores.column(name).to_numpy()
        finite = values[np.isfinite(values)]
        edges = np.histogram_bin_edges(finite if len(finite) else [0.0], bins=HISTOGRAM_BINS)
        out[name] = {
            "edges": edges.tolist(),
            "counts": {
                part: np.histogram(values[split == part], bins=edges)[0].tolist()
                for part in sorted(set(split))
            },
        }
    return out


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    """Samples per class, classes 0..K-1 (unlabelled samples, label -1, are not counted)."""
    labels = np.asarray(labels)
    return np.bincount(labels[labels >= 0], minlength=num_classes).astype(int).tolist()


def make_card(
    *,
    spec_dict: dict,
    run_id: str,
    seeds: dict,
    provenance: dict,
    scores: pa.Table,
    score_names: list[str],
    built: BuiltSplits,
    class_names: list[str] | None,
    evaluations: list[dict],
    timings: dict,
    scored_on: dict,
    transfer: dict | None = None,
    hard_rule_text: str = "",
    dataset: dict | None = None,
) -> dict:
    """Assemble the card as plain data.

    ``hard_rule_text`` is the hard rule in words (``SplitsSpec.describe()``); every
    evaluation carries ``in_sample`` (True for the replicas' own ensemble, and for
    every model on a pool that holds its training samples, with ``in_sample_reason``)
    and ``params``. ``class_names`` is None for a task without classes (QA, seq2seq): the
    card then has no per-class counts. ``dataset`` describes the dataset cache the run
    read (fingerprint, folder, samples, skipped samples with their reasons).
    """
    from engine.scores import get_score

    k = len(class_names or [])
    hard = spec_dict["splits"]["hard"]
    rule = next(r for r in HARD_RULES if hard.get(r) is not None)
    return {
        "name": spec_dict["metadata"]["name"],
        "task": spec_dict.get("task", {}).get("name", "classification"),
        "description": spec_dict["metadata"]["description"],
        "run_id": run_id,
        "seeds": seeds,
        "provenance": provenance,
        "scored_on": scored_on,
        "dataset": dataset,
        "splits": {
            "score": spec_dict["splits"]["score"],
            "pool": spec_dict["splits"]["pool"],
            "pool_size": len(built.sample_ids),
            "direction": get_score(spec_dict["splits"]["score"]).direction,
            "hard": {
                "rule": rule,
                "value": hard[rule],
                "count": int(built.is_hard.sum()),
                "min_score": float(built.score[built.is_hard].min()),
                "max_score": float(built.score[built.is_hard].max()),
            },
            "bins": [
                {
                    "bin": b,
                    "count": int((built.bins == b).sum()),
                    "min_score": _num(lo),
                    "max_score": _num(hi),
                }
                for b, (lo, hi) in enumerate(built.bin_edges)
            ],
            "leaked": _leak_summary(built),
            "hard_rule": {k: v for k, v in hard.items() if v not in (None, False, 0)},
            "hard_rule_text": hard_rule_text,
            "label_free": spec_dict["splits"]["label_free"],
            "files": {name: str(path) for name, path in built.files.items()},
        },
        "class_names": class_names or [],
        "per_class_counts": {}
        if class_names is None or built.labels is None  # no classes, or several per sample
        else {
            **_data_class_counts(dataset),
            "pool": class_counts(built.labels, k),
            "hard": class_counts(built.labels[built.is_hard], k),
            **{
                f"bin_{b}": class_counts(built.labels[built.bins == b], k)
                for b in range(len(built.bin_edges))
            },
        },
        "score_directions": {name: get_score(name).direction for name in score_names},
        "score_statistics": score_statistics(scores, score_names),
        "score_histograms": score_histograms(scores, score_names),
        "evaluation": evaluations,
        "transfer": transfer or {},
        "timings_s": timings,
        "spec": spec_dict,
    }


def _data_class_counts(dataset: dict | None) -> dict[str, list[int]]:
    """Samples per class in the training and held-out splits, from the data report."""
    report = (dataset or {}).get("report")
    if not report:
        return {}
    return {f"data: {side}": report["counts"][side]["per_class"] for side in ("train", "heldout")}


def _leak_summary(built: BuiltSplits) -> dict | None:
    """Pool samples that duplicate a training sample, and whether the hard split left them out."""
    leaked = built.leaked
    if leaked is None:
        return None
    return {
        "count": int(leaked.sum()),
        "in_hard": int((leaked & built.is_hard).sum()),
        "left_out_of_hard": built.leaked_left_out,
    }


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


SKIPS_SHOWN = 20  # skipped samples listed in card.md (card.json lists all)


def _dataset_lines(dataset: dict | None) -> list[str]:
    if not dataset:
        return []
    src = dataset["source"]
    lines = [
        f"- data: `{src['source']}`"
        + (f" at `{src['path']}`" if src.get("path") else "")
        + (
            f", {dataset['num_samples']} samples of shape {tuple(dataset['shape'])}, "
            if dataset.get("shape")
            else f", {dataset['num_samples']} texts, "
        )
        + f"fingerprint `{dataset['fingerprint'][:16]}`",
    ]
    tokens = dataset.get("tokens")
    if tokens:
        lines.append(f"- token ids: {tokens['vocab_size']:,}-word vocabulary learned from the "
                     f"training texts, {tokens['max_len']} per text, token cache "
                     f"`{tokens['fingerprint'][:16]}`")  # fmt: skip
    skipped = dataset.get("skipped") or []
    if skipped:
        lines.append(f"- skipped while ingesting ({len(skipped)}, `data.on_bad: skip`):")
        lines += [f"  - `{s['key']}`: {s['reason']}" for s in skipped[:SKIPS_SHOWN]]
        if len(skipped) > SKIPS_SHOWN:
            lines.append(f"  - ... {len(skipped) - SKIPS_SHOWN} more in card.json")
    return lines


def _data_lines(report: dict | None, leaks: dict | None) -> list[str]:
    """The card's data section: counts, what the ingest saw and did, duplicates, warnings."""
    if not report:
        return []
    c = report["counts"]
    seen = report.get("seen") or {}
    labels = report.get("labels") or {}
    lines = ["## Data", ""]
    for side, name in (("train", "training"), ("heldout", "held-out")):
        unl = c[side]["unlabelled"]
        lines.append(f"- {name}: {c[side]['total']:,} samples"
                     + (f" ({unl:,} unlabelled)" if unl else ""))  # fmt: skip
    if seen.get("modes"):
        lines.append(f"- image modes: {format_counts(seen['modes'])}; sizes: {format_counts(seen['sizes'])}"
                     + (f" ({seen['distinct_sizes']} distinct)"
                        if seen["distinct_sizes"] > len(seen["sizes"]) else ""))  # fmt: skip
        lines.append(f"- converted: {format_counts(seen.get('converted') or {})}")
    if labels.get("class_list_from"):
        stripped = labels.get("stripped", 0)
        lines.append(f"- class list from {labels['class_list_from']}"
                     + (f"; {stripped:,} labels had surrounding whitespace, stripped"
                        if stripped else ""))  # fmt: skip
    dup = report.get("duplicates") or {}
    if "exact" in dup:
        lines += [
            "",
            f"Duplicates (exact: the same stored content; near: {dup.get('near_rule', 'n/a')}):",
            "",
            "| samples | exact | near |",
            "|---|---|---|",
            *[f"| {text} | {dup['exact'][key]:,} | {dup['near'][key]:,} |"
              for key, text in DUPLICATE_ROWS],
        ]  # fmt: skip
        if leaks is not None and leaks["count"]:
            where = ("left out of the hard split (`splits.keep_leaked: false`)"
                     if leaks["left_out_of_hard"] else
                     f"kept eligible (`splits.keep_leaked: true`): {leaks['in_hard']} in the hard split")  # fmt: skip
            shown = ", ".join(f"`{p['heldout_key']}` = `{p['train_key']}`"
                              for p in dup.get("leaked_shown", [])[:5])  # fmt: skip
            lines += ["", f"{leaks['count']:,} pool samples leak, {where}; e.g. {shown}."]
    if report.get("warnings"):
        lines += ["", "Warnings:", "", *[f"- {w}" for w in report["warnings"]]]
    return [*lines, ""]


def _with_ci(record: dict, key: str, ci_key: str | None = None) -> str:
    """``0.123 [0.100, 0.150]``: a value and its 95% interval where recorded."""
    value = record.get(key)
    low, high = record.get(ci_key or f"{key}_ci95") or [math.nan, math.nan]
    if value is None or math.isnan(low):
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def _width_lines(evaluations: list[dict]) -> list[str]:
    """The evaluations' errors in the fixed-width score bins, as Markdown ([] if none)."""
    rows = [ev for ev in evaluations if "error_per_width_bin" in ev]
    if not rows:
        return []
    edges, counts = rows[0]["width_bin_edges"], rows[0]["width_bin_counts"]
    heads = [f"{lo:g} .. {hi:g} ({n})" for lo, hi, n in zip(edges, edges[1:], counts, strict=False)]
    out = [
        "",
        "Fixed-width bins of the score (`splits.bins.width`; samples per bin), error [95% CI]:",
        "",
        "| model | " + " | ".join(heads) + " | Pearson rho |",
        "|---|" + "---|" * len(heads) + "---|",
    ]
    for ev in rows:
        cells = [
            "n/a" if math.isnan(e) else f"{_fmt(e, True)} [{_fmt(lo, True)}, {_fmt(hi, True)}]"
            for e, (lo, hi) in zip(ev["error_per_width_bin"], ev["error_per_width_bin_ci95"],
                                   strict=True)
        ]  # fmt: skip
        out.append(f"| {display_name(ev)} | " + " | ".join(cells)
                   + f" | {_with_ci(ev, 'pearson_rho_width')} |")  # fmt: skip
    return out


def _train_sample_lines(evaluations: list[dict], nb: int) -> list[str]:
    """The evaluations on the training samples (own bins), as Markdown ([] if none)."""
    rows = [ev for ev in evaluations if "train_samples" in ev]
    if not rows:
        return []
    out = [
        "",
        "On the training samples (their own bins, the same rules; the evaluated models "
        "trained on them: in-sample, not a transfer result):",
        "",
        "| model | all | hard | rest | "
        + " | ".join(f"bin {b}" for b in range(nb))
        + " | Pearson r (per sample) | AUROC |",
        "|---|---|---|---|" + "---|" * nb + "---|---|",
    ]
    for ev in rows:
        t = ev["train_samples"]
        out.append(
            f"| {display_name(ev)} | {_fmt(t['error_all'], True)} | {_fmt(t['error_hard'], True)} | "
            f"{_fmt(t['error_rest'], True)} | "
            + " | ".join(_fmt(e, True) for e in t["error_per_bin"])
            + f" | {_with_ci(t, 'pearson_r_sample')} | {_with_ci(t, 'auroc_score_error')} |"
        )
    return out


def _label_free_lines(evaluations: list[dict], nb: int) -> list[str]:
    """The evaluation section of an unlabelled pool: confusion and disagreement per bin."""
    lines = [
        "",
        "## Evaluation (unlabelled pool: each model's confusion, mean entropy in nats / its "
        "disagreement with the majority of the other evaluated models, the scorer's ensemble "
        "left out; bins from the easiest to the hardest)",
        "",
        "| model | all | hard | rest | "
        + " | ".join(f"bin {b}" for b in range(nb))
        + " | Pearson rho (bin, disagreement) | AUROC (hardness -> disagreement) |",
        "|---|---|---|---|" + "---|" * nb + "---|---|",
    ]
    notes = []
    for ev in evaluations:
        cells = [f"{ev[f'confusion_{p}']:.3f} / {_fmt(ev[f'disagreement_{p}'], True)}"
                 for p in ("all", "hard", "rest")]  # fmt: skip
        cells += [f"{c:.3f} / {_fmt(d, True)}"
                  for c, d in zip(ev["confusion_per_bin"], ev["disagreement_per_bin"], strict=True)]  # fmt: skip
        lines.append(f"| {display_name(ev)} | " + " | ".join(cells)
                     + f" | {_fmt(ev['pearson_rho'])} | {_fmt(ev['auroc_score_disagreement'])} |")  # fmt: skip
        if ev.get("disagreement_note"):
            notes.append(f"- {ev['model']}: disagreement n/a: {ev['disagreement_note']}.")
    note = in_sample_note(evaluations)
    if note:
        notes.append(f"- {note}.")
    return [*lines, "", *notes] if notes else lines


def _training_lines(evaluations: list[dict]) -> list[str]:
    """How each pretrained model was made: fine-tuned (mode, epochs, size) or as it is (class map)."""
    lines = []
    for ev in evaluations:
        tr = ev.get("training")
        if not tr:
            continue
        if tr.get("as_is"):
            pairs = ", ".join(f"{c['class']} = ImageNet {c['index']} ({c['name']})"
                              for c in tr["imagenet_classes"])  # fmt: skip
            lines.append(f"- {ev['model']}: {tr['weights']} ImageNet weights as they are, "
                         f"logits restricted to the benchmark's classes: {pairs}")  # fmt: skip
        else:
            ft = tr["finetune"]
            size = f" at {ft['image_size']} px" if ft.get("image_size") else ""
            lines.append(f"- {ev['model']}: {tr['weights'] or 'random'} weights, head reset, "
                         f"{ft['mode']} for {ft['epochs']} epochs{size} on {ft['workers']} "
                         f"Ray Train worker(s) (batch {ft['batch_size']}, lr {ft['lr']})")  # fmt: skip
    return ["", "Pretrained models:", "", *lines] if lines else []


def card_markdown(card: dict) -> str:
    """Render the card as Markdown."""
    sp = card["splits"]
    lines = [
        f"# Benchmark card: {card['name']}",
        "",
        card["description"],
        "",
        f"- run: `{card['run_id']}`",
        f"- git: `{card['provenance']['git']['commit']}` (dirty: {card['provenance']['git']['dirty']})",
        f"- packages: {', '.join(f'{k} {v}' for k, v in card['provenance']['packages'].items())}",
        f"- seeds: {json.dumps(card['seeds'])}",
        f"- scored on replicas {card['scored_on']['replicas']} and epochs "
        f"{card['scored_on']['epochs'][0]}..{card['scored_on']['epochs'][-1]} (complete: {card['scored_on']['complete']})",
        *_dataset_lines(card.get("dataset")),
        "",
        *_data_lines((card.get("dataset") or {}).get("report"), card["splits"].get("leaked")),
        f"## Splits (score `{sp['score']}`, {sp.get('direction', 'higher = harder')}; "
        f"pool `{sp['pool']}`, {sp['pool_size']} samples)",
        "",
        f"Hard split: {sp.get('hard_rule_text') or json.dumps(sp['hard_rule'])} -> "
        f"{sp['hard']['count']} samples, score in [{_fmt(sp['hard']['min_score'])}, "
        f"{_fmt(sp['hard']['max_score'])}]. Bins run from the easiest (0) to the hardest.",
        "",
        "| bin | count | score range |",
        "|---|---|---|",
        *[
            f"| {b['bin']} | {b['count']} | {_fmt(b['min_score'])} .. {_fmt(b['max_score'])} |"
            for b in sp["bins"]
        ],
        "",
        *(
            [
                "## Per-class counts",
                "",
                "| split | " + " | ".join(card["class_names"]) + " |",
                "|---|" + "---|" * len(card["class_names"]),
                *[
                    f"| {name} | " + " | ".join(str(c) for c in counts) + " |"
                    for name, counts in card["per_class_counts"].items()
                ],
                "",
            ]
            if card["class_names"]
            else []
        ),
        "## Score statistics",
        "",
        "| score | split | count | mean | std | median | q90 | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for score, parts in card["score_statistics"].items():
        direction = card.get("score_directions", {}).get(score, "")
        for part, s in parts.items():
            cells = " | ".join(
                "n/a" if s[key] is None else f"{s[key]:.4f}"
                for key in ("mean", "std", "q50", "q90", "q100")
            )
            lines.append(f"| {score} ({direction}) | {part} | {s['count']} | {cells} |")
    if card["evaluation"] and all(ev.get("label_free") for ev in card["evaluation"]):
        lines += _label_free_lines(card["evaluation"], len(sp["bins"]))
    elif card["evaluation"]:
        nb = len(sp["bins"])
        lines += [
            "",
            "## Evaluation (error per bin: top-1 error, or 1 - EM, 1 - ROUGE-L; bins from the easiest to the hardest)",
            "",
            "| model | params | all | hard | rest | "
            + " | ".join(f"bin {b}" for b in range(nb))
            + " | Pearson r (per sample) | Pearson rho (bins) | AUROC (hardness -> error) |",
            "|---|---|---|---|---|" + "---|" * nb + "---|---|---|",
        ]
        for ev in card["evaluation"]:
            lines.append(
                f"| {display_name(ev)} | {format_params(ev.get('params'))} | "
                f"{_fmt(ev['error_all'], True)} | {_fmt(ev['error_hard'], True)} | "
                f"{_fmt(ev['error_rest'], True)} | "
                + " | ".join(_fmt(e, True) for e in ev["error_per_bin"])
                + f" | {_with_ci(ev, 'pearson_r_sample')} | {_with_ci(ev, 'pearson_rho')} | "
                f"{_with_ci(ev, 'auroc_score_error')} |"
            )
        lines += _width_lines(card["evaluation"])
        lines += _train_sample_lines(card["evaluation"], nb)
        if any(is_scorer(ev) for ev in card["evaluation"]):
            lines += [
                "",
                "(scorer, in-sample): the replicas' own ensemble on bins cut from its own score; "
                "not a transfer result.",
            ]
        note = in_sample_note(card["evaluation"])
        if note:
            lines += ["", f"{note}."]
        lines += _training_lines(card["evaluation"])
    tr = card.get("transfer") or {}
    if tr.get("kendall_tau_small_large") is not None:
        lines += [
            "",
            f"Kendall tau between the small ensemble's score (as hardness) and the reference "
            f"models' confusion ({', '.join(tr['reference_models'])}; {tr['reference_rule']}): "
            f"{_with_ci(tr, 'kendall_tau_small_large', 'kendall_tau_ci95')}.",
        ]
    if tr.get("seed_ensembles"):
        lines += ["", "```", *format_tau_matrix(tr["seed_ensembles"]), "```"]
    if (tr.get("confusion_vs_accuracy") or {}).get("models"):
        from engine.splits.display import format_confusion_vs_accuracy

        lines += ["", format_confusion_vs_accuracy(tr["confusion_vs_accuracy"]) + "."]
    elif "reference_rule" in tr:
        lines += ["", f"Kendall tau: no reference models ({tr['reference_rule']})."]
    lines += _label_error_lines(card.get("label_errors"))
    lines += ["", "## Resolved spec", "", "```json", json.dumps(card["spec"], indent=2), "```", ""]
    return "\n".join(lines)


def _label_error_lines(label_errors: dict | None) -> list[str]:
    """The card's label-error section: the audit's estimate for the held-out split."""
    if not label_errors:
        return []
    low, high = label_errors["ci95"]
    return [
        "",
        "## Label errors",
        "",
        f"About {_fmt(label_errors['rate'], True)} of the {label_errors['split']} labels look "
        f"wrong (95% CI {_fmt(low, True)} .. {_fmt(high, True)}; "
        f"{label_errors['num_label_issues']} of {label_errors['samples']} samples): "
        f"{label_errors['method']}, audit `{label_errors['audit']}`.",
    ]


def record_label_errors(run_dir: Path | str, label_errors: dict) -> dict[str, Path] | None:
    """Put a label audit's estimated held-out label-error rate on the run's card.

    Sets ``label_errors`` of ``benchmark/card.json`` (replacing an earlier audit's) and
    rewrites ``card.md`` with its section; nothing else of the card changes.

    Args:
        run_dir: The run.
        label_errors: ``{"split", "rate", "ci95": [low, high], "num_label_issues",
            "samples", "method", "audit"}`` (the audit folder, relative to the run).

    Returns:
        The card's paths, or None when the run has no card (no splits were built).
    """
    path = Path(run_dir) / BENCHMARK_DIR / CARD_JSON_FILE
    if not path.exists():
        return None
    card = json.loads(path.read_text())
    card["label_errors"] = label_errors
    return write_card(run_dir, card)


def write_card(run_dir: Path | str, card: dict) -> dict[str, Path]:
    """Write ``benchmark/card.json`` and ``benchmark/card.md`` atomically."""
    out = Path(run_dir) / BENCHMARK_DIR
    paths = {"json": out / CARD_JSON_FILE, "md": out / CARD_MD_FILE}
    atomic_write_bytes(paths["json"], json.dumps(card, indent=2, default=_json_default).encode())
    atomic_write_bytes(paths["md"], card_markdown(card).encode())
    return paths


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
