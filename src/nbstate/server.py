"""The Jupyter server extension behind nbstate's JupyterLab extension.

Handlers under ``{base_url}nbstate/api/``:

- ``GET  kernels/ID/info[?refresh=1]``: whether nbstate is loaded in the kernel, its store,
  notebook, HEAD (asked of the kernel, then remembered).
- ``GET  kernels/ID/{history,show,diff,cells}``: the history view's data (web.py), read from
  the kernel's store by this process, so the panel works while the kernel is busy.
- ``POST kernels/ID/ops`` with ``{"verb", "args"}``: starts a job in the kernel (enable, undo,
  checkout, commit, branch, tag, export, import); answers its id at once.
- ``GET  jobs/ID``: the job's state, progress (phase, elapsed, the plan's estimate) and result.
- ``POST jobs/ID/cancel``: asks the kernel to stop the job (see kernelapi.py: a move is stopped
  only while it builds the state aside, and the namespace is then untouched).

Each kernel request is a silent execute request with one user expression that calls
``nbstate.kernelapi.call``; it makes no commit and leaves no trace in the kernel's history.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from . import porcelain
from . import web as view
from .store import Store, StoreError

# How long a job's result is kept after it ended, for the front end to fetch.
KEEP_FINISHED_S = 600.0
# How long to wait for a kernel that is busy running a cell before answering "busy".
INFO_TIMEOUT_S = 20.0


class KernelCallError(Exception):
    pass


def _expression(request: dict[str, Any]) -> str:
    return f"__import__('nbstate.kernelapi').kernelapi.call({json.dumps(json.dumps(request))})"


async def kernel_call(kernel_manager: Any, kernel_id: str, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Evaluate one kernelapi request in the kernel and return its reply (a dict)."""
    try:
        km = kernel_manager.get_kernel(kernel_id)
    except KeyError:
        raise KernelCallError(f"no running kernel {kernel_id}") from None
    # A session of its own: clients that share one share a socket identity, and the kernel then
    # answers whichever connected last (the front end's own connection among them).
    session = km.session.clone()
    session.session = uuid.uuid4().hex
    client = km.client(session=session)  # an AsyncKernelClient with the kernel's keys
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        msg_id = client.execute("", silent=True, store_history=False, user_expressions={"nbstate": _expression(request)}, allow_stdin=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else max(0.01, min(1.0, deadline - time.monotonic()))
            try:
                reply = await client.get_shell_msg(timeout=wait)
            except Exception:  # queue.Empty: nothing yet
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("the kernel did not answer in time (busy running a cell?)") from None
                if not await _alive(km):
                    raise KernelCallError("the kernel died") from None
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
    finally:
        client.stop_channels()
    content = reply["content"]
    if content.get("status") != "ok":
        raise KernelCallError(f"the kernel refused the request: {content.get('ename', '')} {content.get('evalue', '')}".strip())
    result = content.get("user_expressions", {}).get("nbstate", {})
    if result.get("status") != "ok":
        ename, evalue = result.get("ename", "Error"), result.get("evalue", "")
        if ename in ("ModuleNotFoundError", "ImportError") and "nbstate" in evalue:
            return {"ok": True, "result": {"installed": False, "loaded": False, "error": "nbstate is not installed in this kernel's Python environment: pip install nbstate there"}}
        if ename == "KeyboardInterrupt":
            return {"ok": False, "cancelled": True, "error": "interrupted"}
        raise KernelCallError(f"{ename}: {evalue}")
    text = result.get("data", {}).get("text/plain", "")
    import ast

    return json.loads(ast.literal_eval(text))


async def _alive(km: Any) -> bool:
    try:
        alive = km.is_alive()
        if asyncio.iscoroutine(alive):
            alive = await alive
        return bool(alive)
    except Exception:
        return True


@dataclass
class Job:
    id: str
    kernel_id: str
    verb: str
    args: dict[str, Any]
    dir: Path
    started: float = field(default_factory=time.time)
    state: str = "running"  # running | done | failed | cancelled
    result: Any = None
    error: str | None = None
    ended: float | None = None
    late_cancel: bool = False
    cancel_requested: bool = False
    task: Any = None
    final_progress: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        progress: dict[str, Any] = {}
        if self.final_progress is not None:
            progress = self.final_progress
        else:
            try:
                progress = json.loads((self.dir / "progress.json").read_text())
            except (OSError, ValueError):
                pass
        elapsed = (self.ended or time.time()) - self.started
        estimate = progress.get("estimate")
        fraction = None
        if self.state != "running":
            fraction = 1.0
        elif isinstance(estimate, (int, float)) and estimate > 0:
            fraction = min(0.95, elapsed / (estimate + 0.2))
        return {
            "id": self.id,
            "kernel": self.kernel_id,
            "verb": self.verb,
            "state": self.state,
            "result": self.result,
            "error": self.error,
            "elapsed": elapsed,
            "phase": progress.get("phase", "waiting" if self.state == "running" else self.state),
            "message": progress.get("message", "waiting for the kernel" if self.state == "running" else ""),
            "estimate": estimate,
            "fraction": fraction,
            "cancellable": self.verb in CANCELLABLE and progress.get("cancellable", True),
            "cancel_requested": self.cancel_requested,
            "late_cancel": self.late_cancel,
        }


CANCELLABLE = {"undo", "checkout", "import", "export"}
VERBS = {"enable", "undo", "checkout", "commit", "branch", "tag", "export", "import"}


class NbstateState:
    """What the extension remembers: each kernel's store, and the jobs."""

    def __init__(self, kernel_manager: Any, root_dir: str) -> None:
        self.kernel_manager = kernel_manager
        self.root_dir = root_dir
        self.kernels: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}

    async def info(self, kernel_id: str, refresh: bool = False) -> dict[str, Any]:
        if refresh or kernel_id not in self.kernels or not self.kernels[kernel_id].get("loaded"):
            reply = await kernel_call(self.kernel_manager, kernel_id, {"verb": "info"}, timeout=INFO_TIMEOUT_S)
            if not reply.get("ok"):
                raise KernelCallError(reply.get("error", "the kernel could not say"))
            self.kernels[kernel_id] = reply["result"]
        return self.kernels[kernel_id]

    def start(self, kernel_id: str, verb: str, args: dict[str, Any]) -> Job:
        self._forget_old()
        job_dir = Path(tempfile.mkdtemp(prefix="nbstate-job-"))
        job = Job(uuid.uuid4().hex, kernel_id, verb, args, job_dir)
        self.jobs[job.id] = job
        job.task = asyncio.ensure_future(self._run(job))
        return job

    async def _run(self, job: Job) -> None:
        try:
            reply = await kernel_call(self.kernel_manager, job.kernel_id, {"verb": job.verb, "args": job.args, "job_dir": str(job.dir)})
            if reply.get("ok"):
                job.state, job.result = "done", reply.get("result")
                job.late_cancel = bool(reply.get("late_cancel"))
            elif reply.get("cancelled"):
                job.state, job.error = "cancelled", reply.get("error")
            else:
                job.state, job.error = "failed", reply.get("error")
        except Exception as exc:
            job.state, job.error = "failed", str(exc) or type(exc).__name__
        finally:
            try:
                job.final_progress = json.loads((job.dir / "progress.json").read_text())
            except (OSError, ValueError):
                job.final_progress = {}
            shutil.rmtree(job.dir, ignore_errors=True)
            job.ended = time.time()
            if job.verb == "enable" and job.state == "done" and isinstance(job.result, dict):
                self.kernels[job.kernel_id] = job.result

    def cancel(self, job: Job) -> None:
        job.cancel_requested = True
        if job.state == "running":
            try:
                (job.dir / "cancel").write_text("cancel")
            except OSError:
                pass

    def _forget_old(self) -> None:
        now = time.time()
        for jid, job in list(self.jobs.items()):
            if job.ended is not None and now - job.ended > KEEP_FINISHED_S:
                del self.jobs[jid]


class _Base(APIHandler):
    def initialize(self, state: NbstateState) -> None:
        self.state = state

    def fail(self, status: int, message: str, **extra: Any) -> None:
        self.set_status(status)
        self.finish(json.dumps({"error": message, **extra}))


class InfoHandler(_Base):
    @web.authenticated
    async def get(self, kernel_id: str) -> None:
        try:
            info = await self.state.info(kernel_id, refresh=self.get_argument("refresh", "") == "1")
        except TimeoutError as exc:
            return self.fail(503, str(exc), busy=True)
        except KernelCallError as exc:
            return self.fail(404 if "no running kernel" in str(exc) else 500, str(exc))
        self.finish(json.dumps(info))


class ViewHandler(_Base):
    @web.authenticated
    async def get(self, kernel_id: str, what: str) -> None:
        try:
            info = await self.state.info(kernel_id)
        except TimeoutError as exc:
            return self.fail(503, str(exc), busy=True)
        except KernelCallError as exc:
            return self.fail(404 if "no running kernel" in str(exc) else 500, str(exc))
        if not info.get("loaded"):
            return self.fail(409, "nbstate is not loaded in this kernel", info=info)
        params = {k: self.get_argument(k) for k in ("ref", "a", "b", "limit") if self.get_argument(k, None)}
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, _read_view, info["store"], info["notebook"], what, params)
        except (StoreError, ValueError) as exc:
            return self.fail(404 if "no commit" in str(exc) or "unknown ref" in str(exc) else 400, str(exc))
        self.finish(json.dumps(data))


def _read_view(store_path: str, notebook: str, what: str, params: dict[str, str]) -> Any:
    store = Store(store_path, read_only=True)
    try:
        return view.query(porcelain.Session(store=store, notebook=notebook), what, params)
    finally:
        store.close()


class OpsHandler(_Base):
    @web.authenticated
    async def post(self, kernel_id: str) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            return self.fail(400, "the body must be JSON: {verb, args}")
        verb, args = body.get("verb"), body.get("args") or {}
        if verb not in VERBS:
            return self.fail(400, f"unknown operation {verb!r}; one of {', '.join(sorted(VERBS))}")
        try:
            self.state.kernel_manager.get_kernel(kernel_id)
        except KeyError:
            return self.fail(404, f"no running kernel {kernel_id}")
        if verb == "enable" and args.get("notebook_path"):
            args["notebook_path"] = str(Path(self.state.root_dir, args["notebook_path"]).resolve())
        job = self.state.start(kernel_id, verb, args)
        self.set_status(202)
        self.finish(json.dumps(job.as_dict()))


class JobHandler(_Base):
    @web.authenticated
    async def get(self, job_id: str) -> None:
        job = self.state.jobs.get(job_id)
        if job is None:
            return self.fail(404, f"no job {job_id}")
        self.finish(json.dumps(job.as_dict()))


class CancelHandler(_Base):
    @web.authenticated
    async def post(self, job_id: str) -> None:
        job = self.state.jobs.get(job_id)
        if job is None:
            return self.fail(404, f"no job {job_id}")
        self.state.cancel(job)
        self.finish(json.dumps(job.as_dict()))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbstate.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    state = NbstateState(serverapp.kernel_manager, serverapp.root_dir)
    base = url_path_join(serverapp.web_app.settings["base_url"], "nbstate", "api")
    kid = r"(?P<kernel_id>[\w-]+)"
    handlers = [
        (url_path_join(base, "kernels", kid, "info"), InfoHandler, {"state": state}),
        (url_path_join(base, "kernels", kid, r"(?P<what>history|show|diff|cells)"), ViewHandler, {"state": state}),
        (url_path_join(base, "kernels", kid, "ops"), OpsHandler, {"state": state}),
        (url_path_join(base, "jobs", r"(?P<job_id>\w+)"), JobHandler, {"state": state}),
        (url_path_join(base, "jobs", r"(?P<job_id>\w+)", "cancel"), CancelHandler, {"state": state}),
    ]
    serverapp.web_app.add_handlers(".*$", handlers)
    serverapp.log.info("nbstate: server extension loaded (%s)", base)


# Older notebook servers look for this name.
load_jupyter_server_extension = _load_jupyter_server_extension
