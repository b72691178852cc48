"""The spec schema: one set of sections and spellings for every task, read from YAML.

``load_spec(path, overrides)`` reads a file (with ``include:`` bases and ``--set``
overrides) into a validated :class:`BenchmarkSpec`; ``parse_spec`` does the same for
a mapping, ``load_spec_data`` for a mapping that may include a spec. The benchmark
specs shipped with hardbench are found by name (``list_benchmarks``,
``benchmark_path``); ``engine.spec.recipes`` builds the spec of ``run --data PATH``. The sections are in ``engine.spec.training`` (data, replicas, shards,
scoring), ``engine.spec.splits`` (hard split, bins) and ``engine.spec.evaluate``
(evaluated models); task-specific checks and defaults come from ``engine.tasks``.
"""

from engine.spec.benchmark import BenchmarkSpec, Metadata, OutputSpec, TaskSpec, TrackingSpec
from engine.spec.common import CREDENTIALS_IN_URI, SpecError
from engine.spec.evaluate import REFERENCE_LARGER, EvalModelSpec, EvaluateSpec, MitigationSpec
from engine.spec.legacy import migrate_legacy
from engine.spec.loader import apply_overrides, load_spec, load_spec_data, parse_spec, spec_root
from engine.spec.shipped import benchmark_path, list_benchmarks
from engine.spec.splits import EXPORTS, FRACTION_RULES, HARD_RULES, BinsSpec, HardSpec, SplitsSpec
from engine.spec.training import (
    DataSpec,
    LabelNoiseSpec,
    ReplicasSpec,
    ScoringSpec,
    ShardsSpec,
    SourceSpec,
)

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
    "HardSpec",
    "LabelNoiseSpec",
    "Metadata",
    "MitigationSpec",
    "OutputSpec",
    "ReplicasSpec",
    "ScoringSpec",
    "ShardsSpec",
    "SourceSpec",
    "SpecError",
    "SplitsSpec",
    "TaskSpec",
    "TrackingSpec",
    "apply_overrides",
    "benchmark_path",
    "list_benchmarks",
    "load_spec",
    "load_spec_data",
    "migrate_legacy",
    "parse_spec",
    "spec_root",
]
