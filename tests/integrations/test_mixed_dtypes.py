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


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_dpm_solver_output_dtype_as_diffusers(prediction_type):
    """A float32 sample with a float16 model output: diffusers returns the dtype of its converted
    output (float32, or float16 for sample prediction)."""
    outs = []
    for cls in (G.DPMSolverMultistepScheduler, diffusers.DPMSolverMultistepScheduler):
        s = cls(prediction_type=prediction_type)
        s.set_timesteps(6)
        x = torch.randn(2, 4, generator=torch.Generator().manual_seed(3))
        for t in s.timesteps[:3]:
            m = (0.3 * x).to(torch.float16)
            x = s.step(m, t, x).prev_sample
        outs.append(x)
    assert outs[0].dtype == outs[1].dtype
    torch.testing.assert_close(outs[0].float(), outs[1].float(), rtol=2e-3, atol=2e-3)


def test_flow_match_stochastic_float64_draws_float32_noise_as_diffusers():
    outs = []
    for cls in (G.FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler):
        s = cls(stochastic_sampling=True)
        s.set_timesteps(4)
        x = torch.randn(4, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(0)  # 256 draws: torch's vectorised normal sampler
        for t in s.timesteps:
            x = s.step(0.5 * x, t, x, generator=g).prev_sample
        outs.append(x)
    assert outs[0].dtype == outs[1].dtype == torch.float64
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
