"""Placement: the resources the spec names reach Ray (replicas, scoring pool, eval models)."""

import pytest

from engine.distributed.replicas import replica_scaling_config, resolve_num_workers
from engine.distributed.scoring import pool_size
from engine.spec import SpecError, load_spec

TINY = "tests/fixtures/tiny.yaml"


def _spec(*overrides):
    return load_spec(TINY, ["replicas.count=8", *overrides])


def test_fractional_gpus_pack_replicas_onto_gpus():
    spec = _spec("replicas.num_workers=auto", "replicas.gpus_per_worker=0.25",
                 "replicas.cpus_per_worker=1")  # fmt: skip
    # 2 GPUs x 4 replicas each = 8 workers, if the CPUs allow it.
    assert resolve_num_workers(spec, cluster_cpus=16, cluster_gpus=2) == 8
    assert resolve_num_workers(spec, cluster_cpus=6, cluster_gpus=2) == 6  # CPU-bound
    assert resolve_num_workers(spec, cluster_cpus=16, cluster_gpus=1) == 4  # GPU-bound
    config = replica_scaling_config(spec, 8)
    assert config.num_workers == 8 and config.use_gpu
    assert config.resources_per_worker == {"CPU": 1.0, "GPU": 0.25}
    with pytest.raises(
        ValueError, match=r"gpus_per_worker is 0\.25 but the Ray cluster has no GPUs"
    ):
        resolve_num_workers(spec, cluster_cpus=16, cluster_gpus=0)


def test_cpu_only_replicas_ask_for_no_gpu():
    spec = _spec("replicas.num_workers=auto", "replicas.cpus_per_worker=0.5")
    assert resolve_num_workers(spec, cluster_cpus=2) == 4
    config = replica_scaling_config(spec, 4)
    assert not config.use_gpu and config.resources_per_worker == {"CPU": 0.5}


def test_scoring_pool_and_eval_model_resources_come_from_the_spec():
    spec = _spec("scoring.cpus_per_actor=0.25", "scoring.num_actors=3",
                 "evaluate.gpus_per_actor=0.5")  # fmt: skip
    assert spec.scoring.cpus_per_actor == 0.25 and spec.scoring.num_actors == 3
    assert spec.evaluate.gpus_per_actor == 0.5
    assert pool_size(num_blocks=100, cluster_cpus=3, cpus_per_actor=0.25) == 8
    assert pool_size(num_blocks=4, cluster_cpus=64, cpus_per_actor=0.25) == 4


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("replicas.gpus_per_worker=1.5", "replicas.gpus_per_worker: must be 0, a fraction"),
        ("replicas.gpus_per_worker=-1", "replicas.gpus_per_worker: must be 0, a fraction"),
        ("replicas.max_failures=-1", "replicas.max_failures: must be >= 0"),
        ("replicas.keep_checkpoints=some", "replicas.keep_checkpoints: must be one of last, all"),
        ("scoring.cpus_per_actor=0", "scoring.cpus_per_actor: must be > 0"),
        ("scoring.num_actors=0", "scoring.num_actors: must be 'auto' or an integer >= 1"),
        ("evaluate.gpus_per_actor=2.5", "evaluate.gpus_per_actor: must be 0, a fraction"),
    ],
)
def test_bad_resource_fields_are_named(override, match):
    with pytest.raises(SpecError, match=match):
        _spec(override)
