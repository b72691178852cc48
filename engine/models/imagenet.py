"""A benchmark whose classes are ImageNet-1k classes, for ImageNet models evaluated as they are.

As the paper evaluates public weights on their own label space: when every class of a
benchmark names an ImageNet-1k class (a WordNet id such as ``n04266014``, as ImageNet's
class folders are named, or torchvision's category name such as ``military uniform``),
an ImageNet model needs no training: its 1000-way head is cut to the benchmark's K
rows (:func:`restrict_head`), so its logits are the ImageNet logits of those classes,
in the benchmark's order. The WordNet ids and their names come from timm's
``ImageNetInfo`` (the maintained list of ImageNet-1k synsets, in class-index order).
"""

from __future__ import annotations

import functools
import re

import torch
from torch import nn

from engine.models.registry import classifier_of, get_model_config

WNID = re.compile(r"^n\d{8}$")  # a WordNet noun synset id


@functools.cache
def _imagenet() -> tuple[list[str], list[str]]:
    """(WordNet ids, torchvision category names) of the 1000 ImageNet-1k classes, by index."""
    import torchvision.models as tvm
    from timm.data import ImageNetInfo

    wnids = list(ImageNetInfo().label_names())
    names = list(tvm.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    if len(wnids) != 1000 or len(names) != 1000:
        raise RuntimeError(
            f"expected 1000 ImageNet classes, got {len(wnids)} ids, {len(names)} names"
        )
    return wnids, names


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).lower()


def imagenet_classes(class_names: list[str]) -> list[dict]:
    """The ImageNet-1k class of each benchmark class, in the benchmark's order.

    Args:
        class_names: The benchmark's K class names: WordNet ids or torchvision's
            ImageNet category names (case and ``_`` / space ignored).

    Returns:
        ``{"class", "index", "wnid", "name"}`` per benchmark class.

    Raises:
        ValueError: Naming the first class that is no ImageNet-1k class, or two
            benchmark classes that are the same ImageNet class.
    """
    wnids, names = _imagenet()
    by_wnid = {w: i for i, w in enumerate(wnids)}
    by_name: dict[str, int] = {}
    for i, n in enumerate(names):
        by_name.setdefault(_norm(n), i)  # two ImageNet classes share a name: the first
    out, seen = [], {}
    for cls in class_names:
        index = by_wnid.get(cls) if WNID.match(cls) else by_name.get(_norm(cls))
        if index is None:
            what = "WordNet id" if WNID.match(cls) else "class name"
            raise ValueError(
                f"class {cls!r} is no ImageNet-1k {what}: an ImageNet model can be evaluated "
                "as it is only on ImageNet classes (WordNet ids such as n04266014 or "
                "torchvision's category names); fine-tune it instead (evaluate.models[].finetune)"
            )
        if index in seen:
            raise ValueError(f"classes {seen[index]!r} and {cls!r} are both ImageNet class {index}")
        seen[index] = cls
        out.append({"class": cls, "index": index, "wnid": wnids[index], "name": names[index]})
    return out


def restrict_head(model: nn.Module, name: str, indices: list[int]) -> nn.Module:
    """Cut the classifier of ImageNet model ``name`` to the rows ``indices`` (K outputs), in place.

    The result is an ordinary K-class model whose logits are the original logits of
    those classes: ``restricted(x) == full(x)[:, indices]``.
    """
    head = classifier_of(model, name)
    rows = torch.as_tensor(indices, dtype=torch.long)
    new = nn.Linear(head.in_features, len(indices), bias=head.bias is not None)
    with torch.no_grad():
        new.weight.copy_(head.weight[rows])
        if head.bias is not None:
            new.bias.copy_(head.bias[rows])
    parent_path, _, attr = get_model_config(name).classifier.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, new.to(device=head.weight.device, dtype=head.weight.dtype))
    return model
