"""Export and import through a real S3-compatible server (moto's server mode) on 127.0.0.1."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")


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
