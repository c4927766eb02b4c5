"""A store at an s3:// URL (NBSTATE_STORE), through a real S3-compatible server (moto's server
mode) on 127.0.0.1: kernels on two "machines" (two cache directories) share one history."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

NBSTATE = str(Path(sys.executable).with_name("nbstate"))
URL = "s3://notebooks/team/store"


def _machine(s3_server: dict[str, str], tmp_path: Path, name: str) -> dict[str, str]:
    """The environment of a kernel on machine ``name``: its own cache (the store's local copy)."""
    return {**s3_server, "NBSTATE_STORE": URL, "XDG_CACHE_HOME": str(tmp_path / f"cache-{name}")}


def _sent(k, timeout: float = 30) -> str:
    """Wait until the kernel's mirror has sent everything; returns its status line."""
    deadline = time.time() + timeout
    while True:
        line = next(ln for ln in k.ok("%nbstate status").stdout.splitlines() if ln.startswith("mirror:"))
        if "(sending)" not in line and "not yet" not in line:
            return line
        if time.time() > deadline:
            raise AssertionError(line)
        time.sleep(0.2)


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NBSTATE, *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_a_store_at_an_s3_url_is_shared_by_kernels_on_two_machines(start_kernel, tmp_path, s3_server):
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    a = start_kernel(tmp_path / "a", env=_machine(s3_server, tmp_path, "a"))
    a.ok("import numpy as np\nweights = np.linspace(0, 1, 300_000)\nconfig = {'lr': 0.1, 'w': weights}")
    a.ok("config['lr'] = 0.01")
    line = _sent(a)
    assert line.startswith(f"mirror:    mirrored to {URL}, last sent") and "failed" not in line
    status = a.ok("%nbstate status").stdout
    assert "cache-a" in status  # the local copy the kernel records into
    head = a.log()[0]["commit"]

    # Another machine: the history is there, and a checkout restores its values.
    b = start_kernel(tmp_path / "b", env=_machine(s3_server, tmp_path, "b"))
    assert head in [e["commit"] for e in b.log()]
    b.ok(f"%nbstate checkout {head}")
    assert b.value("[config['lr'], float(weights.sum()), config['w'] is weights]") == [0.01, pytest.approx(150000.0), True]
    b.ok("config['lr'] = 0.001")
    _sent(b)
    b_head = b.log()[0]["commit"]

    # The CLI, on a third machine, reads the URL offline.
    done = _cli(_machine(s3_server, tmp_path, "c"), tmp_path / "c", "log", "--all")
    assert done.returncode == 0, done.stderr
    assert head[:8] in done.stdout and b_head[:8] in done.stdout and "config['lr'] = 0.001" in done.stdout
    done = _cli(_machine(s3_server, tmp_path, "c"), tmp_path / "c", "show", b_head[:8])
    assert done.returncode == 0 and "config" in done.stdout

    # The first machine's copy is behind: its next kernel brings it up to date first.
    a2 = start_kernel(tmp_path / "a", env=_machine(s3_server, tmp_path, "a"))
    import json

    assert b_head in [e["commit"] for e in json.loads(a2.ok("%nbstate log --all --json").stdout)]
    a2.ok(f"%nbstate checkout {b_head}")
    assert a2.value("config['lr']") == 0.001


def test_two_kernels_writing_one_url_lose_nothing(start_kernel, tmp_path, s3_server):
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    a = start_kernel(tmp_path / "a", env=_machine(s3_server, tmp_path, "a"))
    b = start_kernel(tmp_path / "b", env=_machine(s3_server, tmp_path, "b"))
    a.ok("x = [1]")
    _sent(a)
    b.ok("y = [2]")  # b's copy did not see a's commit: it must not overwrite the URL
    deadline = time.time() + 30
    while "stopped" not in (line := b.ok("%nbstate status").stdout) and time.time() < deadline:
        time.sleep(0.2)
    assert "another kernel wrote" in line and "cache-b" in line
    b.ok("y.append(3)")  # b goes on recording locally, and its cells still run
    assert b.value("y") == [2, 3]
    assert b.log()[0]["changed"] == ["y"]
    done = _cli(_machine(s3_server, tmp_path, "c"), tmp_path / "c", "log", "--all")
    assert done.returncode == 0, done.stderr
    assert "x = [1]" in done.stdout and "y = [2]" not in done.stdout
