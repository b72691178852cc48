"""Small recipes trained by the engine: seed replicas and the models evaluated on digits."""

from __future__ import annotations

import math

import torchvision
from torch import nn

from engine.models.registry import ModelConfig, register_model


def _flat_dim(input_shape: tuple[int, ...]) -> int:
    return math.prod(input_shape)


class MLP(nn.Module):
    """Flatten, then ``depth`` hidden ReLU layers of ``hidden`` units, then a linear head."""

    def __init__(self, in_features: int, num_classes: int, hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # noqa: D102
        return self.net(x)


class ConvNet(nn.Module):
    """Two conv blocks (conv-BN-ReLU x2, then 2x2 max-pool) and a linear head."""

    def __init__(self, in_chans: int, num_classes: int, width: int) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(in_chans, width), block(width, 2 * width))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes)
        )

    def forward(self, x):  # noqa: D102
        return self.head(self.features(x))


@register_model(ModelConfig("mlp", "mlp", "one-hidden-layer MLP; the default seed replica"))
def mlp(
    *, num_classes: int, input_shape: tuple[int, ...], hidden: int = 64, depth: int = 1
) -> nn.Module:
    """Small MLP replica."""
    return MLP(_flat_dim(input_shape), num_classes, hidden, depth)


@register_model(ModelConfig("small_cnn", "cnn", "2-block CNN, width 16", min_input_size=(4, 4)))
def small_cnn(*, num_classes: int, input_shape: tuple[int, ...], width: int = 16) -> nn.Module:
    """Small CNN replica."""
    return ConvNet(input_shape[0], num_classes, width)


class StridedNet(nn.Module):
    """Two stride-2 convolutions (5x5 then 3x3, BN-ReLU), then a linear head on the flat map.

    About 40x fewer FLOPs than :class:`ConvNet` at the same width on 28x28 inputs,
    which makes CNN seed replicas affordable on tens of thousands of images on CPUs.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        out_h, out_w = math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2)
        self.head = nn.Linear(2 * width * out_h * out_w, num_classes)

    def forward(self, x):  # noqa: D102
        return self.head(self.features(x))


@register_model(
    ModelConfig(
        "strided_cnn", "cnn", "2 stride-2 convs + linear head (~10k params at 28x28, width 8)",
        min_input_size=(4, 4),
    )
)  # fmt: skip
def strided_cnn(*, num_classes: int, input_shape: tuple[int, ...], width: int = 8) -> nn.Module:
    """Cheap CNN seed replica for 28x28-class images (Fashion-MNIST)."""
    return StridedNet(tuple(input_shape), num_classes, width)


class BatchNormCNN(nn.Module):
    """Three 3x3 conv-BN-ReLU layers (the last two stride 2), global average pool, linear head.

    The paper's replicas are BatchNorm CNNs; this one is small enough to train many
    seeds on CPUs (about 6k parameters and 0.3M multiply-adds per 28x28 image at
    width 8) and takes any input from 8x8 up (the pool makes the head size-free).
    It packs (:mod:`engine.training.packed`): each replica keeps its own BatchNorm
    statistics.
    """

    def __init__(self, in_chans: int, num_classes: int, width: int) -> None:
        super().__init__()

        def layer(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU()]  # fmt: skip

        self.features = nn.Sequential(
            *layer(in_chans, width, 2), *layer(width, 2 * width, 2), *layer(2 * width, 4 * width, 1)
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes)
        )

    def forward(self, x):  # noqa: D102
        return self.head(self.features(x))


@register_model(
    ModelConfig(
        "cnn_bn", "cnn", "3 conv-BN-ReLU layers + pool, width 8 (~6k params); packs",
        min_input_size=(8, 8),
    )
)  # fmt: skip
def cnn_bn(*, num_classes: int, input_shape: tuple[int, ...], width: int = 8) -> nn.Module:
    """Small BatchNorm CNN seed replica that trains packed (per-replica BatchNorm)."""
    return BatchNormCNN(input_shape[0], num_classes, width)


class _BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a skip (a 1x1 conv-BN where the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        )
        self.act = nn.ReLU()

    def forward(self, x):
        """Residual sum, then ReLU."""
        return self.act(self.body(x) + self.skip(x))


class TinyResNet(nn.Module):
    """A 3x3 conv-BN stem, one basic block per stage (widths w, 2w, 4w; strides 1, 2, 2), pool, head."""

    def __init__(self, in_chans: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.stages = nn.Sequential(
            _BasicBlock(width, width, 1), _BasicBlock(width, 2 * width, 2),
            _BasicBlock(2 * width, 4 * width, 2),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes)
        )

    def forward(self, x):  # noqa: D102
        return self.head(self.stages(self.stem(x)))


@register_model(
    ModelConfig(
        "resnet_tiny", "resnet", "3-stage ResNet with BatchNorm, one basic block each, width 8 "
        "(~20k params); packs", min_input_size=(8, 8),
    )
)  # fmt: skip
def resnet_tiny(*, num_classes: int, input_shape: tuple[int, ...], width: int = 8) -> nn.Module:
    """Tiny BatchNorm ResNet seed replica that trains packed (per-replica BatchNorm)."""
    return TinyResNet(input_shape[0], num_classes, width)


@register_model(
    ModelConfig("wide_cnn", "cnn", "2-block CNN, width 128 (~0.9M params)", min_input_size=(4, 4))
)
def wide_cnn(*, num_classes: int, input_shape: tuple[int, ...], width: int = 128) -> nn.Module:
    """Wide CNN evaluated against the replicas."""
    return ConvNet(input_shape[0], num_classes, width)


@register_model(
    ModelConfig(
        "resnet18_small",
        "resnet",
        "torchvision ResNet-18, 3x3 stride-1 stem and no max-pool for tiny (8x8..32x32) inputs",
        min_input_size=(8, 8),
    )
)
def resnet18_small(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Torchvision ResNet-18 (11M params) with a stem adapted to small inputs."""
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_model(ModelConfig("test_tiny", "mlp", "8-unit MLP for fast tests"))
def test_tiny(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Tiny MLP used by the test suite."""
    return MLP(_flat_dim(input_shape), num_classes, hidden=8, depth=1)
