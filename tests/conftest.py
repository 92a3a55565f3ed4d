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


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield
