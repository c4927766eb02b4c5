"""nbstate never breaks the user's cell, and what it writes is consistent (real kernels).

Values that cannot be pickled are recorded as such, with the reason; cell output is exactly what
it is without nbstate; failing cells are committed; an internal failure costs one warning line and
nothing else. Each commit is one SQLite transaction whose blobs all exist. A restarted kernel
continues the history of its store; NBSTATE_STORE and ``%nbstate init --store`` choose the store.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from nbstate.state import load_version
from nbstate.store import NewVersion, PendingCommit, Store


def status_json(kernel) -> dict:
    return json.loads(kernel.ok("%nbstate status --json").stdout)


def head(kernel) -> str:
    return kernel.inside("result = rec.store.head(rec.notebook_id)[1]")


# --- values that cannot be stored --------------------------------------------------------------


def test_unserializable_values_are_recorded_with_their_reason(kernel):
    kernel.ok(
        "import threading, socket, sqlite3\n"
        "items = [1, 2]\n"
        "gen = (i * 2 for i in range(3))\n"
        "lock = threading.Lock()\n"
        "fh = open('notes.txt', 'w')\n"
        "sock = socket.socket()\n"
        "con = sqlite3.connect(':memory:')"
    )
    entry = kernel.log()[0]
    assert {"items", "gen", "lock", "fh", "sock", "con"} <= set(entry["created"])
    reasons = status_json(kernel)["not_serializable"]
    assert sorted(reasons) == ["con", "fh", "gen", "lock", "sock"]
    assert "generator" in reasons["gen"]
    assert "lock" in reasons["lock"]
    assert "TextIOWrapper" in reasons["fh"]
    assert "socket" in reasons["sock"]
    assert "Connection" in reasons["con"]
    text = kernel.ok("%nbstate status").stdout
    for name, why in reasons.items():
        assert f"  {name}: {why}" in text
    assert "items" not in text
    # They keep working, and an unserializable value does not pull others in with it.
    r = kernel.ok("print(next(gen))\nfh.write('x')\ncon.execute('select 1').fetchone()[0]")
    assert r.stdout == "0\n" and r.outputs[0]["data"]["text/plain"] == "1"
    assert r.stderr == ""
    groups = kernel.inside("result = {n: sorted(rec.tracker.by_name[n].names) for n in ['items', 'gen', 'lock', 'fh', 'sock', 'con']}")
    assert groups == {n: [n] for n in groups}
    kernel.ok("fh.close(); sock.close(); con.close()\ndel gen, lock, fh, sock, con")
    assert status_json(kernel)["not_serializable"] == {}


def test_a_value_that_holds_the_shell_stays_apart_from_what_the_shell_shows(kernel):
    kernel.ok("shown = [1, 2]")
    kernel.ok("shown")  # now also in Out
    kernel.ok("ip = get_ipython()")
    assert kernel.inside("result = sorted(rec.tracker.by_name['ip'].names)") == ["ip"]
    assert "shown" not in status_json(kernel)["not_serializable"]
    kernel.ok("shown.append(3)")
    assert kernel.log()[0]["changed"] == ["shown"]


# --- the cell's own behaviour ------------------------------------------------------------------


CELLS = [
    "print('hello')",
    "41 + 1",
    "x = [1, 2]\nx",
    "x.append(3); x",
    "import sys\nprint('to stderr', file=sys.stderr)",
    "from IPython.display import display\ndisplay({'a': 1})\n'after'",
    "gen = (i for i in x)\nnext(gen)",
    "import threading\nlock = threading.Lock()\nlock.locked()",
    "1 / 0",
    "def f():\n    return undefined_name\nf()",
    "x = (",
    "x",
    "print(*range(3), sep='-'); None",
]


def shown(r) -> tuple:
    return (r.stdout, r.stderr, r.error, [o.get("data") for o in r.outputs])


def test_cells_show_exactly_what_they_show_without_nbstate(start_kernel, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "recorded").mkdir()
    plain = start_kernel(tmp_path / "plain", load=False)
    recorded = start_kernel(tmp_path / "recorded")
    for cell in CELLS:
        assert shown(recorded.run(cell)) == shown(plain.run(cell)), cell
    assert len(recorded.log()) >= len(CELLS) - 1


def test_failing_cells_are_committed(kernel):
    r = kernel.run("z = [0]\nz.append(1)\n1 / 0")
    assert r.error == "ZeroDivisionError: division by zero"
    e = kernel.log()[0]
    assert e["error"].startswith("ZeroDivisionError") and e["created"] == ["z"]
    r = kernel.run("z.append(2)\nraise ValueError('late')")
    e = kernel.log()[0]
    assert e["error"] == "ValueError: late" and e["changed"] == ["z"]
    r = kernel.run("w = (")
    assert r.error.startswith("SyntaxError")
    e = kernel.log()[0]
    assert e["first_line"] == "w = (" and e["error"].startswith("SyntaxError") and e["created"] == []
    assert kernel.value("z") == [0, 1, 2]


def test_an_internal_failure_warns_once_and_never_touches_the_cell(kernel):
    kernel.ok("before = 1")
    commits = len(kernel.log())
    kernel.inside(
        "def boom(*args, **kwargs):\n"
        "    raise RuntimeError('checkpoint exploded\\nwith a second line')\n"
        "rec.tracker.checkpoint = boom"
    )
    r = kernel.run("x = 41\nprint('out')\nx + 1")
    assert (r.error, r.stdout, r.outputs[0]["data"]["text/plain"]) == (None, "out\n", "42")
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbstate: could not checkpoint this cell")
    assert "checkpoint exploded" in lines[0]
    r = kernel.run("y = 2\nprint('again')")
    assert (r.error, r.stdout, r.stderr) == (None, "again\n", "")
    r = kernel.run("1 / 0")
    assert r.error == "ZeroDivisionError: division by zero" and r.stderr == ""
    assert len(kernel.log()) == commits  # nothing was recorded
    status = kernel.ok("%nbstate status").stdout
    assert "last nbstate error: RuntimeError: checkpoint exploded" in status
    kernel.inside("del rec.tracker.checkpoint")  # mended: the next cell catches up
    r = kernel.run("z = 3")
    assert r.stderr == ""
    e = kernel.log()[0]
    assert e["first_line"] == "z = 3" and {"x", "y", "z"} <= set(e["created"])
    assert kernel.value("[before, x, y, z]") == [1, 41, 2, 3]


def test_an_interrupt_during_the_checkpoint_stops_the_checkpoint_not_the_cell(kernel):
    import threading
    import time

    kernel.ok("before = [1]")
    kernel.inside(
        "import time\n"
        "rec.real_checkpoint = rec.tracker.checkpoint\n"
        "def slow(*args, **kwargs):\n"
        "    time.sleep(4)\n"
        "    return rec.real_checkpoint(*args, **kwargs)\n"
        "rec.tracker.checkpoint = slow"
    )
    timer = threading.Timer(1.5, kernel.km.interrupt_kernel)
    timer.start()
    started = time.monotonic()
    r = kernel.run("x = 41\nprint('out')\nx + 1")
    timer.join()
    assert time.monotonic() - started < 3.5  # the interrupt ended the checkpoint
    assert (r.error, r.stdout, r.outputs[0]["data"]["text/plain"]) == (None, "out\n", "42")
    assert len(r.stderr.splitlines()) == 1 and "KeyboardInterrupt" in r.stderr
    kernel.inside("del rec.tracker.checkpoint\ndel rec.real_checkpoint")
    r = kernel.run("y = 2")
    assert (r.error, r.stderr) == (None, "")
    e = kernel.log()[0]
    assert e["first_line"] == "y = 2" and e["created"] == ["x", "y"]
    assert "before" in e["examined"]  # stopped anywhere: everything is looked at again
    assert kernel.value("[before, x, y]") == [[1], 41, 2]


def test_a_store_that_cannot_be_used_costs_one_warning(kernel):
    kernel.ok("a = [1]")
    kernel.inside("rec.store.db.close()")  # every later write to the store fails
    r = kernel.run("b = list(range(1000))\nlen(b)")
    assert (r.error, r.outputs[0]["data"]["text/plain"]) == (None, "1000")
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("nbstate:")
    r = kernel.run("c = [2] * 500\nprint(len(c))")
    assert (r.error, r.stdout, r.stderr) == (None, "500\n", "")
    r = kernel.run("c.append(1); undefined_name")
    assert r.error == "NameError: name 'undefined_name' is not defined" and r.stderr == ""
    assert kernel.value("[a, len(b), len(c)]") == [[1], 1000, 501]
    check_store(kernel.cwd / ".nbstate")  # what was written is whole


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_store_costs_one_warning(kernel):
    kernel.ok("a = 1")
    store = kernel.cwd / ".nbstate"
    modes = {p: p.stat().st_mode for p in [store, *store.rglob("*")]}
    for p in modes:
        p.chmod(modes[p] & ~0o222)
    try:
        r = kernel.run("b = [1, 2, 3]\nb")
        assert r.error is None and r.outputs[0]["data"]["text/plain"] == "[1, 2, 3]"
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("nbstate:")
        r = kernel.run("c = 4\nc")
        assert r.error is None and r.stderr == ""
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


# --- the store ---------------------------------------------------------------------------------


def check_store(root: Path) -> dict:
    """Every commit names existing versions and parents; every manifest chunk is a stored,
    intact blob; every serializable version loads. Returns counts."""
    store = Store(root)
    try:
        db = store.db
        blob_rows = {h for (h,) in db.execute("SELECT hash FROM blobs")}
        versions = {r[0]: r for r in db.execute("SELECT id, manifest, serializable FROM var_versions")}
        commits = db.execute("SELECT id, parent, cell_run_id FROM commits").fetchall()
        ids = {c[0] for c in commits}
        runs = {r for (r,) in db.execute("SELECT id FROM cell_runs")}
        for cid, parent, run in commits:
            assert parent is None or parent in ids, cid
            assert run is None or run in runs, cid
            for name, vid in store.commit(cid).state.items():
                assert vid in versions, (cid, name)
        chunks = 0
        for vid, manifest, serializable in versions.values():
            if manifest is None:
                assert not serializable
                continue
            m = json.loads(manifest)
            for part in [m["stream"], *m["buffers"]]:
                for h in part["chunks"]:
                    assert h in blob_rows, (vid, h)
                    store.blobs.get(h)  # present and matching its hash
                    chunks += 1
                assert len(store.blobs.read_into(part["chunks"], part["n"])) == part["n"]
            loaded = load_version(store, store.versions([vid])[vid], {})
            assert sorted(loaded) == sorted(m["names"])
        return {"commits": len(commits), "versions": len(versions), "chunks": chunks}
    finally:
        store.close()


def test_every_manifest_chunk_of_a_session_is_a_stored_blob(start_kernel, tmp_path):
    k = start_kernel(tmp_path)
    k.ok("import numpy as np\nimport pandas as pd\nbig = np.arange(600_000, dtype=np.float64)")  # ~4.6 MiB
    k.ok("df = pd.DataFrame({'a': np.arange(1000), 'b': ['s'] * 1000})\nlst = [big, {'k': [1, 2]}]")
    k.ok("big[::100_000] = -1.0\ndf.loc[3, 'a'] = 7")
    k.ok("f = lambda v: v + 1\nnested = {'f': f, 'arr': big[:10]}")
    k.ok("del lst\nlst = list(range(100))")
    k.ok("big = big * 2")
    k.shutdown()
    counts = check_store(tmp_path / ".nbstate")
    assert counts["commits"] >= 6 and counts["chunks"] > 5


def test_a_commit_is_one_transaction(kernel):
    kernel.ok("a = 1")
    kernel.inside("rec.trace = []\nrec.store.db.set_trace_callback(rec.trace.append)")
    kernel.ok("b = [1]\nc = {'k': 2}\nimport numpy as np\nd = np.ones(10)")
    trace = kernel.inside("rec.store.db.set_trace_callback(None)\nresult = rec.trace\ndel rec.trace")
    transactions, current, outside = [], None, []
    for statement in trace:
        if statement.startswith("BEGIN"):
            current = []
        elif statement in ("COMMIT", "ROLLBACK"):
            transactions.append((statement, current))
            current = None
        elif current is not None:
            current.append(statement)
        else:
            outside.append(statement)
    assert current is None  # every transaction ended

    def inserts(statements, table):
        return [s for s in statements if s.startswith(f"INSERT INTO {table} ")]

    recording = [(end, body) for end, body in transactions if inserts(body, "commits")]
    assert len(recording) == 1
    end, body = recording[0]
    assert end == "COMMIT"
    assert len(inserts(body, "commits")) == 1 and len(inserts(body, "cell_runs")) == 1
    assert len(inserts(body, "var_versions")) == 4  # b, c, d and np, in the same transaction
    assert not [s for s in outside if s.startswith(("INSERT", "UPDATE", "DELETE"))]  # no write outside one
    assert kernel.inside("result = rec.last_commit.id") == kernel.log()[0]["commit"]


def test_a_failed_record_leaves_no_trace(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    store.ensure_notebook("nb", None)
    store.start_session("s", "nb", "3", "0")

    def pending(code: str) -> PendingCommit:
        return PendingCommit(
            notebook_id="nb", session_id="s", code=code, execution_count=1, started=0.0, duration=0.0,
            reads=[], writes=["x"], deletes=[], error=None, kept={},
            new_versions=[NewVersion(["x"], None, None, 0, False, "TypeError: nope", {"x": "object"})],
        )

    first = store.record(pending("x = 1"))
    counts = {t: store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("cell_runs", "var_versions", "commits")}

    def fail(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "_advance", fail)
    with pytest.raises(sqlite3.OperationalError):
        store.record(pending("x = 2"))
    monkeypatch.undo()
    after = {t: store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts}
    assert after == counts
    assert store.head("nb")[1] == first.id
    second = store.record(pending("x = 3"))
    assert second.parent == first.id
    store.close()


# --- which store, and restarts -----------------------------------------------------------------


def test_a_restarted_kernel_continues_the_history(start_kernel, tmp_path):
    first = start_kernel(tmp_path)
    first.ok("x = [1]")
    first.ok("x.append(2)")
    old_head = head(first)
    old = [e["commit"] for e in first.log()]
    first.shutdown()
    second = start_kernel(tmp_path)
    second.ok("y = 3")
    entries = second.log()
    assert entries[0]["first_line"] == "y = 3"
    new = [e for e in entries if e["commit"] not in old]
    assert [e["commit"] for e in entries[len(new):]] == old  # the old history, unchanged
    assert new[-1]["parent"] == old_head  # the new session's first commit follows the old HEAD
    assert all(a["parent"] == b["commit"] for a, b in zip(new, new[1:], strict=False))
    assert "x" in set().union(*(e["deleted"] for e in new))  # the new kernel has no x
    assert entries[0]["created"] == ["y"]
    assert len(second.inside("result = [s[0] for s in rec.store.sessions(rec.notebook_id)]")) == 2


def test_nbstate_store_environment_variable_chooses_the_store(start_kernel, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    cwd = tmp_path / "work"
    cwd.mkdir()
    k = start_kernel(cwd, env={"NBSTATE_STORE": str(elsewhere)})
    k.ok("a = 1")
    assert Path(k.inside("result = str(rec.store.root)")) == elsewhere
    assert (elsewhere / "nbstate.sqlite").exists() and not (cwd / ".nbstate").exists()
    assert f"store:     {elsewhere}" in k.ok("%nbstate status").stdout


def test_nbstate_init_store_switches_the_store(kernel, tmp_path):
    kernel.ok("a = 1")
    other = tmp_path / "other-store"
    r = kernel.ok(f"%nbstate init --store {other}")
    assert str(other) in r.stdout
    assert Path(kernel.inside("result = str(rec.store.root)")) == other
    kernel.ok("b = 2")
    entries = kernel.log()
    assert entries[0]["first_line"] == "b = 2"
    assert "a = 1" not in [e["first_line"] for e in entries]
    default = Store(tmp_path / ".nbstate")
    try:
        codes = [default.cell_run(c.cell_run_id).code for c in default.commits() if c.cell_run_id is not None]
    finally:
        default.close()
    assert "a = 1" in codes and "b = 2" not in codes
