"""The fine-tune loop in one process: sharding, schedule, linear probe, spec validation."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models import get_model_config
from engine.spec import SpecError, load_spec, parse_spec
from engine.spec.finetune import FinetuneOptions
from engine.training.finetune import (
    build_model,
    epoch_shard,
    finetune_preprocess,
    freeze_backbone,
    lr_factor,
    make_loop,
    run_epochs,
)


@pytest.mark.parametrize(("n", "batch"), [(100, 20), (103, 20), (64, 64), (10, 4)])
def test_worker_shards_together_are_the_single_worker_batches(n, batch):
    one = epoch_shard(n, 3, 7, 0, 1, batch)
    assert len(one) == (n // batch) * batch
    shards = [epoch_shard(n, 3, 7, r, 2, batch) for r in range(2)]
    half = batch // 2
    for step in range(len(one) // batch):
        joined = np.concatenate([s[step * half : (step + 1) * half] for s in shards])
        assert sorted(joined) == sorted(one[step * batch : (step + 1) * batch])
    assert not np.array_equal(one, epoch_shard(n, 4, 7, 0, 1, batch))  # a new order per epoch


def test_schedule_warms_up_then_anneals_to_zero():
    f = [lr_factor(s, 100, 10, "cosine") for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:])) and f[-1] < 0.01
    assert lr_factor(50, 100, 0, "constant") == 1.0


def test_linear_probe_leaves_the_backbone_bit_identical():
    rng = np.random.default_rng(0)
    inputs = rng.random((48, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 3, 48)
    opts = FinetuneOptions(mode="linear_probe", epochs=2, batch_size=16, lr=0.01, image_size=32)
    model = build_model(
        "efficientnet_lite0",
        num_classes=3,
        input_shape=(1, 28, 28),
        weights="pretrained",
        model_kwargs={},
        seed=0,
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = freeze_backbone(model, "efficientnet_lite0")
    loop = make_loop(model, trainable, opts, 3, torch.device("cpu"), 0, 0)
    rows = []
    run_epochs(
        model,
        model,
        "efficientnet_lite0",
        inputs,
        labels,
        opts,
        loop,
        seed=0,
        rank=0,
        world=1,
        device=torch.device("cpu"),
        on_epoch=lambda e, m, s: rows.append(m),
    )
    after = model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["_fc.bias", "_fc.weight"]  # batch-norm statistics included: untouched
    assert len(rows) == 2 and loop.epoch == 2


def test_the_transform_follows_the_model_and_image_size():
    p = finetune_preprocess("efficientnet_lite0", 64)
    base = get_model_config("efficientnet_lite0").preprocess
    assert (p.resize_size, p.crop_size, p.mean, p.std) == (64, 64, base.mean, base.std)
    assert finetune_preprocess("efficientnet_lite0", None) == base


TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny.yaml"


def _spec(entry: dict) -> object:
    data = load_spec(TINY).to_dict()
    data["evaluate"]["models"] = [{"name": "m", **entry}]
    return parse_spec(data)


def test_spec_takes_a_finetune_entry_and_refuses_clashes():
    spec = _spec(
        {
            "model": "efficientnet_lite0",
            "weights": "pretrained",
            "finetune": {"mode": "linear_probe", "epochs": 2, "image_size": 32},
        }
    )
    m = spec.evaluate.models[0]
    assert m.finetune.mode == "linear_probe" and m.recipe.epochs == 2
    assert parse_spec(spec.to_dict()).evaluate.models[0].finetune == m.finetune
    bad = [
        (
            {"model": "efficientnet_lite0", "weights": "pretrained", "lr": 0.1, "finetune": {}},
            "finetune.lr",
        ),
        ({"model": "efficientnet_lite0", "weights": "pretrained", "epochs": 1}, "add a finetune"),
        ({"model": "efficientnet_lite0", "finetune": {"mode": "linear_probe"}}, "needs weights"),
        ({"model": "efficientnet_lite0", "weights": "/no/such.pt", "finetune": {}}, "not a file"),
        ({"model": "mlp", "weights": "pretrained", "finetune": {}}, "no classifier head"),
        (
            {
                "model": "efficientnet_lite0",
                "weights": "pretrained",
                "finetune": {"batch_size": 9, "workers": 2},
            },
            "split evenly",
        ),
        (
            {"model": "efficientnet_lite0", "weights": "pretrained", "finetune": {"mode": "probe"}},
            "linear_probe, full",
        ),
    ]
    for entry, message in bad:
        with pytest.raises(SpecError, match=message):
            _spec(entry)
