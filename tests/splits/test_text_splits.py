"""QA and seq2seq splits cut by the shared split builder, on the tiny corpora and a crafted score table.

A threshold rule, fixed bin edges, another pool and the ``hf`` export must do for texts
what they do for classification; each split file carries its samples' texts, and the
``DatasetDict`` saved to disk holds exactly the rows of the Parquet files.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.spec import load_spec
from engine.splits.builder import build_splits
from engine.splits.samples import SplitSamples
from engine.tasks import get_task, load_data
from engine.tasks.base import RunContext

ROOT = Path(__file__).resolve().parents[2]
QA = ROOT / "tests" / "fixtures" / "tiny-qa.yaml"
S2S = ROOT / "tests" / "fixtures" / "tiny-seq2seq.yaml"


def _scores(split: np.ndarray, seed: int) -> pa.Table:
    """Distinct crafted scores: confusion in nats (higher = harder), AUM (lower = harder)."""
    rng = np.random.default_rng(seed)
    n = len(split)
    confusion = 9.0 + rng.permutation(n) / n
    return pa.table({
        "sample_id": pa.array(np.arange(n)),
        "split": pa.array(split),
        "label": pa.array(np.zeros(n, np.int64)),
        "confusion": pa.array(confusion),
        "action": pa.array(rng.random(n) * 10),
        "aum": pa.array(0.5 - (confusion - 9.0) + 0.01 * rng.random(n)),
    })  # fmt: skip


def _build(path: Path, overrides: list[str], run_dir: Path, seed: int = 0):
    spec = load_spec(path, overrides)
    data = load_data(spec)
    scores = _scores(np.asarray(data.split), seed)
    ctx = RunContext(run_dir=run_dir, run_id="t", spec=spec, data=data, log=lambda line: None)
    return spec, data, scores, get_task(spec.task.name).runtime().build_splits(ctx, scores)


def _hf_equals_parquet(built) -> None:
    from datasets import load_from_disk

    hf = load_from_disk(str(built.files["hf"]))
    parquet = {name: path for name, path in built.files.items() if name not in ("hf",)}
    assert set(hf) == set(parquet)
    for name, path in parquet.items():
        table = pq.read_table(path)
        assert hf[name].column_names == table.column_names, name
        assert hf[name].to_dict() == table.to_pydict(), name


def test_qa_threshold_rule_bin_edges_all_samples_and_the_hf_export(tmp_path):
    overrides = ["splits.pool=all", "splits.hard={min_score: 9.8}",
                 "splits.bins={edges: [9.3, 9.6]}", "splits.exports=[parquet, hf]"]  # fmt: skip
    _, data, scores, built = _build(QA, overrides, tmp_path)
    conf = scores.column("confusion").to_numpy()
    np.testing.assert_array_equal(built.sample_ids, np.arange(len(data.split)))  # pool: all
    np.testing.assert_array_equal(built.is_hard, conf >= 9.8)
    np.testing.assert_array_equal(built.bins, (conf >= 9.3).astype(int) + (conf >= 9.6))
    assert built.labels is None  # QA has no classes
    pool = pq.read_table(built.files["pool"])
    assert pool.column_names == ["sample_id", "confusion", "action", "bin", "is_hard",
                                 "question", "context", "answer"]  # fmt: skip
    hard = pq.read_table(built.files["hard"])
    ids = hard.column("sample_id").to_numpy()
    np.testing.assert_array_equal(ids, np.flatnonzero(conf >= 9.8))
    assert hard.column("question").to_pylist() == [data.questions[i] for i in ids]
    assert hard.column("answer").to_pylist() == [data.answers[i] for i in ids]
    assert hard.column("context").to_pylist() == [data.contexts[i] for i in ids]
    for b in range(3):
        got = pq.read_table(built.files[f"bin_{b}"]).column("sample_id").to_numpy()
        np.testing.assert_array_equal(got, np.flatnonzero(built.bins == b))
    _hf_equals_parquet(built)


def test_seq2seq_lower_is_harder_threshold_on_the_training_pool(tmp_path):
    overrides = ["splits.pool=train", "splits.score=aum", "splits.hard={max_score: 0.0}",
                 "splits.bins={count: 4}", "splits.exports=[parquet, hf]"]  # fmt: skip
    _, data, scores, built = _build(S2S, overrides, tmp_path, seed=1)
    train = np.flatnonzero(np.asarray(data.split) == "train")
    aum = scores.column("aum").to_numpy()[train]
    np.testing.assert_array_equal(built.sample_ids, train)
    np.testing.assert_array_equal(built.is_hard, aum <= 0.0)
    # equal-count bins from the easiest (highest AUM) to the hardest
    assert np.bincount(built.bins).max() - np.bincount(built.bins).min() <= 1
    assert aum[built.bins == 0].min() > aum[built.bins == 3].max()
    pool = pq.read_table(built.files["pool"])
    assert pool.column_names == ["sample_id", "confusion", "action", "aum", "bin", "is_hard",
                                 "source", "reference", "references"]  # fmt: skip
    assert pool.column("references").to_pylist() == [data.references[i] for i in train]
    _hf_equals_parquet(built)


def test_the_default_rule_cuts_what_the_text_tasks_cut_before(tmp_path):
    """Hardest 20% and 5 equal-count bins of the held-out pool, ties by lower id, as before."""
    from engine.splits.selectors import quantile_bins, top_fraction

    _, data, scores, built = _build(QA, [], tmp_path)
    pool = np.flatnonzero(np.asarray(data.split) == "heldout")
    conf = scores.column("confusion").to_numpy()[pool]
    np.testing.assert_array_equal(built.sample_ids, pool)
    np.testing.assert_array_equal(built.is_hard, top_fraction(conf, pool, 0.2))
    np.testing.assert_array_equal(built.bins, quantile_bins(conf, pool, 5))


def test_samples_without_classes_or_images_refuse_per_class_and_image_folders(tmp_path):
    from engine.spec import HardSpec, SplitsSpec

    ids = np.arange(10)
    scores = pa.table({"sample_id": ids, "split": ["heldout"] * 10,
                       "confusion": np.linspace(0, 1, 10)})  # fmt: skip
    texts = SplitSamples(columns=lambda i: {"text": pa.array([f"t{k}" for k in i])})
    per_class = SplitsSpec(hard=HardSpec(hardest_fraction=0.2, per_class=True))
    with pytest.raises(ValueError, match=r"hard\.per_class needs each sample's class"):
        build_splits(tmp_path, per_class, texts, scores)
    with pytest.raises(ValueError, match=r"the imagefolder export needs image samples"):
        build_splits(tmp_path, SplitsSpec(exports=["parquet", "imagefolder"]), texts, scores)
    built = build_splits(tmp_path, SplitsSpec(hard=HardSpec(hardest_fraction=0.2)), texts, scores)
    hard = pq.read_table(built.files["hard"])
    assert hard.column("text").to_pylist() == ["t8", "t9"] and hard.schema.metadata is None
