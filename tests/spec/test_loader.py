from pathlib import Path

import pytest

from engine.spec import SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "benchmarks" / "digits.yaml"
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"


def test_digits_spec_is_the_issue_default():
    spec = load_spec(DIGITS)
    assert spec.metadata.name == "digits"
    assert spec.replicas.count == 5 and spec.replicas.recipe.epochs == 20
    assert spec.replicas.seeds() == [0, 1, 2, 3, 4]
    assert spec.splits.hard.hardest_fraction == 0.1 and spec.splits.bins.count == 5
    assert spec.scores[:2] == ["confusion", "action"] and "vog" in spec.scores
    assert spec.shards.grad_epochs == [4, 9, 14, 19]
    assert [m.recipe.model for m in spec.evaluate.models] == [
        "small_cnn",
        "mlp",
        "wide_cnn",
        "resnet18_small",
    ]


def test_include_and_overrides_merge():
    spec = load_spec(TINY, ["replicas.epochs=5", "splits.bins.count=4"])
    assert spec.metadata.name == "tiny"
    assert spec.replicas.recipe.epochs == 5
    assert spec.replicas.recipe.model == "mlp"  # inherited from digits.yaml
    assert spec.replicas.recipe.model_kwargs == {"hidden": 16}
    assert spec.splits.bins.count == 4


def test_resolved_spec_round_trips():
    spec = load_spec(TINY)
    import yaml

    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("replicas.lr=-1", r"replicas\.lr: must be > 0, got -1"),
        ("replicas.optimizer=adam", r"replicas\.optimizer: must be one of sgd, adamw, got 'adam'"),
        ("replicas.epochs=two", r"replicas\.epochs: must be an integer"),
        (
            "replicas.modle=mlp",
            r"replicas\.modle: unknown field \(did you mean 'model'\?\); allowed fields:",
        ),
        ("replicas.model=resnet", r"replicas\.model: unknown model 'resnet'.*Valid models:"),
        (
            "replicas.model_kwargs={depth: 2, width: 3}",
            r"replicas\.model_kwargs: model 'mlp' takes no option 'width'",
        ),
        (
            "scores=[confusion, actoin]",
            r"scores\[1\]: unknown score 'actoin'. Did you mean 'action'",
        ),
        ("splits.pool=test", r"splits\.pool: must be one of heldout, train, all, got 'test'"),
        ("splits.score=action", None),
        (
            "splits.hard.hardest_fraction=1.5",
            r"splits\.hard\.hardest_fraction: must be in \(0, 1\)",
        ),
        (
            "data.source=mnist",
            r"data\.source: must be one of the classification sources \(hf_disk, idx, "
            r"imagefolder, rotten_tomatoes, sklearn_digits, table, webdataset\)",
        ),
        ("data.source=imagefolder", r"data\.path: the imagefolder source needs a path"),
        ("data.path=/tmp", r"data\.path: the bundled sklearn_digits source takes no path"),
        ("data.on_bad=ignore", r"data\.on_bad: must be one of error, skip, got 'ignore'"),
        ("data.image_size=[3]", r"data\.image_size: must be an integer >= 1 or \[h, w\]"),
        ("data.channels=2", r"data\.channels: must be 1, 3 or left out"),
        ("evaluate.models=[{name: a}]", r"evaluate\.models\[0\]\.model: is required"),
        ("metadata.version=2", r"metadata\.version: this engine reads spec version 1"),
        ("replicas.num_workers=zero", r"replicas\.num_workers: must be 'auto' or an integer"),
        (
            "shards.grad_epochs=[3]",
            r"shards\.grad_epochs: the vog score needs input gradients from at least 2",
        ),
        (
            "shards.grad_epochs=[3, 25]",
            r"shards\.grad_epochs: must be epoch indices below replicas\.epochs=20",
        ),
    ],
)
def test_bad_fields_name_the_field_and_allowed_values(override, match):
    if match is None:
        assert load_spec(DIGITS, [override]).splits.score == "action"
        return
    with pytest.raises(SpecError, match=match):
        load_spec(DIGITS, [override])


def test_split_score_must_be_computed():
    with pytest.raises(SpecError, match=r"splits\.score: must be one of the computed scores"):
        load_spec(DIGITS, ["scores=[action]", "shards.grad_epochs=[]"])


def test_missing_file_bad_yaml_and_include_cycle(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("include: b.yaml\n")
    b.write_text("include: a.yaml\n")
    with pytest.raises(SpecError, match="include chain"):
        load_spec(a)


def test_bad_override_syntax():
    with pytest.raises(SpecError, match="must look like"):
        load_spec(DIGITS, ["replicas.epochs"])


def test_hard_rules_and_label_free_validation():
    spec = load_spec(
        DIGITS, ["splits.hard={hardest_fraction: null, bottom_fraction: 0.2}", "splits.score=aum"]
    )
    assert spec.splits.hard.rule == "bottom_fraction"
    with pytest.raises(
        SpecError, match=r"splits\.hard\.min_score: give exactly one of .* \(set the others to null"
    ):
        load_spec(DIGITS, ["splits.hard.min_score=1"])
    with pytest.raises(
        SpecError, match=r"splits\.score: 'aum' needs labels; label_free needs a label-free score"
    ):
        load_spec(DIGITS, ["splits.label_free=true", "splits.score=aum"])
    with pytest.raises(SpecError, match=r"splits\.hard\.per_class: needs labels"):
        load_spec(DIGITS, ["splits.label_free=true", "splits.hard.per_class=true"])
    with pytest.raises(
        SpecError, match=r"splits\.bins\.count: must be len\(edges\) \+ 1 = 2 or unset"
    ):
        load_spec(DIGITS, ["splits.bins={count: 5, edges: [5.0]}"])
    assert load_spec(DIGITS, ["splits.bins={count: null, edges: [5.0]}"]).splits.bins.count == 2


@pytest.mark.parametrize(
    "include",
    ["../outside.yaml", "/etc/passwd", "../../../../../../etc/hosts", "sub/../../../x.yaml"],
)
def test_include_cannot_leave_the_spec_root(tmp_path, monkeypatch, include):
    monkeypatch.delenv("HARDBENCH_SPEC_ROOT", raising=False)
    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (tmp_path / "outside.yaml").write_text("metadata: {name: stolen}\n")
    (tmp_path / "x.yaml").write_text("metadata: {name: stolen}\n")
    spec = project / "specs" / "s.yaml"
    spec.write_text(f"include: {include}\n")
    if include == "../outside.yaml":  # one level up from specs/ is still the project
        spec.write_text("include: ../../outside.yaml\n")
    with pytest.raises(SpecError, match=r"outside the spec root|must name a \.yaml"):
        load_spec(spec)


def test_include_inside_the_root_and_a_widened_root(tmp_path, monkeypatch):
    monkeypatch.delenv("HARDBENCH_SPEC_ROOT", raising=False)
    base = tmp_path / "shared" / "base.yaml"
    base.parent.mkdir()
    base.write_text(DIGITS.read_text())
    spec = tmp_path / "mine" / "s.yaml"
    spec.parent.mkdir()
    spec.write_text("include: ../shared/base.yaml\nmetadata: {name: mine}\n")
    with pytest.raises(SpecError, match="outside the spec root"):
        load_spec(spec)  # no project marker: the root is the spec's own directory
    monkeypatch.setenv("HARDBENCH_SPEC_ROOT", str(tmp_path))
    assert load_spec(spec).metadata.name == "mine"
