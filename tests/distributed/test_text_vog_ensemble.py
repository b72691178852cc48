"""Text VoG through the side-by-side ensembles (QA, seq2seq): the gradient epochs' reduced
shards, an interrupted ensemble resumed equal to an uninterrupted one, the scoring path
(blocks, then the within-split normalisation), and one QA run end to end on Ray."""

from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from engine.distributed.scoring import score_block
from engine.distributed.text_tasks import ENSEMBLE_OWNER, train_text_ensemble
from engine.scores import finalize_scores
from engine.scores.vog import vog
from engine.spec import load_spec
from engine.tasks import get_task, load_data
from engine.training.checkpoints import load_checkpoint
from engine.training.qa import make_reader, span_input_gradients
from engine.training.seq2seq import make_model, source_input_gradients

VOG = ["scores=[confusion,action,vog]", "shards.grad_epochs=[0,1]"]  # --set overrides
SPECS = {"qa": "tests/fixtures/tiny-qa.yaml", "seq2seq": "tests/fixtures/tiny-seq2seq.yaml"}
SCORES = ["confusion", "action", "vog"]


def _final_models(run_dir, spec, data, task: str) -> list[torch.nn.Module]:
    """The replicas after the last epoch, from the ensemble's checkpoint."""
    state = load_checkpoint(run_dir, ENSEMBLE_OWNER, at_most=spec.replicas.recipe.epochs - 1)
    recipe, models = spec.replicas.recipe, []
    for seed, weights in zip(spec.replicas.seeds(), state["models"], strict=True):
        if task == "qa":
            model = make_reader(recipe, data.vocab_size, data.input_ids.shape[1], seed)
        else:
            model = make_model(recipe, data, seed)
        model.load_state_dict(weights)
        models.append(model)
    return models


def _fail_on_second_epoch(reduce_epoch):
    """``reduce_epoch`` that raises on its second call: the run stops after epoch 1's checkpoint."""
    calls = []

    def reduce(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return reduce_epoch(*args)

    return reduce


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("task", sorted(SPECS))
def test_vog_ensemble_resumes_exactly_and_scores_from_its_shards(tmp_path, task, restore_threads):
    spec = load_spec(SPECS[task], VOG)
    data = load_data(spec)
    training = get_task(task).runtime().training()
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train_text_ensemble(whole, spec, data, training, log=lambda line: None)
    broken = replace(training, reduce_epoch=_fail_on_second_epoch(training.reduce_epoch))
    with pytest.raises(RuntimeError, match="interrupted"):
        train_text_ensemble(resumed, spec, data, broken, log=lambda line: None)
    out = train_text_ensemble(resumed, spec, data, training, attempt=2, log=lambda line: None)
    assert out["resumed_from"] == 1 and out["written"] == 1 and out["skipped"] == 1
    shards = sorted((whole / "preds" / "packed").glob("epoch=*/block=*.parquet"))
    assert len(shards) == 2 * 3  # 2 epochs x 240 samples in blocks of 100
    for path in shards:  # the resumed run wrote the same bytes, gradients included
        assert (resumed / path.relative_to(whole)).read_bytes() == path.read_bytes()

    # the last epoch's stored gradients are the final replicas' (replica-major per sample)
    stored = np.concatenate([
        pq.read_table(p).column("input_grad").combine_chunks().flatten().to_numpy()
        for p in shards if "epoch=1" in str(p)
    ]).reshape(len(data), spec.replicas.count, -1)  # fmt: skip
    gradients = span_input_gradients if task == "qa" else source_input_gradients
    final = [
        gradients(m, data).reshape(len(data), -1) for m in _final_models(whole, spec, data, task)
    ]
    np.testing.assert_allclose(stored, np.stack(final, axis=1), rtol=1e-4, atol=1e-7)
    assert np.isnan(stored).any() and not np.isinf(stored).any()  # padding: NaN

    blocks = [score_block(whole, b, replicas=[0, 1], epochs=[0, 1], scores=SCORES)
              for b in range(3)]  # fmt: skip
    raw = np.concatenate([b.column("vog").to_numpy() for b in blocks])
    grads = np.stack([  # (R, T, N, L*D) read back as the scorer reads them
        np.concatenate([pq.read_table(p).column("input_grad").combine_chunks().flatten()
                        .to_numpy() for p in shards if f"epoch={e}" in str(p)])
        .reshape(len(data), spec.replicas.count, -1).transpose(1, 0, 2) for e in (0, 1)
    ], axis=1)  # fmt: skip
    np.testing.assert_allclose(raw, vog(grads), rtol=1e-12)
    assert np.all(np.isfinite(raw)) and np.all(raw > 0)
    labels = np.concatenate([b.column("label").to_numpy() for b in blocks])
    final_vog = finalize_scores({"vog": raw}, {}, labels, data.split, has_classes=False)["vog"]
    for split in np.unique(data.split):  # z-scored within each data split (no classes)
        part = final_vog[data.split == split]
        np.testing.assert_allclose([part.mean(), part.std()], [0.0, 1.0], atol=1e-9)


@pytest.mark.ray
@pytest.mark.slow
def test_a_qa_run_with_vog_writes_a_finite_vog_column(ray_local, tmp_path, no_tracking_env):
    from engine.lifecycle import run_benchmark

    spec = load_spec(SPECS["qa"], [*VOG, "evaluate.models=[]"])
    run = run_benchmark(spec, runs_dir=tmp_path, run_id="qa-vog", log=lambda line: None)
    table = pq.read_table(run.run_dir / "scores.parquet")
    values, split = table.column("vog").to_numpy(), table.column("split").to_numpy()
    assert table.num_rows == 240 and np.all(np.isfinite(values))
    for name in np.unique(split):  # QA has no classes: z-scored within each data split
        np.testing.assert_allclose(values[split == name].mean(), 0.0, atol=1e-9)
        np.testing.assert_allclose(values[split == name].std(), 1.0, atol=1e-9)
