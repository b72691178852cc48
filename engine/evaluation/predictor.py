"""Predict with any registered model on built splits: a callable class Ray Data runs as actors.

The model is loaded once in ``__init__`` and applied per batch in ``__call__`` with the
model's own evaluation preprocessing (channel repeat, resize, centre crop, normalise).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from engine.models import Preprocess, create_model, get_model_config
from engine.training.inputs import prepare_inputs
from engine.training.model_folder import DESCRIPTOR_FILE

FORWARD_BATCH = 64  # images per forward pass (256 ran 3x slower on CPUs: memory-bound)
HF_MAX_LENGTH = 256  # tokens a Hugging Face classifier reads per text (longer texts truncated)


def descriptor_preprocess(info: dict) -> Preprocess | None:
    """The transform a saved model was fine-tuned with (its descriptor's), or None."""
    if not info.get("preprocess"):
        return None
    return Preprocess(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in info["preprocess"].items()})  # fmt: skip


class Preprocessed(torch.nn.Module):
    """A model with its preprocessing inside: stored inputs (B, C, H, W) in, logits out.

    What a build logs as the MLflow Model of a model with a transform, so that
    ``mlflow.pytorch.load_model`` users feed it the benchmark's inputs as they are.
    """

    def __init__(self, model: torch.nn.Module, preprocess: Preprocess) -> None:
        super().__init__()
        self.model = model
        self.preprocess = preprocess

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) stored inputs in [0, 1] -> (B, K) logits."""
        return self.model(prepare_inputs(x, self.preprocess))


MLFLOW_EXTRA_FILES = "extra_files"  # where an MLflow Model logged by a build keeps them


def describe_model_dir(path: Path | str) -> dict:
    """Read the descriptor of a saved model directory (``model.json`` + weights).

    The directory is a model folder of a run, or an MLflow Model a build logged
    (``runs:/<id>/model``, ``models:/<model id>``), whose ``extra_files`` hold the same
    two files: the weights are read from there, never unpickled from the MLflow flavor.
    """
    path = Path(path)
    if not (path / DESCRIPTOR_FILE).is_file() and (path / MLFLOW_EXTRA_FILES).is_dir():
        path = path / MLFLOW_EXTRA_FILES
    descriptor = path / DESCRIPTOR_FILE
    if not descriptor.is_file():
        raise FileNotFoundError(f"{descriptor} not found: not a hardbench model directory")
    info = json.loads(descriptor.read_text())
    info["weights_file"] = str(path / info.pop("weights"))
    return info


def require_hf_text_model(path: str | Path | None, split_file: Path | str | None = None) -> Path:
    """Check that ``path`` holds a tokenizer and, if given, that the split holds texts.

    Returns:
        The model directory.

    Raises:
        ValueError: Without a ``path`` option, or for a split with no ``text`` column.
        FileNotFoundError: When the directory has no saved tokenizer.
    """
    if not path:
        raise ValueError("hf_sequence_classifier needs its directory: model option path=DIR")
    path = Path(path)
    if not (path / "tokenizer_config.json").is_file():
        raise FileNotFoundError(
            f"no tokenizer in {path} ({path / 'tokenizer_config.json'} not found): a Hugging "
            "Face classifier reads the split's texts with its own tokenizer; save it next to "
            "the model with tokenizer.save_pretrained(path)"
        )
    if split_file is not None:
        import pyarrow.parquet as pq

        if "text" not in pq.read_schema(split_file).names:
            raise ValueError(
                f"{split_file} has no text column: a Hugging Face text classifier can only be "
                "evaluated on a text benchmark"
            )
    return path


class SplitPredictor:
    """Callable class: a batch with ``sample_id`` and flattened ``input`` in, predictions out.

    A Hugging Face classifier (family ``hf``) reads the batch's ``text`` column instead,
    through the tokenizer saved next to it (``tokenizer_config.json`` in its directory),
    so it sees the texts the way it was trained, not the benchmark's word ids. Its label
    i must be the benchmark's class i.

    Args:
        model: Registered model name (ignored when ``model_dir`` is given).
        input_shape: Shape of one stored input, e.g. (1, 8, 8).
        num_classes: Output size (default: the model's or the descriptor's).
        model_dir: A saved model directory (``model.json`` + weights), e.g. an MLflow
            ``runs:/<id>/model`` artifact downloaded to disk.
        pretrained: Load the registry's pretrained weights from the local hub cache.
        weights_file: Load this local state dict.
        model_kwargs: Model options.
        device: Torch device; ``"auto"`` picks CUDA when there is one.
        cache_dir: The dataset cache a split without an ``input`` column refers to:
            each batch's inputs are gathered from it by ``sample_id``.
        class_map: ImageNet indices of the benchmark's classes: the model is built with
            its pretrained 1000-class head, which is then cut to these rows (ImageNet
            weights evaluated as they are, :mod:`engine.models.imagenet`).

    A saved model directory is evaluated through the transform its descriptor records
    (a fine-tuned or ImageNet model's) or none (a model trained on the stored inputs);
    a registry model through the registry's preprocessing.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        input_shape: tuple[int, ...],
        num_classes: int | None = None,
        model_dir: str | None = None,
        pretrained: bool = False,
        weights_file: str | None = None,
        model_kwargs: dict | None = None,
        device: str = "auto",
        cache_dir: str | None = None,
        class_map: list[int] | None = None,
    ) -> None:
        kwargs = dict(model_kwargs or {})
        self.cached = None
        info: dict | None = None
        if cache_dir is not None:
            from engine.data.cache import CachedInputs

            self.cached = CachedInputs(cache_dir)
        if model_dir is not None:
            info = describe_model_dir(model_dir)
            model, kwargs, weights_file = info["model"], info["model_kwargs"], info["weights_file"]
            num_classes = num_classes or info["num_classes"]
        if model is None:
            raise ValueError("give a registered model name or a model_dir")
        self.config = get_model_config(model)
        self.preprocess = (descriptor_preprocess(info) if info is not None
                           else self.config.preprocess)  # fmt: skip
        self.input_shape = tuple(input_shape)
        self.device = torch.device(
            "cuda"
            if device == "auto" and torch.cuda.is_available()
            else "cpu"
            if device == "auto"
            else device
        )
        self.tokenizer = None
        self.max_length = HF_MAX_LENGTH
        if self.config.family == "hf":
            from transformers import AutoTokenizer

            path = require_hf_text_model(kwargs.get("path"))
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        net = create_model(
            model,
            num_classes=self.config.num_classes if class_map else num_classes,
            input_shape=self.input_shape,
            pretrained=pretrained,
            weights_file=weights_file,
            **kwargs,
        )
        if class_map:
            from engine.models.imagenet import restrict_head

            restrict_head(net, model, list(class_map))
        self.model = net.to(self.device).eval()

    def stored_inputs(self, batch: dict[str, np.ndarray]) -> np.ndarray | None:
        """The batch's stored inputs (B, *input_shape): its ``input`` column or the cache's rows.

        None for a Hugging Face classifier, which reads the ``text`` column instead.
        """
        if self.tokenizer is not None:
            return None
        if "input" in batch:
            flat = batch["input"]
            flat = np.stack(flat) if flat.dtype == object else flat
        elif self.cached is not None:
            flat = self.cached[np.asarray(batch["sample_id"], dtype=np.int64)]
        else:
            raise ValueError("the split has no input column and no dataset cache was given")
        return flat.reshape(len(flat), *self.input_shape)

    @torch.no_grad()
    def logits(self, batch: dict[str, np.ndarray], inputs: np.ndarray | None) -> np.ndarray:
        """Float32 logits (B, K) of a batch whose stored inputs are ``inputs`` (see :meth:`stored_inputs`)."""
        if self.tokenizer is not None:
            if "text" not in batch:
                raise ValueError(
                    "a Hugging Face classifier needs the split's texts, and this split has no "
                    "text column (it is not a text benchmark)"
                )
            enc = self.tokenizer(
                [str(t) for t in batch["text"]], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            )  # fmt: skip
            out = self.model(
                enc["input_ids"].to(self.device),
                attention_mask=enc["attention_mask"].to(self.device),
            )
        else:
            out = torch.cat([
                self.model(prepare_inputs(inputs[s : s + FORWARD_BATCH], self.preprocess)
                           .to(self.device))
                for s in range(0, len(inputs), FORWARD_BATCH)
            ])  # fmt: skip
        return out.float().cpu().numpy()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict a batch: ``sample_id`` with ``pred`` (argmax) and ``conf`` (its probability)."""
        values = self.logits(batch, self.stored_inputs(batch))
        ids = np.asarray(batch["sample_id"], dtype=np.int64)
        probs = torch.softmax(torch.from_numpy(values), dim=1).numpy()
        return {"sample_id": ids, "pred": probs.argmax(1), "conf": probs.max(1)}


def logits_column(values: np.ndarray) -> pa.FixedSizeListArray:
    """(B, K) logits -> an Arrow column of B lists of K float32."""
    from engine.shards import fixed_list

    return fixed_list(values, pa.float32())


LOGITS_COLUMN = "logits/{name}"  # ModelsPredictor's output column of one model


class ModelsPredictor:
    """Callable class: a batch of samples in, the logits of every listed model out.

    What the build's evaluation pool runs: each actor loads all the models once (one
    actor start, one read of each batch's inputs for all of them).

    Args:
        model_dirs: Model name -> its saved folder (descriptor + weights).
        input_shape: Shape of one stored input, e.g. (1, 28, 28).
        cache_dir: The dataset cache the batches' sample ids refer to (None when the
            batches carry an ``input`` column).
        device: Torch device; ``"auto"`` picks CUDA when there is one.
    """

    def __init__(self, model_dirs: dict[str, str], *, input_shape: tuple[int, ...],
                 cache_dir: str | None = None, device: str = "auto") -> None:  # fmt: skip
        if not model_dirs:
            raise ValueError("no models to predict with")
        self.predictors = {
            name: SplitPredictor(model_dir=str(d), input_shape=input_shape, cache_dir=cache_dir,
                                 device=device)
            for name, d in model_dirs.items()
        }  # fmt: skip
        self._reader = next((p for p in self.predictors.values() if p.tokenizer is None), None)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """``sample_id`` and one ``logits/<name>`` column (lists of K float32) per model."""
        inputs = None if self._reader is None else self._reader.stored_inputs(batch)
        columns = {"sample_id": pa.array(np.asarray(batch["sample_id"], dtype=np.int64))}
        for name, predictor in self.predictors.items():
            columns[LOGITS_COLUMN.format(name=name)] = logits_column(
                predictor.logits(batch, inputs)
            )
        return pa.table(columns)
