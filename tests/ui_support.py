"""A real JupyterLab server for the UI tests, on 127.0.0.1, isolated from the user's Jupyter and
IPython configuration, plus helpers to run cells in its kernels as a notebook would."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat

# Debian's Chromium, headless, and nothing that reaches beyond this machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path, sources: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


class LabServer:
    """``jupyter lab`` (JupyterLab with nbstate's server extension, as installed) in a subprocess."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "notebooks"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "jupyter.log"
        self.proc: subprocess.Popen[bytes] | None = None
        settings = base / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        # No news or update checks: nothing leaves the machine, and no toast covers the page.
        (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        self.env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(base / "config"),
            "JUPYTER_DATA_DIR": str(base / "data"),
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
            "IPYTHONDIR": str(base / "ipython"),
            "NBSTATE_FSYNC": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("NBSTATE_STORE", None)
        self.env.pop("JUPYTER_PATH", None)

    def start(self, timeout: float = 90) -> LabServer:
        bindir = str(Path(sys.executable).parent)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "")
        args = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.user_settings_dir={self.base / 'settings'}",
            f"--LabApp.workspaces_dir={self.base / 'workspaces'}",
            "--LabApp.news_url=",
            "--ServerApp.disable_check_xsrf=False",
        ]
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(args, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {self.log()}")
            try:
                self.api("GET", "/api/status")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise RuntimeError(f"jupyter lab did not start in {timeout} s: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def api(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201, 202)) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        if status not in expect:
            raise AssertionError(f"{method} {path}: {status} {text[:500]!r}")
        return json.loads(text) if text else None

    def start_session(self, notebook: str) -> str:
        """A kernel for ``notebook`` (a path under the root), as opening it in JupyterLab makes."""
        reply = self.api("POST", "/api/sessions", {"path": notebook, "type": "notebook", "name": notebook, "kernel": {"name": "python3"}})
        return reply["kernel"]["id"]

    def job(self, kernel_id: str, verb: str, args: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        job = self.api("POST", f"/nbstate/api/kernels/{kernel_id}/ops", {"verb": verb, "args": args or {}})
        deadline = time.monotonic() + timeout
        while job["state"] == "running":
            if time.monotonic() > deadline:
                raise AssertionError(f"job {verb} still running after {timeout} s: {job}")
            time.sleep(0.1)
            job = self.api("GET", f"/nbstate/api/jobs/{job['id']}")
        return job

    def client(self, kernel_id: str) -> Any:
        from jupyter_client import BlockingKernelClient

        client = BlockingKernelClient(connection_file=str(self.base / "runtime" / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        return client


def run_cell(client: Any, code: str, timeout: float = 60) -> str:
    """Run ``code`` as a notebook cell (hooks fire: nbstate commits) and return what it printed."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            out.append(content["data"].get("text/plain", "") + "\n")
        elif kind == "error":
            out.append(f"{content['ename']}: {content['evalue']}\n")

    client.execute_interactive(code, timeout=timeout, output_hook=hook)
    return "".join(out)


def chromium_path() -> str | None:
    """Debian's Chromium, installed with apt when it is missing and apt can run; None otherwise."""
    path = "/usr/bin/chromium"
    if Path(path).exists():
        return path
    script = Path(__file__).resolve().parent.parent / "scripts" / "ensure-chromium.sh"
    if shutil.which("apt-get") and script.exists():
        subprocess.run(["bash", str(script)], check=False, timeout=900)
    return path if Path(path).exists() else None
