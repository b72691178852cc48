"""Upsampling and curriculum for the evaluated QA and seq2seq models.

The training samples are ranked by crafted scores in a run directory's
``scores.parquet``, read in each score's direction, through the path an evaluated text
model trains by (:func:`engine.distributed.text_tasks.train_text_model`); the samples
each step trains on are recorded from the task's batch function. ERM stays the plain
side-by-side loop, bit for bit.
"""

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import engine.training.qa as qa_training
import engine.training.seq2seq as s2s_training
from engine.data.qa import SPLIT_TRAIN
from engine.distributed.text_tasks import train_text_model
from engine.layout import SCORES_FILE
from engine.spec import SpecError, load_spec
from engine.spec.evaluate import MitigationOptions
from engine.tasks import get_task, load_data
from engine.tasks.base import RunContext
from engine.tasks.qa import QA_TRAINING
from engine.training.mitigation import Mitigation
from engine.training.qa import make_reader, span_loss, train_readers
from engine.training.side_by_side import Continuation

QA_SPEC = "tests/fixtures/tiny-qa.yaml"
S2S_SPEC = "tests/fixtures/tiny-seq2seq.yaml"
EPOCHS = 2  # the fixtures' epochs: the curriculum's ramp (half the epochs) ends at epoch 1


@pytest.fixture(scope="module")
def qa_data():
    return load_data(load_spec(QA_SPEC))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray task of one CPU; also keeps the runs comparable
    yield
    torch.set_num_threads(threads)


def _crafted_scores(run_dir, n: int) -> dict[str, np.ndarray]:
    """Distinct action (higher = harder) and AUM (lower = harder) values in scores.parquet."""
    rng = np.random.default_rng(3)
    scores = {"action": rng.permutation(n).astype(np.float64),
              "aum": rng.permutation(n).astype(np.float64)}  # fmt: skip
    pq.write_table(
        pa.table({"sample_id": np.arange(n, dtype=np.int64), **scores}), run_dir / SCORES_FILE
    )
    return scores


def _train_recorded(run_dir, mitigation: str, data, monkeypatch) -> tuple[list, list, list]:
    """Train the tiny QA spec's evaluated reader with ``mitigation`` as a run would.

    Returns:
        The sample indices of every training step per epoch, and after each epoch the
        scheduler's step count and the learning rate.
    """
    spec = load_spec(QA_SPEC, [f"evaluate.models[0].mitigation={mitigation}"])
    steps: list[np.ndarray] = []
    tensors = qa_training._tensors

    def record(d, idx, device):  # the training steps run with gradients, predictions without
        if torch.is_grad_enabled():
            steps.append(np.asarray(idx).copy())
        return tensors(d, idx, device)

    monkeypatch.setattr(qa_training, "_tensors", record)
    epochs: list[list[np.ndarray]] = []
    schedule: list[tuple[int, float]] = []

    def train(*args, continuation: Continuation, **kwargs):
        def checkpoint(epoch: int, state: dict) -> None:
            epochs.append(list(steps))
            steps.clear()
            schedule.append((state["schedulers"][0]["last_epoch"],
                             state["optimizers"][0]["param_groups"][0]["lr"]))  # fmt: skip
            continuation.on_checkpoint(epoch, state)

        return train_readers(*args, continuation=replace(continuation, on_checkpoint=checkpoint),
                             **kwargs)  # fmt: skip

    train_text_model(run_dir, spec, 0, data, replace(QA_TRAINING, train=train),
                     log=lambda line: None)  # fmt: skip
    return epochs, [b for (b, _) in schedule], [lr for (_, lr) in schedule]


@pytest.mark.parametrize(
    ("score", "easiest_first"),
    [("action", lambda v: np.argsort(v, kind="stable")),  # easiest = lowest action
     ("aum", lambda v: np.argsort(-v, kind="stable"))],  # easiest = highest AUM
    ids=["action", "aum"],
)  # fmt: skip
def test_a_curriculum_first_trains_on_the_easiest_by_the_score_direction(
    tmp_path, monkeypatch, qa_data, score, easiest_first
):
    scores = _crafted_scores(tmp_path, len(qa_data))
    train_idx = np.flatnonzero(qa_data.split == SPLIT_TRAIN)
    epochs, step_counts, lrs = _train_recorded(
        tmp_path, f"{{method: curriculum, score: {score}}}", qa_data, monkeypatch
    )
    assert len(epochs) == EPOCHS
    first = np.concatenate(epochs[0])
    keep = round(0.3 * len(train_idx))  # start_fraction's default
    easiest = train_idx[easiest_first(scores[score][train_idx])[:keep]]
    assert len(first) == keep and set(first.tolist()) == set(easiest.tolist())
    assert not np.array_equal(first, np.sort(first))  # shuffled, not in score order
    second = np.concatenate(epochs[1])  # the ramp is over: every training sample once
    assert sorted(second.tolist()) == train_idx.tolist()
    # the learning rate decays linearly to 0 over the steps actually taken
    assert step_counts == [len(epochs[0]), len(epochs[0]) + len(epochs[1])]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12) and lrs[0] > 0


def test_upsampling_repeats_the_hardest_by_action(tmp_path, monkeypatch, qa_data):
    scores = _crafted_scores(tmp_path, len(qa_data))
    train_idx = np.flatnonzero(qa_data.split == SPLIT_TRAIN)
    epochs, step_counts, lrs = _train_recorded(
        tmp_path, "{method: upsample, score: action, hard_fraction: 0.1, factor: 3}",
        qa_data, monkeypatch,
    )  # fmt: skip
    hardest_first = train_idx[np.argsort(-scores["action"][train_idx], kind="stable")]
    for batches in epochs:
        counts = np.bincount(np.concatenate(batches), minlength=len(qa_data))
        assert set(counts[train_idx].tolist()) == {1, 3} and counts.sum() > len(train_idx)
        tripled = int((counts == 3).sum())
        assert abs(tripled - 0.1 * len(train_idx)) <= 1
        assert set(np.flatnonzero(counts == 3).tolist()) == set(hardest_first[:tripled].tolist())
        assert counts[qa_data.split != SPLIT_TRAIN].sum() == 0  # never a held-out sample
    assert step_counts[-1] == sum(len(b) for b in epochs) and lrs[-1] == pytest.approx(0.0)


def _reader_setup(data):
    spec = load_spec(QA_SPEC)
    recipe = replace(spec.evaluate.models[0].recipe, epochs=EPOCHS)
    train_idx = np.flatnonzero(data.split == SPLIT_TRAIN)
    return recipe, train_idx


def _same_weights(a: list, b: list) -> None:
    for ma, mb in zip(a, b, strict=True):
        for x, y in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_erm_is_the_plain_side_by_side_loop_bit_for_bit(qa_data):
    recipe, train_idx = _reader_setup(qa_data)
    seeds = [5, 6]
    seq_len = qa_data.input_ids.shape[1]
    # The loop as it was before mitigations: a numpy permutation per model and epoch,
    # AdamW with a linear decay to 0 over epochs x ceil(N / batch) steps.
    models = [make_reader(recipe, qa_data.vocab_size, seq_len, s) for s in seeds]
    opts = [torch.optim.AdamW(m.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
            for m in models]  # fmt: skip
    total = recipe.epochs * -(-len(train_idx) // recipe.batch_size)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / total) for o in opts]
    gens = [np.random.default_rng([s, 1]) for s in seeds]
    start, end = torch.from_numpy(qa_data.start), torch.from_numpy(qa_data.end)
    for _ in range(recipe.epochs):
        for model, opt, sched, gen in zip(models, opts, scheds, gens, strict=True):
            model.train()
            order = gen.permutation(train_idx)
            for a in range(0, len(order), recipe.batch_size):
                idx = order[a : a + recipe.batch_size]
                s, e = model(torch.from_numpy(qa_data.input_ids[idx]),
                             torch.from_numpy(qa_data.token_types[idx]),
                             torch.from_numpy(qa_data.context_mask[idx]))  # fmt: skip
                loss = span_loss(s, e, start[idx], end[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    plain = train_readers(qa_data, recipe, seeds)
    _same_weights(models, plain)
    scores = np.random.default_rng(0).uniform(size=len(train_idx))
    erm = train_readers(qa_data, recipe, seeds, mitigation=Mitigation("erm", scores))
    _same_weights(models, erm)


def test_an_upsampled_reader_resumes_exactly_and_refuses_another_mitigation(tmp_path, qa_data):
    recipe, train_idx = _reader_setup(qa_data)
    hardness = np.random.default_rng(1).uniform(size=len(train_idx))
    options = MitigationOptions(hard_fraction=0.2, factor=2.5)  # a random number of copies
    whole = train_readers(
        qa_data, recipe, [5], mitigation=Mitigation("upsample", hardness, options)
    )
    path = tmp_path / "epoch0.pt"

    def save(epoch: int, state: dict) -> None:
        torch.save(state, path)

    train_readers(qa_data, recipe, [5], mitigation=Mitigation("upsample", hardness, options),
                  continuation=Continuation(on_checkpoint=save, until_epoch=0))  # fmt: skip
    state = torch.load(path, weights_only=True)  # as the run's checkpoints are read back
    assert state["mitigation"] == "upsample"
    resumed = train_readers(qa_data, recipe, [5],
                            mitigation=Mitigation("upsample", hardness, options),
                            continuation=Continuation(resume=state))  # fmt: skip
    _same_weights(whole, resumed)
    with pytest.raises(ValueError, match="written with mitigation upsample, not erm"):
        train_readers(qa_data, recipe, [5], continuation=Continuation(resume=state))
    with pytest.raises(ValueError, match="ranks 3 samples, but there are"):
        train_readers(qa_data, recipe, [5], mitigation=Mitigation("upsample", hardness[:3]))
    with pytest.raises(ValueError, match="GroupDRO reweights per-sample losses"):
        train_readers(qa_data, recipe, [5], mitigation=Mitigation("groupdro", hardness))


def test_a_seq2seq_curriculum_first_trains_on_the_lowest_action(monkeypatch):
    spec = load_spec(S2S_SPEC)
    data = load_data(spec)
    train_idx = np.flatnonzero(data.split == SPLIT_TRAIN)
    action = np.random.default_rng(4).permutation(len(train_idx)).astype(np.float64)
    steps: list[np.ndarray] = []
    batch_tokens = s2s_training._batch_tokens

    def record(d, idx, device):
        if torch.is_grad_enabled():
            steps.append(np.asarray(idx).copy())
        return batch_tokens(d, idx, device)

    monkeypatch.setattr(s2s_training, "_batch_tokens", record)
    epochs = []

    def checkpoint(epoch: int, state: dict) -> None:
        epochs.append(np.concatenate(steps))
        steps.clear()

    s2s_training.train_seq2seq(data, spec.evaluate.models[0].recipe, [5],
                               mitigation=Mitigation("curriculum", action),
                               continuation=Continuation(on_checkpoint=checkpoint))  # fmt: skip
    keep = round(0.3 * len(train_idx))
    assert sorted(epochs[0].tolist()) == sorted(train_idx[np.argsort(action)[:keep]].tolist())
    assert sorted(epochs[1].tolist()) == train_idx.tolist()


def test_the_spec_takes_upsample_and_curriculum_for_text_and_refuses_groupdro():
    for path in (QA_SPEC, S2S_SPEC):
        for method in ("upsample", "curriculum"):
            spec = load_spec(path, [f"evaluate.models[0].mitigation={{method: {method}, "
                                    "score: action}"])  # fmt: skip
            assert spec.evaluate.models[0].mitigation.method == method
        with pytest.raises(SpecError, match=r"evaluate.models\[0\].mitigation: reweights per-sample "
                           r"losses .* groupdro is refused, use method erm, upsample, curriculum"):  # fmt: skip
            load_spec(path, ["evaluate.models[0].mitigation={method: groupdro, score: action}"])
    with pytest.raises(SpecError, match=r"evaluate.models\[0\].mitigation.score: must be one of "
                       r"the computed scores"):  # fmt: skip
        load_spec(QA_SPEC, ["scores=[confusion, action]",
                            "evaluate.models[0].mitigation={method: curriculum, score: aum}"])  # fmt: skip


def test_text_models_wait_for_the_scores_only_with_a_mitigation(tmp_path, qa_data):
    task = get_task("qa").runtime()
    erm = load_spec(QA_SPEC)
    mitigated = load_spec(QA_SPEC, ["evaluate.models[0].mitigation={method: upsample, score: aum}"])
    assert not task.models_need_scores(erm) and task.models_need_scores(mitigated)
    ctx = RunContext(tmp_path, "r", mitigated, qa_data)
    with pytest.raises(ValueError, match="start the models after scoring"):
        task.start_models(ctx, None)
