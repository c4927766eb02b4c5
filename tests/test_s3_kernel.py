"""Export and import through a real S3-compatible server (moto's server mode) on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server():
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


def test_export_to_s3_and_import_from_it_in_another_kernel(start_kernel, tmp_path, s3_server):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a", env=s3_server)
    a.ok("import numpy as np\nweights = np.linspace(0, 1, 50_000)\nconfig = {'lr': 0.1, 'w': weights}")
    a.ok("config['lr'] = 0.01")
    out = a.ok("%nbstate export s3://notebooks/run-1 --history").stdout
    assert "s3://notebooks/run-1" in out
    b = start_kernel(tmp_path / "b", env=s3_server)
    b.ok("%nbstate import s3://notebooks/run-1")
    assert b.value("[config['lr'], float(weights.sum()), config['w'] is weights]") == [0.01, pytest.approx(25000.0), True]
    assert "imported/main" in b.ok("%nbstate branch").stdout
    r = b.run("%nbstate import s3://notebooks/missing")
    assert "no nbstate bundle" in r.stderr
    assert os.environ.get("AWS_ENDPOINT_URL") is None  # the test never points this process elsewhere
