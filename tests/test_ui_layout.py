"""The front end's unit tests (the commit graph's layout), run with node's test runner, and a
check that the committed build of the web app matches its TypeScript source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LABEXT = ROOT / "labextension"
WEBAPP = ROOT / "src" / "nbstate" / "webapp"


def test_layout_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the front end's unit tests need Node.js (apt-get install nodejs)")
    r = subprocess.run([node, "--test", "test/"], cwd=LABEXT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout and "# pass" in r.stdout


def test_committed_web_build_matches_the_source(tmp_path: Path) -> None:
    tsc = LABEXT / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.skip("the extension's npm packages are not installed (make labextension installs them)")
    r = subprocess.run([str(tsc), "-p", "tsconfig.web.json", "--outDir", str(tmp_path)], cwd=LABEXT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for built in tmp_path.rglob("*.js"):
        committed = WEBAPP / built.relative_to(tmp_path)
        assert committed.exists() and committed.read_text() == built.read_text(), f"{committed} is stale: run `make labextension`"
    assert (WEBAPP / "view.css").read_text() == (LABEXT / "style" / "base.css").read_text(), "view.css is stale: run `make labextension`"
