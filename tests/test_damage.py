"""Damage to a store: flipped bytes, truncated and missing blobs, a truncated or overwritten
SQLite file. Every read verifies; checkout rebuilds what it cannot read by replaying cells, or
fails naming what is damaged and changes nothing; fsck lists the damage and what it affects;
everything else keeps working, and the user's cells run whatever state the store is in."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from kernels import Kernel

from nbstate.store import Store

NBSTATE = str(Path(sys.executable).with_name("nbstate"))

CELLS = [
    "import numpy as np\nseed = 3",
    "arr = np.random.default_rng(seed).random(300_000)",  # 2.3 MiB of raw chunks
    "words = ['w%d' % i for i in range(40_000)]",  # a compressible pickle stream
    "arr[:] = 0.5\nwords.append('x')\ntotal = float(arr.sum())",
]
EXPECTED_AT_3 = {"arr0": None, "nwords": 40_000, "last": "w39999"}


def fsck(root: Path) -> tuple[int, dict]:
    done = subprocess.run([NBSTATE, "fsck", "--json", "--store", str(root)], capture_output=True, text=True)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip().startswith("{") else {"raw": done.stdout + done.stderr}


def chunk_locations(root: Path, commit_prefix: str, name: str) -> list[tuple[str, str, int, int]]:
    """(hash, pack, offset, stored size) of every chunk of ``name``'s version at that commit."""
    store = Store(root, read_only=True)
    try:
        commit = store.commit(store.commit_ids_with_prefix(commit_prefix)[0])
        version = store.versions([commit.state[name]])[commit.state[name]]
        hashes = list(version.manifest["stream"]["chunks"]) + [h for b in version.manifest["buffers"] for h in b["chunks"]]
        where = store.blobs.locate(hashes)
        return [(h, where[h].pack, where[h].offset, where[h].stored) for h in hashes]
    finally:
        store.close()


def make_session(k: Kernel) -> list[str]:
    """Run CELLS; returns the commit ids, oldest first (after the baseline)."""
    for code in CELLS:
        k.ok(code)
    return [e["commit"] for e in k.log()[: len(CELLS)]][::-1]


def values(k: Kernel) -> dict:
    return k.value("{'arr0': float(arr[0]), 'nwords': len(words), 'last': words[-1], 'sum': round(float(arr.sum()), 6)}")


def test_flipped_bytes_are_found_and_checkout_replays_around_them(kernel, tmp_path):
    commits = make_session(kernel)
    before = kernel.inside("result = None")  # the kernel is idle: nothing writes now
    assert before is None
    # The values as the third commit recorded them, for comparison after the damage.
    kernel.ok(f"%nbstate checkout {commits[2]}")
    expected = values(kernel)
    kernel.ok("%nbstate checkout @{-1}")
    root = tmp_path / ".nbstate"
    damaged = {}
    for name in ("arr", "words"):
        h, pack, offset, stored = chunk_locations(root, commits[2][:12], name)[0]
        with open(root / "objects" / "packs" / pack, "r+b") as f:
            f.seek(offset + stored // 2)
            byte = f.read(1)
            f.seek(offset + stored // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        damaged[name] = h
    status, report = fsck(root)
    assert status == 3
    found = {p["what"]: p["kind"] for p in report["problems"]}
    assert found == {damaged["arr"]: "damaged blob", damaged["words"]: "damaged blob"}
    assert any("arr" in where for where in report["affected"][damaged["arr"]])
    assert any("words" in where for where in report["affected"][damaged["words"]])
    # Checkout of the damaged versions: both are rebuilt by replaying their cells, exactly.
    r = kernel.ok(f"%nbstate checkout {commits[2]}")
    assert "replayed" in r.stdout and "arr" in r.stdout and "words" in r.stdout
    for name in ("arr", "words"):
        assert damaged[name] in r.stdout  # the warning names the blob and why it was not used
    assert values(kernel) == expected
    # Nothing else is affected: the newest state comes back whole, and cells go on.
    kernel.ok("%nbstate checkout main")
    assert kernel.value("[float(arr[0]), len(words), total]") == [0.5, 40_001, 150_000.0]
    kernel.ok("more = list(range(10))")
    assert kernel.log()[0]["created"] == ["more"]


def test_truncated_and_missing_packs_are_listed_and_rebuilt_by_replay(start_kernel, tmp_path):
    k = start_kernel(tmp_path)
    commits = make_session(k)
    k.ok(f"%nbstate checkout {commits[2]}")
    expected = values(k)
    k.shutdown()
    root = tmp_path / ".nbstate"
    # Cut the pack in the middle of `words`' first chunk: that blob and every later one is cut.
    h, pack, offset, stored = chunk_locations(root, commits[2][:12], "words")[0]
    pack_path = root / "objects" / "packs" / pack
    with open(pack_path, "r+b") as f:
        f.truncate(offset + stored // 2)
    status, report = fsck(root)
    assert status == 3
    kinds = {p["what"]: p["kind"] for p in report["problems"]}
    assert kinds[h] == "truncated blob"
    assert set(kinds.values()) == {"truncated blob"}
    # A new kernel in the same directory: `arr`, stored before the cut, still loads; `words`
    # comes back by replay.
    k = start_kernel(tmp_path)
    r = k.ok(f"%nbstate checkout {commits[2]}")
    assert "replayed" in r.stdout and "words" in r.stdout.split("replayed", 1)[1]
    assert h in r.stdout
    assert values(k) == expected
    k.shutdown()
    # The pack is gone altogether: every blob is missing, fsck says so, and checkout rebuilds
    # the whole state from the cells.
    pack_path.unlink()
    status, report = fsck(root)
    assert status == 3
    assert {p["kind"] for p in report["problems"]} == {"missing blob"}
    assert h in {p["what"] for p in report["problems"]}
    k = start_kernel(tmp_path)
    r = k.ok(f"%nbstate checkout {commits[2]}")
    assert "loaded" not in r.stdout.split("now at", 1)[1].split("kept")[0]
    assert values(k) == expected
    # New commits go into a new pack and are whole.
    k.ok("fresh = np.ones(1000)")
    status, report = fsck(root)
    assert {p["kind"] for p in report["problems"]} == {"missing blob"}  # only the old damage


def test_damage_that_replay_cannot_get_around_fails_cleanly_naming_it(kernel, tmp_path):
    (tmp_path / "input.txt").write_text("hello")
    kernel.ok("text = open('input.txt').read()\nkeep = [1]")
    kernel.ok("text = text.upper()\nkeep.append(2)")
    commits = [e["commit"] for e in kernel.log()]
    (tmp_path / "input.txt").unlink()  # the cell that made `text` cannot be replayed
    root = tmp_path / ".nbstate"
    h, pack, offset, stored = chunk_locations(root, commits[1][:12], "text")[0]
    with open(root / "objects" / "packs" / pack, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * stored)
    r = kernel.run(f"%nbstate checkout {commits[1]}")
    assert "cannot restore" in r.stderr and "text" in r.stderr
    assert h in r.stderr and "FileNotFoundError" in r.stderr  # what is damaged, and why replay failed
    assert kernel.value("[text, keep]") == ["HELLO", [1, 2]]  # nothing changed
    head = json.loads(kernel.ok("%nbstate status --json").stdout)["head"]
    assert head == commits[0]


def test_a_truncated_database_is_named_and_the_cells_still_run(start_kernel, tmp_path):
    k = start_kernel(tmp_path)
    for i in range(40):
        k.ok(f"v{i} = list(range({i} * 50))")
    k.shutdown()
    root = tmp_path / ".nbstate"
    db = root / "nbstate.sqlite"
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, as after a clean close
    con.close()
    shutil.copy(db, tmp_path / "backup.sqlite")
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    # The CLI says what is damaged and what to do; fsck lists it and exits 3.
    done = subprocess.run([NBSTATE, "log"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "is damaged" in done.stderr and "cut short" in done.stderr and "Traceback" not in done.stderr
    status, report = fsck(root)
    assert status == 3 and report["problems"][0]["kind"] == "damaged database"
    # A kernel loading nbstate there: one clear line, its cells run, %nbstate says why it is idle.
    k = start_kernel(tmp_path, load=False)
    r = k.run("%load_ext nbstate")
    assert r.error is None and "not recording" in r.stderr and "is damaged" in r.stderr
    r = k.run("x = 21\nx * 2")
    assert r.error is None and r.stderr == "" and r.outputs[0]["data"]["text/plain"] == "42"
    r = k.run("%nbstate log")
    assert "UsageError" in r.stderr and "not recording" in r.stderr and "Traceback" not in r.stderr
    # It can record elsewhere meanwhile; the damaged store was not touched.
    size = db.stat().st_size
    k.ok(f"%nbstate init --store {tmp_path / 'elsewhere'}")
    k.ok("y = 1")
    assert [e["created"] for e in k.log()[:1]] == [["y"]]
    assert db.stat().st_size == size


def test_an_emptied_database_is_not_taken_for_a_new_store(start_kernel, tmp_path):
    k = start_kernel(tmp_path)
    k.ok("a = list(range(1000))")
    k.shutdown()
    root = tmp_path / ".nbstate"
    for suffix in ("", "-wal", "-shm"):
        p = root / f"nbstate.sqlite{suffix}"
        if p.exists():
            p.write_bytes(b"")
    k = start_kernel(tmp_path, load=False)
    r = k.run("%load_ext nbstate")
    assert "is damaged" in r.stderr and "empty" in r.stderr
    assert (root / "nbstate.sqlite").stat().st_size == 0  # no new, empty history over the old packs
    assert k.run("b = 2").error is None


def test_a_database_that_fails_under_a_running_kernel_stops_checkpoints_with_one_line(kernel, tmp_path):
    kernel.ok("a = [1]")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 200)
    # The kernel's connection now reads a damaged file (as after an overwrite under it).
    kernel.inside(f"import sqlite3\nrec.store.db = sqlite3.connect({str(garbage)!r}, isolation_level=None)")
    r = kernel.run("b = [2]\nlen(b)")
    assert r.error is None and r.outputs[0]["data"]["text/plain"] == "1"
    assert len(r.stderr.splitlines()) == 1 and "checkpoints are off" in r.stderr and "is damaged" in r.stderr
    r = kernel.run("c = 3\nprint(c)")
    assert (r.error, r.stdout, r.stderr) == (None, "3\n", "")
    r = kernel.run("%nbstate status")
    assert "UsageError" in r.stderr and "is damaged" in r.stderr and "Traceback" not in r.stderr
