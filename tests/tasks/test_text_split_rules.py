"""The split rules QA and seq2seq specs take since they go through the shared split builder (issue 25).

Every hard rule, bin edges, any pool and the ``hf`` export are accepted; what has no
meaning for texts without classes (a per-class rule, image folders), ``label_free``
(the samples always carry their answers) and a mitigation are refused, each naming
its field.
"""

from pathlib import Path

import pytest

from engine.spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[2]
QA = ROOT / "tests" / "fixtures" / "tiny-qa.yaml"
S2S = ROOT / "tests" / "fixtures" / "tiny-seq2seq.yaml"


@pytest.mark.parametrize(
    ("path", "overrides", "check"),
    [
        (QA, ["splits.hard={min_score: 9.5}"], lambda s: s.splits.hard.rule == "min_score"),
        (
            QA,
            ["splits.score=aum", "splits.hard={max_score: -0.1}"],
            lambda s: (s.splits.hard.rule, s.splits.hard.value) == ("max_score", -0.1),
        ),
        (S2S, ["splits.hard={top_fraction: 0.3}"], lambda s: s.splits.hard.rule == "top_fraction"),
        (
            S2S,
            ["splits.score=aum", "splits.hard={bottom_fraction: 0.3}"],
            lambda s: s.splits.hard.rule == "bottom_fraction",
        ),
        (
            QA,
            ["splits.bins={edges: [9.56, 9.57]}"],
            lambda s: s.splits.bins.edges == [9.56, 9.57] and s.splits.bins.count == 3,
        ),
        (S2S, ["splits.exports=[parquet, hf]"], lambda s: s.splits.exports == ["parquet", "hf"]),
        (QA, ["splits.pool=train"], lambda s: s.splits.pool == "train"),
        (S2S, ["splits.pool=all"], lambda s: s.splits.pool == "all"),
    ],
)
def test_text_specs_take_every_hard_rule_bin_edges_any_pool_and_the_hf_export(
    path, overrides, check
):
    assert check(load_spec(path, overrides))


@pytest.mark.parametrize(
    ("path", "overrides", "match"),
    [
        (
            QA,
            ["splits.hard={hardest_fraction: 0.2, per_class: true}"],
            r"splits\.hard\.per_class: qa samples have no classes to cut the hard split within",
        ),
        (
            S2S,
            ["splits.exports=[parquet, imagefolder]"],
            r"splits\.exports\[1\]: imagefolder writes images sorted by class; seq2seq samples "
            r"are texts without classes: export parquet or hf",
        ),
        (
            QA,
            ["splits.label_free=true"],
            r"splits\.label_free: qa samples always carry their answers: the replicas train on "
            r"them and every evaluated model is measured against them",
        ),
        (
            S2S,
            ["splits.label_free=true"],
            r"splits\.label_free: seq2seq samples always carry their references",
        ),
        (
            QA,
            [
                "evaluate.models=[{name: reader, dim: 32, layers: 1, heads: 2, epochs: 2, "
                "mitigation: {method: groupdro}}]"
            ],
            r"evaluate\.models\[0\]\.mitigation: reweights per-sample losses in the "
            r"classification training loop; qa models train without one",
        ),
        # the shared direction check: max_score on confusion would call the easiest hard
        (QA, ["splits.hard={max_score: 9.5}"], r"splits\.hard\.max_score: keeps confusion <= 9\.5"),
    ],
)
def test_what_has_no_meaning_for_texts_is_refused_naming_the_field(path, overrides, match):
    with pytest.raises(SpecError, match=match):
        load_spec(path, overrides)
