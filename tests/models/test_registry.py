import pytest
import torch

from engine.models import check_model_kwargs, create_model, get_model_config, list_models


def test_list_models_with_pattern():
    assert {"mlp", "small_cnn", "wide_cnn", "resnet18_small", "test_tiny"} <= set(list_models())
    assert list_models("*cnn") == ["small_cnn", "wide_cnn"]


def test_unknown_model_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'wide_cn'. Did you mean 'wide_cnn'"):
        create_model("wide_cn", num_classes=10, input_shape=(1, 8, 8))


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "wide_cnn", "resnet18_small", "test_tiny"])
def test_every_model_maps_digits_to_logits(name):
    model = create_model(name, num_classes=10, input_shape=(1, 8, 8)).eval()
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_resnet18_small_is_torchvision_resnet18_with_small_stem():
    model = create_model("resnet18_small", num_classes=10, input_shape=(1, 8, 8))
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    assert sum(p.numel() for p in model.parameters()) > 11_000_000


def test_bad_options_and_too_small_inputs():
    with pytest.raises(ValueError, match="takes no option 'width'"):
        check_model_kwargs("mlp", {"width": 3})
    with pytest.raises(ValueError, match="at least 8x8"):
        create_model("resnet18_small", num_classes=10, input_shape=(1, 4, 4))
    assert get_model_config("wide_cnn").family == "cnn"
