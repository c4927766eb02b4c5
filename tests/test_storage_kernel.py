"""Zero-copy restore and housekeeping with real kernels: a restored large array is writable and
writing to it never changes the store; gc between cells loses nothing a kept commit needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NBSTATE = Path(sys.executable).parent / "nbstate"

# What holds an array's bytes: the file its memory maps (a pack of the store), or "memory".
BACKING_OF = """
def _backing(a):
    at = a.__array_interface__['data'][0]
    with open('/proc/self/maps') as f:
        for line in f:
            span, _, _, _, _, *path = line.split()
            lo, hi = (int(x, 16) for x in span.split('-'))
            if lo <= at < hi:
                return 'pack' if path and path[0].endswith('.pack') else 'memory'
    return 'memory'
"""


@pytest.mark.parametrize("mapped", [True, False], ids=["mmap", "read"])
def test_a_restored_large_array_is_writable_and_the_store_never_changes(start_kernel, tmp_path, mapped):
    k = start_kernel(tmp_path, env={"NBSTATE_MMAP": "1" if mapped else "0"})
    # 80 MB, made by a cell slow enough that loading it always beats replaying it.
    k.ok("import time, numpy as np\nbig = np.random.default_rng(0).random(10_000_000)\ntotal = float(big.sum())\ntime.sleep(3)")
    k.ok("big[5] = -1.0")
    k.ok("%nbstate undo")
    k.run(BACKING_OF, silent=True)
    assert k.value("_backing(big)") == ("pack" if mapped else "memory")
    assert k.value("bool(big.flags.writeable) and float(big[5]) != -1.0 and float(big.sum()) == total")
    # The user writes all over the restored array; the store must not see it.
    k.ok("big[:] = 7.0")
    assert k.value("float(big[123])") == 7.0
    k.ok("%nbstate checkout HEAD~1")  # the version restored above, read from the store again
    assert k.value("float(big.sum()) == total and float(big[5]) != -1.0")
    k.ok("big[10] = 3.0")  # and the state after a write is recorded as usual
    k.ok("%nbstate undo")
    assert k.value("float(big.sum()) == total")
    done = subprocess.run([str(NBSTATE), "fsck", "--store", str(tmp_path / ".nbstate")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_gc_between_cells_keeps_what_checkout_needs(start_kernel, tmp_path):
    k = start_kernel(tmp_path)
    k.ok("import numpy as np\nrows = []")
    for i in range(12):
        k.ok(f"rows.append({i})\nblock = np.full(200_000, {i}.0)")
    k.ok("%nbstate tag early HEAD~8")
    done = subprocess.run(
        [str(NBSTATE), "gc", "--keep-last", "3", "--keep-days", "0", "--store", str(tmp_path / ".nbstate")],
        capture_output=True, text=True,
    )
    assert done.returncode == 0 and "removed" in done.stdout, done.stdout + done.stderr
    # The kernel records on after gc, and every kept commit still checks out.
    k.ok("rows.append(99)\nblock = block + 1")
    assert k.value("rows[-1]") == 99
    k.ok("%nbstate checkout early")
    assert k.value("rows") == [0, 1, 2, 3]
    assert k.value("float(block[0])") == 3.0
    k.ok("%nbstate checkout main")
    assert k.value("rows[-2:]") == [11, 99] and k.value("float(block[0])") == 12.0
    k.ok("%nbstate undo")
    assert k.value("rows[-1]") == 11
    done = subprocess.run([str(NBSTATE), "fsck", "--store", str(tmp_path / ".nbstate")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
