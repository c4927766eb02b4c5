from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kernels import Kernel  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _own_signing_key(tmp_path_factory):
    """Bundles are signed with the user's key (~/.config/nbstate/key, made on first export): the
    tests, and the kernels they start, use a key of their own instead of the machine user's."""
    import os

    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "NBSTATE_KEY")}
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    os.environ.pop("NBSTATE_KEY", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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
