"""Storage that grows with what changed: chunking that survives insertions, pack files (a torn
tail is ignored), fsck finding each kind of damage, gc keeping everything reachable and giving
space back, and stores of format version 1 still read."""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zstandard

from nbstate import maintenance
from nbstate.blobs import (
    CHUNK_SIZE,
    PACK_MAGIC,
    PATCH_DEPTH,
    BlobError,
    BlobFiles,
    digest,
    pack_names,
    split_stream,
)
from nbstate.codec import serialize
from nbstate.state import ReadAhead, Tracker, _manifest, load_version, load_version_with_ids
from nbstate.store import FORMAT_VERSION, PendingCommit, Store

NBSTATE = Path(sys.executable).parent / "nbstate"


class Session:
    """A namespace recorded into a store cell by cell, without a kernel."""

    def __init__(self, root: Path, session_id: str = "s") -> None:
        self.last: str | None = None  # the last commit, whose state the tracker's versions are
        self.store = Store(root)
        self.store.ensure_notebook("default", None)
        self.store.start_session(session_id, "default", "3", "test")
        self.session_id = session_id
        self.ns: dict = {}
        self.tracker = Tracker(self.ns)

    def cell(self, touched: set[str] | None = None, kind: str = "auto", message: str | None = None, **values):
        self.ns.update(values)
        names = set(values) | (touched or set())
        with self.store.writing():
            cp = self.tracker.checkpoint(names, set(self.ns), self.store.blobs)
            pending = PendingCommit(
                "default", self.session_id, "cell", None, time.time(), 0.0, sorted(names), [], cp.deleted, None, cp.kept,
                new_versions=[v for v, _ in cp.new], blobs=cp.blobs, kind=kind, message=message, base=self.last,
            )
            commit = self.store.record(pending)
        for v, live in cp.new:
            self.tracker.recorded(live, commit.state[v.names[0]])
        self.last = commit.id
        return commit, sum(b.stored_size for b in cp.blobs)

    def load(self, commit, name):
        vid = commit.state[name]
        return load_version(self.store, self.store.versions([vid])[vid], {})[name]


def new_chunks(before, after) -> tuple[int, int]:
    """(count, bytes) of the chunks of ``after`` not among those of ``before``."""
    old = {c.hash for c in _manifest(before, ["x"])[1]}
    fresh = [c for c in _manifest(after, ["x"])[1] if c.hash not in old]
    return len(fresh), sum(len(c.data) for c in fresh)


# --- chunking ------------------------------------------------------------------------------------


def test_content_defined_chunks_survive_an_insertion_at_the_front_of_a_list():
    rng = np.random.default_rng(1)
    items = [rng.bytes(100_000) for _ in range(200)]
    before = serialize([items], {})
    items.insert(0, rng.bytes(100_000))
    after = serialize([items], {})
    count, size = new_chunks(before, after)
    # The new element plus at most the chunks on either side of it, not the 20 MB after it.
    assert size < 100_000 + 3 * 256 * 1024, (count, size)
    items[150] = rng.bytes(100_000)
    count, size = new_chunks(after, serialize([items], {}))
    assert size < 100_000 + 3 * 256 * 1024


def test_stream_chunks_depend_only_on_the_bytes():
    data = np.random.default_rng(2).bytes(3 << 20)
    a = [c.hash for c in split_stream(data)]
    b = [c.hash for c in split_stream(bytes(data))]
    assert a == b and len(a) > 10
    assert b"".join(bytes(c.data) for c in split_stream(data)) == data


def test_a_dataframe_gaining_rows_or_a_column_keeps_its_old_chunks():
    n = 300_000
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"id": np.arange(n), "x": rng.random(n), "y": rng.random(n), "z": rng.random(n)})
    before = serialize([df], {})
    grown = pd.concat([df, df.iloc[:1000]], ignore_index=True)
    count, size = new_chunks(before, serialize([grown], {}))
    total = before.nbytes
    # Each column's last chunk changes (its tail moved); the rest of each column is kept.
    assert size < total / 3, (count, size, total)
    df2 = df.copy()
    df2["w"] = rng.random(n)
    count, size = new_chunks(before, serialize([df2], {}))
    assert size < n * 8 + 2 * CHUNK_SIZE


def test_an_in_place_edit_of_a_large_array_stores_a_patch_of_one_chunk(tmp_path):
    s = Session(tmp_path / "st")
    big = np.random.default_rng(4).random(8 << 20 >> 3)  # 8 MiB
    s.cell(big=big)
    before = s.store.db.execute("SELECT count(*) FROM blobs").fetchone()[0]
    big[12345] = -1.0
    c, added = s.cell(touched={"big"})
    # One new blob: the changed 1 MiB chunk, as the 64 bytes around the element plus a header.
    assert s.store.db.execute("SELECT count(*) FROM blobs").fetchone()[0] == before + 1
    assert 64 < added < 200
    assert s.load(c, "big")[12345] == -1.0 and np.array_equal(s.load(c, "big"), big)


def _patched(root: Path, seed: int, steps: int, rows: int = 2048):
    """A session whose array ``a`` (rows of 8 KB) was stored, then had 1% of its rows changed
    ``steps`` times: (session, first commit, first value, then what _scattered_rows gives)."""
    s = Session(root)
    rng = np.random.default_rng(seed)
    a = rng.random((rows, 1024))
    first, _ = s.cell(a=a)
    original = a.copy()
    return (s, first, original, *_scattered_rows(s, rng, steps, a))


def _scattered_rows(s: Session, rng, steps: int, a):
    """Change 1% of ``a``'s rows, scattered, ``steps`` times: (commits, copies, bytes added)."""
    commits, copies, added = [], [], []
    for _ in range(steps):
        rows = rng.choice(a.shape[0], a.shape[0] // 100, replace=False)
        a[rows] = rng.random((len(rows), a.shape[1]))
        c, n = s.cell(touched={"a"})
        commits.append(c)
        copies.append(a.copy())
        added.append(n)
    return commits, copies, added


@pytest.mark.parametrize("mapped", ["1", "0"])
def test_scattered_row_changes_are_stored_as_patches_and_every_version_reads_back(tmp_path, monkeypatch, mapped):
    monkeypatch.setenv("NBSTATE_MMAP", mapped)
    monkeypatch.setattr("nbstate.blobs.MMAP_MIN", 1 << 20)
    steps = PATCH_DEPTH + 4  # past the longest chain, so some patches start again from the full chunk
    # 32 MiB in rows of 8 KB: 1% of rows touches most 1 MiB chunks
    s, first, original, commits, copies, added = _patched(tmp_path / "st", 8, steps, rows=4096)
    changed = (4096 // 100) * 1024 * 8
    codecs = dict(s.store.db.execute("SELECT codec, count(*) FROM blobs GROUP BY codec").fetchall())
    assert codecs["patch"] > steps * 20, codecs
    # Each step stores about what it changed (whole chunks would be 32x that); past the longest
    # chain a patch covers the changes since the chain's full chunk, still a fraction of it.
    assert all(n < 1.2 * changed + 64 * 1024 for n in added[:PATCH_DEPTH]), (added, changed)
    assert sum(added) < 2 * steps * changed, (added, changed)
    for c, want in [(first, original), *zip(commits, copies, strict=True)]:
        assert np.array_equal(s.load(c, "a"), want)
    assert maintenance.fsck(s.store).ok


def test_a_patched_array_restored_by_mapping_can_be_written_and_the_store_stays(tmp_path, monkeypatch):
    monkeypatch.setattr("nbstate.blobs.MMAP_MIN", 1 << 20)
    s, _, _, commits, copies, _ = _patched(tmp_path / "st", 9, 3)
    back = s.load(commits[1], "a")
    assert isinstance(back.base, mmap.mmap) and np.array_equal(back, copies[1])
    back[:] = 0.0
    assert np.array_equal(s.load(commits[1], "a"), copies[1]) and np.array_equal(s.load(commits[2], "a"), copies[2])


def test_gc_and_export_keep_what_a_kept_patch_patches(tmp_path):
    from nbstate import bundle

    s, _, _, commits, copies, _ = _patched(tmp_path / "st", 10, 3)
    for i in range(5):
        s.cell(i=i)
    # Only the newest commits are kept: the version of `a` they hold is made of patches whose
    # bases belong to versions gc removes.
    maintenance.gc(s.store, keep_last=2, keep_within=0)
    assert s.store.db.execute("SELECT count(*) FROM blobs WHERE codec='patch'").fetchone()[0] > 0
    assert maintenance.fsck(s.store).ok
    head = s.store.commit(s.store.head("default")[1])
    assert np.array_equal(s.load(head, "a"), copies[-1])
    dest = tmp_path / "out"
    bundle.export(s.store, "default", head.id, str(dest))
    shipped = Store(dest, read_only=True)
    vid = shipped.commit(head.id).state["a"]  # versions are numbered anew in the bundle
    assert np.array_equal(load_version(shipped, shipped.versions([vid])[vid], {})["a"], copies[-1])


def test_fsck_finds_a_patch_whose_base_is_gone_and_a_load_names_it(tmp_path):
    s, _, _, commits, _, _ = _patched(tmp_path / "st", 11, 1)
    patch = s.store.db.execute("SELECT hash FROM blobs WHERE codec='patch' LIMIT 1").fetchone()[0]
    base = s.store.blobs.bases_of([patch])[patch]
    s.store.db.execute("DELETE FROM blobs WHERE hash=?", (base,))
    s.store.blobs.forget()
    report = maintenance.fsck(s.store)
    assert not report.ok
    assert any(p.what == patch and base in p.detail for p in report.problems), report.problems
    with pytest.raises(BlobError, match=base):
        s.load(commits[0], "a")


# --- deltas of stream chunks ------------------------------------------------------------------


def _record(i: int, v: int) -> dict:
    return {"id": i, "name": f"user{i:05d}", "score": v * 1.5, "tags": ["a", "b", str(v % 7)], "active": v % 2 == 0}


def _records_session(root: Path, steps: int):
    """A dict of 10,000 small records, 1% of them replaced ``steps`` times: (session, commits,
    copies, bytes added per step, bytes of the records changed per step)."""
    import pickle

    s = Session(root)
    records = {f"k{i:05d}": _record(i, 0) for i in range(10_000)}
    commits, copies, added, changed = [s.cell(records=records)[0]], [pickle.loads(pickle.dumps(records))], [], []
    for step in range(steps):
        keys = range(step, 10_000, 100)
        for i in keys:
            records[f"k{i:05d}"] = _record(i, step + 1)
        c, n = s.cell(touched={"records"})
        commits.append(c)
        copies.append(pickle.loads(pickle.dumps(records)))
        added.append(n)
        changed.append(sum(len(pickle.dumps(_record(i, step + 1), protocol=5)) for i in keys))
    return s, commits, copies, added, changed


def test_changed_chunks_of_a_pickle_stream_are_stored_as_deltas_and_read_back(tmp_path):
    s, commits, copies, added, changed = _records_session(tmp_path / "st", 6)
    # Every 16 KiB chunk of the stream holds a changed record; whole, they would take the
    # stream's compressed size (about 40 KB) each step.
    assert all(n <= 2 * c for n, c in zip(added, changed, strict=True)), (added, changed)
    codecs = dict(s.store.db.execute("SELECT codec, count(*) FROM blobs GROUP BY codec").fetchall())
    assert codecs.get("delta", 0) > 6 * 10, codecs
    s.store.close()
    fresh = Store(tmp_path / "st", read_only=True)  # nothing cached
    for c, want in zip(commits, copies, strict=True):
        vid = fresh.commit(c.id).state["records"]
        assert load_version(fresh, fresh.versions([vid])[vid], {})["records"] == want
    assert maintenance.fsck(fresh).ok
    # A delta is made against a full chunk, never against another delta.
    for (h,) in fresh.db.execute("SELECT hash FROM blobs WHERE codec='delta'"):
        base = fresh.blobs.bases_of([h])[h]
        assert fresh.blobs.locate([base])[base].codec in ("raw", "zstd")


def test_an_insertion_at_the_front_of_a_stream_costs_about_what_was_inserted(tmp_path):
    rng = np.random.default_rng(4)
    words = [rng.bytes(int(rng.integers(20, 200))).hex() for _ in range(20_000)]  # a 4 MB stream
    s = Session(tmp_path / "st")
    s.cell(words=words)
    words[100:100] = ["inserted"] * 10
    words[5000] = "changed"
    c, n = s.cell(touched={"words"})
    # The pickle's 64 KiB frames all move, so each frame's header changes: some 40 chunks after
    # the insertion differ in a few bytes. Whole, they took 440 KB.
    assert n < 32 * 1024, n
    assert s.load(c, "words") == words


def test_a_stream_made_anew_tries_only_a_few_deltas(tmp_path, monkeypatch):
    import nbstate.blobs as blobs_module

    made = []
    real = blobs_module.make_delta
    monkeypatch.setattr(blobs_module, "make_delta", lambda *a: made.append(1) or real(*a))
    rng = np.random.default_rng(5)
    s = Session(tmp_path / "st")
    s.cell(items=[rng.bytes(1000) for _ in range(4000)])  # 4 MB: some 250 chunks
    c, _ = s.cell(items=[rng.bytes(1000) for _ in range(4000)])
    assert 0 < len(made) <= 8, len(made)
    assert s.store.db.execute("SELECT count(*) FROM blobs WHERE codec='delta'").fetchone()[0] == 0
    assert len(s.load(c, "items")) == 4000


def test_a_frame_that_gains_rows_stores_about_the_rows(tmp_path, monkeypatch):
    import nbstate.blobs as blobs_module

    rng = np.random.default_rng(6)
    n = 400_000  # columns of 3.2 MB: 4 chunks each, the last one grows
    s = Session(tmp_path / "st")
    df = pd.DataFrame({"id": np.arange(n), "x": rng.random(n), "y": rng.random(n)})
    s.cell(df=df)
    df = pd.concat([df, df.sample(1000, random_state=1)], ignore_index=True)
    c, added = s.cell(df=df)
    assert added < 2 * 1000 * 3 * 8 + 4096, added  # whole last chunks would be 3 x 0.2-1 MiB
    assert s.load(c, "df").equals(df)
    # A buffer whose bytes all moved (an array that gained an element at the front) tries
    # only a few deltas, each of which costs two compressions of a 1 MiB chunk.
    made = []
    real = blobs_module.make_delta
    monkeypatch.setattr(blobs_module, "make_delta", lambda *a: made.append(1) or real(*a))
    a = rng.random(2_000_000)
    s.cell(a=a)
    c, _ = s.cell(a=np.concatenate([[0.5], a]))
    assert 0 < len(made) <= 8, len(made)
    assert np.array_equal(s.load(c, "a"), np.concatenate([[0.5], a]))


def test_gc_and_export_keep_what_a_kept_delta_is_made_from_and_fsck_names_a_lost_one(tmp_path):
    from nbstate import bundle

    s, commits, copies, _, _ = _records_session(tmp_path / "st", 2)
    s.cell(other=1)
    s.cell(other=2)
    maintenance.gc(s.store, keep_last=2, keep_within=0)  # the first version of `records` goes
    assert s.store.db.execute("SELECT count(*) FROM blobs WHERE codec='delta'").fetchone()[0] > 0
    assert maintenance.fsck(s.store).ok
    head = s.store.commit(s.store.head("default")[1])
    assert s.load(head, "records") == copies[-1]
    bundle.export(s.store, "default", head.id, str(tmp_path / "out"))
    shipped = Store(tmp_path / "out", read_only=True)
    vid = shipped.commit(head.id).state["records"]
    assert load_version(shipped, shipped.versions([vid])[vid], {})["records"] == copies[-1]
    delta = s.store.db.execute("SELECT hash FROM blobs WHERE codec='delta' LIMIT 1").fetchone()[0]
    base = s.store.blobs.bases_of([delta])[delta]
    s.store.db.execute("DELETE FROM blobs WHERE hash=?", (base,))
    s.store.blobs.forget()
    report = maintenance.fsck(s.store)
    assert any(p.what == delta and base in p.detail for p in report.problems), report.problems
    with pytest.raises(BlobError, match=base):
        s.load(head, "records")


# --- packs ---------------------------------------------------------------------------------------


def test_blobs_go_into_few_pack_files_and_read_back(tmp_path):
    s = Session(tmp_path / "st")
    commits = [s.cell(**{f"v{i}": {"i": i, "payload": list(range(i))}})[0] for i in range(200)]
    files = [p for p in (tmp_path / "st" / "objects").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].name.startswith("pack-")
    assert s.load(commits[123], "v123") == {"i": 123, "payload": list(range(123))}
    s.store.close()
    again = Store(tmp_path / "st", read_only=True)
    vid = again.commit(commits[7].id).state["v7"]
    assert load_version(again, again.versions([vid])[vid], {})["v7"]["i"] == 7


def test_a_torn_pack_tail_is_ignored(tmp_path):
    s = Session(tmp_path / "st")
    c1, _ = s.cell(a=list(range(1000)))
    pack = s.store.blobs.pack_path(pack_names(s.store.blobs)[0])
    s.store.close()
    # A crash mid-append: bytes past the last blob the index names, and a commit never made.
    with open(pack, "ab") as f:
        f.write(os.urandom(777))
    s2 = Session.__new__(Session)
    s2.store = Store(tmp_path / "st")
    s2.session_id, s2.last = "s", None
    s2.ns, s2.tracker = {}, Tracker({})
    s2.tracker.namespace = s2.ns
    vid = c1.state["a"]
    assert load_version(s2.store, s2.store.versions([vid])[vid], {})["a"] == list(range(1000))
    assert maintenance.fsck(s2.store).ok
    # The next writer starts a pack of its own, never appending after the torn tail.
    c2, _ = s2.cell(b="after the crash")
    assert len(pack_names(s2.store.blobs)) == 2
    assert s2.load(c2, "b") == "after the crash"
    assert maintenance.du(s2.store).pack_waste_bytes >= 777
    maintenance.gc(s2.store, keep_last=10)  # rewrites the pack that is mostly torn tail
    assert maintenance.du(s2.store).pack_waste_bytes == 0
    assert maintenance.fsck(s2.store).ok
    assert s2.load(c2, "b") == "after the crash"


def test_blobs_written_but_never_committed_are_not_in_the_index(tmp_path):
    s = Session(tmp_path / "st")
    s.cell(a=1)
    s.ns["lost"] = np.random.default_rng(9).random(300_000)
    with s.store.writing():
        s.tracker.checkpoint({"lost"}, set(s.ns), s.store.blobs)
        s.store.blobs.sync()
    # The process dies here: its appended bytes are named by no row.
    s.store.db.close()
    store = Store(tmp_path / "st")
    assert maintenance.fsck(store).ok
    assert maintenance.du(store).pack_waste_bytes >= 300_000 * 8
    maintenance.gc(store)
    assert maintenance.du(store).pack_waste_bytes < 4096
    assert maintenance.fsck(store).ok


# --- reading ahead -------------------------------------------------------------------------------


def _two_big_versions(root: Path):
    """A session holding two versions with buffers and a stream over ReadAhead.RUN_MIN, and
    small ones: (session, commit, {name: value})."""
    s = Session(root)
    rng = np.random.default_rng(11)
    values = {
        "grid": rng.random((1024, 1024)),  # 8 MB, raw
        "frame": {"zeros": np.zeros(3_000_000), "small": np.arange(10), "words": [f"w{i}" for i in range(200_000)]},
    }
    commit, _ = s.cell(**values)
    return s, commit, values


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="reading ahead needs a second core")
def test_a_restore_reads_large_runs_ahead_in_the_pool_and_loads_the_same_values(tmp_path, monkeypatch):
    s, commit, values = _two_big_versions(tmp_path / "st")
    versions = s.store.versions(sorted(set(commit.state.values())))
    readers: list[tuple[str, int]] = []
    real = BlobFiles.read_into

    def watched(self, hashes, length, allow_map=False):
        readers.append((threading.current_thread().name, length))
        return real(self, hashes, length, allow_map=allow_map)

    monkeypatch.setattr(BlobFiles, "read_into", watched)
    ahead = ReadAhead(s.store, list(versions.values()))
    got = {}
    for v in versions.values():
        loaded, _ = load_version_with_ids(s.store, v, {}, ahead=ahead)
        got.update(loaded)
    assert np.array_equal(got["grid"], values["grid"])
    assert np.array_equal(got["frame"]["zeros"], values["frame"]["zeros"]) and got["frame"]["words"] == values["frame"]["words"]
    assert got["frame"]["small"].tolist() == list(range(10))
    # Every run of 1 MiB or more was read in the pool; the small ones when their value loaded.
    big = [(who, n) for who, n in readers if n >= ReadAhead.RUN_MIN]
    assert len(big) == 3 and all(who.startswith("nbstate-read") for who, _ in big), readers
    assert all(who == threading.main_thread().name for who, n in readers if n < ReadAhead.RUN_MIN), readers
    # What was read ahead is handed over once: a second load reads again, the same values.
    assert all(ahead.take(v.id, i) is None for v in versions.values() for i in range(-1, 3))
    again, _ = load_version_with_ids(s.store, versions[commit.state["grid"]], {}, ahead=ahead)
    assert np.array_equal(again["grid"], values["grid"])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="reading ahead needs a second core")
def test_a_damaged_run_read_ahead_fails_its_load(tmp_path):
    s, commit, _ = _two_big_versions(tmp_path / "st")
    versions = s.store.versions(sorted(set(commit.state.values())))
    loc = _location(s.store, commit, "grid")
    with open(s.store.blobs.pack_path(loc.pack), "r+b") as f:
        f.seek(loc.offset + 100)
        f.write(b"\x00\x01\x02")
    ahead = ReadAhead(s.store, list(versions.values()))
    frame = versions[commit.state["frame"]]
    assert load_version_with_ids(s.store, frame, {}, ahead=ahead)[0]["frame"]["words"][-1] == "w199999"
    with pytest.raises(BlobError, match="does not match its hash"):
        load_version_with_ids(s.store, versions[commit.state["grid"]], {}, ahead=ahead)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="reading ahead needs a second core")
def test_closing_a_read_ahead_cancels_the_reads_not_begun(tmp_path, monkeypatch):
    s = Session(tmp_path / "st")
    rng = np.random.default_rng(3)
    commits = [s.cell(**{f"a{i}": rng.random(200_000)})[0] for i in range(12)]  # 1.6 MB each
    versions = [s.store.versions([c.state[f"a{i}"]])[c.state[f"a{i}"]] for i, c in enumerate(commits)]
    release, started = threading.Event(), []
    real = BlobFiles.read_into

    def held(self, hashes, length, allow_map=False):
        started.append(length)
        release.wait(10)
        return real(self, hashes, length, allow_map=allow_map)

    monkeypatch.setattr(BlobFiles, "read_into", held)
    ahead = ReadAhead(s.store, versions)  # 12 runs, more than the pool has threads (at most 8)
    time.sleep(0.2)
    ahead.close()  # as a restore that gives up on its plan
    release.set()
    __import__("nbstate.blobs", fromlist=["_pool"])._pool().submit(lambda: None).result(10)
    assert 0 < len(started) <= min(8, os.cpu_count() or 1), started
    # What was begun is not handed over: a load reads its bytes itself.
    monkeypatch.setattr(BlobFiles, "read_into", real)
    assert np.array_equal(load_version_with_ids(s.store, versions[0], {}, ahead=ahead)[0]["a0"], s.load(commits[0], "a0"))


# --- fsck ----------------------------------------------------------------------------------------


def _damage_fixture(root: Path) -> tuple[Store, dict]:
    s = Session(root)
    rng = np.random.default_rng(5)
    c1, _ = s.cell(a=rng.random(200_000))  # 1.6 MB: two chunks, raw
    c2, _ = s.cell(b={"k": list(range(5000))})  # compressible: zstd
    c3, _ = s.cell(c="small")
    s.store.set_ref("default", "tag", "keep", c1.id)
    return s.store, {"a": c1, "b": c2, "c": c3}


def _location(store: Store, commit, name: str, part: str = "buffers"):
    vid = commit.state[name]
    m = store.versions([vid])[vid].manifest
    h = m["buffers"][0]["chunks"][0] if part == "buffers" else m["stream"]["chunks"][0]
    return store.blobs.locate([h])[h]


def test_fsck_finds_a_flipped_byte(tmp_path):
    store, c = _damage_fixture(tmp_path / "st")
    loc = _location(store, c["a"], "a")
    with open(store.blobs.pack_path(loc.pack), "r+b") as f:
        f.seek(loc.offset + 1000)
        byte = f.read(1)
        f.seek(loc.offset + 1000)
        f.write(bytes([byte[0] ^ 0x40]))
    r = maintenance.fsck(store)
    assert [p.kind for p in r.problems] == ["damaged blob"] and r.problems[0].what == loc.hash
    assert any(w.startswith("a (version") for w in r.affected[loc.hash])


def test_fsck_finds_a_damaged_compressed_blob(tmp_path):
    store, c = _damage_fixture(tmp_path / "st")
    loc = _location(store, c["b"], "b", part="stream")
    assert loc.codec == "zstd"
    with open(store.blobs.pack_path(loc.pack), "r+b") as f:
        f.seek(loc.offset + loc.stored // 2)
        f.write(b"\xff\xff\xff")
    r = maintenance.fsck(store)
    assert [p.kind for p in r.problems] == ["damaged blob"]


def test_fsck_finds_a_truncated_blob(tmp_path):
    store, c = _damage_fixture(tmp_path / "st")
    loc = max(store.blobs.locate(list(maintenance._index(store))).values(), key=lambda loc: loc.offset + loc.stored)
    with open(store.blobs.pack_path(loc.pack), "r+b") as f:
        f.truncate(loc.offset + loc.stored - 10)
    r = maintenance.fsck(store)
    assert [(p.kind, p.what) for p in r.problems] == [("truncated blob", loc.hash)]


def test_fsck_finds_a_missing_blob_and_a_dangling_ref_and_the_cli_says_so(tmp_path):
    store, c = _damage_fixture(tmp_path / "st")
    loc = _location(store, c["a"], "a")
    with store.transaction() as db:
        db.execute("DELETE FROM blobs WHERE hash=?", (loc.hash,))
        db.execute("INSERT INTO refs VALUES ('default', 'branch', 'ghost', ?)", ("f" * 40,))
    store.close()
    r = maintenance.fsck(Store(tmp_path / "st", read_only=True))
    kinds = sorted((p.kind, p.what) for p in r.problems)
    assert ("missing blob", loc.hash) in kinds
    assert ("dangling ref", "branch ghost (default)") in kinds
    done = subprocess.run([str(NBSTATE), "fsck", "--store", str(tmp_path / "st")], capture_output=True, text=True)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "missing blob" in done.stdout and "dangling ref" in done.stdout and "needed by a (version" in done.stdout
    data = json.loads(subprocess.run([str(NBSTATE), "fsck", "--json", "--store", str(tmp_path / "st")], capture_output=True, text=True).stdout)
    assert not data["ok"] and len(data["problems"]) == 2


def test_fsck_of_a_whole_store_exits_zero(tmp_path):
    store, _ = _damage_fixture(tmp_path / "st")
    store.close()
    done = subprocess.run([str(NBSTATE), "fsck", "--store", str(tmp_path / "st")], capture_output=True, text=True)
    assert done.returncode == 0 and "no damage found" in done.stdout


# --- gc ------------------------------------------------------------------------------------------


def test_gc_keeps_everything_reachable_and_gives_space_back(tmp_path):
    s = Session(tmp_path / "st")
    rng = np.random.default_rng(6)
    expected = []
    commits = []
    for i in range(30):
        values = {"arr": rng.random(100_000), "i": i}  # 800 KB of fresh bytes each cell
        c, _ = s.cell(**values)
        commits.append(c)
        expected.append(values)
    s.store.set_ref("default", "tag", "five", commits[5].id)
    manual, _ = s.cell(kind="manual", message="keep me", note="manual")
    before = maintenance.store_bytes(s.store)
    dry = maintenance.gc(s.store, keep_last=3, keep_within=0, dry_run=True)
    assert dry.commits_removed > 0 and maintenance.store_bytes(s.store) == before
    report = maintenance.gc(s.store, keep_last=3, keep_within=0)
    kept = {c.id for c in s.store.commits("default")}
    assert commits[5].id in kept and manual.id in kept and commits[-1].id in kept
    assert commits[10].id not in kept
    assert report.commits_removed == 31 - len(kept)
    after = maintenance.store_bytes(s.store)
    assert after < before * 0.4, (before, after)
    assert maintenance.fsck(s.store).ok
    for i, c in enumerate(commits):
        if c.id in kept:
            assert np.array_equal(s.load(c, "arr"), expected[i]["arr"]) and s.load(c, "i") == i
    # History reads from the kept commits: parents hop over what was removed.
    chain = [c.id for c in s.store.ancestors(s.store.head("default")[1])]
    assert chain[0] == manual.id and commits[5].id in chain
    # Recording goes on after gc (the writer forgot its view of the index).
    c, _ = s.cell(arr=expected[29]["arr"].copy(), after=1)
    assert s.load(c, "after") == 1 and maintenance.fsck(s.store).ok


def test_gc_keeps_the_cells_that_rebuild_an_unserializable_value(tmp_path):
    s = Session(tmp_path / "st")
    s.cell(data=[1, 2, 3])
    producer, _ = s.cell(gen=(x for x in range(3)))
    for i in range(10):
        s.cell(i=i)
    maintenance.gc(s.store, keep_last=2, keep_within=0)
    kept = {c.id for c in s.store.commits("default")}
    assert producer.id in kept and producer.parent in kept


def test_cli_du_and_gc(tmp_path):
    s = Session(tmp_path / "st")
    for i in range(5):
        s.cell(x=np.full(50_000, i))
    s.store.close()
    out = subprocess.run([str(NBSTATE), "du", "--store", str(tmp_path / "st")], capture_output=True, text=True)
    assert out.returncode == 0 and "by variable" in out.stdout and " x" in out.stdout
    usage = json.loads(subprocess.run([str(NBSTATE), "du", "--json", "--store", str(tmp_path / "st")], capture_output=True, text=True).stdout)
    assert usage["by_variable"][0]["names"] == "x" and usage["by_variable"][0]["versions"] == 5
    out = subprocess.run([str(NBSTATE), "gc", "--keep-last", "1", "--keep-days", "0", "--store", str(tmp_path / "st")], capture_output=True, text=True)
    assert out.returncode == 0 and "removed 4 commit(s)" in out.stdout, out.stdout + out.stderr
    for verb in ("gc", "du", "fsck"):
        assert subprocess.run([str(NBSTATE), verb, "--help"], capture_output=True).returncode == 0


# --- format version 1 ----------------------------------------------------------------------------

_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE notebooks (id TEXT PRIMARY KEY, path TEXT, created REAL NOT NULL);
CREATE TABLE sessions (id TEXT PRIMARY KEY, notebook_id TEXT NOT NULL, started REAL NOT NULL, pid INTEGER, python TEXT, nbstate TEXT, cwd TEXT);
CREATE TABLE cell_runs (id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, execution_count INTEGER, code TEXT NOT NULL, started REAL NOT NULL, duration REAL NOT NULL, reads TEXT NOT NULL, writes TEXT NOT NULL, deletes TEXT NOT NULL, error TEXT, capture_seconds REAL, examined TEXT NOT NULL);
CREATE TABLE blobs (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, stored_size INTEGER NOT NULL, codec TEXT NOT NULL);
CREATE TABLE var_versions (id INTEGER PRIMARY KEY, names TEXT NOT NULL, fingerprint TEXT, manifest TEXT, size INTEGER NOT NULL, serializable INTEGER NOT NULL, reason TEXT, types TEXT NOT NULL, cell_run_id INTEGER);
CREATE TABLE commits (id TEXT PRIMARY KEY, notebook_id TEXT NOT NULL, parent TEXT, cell_run_id INTEGER, state TEXT NOT NULL, message TEXT, kind TEXT NOT NULL, created REAL NOT NULL, code TEXT, bytes_added INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE refs (notebook_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, target TEXT NOT NULL, PRIMARY KEY (notebook_id, kind, name));
CREATE TABLE heads (notebook_id TEXT PRIMARY KEY, branch TEXT, commit_id TEXT);
CREATE TABLE reflog (id INTEGER PRIMARY KEY, notebook_id TEXT NOT NULL, created REAL NOT NULL, action TEXT NOT NULL, old_branch TEXT, old_commit TEXT, new_branch TEXT, new_commit TEXT);
"""


def _write_v1_store(root: Path, value) -> None:
    """A store as nbstate's format version 1 wrote it: loose blob files with a header."""
    root.mkdir(parents=True)
    db = sqlite3.connect(root / "nbstate.sqlite")
    db.executescript(_V1_SCHEMA)
    ser = serialize([value], {})
    chunks, parts = [], []
    for buf in [ser.stream, *ser.buffers]:
        view = memoryview(buf).cast("B")
        hashes = []
        for start in range(0, max(len(view), 1), CHUNK_SIZE):
            piece = bytes(view[start : start + CHUNK_SIZE])
            chunks.append(piece)
            hashes.append(digest(piece))
        parts.append({"n": len(view), "chunks": hashes})
    for i, piece in enumerate(chunks):
        h = digest(piece)
        path = root / "objects" / h[:2] / h[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = zstandard.ZstdCompressor().compress(piece) if i == 0 else piece
        path.write_bytes((b"NBz1" if i == 0 else b"NBr1") + payload)
        db.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?)", (h, len(piece), 4 + len(payload), "zstd" if i == 0 else "raw"))
    manifest = {"names": ["v"], "stream": parts[0], "buffers": parts[1:]}
    db.execute("INSERT INTO meta VALUES ('format_version', '1')")
    db.execute("INSERT INTO notebooks VALUES ('default', NULL, 0)")
    db.execute("INSERT INTO var_versions VALUES (1, '[\"v\"]', 'f', ?, 1, 1, NULL, '{}', NULL)", (json.dumps(manifest),))
    db.execute("INSERT INTO commits VALUES (?, 'default', NULL, NULL, '{\"v\": 1}', 'm', 'manual', 0, NULL, 0, 1)", ("a" * 40,))
    db.execute("INSERT INTO refs VALUES ('default', 'branch', 'main', ?)", ("a" * 40,))
    db.execute("INSERT INTO heads VALUES ('default', 'main', NULL)")
    db.commit()
    db.close()


def test_a_format_1_store_is_read_and_upgraded_in_place(tmp_path):
    value = {"arr": np.arange(400_000), "text": "hello"}
    _write_v1_store(tmp_path / "st", value)
    ro = Store(tmp_path / "st", read_only=True)
    got = load_version(ro, ro.versions([1])[1], {})["v"]
    assert np.array_equal(got["arr"], value["arr"]) and got["text"] == "hello"
    assert maintenance.fsck(ro).ok
    ro.close()
    store = Store(tmp_path / "st")  # opened for writing: upgraded to this format
    assert store.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0] == str(FORMAT_VERSION)
    got = load_version(store, store.versions([1])[1], {})["v"]
    assert np.array_equal(got["arr"], value["arr"])
    assert maintenance.fsck(store).ok
    assert maintenance.du(store).loose_count == 5  # the stream and four 1 MiB chunks of the array


def test_a_newer_store_is_refused_with_a_message(tmp_path):
    Store(tmp_path / "st").close()
    db = sqlite3.connect(tmp_path / "st" / "nbstate.sqlite")
    db.execute("UPDATE meta SET value='99' WHERE key='format_version'")
    db.commit()
    db.close()
    with pytest.raises(Exception, match="upgrade nbstate"):
        Store(tmp_path / "st")
    with pytest.raises(Exception, match="upgrade nbstate"):
        Store(tmp_path / "st", read_only=True)


def test_pack_files_start_with_their_magic(tmp_path):
    s = Session(tmp_path / "st")
    s.cell(a=1)
    pack = s.store.blobs.pack_path(pack_names(s.store.blobs)[0])
    assert pack.read_bytes()[: len(PACK_MAGIC)] == PACK_MAGIC


@pytest.mark.skipif(not hasattr(mmap, "MAP_PRIVATE"), reason="no private anonymous mappings here")
def test_decoded_buffers_are_mappings_where_memory_is_fresh_or_threads_decode_them():
    from nbstate import blobs

    def kinds() -> list[str]:
        sizes = [blobs.ANON_MIN - 1, blobs.ANON_MIN, blobs.ANON_ALWAYS - 1, blobs.ANON_ALWAYS]
        return [type(blobs.fresh_buffer(n)).__name__ for n in sizes]

    # In the kernel's thread (an undo of one array): the allocator's reused memory, but a buffer
    # the allocator would map afresh anyway is mapped here, so its pages fault in as it is decoded.
    assert kinds() == ["bytearray", "bytearray", "bytearray", "mmap"]
    # In the read pool, where bytearrays would take turns at zeroing: mapped from ANON_MIN.
    assert blobs._pool().submit(blobs._pooled, kinds).result() == ["bytearray", "mmap", "mmap", "mmap"]
    buf = blobs.fresh_buffer(blobs.ANON_ALWAYS)
    assert len(buf) == blobs.ANON_ALWAYS and buf[:8] == b"\0" * 8 and buf[-8:] == b"\0" * 8
    buf[0] = 7  # writable, like the bytearray it stands for
    assert buf[0] == 7


def test_the_read_rate_is_measured_on_the_store_read_only_or_not_and_kept_only_where_it_may_write(tmp_path, monkeypatch):
    s = Session(tmp_path / "st")
    s.cell(a=np.random.default_rng(1).random(3 << 20))  # 24 MB of chunks that do not compress
    s.store.close()
    read = []
    original = BlobFiles.read_many

    def counting(self, buffers, allow_map=False):
        read.append(sum(n for _, n in buffers))
        return original(self, buffers, allow_map)

    monkeypatch.setattr(BlobFiles, "read_many", counting)
    shipped = Store(tmp_path / "st", read_only=True)
    rate = shipped.read_throughput()
    assert read == [8 << 20] and rate != 200e6 and rate > 0  # measured on 8 MB of the largest blobs, in one go
    assert shipped.read_throughput() == rate and len(read) == 1  # once
    assert shipped.db.execute("SELECT value FROM meta WHERE key='read_rate'").fetchone() is None
    shipped.close()
    own = Store(tmp_path / "st")
    own_rate = own.read_throughput()
    assert own.db.execute("SELECT value FROM meta WHERE key='read_rate'").fetchone() == (str(own_rate),)
    assert Store(tmp_path / "st", read_only=True).read_throughput() == own_rate  # kept: not measured again
    assert len(read) == 2
    # An export gives its bundle the rate of the store it comes from: an import plans with it.
    from nbstate import bundle

    bundle.export(own, "default", own.head("default")[1], str(tmp_path / "out"))
    shipped = Store(tmp_path / "out", read_only=True)
    assert shipped.db.execute("SELECT value FROM meta WHERE key='read_rate'").fetchone() == (str(own_rate),)
    assert shipped.read_throughput() == own_rate and len(read) == 2


def test_a_store_too_small_to_measure_is_planned_with_a_typical_rate(tmp_path):
    s = Session(tmp_path / "st")
    s.cell(a=[1, 2, 3])
    assert s.store.read_throughput() == 200e6
    assert s.store.db.execute("SELECT value FROM meta WHERE key='read_rate'").fetchone() is None


def test_plans_count_a_streams_objects_when_loading_and_when_checking_a_replay(tmp_path):
    """Out-of-band buffers cost their reading; a pickle stream's objects cost what pickling them
    took when the version was recorded, to load (unpickling) and to check a replay (pickling
    again). 400,000 small records, about 20 MB of stream, cost far more than their bytes' reading;
    one 20 MB string, stream as long, costs about a copy."""
    from nbstate.timetravel import History, plan_for

    s = Session(tmp_path / "st")
    first, _ = s.cell(records=[{"id": i, "name": f"user-{i}", "score": i / 7} for i in range(400_000)])
    second, _ = s.cell(text="0123456789abcdef" * 1_250_000)
    records, text = (s.store.versions([c.state[n]])[c.state[n]] for c, n in ((first, "records"), (second, "text")))
    assert records.manifest["buffers"] == [] and text.manifest["buffers"] == []
    assert abs(records.manifest["stream"]["n"] - text.manifest["stream"]["n"]) < 1_000_000
    pickled = records.manifest["stream"]["seconds"]
    assert pickled > 5 * text.manifest["stream"]["seconds"] > 0  # objects, not bytes

    def plan_with_recorded(duration: float):
        with s.store.transaction() as db:
            db.execute("UPDATE cell_runs SET duration=? WHERE id=?", (duration, first.cell_run_id))
        history = History(s.store, throughput=1e9)
        return history.version_node(records.id), plan_for(history, [records.id])

    node, quick = plan_with_recorded(0.01)
    assert node.load_seconds == pytest.approx(records.size / 1e9 + pickled + 0.0005)
    assert node.check_seconds == pytest.approx(pickled)
    # The replay costs the cell and the check; it wins only where that is less than the load.
    replay = 0.01 * 1.2 + 0.005 + pickled
    assert quick.seconds == pytest.approx(min(replay, node.load_seconds))
    assert (quick.replay, quick.load) == (([first.cell_run_id], []) if replay < node.load_seconds else ([], [records.id]))
    _, slow = plan_with_recorded(5.0)
    assert slow.load == [records.id] and slow.replay == []
    # A version recorded before the pickler's time was kept counts as read only.
    del records.manifest["stream"]["seconds"]
    old = History(s.store, throughput=1e9)
    old.versions[records.id] = records
    assert old.version_node(records.id).load_seconds == pytest.approx(records.size / 1e9 + 0.0005)


@pytest.mark.parametrize("codec", ["raw", "zstd"])
def test_an_export_checks_every_blob_it_ships_side_by_side_and_refuses_a_damaged_one(tmp_path, monkeypatch, codec):
    from nbstate import blobs, bundle

    monkeypatch.setattr(blobs, "_COPY_WINDOW", 3 << 20)  # several windows of the read pool
    s = Session(tmp_path / "st")
    rng = np.random.default_rng(9)
    a = rng.random(2 << 20) if codec == "raw" else np.repeat(rng.random(1 << 16), 64)  # 16 MB; random, or compressible
    commit, _ = s.cell(a=a, b={"k": list(range(5000))})
    chunks = s.store.versions([commit.state["a"]])[commit.state["a"]].manifest["buffers"][0]["chunks"]
    where = s.store.blobs.locate(chunks)
    assert {loc.codec for loc in where.values()} == {codec}
    pooled = []
    original = blobs.BlobFiles._checked_payload
    monkeypatch.setattr(blobs.BlobFiles, "_checked_payload", lambda self, loc: pooled.append(loc.hash) or original(self, loc))
    bundle.export(s.store, "default", commit.id, str(tmp_path / "good"), history=True)  # (every version's bytes)
    shipped = Store(tmp_path / "good", read_only=True)
    vid = shipped.commit(commit.id).state["a"]
    assert np.array_equal(load_version(shipped, shipped.versions([vid])[vid], {})["a"], a)
    shipped.close()
    # One flipped byte in the 6th chunk: the export names it and leaves nothing behind.
    loc = where[chunks[5]]
    with open(s.store.blobs.pack_path(loc.pack), "r+b") as f:
        f.seek(loc.offset + loc.stored // 2)
        byte = f.read(1)
        f.seek(loc.offset + loc.stored // 2)
        f.write(bytes([byte[0] ^ 0x40]))
    with pytest.raises(BlobError, match=loc.hash):
        bundle.export(s.store, "default", commit.id, str(tmp_path / "bad"), history=True)
    assert not (tmp_path / "bad").exists()
    if codec == "raw":
        assert set(chunks) <= set(pooled)  # 16 MB stored: checked by the pool, every chunk
