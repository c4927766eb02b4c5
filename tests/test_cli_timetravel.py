"""The CLI's time-travel verbs: offline on a store (show, diff, branch, tag) and on a running
kernel through its connection file (checkout, undo)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NBSTATE = str(Path(sys.executable).with_name("nbstate"))


def cli(*args, cwd):
    return subprocess.run([NBSTATE, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_offline_show_diff_branch_tag(kernel, tmp_path):
    kernel.ok("a = [1, 2]")
    kernel.ok("a.append(3)\nb = 'x'")
    r = cli("show", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "a.append(3)" in r.stdout and " + b: str len=1" in r.stdout and " ~ a: list len=3" in r.stdout
    r = cli("diff", cwd=tmp_path)
    assert "~ a:" in r.stdout and "+ b:" in r.stdout
    assert cli("tag", "v1", "HEAD~1", cwd=tmp_path).returncode == 0
    assert "v1" in cli("tag", cwd=tmp_path).stdout
    assert cli("branch", "saved", cwd=tmp_path).returncode == 0
    listing = cli("branch", cwd=tmp_path).stdout
    assert "* main" in listing and "saved" in listing
    r = cli("show", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "unknown ref 'nope'" in r.stderr
    # what the CLI wrote is what the kernel sees
    assert "v1" in kernel.ok("%nbstate tag").stdout


def test_checkout_and_undo_in_a_running_kernel(kernel, tmp_path):
    kernel.ok("n = 1")
    kernel.ok("n = 2")
    connection = kernel.km.connection_file
    r = cli("undo", "--kernel", connection, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "loaded n" in r.stdout
    assert kernel.value("n") == 1
    r = cli("checkout", "main", "--kernel", connection, cwd=tmp_path)
    assert r.returncode == 0 and kernel.value("n") == 2
    r = cli("checkout", "missing", "--kernel", connection, cwd=tmp_path)
    assert r.returncode == 2 and "unknown ref" in r.stderr
    r = cli("undo", cwd=tmp_path)
    assert r.returncode == 2 and "--kernel" in r.stderr
