"""Every task plugin has every hook of the protocol; the task pieces the CLI asks for.

The hooks are called by name from the one lifecycle, so a plugin without one (the
text tasks had no ``evaluate_model``; ``hardbench eval`` found it with ``getattr``)
fails here, not in a run.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from engine.spec import load_spec
from engine.tasks import get_task, list_tasks
from engine.tasks.base import TaskPlugin, UnsupportedByTask

QA = "tests/fixtures/tiny-qa.yaml"
SEQ2SEQ = "tests/fixtures/tiny-seq2seq.yaml"
HOOKS = sorted(
    name
    for name, member in vars(TaskPlugin).items()
    if inspect.isfunction(member) and not name.startswith("_")
)  # the protocol's methods


def test_the_protocol_names_the_eval_hook():
    assert "evaluate_model" in HOOKS


@pytest.mark.parametrize("task", list_tasks())
def test_every_plugin_implements_every_hook_with_the_protocols_parameters(task):
    plugin = get_task(task).runtime()
    for hook in HOOKS:
        method = getattr(type(plugin), hook, None)
        assert callable(method), f"the {task} plugin has no {hook} hook"
        want = list(inspect.signature(getattr(TaskPlugin, hook)).parameters)
        assert list(inspect.signature(method).parameters) == want, (task, hook)


@pytest.mark.parametrize("spec_file", [QA, SEQ2SEQ])
def test_a_text_plugin_refuses_to_evaluate_an_outside_model_naming_the_run(spec_file):
    spec = load_spec(spec_file)
    with pytest.raises(UnsupportedByTask) as err:
        get_task(spec.task.name).runtime().evaluate_model(Path("/runs/r1"), spec, {}, model="mlp")
    assert str(err.value) == (
        f"/runs/r1 is a {spec.task.name} run: hardbench eval measures outside models on "
        "classification runs; a text run's evaluated models are in its spec"
    )
    assert isinstance(err.value, ValueError)  # what the CLI reports as bad input


@pytest.mark.parametrize(
    ("spec_file", "overrides", "says"),
    [
        (QA, ["data.source=table", "data.path=/data/q.jsonl"],
         "a qa table is tokenized by its first run (and kept under the runs directory's "
         "_datasets for the next); there is nothing to ingest"),
        (SEQ2SEQ, [], "qasc_fusion is read in memory; there is nothing to ingest"),
        (QA, [], "quoref is read in memory; there is nothing to ingest"),
        ("tests/fixtures/tiny-text.yaml", [], None),  # the sentiment snippets: ingested too
        ("tests/fixtures/tiny.yaml", [], None),  # digits: ingested into the dataset cache
    ],
)  # fmt: skip
def test_each_task_says_when_hardbench_ingest_has_nothing_to_build(spec_file, overrides, says):
    spec = load_spec(spec_file, overrides)
    assert get_task(spec.task.name).nothing_to_ingest(spec) == says
