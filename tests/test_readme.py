"""The README's runnable example runs and its claims about the noise hold."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    if not README.is_file():
        pytest.skip("README.md is not next to the tests (installed-package run)")
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_example_runs():
    blocks = [b for b in _blocks() if "gencore.randn" in b]
    assert blocks, "the README has a runnable gencore example"
    ns: dict = {}
    exec(compile(blocks[0], str(README), "exec"), ns)
    samples = ns["samples"]
    assert samples.shape == (1000, 2)
    # the two-component mixture at x = -2 and x = +2 with equal weights
    assert abs(float((samples[:, 0] > 0).double().mean()) - 0.5) < 0.06
    assert ns["prev"].shape == ns["x_t"].shape
