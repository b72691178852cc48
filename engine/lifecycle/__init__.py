"""The one run lifecycle: run directory, ``run.json`` attempts, stages, resume, verify, mirror, MLflow.

Every task goes through it; the task plugins (:mod:`engine.tasks`) supply what
differs. ``run_benchmark`` and ``resume_run`` run the stages, ``verify_run`` checks
and repairs shards, ``score_existing_run`` re-scores, ``evaluate_model_on_run``
measures another model on a finished run.
"""

from engine.layout import RUN_FILE, SCORES_FILE, SPEC_FILE
from engine.lifecycle.eval_model import evaluate_model_on_run
from engine.lifecycle.run import RunResult, resume_run, run_benchmark
from engine.lifecycle.rundir import (
    RUN_ID_PATTERN,
    RunSetupError,
    new_run_id,
    read_run_spec,
    read_status,
)
from engine.lifecycle.scoring import score_existing_run, score_stage
from engine.lifecycle.verify import verify_run

__all__ = [
    "RUN_FILE",
    "RUN_ID_PATTERN",
    "SCORES_FILE",
    "SPEC_FILE",
    "RunResult",
    "RunSetupError",
    "evaluate_model_on_run",
    "new_run_id",
    "read_run_spec",
    "read_status",
    "resume_run",
    "run_benchmark",
    "score_existing_run",
    "score_stage",
    "verify_run",
]
