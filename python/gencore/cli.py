"""The ``gencore`` command line. Each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import gencore
from gencore import bench, demo, zoo
from gencore.bench.common import environment, render_markdown, write_json
from gencore.checkpoint import atomic_write_bytes
from gencore.images import image_grid, save_png

__all__ = ["COMMANDS", "main"]


def _cmd_info(args: argparse.Namespace) -> int:
    info = gencore.info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:>16}: {v}")
    return 0


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="what this installation runs on")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)


def _cmd_bench(args: argparse.Namespace) -> int:
    families = args.families or None
    results = bench.run(families, quick=args.quick, device=args.device, progress=not args.quiet)
    for name, sections in results.items():
        print(f"## {name}\n")
        print(render_markdown(sections))
    if args.json:
        payload = {"env": environment()}
        payload.update({k: [s.to_dict() for s in v] for k, v in results.items()})
        write_json(args.json, payload)
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmarks (all families by default)")
    p.add_argument("families", nargs="*", help="benchmark families to run (default: all)")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", metavar="PATH", default=None, help="save results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_bench)


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path


    out = Path(args.out or f"runs/{args.model}-{args.data}")
    _, metrics, _ = zoo.train(args.model, args.data, steps=args.steps, seed=args.seed, progress=not args.quiet,
                              out=out, resume=args.resume, checkpoint_every=args.checkpoint_every,
                              **_parse_overrides(args.set))
    print(json.dumps(metrics, indent=2, sort_keys=True, default=str))
    print(f"model written to {out / 'model.safetensors'}", file=sys.stderr)
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model of the zoo on embedded data")
    p.add_argument("model", help=f"one of {', '.join(zoo.MODELS)}")
    p.add_argument("--data", default="digits", help=f"one of {', '.join(zoo.DATA)}")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the family's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default runs/MODEL-DATA)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/train_state.safetensors (refused if it was written with other "
                        "training options; --steps and evaluation options may change)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                   help="save the resumable training state every K steps")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="family hyper-parameter override")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_sample(args: argparse.Namespace) -> int:
    import io
    from pathlib import Path

    import numpy as np
    import torch


    model = zoo.load(args.checkpoint)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"--out {str(out)!r} cannot be created: {exc}") from None
    y = None
    if model.conditional:
        if args.label is not None:
            y = torch.full((args.n,), args.label, dtype=torch.long)
        else:
            y = torch.arange(args.n) % model.num_classes
            y = y.sort(stable=True).values
    elif args.label is not None:
        raise ValueError(f"--label: model {model.name!r} is unconditional")
    x, y = zoo.sample(model, args.n, y, seed=args.seed, sampler=args.sampler, steps=args.steps,
                      guidance_scale=args.guidance, progress=not args.quiet)
    buf = io.BytesIO()
    arrays = {"x": x.numpy()}
    if y is not None:
        arrays["y"] = y.numpy()
    np.savez(buf, **arrays)
    atomic_write_bytes(out / "samples.npz", buf.getvalue())
    written = [out / "samples.npz"]
    if x.dim() == 4:
        nrow = int(np.ceil(args.n / model.num_classes)) if y is not None and args.label is None else 10
        written.append(save_png(image_grid(x, nrow=max(1, nrow)), out / "samples.png"))
    else:  # 2-D data: a scatter plot
        written.append(_scatter(x, y, out / "samples.png"))
    for w in written:
        print(w)
    return 0


def _scatter(x, y, path):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, c=None if y is None else y.numpy(), cmap="tab10")
    ax.set_aspect("equal")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="sample a trained model: a PNG grid and an .npz")
    p.add_argument("checkpoint", help="model.safetensors written by 'gencore train'")
    p.add_argument("--sampler", default=None, help="diffusion sampler (diffusion models)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (diffusion models)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-n", type=int, default=100, help="number of samples")
    p.add_argument("--label", type=int, default=None, help="class of every sample (default: all classes)")
    p.add_argument("--out", default="samples", help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sample)


def _cmd_demo(args: argparse.Namespace) -> int:
    res = demo.run(args.out, fast=args.fast, seed=args.seed, progress=not args.quiet)
    print(f"cfg_accuracy ({res['cfg_accuracy_sampler']}, guidance {res['guidance_scale']}): "
          f"{res['cfg_accuracy']:.3f}")
    print("sampler      steps  digits_fd  accuracy  fused_s  reference_s  speedup")
    for sampler, by_steps in res["digits_fd"].items():
        for steps, fd in by_steps.items():
            t = res["timings"][sampler][steps]
            print(f"{sampler:<12} {steps:>5}  {fd:9.3f}  {res['class_accuracy'][sampler][steps]:8.3f}  "
                  f"{t['fused_seconds']:7.2f}  {t['reference_seconds']:11.2f}  {t['speedup']:7.2f}")
    print(f"train {res['train_seconds']:.1f}s, total {res['total_seconds']:.1f}s; "
          f"wrote {args.out}/samples.png and {args.out}/metrics.json")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the main job: train, sample with fused samplers, measure")
    p.add_argument("--out", default="gencore-demo", help="output directory")
    p.add_argument("--fast", action="store_true", help="quick setting (about 20 s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)


# Subcommand registrars, in help order.
COMMANDS = [_add_demo, _add_train, _add_sample, _add_bench, _add_info]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gencore", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, PermissionError, NotImplementedError) as exc:
        # Bad input from the user: a message and a non-zero exit, no traceback.
        print(f"gencore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The system refused (a full disk, a quota): a message and exit status 1, no traceback.
        print(f"gencore {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
