"""Large pretrained image models from torchvision, registered by name with their weights enum."""

from __future__ import annotations

import torchvision.models as tvm
from torch import nn

from engine.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelConfig,
    Preprocess,
    register_model,
)

# name -> (weights enum member, resize, crop, interpolation): the preprocessing each
# torchvision weights enum documents (weights.transforms()).
_TORCHVISION = {
    "resnet18": ("ResNet18_Weights.IMAGENET1K_V1", 256, 224, "bilinear"),
    "resnet34": ("ResNet34_Weights.IMAGENET1K_V1", 256, 224, "bilinear"),
    "resnet50": ("ResNet50_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "resnet101": ("ResNet101_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "resnet152": ("ResNet152_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "regnet_y_400mf": ("RegNet_Y_400MF_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "regnet_y_800mf": ("RegNet_Y_800MF_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "regnet_y_1_6gf": ("RegNet_Y_1_6GF_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "regnet_y_3_2gf": ("RegNet_Y_3_2GF_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "regnet_y_8gf": ("RegNet_Y_8GF_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "regnet_y_16gf": ("RegNet_Y_16GF_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "regnet_y_32gf": ("RegNet_Y_32GF_Weights.IMAGENET1K_V2", 232, 224, "bilinear"),
    "regnet_y_128gf": ("RegNet_Y_128GF_Weights.IMAGENET1K_SWAG_E2E_V1", 384, 384, "bicubic"),
    "vit_b_16": ("ViT_B_16_Weights.IMAGENET1K_V1", 256, 224, "bilinear"),
    "vit_l_16": ("ViT_L_16_Weights.IMAGENET1K_V1", 242, 224, "bilinear"),
    # ViT-H/14 has only SWAG weights; this is the end-to-end fine-tuned one (518 px).
    "vit_h_14": ("ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1", 518, 518, "bicubic"),
}


def _family(name: str) -> str:
    return name.split("_")[0].rstrip("0123456789")


def _make_entry(name: str, weights: str, resize: int, crop: int, interp: str) -> None:
    builder = getattr(tvm, name)
    extra = {"image_size": crop} if name.startswith("vit") else {}

    def entry(*, num_classes: int = 1000) -> nn.Module:
        return builder(weights=None, num_classes=num_classes, **extra)

    entry.__doc__ = f"torchvision {name} ({weights})."
    register_model(
        ModelConfig(
            name=name,
            family=_family(name),
            description=f"torchvision {name}, pretrained {weights}",
            weights=weights,
            min_input_size=(32, 32),
            num_classes=1000,
            preprocess=Preprocess(resize, crop, IMAGENET_MEAN, IMAGENET_STD, interp),
            classifier="heads.head" if name.startswith("vit") else "fc",
        )
    )(entry)


for _name, (_w, _resize, _crop, _interp) in _TORCHVISION.items():
    _make_entry(_name, _w, _resize, _crop, _interp)


@register_model(
    ModelConfig(
        "test_resnet",
        "resnet",
        "torchvision ResNet-18 with ResNet18_Weights for offline-weights tests",
        weights="ResNet18_Weights.IMAGENET1K_V1",
        min_input_size=(8, 8),
        num_classes=1000,
        preprocess=Preprocess(36, 32, IMAGENET_MEAN, IMAGENET_STD, "bilinear"),
        classifier="fc",
    )
)
def test_resnet(*, num_classes: int = 1000) -> nn.Module:
    """ResNet-18 that evaluates 32x32 crops: the smallest real pretrained model for CI."""
    return tvm.resnet18(weights=None, num_classes=num_classes)
