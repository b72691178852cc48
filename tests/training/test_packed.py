"""Packed seed ensembles (torch.func): the same math as separate runs, and the shard modes."""

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.spec.model_recipes import TrainRecipe
from engine.training import train
from engine.training.packed import PackedModelError, train_packed


@pytest.fixture(scope="module")
def digits():
    return load_dataset("sklearn_digits", heldout_fraction=0.4, split_seed=0)


def _ce(logits, labels):
    t = torch.as_tensor(logits, dtype=torch.float64)
    return torch.nn.functional.cross_entropy(t, torch.as_tensor(labels), reduction="none").numpy()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_packed_replicas_match_separate_runs(digits, optimizer):
    torch.set_num_threads(1)
    tr = digits.indices("train")
    recipe = TrainRecipe(
        model="mlp", epochs=3, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 3e-3
    )
    seeds = [4, 9, 13]
    separate = {}
    for s in seeds:
        separate[s] = []
        train(recipe.with_seed(s), digits.inputs[tr], digits.labels[tr], num_classes=10,
              x_score=digits.inputs, on_epoch=lambda e, lg, g, s=s: separate[s].append(lg))  # fmt: skip
    packed = []
    train_packed(recipe, seeds, digits.inputs[tr], digits.labels[tr], num_classes=10,
                 x_score=digits.inputs, on_epoch=lambda e, lg: packed.append(lg))  # fmt: skip
    assert [lg.shape for lg in packed] == [(3, 1797, 10)] * 3
    for e in range(3):
        for r, s in enumerate(seeds):
            # Tolerance: float32 reassociation inside the batched kernels (measured <= 4e-7).
            np.testing.assert_allclose(packed[e][r], separate[s][e], rtol=0, atol=1e-5)
            np.testing.assert_allclose(
                _ce(packed[e][r], digits.labels), _ce(separate[s][e], digits.labels), atol=1e-5
            )
    assert not np.allclose(packed[-1][0], packed[-1][1])  # replicas differ by seed


def test_packed_resume_equals_uninterrupted(digits, tmp_path):
    from engine.training.checkpoints import load_checkpoint, save_checkpoint

    tr = digits.indices("train")
    recipe = TrainRecipe(model="mlp", epochs=4)
    args = (recipe, [0, 1], digits.inputs[tr], digits.labels[tr])
    full, resumed = {}, {}
    train_packed(*args, num_classes=10, x_score=digits.inputs,
                 on_epoch=lambda e, lg: full.__setitem__(e, lg),
                 on_checkpoint=lambda e, s: save_checkpoint(tmp_path, "pack=0", e, s, keep="all"))  # fmt: skip
    state = load_checkpoint(tmp_path, "pack=0", at_most=1)
    train_packed(*args, num_classes=10, x_score=digits.inputs, resume=state,
                 on_epoch=lambda e, lg: resumed.__setitem__(e, lg), report_epochs={2, 3})  # fmt: skip
    assert sorted(resumed) == [2, 3]
    for e in (2, 3):
        np.testing.assert_array_equal(resumed[e], full[e])
    with pytest.raises(ValueError, match="another packed recipe or seeds"):
        train_packed(
            recipe, [0, 2], digits.inputs[tr], digits.labels[tr], num_classes=10, resume=state
        )


@pytest.mark.parametrize(("model", "engine"), [("cnn_bn", "vmap"), ("strided_cnn", "vmap"),
                                               ("cnn_bn", "loop"), ("resnet_tiny", "loop")])  # fmt: skip
def test_packed_batchnorm_replicas_match_separate_runs(digits, model, engine):
    """Per-replica BatchNorm: train-mode records and eval-mode logits equal separate runs.

    (``small_cnn`` packs the same way but is not compared here: at lr 0.05 on 8x8
    digits its training amplifies float32 rounding, so two separate runs of it with 1
    and 2 torch threads already differ by 0.02 in the first epoch's logits.)
    """
    torch.set_num_threads(1)
    tr = digits.indices("train")
    # batch 97 leaves a last batch of one (1078 = 11 * 97 + 1): skipped by both paths
    recipe = TrainRecipe(model=model, epochs=3, lr=0.05, batch_size=97)
    seeds = [4, 9, 13]
    separate = {s: [] for s in seeds}
    records = {s: [] for s in seeds}
    for s in seeds:
        train(recipe.with_seed(s), digits.inputs[tr], digits.labels[tr], num_classes=10,
              x_score=digits.inputs, on_epoch=lambda e, lg, g, s=s: separate[s].append(lg),
              on_presentations=lambda e, rec, s=s: records[s].append(rec))  # fmt: skip
    packed, packed_records = [], []
    train_packed(recipe, seeds, digits.inputs[tr], digits.labels[tr], num_classes=10,
                 x_score=digits.inputs, on_epoch=lambda e, lg: packed.append(lg),
                 on_presentations=lambda e, rec: packed_records.append(rec), engine=engine)  # fmt: skip
    assert [lg.shape for lg in packed] == [(3, 1797, 10)] * 3
    for e in range(3):
        for r, s in enumerate(seeds):
            if engine == "loop":  # the same kernels in the same order: bit for bit
                np.testing.assert_array_equal(packed[e][r], separate[s][e])
                np.testing.assert_array_equal(packed_records[e][r], records[s][e])
                continue
            # Tolerance: float32 reassociation in the batched convolutions and BatchNorm
            # (measured below 2e-5 after 3 epochs); eval mode reads the running statistics.
            np.testing.assert_allclose(packed[e][r], separate[s][e], rtol=0, atol=1e-4)
            # train mode: which presented samples each replica got right (batch statistics);
            # a near-tie argmax may flip under reassociation (measured: 1 of 1078)
            assert np.mean(packed_records[e][r] != records[s][e]) <= 0.005
    assert not np.allclose(packed[-1][0], packed[-1][1])  # replicas differ by seed


@pytest.mark.parametrize("engine", ["vmap", "loop"])
def test_packed_batchnorm_resume_equals_uninterrupted(digits, tmp_path, engine):
    from engine.training.checkpoints import load_checkpoint, save_checkpoint

    tr = digits.indices("train")
    recipe = TrainRecipe(model="cnn_bn", epochs=3, batch_size=128)
    args = (recipe, [0, 1], digits.inputs[tr], digits.labels[tr])
    full, resumed = {}, {}
    train_packed(*args, num_classes=10, x_score=digits.inputs, engine=engine,
                 on_epoch=lambda e, lg: full.__setitem__(e, lg),
                 on_checkpoint=lambda e, s: save_checkpoint(tmp_path, "pack=0", e, s, keep="all"))  # fmt: skip
    state = load_checkpoint(tmp_path, "pack=0", at_most=0)
    assert any("running_mean" in k for k in state["buffers"])  # the statistics are saved
    train_packed(*args, num_classes=10, x_score=digits.inputs, resume=state, engine=engine,
                 on_epoch=lambda e, lg: resumed.__setitem__(e, lg), report_epochs={1, 2})  # fmt: skip
    for e in (1, 2):
        np.testing.assert_array_equal(resumed[e], full[e])
    other = {"vmap": "loop", "loop": "vmap"}[engine]
    with pytest.raises(ValueError, match=f"written by the {engine} pack engine, not {other}"):
        train_packed(*args, num_classes=10, resume=state, engine=other)


def test_auto_pack_engine_loops_convolutions_on_cpu():
    import engine.training.packed as packed_module
    from engine.models import create_model

    def pick(name: str, device: str) -> str:
        model = create_model(name, num_classes=10, input_shape=(1, 8, 8))
        return packed_module.resolve_pack_engine("auto", model, device)

    assert pick("cnn_bn", "cpu") == "loop" and pick("mlp", "cpu") == "vmap"
    assert pick("cnn_bn", "cuda") == "vmap"
    with pytest.raises(ValueError, match="pack engine must be one of auto, vmap, loop"):
        packed_module.resolve_pack_engine("grouped", create_model("mlp", num_classes=2,
                                                                  input_shape=(4,)), "cpu")  # fmt: skip


def test_models_with_dropout_are_not_packed(digits, monkeypatch):
    import engine.training.packed as packed_module

    def with_dropout(name, **kwargs):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.1),
                                   torch.nn.Linear(64, kwargs["num_classes"]))  # fmt: skip

    assert packed_module.unpackable_reason(with_dropout("x", num_classes=3), "x") is not None
    assert packed_module.unpackable_reason(torch.nn.Dropout(0.0), "x") is None  # p=0 draws none
    monkeypatch.setattr(packed_module, "create_model", with_dropout)
    tr = digits.indices("train")
    with pytest.raises(PackedModelError, match=r"uses dropout.*replicas\.pack_size: 1"):
        train_packed(TrainRecipe(model="mlp", epochs=1), [0, 1], digits.inputs[tr],
                     digits.labels[tr], num_classes=10)  # fmt: skip


REDUCIBLE = ["confusion", "action", "aum", "forgetting", "confidence", "variability", "correctness",
             "self_confidence"]  # fmt: skip


def _pack_run(tmp_path, mode, fmt="parquet"):
    import json

    from engine.distributed.replicas import train_pack, train_replica
    from engine.distributed.scoring import score_block
    from engine.shards import consolidate_manifest, num_blocks
    from engine.spec import load_spec

    overrides = ["replicas.count=3", "replicas.epochs=3", "shards.grad_epochs=[]",
                 f"scores=[{','.join(REDUCIBLE)}]", "shards.block_size=700"]  # fmt: skip
    if mode != "unpacked":
        overrides += ["replicas.pack_size=all", f"shards.mode={mode}"]
    spec = load_spec("tests/fixtures/tiny.yaml", [*overrides, f"shards.format={fmt}"])
    run_dir = tmp_path / f"{mode}-{fmt}"
    torch.set_num_threads(1)
    if mode == "unpacked":
        for r in range(3):
            train_replica(run_dir, spec, r, log=lambda line: None)
    else:
        out = train_pack(run_dir, spec, 0, log=lambda line: None)
        assert out == {"pack": 0, "replicas": [0, 1, 2], "written": 3, "resumed_from": None,
                       "skipped": 0}  # fmt: skip
    blocks = num_blocks(1797, 700)
    manifest = consolidate_manifest(run_dir, replicas=3, epochs=3, blocks=blocks)
    assert json.loads((run_dir / "preds" / "_manifest.json").read_text()) == manifest
    parts = [
        score_block(run_dir, b, replicas=[0, 1, 2], epochs=[0, 1, 2], scores=REDUCIBLE)
        for b in range(blocks)
    ]
    table = {
        k: np.concatenate([p.column(k).to_numpy() for p in parts]) for k in parts[0].column_names
    }
    shards = list(run_dir.glob("preds/**/block=*"))
    assert {p.suffix for p in shards} == {f".{fmt}"}
    return table, sum(p.stat().st_size for p in shards)


def test_shard_modes_give_the_same_scores_and_reduced_is_smallest(tmp_path):
    ref, full_bytes = _pack_run(tmp_path, "unpacked")  # float16 probabilities per replica
    for mode in ("full", "mean", "reduced"):
        got, nbytes = _pack_run(tmp_path, mode)
        np.testing.assert_array_equal(got["sample_id"], ref["sample_id"])
        # float16 storage of probabilities / losses bounds the differences.
        for name in REDUCIBLE:
            np.testing.assert_allclose(
                got[name], ref[name], atol=5e-3, rtol=2e-3, err_msg=f"{mode} {name}"
            )
        assert (got["ensemble_pred"] == ref["ensemble_pred"]).mean() > 0.995
        if mode == "reduced":
            assert nbytes < full_bytes / 2, (nbytes, full_bytes)
        if mode != "full":  # Arrow IPC files hold the same values: the same scores exactly
            arrow, _ = _pack_run(tmp_path, mode, "arrow")
            for name, values in got.items():
                np.testing.assert_array_equal(arrow[name], values, err_msg=f"{mode} arrow {name}")


def test_reduced_mode_refuses_scores_it_cannot_compute():
    from engine.spec import SpecError, load_spec

    with pytest.raises(SpecError, match=r"el2n, normalized_margin need K-sized probabilities"):
        load_spec("tests/fixtures/tiny.yaml", ["replicas.pack_size=all", "shards.mode=reduced",
                                               "shards.grad_epochs=[]",
                                               "scores=[confusion,el2n,normalized_margin]"])  # fmt: skip
    # self_confidence needs only p(label), which reduced shards keep as the loss
    load_spec("tests/fixtures/tiny.yaml", ["replicas.pack_size=all", "shards.mode=reduced",
                                           "shards.grad_epochs=[]",
                                           "scores=[confusion,self_confidence]"])  # fmt: skip
    with pytest.raises(SpecError, match=r"needs replicas\.pack_size: all"):
        load_spec("tests/fixtures/tiny.yaml", ["shards.mode=mean", "shards.grad_epochs=[]"])
    with pytest.raises(SpecError, match="input gradients are recorded by unpacked replicas"):
        load_spec("tests/fixtures/tiny.yaml", ["replicas.pack_size=2"])


@pytest.mark.ray
@pytest.mark.slow
def test_packs_run_as_ray_tasks_and_resume(ray_local, tmp_path):
    import json

    from engine.distributed.replicas import train_replicas
    from engine.shards import read_manifest
    from engine.spec import load_spec

    spec = load_spec("tests/fixtures/tiny.yaml", ["replicas.count=3", "replicas.pack_size=2",
                                                  "shards.grad_epochs=[]", "replicas.cpus_per_worker=1",
                                                  f"scores=[{','.join(REDUCIBLE)}]"])  # fmt: skip
    assert spec.replicas.packs() == [[0, 1], [2]]
    lines = []
    out = train_replicas(tmp_path, spec, log=lines.append)
    assert out["workers"] == 2 and any(
        "as 2 packed ensemble(s) of up to 2 replicas, one Ray task each" in x for x in lines
    )
    rows = read_manifest(tmp_path)
    assert sorted(rows) == [(r, e) for r in range(3) for e in range(3)]
    assert {rows[(r, 0)]["pack"] for r in range(3)} == {0, 1}
    # Drop the last epoch of pack 0's replicas: a rerun trains only that.
    for r in (0, 1):
        path = tmp_path / "preds" / f"replica={r}" / "_manifest.json"
        data = json.loads(path.read_text())
        path.write_text(json.dumps({"rows": [x for x in data["rows"] if x["epoch"] != 2]}))
    lines.clear()
    train_replicas(tmp_path, spec, attempt=2, log=lines.append)
    rows = read_manifest(tmp_path)
    assert len(rows) == 9 and {rows[(r, 2)]["attempt"] for r in (0, 1)} == {2}
    assert rows[(2, 2)]["attempt"] == 1 and rows[(0, 1)]["attempt"] == 1


def test_validation_refuses_an_unpackable_replica_naming_pack_size():
    """The issue's command: BatchNorm CNNs now pack (valid); a model with dropout is refused."""
    from engine.spec import SpecError, load_spec

    packed = ["replicas.pack_size=all", "replicas.model_kwargs={}", "shards.grad_epochs=[]",
              "evaluate.models=[]", "scores=[confusion, action]"]  # fmt: skip
    for model in ("small_cnn", "cnn_bn"):
        assert load_spec("tests/fixtures/tiny.yaml", [f"replicas.model={model}", *packed])
    with pytest.raises(SpecError, match=r"replicas\.pack_size: model 'efficientnet_lite0' uses "
                       r"dropout \(Dropout, p=0\.2\)"):  # fmt: skip
        load_spec("tests/fixtures/tiny.yaml", ["replicas.model=efficientnet_lite0", *packed])
    # unpacked, the same model is fine
    load_spec("tests/fixtures/tiny.yaml", ["replicas.model=efficientnet_lite0",
                                           "replicas.model_kwargs={}", "evaluate.models=[]"])  # fmt: skip
    with pytest.raises(SpecError, match=r"replicas\.pack_size: model 'efficientnet_lite0'"):
        load_spec("tests/fixtures/tiny.yaml", ["replicas.model=efficientnet_lite0",
                                               "replicas.pack_size=2", *packed[1:]])  # fmt: skip


def test_packed_autocast_bfloat16_runs_and_stays_close(digits):
    """The GPU benchmark's mixed precision, checked on the CPU's bfloat16 autocast."""
    torch.set_num_threads(1)
    tr = digits.indices("train")
    recipe = TrainRecipe(model="cnn_bn", epochs=1, batch_size=128)
    out = {}
    for dtype in (None, torch.bfloat16):
        train_packed(recipe, [0, 1], digits.inputs[tr], digits.labels[tr], num_classes=10,
                     x_score=digits.inputs, engine="vmap", autocast=dtype,
                     on_epoch=lambda e, lg, dtype=dtype: out.__setitem__(dtype, lg))  # fmt: skip
    assert out[torch.bfloat16].dtype == np.float32  # logits come back in float32
    assert not np.array_equal(out[torch.bfloat16], out[None])  # bfloat16 did run
    agree = (out[torch.bfloat16].argmax(-1) == out[None].argmax(-1)).mean()
    assert agree > 0.9, agree
    with pytest.raises(ValueError, match="autocast applies to the vmap pack engine"):
        train_packed(recipe, [0, 1], digits.inputs[tr], digits.labels[tr], num_classes=10,
                     engine="loop", autocast=torch.bfloat16)  # fmt: skip


def test_packed_tiny_resnet_step_equals_separate_models():
    """resnet_tiny (BatchNorm, residual adds, 1x1 skips) packs the same way: one train step.

    Compared one step at a time: over epochs its training amplifies float32 rounding
    (two separate runs with 1 and 2 torch threads differ by 0.02 after 3 epochs at lr
    0.005), so step equality is what packing can promise.
    """
    import copy

    from engine.models import create_model
    from engine.training.packed import PackedEnsemble

    torch.set_num_threads(1)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(create_model("resnet_tiny", num_classes=10, input_shape=(1, 8, 8)))
    separate = [copy.deepcopy(m) for m in models]
    pack = PackedEnsemble(models)
    x = torch.randn(3, 32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    packed_logits = pack.logits(x)  # train mode: per-replica batch statistics
    ref = torch.stack([m(x[r]) for r, m in enumerate(separate)])
    torch.testing.assert_close(packed_logits, ref, rtol=0, atol=1e-5)
    for name, stacked in pack.buffers.items():  # running statistics updated per replica
        for r, m in enumerate(separate):
            torch.testing.assert_close(stacked[r], dict(m.named_buffers())[name], rtol=0, atol=1e-6)
    packed_logits.square().sum().backward()
    ref.square().sum().backward()
    for name, p in pack.params.items():
        for r, m in enumerate(separate):
            torch.testing.assert_close(p.grad[r], dict(m.named_parameters())[name].grad,
                                       rtol=1e-4, atol=1e-4)  # fmt: skip
    pack.base.eval()
    for m in separate:
        m.eval()
    torch.testing.assert_close(pack.logits(x), torch.stack([m(x[r]) for r, m in enumerate(separate)]),
                               rtol=0, atol=1e-5)  # fmt: skip
