"""``variability`` measures ambiguity, not hardness: it is computed, but cuts no hard split (issue 27).

Data maps (Swayamdipta et al., 2020): hard-to-learn samples have low confidence and
low variability; high variability marks the ambiguous ones. A hard split "by
variability" would be the most ambiguous samples under the name of the hardest, so
the spec refuses it, before any Ray work, with a line that names the data-map regions
and the scores to use instead; variability stays a score column.
"""

import subprocess
import sys

import pytest

from engine.scores import get_score, list_scores
from engine.scores.multilabel_registry import get_multilabel_score
from engine.scores.registry import AMBIGUITY, HARDNESS, VARIABILITY_NOT_HARDNESS
from engine.spec import SpecError, load_spec
from tests.spec.test_loader import DIGITS

WHY = ("variability measures ambiguity, not hardness", "hard-to-learn samples have low confidence "
       "and low variability, ambiguous ones high variability",
       "cut the hard split by confidence, correctness, aum or confusion")  # fmt: skip


def test_variability_is_registered_as_ambiguity_and_every_other_score_as_hardness():
    info = get_score("variability")
    assert info.measures == AMBIGUITY and info.direction == "higher = more ambiguous"
    assert {n for n in list_scores() if get_score(n).measures != HARDNESS} == {"variability"}
    assert get_multilabel_score("variability").measures == AMBIGUITY
    assert get_multilabel_score("variability").not_hardness == VARIABILITY_NOT_HARDNESS
    with pytest.raises(ValueError) as err:
        info.refuse_as_hardness()
    assert all(part in str(err.value) for part in WHY)
    get_score("confidence").refuse_as_hardness()  # a hardness score: nothing to refuse


@pytest.mark.parametrize(
    "overrides",
    [
        ["splits.score=variability"],
        ["splits.score=variability", "scores=[confusion, confidence]"],  # not even computed
        ["splits.score=variability", "splits.hard={hardest_fraction: null, top_fraction: 0.2}"],
    ],
)
def test_a_hard_split_by_variability_is_refused_naming_the_data_map_regions(overrides):
    with pytest.raises(SpecError) as err:
        load_spec(DIGITS, overrides)
    message = str(err.value)
    assert "splits.score: variability measures ambiguity" in message
    assert all(part in message for part in WHY)
    assert "\n" not in message


def test_variability_stays_a_computed_score_beside_a_hardness_split():
    spec = load_spec(DIGITS, ["splits.score=confidence"])
    assert "variability" in spec.scores and spec.splits.score == "confidence"


def test_hardbench_validate_refuses_it_before_ray_is_imported():
    code = (
        "import sys\n"
        "from engine.cli import main\n"
        f"rc = main(['validate', {str(DIGITS)!r}, '--set', 'splits.score=variability'])\n"
        "print('RC', rc, 'RAY', 'ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RC 2 RAY False" in out.stdout, out.stdout + out.stderr
    assert "splits.score: variability measures ambiguity, not hardness" in out.stderr
