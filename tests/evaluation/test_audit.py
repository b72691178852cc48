"""Label audit and relabelled versions, on a crafted run with known flipped labels."""

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.evaluation.audit import AUDIT_SCORES, detection_metrics, suspicion_percentile
from engine.lifecycle.audit import apply_verdicts, audit_run, read_verdicts, write_audit
from engine.spec import load_spec
from engine.tasks import load_data

NOISE = '{"fraction": 0.05, "kind": "uniform", "seed": 4}'


@pytest.fixture(scope="module")
def crafted_run(tmp_path_factory):
    """A run directory whose scores make the flipped samples the most suspicious on the
    training-dynamics scores; the out-of-fold scores are computed for real by the audit."""
    run = tmp_path_factory.mktemp("runs") / "crafted"
    run.mkdir()
    spec = load_spec("tests/fixtures/tiny.yaml", [f"data.label_noise={NOISE}"])
    (run / "spec.yaml").write_text(spec.to_yaml())
    data = load_data(spec)
    flipped = data.labels != data.clean_labels
    rng = np.random.default_rng(0)
    n = len(data.labels)
    jitter = rng.uniform(0, 1, size=n)
    pq.write_table(
        pa.table(
            {
                "sample_id": np.arange(n),
                "split": data.split,
                "label": data.labels,
                "action": flipped * 10 + jitter,
                "aum": -(flipped * 5.0) + jitter,
                "forgetting": flipped * 3 + jitter,
                "ensemble_pred": data.clean_labels,
            }
        ),
        run / "scores.parquet",
    )
    return run, data, flipped


def test_suspicion_percentiles_follow_the_score_direction():
    v = np.array([0.1, 0.9, 0.5, 0.5])
    np.testing.assert_allclose(suspicion_percentile(v, True), [0.25, 1.0, 0.625, 0.625])
    np.testing.assert_allclose(suspicion_percentile(v, False), [1.0, 0.25, 0.625, 0.625])


@pytest.fixture(scope="module")
def split_audit(crafted_run):
    """The default audit of the crafted run: each data split ranked on its own."""
    return audit_run(crafted_run[0], folds=3)


def test_audit_puts_the_flipped_labels_first(crafted_run, split_audit):
    _, data, flipped = crafted_run
    audit = split_audit
    t = audit.table
    assert t.num_rows == 1797 and audit.rankings == ["train", "heldout"]
    ranking = t.column("ranking").to_numpy(zero_copy_only=False)
    ids = t.column("sample_id").to_numpy()
    for name in ("train", "heldout"):  # one ranking per data split, most suspicious first
        rows = ranking == name
        np.testing.assert_array_equal(np.sort(ids[rows]), data.indices(name))
        assert set(t.column("split").to_numpy(zero_copy_only=False)[rows]) == {name}
        assert t.column("rank").to_numpy()[rows].tolist() == list(range(1, rows.sum() + 1))
        scores = t.column("audit_score").to_numpy()[rows]
        assert np.all(np.diff(scores) <= 0)
        m = int(flipped[ids[rows]].sum())
        assert m > 20 and flipped[ids[rows][:m]].mean() >= 0.95
    assert int(flipped.sum()) == 90
    metrics = detection_metrics(audit)
    assert metrics["audit_score"]["auroc"] > 0.99
    assert metrics["self_confidence_oof"]["auroc"] > 0.8  # real (tiny, 3-epoch) out-of-fold models


def test_each_split_is_ranked_and_estimated_within_itself(crafted_run, split_audit):
    """Percentiles, ranks and the confident-learning estimate of a split use its samples only,
    so they are what an audit of that split alone gives; pooling ranks everything together."""
    from cleanlab.count import num_label_issues as cl_num_label_issues

    from engine.evaluation.confident_learning import find_label_issues, num_label_issues

    run = crafted_run[0]
    t = split_audit.table
    ranking = t.column("ranking").to_numpy(zero_copy_only=False)
    labels = t.column("label").to_numpy()
    for name in ("train", "heldout"):
        rows = ranking == name
        expected = np.mean(
            [
                suspicion_percentile(t.column(s).to_numpy()[rows], AUDIT_SCORES[s])
                for s in split_audit.scores_used
            ],
            axis=0,
        )
        np.testing.assert_allclose(t.column("audit_score").to_numpy()[rows], expected)
        probs = split_audit.oof_probs[rows]
        est = split_audit.label_issues[name]
        assert est["num_label_issues"] == num_label_issues(labels[rows], probs)
        assert est["num_label_issues"] == cl_num_label_issues(
            labels[rows], probs, estimation_method="off_diagonal_calibrated"
        )
        np.testing.assert_array_equal(
            t.column("issue").to_numpy(zero_copy_only=False)[rows],
            find_label_issues(labels[rows], probs),
        )
        rate = split_audit.error_rates[name]
        assert rate["num_label_issues"] == est["num_label_issues"] and rate["samples"] == rows.sum()
        assert rate["ci95"][0] <= rate["rate"] <= rate["ci95"][1]
    # The held-out ranking is not a slice of the pooled one: percentiles are within the split.
    pooled = audit_run(run, folds=3, pool=True)
    pt = pooled.table
    assert pooled.rankings == ["pooled"] and set(pt.column("ranking").to_pylist()) == {"pooled"}
    assert pt.column("rank").to_pylist() == list(range(1, 1798))
    assert np.all(np.diff(pt.column("audit_score").to_numpy()) <= 0)
    assert set(pooled.error_rates) == {"train", "heldout"}  # still one rate per data split
    assert pooled.error_rates == split_audit.error_rates  # same folds: same probabilities
    held_ids = t.column("sample_id").to_numpy()[ranking == "heldout"]
    pooled_scores = dict(
        zip(pt.column("sample_id").to_pylist(), pt.column("audit_score").to_pylist(), strict=True)
    )
    assert not np.allclose(
        [pooled_scores[i] for i in held_ids],
        t.column("audit_score").to_numpy()[ranking == "heldout"],
    )
    only_held = audit_run(run, folds=3, split="heldout")
    assert only_held.rankings == ["heldout"]
    assert only_held.table.column("rank").to_pylist() == list(range(1, len(held_ids) + 1))


def _crafted_card(run_dir, data):
    """A benchmark card of the crafted run (held-out pool, no evaluated model)."""
    from engine.splits.builder import BuiltSplits
    from engine.splits.card import make_card, write_card

    spec = load_spec("tests/fixtures/tiny.yaml", [f"data.label_noise={NOISE}"])
    held = data.indices("heldout")
    score = np.linspace(0.0, 1.0, len(held))
    built = BuiltSplits(
        sample_ids=held, labels=data.labels[held], score=score, bins=(score * 4.999).astype(int),
        is_hard=score > 0.9, bin_edges=np.linspace(0, 1, 6)[:, None].repeat(2, 1)[:5], files={},
    )  # fmt: skip
    scores = pa.table({"sample_id": held, "split": data.split[held], "label": data.labels[held],
                       "confusion": score})  # fmt: skip
    card = make_card(
        spec_dict=spec.to_dict(), run_id="crafted", seeds={}, scores=scores, score_names=["confusion"],
        provenance={"git": {"commit": "x", "dirty": False}, "packages": {}}, built=built,
        class_names=data.class_names, evaluations=[], timings={},
        scored_on={"replicas": [0], "epochs": [0], "complete": True},
    )  # fmt: skip
    return write_card(run_dir, card)


def test_audit_writes_estimates_oof_probs_and_the_card(crafted_run, split_audit, tmp_path):
    _, data, flipped = crafted_run
    audit = split_audit
    card_paths = _crafted_card(tmp_path, data)
    card_md_before = card_paths["md"].read_text()
    out = write_audit(tmp_path, audit, class_names=data.class_names, inputs=data.inputs, top=25)
    rows = list(csvrows(out / "audit.csv"))
    assert len(rows) == 1797 and rows[0]["rank"] == "1" and rows[0]["ranking"] == "train"
    first_held = next(r for r in rows if r["ranking"] == "heldout")
    assert first_held["rank"] == "1" and first_held["split"] == "heldout"
    issue = audit.table.column("issue").to_pylist()
    assert [r["issue"] == "True" for r in rows] == issue and 0 < sum(issue) < 1797
    # out-of-fold probabilities, in sample-id order
    oof = pq.read_table(out / "oof_probs.parquet")
    assert oof.schema.field("sample_id").type == pa.int64()
    assert oof.schema.field("label").type == pa.int64()
    assert oof.schema.field("probs").type == pa.list_(pa.float64())
    np.testing.assert_array_equal(oof.column("sample_id").to_numpy(), np.arange(1797))
    np.testing.assert_array_equal(oof.column("label").to_numpy(), data.labels)
    probs = np.array(oof.column("probs").to_pylist())
    order = audit.table.column("sample_id").to_numpy()
    np.testing.assert_array_equal(probs[order], audit.oof_probs)
    # audit.json: the estimate in total, per class name and per ranking, and the rates
    meta = json.loads((out / "audit.json").read_text())
    assert meta["injected_noise_detection"]["audit_score"]["precision_at_m"] >= 0.95
    counts = meta["num_label_issues"]
    assert counts["total"] == sum(e["num_label_issues"] for e in audit.label_issues.values())
    assert list(counts["per_class"]) == data.class_names
    assert sum(counts["per_class"].values()) == counts["total"]
    assert (
        counts["by_ranking"]["heldout"]["total"]
        == audit.label_issues["heldout"]["num_label_issues"]
    )
    rates = meta["label_error_rate"]
    assert set(rates) == {"train", "heldout"}
    assert rates["heldout"]["ci95"][0] <= rates["heldout"]["rate"] <= rates["heldout"]["ci95"][1]
    detect = meta["confident_learning_detection"]
    assert detect["heldout"]["injected"] == int(flipped[data.indices("heldout")].sum())
    # the page: one section per ranking with the estimate, the flagged rows marked
    page = (out / "audit.html").read_text()
    assert page.count("<img ") == 50 and "hardbench relabel" in page
    for name in ("train", "heldout"):
        n = audit.label_issues[name]["num_label_issues"]
        assert (
            f"About {n} labels look wrong (confident learning); the top {n} are listed first"
            in page
        )
    assert 'class="disagree issue"' in page or 'class="issue"' in page
    # the card: the held-out estimate and its interval, nothing else changed
    card = json.loads(card_paths["json"].read_text())
    errors = card["label_errors"]
    assert errors["split"] == "heldout" and errors["audit"] == f"audit/{out.name}"
    assert errors["rate"] == rates["heldout"]["rate"] and errors["ci95"] == rates["heldout"]["ci95"]
    card_md = card_paths["md"].read_text()
    line = next(x for x in card_md.splitlines() if x.startswith("About "))
    assert f"{100 * errors['rate']:.1f}% of the heldout labels look wrong (95% CI" in line
    assert card_md.replace("\n## Label errors\n\n" + line + "\n", "") == card_md_before


def test_an_audit_of_training_samples_leaves_the_card_alone(crafted_run, tmp_path):
    run, data, _ = crafted_run
    card_paths = _crafted_card(tmp_path, data)
    before = card_paths["json"].read_bytes()
    audit = audit_run(run, folds=3, split="train")
    write_audit(tmp_path, audit, class_names=data.class_names, inputs=data.inputs, top=5)
    assert card_paths["json"].read_bytes() == before


def test_cli_audit_pools_only_on_request(crafted_run, capsys):
    from engine.cli import main

    run, _, _ = crafted_run
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    assert "--pool" in capsys.readouterr().out
    assert main(["audit", str(run), "--folds", "3", "--top", "3", "--pool"]) == 0
    printed = capsys.readouterr().out
    assert (
        "ranking pooled: about " in printed and "labels look wrong (confident learning)" in printed
    )
    newest = sorted((run / "audit").iterdir())[-1]
    rows = list(csvrows(newest / "audit.csv"))
    assert {r["ranking"] for r in rows} == {"pooled"}
    assert [int(r["rank"]) for r in rows] == list(range(1, 1798))
    meta = json.loads((newest / "audit.json").read_text())
    assert meta["rankings"] == ["pooled"] and set(meta["label_error_rate"]) == {"train", "heldout"}


def csvrows(path):
    import csv

    with open(path, newline="") as fh:
        yield from csv.DictReader(fh)


def test_relabel_round_trip_keeps_the_original(crafted_run, tmp_path):
    run, data, flipped = crafted_run
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.rglob("*") if p.is_file()}
    ids = np.flatnonzero(flipped)[:3]
    verdicts = tmp_path / "v.csv"
    verdicts.write_text(
        "sample_id,verdict,corrected_label\n"
        f"{ids[0]},relabel,{data.clean_labels[ids[0]]}\n"
        f"{ids[1]},relabel,{data.clean_labels[ids[1]]}\n"
        f"{ids[2]},remove,\n"
        "0,keep,\n"
    )
    out = apply_verdicts(run, verdicts)
    assert out["version"] == "v1" and (out["relabelled"], out["removed"], out["kept"]) == (2, 1, 1)
    labels = pq.read_table(out["dir"] / "labels.parquet")
    np.testing.assert_array_equal(labels.column("original_label").to_numpy(), data.labels)
    new = labels.column("label").to_numpy()
    assert list(np.flatnonzero(new != data.labels)) == sorted(ids[:2])
    assert new[ids[0]] == data.clean_labels[ids[0]]
    assert labels.column("removed").to_pylist().count(True) == 1
    card = json.loads((out["dir"] / "card.json").read_text())
    assert card["parent"] == "original" and card["labels_changed_vs_original"] == 2
    for path, digest in before.items():  # nothing of the run was touched
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    # A second review builds v2 on v1, and v1 stays as it was.
    verdicts.write_text(
        f"sample_id,verdict,corrected_label\n{ids[0]},relabel,{data.labels[ids[0]]}\n"
    )
    v1 = (out["dir"] / "labels.parquet").read_bytes()
    out2 = apply_verdicts(run, verdicts)
    assert out2["version"] == "v2" and (out["dir"] / "labels.parquet").read_bytes() == v1
    v2 = pq.read_table(out2["dir"] / "labels.parquet").column("label").to_numpy()
    assert (v2 != data.labels).sum() == 1 and json.loads((out2["dir"] / "card.json").read_text())[
        "parent"
    ] == "v1"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("sample_id,verdict\n5000,keep\n", "line 2: sample_id 5000 is not in"),
        ("sample_id,verdict\n3,fix\n", "line 2: verdict 'fix' is not one of keep, relabel, remove"),
        (
            "sample_id,verdict,corrected_label\n3,relabel,12\n",
            r"line 2: relabel needs corrected_label in \[0, 10\)",
        ),
        ("sample_id,verdict\n3,keep\n3,remove\n", "line 3: sample_id 3 has a verdict already"),
        ("id,verdict\n3,keep\n", "missing column"),
    ],
)
def test_bad_verdict_files_name_the_line(tmp_path, body, match):
    path = tmp_path / "v.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=match):
        read_verdicts(path, num_samples=1797, num_classes=10)


def test_label_noise_flips_exactly_the_asked_share():
    from engine.data.sources import flip_labels

    labels = np.repeat(np.arange(10), 100)
    noisy, mask = flip_labels(labels, fraction=0.2, kind="uniform", seed=0, num_classes=10)
    assert (
        mask.sum() == 200
        and np.all(noisy[mask] != labels[mask])
        and np.all(noisy[~mask] == labels[~mask])
    )
    conf = [3, 7, 3, 5, 9, 3, 5, 1, 3, 4]
    noisy, mask = flip_labels(
        labels, fraction=0.1, kind="class_conditional", seed=1, num_classes=10, confusable=conf
    )
    np.testing.assert_array_equal(noisy[mask], np.asarray(conf)[labels[mask]])
