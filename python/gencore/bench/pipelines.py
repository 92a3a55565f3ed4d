"""gencore's diffusers-compatible schedulers against diffusers' own, in one run.

- Per-step scheduler time: the median time of one ``step`` call (averaged over a whole
  ``set_timesteps`` schedule), plain and with classifier-free guidance (diffusers: the eager
  ``uncond + s * (cond - uncond)`` then ``step``; gencore: ``guided_step`` on the stacked
  prediction, the combine fused into the step kernel), at two latent sizes.
- Whole-pipeline time: a tiny randomly initialised ``StableDiffusionPipeline`` (and an SD3
  pipeline for flow matching) with each scheduler, gencore's against diffusers'.

Needs diffusers and transformers (the ``bench`` extra).
"""

from __future__ import annotations

import logging

import torch

from gencore.bench.common import Section, time_fn

__all__ = ["pipeline_times", "run", "step_times"]

log = logging.getLogger(__name__)

NAMES = ("DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
         "HeunDiscreteScheduler", "DPMSolverMultistepScheduler", "FlowMatchEulerDiscreteScheduler")
SD = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def _config(name):
    return {} if name.startswith("FlowMatch") else dict(SD)


def _loop_time(sched, x, out, guided: bool, scale: float = 7.5, steps: int = 20, repeat: int = 5) -> float:
    """Median seconds per ``step`` over a whole schedule."""
    takes_gen = "generator" in __import__("inspect").signature(sched.step).parameters
    both = torch.cat([out, out * 0.9]) if guided else None

    def one_pass():
        sched.set_timesteps(steps)
        g = torch.Generator().manual_seed(0)
        kw = {"generator": g} if takes_gen else {}
        xs = x
        for t in sched.timesteps:
            if guided and hasattr(sched, "guided_step"):
                xs = sched.guided_step(both, t, xs, guidance_scale=scale, **kw).prev_sample
            elif guided:
                u, c = both.chunk(2)
                xs = sched.step(u + scale * (c - u), t, xs, **kw).prev_sample
            else:
                xs = sched.step(out, t, xs, **kw).prev_sample
        return xs

    sched.set_timesteps(steps)
    n = len(sched.timesteps)
    return time_fn(one_pass, warmup=1, repeat=repeat) / n


def step_times(shapes=((1, 4, 64, 64), (1, 4, 128, 128)), names=NAMES, steps: int = 20, repeat: int = 5) -> Section:
    import diffusers

    from gencore.integrations import diffusers as G

    sec = Section(title="Scheduler step, gencore vs diffusers (fp32, CPU, median per step over a "
                        f"{steps}-step schedule)",
                  columns=["scheduler", "latents", "diffusers ms", "gencore ms", "speedup",
                           "guided: diffusers ms", "guided: gencore ms", "guided speedup"])
    for shape in shapes:
        x = torch.randn(shape)
        out = torch.randn(shape)
        for name in names:
            cfg = _config(name)
            ref = [_loop_time(getattr(diffusers, name)(**cfg), x, out, g, steps=steps, repeat=repeat)
                   for g in (False, True)]
            ours = [_loop_time(getattr(G, name)(**cfg), x, out, g, steps=steps, repeat=repeat) for g in (False, True)]
            sec.add(name.replace("Scheduler", ""), "x".join(map(str, shape)), ref[0] * 1e3, ours[0] * 1e3,
                    ref[0] / ours[0], ref[1] * 1e3, ours[1] * 1e3, ref[1] / ours[1])
    sec.notes.append("guided: the stacked (2 x batch) prediction is combined as uncond + 7.5 (cond - uncond); "
                     "diffusers in eager torch ops before step, gencore inside the step kernel (guided_step).")
    return sec


def pipeline_times(latent_sizes=(16, 32), names=NAMES, steps: int = 10, repeat: int = 3) -> Section:
    import diffusers

    from gencore.integrations import diffusers as G
    from gencore.integrations._tiny import prompt_embeds, tiny_sd3_pipeline, tiny_sd_pipeline

    sec = Section(title=f"Tiny pipelines end to end, {steps} steps, guidance 5 (fp32, CPU)",
                  columns=["scheduler", "latents", "diffusers ms", "gencore ms", "ratio"])
    diffusers.utils.logging.set_verbosity_error()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: the thread pool only adds overhead and jitter
    try:
        _pipeline_rows(sec, diffusers, G, latent_sizes, names, steps, repeat, prompt_embeds, tiny_sd3_pipeline,
                       tiny_sd_pipeline)
    finally:
        torch.set_num_threads(threads)
    sec.notes.append("Randomly initialised tiny UNet2DConditionModel / SD3Transformer2DModel: the network is small, "
                     "so the scheduler's share of the time is larger than in a real model; output_type='latent'; "
                     "one torch thread.")
    return sec


def _pipeline_rows(sec, diffusers, G, latent_sizes, names, steps, repeat, prompt_embeds, tiny_sd3_pipeline,
                   tiny_sd_pipeline):
    for size in latent_sizes:
        for name in names:
            flow = name.startswith("FlowMatch")
            pipe = (tiny_sd3_pipeline if flow else tiny_sd_pipeline)(getattr(diffusers, name)(**_config(name)), size)
            if flow:
                g = torch.Generator().manual_seed(0)
                pe, pooled = torch.randn(1, 8, 16, generator=g), torch.randn(1, 16, generator=g)
                kw = dict(prompt_embeds=pe, pooled_prompt_embeds=pooled, negative_prompt_embeds=torch.zeros_like(pe),
                          negative_pooled_prompt_embeds=torch.zeros_like(pooled))
            else:
                pos, neg = prompt_embeds(pipe.text_encoder, batch=1)
                kw = dict(prompt_embeds=pos, negative_prompt_embeds=neg)
            kw.update(num_inference_steps=steps, guidance_scale=5.0, height=size * 2, width=size * 2,
                      output_type="latent")
            times = []
            cfg = pipe.scheduler.config
            for mod in (diffusers, G):
                pipe.scheduler = getattr(mod, name).from_config(cfg)
                times.append(time_fn(lambda p=pipe, k=kw: p(generator=torch.Generator().manual_seed(0), **k),
                                     warmup=1, repeat=repeat))
            sec.add(name.replace("Scheduler", ""), f"{size}x{size}", times[0] * 1e3, times[1] * 1e3,
                    times[0] / times[1])


def run(quick: bool = False, device: str = "cpu") -> list[Section]:
    """Step and pipeline timings (CPU; ``device`` other than cpu is not used here)."""
    if quick:
        return [step_times(shapes=((1, 4, 32, 32), (1, 4, 64, 64)), steps=10, repeat=3),
                pipeline_times(latent_sizes=(8, 16), steps=5, repeat=2)]
    return [step_times(), pipeline_times()]
