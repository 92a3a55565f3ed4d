"""DPM-Solver++ with Karras sigmas ending at sigma_min and a second-order final step: the last
two sigmas are equal (h = 0), which the step must take as the identity, as diffusers does."""

from __future__ import annotations

import pytest
import torch

from gencore.integrations.diffusers import DPMSolverMultistepScheduler

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("steps,lower_order_final", [(10, False), (20, True)])
def test_karras_sigma_min_second_order_final_step_matches_diffusers(steps, lower_order_final):
    cfg = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, use_karras_sigmas=True,
               final_sigmas_type="sigma_min", lower_order_final=lower_order_final)
    ours, theirs = DPMSolverMultistepScheduler(**cfg), diffusers.DPMSolverMultistepScheduler(**cfg)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 6, generator=g, dtype=torch.float64) * float(theirs.init_noise_sigma)
    a, b = x.clone(), x.clone()
    for t in theirs.timesteps:
        a = ours.step(0.3 * a + 0.1, t, a).prev_sample
        b = theirs.step(0.3 * b + 0.1, t, b).prev_sample
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # diffusers holds its sigmas in float32
