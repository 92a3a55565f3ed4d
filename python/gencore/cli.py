"""The ``gencore`` command line. Each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys

__all__ = ["main", "COMMANDS"]


def _cmd_info(args: argparse.Namespace) -> int:
    import gencore

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
    from gencore import bench
    from gencore.bench.common import environment, render_markdown, write_json

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


# Subcommand registrars, in help order. Other modules add theirs here.
COMMANDS = [_add_info, _add_bench]


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
        print(f"gencore {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
