"""timm-style model registry: ``@register_model`` entrypoints, ``create_model``, ``list_models``."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from engine._util import unknown_name_error


@dataclass(frozen=True)
class ModelConfig:
    """How a registered model is built and fed.

    Attributes:
        name: Registry name.
        family: Short family tag (``"mlp"``, ``"cnn"``, ``"resnet"``).
        description: One line for ``list_models`` users.
        weights: Weights source; ``None`` means randomly initialised (trained by the engine).
        min_input_size: Smallest (H, W) the architecture accepts.
    """

    name: str
    family: str
    description: str
    weights: str | None = None
    min_input_size: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., nn.Module]
    config: ModelConfig


_REGISTRY: dict[str, _Entry] = {}


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


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_model_config(name: str) -> ModelConfig:
    """Return the config of model ``name``.

    Raises:
        ValueError: For an unknown name; the message lists close matches.
    """
    _ensure_builtin_models()
    if name not in _REGISTRY:
        raise unknown_name_error("model", name, _REGISTRY)
    return _REGISTRY[name].config


def create_model(
    name: str, *, num_classes: int, input_shape: tuple[int, ...], **kwargs: object
) -> nn.Module:
    """Build registered model ``name``.

    Args:
        name: Registry name (see ``list_models()``).
        num_classes: K, the size of the output layer.
        input_shape: Shape of one input, e.g. (1, 8, 8).
        **kwargs: Model-specific options (widths, depth), passed to the entrypoint.

    Returns:
        The model, mapping (B, *input_shape) inputs to (B, K) logits.

    Raises:
        ValueError: For an unknown name or an input smaller than the model accepts.
    """
    config = get_model_config(name)
    if len(input_shape) == 3:
        h, w = input_shape[1:]
        mh, mw = config.min_input_size
        if h < mh or w < mw:
            raise ValueError(f"model {name!r} needs inputs of at least {mh}x{mw}, got {h}x{w}")
    try:
        return _REGISTRY[name].fn(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)
    except TypeError as exc:
        raise ValueError(f"bad options for model {name!r}: {exc}") from exc


def check_model_kwargs(name: str, kwargs: dict) -> None:
    """Check that model ``name`` accepts options ``kwargs`` without building it.

    Raises:
        ValueError: For an unknown model or an option its entrypoint does not take;
            the message lists the options it does take.
    """
    get_model_config(name)
    params = inspect.signature(_REGISTRY[name].fn).parameters
    accepted = sorted(p for p in params if p not in ("num_classes", "input_shape"))
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {name!r} takes no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(accepted) or 'none'}"
        )


def _ensure_builtin_models() -> None:
    """Import the modules that register the built-in models (idempotent)."""
    import engine.models.small  # noqa: F401
