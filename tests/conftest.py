import os

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster (2 CPUs) shared by the tests that need one."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def no_tracking_env(monkeypatch):
    """Make runs use their embedded MLflow store, whatever the caller's environment says."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return os.environ


@pytest.fixture(scope="module")
def no_tracking_env_module():
    """:func:`no_tracking_env` for a whole module (module-scoped run fixtures use it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        yield os.environ
