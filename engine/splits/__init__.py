"""Benchmark specs, split selectors, the split builder and the benchmark card."""

from engine.splits.spec import BenchmarkSpec, SpecError, load_spec, parse_spec

__all__ = ["BenchmarkSpec", "SpecError", "load_spec", "parse_spec"]
