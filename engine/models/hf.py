"""Hugging Face transformers sequence classifiers loaded from a local directory."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from engine.models.registry import ModelConfig, register_model


class HFSequenceClassifier(nn.Module):
    """Wraps ``AutoModelForSequenceClassification`` so ``forward`` returns logits (B, K)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from transformers import AutoModelForSequenceClassification

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no Hugging Face model in {path}: {path / 'config.json'} not found "
                "(save one with model.save_pretrained(path); nothing is downloaded at run time)"
            )
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(path), local_files_only=True
        )

    def forward(self, input_ids, attention_mask=None):  # noqa: D102
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


@register_model(
    ModelConfig(
        "hf_sequence_classifier",
        "hf",
        "any transformers sequence classifier saved in a local directory",
    )
)
def hf_sequence_classifier(*, num_classes: int, path: str) -> nn.Module:
    """Load ``path`` (a ``save_pretrained`` directory); its head must have ``num_classes`` outputs."""
    model = HFSequenceClassifier(path)
    got = model.model.config.num_labels
    if got != num_classes:
        raise ValueError(
            f"the model in {path} has {got} labels, expected num_classes={num_classes}"
        )
    return model
