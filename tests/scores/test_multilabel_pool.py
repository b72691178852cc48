"""The scoring pool on multi-label shards equals the in-memory multi-label scores.

The same score names as every run (``confusion``, ``action``, the data map,
``forgetting``) resolve to the multi-label functions because the shards are
multi-label; the result equals those functions on the shards' own (float32)
probabilities, block by block and through the Ray Data actor pool.
"""

import numpy as np
import pytest

from engine.distributed.scoring import score_block, score_run
from engine.scores import get_score, hardness
from engine.scores.multilabel import (
    multilabel_action,
    multilabel_confusion,
    multilabel_data_map,
    multilabel_forgetting,
)
from engine.scores.multilabel_registry import get_multilabel_score, list_multilabel_scores
from engine.shards import ShardManifestError
from engine.shards.manifest import consolidate_manifest
from tests.shards.synthetic import ML_BLOCK, ML_SHAPE, write_multilabel_run

R, E, N, L = ML_SHAPE
NAMES = ["confusion", "action", "confidence", "variability", "correctness", "forgetting"]


def _expected(probs: np.ndarray, hot: np.ndarray) -> dict[str, np.ndarray]:
    p = probs.astype(np.float64)
    out = {"confusion": multilabel_confusion(p), "action": multilabel_action(hot, p),
           "forgetting": multilabel_forgetting(hot, p)}  # fmt: skip
    out.update(multilabel_data_map(hot, p))
    return out


def test_multilabel_entries_keep_the_registered_names_and_directions():
    assert list_multilabel_scores() == sorted(NAMES)
    for name in NAMES:
        assert get_multilabel_score(name).higher_is_harder == get_score(name).higher_is_harder
    assert not get_multilabel_score("confusion").needs_labels
    with pytest.raises(ValueError, match="multi-label score 'aum'"):
        get_multilabel_score("aum")


def test_score_block_equals_the_in_memory_multilabel_scores(tmp_path):
    probs, hot = write_multilabel_run(tmp_path)
    expected = _expected(probs, hot)
    blocks = -(-N // ML_BLOCK)
    tables = [score_block(tmp_path, b, replicas=list(range(R)), epochs=list(range(E)),
                          scores=NAMES) for b in range(blocks)]  # fmt: skip
    for name in NAMES:
        got = np.concatenate([t.column(name).to_numpy() for t in tables])
        np.testing.assert_array_equal(got, expected[name], err_msg=name)
    conf = np.concatenate([t.column("confusion").to_numpy() for t in tables])
    assert (conf >= 0).all() and (conf <= np.log(2)).all()
    ens = np.concatenate([np.stack(t.column("ensemble_set").to_numpy(zero_copy_only=False))
                          for t in tables])  # fmt: skip
    np.testing.assert_array_equal(ens, probs[:, -1].astype(np.float64).mean(0) > 0.5)
    assert "label" not in tables[0].column_names
    assert "ensemble_pred" not in tables[0].column_names


def test_a_softmax_only_score_is_refused_on_multilabel_shards(tmp_path):
    write_multilabel_run(tmp_path)
    with pytest.raises(ValueError, match="multi-label score 'aum'"):
        score_block(tmp_path, 0, replicas=[0, 1], epochs=[0, 1, 2], scores=["aum"])
    with pytest.raises((ValueError, ShardManifestError)):
        score_block(tmp_path, 0, replicas=[0, 1], epochs=[0], scores=["self_confidence"])


@pytest.mark.ray
def test_scoring_pool_equals_the_in_memory_multilabel_scores(tmp_path, ray_local):
    probs, hot = write_multilabel_run(tmp_path)
    consolidate_manifest(tmp_path, replicas=R, epochs=E, blocks=-(-N // ML_BLOCK))
    table = score_run(tmp_path, replicas=list(range(R)), epochs=list(range(E)),
                      num_blocks=-(-N // ML_BLOCK), scores=NAMES)  # fmt: skip
    np.testing.assert_array_equal(table.column("sample_id").to_numpy(), np.arange(N))
    for name, want in _expected(probs, hot).items():
        np.testing.assert_array_equal(table.column(name).to_numpy(), want, err_msg=name)
    hard = hardness("confidence", table.column("confidence").to_numpy())
    np.testing.assert_array_equal(hard, -table.column("confidence").to_numpy())
