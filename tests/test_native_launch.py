"""gencore._native.launch: the one way Python calls a kernel. Tensors, integer addresses and None
all reach the binding as pointers; the launch context is one tuple; argument errors surface as
TypeError or ValueError before a kernel runs; the eager bypass of fill_ behaves like its op."""

from __future__ import annotations

import pytest
import torch

import gencore
from gencore import _native
from gencore.rng import reference

native = pytest.mark.skipif(not _native.use_native(), reason="native kernels not built or forced off")


@pytest.mark.parametrize("dtype,code", [(torch.float32, 0), (torch.float64, 1), (torch.float16, 2),
                                        (torch.bfloat16, 3)])
def test_launch_context_on_cpu(dtype, code):
    t = torch.empty(2, 3, dtype=dtype)
    assert _native.launch_context(t) == (code, -1, 0, torch.get_num_threads())
    assert _native.launch_context(t) == (_native.dtype_code(dtype), _native.device_index(t), _native.cuda_stream(t),
                                         _native.threads())


@native
def test_tensor_int_and_none_pointers_agree():
    a, b = torch.empty(5, 7), torch.empty(5, 7)
    _native.launch("rng_fill", a, a, 5, 7, 11, 2, 3, False)
    _native.launch("rng_fill", b, b.data_ptr(), 5, 7, 11, 2, 3, False)
    ref = torch.empty(5, 7)
    reference.fill(ref, 11, 2, 3)
    assert torch.equal(a, ref) and torch.equal(b, ref)
    mu, lv = torch.randn(4, 6), torch.randn(4, 6)
    kl = torch.empty(4)
    _native.launch("vae_forward", mu, mu, lv, None, None, kl, 4, 6, 0, 0, 0)  # z=None: not wanted
    assert torch.equal(kl, gencore.vae.gaussian_kl(mu, lv))


@native
def test_bad_arguments_raise_before_the_kernel():
    out = torch.empty(3, 4)
    with pytest.raises(TypeError):
        _native.launch("rng_fill", out, "not a tensor", 3, 4, 0, 0, 0, False)
    with pytest.raises(TypeError):
        _native.call("rng_fill", out, 3, 4, 0, 0, 0, False, (0, -1, 0))  # launch context of 3
    mu = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="nothing to compute"):
        _native.launch("vae_forward", mu, mu, mu, None, None, None, 2, 3, 0, 0, 0)


@native
def test_fill_bypass_bumps_the_version_like_the_op():
    out = torch.empty(4, 5)
    v = out._version
    gencore.rng.fill_(out, seed=1)
    assert out._version > v
    w = torch.ones(4, 5, requires_grad=True)
    y = w * 2
    saved = y.exp()  # exp saves its output
    gencore.rng.fill_(saved, seed=1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.sum().backward()


def test_fill_of_a_tensor_that_requires_grad_matches_a_plain_fill():
    leaf = torch.zeros(3, 4, requires_grad=True)
    v = leaf._version
    gencore.rng.fill_(leaf, seed=0)
    assert leaf._version > v
    assert torch.equal(leaf.detach(), gencore.randn(3, 4, seed=0))
