from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kernels import Kernel  # noqa: E402


@pytest.fixture
def kernel(tmp_path):
    """A fresh kernel with nbstate loaded, in its own working directory (store: ./.nbstate)."""
    k = Kernel(tmp_path)
    yield k
    k.shutdown()


@pytest.fixture
def start_kernel(tmp_path):
    """Start more kernels (e.g. a restart in the same directory); all are shut down after."""
    started: list[Kernel] = []

    def start(cwd: Path | None = None, **kw) -> Kernel:
        k = Kernel(cwd or tmp_path, **kw)
        started.append(k)
        return k

    yield start
    for k in started:
        k.shutdown()
