"""The answer audit of QA and seq2seq runs: ranked by training dynamics, scored on known errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pytest

from engine.evaluation.audit import POOLED
from engine.evaluation.text_audit import build_text_audit, detection_by_ranking


def _crafted(n: int = 40) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Scores where every 5th sample's answer is wrong: high action, low AUM."""
    rng = np.random.default_rng(0)
    corrupted = np.arange(n) % 5 == 0
    action = rng.uniform(0, 1, n) + 2 * corrupted
    aum = rng.uniform(0, 1, n) - 2 * corrupted
    split = np.where(np.arange(n) < n // 2, "train", "heldout")
    table = pa.table({"sample_id": np.arange(n), "action": action, "aum": aum})
    return table, split, corrupted


def test_each_split_is_ranked_on_its_own_with_the_wrong_answers_first():
    scores, split, corrupted = _crafted()
    audit = build_text_audit(scores, split, np.arange(40), corrupted)
    assert audit.scores_used == ["action", "aum"] and audit.rankings == ["train", "heldout"]
    rows = audit.table.to_pylist()
    for name in ("train", "heldout"):
        mine = [r for r in rows if r["ranking"] == name]
        assert [r["rank"] for r in mine] == list(range(1, 21))
        assert all(r["split"] == name for r in mine)
        assert all(r["flipped"] for r in mine[:4]) and not any(r["flipped"] for r in mine[4:])
    detection = detection_by_ranking(audit)
    for name in ("train", "heldout"):
        assert detection[name]["corrupted"] == {"count": 4, "samples": 20}
        for score in ("action", "aum", "audit_score"):
            assert detection[name][score] == {"precision_at_m": 1.0, "auroc": 1.0}
    pooled = build_text_audit(scores, split, np.arange(40), corrupted, pool=True)
    assert pooled.rankings == [POOLED]
    assert pooled.table.column("rank").to_pylist() == list(range(1, 41))
    without = build_text_audit(scores, split, np.arange(20, 40), None)
    assert without.rankings == ["heldout"] and "flipped" not in without.table.column_names
    with pytest.raises(ValueError, match="none of action, aum, forgetting"):
        build_text_audit(pa.table({"sample_id": [0, 1]}), split[:2], np.arange(2), None)


@pytest.mark.ray
@pytest.mark.slow
def test_hardbench_audit_finds_wrong_qa_spans_in_a_real_run(
    ray_local, tmp_path, no_tracking_env, capsys
):
    from engine.cli import main
    from engine.lifecycle import run_benchmark
    from engine.spec import load_spec

    spec = load_spec(
        "tests/fixtures/tiny-qa.yaml",
        ["data.label_noise={fraction: 0.2, seed: 1}", "evaluate.models=[]"],
    )
    result = run_benchmark(spec, runs_dir=tmp_path, run_id="noisy", log=lambda line: None)
    assert main(["audit", str(result.run_dir), "--top", "10"]) == 0
    out = capsys.readouterr().out
    assert "audited 240 answers on action, aum, forgetting" in out
    folder = next((result.run_dir / "audit").iterdir())
    meta = json.loads((folder / "audit.json").read_text())
    assert meta["rankings"] == ["train", "heldout"]
    detection = meta["injected_noise_detection"]
    assert sum(d["corrupted"]["count"] for d in detection.values()) == 48  # 20% of 240
    # The replicas trained on the wrong spans: their loss on them stays high.
    assert detection["train"]["action"]["auroc"] > 0.6
    with open(folder / "audit.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 240 and {"asked", "given_answer", "ensemble_answer"} <= set(rows[0])
    corrupted = {int(r["sample_id"]) for r in rows if r["flipped"] == "True"}
    assert len(corrupted) == 48
    page = (folder / "audit.html").read_text()
    assert page.count('class="corrupted"') == len(
        [r for r in rows if r["flipped"] == "True" and int(r["rank"]) <= 10]
    )
