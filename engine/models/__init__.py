"""Model registry: ``create_model(name)``, ``list_models(pattern)`` and the built-in recipes."""

from engine.models import small as _small  # noqa: F401  (registers the built-in models)
from engine.models.registry import (
    ModelConfig,
    check_model_kwargs,
    create_model,
    get_model_config,
    list_models,
    register_model,
)

__all__ = [
    "ModelConfig",
    "check_model_kwargs",
    "create_model",
    "get_model_config",
    "list_models",
    "register_model",
]
