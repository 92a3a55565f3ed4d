from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Property-based fuzzing (tests/fuzz): "ci" (the default) is derandomized, so a CI run is
# repeatable, with a few hundred examples per op; "long" draws ten times as many, freshly random
# (``pytest tests/fuzz --hypothesis-profile=long``, or GENCORE_HYPOTHESIS_PROFILE=long).
_FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=_FUZZ_HEALTH)
settings.register_profile("long", max_examples=3000, deadline=None, print_blob=True,
                          suppress_health_check=_FUZZ_HEALTH)
settings.load_profile(os.environ.get("GENCORE_HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for kernel tests: cpu or cuda")


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    name = request.config.getoption("--device")
    if name.startswith("cuda"):
        import gencore

        if not gencore.info()["cuda_available"]:
            pytest.skip("CUDA kernels or device not available")
    return torch.device(name)


@pytest.fixture
def one_thread():
    """Tiny networks and tensors run fastest on one thread (torch's pool only adds overhead, and
    contention on a shared machine); test modules opt in with ``pytest.mark.usefixtures``."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield
