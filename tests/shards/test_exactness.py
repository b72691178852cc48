"""Shards keep every label-aware score exact (issue 14): top-k tails, float16 ties and -0.0.

Each test builds full float32 predictions, writes them in the compact form under test
and in the exact form, and compares what the scoring pool computes from each.
"""

import numpy as np
import pyarrow as pa
import pytest

from engine.distributed.scoring import score_block
from engine.scores import margins_from_logits
from engine.shards import BlockReader, record_epoch, write_epoch_shards


def _softmax(logits):
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def _write(run_dir, logits, labels, **kwargs):
    """Write (R, E, N, K) float64 logits as shards the way a replica does (pred from logits)."""
    r, e = logits.shape[:2]
    probs = _softmax(logits)
    for ri in range(r):
        for ei in range(e):
            lg, p = logits[ri, ei], probs[ri, ei]
            blocks = write_epoch_shards(
                run_dir, replica=ri, epoch=ei, probs=p.astype(np.float32),
                loss=-np.log(p[np.arange(len(labels)), labels]).astype(np.float32),
                labels=labels, margin=margins_from_logits(labels, lg).astype(np.float32),
                pred=lg.argmax(-1), block_size=len(labels), **kwargs,
            )  # fmt: skip
            record_epoch(run_dir, replica=ri, epoch=ei, blocks=blocks)
    return probs


def _score(run_dir, logits, names):
    r, e = logits.shape[:2]
    return score_block(run_dir, 0, replicas=list(range(r)), epochs=list(range(e)), scores=names)


def _outside_top_k(rng, r, e, n, k, top):
    """Logits whose label lies outside every replica's top ``top`` for most samples."""
    logits = rng.normal(size=(r, e, n, k)) * rng.uniform(0.5, 3, size=(1, 1, n, 1))
    order = np.argsort(-logits[0, -1], axis=-1)
    labels = order[np.arange(n), rng.integers(top, k, size=n)]  # rank >= top in replica 0
    return logits, labels


LABEL_SCORES = ["action", "aum", "forgetting", "el2n", "confidence", "variability",
                "correctness", "self_confidence"]  # fmt: skip


@pytest.mark.parametrize("r", [1, 3])
def test_top_k_shards_give_exact_label_scores_with_labels_outside_the_top_k(tmp_path, r):
    rng = np.random.default_rng(11)
    e, n, k, top = 3, 300, 40, 4
    logits, labels = _outside_top_k(rng, r, e, n, k, top)
    probs = _write(tmp_path / "full", logits, labels, probs_dtype="float32")
    _write(tmp_path / "topk", logits, labels, probs_dtype="float32", top_k=top)
    ranks = (np.argsort(-probs, -1) == labels[None, None, :, None]).argmax(-1)
    assert (ranks >= top).mean() > 0.5  # the label is in the rebuilt tail for most rows
    names = [*LABEL_SCORES, "normalized_margin"]
    full = _score(tmp_path / "full", logits, names)
    topk = _score(tmp_path / "topk", logits, names)
    for name in LABEL_SCORES:
        np.testing.assert_allclose(
            topk.column(name).to_numpy(), full.column(name).to_numpy(), atol=2e-6, err_msg=name
        )
    err = np.abs(
        topk.column("normalized_margin").to_numpy() - full.column("normalized_margin").to_numpy()
    )
    if r == 1:  # one replica: p(label) from the loss, the largest other among the stored top k
        assert err.max() < 2e-6
    else:  # bounded by half the mean over replicas of min(k-th value, tail mass) (docs)
        last = np.sort(probs[:, -1], -1)[..., ::-1]  # (R, N, K) descending
        bound = 0.5 * np.minimum(last[..., top - 1], 1 - last[..., :top].sum(-1)).mean(0)
        assert np.all(err <= bound + 2e-6)
        assert err.max() > 1e-4  # really an approximation with several replicas


def test_float16_shards_keep_correctness_and_the_ensemble_pred_of_the_float32_logits(tmp_path):
    # Two classes nearly tied: float16 rounds both probabilities to exactly 0.5.
    logits = np.log(np.array([[[[0.49995, 0.50005], [0.50004, 0.49996], [0.9, 0.1]]]]))
    logits = np.concatenate([logits, logits[:, :1]], axis=1)  # (R=1, E=2, N=3, K=2)
    labels = np.array([1, 0, 0])
    _write(tmp_path / "f16", logits, labels, probs_dtype="float16")
    _write(tmp_path / "f32", logits, labels, probs_dtype="float32")
    names = ["forgetting", "correctness", "confidence", "aum"]
    f16, f32 = _score(tmp_path / "f16", logits, names), _score(tmp_path / "f32", logits, names)
    block = next(iter(BlockReader(tmp_path / "f16", 0, [0], [0])))
    assert block.probs[0, 0, 0] == block.probs[0, 0, 1] == 0.5  # a tie once rounded
    np.testing.assert_array_equal(block.correct[0], [True, True, True])  # as the logits say
    for name in ("forgetting", "correctness"):
        np.testing.assert_array_equal(f16.column(name).to_numpy(), f32.column(name).to_numpy())
    np.testing.assert_array_equal(f16.column("correctness").to_numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(
        f16.column("ensemble_pred").to_numpy(), f32.column("ensemble_pred").to_numpy()
    )
    np.testing.assert_array_equal(f16.column("ensemble_pred").to_numpy(), [1, 0, 0])


def test_float16_ensemble_argmax_ties_go_to_the_replicas_vote():
    from engine.shards.reader import ensemble_argmax

    mean = np.array([[0.5, 0.5, 0.0], [0.2, 0.4, 0.4], [0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    preds = np.array([[1, 2, 1, 0], [1, 2, 1, 1], [0, 1, 1, 0]])  # (R=3, N=4)
    np.testing.assert_array_equal(ensemble_argmax(mean, preds), [1, 2, 0, 0])
    np.testing.assert_array_equal(ensemble_argmax(mean, None), mean.argmax(1))


def test_minus_zero_halves_read_as_zero_and_float16_rows_are_renormalised(tmp_path):
    rng = np.random.default_rng(2)
    n, k = 64, 1000
    probs = _softmax(rng.normal(size=(n, k)) * 2)
    probs[:, :5] = 0.0
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    signed = probs.copy()
    signed[:, :5] *= -1  # -0.0
    assert np.signbit(signed[:, :5]).all()
    loss = np.ones(n, np.float32)
    labels = np.full(n, 7)
    for name, p in (("plus", np.where(signed == 0, 0.0, signed)), ("minus", signed)):
        blocks = write_epoch_shards(
            tmp_path / name, replica=0, epoch=0, probs=p, loss=loss, labels=labels,
            block_size=n, probs_dtype="float16",
        )  # fmt: skip
        record_epoch(tmp_path / name, replica=0, epoch=0, blocks=blocks)
    plus = next(iter(BlockReader(tmp_path / "plus", 0, [0], [0])))
    minus = next(iter(BlockReader(tmp_path / "minus", 0, [0], [0])))  # no 131072 error
    np.testing.assert_array_equal(minus.probs, plus.probs)
    # float16 rounding leaves K=1000 rows up to ~1e-4 off 1; read back they sum to 1.
    raw = pa.array(p.astype(np.float16).reshape(-1)).to_numpy().reshape(n, k).astype(np.float64)
    assert np.abs(raw.sum(1) - 1).max() > 1e-5
    np.testing.assert_allclose(minus.probs[0].sum(1, dtype=np.float64), 1.0, atol=2e-6)
    exact = -(
        raw
        / raw.sum(1, keepdims=True)
        * np.log(np.where(raw > 0, raw / raw.sum(1, keepdims=True), 1))
    ).sum(1)
    np.testing.assert_allclose(minus.mean_entropy, exact, atol=1e-5)
