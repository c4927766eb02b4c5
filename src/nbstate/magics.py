"""The ``%nbstate`` line magic: parses arguments, calls porcelain, prints. No logic of its own."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from . import porcelain


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n\n{self.format_usage()}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise _HelpShown(message or "")


class _HelpShown(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%nbstate", description="Time travel for this kernel's state.")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    p = sub.add_parser("log", help="the history of this notebook's state")
    p.add_argument("-n", type=int, default=None, help="show at most N commits")
    p.add_argument("--all", action="store_true", help="every notebook in the store")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("status", help="store, HEAD, branch, variables that cannot be stored")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("init", help="choose the store (and the notebook file) for this kernel")
    p.add_argument("notebook", nargs="?", default=None, help="path of the notebook this kernel runs")
    p.add_argument("--store", default=None, help="store directory (default: $NBSTATE_STORE or ./.nbstate)")
    return parser


@magics_class
class NbstateMagics(Magics):
    def __init__(self, shell: Any, extension: Any) -> None:
        super().__init__(shell)
        self.extension = extension

    @line_magic
    def nbstate(self, line: str) -> None:
        """Time travel for this kernel: %nbstate log | status | init. `%nbstate -h` for help."""
        try:
            args = build_parser().parse_args(shlex.split(line))
        except _HelpShown as shown:
            print(build_parser().format_help() if not str(shown) else str(shown))
            return
        recorder = self.extension.recorder
        if args.verb == "log":
            notebook = None if args.all else recorder.notebook_id
            print(porcelain.format_log(porcelain.log(recorder.store, notebook, args.n), as_json=args.json))
        elif args.verb == "status":
            st = porcelain.status(recorder.store, recorder.notebook_id, live=recorder)
            if args.json:
                import json

                print(json.dumps(porcelain.status_dict(st), indent=1))
            else:
                print(porcelain.format_status(st))
        elif args.verb == "init":
            recorder = self.extension.start(store=args.store, notebook=args.notebook)
            print(f"nbstate: recording into {recorder.store.root} (notebook {recorder.notebook_id})")
