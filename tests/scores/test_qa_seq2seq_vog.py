"""VoG for extractive QA and seq2seq (issue 28): gradients of the gold span's and of the
reference's log-likelihood w.r.t. the embedded input tokens, padding never counted."""

import numpy as np
import pytest
import torch

from engine.data.qa import QAData
from engine.data.seq2seq import Seq2SeqData
from engine.models import create_model
from engine.models.text import token_embedding
from engine.scores.vog import VoGAccumulator, vog
from engine.spec import load_spec
from engine.spec.common import SpecError
from engine.training.qa import span_input_gradients
from engine.training.seq2seq import source_input_gradients

VOCAB = 30
DIM = 4  # embedding width of the tiny models
MAX_LEN = 16  # positions of the models (the longest padding tested)
FD_STEP = 1e-5  # step of the fourth-order central difference on one embedded element
START, END = 1, 2  # the seq2seq decoder's start and end ids


def _model(name: str, seed: int, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, input_shape=(MAX_LEN,), dim=DIM, layers=1, heads=2, **kwargs)
    return model.double().eval()


def _reader(seed: int) -> torch.nn.Module:
    return _model("span_reader", seed, num_classes=2, vocab=VOCAB)


def _generator(seed: int) -> torch.nn.Module:
    return _model("seq2seq_transformer", seed, num_classes=VOCAB, start_id=START, end_id=END)


def _qa(width: int) -> QAData:
    """Three questions over passage windows, right-padded with 0 to ``width`` tokens."""
    lengths, question = (7, 8, 10), 2  # real tokens; [CLS] and 2 question tokens, then [SEP]
    rng = np.random.default_rng(0)
    ids = np.zeros((3, width), np.int64)
    types = np.zeros((3, width), np.int64)
    window = np.zeros((3, width), bool)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(3, VOCAB, n)
        types[i, question + 2 : n] = 1
        window[i, question + 2 : n - 1] = True  # the passage, before the last [SEP]
    n = len(lengths)
    return QAData(
        name="tiny", input_ids=ids, token_types=types, context_mask=window,
        start=np.array([4, 5, 4]), end=np.array([4, 6, 7]), split=np.array(["train"] * n),
        questions=[""] * n, answers=[""] * n, contexts=[""] * n,
        offsets=np.full((n, width, 2), -1), passage=np.arange(n), vocab_size=VOCAB,
    )  # fmt: skip


def _pairs(width: int) -> Seq2SeqData:
    """Three source/target pairs; the sources right-padded with 0 to ``width`` tokens."""
    rng = np.random.default_rng(1)
    src = np.zeros((3, width), np.int64)
    for i, n in enumerate((2, 4, 6)):
        src[i, :n] = rng.integers(3, VOCAB, n)
    target = np.array([[7, END, 0, 0], [8, 9, END, 0], [10, 11, 12, END]])
    decoder = np.concatenate([np.full((3, 1), START), target[:, :-1]], axis=1)
    return Seq2SeqData(
        name="tiny", source_ids=src, target_ids=target, decoder_ids=decoder,
        target_mask=target != 0, split=np.array(["train"] * 3), sources=[""] * 3,
        references=[[""]] * 3, group=np.arange(3), vocab=[str(i) for i in range(VOCAB)],
        start_id=START, end_id=END,
    )  # fmt: skip


def _span_log_likelihood(model, data: QAData) -> np.ndarray:
    s, e = model(*(torch.as_tensor(a) for a in (data.input_ids, data.token_types,
                                                  data.context_mask)))  # fmt: skip
    rows = np.arange(len(data))
    return (
        torch.log_softmax(s, 1)[rows, data.start] + torch.log_softmax(e, 1)[rows, data.end]
    ).numpy()


def _reference_log_likelihood(model, data: Seq2SeqData) -> np.ndarray:
    """log p(reference | source): the sum of the target tokens' log-probabilities."""
    logits = model(torch.as_tensor(data.source_ids), torch.as_tensor(data.decoder_ids))
    logp = torch.log_softmax(logits, -1).gather(-1, torch.as_tensor(data.target_ids)[..., None])
    return (logp[..., 0] * torch.as_tensor(data.target_mask)).sum(1).numpy()


def _finite_differences(model, ids: np.ndarray, log_likelihood) -> np.ndarray:
    """(N, L, D) central differences of each sample's log-likelihood per embedded element."""
    out = np.zeros((*ids.shape, DIM))
    for p in range(ids.shape[1]):
        for d in range(DIM):
            delta = torch.zeros(*ids.shape, DIM, dtype=torch.float64)
            delta[:, p, d] = FD_STEP  # one element of every sample: they are independent
            values = []
            for step in (2, 1, -1, -2):
                hook = token_embedding(model).register_forward_hook(
                    lambda m, a, o, k=step, x=delta: o + k * x
                )
                try:
                    with torch.no_grad():
                        values.append(log_likelihood())
                finally:
                    hook.remove()
            # fourth order: the embeddings start at std 0.02 (BERT, BART init), so the
            # LayerNorm after them curves on that scale and a plain central difference
            # errs by 1e-6 (step 1e-5) or by rounding (step 1e-7)
            up2, up1, down1, down2 = values
            out[:, p, d] = (-up2 + 8 * up1 - 8 * down1 + down2) / (12 * FD_STEP)
    return out


CASES = {  # task -> (model maker, data maker, its input ids, gradients, log-likelihood)
    "qa": (_reader, _qa, lambda d: d.input_ids, span_input_gradients, _span_log_likelihood),
    "seq2seq": (_generator, _pairs, lambda d: d.source_ids, source_input_gradients,
                _reference_log_likelihood),
}  # fmt: skip


@pytest.mark.parametrize("task", sorted(CASES))
def test_gradients_equal_finite_differences_of_the_answer_log_likelihood(task):
    make, data_of, ids_of, gradients, log_likelihood = CASES[task]
    data = data_of(10)
    real = ids_of(data) != 0
    checkpoints = [[make(seed=10 * r + t) for t in range(2)] for r in range(2)]
    got = np.stack([[gradients(m, data) for m in row] for row in checkpoints])
    assert got.dtype == np.float64 and got.shape == (2, 2, *real.shape, DIM)
    fd = np.stack([[_finite_differences(m, ids_of(data), lambda m=m: log_likelihood(m, data))
                    for m in row] for row in checkpoints])  # fmt: skip
    # real tokens: the gradient of the answer's log-likelihood; padding: NaN
    np.testing.assert_allclose(got[:, :, real], fd[:, :, real], rtol=1e-6, atol=1e-9)
    assert np.isnan(got[:, :, ~real]).all() and np.abs(got[:, :, real]).max() > 1e-4
    std = fd.std(axis=1)  # VoG by hand: std over checkpoints, mean over real elements, replicas
    want = (std * real[None, ..., None]).sum(axis=(2, 3)) / (real.sum(1) * DIM)
    flat = got.reshape(2, 2, len(real), -1)
    np.testing.assert_allclose(vog(flat), want.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("task", sorted(CASES))
def test_padding_never_changes_the_vog_of_a_sample(task):
    make, data_of, _, gradients, _ = CASES[task]
    checkpoints = [make(seed=s) for s in (1, 2, 3)]
    values = []
    for width in (10, MAX_LEN):  # the same samples, more padding
        data = data_of(width)
        grads = np.stack([gradients(m, data) for m in checkpoints])[None]
        acc = VoGAccumulator()
        acc.update(grads.reshape(1, 3, len(data), -1))
        values.append(acc.result())
    np.testing.assert_allclose(values[0], values[1], rtol=1e-9, atol=0)
    assert np.all(values[0] > 0)


def test_gradients_leave_the_model_in_its_mode():
    model = _reader(seed=0).train()
    span_input_gradients(model, _qa(10))
    assert model.training and all(p.grad is None for p in model.parameters())


VOG = ["scores=[confusion,action,vog]", "shards.grad_epochs=[0,1]"]  # --set overrides
SPECS = {"qa": "tests/fixtures/tiny-qa.yaml", "seq2seq": "tests/fixtures/tiny-seq2seq.yaml"}


@pytest.mark.parametrize("task", sorted(SPECS))
def test_vog_validates_for_qa_and_seq2seq_with_two_gradient_epochs(task):
    spec = load_spec(SPECS[task], VOG)
    assert "vog" in spec.scores and spec.shards.grad_epochs == [0, 1]


@pytest.mark.parametrize("task", sorted(SPECS))
@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["scores=[confusion,action,vog]"], r"shards\.grad_epochs: the vog score needs input "),
        ([*VOG[:1], "shards.grad_epochs=[1]"], r"shards\.grad_epochs: the vog score needs input"),
        ([*VOG[:1], "shards.grad_epochs=[0,2]"], r"shards\.grad_epochs: must be epoch indices "
         "below replicas.epochs=2"),
        (VOG[1:], r"shards\.grad_epochs: \w+ replicas record input gradients for vog only"),
    ],
)  # fmt: skip
def test_vog_for_text_tasks_refuses_what_it_cannot_compute(task, sets, message):
    with pytest.raises(SpecError, match=message):
        load_spec(SPECS[task], sets)
