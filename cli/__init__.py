"""The ``fewmul`` command line, on top of every other package (nothing imports it).

One module per subcommand; each defines ``register(subparsers)``, which adds its
parser and sets ``func`` to a function taking the parsed arguments and returning
the exit code. :data:`COMMANDS` lists them in the order ``fewmul --help`` shows.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = [
    "fewmul.cli.train",
    "fewmul.cli.count",
    "fewmul.cli.data",
    "fewmul.cli.import_",
    "fewmul.cli.export",
    "fewmul.cli.compile",
    "fewmul.cli.sim",
    "fewmul.cli.build",
    "fewmul.cli.run",
    "fewmul.cli.fuzz",
    "fewmul.cli.sweep",
    "fewmul.cli.demo",
]


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
    from fewmul.compiler.spec import SpecError

    from .common import tool_errors
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"fewmul {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except tool_errors() as exc:  # the message names the tool's log
        print(f"fewmul {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fewmul {args.command}: interrupted", file=sys.stderr)
        return 130
