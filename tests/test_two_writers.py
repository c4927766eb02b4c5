"""Two kernels (two notebooks) writing one store, and the CLI reading it meanwhile: no commit is
lost and no "database is locked" reaches anybody."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

NBSTATE = str(Path(sys.executable).with_name("nbstate"))


def test_two_kernels_share_a_store_and_the_cli_reads_while_they_write(start_kernel, tmp_path):
    for name in ("one.ipynb", "two.ipynb"):
        (tmp_path / name).write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    one = start_kernel(tmp_path, env={"JPY_SESSION_NAME": str(tmp_path / "one.ipynb")})
    two = start_kernel(tmp_path, env={"JPY_SESSION_NAME": str(tmp_path / "two.ipynb")})
    cells = 25
    errors: list[str] = []

    def work(kernel, tag):
        kernel.ok(f"import numpy as np\nacc_{tag} = []")
        for i in range(cells):
            r = kernel.run(f"acc_{tag}.append({i})\narr_{tag} = np.full(50_000, {i}.0)")
            if r.error or r.stderr:
                errors.append(f"{tag}: {r.error} {r.stderr}")

    readers: list[subprocess.CompletedProcess] = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            readers.append(subprocess.run([NBSTATE, "log", "--notebook", "one.ipynb", "-n", "3"], cwd=tmp_path, capture_output=True, text=True))

    threads = [threading.Thread(target=work, args=(one, "a")), threading.Thread(target=work, args=(two, "b"))]
    reader = threading.Thread(target=read)
    for t in (*threads, reader):
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    assert errors == []
    assert readers and all(r.returncode == 0 for r in readers), [r.stderr for r in readers if r.returncode]
    for kernel, tag in ((one, "a"), (two, "b")):
        entries = json.loads(kernel.ok("%nbstate log --json").stdout)
        assert len(entries) == cells + 2  # the root, the import cell, and every append
        kernel.ok("%nbstate undo 3")
        assert kernel.value(f"acc_{tag}") == list(range(cells - 3))
        assert kernel.value(f"float(arr_{tag}[0])") == cells - 4
