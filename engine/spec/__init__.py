"""The spec schema: one set of sections and spellings for every task, read from YAML.

``load_spec(path, overrides)`` reads a file (with ``include:`` bases and ``--set``
overrides) into a validated :class:`BenchmarkSpec`; ``parse_spec`` does the same for
a mapping, ``load_spec_data`` for a mapping that may include a spec. The benchmark
specs shipped with hardbench are found by name (``list_benchmarks``,
``benchmark_path``; ``engine.lifecycle.recipes`` builds the spec of ``run --data PATH``).
The sections are in ``engine.spec.training`` (data, replicas, shards, scoring),
``engine.spec.splits`` (hard split, bins) and ``engine.spec.evaluate`` (evaluated
models, their ``finetune`` options in ``engine.spec.finetune``); the recipes the
replicas and models train with in ``engine.spec.model_recipes``; a source's resolved
options in ``engine.spec.sources``. The spec sits at the bottom of the layers: it
imports no task, score, data or model code. Registered names (tasks, sources, scores,
models) are checked in one step, :mod:`engine.spec.validate`, which imports the
registries inside its functions, so ``import engine.spec`` loads no torch and no Ray.
"""

from engine.spec.benchmark import BenchmarkSpec, Metadata, OutputSpec, TaskSpec, TrackingSpec
from engine.spec.common import CREDENTIALS_IN_URI, SpecError
from engine.spec.evaluate import (
    REFERENCE_LARGER,
    EvalModelSpec,
    EvaluateSpec,
    MitigationOptions,
    MitigationSpec,
)
from engine.spec.finetune import FinetuneOptions
from engine.spec.legacy import migrate_legacy
from engine.spec.loader import apply_overrides, load_spec, load_spec_data, parse_spec, spec_root
from engine.spec.model_recipes import TextRecipe, TrainRecipe
from engine.spec.shipped import benchmark_path, list_benchmarks
from engine.spec.sources import SourceConfig
from engine.spec.splits import EXPORTS, FRACTION_RULES, HARD_RULES, BinsSpec, HardSpec, SplitsSpec
from engine.spec.training import (
    DataSpec,
    LabelNoiseSpec,
    ReplicasSpec,
    ScoringSpec,
    ShardsSpec,
    SourceSpec,
)
from engine.spec.validate import check_registered

__all__ = [
    "CREDENTIALS_IN_URI",
    "EXPORTS",
    "FRACTION_RULES",
    "HARD_RULES",
    "REFERENCE_LARGER",
    "BenchmarkSpec",
    "BinsSpec",
    "DataSpec",
    "EvalModelSpec",
    "EvaluateSpec",
    "FinetuneOptions",
    "HardSpec",
    "LabelNoiseSpec",
    "Metadata",
    "MitigationOptions",
    "MitigationSpec",
    "OutputSpec",
    "ReplicasSpec",
    "ScoringSpec",
    "ShardsSpec",
    "SourceConfig",
    "SourceSpec",
    "SpecError",
    "SplitsSpec",
    "TaskSpec",
    "TextRecipe",
    "TrackingSpec",
    "TrainRecipe",
    "apply_overrides",
    "benchmark_path",
    "check_registered",
    "list_benchmarks",
    "load_spec",
    "load_spec_data",
    "migrate_legacy",
    "parse_spec",
    "spec_root",
]
