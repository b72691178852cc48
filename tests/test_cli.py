"""The CLI's bad-input paths: clear errors, exit code 2, no run directory left behind."""

import json
from pathlib import Path

import pytest

from engine.cli import EXIT_BAD_INPUT, main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "benchmarks" / "digits.yaml"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["replicas.count=0"], "replicas.count: must be >= 1, got 0"),
        (
            ["evaluate.models=[{name: big, model: resnet_9000, epochs: 1}]"],
            "evaluate.models[0].model: unknown model 'resnet_9000'",
        ),
        (["replicas.model=wide_cn"], "Did you mean 'wide_cnn'"),
        (["scores=[confusion, amu]"], "scores[1]: unknown score 'amu'. Did you mean 'aum'"),
    ],
)
def test_bad_spec_exits_2_and_writes_nothing(tmp_path, capsys, overrides, message):
    runs = tmp_path / "runs"
    argv = ["run", str(DIGITS), "--runs-dir", str(runs)]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "invalid spec" in err and message in err
    assert not runs.exists()


def test_validate(capsys):
    assert main(["validate", str(DIGITS)]) == 0
    assert "valid classification spec 'digits': 5 replicas (mlp hidden=64), 20 epochs" in (
        capsys.readouterr().out
    )
    assert main(["validate", str(DIGITS), "--set", "splits.bins.count=1"]) == EXIT_BAD_INPUT
    assert "splits.bins.count: must be >= 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "summary"),
    [
        ([], "hard = hardest 10% by confusion (higher = harder)"),
        (["splits.score=aum"], "hard = hardest 10% by aum (lower = harder)"),
        (["splits.hard={hardest_fraction: null, top_fraction: 0.2}"],
         "hard = hardest 20% by confusion (higher = harder)"),
        (["splits.score=aum", "splits.hard={hardest_fraction: null, bottom_fraction: 0.05}"],
         "hard = hardest 5% by aum (lower = harder)"),
        (["splits.hard={hardest_fraction: null, min_score: 1.5}"],
         "hard = confusion >= 1.5 (higher = harder)"),
        (["splits.score=confidence", "splits.hard={hardest_fraction: null, max_score: 0.4}"],
         "hard = confidence <= 0.4 (lower = harder)"),
        (["splits.hard={hardest_fraction: 0.1, per_class: true, min_per_class: 3}"],
         "hard = hardest 10% by confusion within each class (at least 3) (higher = harder)"),
    ],
)  # fmt: skip
def test_validate_describes_every_hard_rule_kind(capsys, overrides, summary):
    argv = ["validate", str(DIGITS)]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == 0, capsys.readouterr().err
    assert summary in capsys.readouterr().out


SPECS = sorted(
    [*(ROOT / "benchmarks").glob("*.yaml"), *(ROOT / "tests" / "fixtures").glob("*.yaml")]
)


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_validate_every_bundled_spec(capsys, spec):
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err
    assert f"{spec}: valid " in capsys.readouterr().out


def test_validate_refuses_a_rule_that_selects_the_easiest_samples(capsys):
    argv = ["validate", str(DIGITS), "--set", "splits.score=aum", "--set",
            "splits.hard={hardest_fraction: null, top_fraction: 0.1}"]  # fmt: skip
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "splits.hard.top_fraction: selects the highest aum values, which are the easiest" in err
    assert "(aum: lower = harder); use hardest_fraction: 0.1" in err


def test_existing_run_id_is_refused(tmp_path, capsys, no_tracking_env):
    (tmp_path / "taken").mkdir()
    assert (
        main(["run", str(DIGITS), "--runs-dir", str(tmp_path), "--run-id", "taken"])
        == EXIT_BAD_INPUT
    )
    assert "already exists" in capsys.readouterr().err
    assert (
        main(["run", str(DIGITS), "--runs-dir", str(tmp_path), "--run-id", "../escape"])
        == EXIT_BAD_INPUT
    )
    assert "run id must match" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("spec", ["tiny-qa.yaml", "tiny-seq2seq.yaml"])
def test_text_runs_check_the_run_id_too(tmp_path, capsys, no_tracking_env, spec):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "taken").mkdir()
    fixture = str(ROOT / "tests" / "fixtures" / spec)
    for run_id, message in (("../escape", "run id must match"), ("taken", "already exists")):
        argv = ["run", fixture, "--runs-dir", str(runs), "--run-id", run_id]
        assert main(argv) == EXIT_BAD_INPUT
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert sorted(p.name for p in runs.iterdir()) == ["taken"]


def test_listing_commands(capsys, tmp_path):
    assert main(["models", "*cnn"]) == 0
    assert capsys.readouterr().out.split()[0] == "small_cnn"
    assert main(["scores"]) == 0
    out = capsys.readouterr().out
    assert "confusion          higher = harder  label-free" in out
    assert "aum                lower = harder   labels" in out
    assert main(["ls", "--runs-dir", str(tmp_path)]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["sources"]) == 0
    out = capsys.readouterr().out
    assert "imagefolder     needs data.path" in out and "sklearn_digits  bundled" in out


@pytest.mark.ray
def test_ingest_builds_the_cache_then_reuses_it_and_names_a_bad_file(tmp_path, capsys, ray_local):
    from PIL import Image

    src = tmp_path / "imgs"
    for i in range(6):
        (src / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (5, 4), color=i * 40).save(src / f"c{i % 2}" / f"{i}.png")
    argv = ["ingest", str(DIGITS), "--set", "data.source=imagefolder", "--set",
            f"data.path={src}", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[ingest] [########################] 100% 6/6 samples" in out
    assert "samples: 6 of shape (1, 4, 5), 2 classes" in out
    cache = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("cache:"))
    assert Path(cache).parent == tmp_path / "runs" / "_datasets"
    assert main(argv) == 0
    assert "[ingest] reused cache" in capsys.readouterr().out
    (src / "c0" / "zz.png").write_bytes(b"not a png")
    assert main(argv) == EXIT_BAD_INPUT
    assert "bad input: c0/zz.png: not a readable image" in capsys.readouterr().err
    assert main([*argv, "--set", "data.on_bad=skip"]) == 0
    assert "skipped: 1 (first: c0/zz.png: not a readable image" in capsys.readouterr().out


@pytest.mark.ray
def test_ingest_of_a_text_table_builds_its_token_cache_too(tmp_path, capsys, ray_local):
    from engine.data.text import read_sentiment_corpus

    texts, labels = read_sentiment_corpus()
    table = tmp_path / "t.jsonl"
    table.write_text("\n".join(json.dumps({"text": t, "label": int(y)})
                               for t, y in zip(texts[:600], labels[:600], strict=True)))  # fmt: skip
    argv = ["ingest", str(DIGITS), "--set", "data.source=table", "--set", f"data.path={table}",
            "--set", "data.text_column=text", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[tokens] [########################] 100% 600/600 texts" in out
    tokens = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("tokens:"))
    folder = Path(tokens.split(" (")[0])
    assert folder.parent.name == "tokens" and (folder / "meta.json").is_file()
    assert "48 per text, uint16" in tokens
    assert main(argv) == 0  # both caches found: nothing tokenized again
    out = capsys.readouterr().out
    assert "[ingest] reused cache" in out and "[tokens]" not in out and str(folder) in out
    qa = ["ingest", "tests/fixtures/tiny-qa.yaml", "--set", "data.source=table", "--set",
          f"data.path={table}"]  # fmt: skip
    assert main(qa) == EXIT_BAD_INPUT
    assert "a qa table is tokenized by its first run" in capsys.readouterr().err
