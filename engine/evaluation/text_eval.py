"""Per-sample quality of evaluated text models and the comparison of scores (QA and seq2seq).

QA: exact match (EM) and token F1 of each reader's best span; seq2seq: ROUGE-L of each
model's greedy decoding against the references and its token NLL; both per bin of the
splitting score (bin 0 = easiest). Then action against confusion (Spearman), and each
score, read in its direction, as a predictor of each model's misses (AUROC).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.data.qa import QAData
from engine.data.seq2seq import Seq2SeqData
from engine.evaluation.evaluate import display_name
from engine.evaluation.metrics import auroc, bootstrap_ci, pearson_bin_error
from engine.evaluation.text_metrics import exact_match, rouge_l_multi, token_f1
from engine.scores import get_score, hardness

BOOTSTRAP_RESAMPLES = 1000  # resamples for the confidence intervals of the miss rates
TEXT_METRICS = {
    "qa": {"title": "extractive QA", "metric": "EM", "key": "em", "second": "f1",
           "miss": "EM = 0", "inputs": ("question", "answer")},
    "seq2seq": {"title": "sequence to sequence", "metric": "ROUGE-L", "key": "rouge_l",
                "second": "nll", "miss": "reference NLL above the model's pool median",
                "inputs": ("source", "reference")},
}  # fmt: skip


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def _per_bin(values: np.ndarray, bins: np.ndarray, count: int) -> np.ndarray:
    return np.array(
        [values[bins == b].mean() if (bins == b).any() else np.nan for b in range(count)]
    )


def _evaluation(name: str, key: str, quality: np.ndarray, second: tuple[str, np.ndarray],
                miss: np.ndarray, bins: np.ndarray, is_hard: np.ndarray, count: int,
                score: np.ndarray) -> dict:  # fmt: skip
    """Overall, hard, rest and per-bin means of a per-sample quality and a second metric.

    The quality is in [0, 1], higher = better; ``error_*`` is 1 - quality (so MLflow
    logging and the error-by-bin plot work as for classifiers); the AUROC is that of
    ``score``, the splitting score's hardness (higher = harder), for ``miss``. The
    replicas' own ensemble is marked ``in_sample``: the bins are cut from its score.
    """
    per_bin = _per_bin(quality, bins, count)
    rho, p = pearson_bin_error(1 - per_bin)
    other, values = second
    ev = {"model": name, "in_sample": name == "ensemble"}
    for part, mask in (("all", np.ones(len(quality), bool)), ("hard", is_hard), ("rest", ~is_hard)):
        ev[f"{key}_{part}"] = float(quality[mask].mean())
        ev[f"{other}_{part}"] = float(values[mask].mean())
        ev[f"error_{part}"] = 1 - ev[f"{key}_{part}"]
    ev.update({
        "hard_minus_rest": ev["error_hard"] - ev["error_rest"],
        "error_per_bin": [float(x) for x in 1 - per_bin],
        f"{key}_per_bin": [float(x) for x in per_bin],
        f"{other}_per_bin": [float(x) for x in _per_bin(values, bins, count)],
        "miss_rate_all_ci95": list(bootstrap_ci(miss, n_boot=BOOTSTRAP_RESAMPLES, seed=0)),
        "miss_rate_hard_ci95": list(bootstrap_ci(miss[is_hard], n_boot=BOOTSTRAP_RESAMPLES, seed=0)),
        "pearson_rho": rho,
        "pearson_p": p,
        "auroc_score_error": auroc(score, miss) if 0 < miss.sum() < len(miss) else float("nan"),
        "num_misses": int(miss.sum()),
    })  # fmt: skip
    return ev


def evaluate_reader(
    name: str, data: QAData, pool: np.ndarray, start: np.ndarray, end: np.ndarray,
    bins: np.ndarray, is_hard: np.ndarray, count: int, score: np.ndarray,
) -> tuple[dict, dict[str, np.ndarray]]:  # fmt: skip
    """EM and F1 of one QA reader on the pool, overall, hard vs rest and per bin.

    Args:
        name: Reader label.
        data: The QA samples.
        pool: Int (P,) sample ids of the pool.
        start: Int (N,) start of the reader's best span, for every sample.
        end: Int (N,) its end (inclusive).
        bins: Int (P,) bin of each pool sample (0 = easiest).
        is_hard: Bool (P,) hard-split membership.
        count: Number of bins.
        score: Float (P,) the splitting score's hardness (higher = harder), for the AUROC.

    Returns:
        ``(evaluation, per-sample arrays {"prediction", "em", "f1", "miss"})``; the
        evaluation holds ``em_*``, ``f1_*`` and ``error_*`` (1 - EM) keys.
    """
    preds = [data.span_text(i, start[i], end[i]) for i in pool]
    em = np.array([exact_match(p, data.answers[i]) for p, i in zip(preds, pool, strict=True)])
    f1 = np.array([token_f1(p, data.answers[i]) for p, i in zip(preds, pool, strict=True)])
    miss = em == 0
    ev = _evaluation(name, "em", em, ("f1", f1), miss, bins, is_hard, count, score)
    return ev, {"prediction": np.asarray(preds, dtype=object), "em": em, "f1": f1, "miss": miss}


def evaluate_generator(
    name: str, data: Seq2SeqData, pool: np.ndarray, texts: list[str], loss: np.ndarray,
    bins: np.ndarray, is_hard: np.ndarray, count: int, score: np.ndarray,
) -> tuple[dict, dict[str, np.ndarray]]:  # fmt: skip
    """ROUGE-L and token NLL of one seq2seq model on the pool, overall, hard/rest, per bin.

    Args:
        name: Model label.
        data: The pairs.
        pool: Int (P,) sample ids of the pool.
        texts: N greedy decodings (every sample).
        loss: Float (N,) token-averaged NLL of the first reference.
        bins: Int (P,) bin of each pool sample (0 = easiest).
        is_hard: Bool (P,) hard-split membership.
        count: Number of bins.
        score: Float (P,) the splitting score's hardness (higher = harder), for the AUROC.

    Returns:
        ``(evaluation, per-sample arrays {"prediction", "rouge_l", "nll", "miss"})``; a
        miss is a reference NLL above the model's median on the pool (ROUGE-L has too
        many ties at 0 to split a pool of weak generations in two).
    """
    rouge = np.array([rouge_l_multi(texts[i], data.references[i]) for i in pool])
    nll = np.asarray(loss)[pool]
    miss = nll > np.median(nll)  # continuous, so an even split (ROUGE-L ties at 0 are common)
    ev = _evaluation(name, "rouge_l", rouge, ("nll", nll), miss, bins, is_hard, count, score)
    preds = np.asarray([texts[i] for i in pool], dtype=object)
    return ev, {"prediction": preds, "rouge_l": rouge, "nll": nll, "miss": miss}


def compare_scores(table: pa.Table, pool: np.ndarray, miss: dict[str, np.ndarray]) -> dict:
    """Action vs confusion, and each score as a predictor of each model's misses.

    Args:
        table: The scores table (one row per sample id, sorted), with ``split``.
        pool: Int (P,) pool sample ids.
        miss: Model name -> Bool (P,) its misses on the pool.

    Returns:
        ``{"spearman_action_confusion": {"all", "train", "heldout"}, "auroc": {model:
        {score: AUROC}}}``; each score is read in its direction (the registry's
        :func:`engine.scores.hardness`), so AUROC > 0.5 means harder by the score, more
        misses, for every score.
    """
    split = np.asarray(table.column("split").to_pylist())
    conf = table.column("confusion").to_numpy()
    act = table.column("action").to_numpy()
    rho = {"all": _spearman(act, conf)}
    for part in ("train", "heldout"):
        rho[part] = _spearman(act[split == part], conf[split == part])
    scores = [c for c in table.column_names if c not in ("sample_id", "split", "label",
                                                         "ensemble_pred", "ensemble_conf")]  # fmt: skip
    out: dict[str, dict] = {}
    for name, m in miss.items():
        out[name] = {}
        for s in scores:
            h = hardness(s, table.column(s).to_numpy()[pool])
            out[name][s] = auroc(h, m) if 0 < m.sum() < len(m) else float("nan")
    return {"spearman_action_confusion": rho, "auroc": out}


def text_results_table(task: str, evaluations: list[dict], comparison: dict, score: str) -> str:
    """The table printed at the end of a QA or seq2seq run."""
    info = TEXT_METRICS[task]
    key, metric, second = info["key"], info["metric"], info["second"]
    lines = [
        f"model | {metric} all | {metric} hard | {metric} rest | {second} all | "
        f"error by {score} bin (1 - {metric}, %)"
    ]
    for ev in evaluations:
        bins = " ".join(f"{100 * e:.1f}" for e in ev["error_per_bin"])
        lines.append(
            f"{display_name(ev)} | {100 * ev[f'{key}_all']:.1f} | {100 * ev[f'{key}_hard']:.1f} | "
            f"{100 * ev[f'{key}_rest']:.1f} | {ev[f'{second}_all']:.3f} | {bins} "
            f"(rho {ev['pearson_rho']:.3f})"
        )
    lines[0] += f"; bins from easiest (0) to hardest by {score} ({get_score(score).direction})"
    if any(ev.get("in_sample") for ev in evaluations):
        lines.append("(scorer, in-sample): the replicas' own ensemble, on bins cut from its score")
    rho = comparison["spearman_action_confusion"]
    lines.append(
        f"Spearman(action, confusion): all {rho['all']:.3f}, train {rho['train']:.3f}, "
        f"held-out {rho['heldout']:.3f}"
    )
    for name, aucs in comparison["auroc"].items():
        lines.append(
            f"AUROC for {name}'s misses: " + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items())
        )
    return "\n".join(lines)
