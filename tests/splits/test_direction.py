"""Score direction everywhere (issue 14): "hard" is the hardest by each score's own direction.

Every registered score gets a column that ranks a crafted pool exactly like the
confusion column does, read in that score's direction (a lower-is-harder score is a
decreasing function of the same latent difficulty). Hard split, bins, AUROC, Pearson
rho, Kendall tau, mitigation order and the report's ordering must then agree with
confusion's for every score.
"""

import numpy as np
import pyarrow as pa
import pytest

from engine.data import ClassificationData
from engine.evaluation.evaluate import evaluate_predictions, top1_quality
from engine.evaluation.transfer import transfer_metrics
from engine.scores import get_score, hardness, list_scores
from engine.scores.registry import HARDNESS
from engine.spec import BinsSpec, HardSpec, SpecError, SplitsSpec, load_spec
from engine.spec.common import FieldError
from engine.splits.builder import build_splits
from engine.splits.samples import classification_samples
from tests.spec.test_loader import DIGITS

N, K = 80, 4


def _as_score(name: str, difficulty: np.ndarray) -> np.ndarray:
    """A monotone transform of the difficulty that points the way ``name`` points."""
    return 2.0 * difficulty + 1.0 if get_score(name).higher_is_harder else 5.0 - 3.0 * difficulty


@pytest.fixture(scope="module")
def crafted():
    rng = np.random.default_rng(4)
    difficulty = rng.permutation(N) / N  # distinct: no ties anywhere
    labels = np.arange(N) % K
    data = ClassificationData(
        name="crafted",
        inputs=rng.random((N, 1, 2, 2)).astype(np.float32),
        labels=labels,
        split=np.array(["heldout"] * 60 + ["train"] * 20),
        class_names=[f"c{k}" for k in range(K)],
    )
    columns = {name: pa.array(_as_score(name, difficulty)) for name in list_scores()}
    table = pa.table(
        {
            "sample_id": pa.array(np.arange(N)),
            "split": pa.array(data.split),
            "label": pa.array(labels),
            **columns,
        }
    )
    # A model that errs on the hardest held-out samples, and once on an easy one.
    pool = np.arange(60)
    preds = labels[pool].copy()
    wrong = (difficulty[pool] > 0.7) | (pool == int(np.argmin(difficulty[pool])))
    preds[wrong] = (preds[wrong] + 1) % K
    # A larger model whose predicted distribution flattens as difficulty grows.
    logits = np.zeros((60, K))
    logits[np.arange(60), labels[pool]] = 6.0 * (1.0 - difficulty[pool])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return data, table, difficulty, preds, probs


@pytest.mark.parametrize("name", list_scores())
def test_every_score_cuts_the_hardest_samples_and_ranks_metrics_like_confusion(
    tmp_path, crafted, name
):
    data, table, difficulty, preds, probs = crafted
    ref = build_splits(
        tmp_path / "ref", SplitsSpec(score="confusion"), classification_samples(data), table
    )
    built = build_splits(
        tmp_path / name, SplitsSpec(score=name), classification_samples(data), table
    )
    pool_difficulty = difficulty[built.sample_ids]
    hardest = np.argsort(-pool_difficulty)[:6]  # the default rule: hardest 10% of 60
    assert set(np.flatnonzero(built.is_hard)) == set(hardest)
    np.testing.assert_array_equal(built.bins, ref.bins)
    assert pool_difficulty[built.bins == 0].max() < pool_difficulty[built.bins == 4].min()
    np.testing.assert_array_equal(built.hardness.argsort(), ref.hardness.argsort())
    quality, miss = top1_quality(name, built.labels, preds)
    ev = evaluate_predictions(name, built, quality=quality, miss=miss)
    quality, miss = top1_quality("confusion", ref.labels, preds)
    ev_ref = evaluate_predictions("confusion", ref, quality=quality, miss=miss)
    assert ev["auroc_score_error"] == pytest.approx(ev_ref["auroc_score_error"])
    assert ev["auroc_score_error"] > 0.9
    assert ev["pearson_rho"] == pytest.approx(ev_ref["pearson_rho"]) and ev["pearson_rho"] > 0.7
    assert ev["error_hard"] == ev_ref["error_hard"] == 1.0
    tau = transfer_metrics(built, {"big": probs}, "test")["kendall_tau_small_large"]
    tau_ref = transfer_metrics(ref, {"big": probs}, "test")["kendall_tau_small_large"]
    assert tau == pytest.approx(tau_ref) and tau > 0.9


@pytest.mark.parametrize("name", ["aum", "confidence", "ensemble_margin"])
def test_thresholds_fixed_edges_and_per_class_rules_follow_the_direction(tmp_path, crafted, name):
    data, table, _, _, _ = crafted
    edges = [0.25, 0.5, 0.75]  # in units of the difficulty
    score_edges = sorted(_as_score(name, np.array(edges)).tolist())
    rules = [
        (HardSpec(min_score=float(_as_score("confusion", np.array(0.8)))),
         HardSpec(max_score=float(_as_score(name, np.array(0.8))))),
        (HardSpec(hardest_fraction=0.2, per_class=True, min_per_class=2),
         HardSpec(hardest_fraction=0.2, per_class=True, min_per_class=2)),
        (HardSpec(top_fraction=0.2), HardSpec(bottom_fraction=0.2)),
    ]  # fmt: skip
    for i, (ref_rule, rule) in enumerate(rules):
        ref = build_splits(
            tmp_path / f"ref{i}",
            SplitsSpec(score="confusion", hard=ref_rule, bins=BinsSpec(edges=score_edges_of("confusion", edges))),
            classification_samples(data), table,
        )  # fmt: skip
        built = build_splits(
            tmp_path / f"{name}{i}",
            SplitsSpec(score=name, hard=rule, bins=BinsSpec(edges=score_edges)),
            classification_samples(data),
            table,
        )
        np.testing.assert_array_equal(built.is_hard, ref.is_hard)
        np.testing.assert_array_equal(built.bins, ref.bins)  # bin 0 = easiest for both


def score_edges_of(name, edges):
    return sorted(_as_score(name, np.array(edges)).tolist())


@pytest.mark.parametrize("name", list_scores())
@pytest.mark.parametrize(
    "rule", ["hardest_fraction", "top_fraction", "bottom_fraction", "min_score", "max_score"]
)
def test_a_rule_that_would_call_the_easiest_samples_hard_is_refused(name, rule):
    value = 0.1
    overrides = [f"splits.score={name}", f"splits.hard={{hardest_fraction: null, {rule}: {value}}}"]
    if not get_score(name).needs_labels:
        overrides.append("splits.label_free=false")
    if get_score(name).measures != HARDNESS:  # variability: ambiguity, whatever the rule
        with pytest.raises(SpecError, match=r"splits\.score: variability measures ambiguity"):
            load_spec(DIGITS, overrides)
        return
    higher = get_score(name).higher_is_harder
    easy = {"top_fraction": not higher, "min_score": not higher,
            "bottom_fraction": higher, "max_score": higher}.get(rule, False)  # fmt: skip
    if not easy:
        spec = load_spec(DIGITS, overrides)
        assert spec.splits.hard.rule == rule
        direction = get_score(name).direction
        assert spec.splits.describe(direction).endswith(f"({direction})")
        return
    with pytest.raises(SpecError) as err:
        load_spec(DIGITS, overrides)
    message = str(err.value)
    assert f"splits.hard.{rule}:" in message and "easiest samples" in message
    assert f"({name}: {get_score(name).direction})" in message


def test_mitigation_orders_training_samples_by_the_scores_direction(tmp_path):
    import pyarrow.parquet as pq
    import torch

    from engine.distributed.models import mitigation_for
    from engine.spec import EvalModelSpec, MitigationSpec
    from engine.spec.model_recipes import TrainRecipe

    aum = np.array([3.0, -2.0, 1.0, 2.5, -1.0, 0.5, 2.0, -0.5, 1.5, 0.0])  # low AUM = hard
    pq.write_table(pa.table({"sample_id": np.arange(10), "aum": aum}), tmp_path / "scores.parquet")
    idx = np.arange(10)

    def mitigation(method, **options):
        model = EvalModelSpec(
            name="m", recipe=TrainRecipe(model="mlp", epochs=4),
            mitigation=MitigationSpec(method=method, score="aum", **options),
        )  # fmt: skip
        return mitigation_for(tmp_path, model, idx, num_classes=10)

    curriculum = mitigation("curriculum", start_fraction=0.3)
    first = curriculum.epoch_order(0, 4, torch.Generator().manual_seed(0)).tolist()
    assert sorted(first) == [0, 3, 6]  # the three highest AUM: the easiest
    upsample = mitigation("upsample", hard_fraction=0.2, factor=3.0)
    order = upsample.epoch_order(0, 4, torch.Generator().manual_seed(0)).tolist()
    assert {i for i in order if order.count(i) == 3} == {1, 4}  # the two lowest AUM
    groups = mitigation("groupdro", groups=2)._groups
    assert set(np.flatnonzero(groups == 1)) == set(np.argsort(aum)[:5])  # group 1 = hardest half
    fixed = mitigation("groupdro", group_edges=[0.0, 2.0])._groups  # AUM edges, low = hard
    np.testing.assert_array_equal(
        fixed, np.select([aum <= 0, aum <= 2.0], [2, 1], 0)
    )  # on an edge: harder
    with pytest.raises(ValueError, match=r"leave group\(s\) \[0\] empty"):
        mitigation("groupdro", group_edges=[5.0])  # no training sample above AUM 5


def test_groupdro_on_the_papers_two_confusion_bands(tmp_path):
    import pyarrow.parquet as pq

    from engine.distributed.models import mitigation_for
    from engine.spec import EvalModelSpec, MitigationSpec
    from engine.spec.model_recipes import TrainRecipe

    conf = np.array([0.1, 1.2, 0.5, 2.0, 1.1512925, 1.1512926])  # ln 10 / 2 = 1.15129...
    pq.write_table(pa.table({"sample_id": np.arange(6), "confusion": conf}),
                   tmp_path / "scores.parquet")  # fmt: skip
    model = EvalModelSpec(name="m", recipe=TrainRecipe(model="mlp", epochs=2),
                          mitigation=MitigationSpec(method="groupdro", group_edges="half"))  # fmt: skip
    dro = mitigation_for(tmp_path, model, np.arange(6), num_classes=10)
    np.testing.assert_array_equal(dro._groups, [0, 1, 0, 1, 0, 1])
    assert len(dro.dro.q) == 2
    with pytest.raises(FieldError, match="'half' splits confusion at ln K / 2"):
        MitigationSpec(method="groupdro", score="aum", group_edges="half")
    with pytest.raises(FieldError, match="applies to groupdro, not 'upsample'"):
        MitigationSpec(method="upsample", group_edges=[1.0])


def test_text_comparison_and_report_read_every_score_in_its_direction():
    from engine.evaluation.score_comparison import compare_scores
    from engine.tracking.report import hardest_first

    rng = np.random.default_rng(1)
    d = rng.random(50)
    table = pa.table(
        {
            "sample_id": np.arange(50),
            "split": ["heldout"] * 50,
            "confusion": d,
            "action": 3 * d,
            "aum": -4 * d,
            "confidence": 1 - d,
        }
    )
    miss = d > 0.6
    aucs = compare_scores(table, np.arange(50), {"m": miss})["auroc"]["m"]
    assert aucs["aum"] == aucs["confidence"] == aucs["confusion"] == 1.0
    labels = np.zeros(50, int)
    np.testing.assert_array_equal(
        hardest_first(labels, -4 * d, "aum", 0), hardest_first(labels, d, "confusion", 0)
    )
    assert hardest_first(labels, -4 * d, "aum", 0)[0] == int(np.argmax(d))
    assert np.all(np.diff(hardness("aum", -4 * d)[hardest_first(labels, -4 * d, "aum", 0)]) <= 0)
