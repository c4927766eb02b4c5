"""End to end: a real JupyterLab server with nbstate's extensions, driven in Debian's Chromium by
Playwright, as a person would: open a notebook, enable nbstate from the History panel, run
cells, undo with the toolbar button and see the kernel's variables go back, check out an older
node in the History panel, compare two nodes, commit with a message from the menu, pick a commit
in the Checkout dialog, and cancel a slow checkout. Screenshots go to docs/images/."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from ui_support import CHROMIUM_ARGS, LabServer, chromium_path, write_notebook

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"

CELLS = [
    "x = 1",
    "x = x * 10\nlabels = ['ten']",
    "print('x is', x)",
    "import time\ntime.sleep(4)\nticks = (i for i in range(3))",
    "ticks = None",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's Chromium is not installed and apt-get could not install it (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    server = LabServer(tmp_path_factory.mktemp("lab-e2e")).start()
    yield server
    server.stop()


@pytest.fixture
def page(chromium: str, lab: LabServer, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30000)
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        try:
            yield page
        finally:
            # What the page showed last and what it logged, for whoever reads a failure.
            page.screenshot(path=str(tmp_path / "last.png"))
            (tmp_path / "console.log").write_text("\n".join(console))
            print(f"the browser's last screenshot and console: {tmp_path}")
            context.close()
            browser.close()


def cell(page: Any, i: int) -> Any:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(i)


def run_cell(page: Any, i: int) -> None:
    """Click into cell i and run it with Shift+Enter; wait until it has run."""
    c = cell(page, i)
    c.locator(".jp-InputArea-editor").click()
    count = c.locator(".jp-InputPrompt").inner_text()
    page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        prompt = c.locator(".jp-InputPrompt").inner_text()
        if re.search(r"\[\d+\]", prompt) and prompt != count:
            return
        time.sleep(0.1)
    raise AssertionError(f"cell {i} did not run: prompt {prompt!r}")


def output(page: Any, i: int) -> str:
    return cell(page, i).locator(".jp-OutputArea").inner_text().strip()


def menu(page: Any, item: str, screenshot: str | None = None) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^nbstate$")).click()
    entry = page.locator(".lm-Menu-itemLabel", has_text=item)
    entry.wait_for()
    if screenshot:
        page.screenshot(path=str(DOCS_IMAGES / screenshot))
    entry.click()


class toasts_hidden:
    """Notifications hidden while screenshots are taken (they would cover the panel)."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def __enter__(self) -> None:
        self.page.evaluate(
            "() => { const s = document.createElement('style'); s.id = 'nbs-test-hide-toasts';"
            " s.textContent = '.Toastify { display: none !important; }'; document.head.appendChild(s); }"
        )

    def __exit__(self, *exc: Any) -> None:
        self.page.evaluate("() => document.getElementById('nbs-test-hide-toasts')?.remove()")


def widen_sidebar(page: Any, pixels: int = 160) -> None:
    """Drag the right sidebar's edge to the left, as a person would to read the panel."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").last
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - pixels, y, steps=8)
    page.mouse.up()


def row(page: Any, text: str) -> Any:
    return page.locator("#nbstate-history .nbs-row", has_text=text).first


def head(lab: LabServer, kid: str) -> str:
    return lab.api("GET", f"/nbstate/api/kernels/{kid}/info?refresh=1")["head"]


def moves_head(lab: LabServer, kid: str, action: Any, timeout: float = 60) -> None:
    """Do ``action`` (a click) and wait until HEAD has moved: the operation is over."""
    old = head(lab, kid)
    action()
    deadline = time.monotonic() + timeout
    while head(lab, kid) == old:
        assert time.monotonic() < deadline, "HEAD did not move"
        time.sleep(0.2)


def kernel_idle(lab: LabServer, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = lab.api("GET", "/api/kernels")
        if kernels and all(k["execution_state"] == "idle" for k in kernels):
            return kernels[0]["id"]
        time.sleep(0.2)
    raise AssertionError("the kernel did not become idle")


def history(lab: LabServer, kid: str) -> dict[str, Any]:
    return lab.api("GET", f"/nbstate/api/kernels/{kid}/history")


def test_time_travel_by_clicking(lab: LabServer, page: Any) -> None:
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    write_notebook(lab.root / "demo.ipynb", CELLS)
    page.goto(f"{lab.url}/lab/tree/demo.ipynb?reset&token={lab.token}")
    cell(page, 4).wait_for(timeout=60000)
    kid = kernel_idle(lab)

    # The History panel, from the nbstate menu; the kernel has not loaded nbstate yet.
    menu(page, "History Panel", screenshot="menu.png")
    panel = page.locator("#nbstate-history")
    panel.wait_for()
    widen_sidebar(page)
    page.locator("#nbstate-history .nbs-enable").click()
    page.locator("#nbstate-history .nbs-header-title", has_text="demo.ipynb").wait_for()
    assert lab.api("GET", f"/nbstate/api/kernels/{kid}/info")["loaded"]

    # Run cells; the panel follows.
    run_cell(page, 0)
    run_cell(page, 1)
    row(page, "x = x * 10").wait_for()
    run_cell(page, 2)
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell')[2].innerText.includes('x is 10')")

    # Undo, from the notebook's toolbar: the last cell run (the print) and then `x = x * 10`.
    for _ in range(2):
        moves_head(lab, kid, page.locator(".nbs-toolbar-nbstate-undo .jp-ToolbarButtonComponent").click)
    run_cell(page, 2)
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell')[2].innerText.includes('x is 1')")
    assert "x is 1" in output(page, 2) and "x is 10" not in output(page, 2)

    # Check out the older node of `x = x * 10` in the History panel.
    row(page, "x = x * 10").click()
    moves_head(lab, kid, page.locator("#nbstate-history .nbs-checkout-vars").click)
    run_cell(page, 2)
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell')[2].innerText.includes('x is 10')")

    # Commit with a message, from the menu.
    menu(page, "Commit…")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("checkpoint from the browser")
    dialog.locator(".jp-mod-accept").click()
    row(page, "checkpoint from the browser").wait_for()
    assert history(lab, kid)["commits"][0]["message"] == "checkpoint from the browser"

    # Two nodes selected: their diff (variables and code).
    row(page, "x = 1").click()
    row(page, "checkpoint from the browser").click(modifiers=["Control"])
    diff = page.locator("#nbstate-history .nbs-diff")
    diff.wait_for()
    assert diff.locator(".nbs-name", has_text="labels").count() == 1
    assert "x" in diff.locator(".nbs-diff-vars").inner_text()
    with toasts_hidden(page):
        page.locator("#nbstate-history").screenshot(path=str(DOCS_IMAGES / "diff.png"))
    row(page, "checkpoint from the browser").click()
    page.locator("#nbstate-history .nbs-show").wait_for()
    with toasts_hidden(page):
        page.screenshot(path=str(DOCS_IMAGES / "history.png"))

    # The Checkout dialog, from its keyboard shortcut: pick `x = 1`, variables only.
    cell(page, 2).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Alt+Shift+O")
    picker = page.locator(".jp-Dialog .nbs-picker")
    picker.wait_for()
    picker.locator(".nbs-picker-row", has_text="x = 1").first.click()
    with toasts_hidden(page):
        page.screenshot(path=str(DOCS_IMAGES / "checkout.png"))
    moves_head(lab, kid, page.locator(".jp-Dialog .jp-mod-accept").click)
    run_cell(page, 2)
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell')[2].innerText.includes('x is 1')")

    # A slow checkout (a generator is rebuilt by replaying its 4-second cell), cancelled.
    run_cell(page, 3)
    run_cell(page, 4)
    slow = row(page, "import time")
    slow.wait_for()
    head_before = head(lab, kid)
    slow.click()
    page.locator("#nbstate-history .nbs-checkout-vars").click()
    progress = page.locator(".nbs-progress-dialog")
    progress.wait_for()
    page.locator(".nbs-progress-text", has_text="restoring").wait_for()
    with toasts_hidden(page):
        page.screenshot(path=str(DOCS_IMAGES / "progress.png"))
    progress.locator(".nbs-cancel").click()
    page.locator(".Toastify__toast", has_text="as they were").first.wait_for()
    assert head(lab, kid) == head_before
    run_cell(page, 2)
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell')[2].innerText.includes('x is 1')")

    # A keyboard shortcut: Alt+Shift+Z undoes the last cell run (the print: nothing changes).
    cell(page, 2).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")
    moves_head(lab, kid, lambda: page.keyboard.press("Alt+Shift+Z"))
