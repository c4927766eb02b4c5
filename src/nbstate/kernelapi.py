"""What the JupyterLab extension asks of a kernel, run inside that kernel.

The server extension (server.py) sends each request as a silent execute request whose code is
empty and whose one *user expression* is ``__import__('nbstate.kernelapi').kernelapi.call(JSON)``:
user expressions bypass the AST transformers and the cell hooks, so a request neither makes a
commit nor marks names as touched, and the reply carries the JSON this module returns.

Operations that change the namespace (undo, checkout, import) can be cancelled. The server
writes a ``cancel`` file into the job's directory; a watcher thread started here sees it and
interrupts the main thread, but only while the checkout is still building the target state
aside. When the interrupt arrives, the names are put back exactly as they were (the tracker and
HEAD have not been touched yet), so a cancelled operation leaves the namespace untouched. Once
the state is built and swapped in, a cancel request waits for the end (the last steps take
milliseconds) and the result says it came too late. Progress is written to ``progress.json`` in
the same directory: the phase and the plan's estimate of the restore time. Both need the kernel
on the server's machine (local kernels); elsewhere operations run to the end, uncancellable.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import __version__, porcelain


class Cancelled(Exception):
    """The operation was cancelled before it changed anything."""


def call(request: str) -> str:
    """Carry out one request (JSON: verb, args, job_dir) and return the reply as JSON."""
    started = time.perf_counter()
    try:
        req = json.loads(request)
        verb = req.get("verb", "")
        job = _Job(req.get("job_dir"))
        handler = _VERBS.get(verb)
        if handler is None:
            raise ValueError(f"unknown request {verb!r}")
        result = handler(req.get("args") or {}, job)
        reply: dict[str, Any] = {"ok": True, "result": result}
        if job.late_cancel:
            reply["late_cancel"] = True
    except Cancelled as exc:
        reply = {"ok": False, "cancelled": True, "error": str(exc)}
    except KeyboardInterrupt:
        reply = {"ok": False, "cancelled": True, "error": "interrupted before anything changed"}
    except Exception as exc:
        from .bundle import BundleError
        from .store import StoreError
        from .timetravel import CheckoutError

        expected = isinstance(exc, (StoreError, CheckoutError, BundleError, ValueError, RuntimeError))
        reply = {"ok": False, "error": str(exc) if expected else f"{type(exc).__name__}: {exc}"}
        if not expected:
            reply["traceback"] = traceback.format_exc(limit=8)
    reply["seconds"] = time.perf_counter() - started
    return json.dumps(reply)


# --- the job: progress and cancellation ----------------------------------------------------------


class _Job:
    def __init__(self, job_dir: str | None) -> None:
        self.dir = Path(job_dir) if job_dir and Path(job_dir).is_dir() else None
        self.cancellable = False
        self.requested = False
        self.late_cancel = False

    def progress(self, phase: str, message: str, estimate: float | None = None, **extra: Any) -> None:
        if self.dir is None:
            return
        data = {"phase": phase, "message": message, "estimate": estimate, "time": time.time(), **extra}
        tmp = self.dir / "progress.json.tmp"
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.dir / "progress.json")
        except OSError:
            pass

    def can_cancel(self) -> bool:
        return self.dir is not None and threading.current_thread() is threading.main_thread()

    @contextmanager
    def cancellable_section(self) -> Iterator[Callable[[], None]]:
        """Within: a cancel request interrupts the main thread. The yielded function closes the
        section early: from then on a request only marks the result as late."""
        if not self.can_cancel():
            self.progress("running", "running (cannot be cancelled here)", cancellable=False)
            yield lambda: None
            return
        stop = threading.Event()
        previous = signal.getsignal(signal.SIGINT)

        def on_interrupt(signum: int, frame: Any) -> None:
            self.requested = True
            if self.cancellable:
                self.cancellable = False
                raise KeyboardInterrupt
            self.late_cancel = True

        def watch() -> None:
            assert self.dir is not None
            while not stop.wait(0.05):
                if (self.dir / "cancel").exists():
                    if self.cancellable:
                        # A real signal to the main thread: it also cuts a blocking call
                        # (sleep, I/O) short, where _thread.interrupt_main would wait for it.
                        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                    else:
                        self.late_cancel = True
                    return

        def close() -> None:
            self.cancellable = False

        signal.signal(signal.SIGINT, on_interrupt)
        self.cancellable = True
        watcher = threading.Thread(target=watch, name="nbstate-cancel-watch", daemon=True)
        watcher.start()
        try:
            yield close
        finally:
            self.cancellable = False
            stop.set()
            watcher.join()
            signal.signal(signal.SIGINT, previous)


# --- the verbs -----------------------------------------------------------------------------------


def _shell() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:  # pragma: no cover - only ever called in a kernel
        raise RuntimeError("not running in an IPython kernel")
    return shell


def _recorder() -> Any:
    from . import recorder_of

    return recorder_of(_shell())


def _session() -> Any:
    rec = _recorder()
    if rec is None:
        raise RuntimeError("nbstate is not loaded in this kernel: enable it first (%load_ext nbstate)")
    return _GuardedSession(recorder=rec)


def info(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    import sys

    rec = _recorder()
    out: dict[str, Any] = {"installed": True, "version": __version__, "python": sys.version.split()[0], "loaded": rec is not None}
    if rec is not None:
        branch, head = rec.store.head(rec.notebook_id)
        out.update(
            store=str(Path(rec.store.root).resolve()),
            notebook=rec.notebook_id,
            notebook_path=rec.notebook_path,
            head=head,
            branch=branch,
            last_error=rec.last_error,
        )
    return out


def enable(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    """Load nbstate into this kernel (as `%load_ext nbstate` would), naming the notebook file."""
    if _recorder() is None:
        path = args.get("notebook_path")
        if path and not os.environ.get("JPY_SESSION_NAME"):
            # Where the server did not say which notebook this kernel runs, the extension does.
            os.environ["JPY_SESSION_NAME"] = path
        _shell().extension_manager.load_extension("nbstate")
    return info(args, job)


def undo(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    report = _session().undo(int(args.get("n", 1)), job=job)
    return _report(report)


def checkout(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    ref = str(args["ref"])
    session = _session()
    report = session.checkout(ref, job=job)
    return _report(report)


def commit(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    message = str(args.get("message") or "").strip()
    if not message:
        raise ValueError("a commit needs a message")
    c = _session().commit(message)
    return {"commit": c.id, "short": c.short, "summary": f"committed {c.short}: {message}"}


def branch(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    from . import porcelain

    session = _session()
    names = [str(args["name"])] + ([str(args["ref"])] if args.get("ref") else [])
    return {"summary": porcelain.branch_command(session, names)}


def tag(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    from . import porcelain

    session = _session()
    names = [str(args["name"])] + ([str(args["ref"])] if args.get("ref") else [])
    return {"summary": porcelain.tag_command(session, names)}


def export(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    session = _session()
    job.progress("exporting", f"exporting to {args['dest']}")
    with job.cancellable_section():
        text = session.export(str(args["dest"]), ref=str(args.get("ref") or "HEAD"), history=bool(args.get("history")))
    return {"summary": text}


def import_(args: dict[str, Any], job: _Job) -> dict[str, Any]:
    session = _session()
    session.job = job
    text = session.import_bundle(str(args["src"]))
    return {"summary": text}


def _report(report: Any) -> dict[str, Any]:
    return {
        "commit": report.commit,
        "branch": report.branch,
        "loaded": report.loaded,
        "replayed": report.replayed,
        "deleted": report.deleted,
        "kept": len(report.kept),
        "warnings": report.warnings,
        "summary": report.summary(),
    }


_VERBS: dict[str, Callable[[dict[str, Any], _Job], Any]] = {
    "info": info,
    "enable": enable,
    "undo": undo,
    "checkout": checkout,
    "commit": commit,
    "branch": branch,
    "tag": tag,
    "export": export,
    "import": import_,
}


# --- a Session whose moves can be cancelled -----------------------------------------------------


class _GuardedSession(porcelain.Session):
    """porcelain.Session whose moves (undo, checkout, import) report progress and can be
    cancelled: an interrupt while the target state is being built puts every name back."""

    job: _Job | None = None

    def checkout(self, ref: str, code: bool = False, job: _Job | None = None) -> Any:
        self.job = job or self.job
        return super().checkout(ref, code=code)

    def undo(self, n: int = 1, job: _Job | None = None) -> Any:
        self.job = job or self.job
        return super().undo(n)

    def _move_to(
        self, commit_id: str, branch: str | None, action: str, python_changed: bool = False, check_blobs: bool = False,
        throughput: float | None = None, unreplayable: dict[int, str] | None = None,
    ) -> Any:
        from .timetravel import restore_state

        job = self.job or _Job(None)
        rec = self._live()
        current: dict[str, int] = {n: -1 for n in rec.user_names(full=True)}
        current.update(rec.live_versions())
        target = self.store.commit(commit_id)
        _announce(self.store, current, target, python_changed, job)
        namespace = rec.namespace
        before = {n: namespace[n] for n in current if n in namespace}
        reloaded: list[Any] = []
        with job.cancellable_section() as close:
            try:
                report, restored = restore_state(
                    self.store, namespace, current, target, rec.transform, python_changed=python_changed, check_blobs=check_blobs,
                    throughput=throughput, fingerprint_later=reloaded, unreplayable=unreplayable,
                )
                close()
            except KeyboardInterrupt:
                close()
                _put_back(namespace, before, rec)
                raise Cancelled(f"cancelled: {action} stopped before it changed anything; the variables are as they were") from None
        # From here on nothing is interrupted: the tracker and HEAD follow the namespace.
        job.progress("finishing", "recording the move")
        rec.after_restore([live for _, live in restored.values()], report.deleted, reloaded)
        self.store.move_head(self.notebook, branch, commit_id, action)
        report.branch = branch
        return report


def _announce(store: Any, current: dict[str, int], target: Any, python_changed: bool, job: _Job) -> None:
    """Tell the server what the move will do and how long the plan expects it to take."""
    from .timetravel import History, plan_for

    wanted = sorted({vid for n, vid in target.state.items() if current.get(n) != vid})
    estimate = None
    try:
        if wanted:
            history = History(store, python_changed=python_changed)
            estimate = plan_for(history, wanted).seconds
    except Exception:  # the move itself reports what is wrong; this is only an estimate
        estimate = None
    job.progress(
        "restoring",
        f"restoring {len(wanted)} variable version(s) of {target.id[:8]}",
        estimate=estimate,
        cancellable=job.can_cancel(),
    )


def _put_back(namespace: dict[str, Any], before: dict[str, Any], rec: Any) -> None:
    """Every user name bound to the very object it held before the move; new names removed."""
    for name in list(namespace):
        if name not in before and rec.is_user_name(name):
            namespace.pop(name, None)
    namespace.update(before)
