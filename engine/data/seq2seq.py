"""Sequence-to-sequence data: QASC fact fusion (two facts in, their combined fact out).

``engine/data/corpora/qasc_fusion.json.xz`` holds 6,500 QASC examples (CC BY 4.0; see
``corpora/README.md``): two science facts and the concluding fact a person wrote by
chaining them, a short abstractive summary of the pair. Examples are split into
train and held-out by their first fact (927 distinct), so no held-out first fact
was seen in training; the word-level vocabulary is learned from training text only.

Source: ``[CLS] fact 1 [SEP] fact 2``, truncated to SOURCE_LEN. Target: the first
written combination's tokens then ``[SEP]`` (end of sequence), truncated to
TARGET_LEN; the decoder reads ``[CLS]`` (start) followed by the target shifted right.
"""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.qa import SEP, SPLIT_HELDOUT, SPLIT_TRAIN, held_out_groups
from engine.data.text import CLS, train_tokenizer

SEQ2SEQ_FILE = Path(__file__).resolve().parent / "corpora" / "qasc_fusion.json.xz"
SOURCE_LEN = 64  # source tokens ([CLS] fact 1 [SEP] fact 2); 99.9% of pairs fit
TARGET_LEN = 24  # target tokens including the end [SEP]; 99.5% of combinations fit
VOCAB = 5000  # word-level vocabulary (the rest is [UNK]; covers 98% of training tokens)

__all__ = ["SPLIT_HELDOUT", "SPLIT_TRAIN", "Seq2SeqData", "load_qasc_fusion"]


@dataclass
class Seq2SeqData:
    """Tokenized source/target pairs (N samples).

    Attributes:
        name: Source name.
        source_ids: Int64 (N, SOURCE_LEN), right-padded with 0.
        target_ids: Int64 (N, TARGET_LEN): target tokens then the end id, 0-padded.
        decoder_ids: Int64 (N, TARGET_LEN): the start id, then ``target_ids`` shifted right.
        target_mask: Bool (N, TARGET_LEN): the target's real positions (end id included);
            only these enter a score.
        split: Str (N,) ``train`` or ``heldout``.
        sources: N source strings ("fact 1 / fact 2").
        references: N lists of reference strings (all written combinations).
        group: Int64 (N,) index of the first fact (the split unit).
        vocab: Token of each id (for decoding).
        start_id: Decoder start id ([CLS]).
        end_id: End-of-sequence id ([SEP]).
        dataset: A user table's description (path, fingerprint, skipped rows), or None.
        corrupted: Bool (N,) samples whose target ``data.label_noise`` swapped
            (:mod:`engine.data.text_noise`), or None without injected noise.
    """

    name: str
    source_ids: np.ndarray
    target_ids: np.ndarray
    decoder_ids: np.ndarray
    target_mask: np.ndarray
    split: np.ndarray
    sources: list[str]
    references: list[list[str]]
    group: np.ndarray
    vocab: list[str]
    start_id: int
    end_id: int
    dataset: dict | None = None  # a user table's description (run.json, card), else None
    corrupted: np.ndarray | None = None  # Bool (N,): targets swapped by data.label_noise

    def __len__(self) -> int:
        return len(self.split)

    @property
    def vocab_size(self) -> int:
        """Number of token ids."""
        return len(self.vocab)

    @property
    def texts(self) -> list[str]:
        """One display string per sample (source and first reference)."""
        return [f"{s} -> {r[0]}" for s, r in zip(self.sources, self.references, strict=True)]

    def decode(self, ids: np.ndarray) -> str:
        """Token ids up to the first end id (or padding) as space-joined words."""
        words = []
        for i in np.asarray(ids).tolist():
            if i in (self.end_id, 0):
                break
            words.append(self.vocab[i])
        return " ".join(words)


def read_qasc_fusion(path: Path = SEQ2SEQ_FILE) -> list[tuple[str, str, list[str]]]:
    """The bundled ``(fact 1, fact 2, [combined facts])`` examples."""
    if not path.exists():
        raise FileNotFoundError(f"the bundled seq2seq corpus {path} is missing from this checkout")
    return [tuple(e) for e in json.loads(lzma.decompress(path.read_bytes()))["examples"]]


def load_qasc_fusion(
    *, heldout_fraction: float = 0.2, split_seed: int = 0, limit: int | None = None
) -> Seq2SeqData:
    """Tokenize the bundled fact-fusion pairs.

    Args:
        heldout_fraction: Share of first facts (with all their examples) held out.
        split_seed: Seed of that split.
        limit: Keep only the first ``limit`` examples (tests, quick runs).

    Returns:
        :class:`Seq2SeqData`.
    """
    return build_seq2seq("qasc_fusion", read_qasc_fusion(), heldout_fraction=heldout_fraction,
                         split_seed=split_seed, limit=limit)  # fmt: skip


def build_seq2seq(
    name: str,
    rows: list[tuple[str, str | None, list[str]]],
    *,
    heldout_fraction: float,
    split_seed: int,
    limit: int | None = None,
    split: np.ndarray | None = None,
) -> Seq2SeqData:
    """Tokenize ``(source part 1, part 2 or None, [references])`` rows (see the module docstring).

    A row without a second part has the source ``[CLS] part 1``. Rows are split by
    their first part (all rows with the same one on one side), unless the source
    gives ``split`` per row.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    if limit is not None:
        rows = rows[:limit]
        split = None if split is None else split[:limit]
    firsts = sorted({r[0] for r in rows})
    position = {fact: i for i, fact in enumerate(firsts)}
    group = np.asarray([position[r[0]] for r in rows], np.int64)
    if split is None:
        held = held_out_groups(len(firsts), heldout_fraction, split_seed)[group]
    else:
        held = np.asarray(split) == SPLIT_HELDOUT
    train_text = [t for r, h in zip(rows, held, strict=True) if not h
                  for t in (r[0], *([r[1]] if r[1] is not None else []), *r[2])]  # fmt: skip
    tok = train_tokenizer(train_text, VOCAB, extra_specials=(SEP,))
    start_id, end_id = tok.token_to_id(CLS), tok.token_to_id(SEP)
    n = len(rows)
    src = np.zeros((n, SOURCE_LEN), np.int64)
    tgt = np.zeros((n, TARGET_LEN), np.int64)
    f1 = tok.encode_batch([r[0] for r in rows])
    f2 = tok.encode_batch([r[1] or "" for r in rows])
    out = tok.encode_batch([r[2][0] for r in rows])
    for i in range(n):
        second = [end_id, *f2[i].ids] if rows[i][1] is not None else []
        s = [start_id, *f1[i].ids, *second][:SOURCE_LEN]
        t = [*out[i].ids[: TARGET_LEN - 1], end_id]
        src[i, : len(s)] = s
        tgt[i, : len(t)] = t
    dec = np.zeros_like(tgt)
    dec[:, 0] = start_id
    dec[:, 1:] = tgt[:, :-1]
    mask = tgt != 0
    dec[:, 1:][~mask[:, 1:]] = 0  # nothing is fed after the end token
    vocab = [""] * tok.get_vocab_size()
    for word, i in tok.get_vocab().items():
        vocab[i] = word
    return Seq2SeqData(
        name=name,
        source_ids=src,
        target_ids=tgt,
        decoder_ids=dec,
        target_mask=mask,
        split=np.where(held, SPLIT_HELDOUT, SPLIT_TRAIN),
        sources=[f"{r[0]} / {r[1]}" if r[1] is not None else r[0] for r in rows],
        references=[list(r[2]) for r in rows],
        group=group,
        vocab=vocab,
        start_id=start_id,
        end_id=end_id,
    )
