"""Injected answer noise for the text tasks: wrong QA spans, swapped seq2seq targets."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.qa import load_quoref
from engine.data.seq2seq import load_qasc_fusion
from engine.data.text_noise import corrupt_answer_spans, inject_answer_noise, swap_targets
from engine.spec import SpecError, load_spec
from engine.spec.training import LabelNoiseSpec


@pytest.fixture(scope="module")
def qa():
    return load_quoref(heldout_fraction=0.3, split_seed=0, limit=300)


@pytest.fixture(scope="module")
def pairs():
    return load_qasc_fusion(heldout_fraction=0.3, split_seed=0, limit=300)


def test_wrong_spans_are_other_spans_of_the_same_length_inside_the_window(qa):
    noisy, corrupted = corrupt_answer_spans(qa, fraction=0.1, seed=3)
    drawn = round(0.1 * len(qa))
    assert 0.9 * drawn <= corrupted.sum() <= drawn  # a window without room keeps its answer
    assert np.array_equal(noisy.corrupted, corrupted)
    same = ~corrupted
    assert np.array_equal(noisy.start[same], qa.start[same])
    assert np.array_equal(noisy.end[same], qa.end[same])
    assert [noisy.answers[i] for i in np.flatnonzero(same)] == [
        qa.answers[i] for i in np.flatnonzero(same)
    ]
    for i in np.flatnonzero(corrupted):
        assert noisy.end[i] - noisy.start[i] == qa.end[i] - qa.start[i]
        assert noisy.end[i] < qa.start[i] or noisy.start[i] > qa.end[i]  # no overlap
        assert qa.context_mask[i, noisy.start[i]] and qa.context_mask[i, noisy.end[i]]
        assert noisy.answers[i] == qa.span_text(i, noisy.start[i], noisy.end[i])
        assert noisy.texts[i].endswith(f"A: {noisy.answers[i]}")
    again, _ = corrupt_answer_spans(qa, fraction=0.1, seed=3)
    assert np.array_equal(again.start, noisy.start) and again.answers == noisy.answers
    assert qa.corrupted is None  # the clean samples are left as they were


def test_swapped_targets_come_from_other_facts_and_keep_the_rest(pairs):
    noisy, corrupted = swap_targets(pairs, fraction=0.1, seed=1)
    assert corrupted.sum() == round(0.1 * len(pairs))
    same = ~corrupted
    assert np.array_equal(noisy.target_ids[same], pairs.target_ids[same])
    moved = np.flatnonzero(corrupted)
    # Every swapped sample holds the target of another drawn sample about another fact.
    originals = {pairs.target_ids[i].tobytes(): i for i in moved}
    for i in moved:
        donor = originals[noisy.target_ids[i].tobytes()]
        assert donor != i and pairs.group[donor] != pairs.group[i]
        assert noisy.references[i] == pairs.references[donor]
        assert np.array_equal(noisy.target_mask[i], pairs.target_mask[donor])
        assert np.array_equal(noisy.decoder_ids[i], pairs.decoder_ids[donor])
    assert sorted(originals.values()) == moved.tolist()


def test_the_spec_takes_uniform_answer_noise_for_text_tasks_only(pairs):
    spec = load_spec("tests/fixtures/tiny-qa.yaml", ["data.label_noise={fraction: 0.1, seed: 2}"])
    assert spec.data.label_noise.fraction == 0.1
    with pytest.raises(SpecError, match=r"data\.label_noise.*no classes to confuse"):
        load_spec(
            "tests/fixtures/tiny-seq2seq.yaml",
            ["data.label_noise={fraction: 0.1, kind: class_conditional}"],
        )
    noisy = inject_answer_noise(pairs, LabelNoiseSpec(fraction=0.05, seed=0))
    assert noisy.corrupted.sum() == round(0.05 * len(pairs))
    assert inject_answer_noise(pairs, None) is pairs
