"""kill -9 of the kernel at random moments while it checkpoints: afterwards the store passes
fsck, every commit that was reported done is intact, and a new kernel continues the history.
CI runs 10 trials; NBSTATE_CRASH_TRIALS=50 (or more) for the long run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from kernels import Kernel

NBSTATE = str(Path(sys.executable).with_name("nbstate"))
TRIALS = int(os.environ.get("NBSTATE_CRASH_TRIALS", "10"))


def test_kill_during_checkpoint_loses_nothing_reported(tmp_path):
    rng = random.Random(1234)
    reported: dict[str, int] = {}  # commit id -> the value of `n` it recorded
    for trial in range(TRIALS):
        k = Kernel(tmp_path)
        try:
            entries = json.loads(k.ok("%nbstate log --json --all").stdout)
            assert {e["commit"] for e in entries} >= set(reported), "a reported commit vanished"
            k.ok(f"n = {trial}")
            head = json.loads(k.ok("%nbstate log --json -n 1").stdout)[0]["commit"]
            reported[head] = trial
            # A cell whose checkpoint writes ~80 MB; the kernel dies somewhere in it.
            k.kc.execute(f"import numpy as np\nbig = np.random.default_rng({trial}).random(10_000_000)\nn = -1")
            time.sleep(rng.uniform(0.05, 1.5))
            os.kill(k.km.provisioner.process.pid, signal.SIGKILL)
        finally:
            try:
                k.kc.stop_channels()
                k.km.shutdown_kernel(now=True)
            except Exception:
                pass
        done = subprocess.run([NBSTATE, "fsck"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, f"trial {trial}: {done.stdout}{done.stderr}"
    # A new kernel continues the history, and each reported commit restores what it recorded.
    k = Kernel(tmp_path)
    try:
        for commit, value in rng.sample(sorted(reported.items()), min(5, len(reported))):
            k.ok(f"%nbstate checkout {commit}")
            assert k.value("n") == value
        k.ok("%nbstate checkout main")
        k.ok("after = 1")
        assert json.loads(k.ok("%nbstate log --json -n 1").stdout)[0]["created"] == ["after"]
    finally:
        k.shutdown()
