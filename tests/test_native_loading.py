"""``import gencore`` without working native kernels: GENCORE_FORCE_REFERENCE=1, and an
extension that fails to import (one warning with the reason, then the reference path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gencore

PYTHON_DIR = str(Path(gencore.__file__).resolve().parent.parent)

# Runs after the setup code; prints a JSON summary on its last line.
PROBE = textwrap.dedent("""
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import gencore
        import gencore.vae
        import gencore.rng.reference as ref
        import torch
        x = gencore.randn(3, 5, seed=7, stream=2)
        r = torch.empty(3, 5)
        ref.fill(r, 7, 2, 0)
        mu = torch.zeros(3, 5, requires_grad=True)
        z, kl = gencore.vae.reparameterize_kl(mu, torch.zeros(3, 5), seed=7, stream=2)
        (z.sum() + kl.sum()).backward()
        import gencore._native as nat
        ok = (bool(torch.equal(x, r)) and bool(torch.equal(z.detach(), r))
              and bool(torch.equal(mu.grad, torch.ones(3, 5))))
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning) and "gencore" in str(w.message)]
    print(json.dumps({"info": gencore.info(), "warnings": msgs, "ok": ok, "native_used": nat.use_native(x)}))
""")

BREAK_C = textwrap.dedent("""
    import sys
    class _Broken:
        def find_spec(self, name, path=None, target=None):
            if name == "gencore._C":
                raise ImportError("simulated broken extension: undefined symbol _ZN3foo")
            return None
    sys.meta_path.insert(0, _Broken())
""")


def _probe(setup: str, env_extra: dict) -> dict:
    env = dict(os.environ)
    env.pop("GENCORE_FORCE_REFERENCE", None)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra)
    res = subprocess.run([sys.executable, "-c", setup + PROBE], capture_output=True, text=True, check=False, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_force_reference_env():
    out = _probe("", {"GENCORE_FORCE_REFERENCE": "1"})
    assert out["ok"]
    assert out["info"]["force_reference"] is True
    assert out["native_used"] is False
    assert out["warnings"] == []  # forcing the reference is not a failure
    assert out["info"]["cpu_native"] == (gencore.info()["cpu_native"])


def test_broken_extension_warns_once_and_falls_back():
    out = _probe(BREAK_C, {})
    assert out["ok"]
    assert len(out["warnings"]) == 1, out["warnings"]
    assert "simulated broken extension" in out["warnings"][0]
    assert "reference" in out["warnings"][0]
    info = out["info"]
    assert info["cpu_native"] is False and info["cuda_compiled"] is False and info["cuda_available"] is False
    assert "simulated broken extension" in info["load_error"]
    assert out["native_used"] is False
