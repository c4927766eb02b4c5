"""A store whose disk fills up: cells keep working, nbstate says so once, pauses, and catches up
when space returns. Runs on a small tmpfs the test mounts (skipped where mounting is forbidden)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not permitted'})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_pauses_checkpoints_without_failing_cells(start_kernel, tmp_path, small_disk):
    work = tmp_path / "work"
    work.mkdir()
    k = start_kernel(work, env={"NBSTATE_STORE": str(small_disk / "store")})
    k.ok("import nbstate.capture\nnbstate.capture.PAUSE_SECONDS = 0.2")
    k.ok("keep = [1, 2, 3]")
    r = k.run("import numpy as np\nbig = np.random.default_rng(0).random(1_000_000)\nprint('cell ran')")
    assert r.error is None and "cell ran" in r.stdout
    assert "cannot be written" in r.stderr and "paused" in r.stderr
    r = k.run("keep.append(4)\nimport time; time.sleep(0.3)")
    assert r.error is None and r.stderr.count("cannot be written") == 0  # said once
    assert k.value("keep") == [1, 2, 3, 4]
    # Space returns: the next checkpoint records everything that changed meanwhile.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    time.sleep(0.3)  # past the pause
    r = k.run("small = 'x'")
    assert "resumed" in r.stderr
    entry = json.loads(k.ok("%nbstate log --json -n 1").stdout)[0]
    assert set(entry["created"]) >= {"big", "np", "small"} and "keep" in entry["changed"]
    k.ok("%nbstate undo")
    assert k.value("keep") == [1, 2, 3]
    assert k.value("'big' in globals()") is False
    # The failed writes left the store consistent: every reference and blob checks out.
    import sys
    from pathlib import Path

    nbstate = str(Path(sys.executable).with_name("nbstate"))
    done = subprocess.run([nbstate, "fsck", "--store", str(small_disk / "store")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
