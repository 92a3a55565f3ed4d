"""``gencore info`` (the info contract) and ``gencore bench`` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gencore

PYTHON_DIR = str(Path(gencore.__file__).resolve().parent.parent)


def _run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "gencore", *args], capture_output=True, text=True, check=False,
                          env=env, timeout=300)


def test_info_json_contract():
    res = _run("info", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    types = {"version": str, "torch": str, "cpu_native": bool, "cuda_compiled": bool, "cuda_available": bool,
             "cuda_archs": list, "threads": int, "simd": str}
    for key, typ in types.items():
        assert key in info, key
        assert isinstance(info[key], typ), (key, info[key])
    assert all(isinstance(a, str) and a for a in info["cuda_archs"])
    assert info["version"] == gencore.__version__
    assert info["threads"] >= 1
    assert info["cuda_compiled"] or not info["cuda_available"]
    assert info["cuda_compiled"] == bool(info["cuda_archs"])
    if info["cpu_native"]:
        assert "rng" in info["families"] and "vae" in info["families"]
        assert info["simd"] in ("sse2", "avx2", "avx512", "neon", "scalar")
    assert info == json.loads(json.dumps(gencore.info()))  # the same dict as the library call


def test_info_plain_text(capsys):
    from gencore.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "cpu_native" in out and "simd" in out


def test_bench_rejects_unknown_family(capsys):
    from gencore.cli import main

    assert main(["bench", "no_such_family", "--quiet"]) == 2
    assert "no_such_family" in capsys.readouterr().err
