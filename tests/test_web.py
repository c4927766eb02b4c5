"""`nbstate serve`: the history view of a store whose kernel is not running, over HTTP on
127.0.0.1, token-protected and read-only; and the page itself in Debian's Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from ui_support import CHROMIUM_ARGS, chromium_path

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a small branched history, written by a real kernel that is gone since."""
    from kernels import Kernel

    cwd = tmp_path_factory.mktemp("served")
    k = Kernel(cwd)
    try:
        k.ok("import math\nradius = 2.0")
        k.ok("area = math.pi * radius ** 2")
        k.ok("%nbstate tag measured")
        k.ok("radius = 3.0\narea = math.pi * radius ** 2\nlabel = 'bigger'")
        k.ok("%nbstate undo 1")
        k.ok("radius = 0.5\nnotes = ['a smaller one']")
        k.ok("%nbstate commit -m 'small circle'")
    finally:
        k.shutdown()
    return cwd / ".nbstate"


@pytest.fixture(scope="module")
def served(store: Path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbstate.cli", "serve", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)", line)
        if m:
            url = m.group(1)
    assert url, f"nbstate serve printed no URL: {proc.stderr.read() if proc.poll() is not None else ''}"
    yield url
    proc.terminate()
    proc.wait(10)


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def api(url: str, path: str) -> Any:
    base, token = url.split("/?token=")
    status, _, body = get(f"{base}/api/{path}", {"Authorization": f"token {token}"})
    assert status == 200, body
    return json.loads(body)


def test_history_show_and_diff(served: str) -> None:
    listing = api(served, "notebooks")
    assert [n["id"] for n in listing["notebooks"]] == ["default"]
    history = api(served, "history")
    commits = history["commits"]
    titles = [c["message"] or c["first_line"] for c in commits]
    assert titles[0] == "small circle" and "radius = 0.5" in titles
    assert history["branches"] and history["tags"] == {"measured": history["tags"]["measured"]}
    # Two lines of descent: the undone `radius = 3.0` run and the one that followed the undo.
    parents = {c["parent"] for c in commits if c["parent"]}
    assert len(parents) < len([c for c in commits if c["parent"]]), "no fork in the graph"
    measured = history["tags"]["measured"]
    shown = api(served, f"show?ref={measured}")
    assert shown["code"] == "area = math.pi * radius ** 2"
    assert {v["name"]: v["change"] for v in shown["variables"]} == {"area": "created", "math": "", "radius": ""}
    head = history["head"]
    d = api(served, f"diff?a=measured&b={head}")
    changes = {v["name"]: v["change"] for v in d["variables"]}
    assert changes == {"radius": "changed", "notes": "added"}, changes
    assert "0.5" in next(v["after"] for v in d["variables"] if v["name"] == "radius")


def test_token_host_and_read_only(served: str) -> None:
    base, token = served.split("/?token=")
    assert get(f"{base}/api/history")[0] == 403
    assert get(f"{base}/api/history", {"Authorization": "token wrong"})[0] == 403
    assert get(f"{base}/")[0] == 403
    status, headers, body = get(served)
    assert status == 200 and b'id="app"' in body
    assert f"nbstate-serve-token={token}" in headers.get("Set-Cookie", "") and "HttpOnly" in headers["Set-Cookie"]
    cookie = {"Cookie": f"nbstate-serve-token={token}"}
    assert get(f"{base}/api/history", cookie)[0] == 200
    assert get(f"{base}/static/web/main.js", cookie)[0] == 200
    assert get(f"{base}/static/../web.py", cookie)[0] == 404
    assert get(f"{base}/api/show?ref=nosuchref", cookie)[0] == 404
    assert get(f"{base}/api/history", {**cookie, "Host": "attacker.example:80"})[0] == 403
    assert get(f"{base}/api/history", cookie, method="POST")[0] == 405


def test_serve_needs_a_store(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "nbstate.cli", "serve", "--store", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no nbstate store" in r.stderr


def test_the_page_in_chromium(served: str) -> None:
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("Debian's Chromium is not installed and apt-get could not install it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.goto(served)
            rows = page.locator(".nbs-row")
            rows.first.wait_for(timeout=15000)
            assert "token=" not in page.url  # the token moved to the cookie
            assert rows.count() >= 6
            page.locator(".nbs-row", has_text="small circle").click()
            page.locator(".nbs-show-title", has_text="commit").wait_for()
            assert page.locator(".nbs-checkout-vars").count() == 0  # read-only: no checkout here
            page.locator(".nbs-row", has_text="radius = 3.0").click(modifiers=["Control"])
            page.locator(".nbs-diff").wait_for()
            assert page.locator(".nbs-diff-vars .nbs-name", has_text="label").count() == 1
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DOCS_IMAGES / "serve.png"))
        finally:
            browser.close()
