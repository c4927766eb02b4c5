"""Real IPython kernels for tests: start one in a directory, run cells, read values back."""

from __future__ import annotations

import ast
import json
import os
import queue
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class CellResult:
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None


class Kernel:
    """A live ipykernel process started in ``cwd`` with the test's Python."""

    def __init__(self, cwd: str | os.PathLike[str], env: dict[str, str] | None = None, load: bool = True) -> None:
        self.cwd = Path(cwd)
        self.km = KernelManager(kernel_name="python3")
        kernel_env = dict(os.environ)
        kernel_env.pop("NBSTATE_STORE", None)
        kernel_env.update(env or {})
        self.km.kernel_cmd = None
        self.km.start_kernel(cwd=str(self.cwd), env=kernel_env, extra_arguments=[])
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        if load:
            r = self.run("%load_ext nbstate")
            assert r.error is None, r.error

    def run(self, code: str, silent: bool = False, timeout: float = 120) -> CellResult:
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent)
        result = CellResult()
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no answer from the kernel within {timeout}s for {code!r}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
            elif kind == "error":
                result.error = f"{content['ename']}: {content['evalue']}"
            elif kind in ("execute_result", "display_data"):
                result.outputs.append(content)
            elif kind == "execute_input":
                result.execution_count = content.get("execution_count")
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        return result

    def ok(self, code: str) -> CellResult:
        """Run a cell that must succeed; returns its result."""
        r = self.run(code)
        assert r.error is None, f"cell failed: {r.error}\n{r.stderr}"
        return r

    def value(self, expr: str) -> Any:
        """The JSON value of ``expr`` in the kernel, read by a silent execution (no commit)."""
        code = f"import json as _nbstate_json\nprint(_nbstate_json.dumps({expr}))\ndel _nbstate_json"
        r = self.run(code, silent=True)
        assert r.error is None, f"{expr}: {r.error}"
        return json.loads(r.stdout.strip().splitlines()[-1])

    def expr(self, expression: str) -> Any:
        """The value of ``expression`` (a Python literal, read back from its repr), evaluated as a
        user_expression: no cell runs, no AST transformer sees it, nbstate records nothing."""
        msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"r": expression})
        reply = self.kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=60)
        r = reply["content"]["user_expressions"]["r"]
        assert r["status"] == "ok", f"{expression}: {r.get('ename')}: {r.get('evalue')}"
        return ast.literal_eval(r["data"]["text/plain"])

    def inside(self, code: str) -> Any:
        """Run ``code`` in a private namespace of the kernel, invisibly to nbstate, and return the
        JSON value of its variable ``result``. The code sees ``rec`` (nbstate's live Recorder,
        None when not loaded), ``ns`` (the user namespace) and ``shell``."""
        expression = (
            "(lambda shell: __import__('json').dumps((lambda g: (exec("
            + repr(code)
            + ", g), g.get('result'))[1])({'shell': shell, 'ns': shell.user_ns, "
            "'rec': __import__('nbstate').recorder_of(shell)})))(get_ipython())"
        )
        return json.loads(self.expr(expression))

    def log(self) -> list[dict[str, Any]]:
        """``%nbstate log --json``: the commits, newest first (the magic itself commits nothing)."""
        return json.loads(self.ok("%nbstate log --json").stdout)

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


PYTHON = sys.executable
