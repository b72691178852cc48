"""The CLI's bad-input paths: clear errors, exit code 2, no run directory left behind."""

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
    assert "valid spec 'digits': 5 x mlp replicas, 20 epochs" in capsys.readouterr().out
    assert main(["validate", str(DIGITS), "--set", "splits.bins.count=1"]) == EXIT_BAD_INPUT
    assert "splits.bins.count: must be >= 2" in capsys.readouterr().err


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


def test_listing_commands(capsys, tmp_path):
    assert main(["models", "*cnn"]) == 0
    assert capsys.readouterr().out.split()[0] == "small_cnn"
    assert main(["scores"]) == 0
    out = capsys.readouterr().out
    assert "confusion          higher = harder  label-free" in out
    assert "aum                lower = harder   labels" in out
    assert main(["ls", "--runs-dir", str(tmp_path)]) == 0
    assert "no runs" in capsys.readouterr().out
