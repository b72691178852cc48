"""End to end through a real local Ray: Ray Train replicas, Ray Data scoring, MLflow."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from engine.lifecycle import run_benchmark
from engine.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_run(ray_local, tmp_path_factory):
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    runs = tmp_path_factory.mktemp("runs")
    spec = load_spec(TINY)
    result = run_benchmark(
        spec, runs_dir=runs, run_id="first", output=f"file://{runs}/mirror", log=lambda line: None
    )
    return spec, runs, result


def test_run_is_mirrored_to_its_output_uri(tiny_run):
    _, runs, result = tiny_run
    mirror = runs / "mirror" / "first"
    local = {
        p.relative_to(result.run_dir).as_posix(): p.read_bytes()
        for p in result.run_dir.rglob("*")
        if p.is_file() and "ray_train" not in p.parts and not p.name.startswith(".")
    }
    mirrored = {
        p.relative_to(mirror).as_posix(): p.read_bytes() for p in mirror.rglob("*") if p.is_file()
    }
    assert mirrored.keys() == local.keys()
    assert all(mirrored[k] == local[k] for k in local)
    assert json.loads(mirrored["run.json"])["status"] == "complete"
    assert json.loads(mirrored["run.json"])["output"] == f"file://{runs}/mirror/first"
    assert result.output == f"file://{runs}/mirror/first"


def test_one_shard_per_replica_epoch_block(tiny_run):
    _, _, result = tiny_run
    found = sorted(
        p.relative_to(result.run_dir / "preds").as_posix()
        for p in result.run_dir.glob("preds/**/*.parquet")
    )
    expected = sorted(
        f"replica={r}/epoch={e}/block={b}.parquet"
        for r in range(2)
        for e in range(3)
        for b in range(4)
    )
    assert found == expected
    manifest = json.loads((result.run_dir / "preds" / "_manifest.json").read_text())
    assert (
        manifest["complete"] and manifest["replicas"] == [0, 1] and manifest["epochs"] == [0, 1, 2]
    )
    assert {(row["replica"], row["epoch"]) for row in manifest["rows"]} == {
        (r, e) for r in range(2) for e in range(3)
    }
    assert all(row["seed"] == row["replica"] for row in manifest["rows"])


def test_scores_table_complete(tiny_run):
    _, _, result = tiny_run
    table = pq.read_table(result.run_dir / "scores.parquet")
    assert table.column_names[:3] == ["sample_id", "split", "label"]
    assert {"confusion", "action", "aum", "vog", "variability", "ensemble_pred"} <= set(
        table.column_names
    )
    assert table.column("sample_id").to_pylist() == list(range(1797))
    for name in ("confusion", "action"):
        values = table.column(name).to_numpy()
        assert (
            table.column(name).null_count == 0
            and np.all(np.isfinite(values))
            and np.all(values >= 0)
        )
    assert np.all(table.column("confusion").to_numpy() <= np.log(10) + 1e-9)
    assert set(table.column("split").to_pylist()) == {"train", "heldout"}


def test_hard_split_is_top_ten_percent_of_heldout(tiny_run):
    _, _, result = tiny_run
    scores = pq.read_table(result.run_dir / "scores.parquet").to_pandas()
    held = scores[scores.split == "heldout"]
    hard = pq.read_table(result.run_dir / "benchmark" / "splits" / "hard.parquet").to_pandas()
    assert len(hard) == round(0.1 * len(held)) == 72
    expected = held.sort_values(["confusion", "sample_id"], ascending=[False, True]).sample_id[:72]
    assert set(hard.sample_id) == set(expected)
    rest = pq.read_table(result.run_dir / "benchmark" / "splits" / "rest.parquet").to_pandas()
    assert hard.confusion.min() >= rest.confusion.max()
    assert "input" not in hard.columns and set(hard.label) <= set(range(10))  # pixels in the cache
    assert hard.key.str.fullmatch(r"\d{4}").all()  # the bundled digits' keys: their row
    counts = [
        pq.read_metadata(result.run_dir / "benchmark" / "splits" / f"bin_{b}.parquet").num_rows
        for b in range(5)
    ]
    assert sum(counts) == 719 and max(counts) - min(counts) <= 1


def test_card_has_provenance_and_evaluation(tiny_run):
    _, _, result = tiny_run
    card = json.loads((result.run_dir / "benchmark" / "card.json").read_text())
    assert card["seeds"]["replicas"] == [0, 1] and card["seeds"]["models"] == {"small_mlp": 11}
    assert card["provenance"]["packages"]["torch"] == "2.14.1"
    assert "commit" in card["provenance"]["git"]
    assert sum(card["per_class_counts"]["hard"]) == 72
    assert {ev["model"] for ev in card["evaluation"]} == {"ensemble", "small_mlp"}
    assert -1 <= card["transfer"]["kendall_tau_small_large"] <= 1
    # the reference set: models with more parameters than the 2 x 1,210 of the replicas
    assert card["transfer"]["reference_models"] == ["small_mlp"]
    assert card["transfer"]["params"] == {"replica": 1210, "small_mlp": 4810}
    assert (
        (result.run_dir / "benchmark" / "card.md").read_text().startswith("# Benchmark card: tiny")
    )
    status = json.loads((result.run_dir / "run.json").read_text())
    assert status["status"] == "complete" and status["timings_s"]["train_replicas"] > 0


def test_mlflow_parent_and_nested_runs(tiny_run):
    _, _, result = tiny_run
    client = MlflowClient(tracking_uri=f"sqlite:///{result.run_dir.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hardbench-tests")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [
        r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.mlflow["parent_run_id"]
    ]
    assert len(parents) == 1 and parents[0].info.run_name == "first"
    assert parents[0].data.params["replicas.count"] == "2"
    assert parents[0].data.metrics["hard_size"] == 72
    assert {c.data.tags["hardbench.model"] for c in children} == {"ensemble", "small_mlp"}
    for child in children:
        m = child.data.metrics
        assert {
            "error_all",
            "error_hard",
            "error_rest",
            "error_bin_0",
            "error_bin_4",
            "pearson_rho",
        } <= set(m)
        ev = next(e for e in result.evaluations if e["model"] == child.data.tags["hardbench.model"])
        assert m["error_hard"] == pytest.approx(ev["error_hard"])
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {
        "card.json",
        "card.md",
        "report.html",
        "scores.parquet",
        "spec.yaml",
        "error_by_bin.png",
    } <= artifacts


def test_hardbench_ui_serves_the_runs_directorys_store(tiny_run, tmp_path):
    import socket
    import time
    import urllib.request

    _, runs, result = tiny_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "ui.log"
    hardbench = str(Path(sys.executable).parent / "hardbench")
    proc = subprocess.Popen([hardbench, "ui", "--runs-dir", str(runs), "--port", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        base, found, deadline = f"http://127.0.0.1:{port}", None, time.monotonic() + 90
        query = f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=hardbench-tests"
        while found is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(query, timeout=2) as resp:
                    found = json.loads(resp.read())["experiment"]
            except OSError:
                time.sleep(0.5)
        assert found is not None, log.read_text()[-2000:]
        assert found["tags"] == [{"key": "mlflow.experimentKind",
                                  "value": "custom_model_development"}]  # fmt: skip
        printed = log.read_text()
        assert f"MLflow UI of sqlite:///{runs.resolve() / 'mlflow.db'} at {base}" in printed
        # the link opens the experiment on its training runs, not the GenAI overview
        exp_id = found["experiment_id"]
        assert (
            f"hardbench-tests: {base}/#/experiments/{exp_id}?workflowType=machine_learning"
            in printed
        )
        body = {"experiment_ids": [exp_id], "max_results": 50}
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            ids = {r["info"]["run_id"] for r in json.loads(resp.read())["runs"]}
        assert result.mlflow["parent_run_id"] in ids
    finally:
        proc.terminate()  # SIGTERM, as a service manager stops it
        proc.wait(timeout=30)
    with socket.socket() as s:  # the server's workers went with it: the port is free again
        assert s.connect_ex(("127.0.0.1", port)) != 0
    # a runs directory without a store is refused
    rc = subprocess.run([hardbench, "ui", "--runs-dir", str(tmp_path / "empty")],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert rc.returncode == 2 and "no MLflow store in" in rc.stderr


def test_html_report_has_every_figure(tiny_run, capsys):
    from engine.cli import main

    _, _, result = tiny_run
    page = (result.run_dir / "report.html").read_text()
    for title in (
        "Score histogram",
        "Error by score bin",
        "Small ensemble vs reference models",
        "Data map",
        "Hardest and easiest samples",
    ):
        assert f'<h2>{title}</h2><img src="data:image/png;base64,' in page, title
    assert "<td>small_mlp</td><td>4.8k</td>" in page
    assert "<td>ensemble (scorer, in-sample)</td><td>2.4k</td>" in page
    (result.run_dir / "report.html").unlink()
    assert main(["report", str(result.run_dir)]) == 0
    assert (result.run_dir / "report.html").exists()
    assert "logged to MLflow run" in capsys.readouterr().out


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
REPORT_FIGURES = (
    "histogram", "error_by_bin", "error_by_width_bin", "train_vs_heldout",
    "confusion_vs_accuracy", "kendall", "data_map", "samples",
)  # fmt: skip


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is missing: `make test` installs it (make browser)"
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_report_renders_every_figure_in_headless_chromium(tiny_run, tmp_path):
    """Chromium loads report.html; each figure decodes and paints non-blank pixels."""
    from html.parser import HTMLParser

    from PIL import Image

    _, _, result = tiny_run
    url = (result.run_dir / "report.html").resolve().as_uri()
    width, height = 1200, 12000
    dom = _chromium(
        "--virtual-time-budget=5000", f"--window-size={width},{height}", "--dump-dom", url,
        profile=tmp_path / "profile-dom",
    ).stdout  # fmt: skip

    class Figures(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: dict[str, dict[str, str]] = {}
            self.body: dict[str, str] = {}

        def handle_starttag(self, tag, attrs):
            a = {k: v or "" for k, v in attrs}
            if tag == "figure" and "hb-figure" in a.get("class", ""):
                self.found[a["id"].removeprefix("fig-")] = a
            if tag == "body":
                self.body = a

    parsed = Figures()
    parsed.feed(dom)
    assert parsed.body.get("data-rendered") == "1", "the page's load handler never ran"
    assert set(parsed.found) == set(REPORT_FIGURES)
    shot = tmp_path / "report.png"
    _chromium(
        f"--window-size={width},{height}", f"--screenshot={shot}", url,
        profile=tmp_path / "profile-shot",
    )  # fmt: skip
    page = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert page.shape == (height, width)
    for name, attrs in parsed.found.items():
        nat_w, nat_h = (int(v) for v in attrs["data-natural"].split("x"))
        assert nat_w > 100 and nat_h > 100, f"{name} did not decode: {attrs['data-natural']}"
        left, top, w, h = (int(v) for v in attrs["data-box"].split(","))
        assert w > 100 and h > 100 and top + h <= height, f"{name} drawn at {attrs['data-box']}"
        region = page[top : top + h, left : left + w]
        ink = (region < 200).mean()  # share of clearly non-white pixels
        assert region.std() > 10 and ink > 0.01, f"{name} is blank in the screenshot ({ink:.4f})"


def test_cli_rerun_with_same_seeds_gives_same_scores(tiny_run, tmp_path):
    _, _, first = tiny_run
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            str(TINY),
            "--runs-dir",
            str(tmp_path),
            "--run-id",
            "second",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "[train] 6/6 (replica, epoch) pairs done" in out
    assert "Pearson r(hardness, error)" in out and "rho over bins" in out and "small_mlp" in out
    assert "hard" in out
    assert (
        "Kendall tau between the small ensemble's confusion hardness and the reference models' "
        "confusion (small_mlp; models with more parameters than the 2-replica ensemble" in out
    )
    a = pq.read_table(first.run_dir / "scores.parquet")
    b = pq.read_table(tmp_path / "second" / "scores.parquet")
    for name in ("confusion", "action", "ensemble_pred"):
        np.testing.assert_array_equal(a.column(name).to_numpy(), b.column(name).to_numpy())


def test_rescoring_a_partial_run_needs_the_flag_and_records_what_it_used(
    tiny_run, tmp_path, capsys
):
    import shutil

    from engine.cli import EXIT_BAD_INPUT, main

    _, _, result = tiny_run
    partial = tmp_path / "partial"
    shutil.copytree(
        result.run_dir, partial, ignore=shutil.ignore_patterns("mlflow.db", "ray_train", "models")
    )
    (partial / "preds" / "replica=1" / "_manifest.json").unlink()
    assert main(["score", str(partial), "--scores", "confusion,aum"]) == EXIT_BAD_INPUT
    assert "first missing: replica=1 epoch=0" in capsys.readouterr().err
    assert main(["score", str(partial), "--scores", "confusion,aum", "--allow-partial"]) == 0
    assert "PARTIAL run: replicas [0], epochs 0..2" in capsys.readouterr().out
    table = pq.read_table(partial / "scores.rescored.parquet")
    meta = json.loads(table.schema.metadata[b"hardbench"])
    assert meta["replicas"] == [0] and meta["epochs"] == [0, 1, 2] and meta["complete"] is False
    assert meta["scores"] == ["confusion", "aum"] and table.num_rows == 1797
    assert main(["score", str(partial), "--allow-partial"]) == EXIT_BAD_INPUT  # never overwrites
    assert "exists" in capsys.readouterr().err


def test_eval_an_mlflow_logged_model_reproduces_its_build_metrics(tiny_run, capsys):
    from engine.cli import main
    from engine.lifecycle import evaluate_model_on_run

    _, _, result = tiny_run
    child = result.mlflow["model_runs"]["small_mlp"]
    ev = evaluate_model_on_run(
        result.run_dir, model_uri=f"runs:/{child}/model", label="small_mlp_from_mlflow"
    )
    built = next(e for e in result.evaluations if e["model"] == "small_mlp")
    for key in ("error_all", "error_hard", "error_rest", "pearson_rho"):
        assert ev[key] == pytest.approx(built[key], nan_ok=True), key
    capsys.readouterr()
    uri = f"sqlite:///{result.run_dir.parent / 'mlflow.db'}"
    assert main(["compare", "hardbench-tests", "--tracking-uri", uri, "--run-id", "first"]) == 0
    assert "small_mlp_from_mlflow" in capsys.readouterr().out


def test_eval_a_pretrained_registry_model_with_its_preprocessing(
    tiny_run, tmp_path, monkeypatch, capsys
):
    import torch
    import torchvision

    from engine.cli import main
    from engine.models import weights_file

    _, _, result = tiny_run
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    argv = [
        "eval",
        str(result.run_dir),
        "--model",
        "test_resnet",
        "--pretrained",
        "--split",
        "hard",
    ]
    assert main(argv) == 2
    assert "resnet18-f37072fd.pth" in capsys.readouterr().err
    path = weights_file("test_resnet")
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), path)
    assert main(argv) == 0
    # Ray's driver prints raylet warnings (e.g. "8 PYTHON worker processes have been
    # started") to stdout with is_err=False; our lines are checked among them.
    lines = capsys.readouterr().out.splitlines()
    ours = [line for line in lines if "(raylet)" not in line]
    assert ours[0].startswith("test_resnet on hard: error ") and "logged as MLflow run" in ours[1]
    saved = json.loads((result.run_dir / "eval" / "extra" / "test_resnet-hard.json").read_text())
    assert 0 <= saved["error_all"] <= 1 and saved["split"] == "hard"


def test_results_mark_the_scorer_as_in_sample_and_print_parameter_counts(tiny_run):
    _, _, result = tiny_run
    lines = result.table.splitlines()
    assert lines[0] == "bins from easiest (0) to hardest by confusion (higher = harder)"
    head = lines[1]
    assert "ensemble (scorer, in-sample)" in head and "small_mlp" in head
    params = next(line for line in lines if line.startswith("params"))
    assert params.split()[1:] == ["2", "x", "1.2k", "4.8k"]
    assert any(line.startswith("(scorer, in-sample): the replicas' own ensemble") for line in lines)
    assert "reference models' confusion (small_mlp; models with more parameters than the " in (
        result.table
    )
    metrics = json.loads((result.run_dir / "eval" / "metrics.json").read_text())
    assert [(m["model"], m["in_sample"], m["params"]) for m in metrics] == [
        ("ensemble", True, 2420),
        ("small_mlp", False, 4810),
    ]
    card = (result.run_dir / "benchmark" / "card.md").read_text()
    assert "| ensemble (scorer, in-sample) | 2.4k |" in card
    assert "hardest 10% by confusion (higher = harder)" in card


def test_vog_is_z_scored_within_each_split_and_class(tiny_run):
    _, _, result = tiny_run
    scores = pq.read_table(result.run_dir / "scores.parquet").to_pandas()
    groups = scores.groupby(["split", "label"]).vog
    np.testing.assert_allclose(groups.mean().to_numpy(), 0.0, atol=1e-9)
    np.testing.assert_allclose(groups.std(ddof=0).to_numpy(), 1.0, atol=1e-9)


def _run_copy(result, dest, *, drop_label=None):
    """A copy of a finished run that logs nothing to MLflow, optionally a pool without a class."""
    shutil.copytree(
        result.run_dir,
        dest,
        ignore=shutil.ignore_patterns("mlflow.db", "ray_train", "mlartifacts", "extra"),
    )
    status = json.loads((dest / "run.json").read_text())
    status.pop("mlflow")
    (dest / "run.json").write_text(json.dumps(status))
    if drop_label is not None:
        pool_file = dest / "benchmark" / "splits" / "pool.parquet"
        pool = pq.read_table(pool_file)
        keep = pool.column("label").to_numpy() != drop_label
        pq.write_table(pool.filter(keep), pool_file)
    return dest


def test_eval_takes_the_number_of_classes_from_the_run_not_the_pool(tiny_run, tmp_path):
    from engine.lifecycle import evaluate_model_on_run

    _, _, result = tiny_run
    run = _run_copy(result, tmp_path / "no9", drop_label=9)
    pool = pq.read_table(run / "benchmark" / "splits" / "pool.parquet")
    assert pool.column("label").to_numpy().max() == 8  # the highest class is missing
    ev = evaluate_model_on_run(run, model_uri=str(run / "models" / "small_mlp"), label="m")
    preds = pq.read_table(result.run_dir / "eval" / "predictions.parquet").to_pandas()
    kept = preds[preds.label != 9]
    assert ev["error_all"] == pytest.approx((kept.pred_small_mlp != kept.label).mean())
    assert ev["params"] == 4810  # a 10-class model, as trained


def test_eval_refuses_bad_weights_before_any_actor_starts(tiny_run, tmp_path, capsys):
    from engine.cli import EXIT_BAD_INPUT, main

    _, _, result = tiny_run
    run = _run_copy(result, tmp_path / "run")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    weights = str(run / "models" / "small_mlp" / "weights.pt")
    cases = [
        (["--model", "resnet18_small", "--weights-file", str(garbage)],
         f"weights file {garbage} is not a torch state dict loadable with weights_only=True"),
        (["--model", "resnet18_small", "--weights-file", weights],
         "does not fit model 'resnet18_small': 122 missing keys (conv1.weight"),
        (["--model", "mlp", "--model-kwargs", "hidden=32", "--weights-file", weights],
         "net.1.weight has shape (64, 64) in the file, (32, 64) in the model"),
    ]  # fmt: skip
    bad_dir = tmp_path / "bad_model"
    shutil.copytree(run / "models" / "small_mlp", bad_dir)
    (bad_dir / "weights.pt").write_bytes(garbage.read_bytes())
    cases.append((["--model-uri", str(bad_dir)], f"model {bad_dir}: weights file"))
    good = str(run / "models" / "small_mlp")
    cases += [
        (["--model-uri", good, "--actors", "0"], "--actors must be 'auto' or an integer >= 1"),
        (["--model-uri", good, "--gpus-per-actor", "1"],
         "a prediction actor asks for 1 GPU but the Ray cluster has 0"),
        (["--model-uri", good, "--actors", "9", "--num-cpus", "2"],
         "9 prediction actors (evaluate.actors, --actors) do not fit the Ray cluster"),
    ]  # fmt: skip
    for args, message in cases:
        assert main(["eval", str(run), *args]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert message in err, err
        assert len(err.strip().splitlines()) == 1, err  # one line, no Ray Data trace
    assert not (run / "eval" / "extra").exists()


def _keep_shards(run_dir: Path, replicas: list[int], epochs: list[int]) -> None:
    """Make ``run_dir`` a run whose shards are exactly these replicas' and epochs'."""
    for folder in (run_dir / "preds").glob("replica=*"):
        replica = int(folder.name.split("=")[1])
        if replica not in replicas:
            shutil.rmtree(folder)
            continue
        manifest = folder / "_manifest.json"
        record = json.loads(manifest.read_text())
        record["rows"] = [row for row in record["rows"] if row["epoch"] in epochs]
        manifest.write_text(json.dumps(record))
        for epoch_dir in folder.glob("epoch=*"):
            if int(epoch_dir.name.split("=")[1]) not in epochs:
                shutil.rmtree(epoch_dir)


def test_ablation_settings_equal_runs_of_exactly_those_shards(tiny_run, tmp_path, capsys):
    from engine.cli import EXIT_BAD_INPUT, main
    from engine.lifecycle import score_existing_run
    from engine.lifecycle.ablate import ablate_run

    _, _, result = tiny_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run, ignore=shutil.ignore_patterns("ray_train", "models"))
    record = ablate_run(run, epoch_counts=(2,), replica_counts=(1,), log=lambda line: None)
    names = [s["name"] for s in record["settings"]]
    assert (
        len(names) == 3 * 3 and names[-1] == "eall_rall"
    )  # (2 first, 2 spaced, all) x (r0, r1, all)
    table = pq.read_table(run / "eval" / "ablation_scores.parquet")
    assert table.column_names == ["sample_id", *names]
    scores = pq.read_table(run / "scores.parquet")
    assert np.array_equal(
        table.column("eall_rall").to_numpy(), scores.column("confusion").to_numpy()
    )
    for name in ("e2_first_r1_d1", "e2_spaced2_r1_d0"):
        setting = next(s for s in record["settings"] if s["name"] == name)
        sub = tmp_path / name
        shutil.copytree(run, sub, ignore=shutil.ignore_patterns("eval"))
        (sub / "preds" / "_manifest.json").unlink()  # consolidated again from what is left
        _keep_shards(sub, setting["replicas"], setting["epochs"])
        out, used = score_existing_run(sub, scores=["confusion"], allow_partial=True)
        assert used["replicas"] == setting["replicas"] and used["epochs"] == setting["epochs"]
        rescored = pq.read_table(out).column("confusion").to_numpy()
        assert np.array_equal(table.column(name).to_numpy(), rescored), name
    assert record["model"] == "small_mlp" and -1 < record["settings"][-1]["pearson_r"] < 1
    assert record["settings"][-1]["hard_overlap"] == 1.0
    client = MlflowClient(tracking_uri=f"sqlite:///{result.run_dir.parent / 'mlflow.db'}")
    parent = client.get_run(result.mlflow["parent_run_id"])
    assert parent.data.metrics["ablation_eall_rall_mean"] == pytest.approx(
        record["settings"][-1]["mean"]
    )
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "ablation")}
    assert {"ablation/ablation.json", "ablation/ablation_histograms.png"} <= logged
    assert main(["ablate", str(run)]) == EXIT_BAD_INPUT  # never overwrites without the flag
    assert "--overwrite" in capsys.readouterr().err


def test_training_samples_figures_beside_the_held_out_pool(tiny_run):
    """The paper's Figure 2: each model's error on the training samples, marked in-sample."""
    from engine.distributed.evaluation import read_predictions

    _, _, result = tiny_run
    scores = pq.read_table(result.run_dir / "scores.parquet")
    train = np.asarray(scores.column("split").to_pylist()) == "train"
    labels = scores.column("label").to_numpy()
    ev = next(e for e in result.evaluations if e["model"] == "small_mlp")
    logits = read_predictions(result.run_dir / "models" / "small_mlp" / "predictions.parquet")
    wrong = logits.argmax(axis=1)[train] != labels[train]
    t = ev["train_samples"]
    assert t["error_all"] == wrong.mean() and "trained on these samples" in t["in_sample_reason"]
    assert len(t["error_per_bin"]) == 5 and len(t["bin_centres"]) == 5
    ensemble = next(e for e in result.evaluations if e["model"] == "ensemble")
    pred = scores.column("ensemble_pred").to_numpy()
    assert ensemble["train_samples"]["error_all"] == (pred[train] != labels[train]).mean()
    card = (result.run_dir / "benchmark" / "card.md").read_text()
    assert "On the training samples" in card and "in-sample, not a transfer result" in card
    client = MlflowClient(tracking_uri=f"sqlite:///{result.run_dir.parent / 'mlflow.db'}")
    child = client.get_run(result.mlflow["model_runs"]["small_mlp"])
    assert child.data.metrics["train_samples_error_all"] == pytest.approx(wrong.mean())
