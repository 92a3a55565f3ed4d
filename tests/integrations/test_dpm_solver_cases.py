"""DPM-Solver++ drop-in cases against diffusers: Karras sigmas ending at sigma_min with a
second-order final step (the last two sigmas are equal, h = 0, a step the solver must take as the
identity), and the SDE variant driven by per-step ``variance_noise``."""

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


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
def test_sde_dpmsolver_with_variance_noise_matches_diffusers(solver_type):
    """DPM++ 2M SDE Karras with the noise given per step (``variance_noise``) instead of a generator."""
    cfg = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, use_karras_sigmas=True,
               algorithm_type="sde-dpmsolver++", solver_type=solver_type)
    ours, theirs = DPMSolverMultistepScheduler(**cfg), diffusers.DPMSolverMultistepScheduler(**cfg)
    ours.set_timesteps(12)
    theirs.set_timesteps(12)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, generator=g)
    noise = torch.randn(len(theirs.timesteps), 3, 5, generator=g)
    a, b = x.clone(), x.clone()
    for i, t in enumerate(theirs.timesteps):
        a = ours.step(0.2 * a - 0.1, t, a, variance_noise=noise[i]).prev_sample
        b = theirs.step(0.2 * b - 0.1, t, b, variance_noise=noise[i]).prev_sample
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
