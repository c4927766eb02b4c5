"""The server extension behind the JupyterLab extension, through its REST API, on a real
JupyterLab server with real kernels: enable, the history view's data, undo, checkout,
commit, branch, tag, and cancelling a long checkout (the namespace is left untouched)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ui_support import LabServer, run_cell, write_notebook


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    server = LabServer(tmp_path_factory.mktemp("lab")).start()
    yield server
    server.stop()


def test_extension_is_installed_and_enabled(lab: LabServer) -> None:
    """The prebuilt front end is served, and the server extension answers."""
    page = lab.api("GET", "/lab/api/extensions")
    names = {e["name"]: e for e in page}
    assert "nbstate" in names and names["nbstate"]["enabled"], names.keys()
    assert lab.api("GET", "/nbstate/api/jobs/0123abcd", expect=(404,))["error"]


def test_history_undo_checkout_commit_branch_tag(lab: LabServer) -> None:
    write_notebook(lab.root / "flow.ipynb", ["x = 1", "x = 2\ny = [x]"])
    kid = lab.start_session("flow.ipynb")
    info = lab.api("GET", f"/nbstate/api/kernels/{kid}/info?refresh=1")
    assert info["installed"] and not info["loaded"]
    lab.api("GET", f"/nbstate/api/kernels/{kid}/history", expect=(409,))

    job = lab.job(kid, "enable", {"notebook_path": "flow.ipynb"})
    assert job["state"] == "done", job
    assert job["result"]["loaded"] and job["result"]["notebook"] == "flow.ipynb"
    assert Path(job["result"]["store"]) == lab.root / ".nbstate"

    client = lab.client(kid)
    try:
        run_cell(client, "x = 1")
        run_cell(client, "x = 2\ny = [x]")
        history = lab.api("GET", f"/nbstate/api/kernels/{kid}/history")
        titles = [c["first_line"] for c in history["commits"]]
        assert titles[:2] == ["x = 2", "x = 1"], titles
        newest = history["commits"][0]
        assert newest["head"] and newest["changed"] == ["x"] and newest["created"] == ["y"]
        assert {"kind": "branch", "name": "main", "head": "1"} in newest["labels"]

        shown = lab.api("GET", f"/nbstate/api/kernels/{kid}/show?ref={newest['commit']}")
        assert shown["code"] == "x = 2\ny = [x]"
        assert {v["name"]: v["change"] for v in shown["variables"]} == {"x": "changed", "y": "created"}

        older = history["commits"][1]["commit"]
        d = lab.api("GET", f"/nbstate/api/kernels/{kid}/diff?a={older}&b={newest['commit']}")
        assert {v["name"]: v["change"] for v in d["variables"]} == {"x": "changed", "y": "added"}
        assert d["code"] == []  # both commits recorded the same notebook file

        # Undo: the variables as they were before the last cell; a silent request made no commit.
        job = lab.job(kid, "undo", {"n": 1})
        assert job["state"] == "done", job
        assert "now at" in job["result"]["summary"]
        assert run_cell(client, "print(x, 'y' in dir())").strip() == "1 False"

        # Check out the commit of `x = 2` again.
        job = lab.job(kid, "checkout", {"ref": newest["commit"]})
        assert job["state"] == "done" and job["fraction"] == 1.0, job
        assert run_cell(client, "print(x, y)").strip() == "2 [2]"

        job = lab.job(kid, "commit", {"message": "two and a list"})
        assert job["state"] == "done", job
        assert lab.job(kid, "branch", {"name": "experiment"})["state"] == "done"
        assert lab.job(kid, "tag", {"name": "v1", "ref": newest["commit"]})["state"] == "done"
        failed = lab.job(kid, "tag", {"name": "v1"})
        assert failed["state"] == "failed" and "exists already" in failed["error"]

        history = lab.api("GET", f"/nbstate/api/kernels/{kid}/history")
        assert history["commits"][0]["message"] == "two and a list"
        assert history["branches"]["experiment"] == history["head"]
        assert history["tags"]["v1"] == newest["commit"]
        cells = lab.api("GET", f"/nbstate/api/kernels/{kid}/cells?ref={newest['commit']}")
        assert [c["source"] for c in cells["cells"]] == ["x = 1", "x = 2\ny = [x]"]
        # Requests through the extension leave nothing in the kernel's own history.
        assert run_cell(client, "print(sum('kernelapi' in c for c in In[:-1]))").strip() == "0"
    finally:
        client.stop_channels()
    lab.api("DELETE", f"/api/kernels/{kid}", expect=(204,))


def test_cancel_leaves_the_namespace_untouched(lab: LabServer) -> None:
    write_notebook(lab.root / "slow.ipynb", [])
    kid = lab.start_session("slow.ipynb")
    assert lab.job(kid, "enable", {"notebook_path": "slow.ipynb"})["state"] == "done"
    client = lab.client(kid)
    try:
        # A generator cannot be stored: checking out its commit replays this cell (3 s).
        run_cell(client, "import time\ntime.sleep(3)\ngen = (i for i in range(3))\nkeep = [1, 2]")
        target = lab.api("GET", f"/nbstate/api/kernels/{kid}/history")["commits"][0]["commit"]
        run_cell(client, "gen = None\nkeep.append(3)\nnew = 'made later'")
        before = run_cell(client, "print(id(keep), keep, gen, new)")
        head = lab.api("GET", f"/nbstate/api/kernels/{kid}/info?refresh=1")["head"]

        job = lab.api("POST", f"/nbstate/api/kernels/{kid}/ops", {"verb": "checkout", "args": {"ref": target}})
        deadline = time.monotonic() + 10
        while job["phase"] != "restoring" and time.monotonic() < deadline:
            time.sleep(0.05)
            job = lab.api("GET", f"/nbstate/api/jobs/{job['id']}")
        assert job["phase"] == "restoring" and job["cancellable"] and job["estimate"] > 2, job
        time.sleep(0.5)
        t0 = time.monotonic()
        lab.api("POST", f"/nbstate/api/jobs/{job['id']}/cancel", {})
        while job["state"] == "running":
            time.sleep(0.05)
            job = lab.api("GET", f"/nbstate/api/jobs/{job['id']}")
        assert job["state"] == "cancelled", job
        assert time.monotonic() - t0 < 2.5, "the cancel did not interrupt the replay"
        assert "as they were" in job["error"]
        # HEAD where it was, the very same objects, and the kernel goes on recording.
        assert lab.api("GET", f"/nbstate/api/kernels/{kid}/info?refresh=1")["head"] == head
        assert run_cell(client, "print(id(keep), keep, gen, new)") == before
        history = lab.api("GET", f"/nbstate/api/kernels/{kid}/history")
        assert history["commits"][1]["commit"] == head

        # Not cancelled, the same checkout completes.
        job = lab.job(kid, "checkout", {"ref": target}, timeout=60)
        assert job["state"] == "done", job
        assert run_cell(client, "print(list(gen), keep, 'new' in dir())").strip() == "[0, 1, 2] [1, 2] False"
    finally:
        client.stop_channels()
    lab.api("DELETE", f"/api/kernels/{kid}", expect=(204,))
