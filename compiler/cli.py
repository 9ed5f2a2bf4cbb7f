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


def tool_errors() -> tuple[type[Exception], ...]:
    """Failures of an external tool (Yosys, nextpnr, Verilator, the serial link): reported in
    one line that names the tool's log, not as a traceback."""
    from ..boards.flow import BuildError
    from ..boards.host import HostLinkError
    from ..sim.runner import SimulationError
    from .yosys import YosysError
    return YosysError, SimulationError, BuildError, HostLinkError


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
    except tool_errors() as exc:  # the message names the tool's log
        print(f"fewmul {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fewmul {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
