"""VoG for text (issue 28): gradients of log p(label) w.r.t. the embedded tokens, no padding."""

import numpy as np
import pytest
import torch

from engine.models import create_model
from engine.models.text import embeds_tokens, token_embedding
from engine.scores.vog import VoGAccumulator, vog
from engine.spec import load_spec
from engine.spec.common import SpecError
from engine.training.classification import input_gradients

VOCAB = 30
MODELS = {  # tiny float64 text classifiers, both with a token-embedding layer (padding id 0)
    "text_mlp": {"vocab": VOCAB, "dim": 4, "hidden": 5},
    "text_transformer": {"vocab": VOCAB, "dim": 4, "layers": 1, "heads": 2},
}
MAX_LEN = 12  # positions of the models (the longest padding tested)
FD_STEP = 1e-5  # central-difference step on one embedded-token element
LENGTHS = (1, 3, 6)  # real tokens of the test sentences ([CLS] included)
LABELS = np.array([0, 1, 1])


def _sentences(width: int) -> np.ndarray:
    """The same three sentences right-padded with 0 to ``width`` tokens."""
    rng = np.random.default_rng(0)
    ids = np.zeros((len(LENGTHS), width), dtype=np.int64)
    for i, n in enumerate(LENGTHS):
        ids[i, 0] = 2  # [CLS]
        ids[i, 1:n] = rng.integers(3, VOCAB, n - 1)
    return ids


def _model(name: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=2, input_shape=(MAX_LEN,), **MODELS[name])
    return model.double().eval()


def _log_likelihoods(model: torch.nn.Module, ids: np.ndarray, delta: torch.Tensor) -> np.ndarray:
    """log p(label) of each sentence with ``delta`` added to its embedded tokens."""
    handle = token_embedding(model).register_forward_hook(lambda m, a, out: out + delta)
    try:
        with torch.no_grad():
            logits = model(torch.as_tensor(ids))
    finally:
        handle.remove()
    return torch.log_softmax(logits, 1)[np.arange(len(ids)), LABELS].numpy()


def _finite_differences(model: torch.nn.Module, ids: np.ndarray) -> np.ndarray:
    """(N, L, D) central differences of each sentence's log p(label) per embedded element."""
    dim = token_embedding(model).embedding_dim
    out = np.zeros((*ids.shape, dim))
    for p in range(ids.shape[1]):
        for d in range(dim):
            delta = torch.zeros(*ids.shape, dim, dtype=torch.float64)
            delta[:, p, d] = FD_STEP  # one element of every sentence: they are independent
            up = _log_likelihoods(model, ids, delta)
            down = _log_likelihoods(model, ids, -delta)
            out[:, p, d] = (up - down) / (2 * FD_STEP)
    return out


def _text_vog(grads: np.ndarray, real: np.ndarray) -> np.ndarray:
    """VoG by hand: (R, T, N, L, D) -> std over T, mean over real tokens and D, mean over R."""
    std = grads.std(axis=1)  # (R, N, L, D)
    per_sample = (std * real[None, :, :, None]).sum(axis=(2, 3)) / (
        real.sum(axis=1) * grads.shape[-1]
    )
    return per_sample.mean(axis=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_text_vog_equals_finite_differences_of_the_log_likelihood(name):
    ids = _sentences(8)
    real = ids != 0
    checkpoints = [[_model(name, seed=10 * r + t) for t in range(2)] for r in range(2)]
    got = np.stack([[input_gradients(m, ids, LABELS) for m in row] for row in checkpoints])
    assert got.dtype == np.float64 and got.shape == (2, 2, *ids.shape, 4)
    fd = np.stack([[_finite_differences(m, ids) for m in row] for row in checkpoints])
    # real tokens: the gradient of log p(label); padding: NaN, whatever the model gives there
    np.testing.assert_allclose(got[:, :, real], fd[:, :, real], rtol=1e-6, atol=1e-9)
    assert np.isnan(got[:, :, ~real]).all()
    want = _text_vog(fd, real)
    flat = got.reshape(2, 2, len(ids), -1)
    np.testing.assert_allclose(vog(flat), want, rtol=1e-6)
    acc = VoGAccumulator()
    for t in range(2):  # the scoring pool feeds one checkpoint at a time
        acc.update(flat[:, t : t + 1])
    np.testing.assert_allclose(acc.result(), want, rtol=1e-6)
    assert np.all(acc.result() > 0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_padding_never_changes_text_vog(name):
    checkpoints = [_model(name, seed=s) for s in (1, 2, 3)]
    values = []
    for width in (6, MAX_LEN):  # the same sentences, twice as much padding
        ids = _sentences(width)
        grads = np.stack([input_gradients(m, ids, LABELS) for m in checkpoints])[None]
        acc = VoGAccumulator()
        acc.update(grads.reshape(1, 3, len(ids), -1))
        values.append(acc.result())
    np.testing.assert_allclose(values[0], values[1], rtol=0, atol=1e-12)
    assert np.all(values[0] > 0)


def test_nan_that_is_not_padding_is_refused():
    grads = np.ones((1, 2, 2, 3))
    grads[0, 0, 1, 2] = np.nan  # NaN at one checkpoint only: not padding
    with pytest.raises(ValueError, match="replica 0, sample row 1, element 2 is NaN at some"):
        vog(grads)
    acc = VoGAccumulator()
    acc.update(grads[:, :1])
    acc.update(grads[:, 1:])
    with pytest.raises(ValueError, match="NaN at some checkpoints and not at others"):
        acc.result()
    grads = np.ones((1, 2, 2, 3))
    grads[0, :, 0] = np.nan  # a sample with no element left
    with pytest.raises(ValueError, match="sample row 0 is NaN at every element"):
        vog(grads)


def test_real_valued_vog_is_the_plain_mean_bit_for_bit():
    grads = np.random.default_rng(1).normal(size=(2, 3, 5, 7))
    np.testing.assert_array_equal(vog(grads), grads.std(axis=1).mean(axis=-1).mean(axis=0))


def test_token_ids_need_a_token_embedding_layer():
    class NoEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Embedding(VOCAB, 4)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.table(ids).mean(1)[:, :2]

    with pytest.raises(ValueError, match="NoEmbedding exposes no token_embedding"):
        input_gradients(NoEmbedding(), _sentences(8), LABELS)
    assert embeds_tokens("text_mlp") and embeds_tokens("text_transformer", {"dim": 8})
    assert not embeds_tokens("hf_sequence_classifier") and not embeds_tokens("mlp")


TINY_TEXT = "tests/fixtures/tiny-text.yaml"
VOG = ["scores=[confusion,action,vog]", "shards.grad_epochs=[0,1]"]  # --set overrides


def test_vog_on_text_classification_validates():
    spec = load_spec(TINY_TEXT, VOG)
    assert "vog" in spec.scores and spec.shards.grad_epochs == [0, 1]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["replicas.model=hf_sequence_classifier", "replicas.model_kwargs={path: /nowhere}"],
            r"replicas\.model: vog on token ids differentiates the embedded tokens, and "
            "'hf_sequence_classifier' exposes no token_embedding",
        ),
        (
            ["replicas.pack_size=2"],
            r"shards\.grad_epochs: input gradients are recorded by unpacked",
        ),
    ],
)
def test_vog_on_text_refuses_what_it_cannot_compute(sets, message):
    with pytest.raises(SpecError, match=message):
        load_spec(TINY_TEXT, [*VOG, *sets])
