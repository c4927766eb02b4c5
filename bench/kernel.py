"""A real IPython kernel driven over jupyter_client, timing each cell as a notebook user sees it.

A cell's wall time is measured on the client: from sending the execute request to the kernel's
``idle`` status for that request, which comes after the cell, every post-run hook (nbstate's
checkpoint included) and the reply. Silent executions run no hooks and make no commit; they are
used to set things up and to read values back.
"""

from __future__ import annotations

import json
import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Cell:
    """What one execution did and how long the client waited for it."""

    code: str
    wall_s: float = 0.0
    execution_count: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)


class BenchKernel:
    """One ipykernel process (this interpreter's) started in ``cwd``; nbstate loaded on request."""

    def __init__(
        self,
        cwd: str | os.PathLike[str],
        load_nbstate: bool,
        hash_seed: int | None = 0,
        env: dict[str, str] | None = None,
        startup_timeout: float = 60,
    ) -> None:
        self.cwd = Path(cwd)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.load_nbstate = load_nbstate
        kernel_env = dict(os.environ)
        kernel_env.pop("NBSTATE_STORE", None)  # the store goes to cwd/.nbstate
        kernel_env.update(env or {})
        if hash_seed is not None:
            # The same string hashes in every kernel: otherwise the namespace dict's layout, and
            # with it a loop of global lookups, differs by several % from one process to another.
            kernel_env["PYTHONHASHSEED"] = str(hash_seed)
        # Unix sockets in cwd rather than TCP ports: no race for free ports with other processes
        # on a shared machine, and no loopback latency in the figures.
        self.km = KernelManager(kernel_name="python3", transport="ipc", ip=str(self.cwd / "kernel-ipc"))
        self.km.start_kernel(cwd=str(self.cwd), env=kernel_env)
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=startup_timeout)
        except BaseException:
            self.shutdown()
            raise
        # Both kinds run one cell here, so the same cells get the same execution counts
        # (and the namespace the same `_iN` names) in either kernel.
        self.ok("%load_ext nbstate" if load_nbstate else "pass")

    @property
    def label(self) -> str:
        return "with nbstate" if self.load_nbstate else "without nbstate"

    def run(self, code: str, silent: bool = False, timeout: float = 600) -> Cell:
        cell = Cell(code)
        t0 = time.perf_counter()
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent)
        deadline = t0 + timeout
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                raise TimeoutError(f"{self.label}: no answer within {timeout}s to {code!r}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                cell.wall_s = time.perf_counter() - t0
                break
            if kind == "stream":
                if content["name"] == "stdout":
                    cell.stdout += content["text"]
                else:
                    cell.stderr += content["text"]
            elif kind == "error":
                cell.error = f"{content['ename']}: {content['evalue']}"
            elif kind in ("execute_result", "display_data"):
                cell.outputs.append(content)
            elif kind == "execute_input":
                cell.execution_count = content.get("execution_count")
        # Drain the matching shell reply so the next request starts from a clean channel.
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        return cell

    def ok(self, code: str, silent: bool = False, timeout: float = 600) -> Cell:
        """Run a cell that must succeed."""
        cell = self.run(code, silent=silent, timeout=timeout)
        if cell.error is not None:
            raise RuntimeError(f"{self.label}: cell failed: {cell.error}\n{cell.stderr}\n--- code ---\n{code}")
        return cell

    def value(self, expr: str, timeout: float = 600) -> Any:
        """The JSON value of ``expr``, read back by a silent execution (no hooks, no commit)."""
        code = f"import json as _bench_json\nprint(_bench_json.dumps({expr}))\ndel _bench_json"
        cell = self.ok(code, silent=True, timeout=timeout)
        return json.loads(cell.stdout.strip().splitlines()[-1])

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)

    def __enter__(self) -> BenchKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
