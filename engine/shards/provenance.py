"""Provenance carried by every artifact: git hash, package versions, host facts."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "hardbench",
    "torch",
    "torchvision",
    "ray",
    "mlflow",
    "pyarrow",
    "numpy",
    "scipy",
    "scikit-learn",
)


def git_revision(path: Path | str | None = None) -> dict[str, object]:
    """Git commit and dirty flag of the checkout holding ``path`` (the engine by default).

    Returns:
        ``{"commit": sha or "unknown", "dirty": bool or None}``.
    """
    cwd = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``"not installed"`` where absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance() -> dict[str, object]:
    """Git revision, package versions and Python/platform of this process."""
    return {
        "git": git_revision(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
