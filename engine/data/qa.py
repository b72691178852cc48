"""Extractive QA data: Quoref questions over Wikipedia passages, bundled in the repo.

``engine/data/corpora/quoref_qa.json.xz`` holds 6,500 Quoref questions (CC BY 4.0; see
``corpora/README.md`` for the source and changes). Each question becomes one sample:

    [CLS] question (<= QUESTION_LEN tokens) [SEP] passage window (<= CONTEXT_LEN) [SEP]

The passage window is CONTEXT_LEN tokens that contain the answer, at an offset drawn
uniformly (seeded by the split seed and the question's index) among the windows that
hold it, so the answer's position in the window carries no signal. Some questions
need a referent outside the window; those are harder, as in any windowed reader.
Questions are split into train and held-out by passage, so no held-out passage was
seen in training. The word-level vocabulary is learned from training passages and
questions only.
"""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.text import CLS, VOCAB_SIZE, train_tokenizer

QA_FILE = Path(__file__).resolve().parent / "corpora" / "quoref_qa.json.xz"
SEP = "[SEP]"  # separates the question from the passage window
QUESTION_LEN = 24  # question tokens kept (99% of Quoref questions fit)
CONTEXT_LEN = 120  # passage tokens per window
SEQ_LEN = 1 + QUESTION_LEN + 1 + CONTEXT_LEN + 1  # [CLS] q [SEP] window [SEP]
MAX_ANSWER_TOKENS = 16  # longest span a reader may predict (every gold answer fits)
SPLIT_TRAIN, SPLIT_HELDOUT = "train", "heldout"


@dataclass
class QAData:
    """Tokenized extractive-QA samples (N questions, sequences of L = SEQ_LEN tokens).

    Attributes:
        name: Source name.
        input_ids: Int64 (N, L) token ids, right-padded with 0.
        token_types: Int64 (N, L): 0 for [CLS], the question and its [SEP]; 1 after.
        context_mask: Bool (N, L): the window's tokens, the only places a span may
            start or end.
        start: Int64 (N,) position of the gold answer's first token.
        end: Int64 (N,) position of its last token (inclusive).
        split: Str (N,) ``train`` or ``heldout``.
        questions: N question strings.
        answers: N gold answer strings.
        contexts: N passage-window strings.
        offsets: Int64 (N, L, 2) character offsets of each window token in
            ``contexts[i]``; -1 outside the window.
        passage: Int64 (N,) index of the passage each question is about.
        vocab_size: Size of the tokenizer's vocabulary.
        texts: One display string per sample.
        dataset: A user table's description (path, fingerprint, skipped rows), or None.
        corrupted: Bool (N,) samples whose answer ``data.label_noise`` moved
            (:mod:`engine.data.text_noise`), or None without injected noise.
    """

    name: str
    input_ids: np.ndarray
    token_types: np.ndarray
    context_mask: np.ndarray
    start: np.ndarray
    end: np.ndarray
    split: np.ndarray
    questions: list[str]
    answers: list[str]
    contexts: list[str]
    offsets: np.ndarray
    passage: np.ndarray
    vocab_size: int = VOCAB_SIZE
    texts: list[str] = field(default_factory=list)
    dataset: dict | None = None  # a user table's description (run.json, card), else None
    corrupted: np.ndarray | None = None  # Bool (N,): answers moved by data.label_noise

    def __len__(self) -> int:
        return len(self.start)

    def span_text(self, i: int, start: int, end: int) -> str:
        """The window text from token ``start`` to token ``end`` (inclusive) of sample ``i``."""
        a, b = self.offsets[i, start, 0], self.offsets[i, end, 1]
        if a < 0 or b < 0 or b < a:
            return ""
        return self.contexts[i][a:b]


def display_text(question: str, answer: str) -> str:
    """How a QA sample is shown (report, audit page): its question and its answer."""
    return f"Q: {question} A: {answer}"


def read_quoref(path: Path = QA_FILE) -> tuple[list[str], list[tuple[int, str, str, int]]]:
    """The bundled passages and ``(passage index, question, answer, answer_start)`` rows."""
    if not path.exists():
        raise FileNotFoundError(f"the bundled QA corpus {path} is missing from this checkout")
    data = json.loads(lzma.decompress(path.read_bytes()))
    return data["passages"], [tuple(q) for q in data["questions"]]


def held_out_groups(num_groups: int, heldout_fraction: float, seed: int) -> np.ndarray:
    """Bool (num_groups,): True for held-out groups (passages, first facts); an exact share, seeded."""
    rng = np.random.default_rng(seed)
    held = np.zeros(num_groups, dtype=bool)
    held[rng.permutation(num_groups)[: round(heldout_fraction * num_groups)]] = True
    return held


def _token_span(passage: str, tok_off: np.ndarray, answer: str, first: int) -> tuple[int, int]:
    """First and last token of the answer's first token-aligned occurrence.

    An occurrence is token-aligned when it starts and ends on token boundaries. With
    none, the first occurrence is used and its span covers whole words (e.g. "Gregory"
    for the answer "Greg": 12 of the 6,500 questions).
    """
    starts, ends = set(tok_off[:, 0].tolist()), set(tok_off[:, 1].tolist())
    a0 = first
    while a0 >= 0:
        if a0 in starts and a0 + len(answer) in ends:
            break
        a0 = passage.find(answer, a0 + 1)
    if a0 < 0:
        a0 = first
    inside = np.flatnonzero((tok_off[:, 1] > a0) & (tok_off[:, 0] < a0 + len(answer)))
    return int(inside[0]), int(inside[-1])


def load_quoref(
    *, heldout_fraction: float = 0.2, split_seed: int = 0, limit: int | None = None
) -> QAData:
    """Tokenize the bundled Quoref questions into fixed-length QA samples.

    Args:
        heldout_fraction: Share of passages (with all their questions) held out.
        split_seed: Seed of the passage split and of each question's window offset.
        limit: Keep only the first ``limit`` questions (tests, quick runs).

    Returns:
        :class:`QAData` with every question whose answer lies inside its window (all do).
    """
    passages, rows = read_quoref()
    return build_qa("quoref", passages, rows, heldout_fraction=heldout_fraction,
                    split_seed=split_seed, limit=limit)  # fmt: skip


def build_qa(
    name: str,
    passages: list[str],
    rows: list[tuple[int, str, str, int]],
    *,
    heldout_fraction: float,
    split_seed: int,
    limit: int | None = None,
    split: np.ndarray | None = None,
) -> QAData:
    """Tokenize questions over passages into fixed-length QA samples (see the module docstring).

    Args:
        name: Source name.
        passages: The passages.
        rows: ``(passage index, question, answer, answer's first character)`` per sample.
        heldout_fraction: Share of passages (with all their questions) held out.
        split_seed: Seed of the passage split and of each question's window offset.
        limit: Keep only the first ``limit`` rows.
        split: ``train``/``heldout`` per row from the source, instead of the passage split.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    if limit is not None:
        rows = rows[:limit]
        split = None if split is None else split[:limit]
    held = held_out_groups(len(passages), heldout_fraction, split_seed)
    if split is not None:  # the source's split, per question: a passage's questions may differ
        held_q = np.asarray(split) == SPLIT_HELDOUT
        held = np.zeros(len(passages), bool)
        for (p, *_), h in zip(rows, held_q, strict=True):
            held[p] |= h
    used = sorted({p for p, *_ in rows})
    tokenizer = train_tokenizer(
        [passages[p] for p in used if not held[p]] + [q for p, q, *_ in rows if not held[p]],
        extra_specials=(SEP,),
    )
    cls, sep = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
    encoded = dict(zip(used, tokenizer.encode_batch([passages[p] for p in used]), strict=True))
    questions = tokenizer.encode_batch([q for _, q, _, _ in rows])
    n = len(rows)
    ids = np.zeros((n, SEQ_LEN), np.int64)
    types = np.zeros((n, SEQ_LEN), np.int64)
    mask = np.zeros((n, SEQ_LEN), bool)
    offsets = np.full((n, SEQ_LEN, 2), -1, np.int64)
    start, end = np.zeros(n, np.int64), np.zeros(n, np.int64)
    contexts = []
    for i, ((p, _, answer, a0), q) in enumerate(zip(rows, questions, strict=True)):
        enc = encoded[p]
        tok_off = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        s_tok, e_tok = _token_span(passages[p], tok_off, answer, a0)
        lo = max(0, e_tok - CONTEXT_LEN + 1)
        hi = min(s_tok, max(0, len(tok_off) - CONTEXT_LEN))
        ws = int(np.random.default_rng([split_seed, i]).integers(lo, hi + 1))
        we = min(ws + CONTEXT_LEN, len(tok_off))
        c0, c1 = int(tok_off[ws, 0]), int(tok_off[we - 1, 1])
        contexts.append(passages[p][c0:c1])
        q_ids = q.ids[:QUESTION_LEN]
        seq = [cls, *q_ids, sep, *enc.ids[ws:we], sep]
        first = len(q_ids) + 2  # position of the window's first token
        ids[i, : len(seq)] = seq
        types[i, first : len(seq)] = 1
        mask[i, first : first + we - ws] = True
        offsets[i, first : first + we - ws] = tok_off[ws:we] - c0
        start[i], end[i] = first + s_tok - ws, first + e_tok - ws
    split = (np.where(held[[p for p, *_ in rows]], SPLIT_HELDOUT, SPLIT_TRAIN)
             if split is None else np.asarray(split, dtype=str))  # fmt: skip
    qs = [q for _, q, _, _ in rows]
    answers = [a for _, _, a, _ in rows]
    return QAData(
        name=name,
        input_ids=ids,
        token_types=types,
        context_mask=mask,
        start=start,
        end=end,
        split=split,
        questions=qs,
        answers=answers,
        contexts=contexts,
        offsets=offsets,
        passage=np.asarray([p for p, *_ in rows], np.int64),
        vocab_size=tokenizer.get_vocab_size(),
        texts=[display_text(q, a) for q, a in zip(qs, answers, strict=True)],
    )
