"""Schedulers that compute in float32/float64 while the model runs in 16 bits: the noise drawn in
the model's dtype (as diffusers draws it) is cast to the step's dtype."""

from __future__ import annotations

import pytest
import torch

from gencore.integrations import diffusers as G

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("name, step_kw", [("EulerAncestralDiscreteScheduler", {}),
                                           ("EulerDiscreteScheduler", {"s_churn": 1.0})])
def test_float64_sample_with_bfloat16_model_output_matches_diffusers(name, step_kw):
    outs = []
    for cls in (getattr(G, name), getattr(diffusers, name)):
        s = cls()
        s.set_timesteps(5)
        x = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        x = x * float(s.init_noise_sigma)
        m = torch.randn(2, 4, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
        s.is_scale_input_called = True
        outs.append(s.step(m, s.timesteps[1], x, generator=torch.Generator().manual_seed(0), **step_kw).prev_sample)
    assert outs[0].dtype == outs[1].dtype
    torch.testing.assert_close(outs[0].double(), outs[1].double(), rtol=2e-2, atol=1e-2)


def test_ddim_half_sample_with_float32_variance_noise():
    """diffusers promotes to float32; gencore computes in float32 and keeps the sample's dtype."""
    outs = []
    for cls in (G.DDIMScheduler, diffusers.DDIMScheduler):
        s = cls()
        s.set_timesteps(10)
        x = torch.randn(2, 4, generator=torch.Generator().manual_seed(3)).to(torch.float16)
        m = torch.randn(2, 4, generator=torch.Generator().manual_seed(1)).to(torch.float16)
        z = torch.randn(2, 4, generator=torch.Generator().manual_seed(2))
        outs.append(s.step(m, s.timesteps[3], x, eta=1.0, variance_noise=z).prev_sample)
    assert outs[0].dtype == torch.float16
    torch.testing.assert_close(outs[0].float(), outs[1].float(), rtol=2e-3, atol=2e-3)
