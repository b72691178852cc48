"""One schema for every task (issue 15): the task section, task defaults and checks, legacy layouts."""

from pathlib import Path

import pytest
import yaml

from engine.spec import SpecError, load_spec, migrate_legacy, parse_spec
from engine.tasks import get_task, list_tasks

ROOT = Path(__file__).resolve().parents[2]
QA = ROOT / "tests" / "fixtures" / "tiny-qa.yaml"
S2S = ROOT / "tests" / "fixtures" / "tiny-seq2seq.yaml"


def test_every_task_is_registered_with_its_recipe_and_sources():
    assert list_tasks() == ["classification", "multilabel", "qa", "seq2seq"]
    assert get_task("multilabel").sources() == ["table", "hf_disk"]
    assert get_task("qa").sources() == ["quoref", "table"]
    assert "sklearn_digits" in get_task("classification").sources()
    assert get_task("qa").recipe is get_task("seq2seq").recipe
    with pytest.raises(ValueError, match="unknown task 'q'"):
        get_task("q")


def test_text_specs_use_the_same_sections_and_take_their_task_defaults():
    spec = load_spec(QA)
    assert spec.task.name == "qa" and spec.data.heldout_fraction == 0.2
    assert spec.replicas.pack_size == "all" and spec.shards.mode == "reduced"
    assert spec.splits.hard.hardest_fraction == 0.2 and spec.splits.bins.count == 5
    assert [m.name for m in spec.evaluate.models] == ["reader"] and spec.evaluate.ensemble
    assert spec.replicas.recipe.dim == 16 and spec.evaluate.models[0].recipe.dim == 32
    assert not load_spec(S2S).evaluate.ensemble
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec
    # a spec's own hard rule replaces the task's default rule whole
    other = load_spec(QA, ["splits.hard={hardest_fraction: 0.3}"])
    assert other.splits.hard.hardest_fraction == 0.3


@pytest.mark.parametrize(
    ("spec", "override", "match"),
    [
        (
            QA,
            "task.name=summarize",
            r"task\.name: must be one of classification, multilabel, qa, seq2seq",
        ),
        (
            QA,
            "data.source=qasc_fusion",
            r"data\.source: must be one of the qa sources \(quoref, table\)",
        ),
        (QA, "replicas.pack_size=1", r"it needs replicas\.pack_size: all"),
        (QA, "replicas.count=1", r"replicas\.count: a seed ensemble needs >= 2 replicas"),
        (QA, "shards.mode=full", r"shards: qa replicas write reduced shards only"),
        (
            QA,
            "scores=[confusion, action, self_confidence]",
            r"scores\[2\]: 'self_confidence' is not",
        ),
        (QA, "replicas.cpus_per_worker=0.5", r"replicas\.cpus_per_worker: must be a whole number"),
        (S2S, "evaluate.ensemble=true", r"evaluate\.ensemble: a seq2seq ensemble .* set false"),
        (
            ROOT / "benchmarks" / "sentiment.yaml",
            "data.path=/tmp/reviews.csv",
            r"data\.path: the bundled rotten_tomatoes source takes no path",
        ),
        (QA, "data.path=/tmp/x.jsonl", r"data\.path: qa reads its bundled corpus \(quoref\)"),
        (QA, "replicas.recipe={dim: 8}", r"replicas\.recipe: this is the text-task layout"),
    ],
)
def test_task_checks_name_the_field(spec, override, match):
    with pytest.raises(SpecError, match=match):
        load_spec(spec, [override])


def test_the_old_text_layout_is_refused_in_files_and_migrated_in_runs(tmp_path):
    old = {
        "task": "qa",
        "metadata": {"name": "old-qa"},
        "data": {"source": "quoref", "limit": 240},
        "replicas": {"count": 2, "recipe": {"dim": 16, "heads": 2, "epochs": 2}, "cpus": 1},
        "splits": {"score": "confusion", "pool": "heldout", "hard_fraction": 0.25, "bins": 4},
        "models": [{"name": "reader", "recipe": {"dim": 32, "heads": 2}, "cpus": 1}],
    }
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    for new in ("task: {name: qa}", "evaluate: {models: [...]}", "replicas.cpus_per_worker",
                "splits.hard: {hardest_fraction: ...}", "splits.bins: {count: ...}"):  # fmt: skip
        assert new in message
    spec = parse_spec(migrate_legacy(old))
    assert spec.task.name == "qa" and spec.replicas.recipe.dim == 16
    assert spec.replicas.cpus_per_worker == 1 and spec.splits.hard.hardest_fraction == 0.25
    assert spec.splits.bins.count == 4 and spec.evaluate.models[0].recipe.dim == 32
    assert migrate_legacy(spec.to_dict()) == spec.to_dict()  # the one schema is left alone
