from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
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


# --- a real S3-compatible server (moto) on 127.0.0.1, for the S3 tests -------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server():
    """moto's S3 server on a free loopback port, with a bucket `notebooks`; yields the environment
    a kernel needs to reach it (the test process itself is never pointed at it)."""
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto's S3 server did not start on 127.0.0.1")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
        "FSSPEC_S3_ENDPOINT_URL": url,
    }
    import boto3

    boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket="notebooks")
    yield env
    proc.terminate()
    proc.wait(timeout=10)
