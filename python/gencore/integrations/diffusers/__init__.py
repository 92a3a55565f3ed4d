"""diffusers-compatible schedulers whose ``step`` is one fused gencore op.

Change one import and keep the pipeline::

    from gencore.integrations.diffusers import DPMSolverMultistepScheduler
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)

Each class has the name, the config keys (``register_to_config``), the public attributes
(``timesteps``, ``sigmas``, ``init_noise_sigma``, ``order``, ``alphas_cumprod``, ...) and the
method signatures of its diffusers namesake (pipelines find ``eta``/``generator`` by reading
``step``'s signature), and subclasses diffusers' ``SchedulerMixin``/``ConfigMixin``, so
``from_config``/``save_pretrained``/``from_pretrained`` work and saved configs load in either
library. The schedule is built as diffusers builds it (float32 betas and cumulative product,
:func:`gencore.diffusion.make_schedule` with ``compute_dtype=torch.float32``), so the per-step
coefficients are the same numbers; the timestep and sigma grids come from
:mod:`gencore.diffusion.schedules`.

Configs move between scheduler classes as in diffusers: keys of another class are ignored, and a
value a class does not act on (``variance_type="fixed_small"`` given to DPM-Solver, ``None``
given to DDPM) is accepted and has the effect it has in diffusers. An option diffusers
implements and gencore does not raises ``NotImplementedError`` naming it; a value diffusers
rejects is rejected where diffusers rejects it (``__init__``, ``set_timesteps`` or ``step``).

Noise: by default drawn exactly as diffusers draws it (``randn_tensor`` from ``generator``, at
the same points), so outputs match diffusers'. ``scheduler.use_gencore_noise(seed)`` switches to
gencore's counter-based noise drawn inside the kernel (``stream`` = the number of ``step``
calls since ``set_timesteps``), independent of batch size and device.

Classifier-free guidance fused into the step: ``scheduler.guided_step(noise_pred, t, latents,
guidance_scale=7.5, ...)`` takes the stacked ``[uncond; cond]`` prediction (the batch layout
of diffusers' pipelines) and computes ``uncond + s * (cond - uncond)`` in the same pass as the
update, instead of a separate elementwise kernel.

One module per scheduler (``ddpm``, ``ddim``, ``euler``, ``euler_ancestral``, ``heun``,
``dpm_solver_multistep``, ``flow_match_euler``) over a shared ``_base``. This package imports
diffusers (an optional dependency); ``import gencore`` does not.
"""

from __future__ import annotations

from gencore.integrations.diffusers.ddim import DDIMScheduler
from gencore.integrations.diffusers.ddpm import DDPMScheduler
from gencore.integrations.diffusers.dpm_solver_multistep import DPMSolverMultistepScheduler
from gencore.integrations.diffusers.euler import EulerDiscreteScheduler
from gencore.integrations.diffusers.euler_ancestral import EulerAncestralDiscreteScheduler
from gencore.integrations.diffusers.flow_match_euler import FlowMatchEulerDiscreteScheduler
from gencore.integrations.diffusers.heun import HeunDiscreteScheduler

__all__ = [
    "DDIMScheduler",
    "DDPMScheduler",
    "DPMSolverMultistepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",
    "HeunDiscreteScheduler",
]
