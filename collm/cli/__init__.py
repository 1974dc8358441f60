"""The `collm` command. Each subcommand lives in its own module of this
package, exposing `add_parser(subparsers)` and `run(args) -> int`; modules
import heavy libraries (torch, fastapi) inside `run` only, so that `--help`
and bad-input errors stay fast."""

from __future__ import annotations

import argparse
import importlib
import sys

from collm import __version__
from collm.errors import CollmError

COMMANDS = ["ask", "models", "bank", "eval", "calibrate", "serve", "report", "plan", "demo"]


def add_allow_ragged(p) -> None:
    """--allow-ragged, for the commands that read banks (collm.bank.load_bank)."""
    p.add_argument("--allow-ragged", action="store_true",
                   help="read a bank whose problems hold different numbers of samples (K is then the smallest), "
                        "or a problem twice; refused by default")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="collm", description="Compute-optimal LLM inference: spend test-time compute where it changes the answer.")
    p.add_argument("--version", action="version", version=f"collm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"collm.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"collm.cli.{name}":
                continue  # subcommand not written yet
            raise
        sp = mod.add_parser(sub)
        sp.set_defaults(_run=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
