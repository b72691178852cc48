"""The token cache: a text dataset cache's token ids, memory-mappable blocks beside its texts.

A text source's cache holds the raw texts (``samples.parquet``); the models read token
ids. The vocabulary is learned from the training split's texts only, so the ids
depend on the split, which the spec (``heldout_fraction``, ``split_seed``) can change
without changing the source. The ids are therefore cached in a folder of their own
inside the dataset cache, keyed by the cache's fingerprint, the training mask and the
tokenizer's options::

    <cache>/tokens/<key>/
        meta.json          written last: kind "tokens", shape [L], dtype, block size, key
        tokenizer.json     the learned tokenizer (``tokenizers.Tokenizer.from_file``)
        blocks/block=00000.npy   uint16 (rows, L) ids (int32 past 65,536 words), 0 = [PAD]

Blocks are aligned with the dataset cache's (and the shards') blocks, and
:class:`engine.data.cache.CachedInputs` reads them as it reads pixels: every stage
gathers int64 ids per batch from the memory maps; no worker tokenizes or holds a copy.

Building it is two passes over chunks of one block each, run by the ingest's chunk
map (the Ray Data pool on a driver, in process elsewhere): word counts of each chunk's
training texts (summed on the driver into the vocabulary), then each chunk's ids.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.cache import BLOCKS_DIR, META_FILE, CachedInputs, DatasetCache, block_file
from engine.data.ingest import (
    CHUNK_FN,
    PROGRESS_EVERY_S,
    ChunkMap,
    local_map,
    progress_line,
    publish_folder,
    save_npy,
)
from engine.data.sources import SPLIT_TRAIN
from engine.data.text import MAX_LEN, VOCAB_SIZE, count_words, encode, tokenizer_from_counts
from engine.data.tmpdirs import make_tmp_folder, remove_stale_tmp

TOKENS_DIR = "tokens"  # inside the dataset cache
TOKENS_VERSION = 1  # bumped when the ids or the layout change; part of every key
TOKENIZER_FILE = "tokenizer.json"
KEY_CHARS = 24  # hex characters of the key in the folder name
UINT16_WORDS = 2**16  # a vocabulary up to this size is stored as uint16


def token_key(fingerprint: str, train: np.ndarray, *, max_len: int, vocab_size: int) -> str:
    """The token cache's key: the dataset cache, which samples train the vocabulary, the options.

    Args:
        fingerprint: The dataset cache's fingerprint.
        train: Bool (N,): the samples whose texts the vocabulary is learned from.
        max_len: Tokens per sample.
        vocab_size: Vocabulary size, special tokens included.
    """
    h = hashlib.sha256()
    h.update(json.dumps([TOKENS_VERSION, fingerprint, max_len, vocab_size, len(train)]).encode())
    h.update(np.packbits(np.asarray(train, bool)).tobytes())
    return h.hexdigest()


def count_chunk(*, chunk: int, items: list[str]) -> dict:
    """Word counts of one chunk's training texts (a chunk task; Ray runs it).

    Returns:
        ``{"chunk", "counts": {word: n}, "error": ""}``.
    """
    return {"chunk": chunk, "counts": dict(count_words(items)), "error": ""}


def encode_chunk(
    *, chunk: int, items: list[str], tokenizer: str, max_len: int, dtype: str, out_dir: str
) -> dict:
    """Encode one chunk's texts and write its block (a chunk task; Ray runs it).

    Args:
        chunk: The block index (the chunk holds sample ids [chunk*B, (chunk+1)*B)).
        items: The chunk's texts, in sample-id order.
        tokenizer: The tokenizer as JSON (``Tokenizer.to_str()``).
        max_len: Tokens per sample.
        dtype: The stored dtype (``uint16`` or ``int32``).
        out_dir: The token cache folder being written.

    Returns:
        ``{"chunk", "rows", "error": ""}``.
    """
    from tokenizers import Tokenizer

    ids = encode(Tokenizer.from_str(tokenizer), items, max_len).astype(dtype)
    save_npy(block_file(out_dir, chunk), ids)
    return {"chunk": chunk, "rows": len(ids), "error": ""}


def token_inputs(
    cache: DatasetCache,
    split: np.ndarray,
    *,
    max_len: int = MAX_LEN,
    vocab_size: int = VOCAB_SIZE,
    map_chunks: ChunkMap | None = None,
    log: Callable[[str], None] = print,
) -> CachedInputs:
    """The token ids (N, ``max_len``) of a text cache, read from its token cache (built if missing).

    Args:
        cache: A text dataset cache.
        split: (N,) ``train``/``heldout``: the vocabulary is learned from ``train`` texts.
        max_len: Tokens per sample: ``[CLS]`` first, truncated, right-padded with 0.
        vocab_size: Vocabulary size, special tokens included.
        map_chunks: Runs the chunk tasks (default in process; the Ray Data pool is
            :func:`engine.distributed.ingest.ray_map_chunks`).
        log: Where progress lines go.

    Returns:
        Int64 ids gathered per batch from the memory-mapped blocks (``dtype`` int64).

    Raises:
        ValueError: When the cache holds no texts or ``split`` has another length.
    """
    if cache.kind != "text":
        raise ValueError(f"{cache.path} is an {cache.kind} cache: it has no texts to tokenize")
    if len(split) != cache.num_samples:
        raise ValueError(f"split has {len(split)} rows, the cache {cache.num_samples}")
    train = np.asarray(split) == SPLIT_TRAIN
    key = token_key(cache.fingerprint, train, max_len=max_len, vocab_size=vocab_size)
    root = cache.path / TOKENS_DIR
    final = root / key[:KEY_CHARS]
    if (final / META_FILE).is_file():
        return CachedInputs(final)
    remove_stale_tmp(root, final.name, log, stage="tokens")  # a killed build's partial folder
    tmp = make_tmp_folder(root, final.name)
    try:
        _build(cache, train, key, tmp, final, max_len=max_len, vocab_size=vocab_size,
               map_chunks=map_chunks or local_map, log=log)  # fmt: skip
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return CachedInputs(final)


def _build(cache: DatasetCache, train: np.ndarray, key: str, tmp: Path, final: Path, *,
           max_len: int, vocab_size: int, map_chunks: ChunkMap, log: Callable) -> None:  # fmt: skip
    start = time.perf_counter()
    texts = cache.texts()
    n, bs = len(texts), int(cache.meta["block_size"])
    spans = [(b, b * bs, min((b + 1) * bs, n)) for b in range(-(-n // bs))]
    log(f"[tokens] {n:,} texts in {len(spans)} blocks, vocabulary from {int(train.sum()):,} "
        f"training texts -> {final}")  # fmt: skip
    counts: Counter[str] = Counter()
    tasks = [{"chunk": b, "items": [texts[i] for i in range(lo, hi) if train[i]]}
             for b, lo, hi in spans]  # fmt: skip
    for res in map_chunks(tasks, {CHUNK_FN: f"{__name__}:count_chunk"}):
        counts.update(res["counts"])
    tokenizer = tokenizer_from_counts(counts, vocab_size)
    dtype = "uint16" if tokenizer.get_vocab_size() <= UINT16_WORDS else "int32"
    shared = {CHUNK_FN: f"{__name__}:encode_chunk", "tokenizer": tokenizer.to_str(),
              "max_len": max_len, "dtype": dtype, "out_dir": str(tmp)}  # fmt: skip
    tasks = [{"chunk": b, "items": texts[lo:hi]} for b, lo, hi in spans]
    done, shown = 0, time.perf_counter()
    for res in map_chunks(tasks, shared):
        done += int(res["rows"])
        now = time.perf_counter()
        if done == n or now - shown >= PROGRESS_EVERY_S:
            shown = now
            log(progress_line(done, n, now - start, stage="tokens", unit="texts"))
    missing = [b for b, _, _ in spans if not block_file(tmp, b).is_file()]
    if missing:
        raise RuntimeError(f"token blocks {missing[:5]} were not written to {tmp / BLOCKS_DIR}")
    tokenizer.save(str(tmp / TOKENIZER_FILE))
    meta = {
        "version": TOKENS_VERSION,
        "kind": "tokens",
        "key": key,
        "fingerprint": key,  # what a split file's reference checks
        "dataset_fingerprint": cache.fingerprint,
        "num_samples": n,
        "shape": [max_len],
        "dtype": dtype,
        "scale": None,
        "block_size": bs,
        "num_blocks": len(spans),
        "vocab_size": tokenizer.get_vocab_size(),
        "max_len": max_len,
        "train_samples": int(train.sum()),
        "tokenize_seconds": round(time.perf_counter() - start, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    publish_folder(tmp, final, meta)
    log(f"[tokens] {n:,} texts tokenized in {meta['tokenize_seconds']:.1f} s "
        f"({meta['vocab_size']:,} words, {dtype})")  # fmt: skip


def describe_tokens(inputs: CachedInputs) -> dict:
    """What ``dataset.json`` and the card record of a token cache: folder, key, vocabulary."""
    meta = inputs.meta
    return {"cache": str(inputs.cache_dir.resolve()), "fingerprint": meta["key"],
            "vocab_size": meta["vocab_size"], "max_len": meta["max_len"], "dtype": meta["dtype"]}  # fmt: skip
