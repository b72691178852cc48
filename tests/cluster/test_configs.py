"""Every cluster config we ship parses, has the fields its tool needs, and is secure by default."""

import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def _check_ray_cluster_spec(spec: dict) -> None:
    """Fields KubeRay needs, token auth, a private head, a GPU worker group with bounds."""
    assert tuple(int(p) for p in spec["rayVersion"].split(".")[:2]) >= (2, 52)
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", "the head must not be exposed"
    assert _containers(head["template"])[0]["image"]
    ports = {p["name"]: p["containerPort"] for p in _containers(head["template"])[0]["ports"]}
    assert ports["dashboard"] == 8265 and ports["gcs-server"] == 6379
    gpu_groups = [
        g
        for g in spec["workerGroupSpecs"]
        if any("nvidia.com/gpu" in c["resources"]["limits"] for c in _containers(g["template"]))
    ]
    assert gpu_groups, "no GPU worker group"
    for g in gpu_groups:
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        assert g["groupName"]
    for group in [head, *spec["workerGroupSpecs"]]:
        for c in _containers(group["template"]):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert "RAY_AUTH_TOKEN" not in env or env["RAY_AUTH_TOKEN"] is None, (
                "token in a manifest"
            )


def test_kuberay_raycluster():
    doc = _load("kuberay/raycluster.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    assert doc["metadata"]["name"]
    _check_ray_cluster_spec(doc["spec"])


def test_kuberay_rayjob_entrypoint_exists_and_cluster_is_secure():
    doc = _load("kuberay/rayjob.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["python", "-m"]
    module = ROOT / (argv[2].replace(".", "/") + ".py")
    assert module.is_file(), f"RayJob entrypoint module {argv[2]} does not exist"
    spec_file = argv[3]
    assert (ROOT / spec_file).is_file(), f"RayJob spec {spec_file} is not in the repo"
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["working_dir"]
    assert spec["shutdownAfterJobFinishes"] is True
    _check_ray_cluster_spec(spec["rayClusterSpec"])


def test_rayjob_entrypoint_accepts_its_arguments():
    """The RayJob's arguments are ones `hardbench run` takes (checked without running it)."""
    from engine.cli.parser import build_parser

    argv = shlex.split(_load("kuberay/rayjob.yaml")["spec"]["entrypoint"])[3:]
    args = build_parser().parse_args(["run", *argv])
    assert str(args.runs_dir) == "/mnt/runs"


def test_cluster_launcher_config():
    doc = _load("ray-cluster.yaml")
    for field in ("cluster_name", "provider", "available_node_types", "head_node_type"):
        assert field in doc, field
    types = doc["available_node_types"]
    assert doc["head_node_type"] in types
    gpu = types["gpu_worker"]
    assert 0 <= gpu["min_workers"] <= gpu["max_workers"] <= doc["max_workers"]
    head_cmd = " ".join(doc["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head_cmd
    assert "--dashboard-host=127.0.0.1" in head_cmd, "dashboard/jobs API must stay on loopback"
    assert all(
        "RAY_AUTH_MODE=token" in c for c in doc["worker_start_ray_commands"] if "ray start" in c
    )
    assert "RAY_AUTH_TOKEN=" not in (CLUSTER / "ray-cluster.yaml").read_text().replace(
        "RAY_AUTH_TOKEN=...", ""
    ), "a literal token in the launcher config"


@pytest.mark.parametrize("path", sorted(p.relative_to(CLUSTER) for p in CLUSTER.rglob("*.yaml")))
def test_every_shipped_config_parses_and_enables_token_auth(path):
    text = (CLUSTER / path).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs
    assert "mode: token" in text or "RAY_AUTH_MODE=token" in text, f"{path} has no token auth"
