"""The README's "Your own data" example, run exactly as printed, from a folder outside the repo.

The test reads the section's fenced blocks verbatim: the folder layout (its class
folders), the spec files (a ``yaml`` block whose first line is ``# <file name>``) and
the console blocks (``$ <command>`` lines and the output printed under each). It
writes real Fashion-MNIST images into the class folders the README names, writes the
spec files, runs every printed command with the venv's ``hardbench`` from that folder
(a temporary runs directory and MLflow store), and checks each command's output
against what the README shows and that the card names the user's classes. Change the
example and this test follows it; break it and this test fails.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.archives import read_idx

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECTION = "## Your own data"
FASHION = Path("/usr/share/datasets/fashion-mnist")
# Class folder names the README may use, in Fashion-MNIST's label order.
FASHION_NAMES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                 "sneaker", "bag", "boot")  # fmt: skip
PER_CLASS = 30  # real images written per class folder: a run of about a minute
COMMAND_TIMEOUT_S = 900  # one printed command, on 2 busy CPU cores
CLEARED_ENV = ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "HARDBENCH_SPEC_ROOT", "HARDBENCH_CACHE_DIR")


def _section() -> str:
    text = README.read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    body = text.split(SECTION, 1)[1]
    return body.split("\n## ", 1)[0]


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """``(info string, lines)`` of every fenced block, in order."""
    return [(info.strip(), body.splitlines())
            for info, body in re.findall(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)]  # fmt: skip


def _example() -> tuple[str, list[str], dict[str, str], list[tuple[str, list[str]]]]:
    """The image folder, its class folders, the spec files and the ``(command, output)`` shown."""
    folder, classes = "", []
    files: dict[str, str] = {}
    commands: list[tuple[str, list[str]]] = []
    for info, lines in _blocks(_section()):
        top = re.fullmatch(r"([\w.-]+)/(\s.*)?", lines[0].strip()) if lines else None
        if top and not folder:
            folder = top.group(1)
            classes = [m.group(1) for line in lines[1:]
                       if (m := re.match(r"^\s+([\w-]+)/", line))]  # fmt: skip
        elif info == "yaml" and lines and re.fullmatch(r"# [\w.-]+\.ya?ml", lines[0]):
            files[lines[0][2:]] = "\n".join(lines) + "\n"
        elif info == "console":
            for line in lines:
                if line.startswith("$ "):
                    commands.append((line[2:], []))
                elif commands and line.strip() != "...":
                    commands[-1][1].append(line)
    return folder, classes, files, commands


def _write_images(folder: Path, classes: list[str]) -> None:
    """``PER_CLASS`` real Fashion-MNIST test images per class folder, as PNG."""
    images = read_idx(FASHION / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    for name in classes:
        assert name in FASHION_NAMES, f"README class folder {name!r} is no Fashion-MNIST class"
        rows = np.flatnonzero(labels == FASHION_NAMES.index(name))[:PER_CLASS]
        (folder / name).mkdir(parents=True)
        for row in rows:
            Image.fromarray(np.asarray(images[row])).save(folder / name / f"{int(row):05d}.png")


def _label(line: str) -> str:
    """What a line of output starts with: the text before its first ':', else its first word."""
    head = line.split(":", 1)[0] if ":" in line else line.split()[0]
    return head.strip()


def _check_output(command: str, shown: list[str], printed: list[str]) -> None:
    """The README's output lines against the real ones.

    ``validate`` prints no number that varies: every line shown must be printed as it
    is. A run's numbers vary: a line without digits must be printed as it is, any
    other line must at least start as one printed does (``stages (s)``, ``card``, a
    table row's bin).
    """
    for line in shown:
        if " validate " in f" {command} " or not re.search(r"\d", line):
            assert line in printed, f"{command!r}: README shows {line!r}; printed:\n" + "\n".join(
                printed
            )
        else:
            label = _label(line)
            assert any(p.strip().startswith(label) for p in printed), (
                f"{command!r}: README shows a line starting {label!r}; printed:\n"
                + "\n".join(printed)
            )


def test_the_readme_own_data_example_runs_as_printed(tmp_path):
    assert (FASHION / "t10k-images-idx3-ubyte.gz").exists(), "run `make datasets`"
    folder, classes, files, commands = _example()
    assert classes and commands, "the README example lost its class folders or its commands"
    assert any(c.split()[:2] == ["hardbench", "run"] for c, _ in commands)
    work = tmp_path / "work"  # the user's folder: not the repository
    work.mkdir()
    _write_images(work / folder, classes)
    for name, text in files.items():
        (work / name).write_text(text)
    hardbench = Path(sys.executable).parent / "hardbench"
    assert hardbench.is_file(), f"no hardbench console script beside {sys.executable}"
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env["PATH"] = f"{hardbench.parent}{os.pathsep}{env.get('PATH', '')}"
    env["HARDBENCH_RUNS_DIR"] = str(tmp_path / "runs")
    runs = 0
    for command, shown in commands:
        done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT_S)  # fmt: skip
        assert command.split()[0] == "hardbench", command
        assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{done.stderr}"
        printed = done.stdout.splitlines()
        _check_output(command, shown, printed)
        if command.split()[1] != "run":
            continue
        runs += 1
        card_md = Path(next(p.split(": ", 1)[1] for p in printed if p.startswith("card: ")))
        card = json.loads((card_md.parent / "card.json").read_text())
        assert card["class_names"] == sorted(classes)  # the user's classes, not Fashion-MNIST's
        assert card["dataset"]["num_samples"] == PER_CLASS * len(classes)
        assert Path(card_md).is_relative_to(tmp_path / "runs")
    assert runs >= 1
