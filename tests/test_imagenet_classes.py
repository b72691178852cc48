"""ImageNet weights on their own label space: a folder of WordNet-id classes evaluated as is.

The unit tests check the class mapping and that a cut head gives exactly the ImageNet
logits of the benchmark's classes; the build runs real EfficientNet-Lite0 weights,
untrained, on an image folder whose classes are WordNet ids, through real Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.distributed.evaluation import read_predictions
from engine.lifecycle import run_benchmark
from engine.models import create_model, get_model_config
from engine.models.imagenet import imagenet_classes, restrict_head
from engine.spec import load_spec
from engine.training.inputs import prepare_inputs
from engine.training.model_folder import PREDICTIONS_FILE

UNIFORM, SUIT, TENCH = "n03763968", "n04350905", "n01440764"  # ImageNet 652, 834, 0


def test_wordnet_ids_and_category_names_map_to_imagenet_indices():
    got = imagenet_classes([UNIFORM, "suit", "Tench", "goldfish"])
    assert [c["index"] for c in got] == [652, 834, 0, 1]
    assert got[0]["name"] == "military uniform" and got[2]["wnid"] == TENCH
    with pytest.raises(ValueError, match=r"class 'n99999999' is no ImageNet-1k WordNet id"):
        imagenet_classes([UNIFORM, "n99999999"])
    with pytest.raises(ValueError, match=r"class 'sneaker' is no ImageNet-1k class name"):
        imagenet_classes(["sneaker"])
    with pytest.raises(ValueError, match="both ImageNet class 652"):
        imagenet_classes([UNIFORM, "military uniform"])


def test_a_cut_head_gives_the_imagenet_logits_of_those_classes():
    full = create_model("efficientnet_lite0", pretrained=True).eval()
    cut = restrict_head(create_model("efficientnet_lite0", pretrained=True), "efficientnet_lite0",
                        [652, 834, 0]).eval()  # fmt: skip
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(cut(x), full(x)[:, [652, 834, 0]])


def _photo_crops(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    import matplotlib.cbook

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as img:
        photo = np.asarray(img.convert("RGB"))
    out = []
    for _ in range(n):
        top, left = rng.integers(0, 60, 2)
        crop = photo[top : top + 480, left : left + 440]
        out.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return out


def _spec_file(tmp_path: Path, root: Path) -> Path:
    path = tmp_path / "wnid.yaml"
    path.write_text(f"""
metadata: {{name: wnid, version: 1, description: ImageNet classes as WordNet-id folders}}
data: {{source: imagefolder, path: {root}, image_size: [224, 224], channels: 3,
        heldout_fraction: 0.5}}
replicas: {{count: 2, model: strided_cnn, epochs: 2, batch_size: 8, num_workers: 2,
           cpus_per_worker: 0.5}}
scores: [confusion]
shards: {{block_size: 64}}
splits: {{score: confusion, pool: heldout, hard: {{hardest_fraction: 0.25}}, bins: {{count: 2}}}}
evaluate:
  reference_models: [lite0]
  models: [{{name: lite0, model: efficientnet_lite0, weights: pretrained, cpus: 1}}]
tracking: {{experiment: hardbench-tests}}
""")
    return path


@pytest.mark.ray
@pytest.mark.slow
def test_a_wordnet_id_folder_is_evaluated_with_imagenet_weights_as_they_are(
    ray_local, no_tracking_env, tmp_path
):
    rng = np.random.default_rng(0)
    root = tmp_path / "imagenet"
    for cls in (UNIFORM, TENCH):  # the photo is clearly no fish
        (root / cls).mkdir(parents=True)
        for i, crop in enumerate(_photo_crops(12, rng)):
            Image.fromarray(crop).save(root / cls / f"{i:03d}.jpg", quality=90)
    spec = load_spec(_spec_file(tmp_path, root))
    result = run_benchmark(spec, runs_dir=tmp_path / "runs", log=lambda line: None)
    card = json.loads(result.card_paths["json"].read_text())
    lite0 = next(ev for ev in card["evaluation"] if ev["model"] == "lite0")
    mapping = lite0["training"]["imagenet_classes"]
    assert [(c["class"], c["index"]) for c in mapping] == [(TENCH, 0), (UNIFORM, 652)]
    assert "n03763968 = ImageNet 652 (military uniform)" in result.card_paths["md"].read_text()
    # every photo is Grace Hopper in uniform: the untrained ImageNet model says so
    folder = result.run_dir / "models" / "lite0"
    logits = read_predictions(folder / PREDICTIONS_FILE)  # streamed there by the eval pool
    assert logits.shape == (24, 2) and (logits.argmax(1) == 1).all()  # class 1: the uniform
    assert lite0["error_all"] == pytest.approx(0.5, abs=0.26)  # the "tench" half is all wrong
    cache = result.run_dir / "dataset.json"
    from engine.data.cache import CachedInputs

    inputs = CachedInputs(json.loads(cache.read_text())["cache"])[:4]
    full = create_model("efficientnet_lite0", pretrained=True).eval()
    with torch.no_grad():
        x = prepare_inputs(inputs, get_model_config("efficientnet_lite0").preprocess)
        np.testing.assert_allclose(logits[:4], full(x)[:, [0, 652]].numpy(), atol=1e-4)

    from engine.cli import main  # hardbench eval --pretrained: the same restricted logits

    assert main(["eval", str(result.run_dir), "--model", "efficientnet_lite0", "--pretrained",
                 "--label", "again"]) == 0  # fmt: skip
    again = json.loads((result.run_dir / "eval" / "extra" / "again-pool.json").read_text())
    assert again["error_all"] == pytest.approx(lite0["error_all"])

    (root / "n99999999").mkdir()
    for i, crop in enumerate(_photo_crops(2, rng)):
        Image.fromarray(crop).save(root / "n99999999" / f"{i:03d}.jpg")
    with pytest.raises(ValueError, match=r"class 'n99999999' is no ImageNet-1k WordNet id"):
        run_benchmark(load_spec(_spec_file(tmp_path, root)), runs_dir=tmp_path / "runs2",
                      log=lambda line: None)  # fmt: skip
