"""The seq2seq definitions that no loss decides: an evaluated model's miss (ROUGE-L of its
greedy decoding) and a replica's per-epoch correctness (teacher-forced exact match)."""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from engine.evaluation.text_eval import MISS_ROUGE_L, generator_quality
from engine.evaluation.text_metrics import rouge_l_multi
from engine.training.seq2seq import reduce_epoch

REFERENCES = [
    ["plants need sunlight to grow"],
    ["rain forms clouds", "clouds form from evaporated water"],
    ["magnets attract iron"],
    ["heat melts ice"],
]
TEXTS = [
    "plants need sunlight to grow",  # exact: ROUGE-L 1
    "clouds form from water",  # the second reference: 4 of 5 words in order, F 0.89
    "magnets repel",  # 1 of 3 and 1 of 2: F = 0.4, above the threshold
    "the sun is hot",  # nothing in common: F = 0
]


def test_a_miss_is_a_low_rouge_l_whatever_the_nll():
    data = SimpleNamespace(references=REFERENCES)
    pool = np.arange(4)
    rouge = np.array([rouge_l_multi(t, r) for t, r in zip(TEXTS, REFERENCES, strict=True)])
    assert rouge[2] == rouge_l_multi("magnets repel", ["magnets attract iron"]) > MISS_ROUGE_L
    low_nll = np.array([0.1, 0.2, 0.3, 0.4])  # the best generation has the lowest NLL
    high_nll = low_nll[::-1] * 10  # and now the highest: a NLL-median miss would flip
    a = generator_quality(data, pool, TEXTS, low_nll)
    b = generator_quality(data, pool, TEXTS, high_nll)
    np.testing.assert_array_equal(a["miss"], [False, False, False, True])
    np.testing.assert_array_equal(b["miss"], a["miss"])
    np.testing.assert_array_equal(a["rouge_l"], rouge)
    np.testing.assert_array_equal(b["nll"], high_nll)  # reported, never read for the miss


@dataclass
class _Pairs:
    """The arrays reduce_epoch reads: 3 samples, targets of 4, 3 and 2 tokens (end included)."""

    target_ids = np.array([[5, 6, 7, 3], [8, 9, 3, 0], [4, 3, 0, 0]])
    target_mask = target_ids != 0
    source_ids = np.arange(3)[:, None].repeat(2, axis=1)  # a sample's source: its index
    decoder_ids = np.zeros((3, 4), np.int64)

    def __len__(self) -> int:
        return len(self.target_ids)


class _Replica:
    """Predicts every gold token, except at the (sample, position) pairs in ``wrong``."""

    vocab = 10  # token ids of the crafted targets are below this

    def __init__(self, data: _Pairs, wrong: set[tuple[int, int]]) -> None:
        self.data, self.wrong = data, wrong

    def eval(self) -> "_Replica":
        return self

    def hidden(self, src: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        sample = src[:, :1].expand(-1, dec.shape[1])
        position = torch.arange(dec.shape[1]).expand(len(src), -1)
        return torch.stack([sample, position], dim=-1)  # (B, T, 2): which token each is

    def logits_of(self, h: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(h), self.vocab)
        for row, (i, t) in enumerate(h.tolist()):
            gold = int(self.data.target_ids[i, t])
            logits[row, (gold + 1) % self.vocab if (i, t) in self.wrong else gold] = 5.0
        return logits


def test_a_replica_is_correct_when_every_target_token_is_its_argmax():
    data = _Pairs()
    perfect = _Replica(data, set())
    one_token_off = _Replica(data, {(0, 1)})  # 3 of 4 tokens right: accuracy 0.75, not exact
    end_off = _Replica(data, {(1, 2), (2, 1)})  # misses the end token: decoding would run on
    out = reduce_epoch([perfect, one_token_off, end_off], data)
    np.testing.assert_array_equal(
        out["correct"], [[True, True, True], [False, True, True], [True, False, False]]
    )
    assert out["correct"].dtype == bool and out["loss"].shape == (3, 3)
