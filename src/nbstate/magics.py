"""The ``%nbstate`` line magic: parses arguments, calls porcelain, prints. No logic of its own."""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sqlite3
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand

from . import porcelain
from .blobs import BlobError
from .bundle import BundleError
from .store import StoreError
from .timetravel import CheckoutError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n\n{self.format_usage()}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise _HelpShown(message or "")


class _HelpShown(Exception):
    pass


class _LeftOut:
    """Takes the arguments of a verb the parser leaves out."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass


_LEFT_OUT = _LeftOut()


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``%nbstate`` lines; with ``verb``, one that knows that verb alone (what a
    line naming it needs: building every verb's parser takes longer than most verbs' work)."""
    parser = _Parser(prog="%nbstate", description="Time travel for this kernel's state.")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    def add(name: str, help: str) -> Any:
        return sub.add_parser(name, help=help) if verb in (None, name) else _LEFT_OUT

    p = add("log", help="the history of this notebook's state")
    p.add_argument("-n", type=porcelain.positive_int, default=None, help="show at most N commits (default: the newest 100; --json: all)")
    p.add_argument("--all", action="store_true", help="commits of every branch, not only HEAD's history")
    p.add_argument("--graph", action="store_true", help="draw the commit graph")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("status", help="store, HEAD, branch, variables that cannot be stored")
    p.add_argument("--json", action="store_true")
    p = add("undo", help="variable state back N cell runs (code untouched)")
    p.add_argument("n", nargs="?", type=porcelain.positive_int, default=1)
    p = add("checkout", help="restore the state of REF: commit id/prefix, branch, tag, HEAD~N, @{-1}")
    p.add_argument("ref")
    p.add_argument("--code", action="store_true", help="also write that commit's cells back into the notebook file")
    p = add("commit", help="a named checkpoint of the current state")
    p.add_argument("-m", "--message", required=True)
    p = add("branch", help="list branches, create NAME, delete (-d) or rename (-m OLD NEW)")
    p.add_argument("names", nargs="*")
    p.add_argument("-d", "--delete", action="store_true")
    p.add_argument("-m", "--move", action="store_true")
    p = add("tag", help="list tags, tag REF (default HEAD) as NAME, or delete (-d)")
    p.add_argument("names", nargs="*")
    p.add_argument("-d", "--delete", action="store_true")
    p = add("diff", help="variables and code that differ between two commits (default HEAD~1 HEAD)")
    p.add_argument("a", nargs="?")
    p.add_argument("b", nargs="?")
    p = add("export", help="write a state to DEST: a directory, DEST.nbstate, or s3://bucket/prefix")
    p.add_argument("dest")
    p.add_argument("--ref", default="HEAD")
    p.add_argument("--history", action="store_true", help="carry the whole commit graph along")
    p.add_argument("--bandwidth", default=None, help="e.g. 100MB/s: how fast the bytes will travel")
    p = add("import", help="restore the state a bundle holds into this kernel")
    p.add_argument("src")
    p.add_argument("--plan-only", action="store_true", help="print what would be loaded and replayed; change nothing")
    p.add_argument("--trust", action="store_true", help="import a bundle your key did not sign (it runs code made elsewhere)")
    p = add("init", help="choose the store (and the notebook file) for this kernel")
    p.add_argument("notebook", nargs="?", default=None, help="path of the notebook this kernel runs")
    p.add_argument("--store", default=None, help="store directory (default: $NBSTATE_STORE or ./.nbstate)")
    return parser


VERBS = ("log", "status", "undo", "checkout", "commit", "branch", "tag", "diff", "export", "import", "init")


@functools.cache
def _parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser for lines that start with ``verb`` (None: any line), built once."""
    return build_parser(verb if verb in VERBS else None)


def parse_line(line: str) -> argparse.Namespace:
    words = shlex.split(line)
    return _parser(words[0] if words and words[0] in VERBS else None).parse_args(words)


@magics_class
class NbstateMagics(Magics):
    def __init__(self, shell: Any, extension: Any) -> None:
        super().__init__(shell)
        self.extension = extension

    @no_var_expand  # refs like @{-1} must reach us as typed
    @line_magic
    def nbstate(self, line: str) -> None:
        """Time travel for this kernel: %nbstate log | status | init. `%nbstate -h` for help."""
        try:
            args = parse_line(line)
        except _HelpShown as shown:
            print(_parser().format_help() if not str(shown) else str(shown))
            return
        recorder = self.extension.recorder
        if args.verb == "init":
            try:
                recorder = self.extension.start(store=args.store, notebook=args.notebook)
            except Exception as exc:
                from . import describe_failure

                still = (
                    f"Still recording into {recorder.store.root}." if recorder is not None
                    else "Nothing is recorded in this kernel until a store can be opened."
                )
                raise UsageError(f"cannot record there: {describe_failure(exc)} {still}") from None
            print(f"nbstate: recording into {recorder.store.root} (notebook {recorder.notebook_id})")
            return
        if recorder is None:
            why = self.extension.error or "it was unloaded."
            hint = "" if "init --store" in why else " `%nbstate init --store PATH` records into another store."
            raise UsageError(f"nbstate is not recording in this kernel: {why}{hint}")
        try:
            print(run_verb(porcelain.Session(recorder=recorder), args))
        except (StoreError, CheckoutError, BundleError, ValueError, RuntimeError) as exc:
            raise UsageError(str(exc)) from None
        except BlobError as exc:
            raise UsageError(f"{exc}. `nbstate fsck` lists every damaged blob and what needs it.") from None
        except sqlite3.Error as exc:
            from .store import _is_corruption, damaged_database_message

            if _is_corruption(exc):
                raise UsageError(damaged_database_message(recorder.store.root, exc)) from None
            raise UsageError(f"the store at {recorder.store.root} cannot be read: {exc}") from None


def run_verb(session: porcelain.Session, args: argparse.Namespace) -> str:
    """Carry out a parsed verb on a Session and return the text to show (shared with the CLI)."""
    verb = args.verb
    if verb == "log":
        return porcelain.log_text(session, args.n, all_branches=args.all, graph=args.graph, as_json=args.json)
    if verb == "status":
        st = session.status()
        return json.dumps(porcelain.status_dict(st), indent=1) if args.json else porcelain.format_status(st)
    if verb == "undo":
        return session.undo(args.n).summary()
    if verb == "checkout":
        return session.checkout(args.ref, code=args.code).summary()
    if verb == "commit":
        c = session.commit(args.message)
        return f"committed {c.short}: {args.message}"
    if verb == "branch":
        return porcelain.branch_command(session, args.names, delete=args.delete, move=args.move)
    if verb == "tag":
        return porcelain.tag_command(session, args.names, delete=args.delete)
    if verb == "diff":
        return session.diff(args.a, args.b).format()
    if verb == "export":
        return session.export(args.dest, ref=args.ref, history=args.history, bandwidth=args.bandwidth)
    if verb == "import":
        return session.import_bundle(args.src, plan_only=args.plan_only, trust=args.trust)
    raise UsageError(f"unknown verb {verb}")
