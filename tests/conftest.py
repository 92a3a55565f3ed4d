from __future__ import annotations

import pytest
import torch


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
