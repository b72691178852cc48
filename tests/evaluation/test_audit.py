"""Label audit and relabelled versions, on a crafted run with known flipped labels."""

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.evaluation.audit import detection_metrics, suspicion_percentile
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


def test_audit_puts_the_flipped_labels_first(crafted_run, tmp_path):
    run, data, flipped = crafted_run
    audit = audit_run(run, folds=3)
    t = audit.table
    assert t.num_rows == 1797 and t.column("rank").to_pylist() == list(range(1, 1798))
    scores = t.column("audit_score").to_numpy()
    assert np.all(np.diff(scores) <= 0)  # most suspicious first
    m = int(flipped.sum())
    assert m == 90
    top_ids = t.column("sample_id").to_numpy()[:m]
    assert flipped[top_ids].mean() >= 0.95
    metrics = detection_metrics(audit)
    assert metrics["audit_score"]["auroc"] > 0.99
    assert metrics["self_confidence_oof"]["auroc"] > 0.8  # real (tiny, 3-epoch) out-of-fold models
    out = write_audit(run, audit, class_names=data.class_names, inputs=data.inputs, top=25)
    rows = list(csvrows(out / "audit.csv"))
    assert len(rows) == 1797 and rows[0]["rank"] == "1"
    page = (out / "audit.html").read_text()
    assert page.count("<img ") == 25 and "hardbench relabel" in page
    meta = json.loads((out / "audit.json").read_text())
    assert meta["injected_noise_detection"]["audit_score"]["precision_at_m"] >= 0.95


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
