import os
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


# --- shipped benchmarks by name, what an include gives, --set list indices -------------


FASHION_CLASSES = ["t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle_boot"]  # fmt: skip


def _outside(tmp_path, monkeypatch, text: str) -> Path:
    """A spec in a folder outside any project, the working directory elsewhere again."""
    monkeypatch.delenv("HARDBENCH_SPEC_ROOT", raising=False)
    spec = tmp_path / "specs" / "mine.yaml"
    spec.parent.mkdir()
    spec.write_text(text)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return spec


def test_a_shipped_benchmark_is_included_by_name_from_anywhere(tmp_path, monkeypatch):
    text = """
include: fashion-mnist
metadata: {name: my-images}
data: {source: imagefolder, path: my-images, image_size: 28, channels: 1}
"""
    spec_path = _outside(tmp_path, monkeypatch, text)
    notes: list[str] = []
    spec = load_spec(spec_path, notes=notes)
    shipped = load_spec(ROOT / "benchmarks" / "fashion-mnist.yaml")
    assert spec.replicas == shipped.replicas and spec.evaluate == shipped.evaluate
    assert spec.data.source == "imagefolder"
    assert spec.data.path == str(tmp_path / "cwd" / "my-images")  # from the working directory
    assert spec.data.class_names is None  # Fashion-MNIST's classes are not the user's
    assert notes == [
        "mine.yaml includes fashion-mnist: not taken (another source): data.class_names; "
        "not taken (the including spec's own): metadata.description, tracking.experiment"
    ]
    assert spec.tracking.experiment == "hardbench" and spec.metadata.description == ""


def test_a_shipped_spec_includes_its_siblings_and_a_bare_name_loads_a_shipped_spec(
    tmp_path, monkeypatch
):
    spec_path = _outside(tmp_path, monkeypatch, "include: fashion-mnist-pretrained\n"
                                                "metadata: {name: mine}\n")  # fmt: skip
    spec = load_spec(spec_path)  # fashion-mnist-pretrained includes fashion-mnist.yaml
    assert spec.data.class_names == FASHION_CLASSES  # same source: every data field is taken
    assert [m.name for m in spec.evaluate.models][-1] == "effnet_lite0_full"
    assert load_spec("digits") == load_spec(DIGITS)  # `hardbench run digits` from anywhere


def test_a_missing_include_says_how_shipped_benchmarks_are_named(tmp_path, monkeypatch):
    spec_path = _outside(tmp_path, monkeypatch, "include: benchmarks/fashion-mnist.yaml\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec_path)
    message = str(err.value)
    assert f"no file {tmp_path}/specs/benchmarks/fashion-mnist.yaml" in message
    assert "a shipped benchmark is included by its name (include: fashion-mnist)" in message
    assert "shipped: digits, digits-mitigation, fashion-mnist," in message
    spec_path.write_text("include: fashion-mnst\n")
    with pytest.raises(SpecError, match=r"no shipped benchmark 'fashion-mnst' \(did you mean "
                                        r"'fashion-mnist'\?\); shipped: digits"):  # fmt: skip
        load_spec(spec_path)


def test_every_data_field_is_either_inherited_or_source_specific():
    import dataclasses

    from engine.spec import DataSpec
    from engine.spec.loader import INHERITED_DATA_FIELDS, SOURCE_SWITCHES

    fields = {f.name for f in dataclasses.fields(DataSpec)}
    assert set(INHERITED_DATA_FIELDS) <= fields and set(SOURCE_SWITCHES) <= fields
    assert not set(INHERITED_DATA_FIELDS) & set(SOURCE_SWITCHES)


@pytest.mark.parametrize(
    ("data", "dropped"),
    [
        ("{source: table, path: t.csv, text_column: t}", "data.label_column, data.limit"),
        ("{path: t.csv, source: table, text_column: t}", "data.label_column, data.limit"),
        ("{train: {source: table, path: a.csv, text_column: t}, "
         "pool: {source: table, path: b.csv, text_column: t}}",
         "data.source, data.path, data.text_column, data.label_column, data.limit"),
    ],
)  # fmt: skip
def test_another_source_takes_only_conversion_and_split_options(tmp_path, monkeypatch, data,
                                                                 dropped):  # fmt: skip
    monkeypatch.setenv("HARDBENCH_SPEC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # data paths are taken from the working directory
    base = tmp_path / "base.yaml"
    base.write_text(f"""
include: sentiment
metadata: {{name: base, description: a table of reviews}}
data: {{source: table, path: reviews.csv, text_column: review, label_column: verdict,
       limit: 500, heldout_fraction: 0.25, cache_dir: {tmp_path / "cache"}}}
tracking: {{experiment: base-experiment}}
""")
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"include: base.yaml\nmetadata: {{name: mine}}\ndata: {data}\n")
    notes: list[str] = []
    spec = load_spec(mine, notes=notes)
    assert spec.data.label_column == "label" and spec.data.limit is None  # defaults, not base's
    assert spec.data.heldout_fraction == 0.25 and spec.data.cache_dir == str(tmp_path / "cache")
    assert notes[-1] == (
        "mine.yaml includes base.yaml: data from it: data.heldout_fraction, data.split_seed, "
        "data.cache_dir; "
        f"not taken (another source): {dropped}; "
        "not taken (the including spec's own): metadata.description, tracking.experiment"
    )
    assert spec.tracking.experiment == "hardbench"
    same = tmp_path / "same.yaml"  # no other source: every data field of the base is taken
    same.write_text("include: base.yaml\nmetadata: {name: same}\ndata: {limit: 100}\n")
    spec = load_spec(same)
    assert (spec.data.path, spec.data.label_column, spec.data.limit) == (
        str(tmp_path / "reviews.csv"), "verdict", 100)  # fmt: skip


def test_a_path_without_its_source_is_refused(tmp_path, monkeypatch):
    spec_path = _outside(tmp_path, monkeypatch, "include: fashion-mnist\nmetadata: {name: m}\n"
                                                "data: {path: my-images}\n")  # fmt: skip
    with pytest.raises(SpecError, match=r"mine\.yaml: include fashion-mnist: data\.path is given "
                                        r"without data\.source; the included source 'idx' is "
                                        r"not taken for another path"):  # fmt: skip
        load_spec(spec_path)


def test_a_spec_including_a_test_fixture_does_not_log_to_the_tests_experiment(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("HARDBENCH_SPEC_ROOT", "/")
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"include: {TINY}\nmetadata: {{name: mine}}\n")
    notes: list[str] = []
    spec = load_spec(mine, notes=notes)
    assert load_spec(TINY).tracking.experiment == "hardbench-tests"  # the fixture's own
    assert spec.tracking.experiment == "hardbench"
    assert spec.replicas == load_spec(TINY).replicas
    assert notes[-1] == (
        f"mine.yaml includes {TINY}: data from it: data.source, data.heldout_fraction, "
        "data.split_seed; not taken (the including spec's own): metadata.description, "
        "tracking.experiment"
    )
    mine.write_text(f"include: {TINY}\n")  # a name is the including spec's to give
    with pytest.raises(SpecError, match=r"metadata\.name: is required"):
        load_spec(mine)


def test_set_indexes_lists():
    spec = load_spec(TINY, ["evaluate.models[0].model=wide_cnn", "evaluate.models[0].epochs=2",
                            "evaluate.models[0].model_kwargs={width: 8}",
                            "splits.bins.count=3"])  # fmt: skip
    model = spec.evaluate.models[0]
    assert (model.recipe.model, model.recipe.epochs, model.recipe.model_kwargs) == (
        "wide_cnn", 2, {"width": 8})  # fmt: skip
    assert spec.splits.bins.count == 3
    fashion = load_spec("fashion-mnist", ["scores[1]=self_confidence"])
    assert fashion.scores[:3] == ["confusion", "self_confidence", "aum"]
    digits = load_spec(DIGITS, ["evaluate.models[3]={name: big, model: mlp, epochs: 1}"])
    assert [m.name for m in digits.evaluate.models][-1] == "big"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("evaluate.models[1].epochs=2",
         r"override 'evaluate\.models\[1\]\.epochs=2': index 1 is out of range: "
         r"evaluate\.models has 1 entry \(indices 0\.\.0\)"),
        ("scores[13]=aum", r"index 13 is out of range: scores has 13 entries \(indices 0\.\.12\)"),
        ("replicas[0].epochs=2", r"'replicas\[0\]\.epochs=2': replicas is a mapping, not a list"),
        ("scores[0].x=1", r"'scores\[0\]\.x=1': scores\[0\] is not a mapping \(it is 'confusion'\)"),
        ("evaluate.models.epochs=2",
         r"evaluate\.models is a list of 1: index it, e.g. evaluate\.models\[0\]\.epochs"),
        ("evaluate.models[-1].epochs=2", r"index \[-1\] must be a whole number >= 0"),
        ("shards.grad_epochs[0]=1", r"index 0 is out of range: shards\.grad_epochs has 2 entries"
                                    r"|^$"),
        ("score_options[0]=1", r"score_options is not set in the spec, so it has no entry to "
                               r"index"),
    ],
)  # fmt: skip
def test_set_index_errors_name_the_override_and_the_list(override, match):
    if override.startswith("shards.grad_epochs"):  # in range: no error
        assert load_spec(TINY, [override]).shards.grad_epochs == [1, 2]
        return
    spec = TINY if "scores[13]" not in override else DIGITS
    with pytest.raises(SpecError, match=match):
        load_spec(spec, [override])


@pytest.mark.slow
def test_the_built_wheel_ships_the_benchmarks_and_finds_them_by_name(tmp_path):
    """pyproject packages benchmarks/*.yaml: an installed wheel includes them by name too."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"  # a copy: building writes build/ next to pyproject.toml
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("engine", "jobs", "benchmarks"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "whl"), str(src)], check=True, capture_output=True)  # fmt: skip
    (wheel,) = (tmp_path / "whl").glob("hardbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "benchmarks").glob("*.yaml"))
    assert sorted(n.split("/", 1)[1] for n in names if n.startswith("benchmarks/")
                  and n.endswith(".yaml")) == shipped  # fmt: skip
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "mine.yaml").write_text(
        "include: fashion-mnist-pretrained\nmetadata: {name: mine}\n")  # fmt: skip
    code = ("import engine.spec as s; spec = s.load_spec('mine.yaml');"
            "print(s.__file__, s.benchmark_path('images').parent, spec.replicas.count)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "elsewhere", check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(site)}).stdout  # fmt: skip
    # the wheel's files, not the checkout's
    assert out.split() == [str(site / "engine" / "spec" / "__init__.py"), str(site / "benchmarks"),
                           "4"]  # fmt: skip
