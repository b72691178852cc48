"""Plain training loops (no Ray): one per task. ``infer`` returns logits for all inputs."""

from engine.training.classification import infer, train

__all__ = ["infer", "train"]
