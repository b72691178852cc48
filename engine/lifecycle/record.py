"""The lifecycle's side of the MLflow record: open it, feed it while stages run, close it.

``open_record`` starts the build's parent run (or reopens it on ``--resume``, from
``run.json``); :class:`CurveFeed` polls the replica manifests while replicas train
and logs each finished epoch's mean train loss and accuracy (step = epoch).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from engine.shards import read_manifest
from engine.spec import BenchmarkSpec
from engine.tracking.mlflow_log import BuildRecorder, reconnect_uri, resolve_tracking_uri

CURVE_POLL_S = 1.0  # how often the manifests are read for new epochs while replicas train
CURVE_FIELDS = ("train_loss", "train_accuracy", "heldout_accuracy")  # manifest-row fields logged


def open_record(spec: BenchmarkSpec, run_dir: Path, status: dict) -> BuildRecorder:
    """The build's MLflow record: a new RUNNING parent run, or the resumed build's own.

    ``status["mlflow"]`` (``run.json``) gets the redacted URI and the run ids at once,
    so a build that dies in any stage can be resumed into the same parent run.
    """
    stored = (status.get("mlflow") or {}).get("tracking_uri")
    uri = reconnect_uri(stored) if stored else resolve_tracking_uri(run_dir.parent)
    recorder = BuildRecorder(uri, spec.tracking.experiment)
    previous = status.get("mlflow") or {}
    if previous.get("parent_run_id"):
        recorder.reopen(previous["parent_run_id"], previous.get("model_runs"))
    else:
        prov = status["provenance"]
        recorder.start(
            status["run_id"], spec.to_dict(),
            {"hardbench.git_commit": str(prov["git"]["commit"]),
             "hardbench.spec": spec.metadata.name, "hardbench.task": spec.task.name},
        )  # fmt: skip
    status["mlflow"] = recorder.info()
    return recorder


class CurveFeed:
    """A thread that logs the replicas' learning curve while they train.

    Every ``CURVE_POLL_S`` it reads the manifests; an epoch that every replica has
    finished is logged once, as the mean over replicas of each manifest row's
    ``train_loss``, ``train_accuracy`` and ``heldout_accuracy`` (as
    ``replicas_<field>``, step = epoch). Use it as a context manager around training.
    """

    def __init__(self, recorder: BuildRecorder, run_dir: Path, replicas: int) -> None:
        self.recorder, self.run_dir, self.replicas = recorder, run_dir, replicas
        self.logged: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hardbench-curves", daemon=True)

    def poll(self) -> None:
        """Log every newly complete epoch."""
        by_epoch: dict[int, list[dict]] = {}
        for (_, epoch), row in read_manifest(self.run_dir).items():
            by_epoch.setdefault(epoch, []).append(row)
        for epoch in sorted(by_epoch):
            rows = by_epoch[epoch]
            if epoch in self.logged or len(rows) < self.replicas:
                continue
            values = {
                f"replicas_{f}": float(np.mean([r[f] for r in rows]))
                for f in CURVE_FIELDS
                if all(f in r for r in rows)
            }
            if values:
                self.recorder.curve(epoch, values)
            self.logged.add(epoch)

    def _loop(self) -> None:
        while not self._stop.wait(CURVE_POLL_S):
            try:
                self.poll()
            except (OSError, ValueError):  # a manifest being replaced: read it next time
                continue

    def __enter__(self) -> CurveFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self.poll()  # the last epochs
