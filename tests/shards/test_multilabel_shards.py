"""Multi-label shards: sigmoid probabilities and label sets written, verified and read back.

Rows of sigmoid probabilities need not sum to 1 (a softmax shard's check would refuse
them), a value outside [0, 1] is named with its shard and sample, and the softmax
views of a block refuse multi-label shards instead of misreading them.
"""

import numpy as np
import pytest

from engine.shards import BlockReader, record_epoch, write_epoch_shards
from engine.shards.reader import ShardValueError
from tests.shards.synthetic import ML_BLOCK as BLOCK
from tests.shards.synthetic import ML_SHAPE, write_multilabel_run

R, E, N, L = ML_SHAPE


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_multilabel_shards_read_back_unnormalised(tmp_path, dtype):
    probs, hot = write_multilabel_run(tmp_path, dtype=dtype)
    blocks = list(BlockReader(tmp_path, 1, list(range(R)), list(range(E))))
    assert [b.epoch for b in blocks] == list(range(E))
    for b in blocks:
        assert b.multilabel and b.labels is None
        np.testing.assert_array_equal(b.sample_ids, np.arange(BLOCK, 2 * BLOCK))
        np.testing.assert_array_equal(b.label_sets, hot[BLOCK : 2 * BLOCK])
        expected = probs[:, b.epoch, BLOCK : 2 * BLOCK].astype(dtype).astype(np.float32)
        np.testing.assert_array_equal(b.probs, expected)  # not divided by row sums
        with pytest.raises(ShardValueError, match="multi-label shards"):
            b.mean_entropy  # noqa: B018
        with pytest.raises(ShardValueError, match="multi-label shards"):
            b.correct  # noqa: B018


def test_sigmoid_outside_unit_interval_names_shard_and_sample(tmp_path):
    probs, hot = write_multilabel_run(tmp_path)
    bad = probs[0, 0].copy()
    bad[7, 2] = 1.5
    blocks = write_epoch_shards(tmp_path, replica=0, epoch=0, probs=bad, loss=None, labels=None,
                                block_size=BLOCK, label_sets=hot)  # fmt: skip
    record_epoch(tmp_path, replica=0, epoch=0, blocks=blocks)
    with pytest.raises(ShardValueError, match=r"replica=0/epoch=0/block=1.*sample_id 7.*\[0, 1\]"):
        list(BlockReader(tmp_path, 1, [0, 1], [0]))


def test_multilabel_shards_refuse_single_label_columns(tmp_path):
    hot = np.ones((3, 2), np.uint8)
    with pytest.raises(ValueError, match="multi-label shards take no labels, pred"):
        write_epoch_shards(tmp_path, replica=0, epoch=0, probs=np.full((3, 2), 0.5), loss=None,
                           labels=np.zeros(3, int), pred=np.zeros(3, int), block_size=2,
                           label_sets=hot)  # fmt: skip
