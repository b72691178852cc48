"""Pretrained weights meet a benchmark: head reset per family, the real EfficientNet-Lite0
weights, and the bad inputs (another architecture's weights, a head of the wrong size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.models import (
    WeightsError,
    check_weights_file,
    classifier_of,
    create_model,
    get_model_config,
    weights_file,
)
from engine.training.inputs import prepare_inputs

MILITARY_UNIFORM = 652  # ImageNet-1k class of matplotlib's photo of Grace Hopper in uniform
FAMILIES = ["resnet18", "regnet_y_400mf", "vit_b_16", "efficientnet_lite0"]


@pytest.mark.parametrize("name", FAMILIES)
def test_head_reset_keeps_the_backbone_and_gives_k_outputs(name, tmp_path):
    torch.manual_seed(0)
    source = create_model(name, num_classes=1000)  # a stand-in for the ImageNet weights
    path = tmp_path / f"{name}.pt"
    torch.save(source.state_dict(), path)
    model = create_model(name, num_classes=7, weights_file=path, reset_head=True)
    head = classifier_of(model, name)
    assert head.out_features == 7
    prefix = get_model_config(name).classifier + "."
    own = model.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith(prefix):
            assert torch.equal(own[key], value), key
    size = get_model_config(name).preprocess.crop_size
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, size, size)).shape == (2, 7)


def test_k_mismatch_without_head_reset_is_refused(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(create_model("resnet18", num_classes=1000).state_dict(), path)
    with pytest.raises(WeightsError, match=r"1000-class head \(fc\), the model 7 classes"):
        create_model("resnet18", num_classes=7, weights_file=path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(create_model("resnet18", num_classes=1000).state_dict(), path)
    with pytest.raises(WeightsError, match="another architecture"):
        create_model("efficientnet_lite0", num_classes=10, weights_file=path, reset_head=True)
    with pytest.raises(WeightsError, match="missing keys"):
        check_weights_file(path, "efficientnet_lite0", num_classes=1000, input_shape=None)


def test_real_efficientnet_lite0_weights_name_the_photo():
    import matplotlib.cbook

    path = weights_file("efficientnet_lite0")
    assert path.name == "efficientnet-lite0-57934424.pth" and path.is_file()
    model = create_model("efficientnet_lite0", pretrained=True).eval()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as img:
        pixels = np.asarray(img.convert("RGB"), np.float32).transpose(2, 0, 1)[None] / 255
    x = prepare_inputs(pixels, get_model_config("efficientnet_lite0").preprocess)
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM
    assert float(probs[MILITARY_UNIFORM]) > 0.3


def test_efficientnet_lite0_runs_at_small_sizes():
    model = create_model("efficientnet_lite0", num_classes=10).eval()
    with torch.no_grad():
        for side in (32, 45, 64):
            assert model(torch.zeros(1, 3, side, side)).shape == (1, 10)
