import numpy as np
import pytest

from engine.data.qa import CONTEXT_LEN, SEQ_LEN, load_quoref, read_quoref
from engine.evaluation.text_metrics import normalize_answer


def test_bundled_corpus_counts():
    passages, rows = read_quoref()
    assert len(passages) == 2942 and len(rows) == 6500
    # every stored answer occurs at its stored offset
    assert all(passages[p][a0 : a0 + len(a)] == a for p, _, a, a0 in rows)


@pytest.fixture(scope="module")
def small():
    return load_quoref(limit=400, split_seed=3)


def test_windows_hold_their_answers(small):
    n = len(small)
    assert small.input_ids.shape == (n, SEQ_LEN)
    assert (small.context_mask.sum(1) <= CONTEXT_LEN).all()
    rows = np.arange(n)
    assert small.context_mask[rows, small.start].all() and small.context_mask[rows, small.end].all()
    assert (small.start <= small.end).all()
    same = [
        normalize_answer(small.span_text(i, small.start[i], small.end[i]))
        == normalize_answer(small.answers[i])
        for i in range(n)
    ]
    assert np.mean(same) > 0.99
    # types: 0 up to the first [SEP], 1 over the window; padding is id 0 after the last [SEP]
    assert (small.token_types[small.context_mask] == 1).all()
    assert (small.input_ids[:, 0] == small.input_ids[0, 0]).all()  # [CLS] first


def test_split_is_by_passage_and_deterministic(small):
    train = set(small.passage[small.split == "train"])
    held = set(small.passage[small.split == "heldout"])
    assert train and held and not train & held
    again = load_quoref(limit=400, split_seed=3)
    np.testing.assert_array_equal(again.input_ids, small.input_ids)
    np.testing.assert_array_equal(again.start, small.start)
    other = load_quoref(limit=400, split_seed=4)
    assert not np.array_equal(other.split, small.split)


def test_answer_position_is_spread_over_the_window(small):
    first = np.argmax(small.context_mask, axis=1)
    rel = small.start - first
    # a windowed reader must not learn "the answer is at the start of the window"
    assert rel.min() == 0 and rel.max() > CONTEXT_LEN // 2 and np.std(rel) > 15
