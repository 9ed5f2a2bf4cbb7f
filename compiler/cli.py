"""The ``fewmul`` command line. Each subcommand lives in :mod:`fewmul.compiler.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from .commands import COMMANDS

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fewmul",
        description="Train binary-weight neural networks described in YAML, compile them to "
                    "multiplier-free Amaranth gateware and check the gateware bit for bit under "
                    "cocotb + Verilator.",
        epilog="Typical use: fewmul train spec.yaml -o run/ && fewmul compile run/ -o build/ && "
               "fewmul sim build/ --images 200.  'fewmul COMMAND --help' for details.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .spec import SpecError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"fewmul {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fewmul {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
