"""Per-epoch predictions through a Ray Data actor pool, overlapped with training.

With ``shards.predict: ray_data`` a replica's worker only trains: after each epoch it
hands the epoch's weights (one object in Ray's store) to :class:`EpochPredictions`,
which runs, in a background thread and one epoch after another, a Ray Data pipeline
over the epoch's block indices. A pool of :class:`BlockPredictor` actors opens the
run's dataset cache (memory-mapped), builds the replica's model with those weights,
predicts each block's samples and writes that block's shard exactly as the inline
path writes it (:func:`engine.shards.write_epoch_shards` with ``first_sample``). When
every block's manifest entry is back, the thread records the (replica, epoch) row;
meanwhile the replica trains its next epoch.

Exactly once: a shard is written atomically at its fixed path, so a retried block (a
dead actor is restarted and its block retried: Ray Data's defaults for actor pools)
rewrites the same file with the same bytes, and the manifest row, the only thing
that marks the epoch done, is written once, after all its blocks. A failed epoch
leaves no row: the replica's run fails and a resumed run predicts it again.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
from pathlib import Path

import numpy as np

from engine.data import SPLIT_TRAIN
from engine.data.cache import take_rows
from engine.distributed.ingest import load_run_data
from engine.models import create_model
from engine.shards import num_blocks, record_epoch, write_epoch_shards
from engine.spec import BenchmarkSpec, parse_spec
from engine.training import infer
from engine.training.objectives import softmax_and_loss

PREDICT_ACTORS = 1  # prediction actors per replica worker (they share the cores with training)
# Logical CPUs a prediction actor reserves: none. It shares the cores its replica's worker
# reserved: a reservation could wait for CPUs the training workers hold until they
# finish, while they wait for their predictions (a deadlock on a full cluster).
PREDICT_ACTOR_CPUS = 0
MAX_EPOCHS_IN_FLIGHT = 2  # epochs queued or being predicted; the trainer waits beyond that
FAULT_MARKER_ENV = "HARDBENCH_TEST_KILL_PREDICTOR"  # tests: a marker path; one actor dies once


def curve_loss(logits: np.ndarray, labels: np.ndarray, loss: np.ndarray | None) -> np.ndarray:
    """Per-sample loss (N,) for the learning curves: ``loss``, or NaN where unlabelled.

    Args:
        logits: Float32 (N, K) of one replica.
        labels: Int (N,), -1 for an unlabelled pool sample.
        loss: The shards' loss (None for a label-free run).
    """
    if loss is not None:
        return loss
    out = np.full(len(labels), np.nan, dtype=np.float32)
    known = labels >= 0
    out[known] = softmax_and_loss(logits[known], labels[known])[1]
    return out


class BlockPredictor:
    """Callable class for ``map_batches``: block ids in, their shards written, entries out.

    Args:
        run_dir: The run directory (its ``dataset.json`` names the cache).
        spec: The resolved spec as a dict (``BenchmarkSpec.to_dict``).
        replica: Replica index.
        epoch: Epoch index.
        weights: ``[ObjectRef]`` of the epoch's ``state_dict`` (in a list, so Ray
            passes the reference and this actor fetches it).
        train_correct: ``[ObjectRef]`` of the epoch's int8 (N,) presentation records, or
            ``[None]``.
        meta: Provenance stored in each shard's schema metadata (as inline).
        fault_marker: Tests only: a path; the first actor to predict block 1 creates
            it and kills its own process before writing (a killed actor mid-epoch).
    """

    def __init__(self, run_dir: str, spec: dict, replica: int, epoch: int, weights: list,
                 train_correct: list, meta: dict, fault_marker: str | None = None) -> None:  # fmt: skip
        import ray
        import torch

        torch.set_num_threads(1)
        self.run_dir, self.replica, self.epoch, self.meta = run_dir, replica, epoch, meta
        self.fault_marker = fault_marker
        self.spec = parse_spec(spec)
        self.data = load_run_data(self.spec, run_dir, log=lambda line: None)
        recipe = self.spec.replicas.recipe
        self.model = create_model(recipe.model, num_classes=self.data.num_classes,
                                  input_shape=self.data.input_shape, **recipe.model_kwargs)  # fmt: skip
        self.model.load_state_dict(ray.get(weights[0]))
        self.model.eval()
        self.train_correct = None if train_correct[0] is None else ray.get(train_correct[0])

    def __call__(self, batch: dict) -> dict:
        """Predict and write every block id in ``batch["block"]``."""
        out = {"block": [], "entry": [], "curve": []}
        for block in batch["block"]:
            entry, curve = self.predict_block(int(block))
            out["block"].append(int(block))
            out["entry"].append(json.dumps(entry))
            out["curve"].append(json.dumps(curve))
        return {k: np.asarray(v) for k, v in out.items()}

    def predict_block(self, block: int) -> tuple[dict, dict]:
        """Write block ``block``'s shard; its manifest entry and learning-curve sums."""
        data, shards = self.data, self.spec.shards
        start = block * shards.block_size
        idx = np.arange(start, min(start + shards.block_size, len(data.labels)))
        logits = infer(self.model, take_rows(data.inputs, idx))
        labels = data.labels[idx]
        shard_labels = labels if data.labelled else None
        probs, loss, margin = softmax_and_loss(logits, shard_labels)
        if self.fault_marker and block == 1 and not Path(self.fault_marker).exists():
            Path(self.fault_marker).write_text(str(os.getpid()))
            os._exit(1)  # a test's killed actor: Ray restarts it and retries the block
        (entry,) = write_epoch_shards(
            self.run_dir, replica=self.replica, epoch=self.epoch, probs=probs, loss=loss,
            labels=shard_labels, margin=margin, top_k=shards.top_k, pred=logits.argmax(axis=1),
            block_size=shards.block_size, probs_dtype=shards.probs_dtype, metadata=self.meta,
            fmt=shards.format, checksum=shards.checksum, first_sample=start,
            train_correct=None if self.train_correct is None else self.train_correct[idx],
        )  # fmt: skip
        train = data.split[idx] == SPLIT_TRAIN
        held = ~train & (labels >= 0)
        right = logits.argmax(axis=1) == labels
        return entry, {
            "loss_train": float(np.sum(curve_loss(logits, labels, loss)[train], dtype=np.float64)),
            "right_train": int(right[train].sum()), "train": int(train.sum()),
            "right_held": int(right[held].sum()), "held": int(held.sum()),
        }  # fmt: skip


class EpochPredictions:
    """A replica's epochs queued for the prediction pool; their manifest rows recorded in order.

    Args:
        run_dir: The run directory.
        spec: The resolved spec.
        replica: Replica index.
        meta: Shard provenance (as the inline path's).
        seed: The replica's seed (recorded in each row).
        attempt: Which start of the run this is (recorded in each row).
    """

    def __init__(self, run_dir: Path, spec: BenchmarkSpec, replica: int, meta: dict, *,
                 seed: int, attempt: int, num_samples: int) -> None:  # fmt: skip
        self.run_dir, self.spec, self.replica, self.meta = run_dir, spec, replica, meta
        self.seed, self.attempt = seed, attempt
        self.blocks = num_blocks(num_samples, spec.shards.block_size)
        self.queue: queue.Queue = queue.Queue(maxsize=MAX_EPOCHS_IN_FLIGHT)
        self.error: BaseException | None = None
        self.written = 0
        self.clock = time.perf_counter()
        self.thread = threading.Thread(target=self._work, name=f"predict-{replica}", daemon=True)
        self.thread.start()

    def submit(self, epoch: int, weights: dict, train_correct: np.ndarray | None) -> None:
        """Queue an epoch (blocks while ``MAX_EPOCHS_IN_FLIGHT`` are pending).

        Raises:
            RuntimeError: When an earlier epoch's prediction failed.
        """
        import ray

        self._raise()
        tc = None if train_correct is None else ray.put(train_correct)
        self.queue.put((epoch, ray.put(weights), tc))

    def finish(self) -> int:
        """Wait for every queued epoch; how many manifest rows were written.

        Raises:
            RuntimeError: When an epoch's prediction failed (its row is not written, so
                a resumed run predicts it again).
        """
        self.queue.put(None)
        self.thread.join()
        self._raise()
        return self.written

    def _raise(self) -> None:
        if self.error is not None:
            raise RuntimeError(
                f"replica {self.replica}: predicting an epoch through Ray Data failed: {self.error}"
            ) from self.error

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self._predict(*item)
                except BaseException as exc:  # re-raised by submit and finish
                    self.error = exc

    def _actor_kwargs(self, epoch: int, weights: object, train_correct: object) -> dict:
        """What every :class:`BlockPredictor` of ``epoch`` is built with."""
        return {"run_dir": str(Path(self.run_dir).resolve()), "spec": self.spec.to_dict(),
                "replica": self.replica, "epoch": epoch, "weights": [weights],
                "train_correct": [train_correct], "meta": self.meta,
                "fault_marker": os.environ.get(FAULT_MARKER_ENV)}  # fmt: skip

    def _predict(self, epoch: int, weights: object, train_correct: object) -> None:
        import ray
        from ray.data import ActorPoolStrategy

        ds = ray.data.from_items([{"block": b} for b in range(self.blocks)],
                                 override_num_blocks=self.blocks)  # fmt: skip
        ds = ds.map_batches(
            BlockPredictor,
            fn_constructor_kwargs=self._actor_kwargs(epoch, weights, train_correct),
            batch_size=1,
            compute=ActorPoolStrategy(size=min(PREDICT_ACTORS, self.blocks)),
            num_cpus=PREDICT_ACTOR_CPUS,
        )
        entries, curve = {}, {"loss_train": 0.0, "right_train": 0, "train": 0,
                               "right_held": 0, "held": 0}  # fmt: skip
        for row in ds.iter_rows():
            block = int(row["block"])
            if block in entries:  # a retried block: the same file, written again
                continue
            entries[block] = json.loads(row["entry"])
            for k, v in json.loads(row["curve"]).items():
                curve[k] += v
        if sorted(entries) != list(range(self.blocks)):
            missing = sorted(set(range(self.blocks)) - set(entries))
            raise RuntimeError(f"epoch {epoch}: blocks {missing[:5]} came back without a shard")
        now = time.perf_counter()
        record_epoch(
            self.run_dir, replica=self.replica, epoch=epoch,
            blocks=[entries[b] for b in range(self.blocks)], seed=self.seed,
            train_loss=curve["loss_train"] / max(curve["train"], 1),
            train_accuracy=curve["right_train"] / max(curve["train"], 1),
            heldout_accuracy=curve["right_held"] / curve["held"] if curve["held"] else float("nan"),
            seconds=round(now - self.clock, 4), attempt=self.attempt, pid=os.getpid(),
            host=socket.gethostname(),
        )  # fmt: skip
        self.clock = now
        self.written += 1
