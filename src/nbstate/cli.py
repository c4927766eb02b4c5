"""The ``nbstate`` command: read a store's history without a kernel, and load nbstate everywhere.

A shell over porcelain.py, as thin as the ``%nbstate`` magic: it parses arguments, opens the
store, calls porcelain and prints what comes back. It never starts a kernel and never creates a
store: a path that holds none is an error that says where stores come from. ``install`` and
``uninstall`` touch one marked block of the IPython profile's config file and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, porcelain
from .capture import default_store_location
from .remote import is_url
from .store import DEFAULT_NOTEBOOK, DamagedStore, Store, StoreError

# Exit statuses: 0 done, 1 a file could not be read or written, 2 the command cannot run as
# given (argparse's own usage errors are 2 as well).
_CANNOT_READ = 1
_USAGE = 2
_DAMAGED = 3  # fsck found damage


class CommandError(Exception):
    """A command that cannot run as given; the message says what to do instead."""

    def __init__(self, message: str, status: int = _USAGE) -> None:
        super().__init__(message)
        self.status = status


# --- the store and its notebooks ------------------------------------------------------------------


def open_store(location: str | None, read_only: bool = False) -> Store:
    """The existing store at ``location`` (default: $NBSTATE_STORE or ./.nbstate); a store at a
    URL is read from its local copy, brought up to date first."""
    location = location or default_store_location()
    if is_url(location):
        from .remote import pull

        try:
            location = str(pull(location, for_writing=not read_only))
        except StoreError as exc:
            raise CommandError(str(exc)) from None
    root = Path(location).expanduser()
    if not (root / "nbstate.sqlite").is_file():
        hint = ""
        if (root / ".nbstate" / "nbstate.sqlite").is_file():
            hint = f"\nDid you mean --store {root / '.nbstate'}?"
        raise CommandError(
            f"no nbstate store at {root.resolve()}.\n"
            "A store is written by a kernel that has nbstate loaded (`%load_ext nbstate` in a "
            "notebook, or `nbstate install` to load it in every kernel): it is the .nbstate "
            "directory beside the notebook.\n"
            "Run this command in the notebook's directory, or name the store with --store PATH "
            "or the NBSTATE_STORE environment variable." + hint
        )
    try:
        return Store(root, read_only=read_only)
    except DamagedStore:
        raise  # exit status 1 (3 for fsck), not a usage error
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def _notebooks(store: Store) -> list[str]:
    # Store has no reader for this table yet; this is the only SQL outside store.py/porcelain.py.
    return [row[0] for row in store.db.execute("SELECT id FROM notebooks ORDER BY id")]


def pick_notebook(store: Store, asked: str | None) -> str:
    """The notebook the user named, or the store's only one; an error when that is ambiguous."""
    known = _notebooks(store)
    listing = ", ".join(known) if known else "(none yet)"
    if asked is not None:
        if asked not in known:
            raise CommandError(f"no notebook {asked!r} in the store at {store.root}; it holds: {listing}")
        return asked
    if len(known) > 1:
        raise CommandError(
            f"the store at {store.root} holds {len(known)} notebooks: {listing}.\n"
            "Choose one with --notebook ID."
        )
    return known[0] if known else DEFAULT_NOTEBOOK


def open_session(args: argparse.Namespace, read_only: bool = False) -> porcelain.Session:
    """The history of the notebook the arguments name, offline (no kernel behind it)."""
    store = open_store(args.store, read_only=read_only)
    try:
        return porcelain.Session(store=store, notebook=pick_notebook(store, args.notebook))
    except BaseException:
        store.close()
        raise


# --- verbs ----------------------------------------------------------------------------------------


def _offline(args: argparse.Namespace, verb: Any, read_only: bool = False) -> int:
    session = open_session(args, read_only=read_only)
    try:
        print(verb(session))
    except (ValueError, StoreError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        session.store.close()
    return 0


def _log_text(session: porcelain.Session, args: argparse.Namespace) -> str:
    return porcelain.log_text(session, args.n, all_branches=args.all, graph=args.graph, as_json=args.json)


def run_log(args: argparse.Namespace) -> int:
    return _offline(args, lambda s: _log_text(s, args), read_only=True)


def run_status(args: argparse.Namespace) -> int:
    def text(s: porcelain.Session) -> str:
        st = s.status()
        return json.dumps(porcelain.status_dict(st), indent=1) if args.json else porcelain.format_status(st)

    return _offline(args, text, read_only=True)


def run_show(args: argparse.Namespace) -> int:
    return _offline(args, lambda s: porcelain.show(s, args.ref), read_only=True)


def run_diff(args: argparse.Namespace) -> int:
    return _offline(args, lambda s: s.diff(args.a, args.b).format(), read_only=True)


def run_branch(args: argparse.Namespace) -> int:
    return _offline(args, lambda s: porcelain.branch_command(s, args.names, delete=args.delete, move=args.move))


def run_tag(args: argparse.Namespace) -> int:
    return _offline(args, lambda s: porcelain.tag_command(s, args.names, delete=args.delete))


def run_export(args: argparse.Namespace) -> int:
    from .bundle import BundleError

    def export(s: porcelain.Session) -> str:
        try:
            return s.export(args.dest, ref=args.ref, history=args.history, bandwidth=args.bandwidth)
        except BundleError as exc:
            raise CommandError(str(exc)) from None

    return _offline(args, export, read_only=True)


def run_import(args: argparse.Namespace) -> int:
    if args.plan_only and not (args.kernel or args.notebook_path):
        from .bundle import BundleError, check, opened, plan_import

        try:
            with opened(args.src, trust=True if args.trust else None) as (manifest, store, _, note):
                checked = check(manifest, store, Path.cwd())
                plan = plan_import(manifest, store, checked)
                names = {vid: v.names for vid, v in store.versions(plan.load).items()}
                print("\n".join([plan.describe(names, {r: store.cell_run(r).code for r in plan.replay}), *checked.notes, note]))
        except BundleError as exc:
            raise CommandError(str(exc)) from None
        return 0
    import shlex

    line = f"import {shlex.quote(args.src)}" + (" --plan-only" if args.plan_only else "") + (" --trust" if args.trust else "")
    return run_in_kernel(_kernel_of(args), line)


# --- housekeeping: du, fsck, gc ------------------------------------------------------------------


def run_du(args: argparse.Namespace) -> int:
    from . import maintenance

    store = open_store(args.store, read_only=True)
    try:
        notebook = pick_notebook(store, args.notebook) if args.notebook else None
        usage = maintenance.du(store, notebook, commits_limit=args.n)
    finally:
        store.close()
    print(json.dumps(usage.as_dict(), indent=1) if args.json else maintenance.format_du(usage, top=args.top))
    return 0


def run_fsck(args: argparse.Namespace) -> int:
    from . import maintenance

    try:
        store = open_store(args.store, read_only=True)
        found: list[maintenance.Problem] = []
    except DamagedStore as exc:
        found = [maintenance.Problem("damaged database", "nbstate.sqlite", str(exc))]
        try:  # read what can still be read, to list what the damage affects
            store = Store(Path(args.store or default_store_location()).expanduser(), read_only=True, check_file=False)
        except StoreError:
            store = None
    if store is None:
        report = maintenance.FsckReport(problems=found)
    else:
        try:
            report = maintenance.fsck(store)
        finally:
            store.close()
        report.problems[:0] = found
    print(json.dumps(report.as_dict(), indent=1) if args.json else maintenance.format_fsck(report))
    return 0 if report.ok else _DAMAGED


def run_gc(args: argparse.Namespace) -> int:
    from . import maintenance

    store = open_store(args.store, read_only=args.dry_run)
    try:
        report = maintenance.gc(store, keep_last=args.keep_last, keep_within=args.keep_days * 86400, dry_run=args.dry_run)
    finally:
        store.close()
    print(json.dumps(report.as_dict(), indent=1) if args.json else maintenance.format_gc(report))
    return 0


# --- serve: the history view in a browser -------------------------------------------------------


def run_serve(args: argparse.Namespace) -> int:
    from .web import serve

    store = open_store(args.store, read_only=True)  # the same errors as every verb when there is none
    root = store.root
    store.close()
    return serve(str(root), port=args.port)


# --- verbs that act on a running kernel -----------------------------------------------------------


def find_kernel(notebook_path: str) -> Path:
    """The connection file of the kernel a local Jupyter server runs for ``notebook_path``."""
    import urllib.parse
    import urllib.request

    from jupyter_core.paths import jupyter_runtime_dir

    runtime = Path(jupyter_runtime_dir())
    wanted = Path(notebook_path).name
    for info_file in sorted(runtime.glob("jpserver-*.json")):
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError):
            continue
        url = info.get("url", "")
        if urllib.parse.urlparse(url).hostname not in ("localhost", "127.0.0.1", "::1"):
            continue  # only servers on this machine's loopback are asked
        request = urllib.request.Request(url.rstrip("/") + "/api/sessions", headers={"Authorization": f"token {info.get('token', '')}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                sessions = json.loads(reply.read())
        except (OSError, ValueError):
            continue
        for session in sessions:
            path = session.get("path") or session.get("notebook", {}).get("path", "")
            if Path(path).name == wanted and session.get("kernel"):
                connection = runtime / f"kernel-{session['kernel']['id']}.json"
                if connection.exists():
                    return connection
    raise CommandError(
        f"no running Jupyter server on this machine has a kernel for {notebook_path}.\n"
        "Pass the kernel's connection file with --kernel FILE (`%connect_info` in the notebook shows it)."
    )


def run_in_kernel(connection_file: Path, line: str, timeout: float = 600) -> int:
    """Run ``%nbstate LINE`` in a running kernel (silently: no commit) and relay its output."""
    from jupyter_client import BlockingKernelClient

    if not connection_file.exists():
        raise CommandError(f"no kernel connection file at {connection_file}")
    client = BlockingKernelClient(connection_file=str(connection_file))
    client.load_connection_file()
    client.start_channels()
    status = 0
    _relay.status = 0  # type: ignore[attr-defined]
    try:
        client.wait_for_ready(timeout=30)
        reply = client.execute_interactive(f"%nbstate {line}", silent=True, timeout=timeout, output_hook=_relay)
        if reply["content"].get("status") != "ok":
            status = 1
    except (RuntimeError, TimeoutError) as exc:
        raise CommandError(f"the kernel at {connection_file} did not answer: {exc}", status=_CANNOT_READ) from None
    finally:
        client.stop_channels()
    return _relay.status or status  # type: ignore[attr-defined]


def _relay(msg: dict[str, Any]) -> None:
    kind, content = msg["msg_type"], msg["content"]
    if kind == "stream":
        out = sys.stdout if content["name"] == "stdout" else sys.stderr
        out.write(content["text"])
        if content["name"] == "stderr" and "UsageError" in content["text"]:
            _relay.status = _USAGE  # type: ignore[attr-defined]
    elif kind == "error":
        print(f"{content['ename']}: {content['evalue']}", file=sys.stderr)
        _relay.status = 1  # type: ignore[attr-defined]


_relay.status = 0  # type: ignore[attr-defined]


def _kernel_of(args: argparse.Namespace) -> Path:
    if args.kernel:
        return Path(args.kernel).expanduser()
    if args.notebook_path:
        return find_kernel(args.notebook_path)
    raise CommandError("say which kernel: --kernel CONNECTION_FILE, or --notebook-path NOTEBOOK.ipynb of a running Jupyter server")


def run_checkout(args: argparse.Namespace) -> int:
    return run_in_kernel(_kernel_of(args), f"checkout {args.ref}" + (" --code" if args.code else ""))


def run_undo(args: argparse.Namespace) -> int:
    return run_in_kernel(_kernel_of(args), f"undo {args.n}")


# --- install / uninstall: a marked block in the IPython profile's config --------------------------

_BEGIN = "# >>> nbstate >>>"
_END = "# <<< nbstate <<<"
_BLOCK = f"""{_BEGIN}
# Loads nbstate in every IPython kernel and shell of this profile; `nbstate uninstall` removes
# this block (everything between the two marker lines).
c = get_config()  # noqa: F821
c.InteractiveShellApp.extensions.append("nbstate")
{_END}
"""


def ipython_config_file() -> Path:
    """``$IPYTHONDIR/profile_default/ipython_config.py`` (IPYTHONDIR defaults to ~/.ipython)."""
    ipython_dir = os.environ.get("IPYTHONDIR") or str(Path.home() / ".ipython")
    return Path(ipython_dir).expanduser() / "profile_default" / "ipython_config.py"


def _split_block(text: str) -> tuple[str, str | None]:
    """(``text`` without nbstate's block, the block as found or None when there is none)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, ln in enumerate(lines) if ln.rstrip("\r\n") == _BEGIN]
    if not starts:
        return text, None
    begin = starts[0]
    ends = [i for i in range(begin, len(lines)) if lines[i].rstrip("\r\n") == _END]
    end = ends[0] if ends else len(lines) - 1
    block = "".join(lines[begin : end + 1])
    if begin > 0 and not lines[begin - 1].strip():  # the blank line install put before it
        begin -= 1
    return "".join(lines[:begin] + lines[end + 1 :]), block


def run_install(args: argparse.Namespace) -> int:
    path = ipython_config_file()
    existed = path.exists()
    text = path.read_text() if existed else ""
    rest, block = _split_block(text)
    if block is not None and block.rstrip("\n") == _BLOCK.rstrip("\n"):
        print(f"nbstate is already installed in {path}; nothing changed.")
        return 0
    rest = rest.rstrip("\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((rest + "\n\n" if rest else "") + _BLOCK)
    if block is not None:
        did = "updated nbstate's block in"
    elif existed:
        did = "added nbstate's block to"
    else:
        did = "created"
    print(
        f"nbstate: {did} {path}.\n"
        "Kernels and IPython shells started from now on load nbstate by themselves and record "
        "into .nbstate/ in their working directory (or $NBSTATE_STORE). "
        "`nbstate uninstall` undoes this."
    )
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    path = ipython_config_file()
    text = path.read_text() if path.exists() else ""
    rest, block = _split_block(text)
    if block is None:
        print(f"nbstate is not installed in {path}; nothing changed.")
        return 0
    if rest.strip():
        path.write_text(rest)
        print(f"nbstate: removed nbstate's block from {path}; the rest of the file is unchanged.")
    else:
        path.unlink()
        print(f"nbstate: deleted {path}, which held nothing but nbstate's block.")
    print("Kernels started from now on no longer load nbstate unless a cell runs `%load_ext nbstate`.")
    return 0


# --- the parser -----------------------------------------------------------------------------------

_DESCRIPTION = """\
nbstate checkpoints a notebook kernel's variables after every cell into a store (the .nbstate
directory beside the notebook). This command reads and labels that history without a kernel
(log, status, show, diff, branch, tag), moves a running kernel's variables (checkout, undo),
looks after the store (du, fsck, gc), shows the history in a browser (serve), and installs the
extension so that every kernel loads it (install, uninstall).

Inside a kernel, `%nbstate VERB` does the same as `nbstate VERB` here."""

_EPILOG = """\
The store is found in this order: --store PATH, the NBSTATE_STORE environment variable,
./.nbstate. Exit status: 0 on success, 1 when a file could not be read or written (a damaged
or locked store, an unwritable config), 2 when the command cannot run as given (no store
there, unknown notebook, bad arguments)."""


def build_parser() -> argparse.ArgumentParser:
    store_options = argparse.ArgumentParser(add_help=False)
    store_options.add_argument(
        "--store",
        metavar="PATH",
        default=None,
        help="the store directory (default: $NBSTATE_STORE, else ./.nbstate)",
    )
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="nbstate", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"nbstate {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "log",
        parents=[store_options],
        formatter_class=formatter,
        help="the history of a notebook's state, newest first",
        description=(
            "The commits of a notebook's state that lead to HEAD, newest first: one per cell run,\n"
            "each with the cell's execution count, its first line, the variables it created (+),\n"
            "changed (~) and deleted (-), the bytes it added to the store, FAILED when the cell\n"
            "raised, and the branches and tags that point at it. Each kernel session starts with a\n"
            "commit of the state it had when nbstate was loaded."
        ),
        epilog=_EPILOG,
    )
    p.add_argument(
        "--notebook",
        metavar="ID",
        default=None,
        help="the notebook whose history to show (needed when the store holds several; "
        "the error then lists them)",
    )
    p.add_argument("--all", action="store_true", help="the commits of every branch, not only those that lead to HEAD")
    p.add_argument("-n", metavar="N", type=porcelain.positive_int, default=None, help="show at most N commits")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--graph", action="store_true", help="draw the commit graph (branches as columns)")
    output.add_argument("--json", action="store_true", help="one JSON list of commits, for programs")
    p.set_defaults(run=run_log)

    p = sub.add_parser(
        "status",
        parents=[store_options],
        formatter_class=formatter,
        help="the store, HEAD, and the variables that cannot be stored",
        description=(
            "Where the store is, the notebook, the commit HEAD points at and its branch, how many\n"
            "commits and stored bytes there are, how many variables the HEAD state holds, and\n"
            "which of them could not be serialized (with the reason)."
        ),
        epilog=_EPILOG,
    )
    p.add_argument(
        "--notebook",
        metavar="ID",
        default=None,
        help="the notebook to report on (needed when the store holds several)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object, for programs")
    p.set_defaults(run=run_status)

    notebook_option = argparse.ArgumentParser(add_help=False)
    notebook_option.add_argument("--notebook", metavar="ID", default=None, help="the notebook (needed when the store holds several)")

    p = sub.add_parser("show", parents=[store_options, notebook_option], help="one commit: its cell, variables and changes")
    p.add_argument("ref", nargs="?", default="HEAD", help="commit id or prefix, branch, tag, HEAD~N (default HEAD)")
    p.set_defaults(run=run_show)

    p = sub.add_parser("diff", parents=[store_options, notebook_option], help="variables and code that differ between two commits")
    p.add_argument("a", nargs="?", help="default HEAD~1 (with no refs) or the first ref")
    p.add_argument("b", nargs="?", help="default HEAD")
    p.set_defaults(run=run_diff)

    p = sub.add_parser("branch", parents=[store_options, notebook_option], help="list, create (NAME [REF]), delete (-d) or rename (-m OLD NEW) branches")
    p.add_argument("names", nargs="*")
    p.add_argument("-d", "--delete", action="store_true")
    p.add_argument("-m", "--move", action="store_true")
    p.set_defaults(run=run_branch)

    p = sub.add_parser("tag", parents=[store_options, notebook_option], help="list tags, tag REF (default HEAD) as NAME, or delete (-d)")
    p.add_argument("names", nargs="*")
    p.add_argument("-d", "--delete", action="store_true")
    p.set_defaults(run=run_tag)

    kernel_options = argparse.ArgumentParser(add_help=False)
    kernel_options.add_argument("--kernel", metavar="FILE", help="the running kernel's connection file (`%%connect_info` shows it)")
    kernel_options.add_argument("--notebook-path", metavar="NB", help="find the kernel of this notebook through the local Jupyter server")
    p = sub.add_parser("checkout", parents=[kernel_options], help="restore REF's state in a running kernel")
    p.add_argument("ref")
    p.add_argument("--code", action="store_true", help="also write REF's cells into the notebook file")
    p.set_defaults(run=run_checkout)
    p = sub.add_parser("undo", parents=[kernel_options], help="a running kernel's state back N cell runs")
    p.add_argument("n", nargs="?", type=porcelain.positive_int, default=1)
    p.set_defaults(run=run_undo)

    p = sub.add_parser("export", parents=[store_options, notebook_option], help="write a state to a directory, DEST.nbstate or s3://bucket/prefix")
    p.add_argument("dest")
    p.add_argument("--ref", default="HEAD", help="the state to export (default HEAD)")
    p.add_argument("--history", action="store_true", help="carry the whole commit graph along")
    p.add_argument("--bandwidth", default=None, help="how fast the bundle will travel, e.g. 100MB/s (favours replay when slow)")
    p.set_defaults(run=run_export)
    p = sub.add_parser("import", parents=[kernel_options], help="restore a bundle's state into a running kernel (or --plan-only)")
    p.add_argument("src")
    p.add_argument("--plan-only", action="store_true", help="print what would be loaded and replayed; change nothing")
    p.add_argument(
        "--trust",
        action="store_true",
        help="import a bundle that your key (NBSTATE_KEY or ~/.config/nbstate/key) did not sign: "
        "loading it runs code made elsewhere",
    )
    p.set_defaults(run=run_import)

    p = sub.add_parser(
        "du",
        parents=[store_options],
        formatter_class=formatter,
        help="what takes space in the store: by kind of file, by variable and by commit",
        description=(
            "The store's size on disk (packs, loose files of format 1, the database), then the\n"
            "stored bytes of each variable's versions and of each commit. Every blob is counted\n"
            "once: for the first version that names it, and that version for the first commit\n"
            "whose state holds it. Space not named by the index, and blobs named by no version,\n"
            "are what `nbstate gc` frees."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("--notebook", metavar="ID", default=None, help="only this notebook's variables and commits")
    p.add_argument("-n", metavar="N", type=porcelain.positive_int, default=20, help="show the N newest commits (default 20)")
    p.add_argument("--top", metavar="N", type=porcelain.positive_int, default=20, help="show the N largest variables (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object, for programs")
    p.set_defaults(run=run_du)

    p = sub.add_parser(
        "fsck",
        parents=[store_options],
        formatter_class=formatter,
        help="verify every blob and every reference; exit 3 on damage",
        description=(
            "Read every blob the index names and check that its bytes are all there (truncated\n"
            "blob), decode and hash to its name (damaged blob); check that every blob a version\n"
            "or commit names exists (missing blob), that refs and HEADs point at commits\n"
            "(dangling ref), and that commits' parents and variable versions exist. Lists each\n"
            "problem with the variables and commits it affects. Changes nothing."
        ),
        epilog=_EPILOG + " fsck exits 3 when it finds damage.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object, for programs")
    p.set_defaults(run=run_fsck)

    p = sub.add_parser(
        "gc",
        parents=[store_options],
        formatter_class=formatter,
        help="free the space of commits the retention policy does not keep",
        description=(
            "Keep every manual commit (`%nbstate commit -m`), every commit a branch, tag or\n"
            "detached HEAD points at, and of the other commits of each notebook the last N and\n"
            "those younger than D days (plus, for values that cannot be stored as bytes, the\n"
            "commits needed to replay them). Remove every other commit, then every variable\n"
            "version, cell run and blob that no kept commit needs, and rewrite the pack files\n"
            "that are mostly free space. A kept commit whose parent goes is attached to its\n"
            "nearest kept ancestor. Kernels recording into the store wait while gc runs."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("--keep-last", metavar="N", type=int, default=100, help="automatic commits to keep per notebook, newest first (default 100)")
    p.add_argument("--keep-days", metavar="D", type=float, default=7.0, help="also keep automatic commits younger than D days (default 7)")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed; change nothing")
    p.add_argument("--json", action="store_true", help="one JSON object, for programs")
    p.set_defaults(run=run_gc)

    p = sub.add_parser(
        "serve",
        parents=[store_options],
        formatter_class=formatter,
        help="browse a store's history in a web browser (read-only, on 127.0.0.1)",
        description=(
            "A small web app on 127.0.0.1 that shows the store's history as the JupyterLab\n"
            "extension's History panel does: the commit graph with branches and tags, one commit\n"
            "in full, and the diff of two commits. It reads the store and changes nothing, so it\n"
            "suits sessions that are not running. The URL it prints carries a random token."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("--port", type=int, default=0, help="the port to listen on (default: any free port)")
    p.set_defaults(run=run_serve)

    location = "$IPYTHONDIR/profile_default/ipython_config.py\n(IPYTHONDIR defaults to ~/.ipython)"
    p = sub.add_parser(
        "install",
        formatter_class=formatter,
        help="load nbstate in every kernel (edits the IPython profile's config)",
        description=(
            f"Add a marked block to {location}\n"
            "that appends 'nbstate' to c.InteractiveShellApp.extensions, so that every IPython\n"
            "kernel and shell started with that profile loads nbstate without `%load_ext`.\n"
            "The file is created when missing; running install again changes nothing. Each\n"
            "kernel's Python must have nbstate installed, or IPython warns that it cannot load it."
        ),
    )
    p.set_defaults(run=run_install)

    p = sub.add_parser(
        "uninstall",
        formatter_class=formatter,
        help="stop loading nbstate in every kernel",
        description=(
            f"Remove the block that `nbstate install` added to\n{location}.\n"
            "The rest of the file stays as it is; a file that held only the block is deleted.\n"
            "Stores already written are kept."
        ),
    )
    p.set_defaults(run=run_uninstall)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import sqlite3

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CommandError as exc:
        print(f"nbstate: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:  # `nbstate log | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except DamagedStore as exc:
        print(f"nbstate: {exc}", file=sys.stderr)
        return _CANNOT_READ
    except (sqlite3.Error, StoreError) as exc:  # a damaged or locked store: say so, no traceback
        print(f"nbstate: cannot read the store: {exc}", file=sys.stderr)
        return _CANNOT_READ
    except OSError as exc:
        print(f"nbstate: {exc}", file=sys.stderr)
        return _CANNOT_READ


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
