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


# Specs whose data.path is relative, a file a user (or a command) makes: (data.path, a
# placeholder file that makes it exist)
RELATIVE_DATA = {
    "images.yaml": ("my-images", "my-images/a/0.png"),
    "texts.yaml": ("my-texts.csv", "my-texts.csv"),
    "fashion-mosaic-multilabel.yaml": ("runs/fashion-mosaic/mosaics.parquet",) * 2,
}


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_validate_every_bundled_spec(capsys, spec, tmp_path, monkeypatch):
    path, placeholder = RELATIVE_DATA.get(spec.name, (None, None))
    if placeholder:  # relative to where the command runs
        monkeypatch.chdir(tmp_path)
        assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
        assert f"data.path: {tmp_path / path} does not exist" in capsys.readouterr().err
        (tmp_path / placeholder).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / placeholder).write_bytes(b"")
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


# --- hardbench run/validate --data PATH [--recipe NAME], hardbench benchmarks ----------


def _png(path: Path, value: int = 0, mode: str = "L") -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((8, 8) if mode == "L" else (8, 8, 3), value, dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _idx(folder: Path) -> None:
    """A real (tiny) MNIST-format pair: 2 grey 4x4 images and their labels."""
    import struct

    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(
        struct.pack(">BBBBiii", 0, 0, 0x08, 3, 2, 4, 4) + bytes(32)
    )
    (folder / "train-labels-idx1-ubyte").write_bytes(
        struct.pack(">BBBBi", 0, 0, 0x08, 1, 2) + bytes([0, 1]))  # fmt: skip


def _tars(folder: Path) -> None:
    import io
    import tarfile

    folder.mkdir()
    _png(folder / "x.png")
    with tarfile.open(folder / "shard-0.tar", "w") as tf:
        tf.add(folder / "x.png", arcname="0001.png")
        data = b"1"
        info = tarfile.TarInfo("0001.cls")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (folder / "x.png").unlink()


def _hf(folder: Path, kind: str) -> None:
    import datasets

    if kind == "image":
        from PIL import Image

        features = datasets.Features({"img": datasets.Image(),
                                      "kind": datasets.ClassLabel(names=["a", "b"])})  # fmt: skip
        rows = {"img": [Image.new("L", (4, 4)), Image.new("L", (4, 4))], "kind": [0, 1]}
        datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(folder))
    else:
        features = datasets.Features({"sentence": datasets.Value("string"),
                                      "label": datasets.ClassLabel(names=["neg", "pos"])})  # fmt: skip
        ds = datasets.Dataset.from_dict({"sentence": ["bad", "good"], "label": [0, 1]},
                                        features=features)  # fmt: skip
        datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(folder))


def _layout(tmp_path: Path, name: str) -> str:
    """Make one layout ``--data`` reads under ``tmp_path``; the PATH to give."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if name == "classes":
        for cls in ("cat", "dog"):
            _png(tmp_path / "My Pets (2024)" / cls / "1.png")
        return str(tmp_path / "My Pets (2024)")
    if name == "idx":
        _idx(tmp_path / "mnist")
        return str(tmp_path / "mnist")
    if name in ("tars", "tar-glob"):
        _tars(tmp_path / "shards")
        return str(tmp_path / "shards") + ("/*.tar" if name == "tar-glob" else "")
    if name in ("hf-image", "hf-text"):
        _hf(tmp_path / name, name.split("-")[1])
        return str(tmp_path / name)
    if name == "csv-paths":
        _png(tmp_path / "imgs" / "a.png")
        (tmp_path / "labels.csv").write_text("picture,class\nimgs/a.png,cat\n")
        return str(tmp_path / "labels.csv")
    if name == "parquet-text":
        table = pa.table({"id": ["r1", "r2"], "Review": ["good", "bad"], "category": [1, 0],
                          "split": ["train", "test"]})  # fmt: skip
        pq.write_table(table, tmp_path / "reviews.parquet")
        return str(tmp_path / "reviews.parquet")
    if name == "jsonl-paths":
        (tmp_path / "rows.jsonl").write_text('{"file": "a.png", "target": "cat"}\n')
        return str(tmp_path / "rows.jsonl")
    assert name == "parquet-bytes"
    pq.write_table(pa.table({"img": [b"\x89PNG"], "label": [0]}), tmp_path / "pix.parquet")
    return str(tmp_path / "pix.parquet")


@pytest.mark.parametrize(
    ("layout", "found", "recipe", "name"),
    [
        ("classes", "imagefolder (2 class folders: cat, dog), image data", "images",
         "My-Pets-2024"),
        ("idx", "idx (IDX files), image data", "images", "mnist"),
        ("tars", "webdataset (1 tar file), image data", "images", "shards"),
        ("tar-glob", "webdataset (tar files matching {path}), image data", "images", "shards"),
        ("hf-image", "hf_disk (a datasets Dataset), image data; image_column 'img', "
         "label_column 'kind'", "images", "hf-image"),
        ("hf-text", "hf_disk (a datasets DatasetDict (train, test)), text data; text_column "
         "'sentence', label_column 'label'", "texts", "hf-text"),
        ("csv-paths", "table (a CSV table), image data; image_column 'picture', label_column "
         "'class'", "images", "labels"),
        ("parquet-text", "table (a Parquet table), text data; text_column 'Review', "
         "label_column 'category', split_column 'split'", "texts", "reviews"),
        ("parquet-bytes", "table (a Parquet table), image data; image_column 'img', label_column "
         "'label'", "images", "pix"),
        ("jsonl-paths", "table (a JSONL table), image data; image_column 'file', label_column "
         "'target'", "images", "rows"),
    ],
)  # fmt: skip
def test_validate_data_finds_the_source_columns_and_recipe(tmp_path, capsys, layout, found,
                                                           recipe, name):  # fmt: skip
    path = _layout(tmp_path, layout)
    assert main(["validate", "--data", path]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out.splitlines()
    shown = path if "*" in path else str(Path(path).absolute())
    shown += "/*.tar" if layout == "tars" else ""
    assert out[0] == f"data: {shown}: {found.format(path=path)}"
    assert out[1] == f"recipe: {recipe} (shipped spec benchmarks/{recipe}.yaml)"
    assert out[-1].startswith(f"--data {path}: valid classification spec {name!r}: ")


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({"t.csv": "image,text,label\na.png,hi,x\n"}, [],
         "could be images (column 'image') or texts (column 'text'); columns: image, text, "
         "label; give --set data.image_column=COLUMN or --set data.text_column=COLUMN"),
        ({"t.csv": "id,review,verdict\n1,hi,x\n"}, [],
         "no label column (named label, labels, class, category, target); columns: id, review, "
         "verdict; give it with --set data.label_column=COLUMN"),
        ({"t.csv": "id,body,text,label\n1,a,b,x\n"}, [],
         "columns 'body', 'text' could each be the text column; columns: id, body, text, label; "
         "give it with --set data.text_column=COLUMN"),
        ({"t.csv": "id,caption,label\n1,hi,x\n"}, [],
         "no image or text column (an image column is named image, img, image_path, path"),
        ({"t.csv": "id,review,label\n1,hi,x\n"}, ["--set", "data.text_column=txt"],
         "no column 'txt' (--set data.text_column); columns: id, review, label"),
        ({"flat/a.png": None}, [],
         "holds 1 images and no class folders: the replicas need labelled images to train on"),
        ({"notes.txt": "x"}, [], "is a .txt file; --data reads a folder"),
        ({"empty/.keep": "x"}, [], "holds no class folders, images, IDX files"),
    ],
)  # fmt: skip
def test_data_that_no_source_reads_is_one_clear_error(tmp_path, capsys, files, args, message):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            _png(tmp_path / rel)
        else:
            (tmp_path / rel).write_text(text)
    path = str(tmp_path / next(iter(files)).split("/")[0])
    runs = tmp_path / "runs"
    for command in ("validate", "run"):
        argv = [command, "--data", path, *args] + (["--runs-dir", str(runs)] * (command == "run"))
        assert main(argv) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith(f"hardbench: bad input: {path}: ") and message in err, err
    assert not runs.exists()


def test_set_settles_a_column_and_applies_over_the_recipe(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("id,review,verdict\n1,hi,x\n")
    argv = ["validate", "--data", str(tmp_path / "t.csv"), "--set", "data.label_column=verdict",
            "--set", "replicas.count=3", "--set", "evaluate.models[0].epochs=1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "text_column 'review', label_column 'verdict'" in out
    assert "valid classification spec 't': 3 replicas (text_mlp dim=64, hidden=64)" in out
    assert "note: texts.yaml includes sentiment: data from it: data.heldout_fraction" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--recipe", "sentiment"],
         "invalid spec: --recipe sentiment trains text models (text_mlp) but {path} holds image "
         "data: choose an image recipe, e.g. --recipe images"),
        (["--recipe", "quoref-qa"], "--recipe quoref-qa is a qa benchmark; --data builds "
                                    "classification benchmarks"),
        (["--recipe", "imges"], "no shipped benchmark 'imges' (did you mean 'images'?)"),
        ([str(DIGITS)], "give a SPEC or --data PATH (not both)"),
    ],
)  # fmt: skip
def test_a_recipe_that_does_not_fit_is_refused(tmp_path, capsys, argv, message):
    _png(tmp_path / "imgs" / "a" / "1.png")
    path = str(tmp_path / "imgs")
    assert main(["validate", "--data", path, *argv]) == EXIT_BAD_INPUT
    assert message.format(path=path) in capsys.readouterr().err


def test_recipe_and_spec_arguments_go_together_as_documented(tmp_path, capsys):
    assert main(["validate", str(DIGITS), "--recipe", "images"]) == EXIT_BAD_INPUT
    assert "--recipe goes with --data PATH" in capsys.readouterr().err
    assert main(["validate"]) == EXIT_BAD_INPUT
    assert "give a SPEC or --data PATH" in capsys.readouterr().err
    assert main(["run", "--runs-dir", str(tmp_path / "runs")]) == EXIT_BAD_INPUT
    assert "give a SPEC, or --resume RUN_DIR, or --data PATH" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path), "--recipe", "images"]) == EXIT_BAD_INPUT
    assert "do not apply (nor --recipe)" in capsys.readouterr().err


def test_validate_prints_what_an_include_gave_and_takes_a_shipped_name(tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    monkeypatch.delenv("HARDBENCH_SPEC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(
        "include: fashion-mnist\nmetadata: {name: mine}\n"
        "data: {source: imagefolder, path: my-images}\n")  # fmt: skip
    (tmp_path / "my-images" / "bag").mkdir(parents=True)  # validate looks at the data's path
    assert main(["validate", "mine.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("note: mine.yaml includes fashion-mnist: not taken (another source): "
                          "data.class_names; ")  # fmt: skip
    assert "mine.yaml: valid classification spec 'mine'" in out
    assert main(["validate", "fashion-mnist"]) == 0
    assert "fashion-mnist: valid classification spec 'fashion-mnist'" in capsys.readouterr().out


def test_benchmarks_lists_the_shipped_specs(capsys):
    assert main(["benchmarks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(p.stem for p in (ROOT / "benchmarks").glob("*.yaml"))
    assert ("images                    classification  imagefolder      Hard images of your own "
            "folder") in lines[names.index("images")]  # fmt: skip
    assert "texts                     classification  table" in lines[names.index("texts")]
