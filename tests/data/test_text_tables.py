"""QA and seq2seq from a user's table: the same samples whatever the row order, bad rows named, a QA run from JSONL."""

import json

import numpy as np
import pytest

from engine.data.errors import BadInputError
from engine.data.qa import read_quoref
from engine.data.seq2seq import read_qasc_fusion
from engine.lifecycle import run_benchmark
from engine.spec import SpecError, load_spec
from engine.tasks import load_data

QA_SPEC = "tests/fixtures/tiny-qa.yaml"
S2S_SPEC = "tests/fixtures/tiny-seq2seq.yaml"


def _qa_rows(n=240):
    passages, rows = read_quoref()
    return [{"id": f"q{i:04d}", "question": q, "context": passages[p], "answers": [a],
             "answer_start": s} for i, (p, q, a, s) in enumerate(rows[:n])]  # fmt: skip


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_qa_table_is_tokenized_like_the_bundled_corpus_and_ids_follow_the_id_column(tmp_path):
    rows = _qa_rows()
    a = _jsonl(tmp_path / "a.jsonl", rows)
    b = _jsonl(tmp_path / "b.jsonl", rows[::-1])
    sets = ["data.source=table", "data.id_column=id"]
    da = load_data(load_spec(QA_SPEC, [*sets, f"data.path={a}"]))
    db = load_data(load_spec(QA_SPEC, [*sets, f"data.path={b}"]))
    np.testing.assert_array_equal(da.input_ids, db.input_ids)
    assert da.questions == db.questions == [r["question"] for r in rows]
    assert da.dataset["num_samples"] == 240 and da.dataset["skipped"] == []
    for i in range(len(da)):  # the gold span is the answer's tokens
        span = da.span_text(i, int(da.start[i]), int(da.end[i])).lower()
        assert rows[i]["answers"][0].lower() in span
    by_passage = {}
    for p, s in zip(da.passage, da.split, strict=True):
        by_passage.setdefault(int(p), set()).add(s)
    assert all(len(s) == 1 for s in by_passage.values())  # split by passage


def test_a_seq2seq_table_with_several_references_and_a_split_column(tmp_path):
    examples = read_qasc_fusion()[:200]
    rows = [{"source": f"{f1} {f2}", "target": refs, "part": "test" if i % 4 == 0 else "train"}
            for i, (f1, f2, refs) in enumerate(examples)]  # fmt: skip
    path = _jsonl(tmp_path / "s.jsonl", rows)
    spec = load_spec(S2S_SPEC, ["data.source=table", f"data.path={path}", "data.split_column=part"])
    data = load_data(spec)
    assert data.references == [r["target"] for r in rows]
    assert list(data.split) == ["heldout" if r["part"] == "test" else "train" for r in rows]
    np.testing.assert_array_equal(data.decoder_ids[:, 1:][data.target_mask[:, 1:]],
                                  data.target_ids[:, :-1][data.target_mask[:, 1:]])  # fmt: skip
    assert data.decode(data.source_ids[0][1:]).split()[0] == rows[0]["source"].lower().split()[0]


def test_bad_text_rows_are_named_or_skipped(tmp_path):
    rows = _qa_rows(30)
    rows[7]["answers"] = ["not in the passage at all"]
    rows[7]["answer_start"] = None
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(BadInputError, match=r"bad\.jsonl row 7: the answer 'not in the passage"):
        load_data(load_spec(QA_SPEC, ["data.source=table", f"data.path={path}"]))
    data = load_data(load_spec(QA_SPEC, ["data.source=table", f"data.path={path}",
                               "data.on_bad=skip"]))  # fmt: skip
    assert len(data) == 29 and data.dataset["skipped"][0]["key"].endswith("row 7")
    no_target = _jsonl(tmp_path / "t.jsonl", [{"source": "a b", "answer": "c"}])
    with pytest.raises(BadInputError, match=r"no column 'target'; columns: source, answer"):
        load_data(load_spec(S2S_SPEC, ["data.source=table", f"data.path={no_target}"]))
    with pytest.raises(SpecError, match=r"data\.image_column: a qa table has fixed columns"):
        load_spec(QA_SPEC, ["data.source=table", f"data.path={path}", "data.image_column=x"])
    with pytest.raises(SpecError, match=r"data\.path: the table source needs a path"):
        load_spec(QA_SPEC, ["data.source=table"])


@pytest.mark.ray
@pytest.mark.slow
def test_a_qa_run_from_a_jsonl_table(ray_local, no_tracking_env, tmp_path):
    path = _jsonl(tmp_path / "qa.jsonl", _qa_rows())
    spec = load_spec(QA_SPEC, ["data.source=table", f"data.path={path}", "data.id_column=id"])
    result = run_benchmark(spec, runs_dir=tmp_path / "runs", run_id="qa", log=lambda s: None)
    status = json.loads((result.run_dir / "run.json").read_text())
    assert status["status"] == "complete" and status["dataset"]["num_samples"] == 240
    card = json.loads((result.run_dir / "benchmark" / "card.json").read_text())
    assert card["dataset"]["source"]["path"] == str(path)
    reader = next(ev for ev in result.evaluations if ev["model"] == "reader")
    assert 0 <= reader["error_all"] <= 1


@pytest.mark.parametrize("kind", ["qa", "seq2seq"])
def test_a_table_is_tokenized_once_per_run_then_read_from_its_cache(tmp_path, kind):
    import dataclasses
    import os

    from engine.data.ingest import CACHE_SUBDIR

    if kind == "qa":
        rows, spec_file = _qa_rows(120), QA_SPEC
    else:
        rows = [{"source": f"{f1} {f2}", "target": refs}
                for f1, f2, refs in read_qasc_fusion()[:150]]  # fmt: skip
        spec_file = S2S_SPEC
    path = _jsonl(tmp_path / "t.jsonl", rows)
    spec = load_spec(spec_file, ["data.source=table", f"data.path={path}"])
    memory = load_data(spec)  # no run: built in memory, nothing saved
    assert memory.dataset["cache"] is None
    runs = tmp_path / "runs"
    lines = []
    first = load_data(spec, runs / "r1", lines.append)
    assert sum("tokenized" in line for line in lines) == 1
    folder = first.dataset["cache"]
    assert folder.startswith(str((runs / CACHE_SUBDIR).resolve())) and f"{kind}-" in folder
    lines.clear()
    again = load_data(spec, runs / "r2", lines.append)  # another run, same table: reused
    assert not lines and again.dataset == first.dataset
    for f in dataclasses.fields(memory):
        a, b = getattr(memory, f.name), getattr(again, f.name)
        if isinstance(a, np.ndarray):
            assert isinstance(b, np.memmap) and not b.flags.writeable
            np.testing.assert_array_equal(a, b)
        elif f.name != "dataset":
            assert a == b, f.name
    other = load_spec(spec_file, ["data.source=table", f"data.path={path}", "data.split_seed=5"])
    assert load_data(other, runs / "r3", lines.append).dataset["cache"] != folder  # another split
    os.utime(path, ns=(1, 1))  # the table changed: tokenized again
    assert load_data(spec, runs / "r4", lines.append).dataset["cache"] != folder
