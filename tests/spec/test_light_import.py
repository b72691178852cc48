"""The spec sits at the bottom of the layers: importing it loads no torch, no Ray, no engine layer above it.

Each check runs in a fresh interpreter (a subprocess), since this test process has long
imported torch and every registry. Registered names are read only by the spec's one
validation step (:mod:`engine.spec.validate`), when a spec is built.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray")  # what a light import must not load
# engine layers above the spec: importing engine.spec must load none of them
ABOVE_SPEC = ("engine.scores", "engine.data", "engine.models", "engine.shards", "engine.training",
              "engine.splits", "engine.evaluation", "engine.tasks", "engine.lifecycle")  # fmt: skip


def _loaded_after(code: str) -> list[str]:
    """The modules of HEAVY and ABOVE_SPEC a fresh interpreter holds after running ``code``."""
    probe = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY + ABOVE_SPEC!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=300)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_spec_loads_no_torch_ray_or_higher_layer():
    assert _loaded_after("import engine.spec") == []


@pytest.mark.parametrize(
    "path", ["tests/fixtures/tiny-qa.yaml", "tests/fixtures/tiny-seq2seq.yaml"]
)
def test_a_text_spec_parses_and_validates_without_torch_or_ray(path):
    loaded = _loaded_after(f"import engine.spec\nengine.spec.load_spec({path!r})")
    assert not set(loaded) & set(HEAVY), loaded
    assert "engine.tasks" in loaded and "engine.scores" in loaded  # the validation step ran


def test_an_image_spec_parses_without_ray():
    """Checking a classification spec's model names reads the model registry, which needs torch."""
    loaded = _loaded_after("import engine.spec\nengine.spec.load_spec('benchmarks/digits.yaml')")
    assert "ray" not in loaded
    assert "engine.models" in loaded  # replicas.model was checked against the registry
