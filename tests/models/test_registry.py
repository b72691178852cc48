import pytest
import torch

from engine.models import check_model_kwargs, create_model, get_model_config, list_models


def test_list_models_with_pattern():
    assert {"mlp", "small_cnn", "wide_cnn", "resnet18_small", "test_tiny"} <= set(list_models())
    assert list_models("*cnn") == ["small_cnn", "strided_cnn", "wide_cnn"]


def test_unknown_model_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'wide_cn'. Did you mean 'wide_cnn'"):
        create_model("wide_cn", num_classes=10, input_shape=(1, 8, 8))


@pytest.mark.parametrize(
    "name", ["mlp", "small_cnn", "strided_cnn", "wide_cnn", "resnet18_small", "test_tiny"]
)
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


def test_large_models_are_registered_with_weights_and_preprocessing():
    names = set(list_models(pretrained=True))
    expected = (
        {f"resnet{d}" for d in (18, 34, 50, 101, 152)}
        | {
            f"regnet_y_{s}"
            for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")
        }
        | {"vit_b_16", "vit_l_16", "vit_h_14"}
    )
    assert expected <= names
    vit_h = get_model_config("vit_h_14")
    assert vit_h.weights == "ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1"
    assert vit_h.preprocess.crop_size == 518 and vit_h.preprocess.interpolation == "bicubic"
    assert get_model_config("resnet152").preprocess.mean == (0.485, 0.456, 0.406)
    assert list_models("regnet*")[:2] == ["regnet_y_128gf", "regnet_y_16gf"]


def test_offline_weights_from_a_temporary_torch_home(tmp_path, monkeypatch):
    import torchvision

    from engine.models import weights_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = weights_file("test_resnet")
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(
        FileNotFoundError, match=r"resnet18-f37072fd.pth \(looked in .*hub/checkpoints"
    ):
        create_model("test_resnet", pretrained=True)
    reference = torchvision.models.resnet18(weights=None)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = create_model("test_resnet", pretrained=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_explicit_weights_file_and_mismatch(tmp_path):
    src = create_model("mlp", num_classes=10, input_shape=(1, 8, 8))
    torch.save(src.state_dict(), tmp_path / "mlp.pt")
    loaded = create_model(
        "mlp", num_classes=10, input_shape=(1, 8, 8), weights_file=tmp_path / "mlp.pt"
    )
    assert torch.equal(loaded.net[1].weight, src.net[1].weight)
    with pytest.raises(ValueError, match="do not fit model 'mlp'"):
        create_model("mlp", num_classes=3, input_shape=(1, 8, 8), weights_file=tmp_path / "mlp.pt")
    with pytest.raises(FileNotFoundError, match=r"nope.pt"):
        create_model(
            "mlp", num_classes=10, input_shape=(1, 8, 8), weights_file=tmp_path / "nope.pt"
        )


def test_pickled_checkpoints_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"net.1.weight": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match=r"Weights only load failed|weights_only"):
        create_model(
            "mlp", num_classes=10, input_shape=(1, 8, 8), weights_file=tmp_path / "evil.pt"
        )


def test_hf_sequence_classifier_from_a_local_directory(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    model = create_model(
        "hf_sequence_classifier", num_classes=3, path=str(tmp_path / "bert")
    ).eval()
    with torch.no_grad():
        logits = model(torch.randint(0, 50, (2, 7)), torch.ones(2, 7, dtype=torch.long))
    assert logits.shape == (2, 3)
    with pytest.raises(ValueError, match="has 3 labels, expected num_classes=2"):
        create_model("hf_sequence_classifier", num_classes=2, path=str(tmp_path / "bert"))
    with pytest.raises(FileNotFoundError, match=r"config.json not found"):
        create_model("hf_sequence_classifier", num_classes=3, path=str(tmp_path / "missing"))
