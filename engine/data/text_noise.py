"""Injected answer noise for the text tasks: wrong QA answer spans, swapped seq2seq targets.

The text tasks' counterpart of :func:`engine.data.sources.flip_labels`: exactly
``round(fraction * N)`` samples, drawn with ``seed`` from all samples (training and
held-out alike, as the classification noise), get a wrong answer, and the mask of the
corrupted samples is kept so an audit can be scored against it
(:mod:`engine.evaluation.text_audit`).

- **QA**: the gold span moves to another span of the same length inside the same
  passage window that does not overlap the gold one (a plausible but wrong
  extraction, as a careless annotator would mark); the answer text follows the span.
  A sample whose window has no such span keeps its answer and is not counted.
- **Seq2seq**: the chosen samples' targets are permuted among themselves (each gets
  the target of another chosen sample about a different first fact), the way swapped
  rows in a table look.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.data.qa import QAData, display_text
from engine.data.seq2seq import Seq2SeqData


def _chosen(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    return np.sort(rng.choice(n, size=round(fraction * n), replace=False))


def corrupt_answer_spans(data: QAData, *, fraction: float, seed: int) -> tuple[QAData, np.ndarray]:
    """Move ``round(fraction * N)`` gold answer spans to a wrong span of the same length.

    Args:
        data: The tokenized QA samples (gold ``start``, ``end`` inclusive).
        fraction: Share of samples to corrupt, in (0, 1).
        seed: Seed of the choice of samples and of their wrong spans.

    Returns:
        ``(data with the corrupted starts, ends and answers, corrupted mask (N,) bool)``;
        a drawn sample whose window holds no other span of its length keeps its answer
        and is False in the mask.
    """
    rng = np.random.default_rng(seed)
    start, end = data.start.copy(), data.end.copy()
    answers, texts = list(data.answers), list(data.texts)
    corrupted = np.zeros(len(data), dtype=bool)
    for i in _chosen(len(data), fraction, rng):
        length = int(end[i] - start[i])
        window = np.flatnonzero(data.context_mask[i])
        first, last = int(window[0]), int(window[-1])
        candidates = np.arange(first, last - length + 1)  # spans [s, s + length] inside
        candidates = candidates[(candidates + length < start[i]) | (candidates > end[i])]
        if len(candidates) == 0:
            continue
        s = int(rng.choice(candidates))
        start[i], end[i] = s, s + length
        answers[i] = data.span_text(i, s, s + length)
        if texts:  # the display string names the answer
            texts[i] = display_text(data.questions[i], answers[i])
        corrupted[i] = True
    out = dataclasses.replace(
        data, start=start, end=end, answers=answers, texts=texts, corrupted=corrupted
    )
    return out, corrupted


def swap_targets(
    data: Seq2SeqData, *, fraction: float, seed: int
) -> tuple[Seq2SeqData, np.ndarray]:
    """Give ``round(fraction * N)`` samples the target of another drawn sample.

    The drawn samples are permuted as one cycle in a random order, so each gets the
    target (tokens, mask and references) of a different sample; a cycle step between
    two samples about the same first fact (``group``) would hand over a near-copy, so
    the order is redrawn (up to 100 times) until no step stays in a group.

    Args:
        data: The tokenized source/target pairs.
        fraction: Share of samples to corrupt, in (0, 1); at least 2 samples.
        seed: Seed of the choice of samples and of the cycle.

    Returns:
        ``(data with swapped targets, corrupted mask (N,) bool)``.

    Raises:
        ValueError: When fewer than 2 samples are drawn, or no cycle leaves every
            group (e.g. every drawn sample is about one fact).
    """
    rng = np.random.default_rng(seed)
    chosen = _chosen(len(data.split), fraction, rng)
    if len(chosen) < 2:
        raise ValueError(f"swapping targets needs at least 2 samples; {fraction} of "
                         f"{len(data.split)} is {len(chosen)}")  # fmt: skip
    for _ in range(100):
        order = rng.permutation(chosen)
        donor = np.roll(order, -1)  # order[k] takes the target of order[k + 1]
        if np.all(data.group[order] != data.group[donor]):
            break
    else:
        raise ValueError("no swap of targets between different first facts was found")
    target_ids, decoder_ids = data.target_ids.copy(), data.decoder_ids.copy()
    target_mask, references = data.target_mask.copy(), list(data.references)
    target_ids[order], decoder_ids[order] = data.target_ids[donor], data.decoder_ids[donor]
    target_mask[order] = data.target_mask[donor]
    for taker, giver in zip(order, donor, strict=True):
        references[taker] = data.references[giver]
    corrupted = np.zeros(len(data.split), dtype=bool)
    corrupted[chosen] = True
    out = dataclasses.replace(data, target_ids=target_ids, decoder_ids=decoder_ids,
                              target_mask=target_mask, references=references,
                              corrupted=corrupted)  # fmt: skip
    return out, corrupted


def inject_answer_noise(data: QAData | Seq2SeqData, noise: object) -> QAData | Seq2SeqData:
    """The samples with ``data.label_noise`` applied: wrong spans (QA) or swapped targets.

    Args:
        data: QA or seq2seq samples.
        noise: The spec's ``LabelNoiseSpec`` (``fraction``, ``seed``; ``kind`` uniform),
            or None.

    Returns:
        ``data`` itself without noise; else a copy with its ``corrupted`` mask set.
    """
    if noise is None:
        return data
    if noise.kind != "uniform" or noise.confusable is not None:
        raise ValueError("data.label_noise on text answers is uniform: there are no classes "
                         "to confuse")  # fmt: skip
    if isinstance(data, QAData):
        return corrupt_answer_spans(data, fraction=noise.fraction, seed=noise.seed)[0]
    return swap_targets(data, fraction=noise.fraction, seed=noise.seed)[0]
