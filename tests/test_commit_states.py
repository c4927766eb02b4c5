"""Commit states stored as changes against the parent's, with the whole state every STATE_EVERY
commits: every commit's state reads back as it was recorded (from a store opened afresh), the log
shows what each commit changed, gc re-encodes what it keeps, fsck names a state that cannot be
rebuilt, and stores of format 3 (whole states only) are read and upgraded."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_storage import Session

from nbstate import maintenance, porcelain
from nbstate.store import FORMAT_VERSION, STATE_EVERY, Store, StoreError, state_changes

NBSTATE = Path(sys.executable).parent / "nbstate"
CELLS = 2 * STATE_EVERY + 20


def _history(root: Path, cells: int = CELLS):
    """A session of ``cells`` cells that create, change and delete names; returns the session,
    its commits and, for each commit, the namespace (name -> value) and the names it changed."""
    s = Session(root)
    commits, namespaces, changes = [], [], []
    for i in range(cells):
        before = dict(s.ns)
        if i % 7 == 3 and f"v{i - 3}" in s.ns:
            del s.ns[f"v{i - 3}"]
            commit, _ = s.cell(touched={f"v{i - 3}"})
        elif i % 3 == 0:
            commit, _ = s.cell(**{f"v{i}": [i] * (i % 5)})
        else:
            commit, _ = s.cell(counter=i)
        commits.append(commit)
        namespaces.append(dict(s.ns))
        created = sorted(n for n in s.ns if n not in before)
        changed = sorted(n for n in s.ns if n in before and before[n] != s.ns[n])
        changes.append((created, changed, sorted(n for n in before if n not in s.ns)))
    return s, commits, namespaces, changes


def _value(store: Store, commit_id: str, name: str):
    from nbstate.state import load_version

    vid = store.commit(commit_id).state[name]
    return load_version(store, store.versions([vid])[vid], {})[name]


def test_every_state_reads_back_and_only_every_64th_row_holds_a_whole_one(tmp_path):
    s, commits, namespaces, changes = _history(tmp_path / "st")
    recorded = [dict(c.state) for c in commits]  # as the writer's store tells them
    s.store.close()
    store = Store(tmp_path / "st", read_only=True)  # nothing cached: every state rebuilt from rows
    for commit, ns, state in zip(commits, namespaces, recorded, strict=True):
        fresh = store.commit(commit.id)
        assert set(fresh.state) == set(ns), commit.seq
        assert fresh.state == state
    for k in (0, STATE_EVERY - 1, STATE_EVERY, CELLS - 1):
        for name, value in namespaces[k].items():
            assert _value(store, commits[k].id, name) == value
    whole = [r[0] for r in store.db.execute("SELECT state_depth FROM commits WHERE state != '' ORDER BY seq")]
    depths = [r[0] for r in store.db.execute("SELECT state_depth FROM commits ORDER BY seq")]
    assert whole == [0] * len(whole) and len(whole) == -(-CELLS // STATE_EVERY)
    assert max(depths) == STATE_EVERY - 1 and depths[:3] == [0, 1, 2]


def test_the_tracker_keeps_every_stored_name_version_as_the_commits_record_it(tmp_path):
    s = Session(tmp_path / "st")
    for i in range(40):
        if i % 5 == 4:
            del s.ns[f"v{i - 4}"]
            commit, _ = s.cell(touched={f"v{i - 4}"})
        elif i % 3 == 0:
            s.ns["shared"] = s.ns.get("shared", [])
            commit, _ = s.cell(**{f"v{i}": s.ns["shared"]})  # joins the co-variable of `shared`
        else:
            commit, _ = s.cell(counter=i, **{f"v{i}": [i]})
        assert s.tracker.versions == commit.state
        assert s.tracker.versions == {n: cv.version_id for n, cv in s.tracker.by_name.items()}


def test_two_sessions_on_one_branch_record_their_own_states(tmp_path):
    # Each session's commit follows the other's: its changes are against a state its tracker
    # never had, and must still rebuild into its own namespace.
    a, b = Session(tmp_path / "st", "a"), Session(tmp_path / "st", "b")
    recorded = []
    for i in range(STATE_EVERY + 10):
        s = a if i % 3 else b
        if i % 7 == 6 and "x" in s.ns:
            del s.ns["x"]
            commit, _ = s.cell(touched={"x"})
        else:
            commit, _ = s.cell(**{"x": [i], f"{'a' if s is a else 'b'}{i % 4}": i})
        assert commit.state == s.tracker.versions
        recorded.append((commit.id, dict(commit.state)))
    a.store.close()
    b.store.close()
    store = Store(tmp_path / "st", read_only=True)
    for cid, state in recorded:
        assert store.commit(cid).state == state


_names = st.sampled_from([f"n{i}" for i in range(8)])
_states = st.dictionaries(_names, st.integers(1, 5), max_size=8)


@given(_states, _states, st.sets(_names))
def test_changes_found_from_a_hint_are_those_of_comparing_every_name(before, after, hint):
    full = state_changes(before, after)
    hinted = state_changes(before, after, hint)
    assert (hinted.created, hinted.changed, sorted(hinted.deleted)) == (full.created, full.changed, sorted(full.deleted))
    applied = dict(before)
    hinted.apply(applied)
    assert applied == after


def test_the_log_shows_what_each_commit_changed(tmp_path):
    s, commits, _, changes = _history(tmp_path / "st")
    entries = {e.commit: e for e in porcelain.log(Store(tmp_path / "st", read_only=True), "default")}
    for commit, (created, changed, deleted) in zip(commits, changes, strict=True):
        e = entries[commit.id]
        assert (e.created, e.changed, e.deleted) == (created, changed, deleted), commit.seq


def test_gc_reencodes_the_commits_it_keeps(tmp_path):
    s, commits, namespaces, _ = _history(tmp_path / "st")
    recorded = [dict(c.state) for c in commits]
    s.store.set_ref("default", "tag", "early", commits[5].id)
    report = maintenance.gc(s.store, keep_last=30, keep_within=0)
    assert report.commits_removed == CELLS - 31
    assert maintenance.fsck(s.store).ok
    s.store.close()
    store = Store(tmp_path / "st", read_only=True)
    kept = [5, *range(CELLS - 30, CELLS)]
    for k in kept:
        assert store.commit(commits[k].id).state == recorded[k], k
    assert store.commit(commits[CELLS - 30].id).parent == commits[5].id  # hangs from its nearest kept ancestor
    for name, value in namespaces[CELLS - 30].items():
        assert _value(store, commits[CELLS - 30].id, name) == value
    # The kept commit after the gap holds its changes against the tagged commit, not against
    # the parent it had before.
    e = {e.commit: e for e in porcelain.log(store, "default")}[commits[CELLS - 30].id]
    before, after = namespaces[5], namespaces[CELLS - 30]
    assert e.created == sorted(n for n in after if n not in before)
    assert e.deleted == sorted(n for n in before if n not in after)


def test_fsck_names_a_state_that_cannot_be_rebuilt_and_reading_it_says_what_to_do(tmp_path):
    s, commits, _, _ = _history(tmp_path / "st", cells=10)
    before = dict(commits[3].state)
    s.store.close()
    db = sqlite3.connect(tmp_path / "st" / "nbstate.sqlite")
    db.execute("UPDATE commits SET changes='{\"created\": 3' WHERE id=?", (commits[4].id,))  # cut short
    db.commit()
    db.close()
    store = Store(tmp_path / "st", read_only=True)
    report = maintenance.fsck(store)
    damaged = sorted(p.what for p in report.problems if p.kind == "damaged state")
    assert damaged == sorted(f"commit {c.id[:12]}" for c in commits[4:]), report.problems
    assert store.commit(commits[3].id).state == before  # what lies before is unaffected
    with pytest.raises(StoreError, match="nbstate fsck"):
        _ = store.commit(commits[6].id).state
    out = subprocess.run([str(NBSTATE), "fsck", "--store", str(tmp_path / "st")], capture_output=True, text=True)
    assert out.returncode == 3 and "damaged state" in out.stdout, out.stdout + out.stderr


@pytest.mark.skipif(sqlite3.sqlite_version_info < (3, 35), reason="making the older store needs ALTER TABLE DROP COLUMN (SQLite 3.35)")
def test_a_store_made_before_cell_runs_recorded_randomness_is_read_and_given_the_column(tmp_path):
    s, commits, _, _ = _history(tmp_path / "st", cells=6)
    s.store.close()
    db = sqlite3.connect(tmp_path / "st" / "nbstate.sqlite")
    db.execute("ALTER TABLE cell_runs DROP COLUMN randomness")
    db.commit()
    db.close()
    runs = [c.cell_run_id for c in commits]
    for store in (Store(tmp_path / "st", read_only=True), Store(tmp_path / "st")):  # read as it is, then given the column
        assert [store.cell_run(r).randomness for r in runs] == [None] * len(runs)
        assert [r.randomness for r in store.cell_runs(runs).values()] == [None] * len(runs)
        store.close()
    again = Store(tmp_path / "st")
    assert again.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0] == str(FORMAT_VERSION)
    assert "randomness" in {r[1] for r in again.db.execute("PRAGMA table_info(cell_runs)")}
    again.close()
    # A cell run recorded now says which generators it drew from, and reads back so.
    from nbstate.store import PendingCommit

    s = Session(tmp_path / "st", session_id="after")
    store = s.store
    pending = PendingCommit(
        notebook_id="default", session_id="after", code="x = np.random.rand(3)", execution_count=1, started=0.0, duration=0.1,
        reads=[], writes=[], deletes=[], error=None, kept=store.commit(store.head("default")[1]).state, randomness=["numpy"],
    )
    made = store.record(pending)
    assert store.cell_run(made.cell_run_id).randomness == ["numpy"]
    assert Store(tmp_path / "st", read_only=True).cell_run(made.cell_run_id).randomness == ["numpy"]


@pytest.mark.skipif(sqlite3.sqlite_version_info < (3, 35), reason="making a format-3 store needs ALTER TABLE DROP COLUMN (SQLite 3.35)")
def test_a_format_3_store_is_read_and_upgraded(tmp_path):
    s, commits, _, changes = _history(tmp_path / "st", cells=STATE_EVERY + 10)
    states = [dict(c.state) for c in commits]
    s.store.close()
    # Format 3: every row holds its whole state, and there are no changes or depths.
    db = sqlite3.connect(tmp_path / "st" / "nbstate.sqlite")
    import json

    for c, state in zip(commits, states, strict=True):
        db.execute("UPDATE commits SET state=? WHERE id=?", (json.dumps(dict(sorted(state.items()))), c.id))
    db.execute("ALTER TABLE commits DROP COLUMN changes")
    db.execute("ALTER TABLE commits DROP COLUMN state_depth")
    db.execute("UPDATE meta SET value='3' WHERE key='format_version'")
    db.commit()
    db.close()
    for store in (Store(tmp_path / "st", read_only=True), Store(tmp_path / "st")):  # read as it is, then upgraded
        entries = {e.commit: e for e in porcelain.log(store, "default")}
        for c, state, (created, changed, deleted) in zip(commits, states, changes, strict=True):
            assert store.commit(c.id).state == state
            assert (entries[c.id].created, entries[c.id].changed, entries[c.id].deleted) == (created, changed, deleted)
        assert maintenance.fsck(store).ok
        store.close()
    again = Store(tmp_path / "st")
    assert again.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0] == str(FORMAT_VERSION)
    assert again.db.execute("SELECT count(*) FROM commits WHERE changes IS NULL").fetchone()[0] == 0
    again.close()
    # Recording goes on from the upgraded history: the next commit holds only its changes.
    s = Session(tmp_path / "st", session_id="after")
    commit, _ = s.cell(kind="manual", message="after the upgrade", v3=[3, 3, 3])
    s.store.close()
    store = Store(tmp_path / "st", read_only=True)
    assert store.db.execute("SELECT state_depth, state FROM commits WHERE id=?", (commit.id,)).fetchone() == (1, "")
    assert store.commit(commit.id).state == {"v3": commit.state["v3"]}
    assert sorted(store.commit(commit.id).changes.deleted) == sorted(set(states[-1]) - {"v3"})


def test_a_history_copied_into_another_store_keeps_every_state(tmp_path):
    from nbstate.bundle import copy_history

    s, commits, _, _ = _history(tmp_path / "st")
    dst = Store(tmp_path / "dst")
    ordered = sorted((s.store.commit(c.id) for c in commits), key=lambda c: c.seq)
    ids = copy_history(s.store, dst, ordered, "default", None)
    dst.close()
    fresh = Store(tmp_path / "dst", read_only=True)
    for c in commits:
        assert {n: ids[v] for n, v in c.state.items()} == fresh.commit(c.id).state
    assert maintenance.fsck(fresh).ok


def test_a_commit_on_the_last_one_is_recorded_from_its_changes_and_a_missed_name_is_still_found(tmp_path):
    """Recording on the commit this process recorded last looks only at the names the cell
    changed; when the session's state has a name more or fewer than those changes account for,
    the whole state is compared, and every state still reads back right."""
    from nbstate.store import PendingCommit

    s = Session(tmp_path / "st")
    first, _ = s.cell(a=1, b=[2])
    second, _ = s.cell(c=3)
    assert s.store._tip is not None and s.store._tip[0] == second.id
    assert second.state == {**first.state, "c": s.tracker.versions["c"]}
    # A name recorded outside the cell's changes: the changes alone would miss it.
    with s.store.writing():
        kept = {**s.tracker.versions, "e": first.state["b"]}
        third = s.store.record(PendingCommit("default", s.session_id, "x", None, 0.0, 0.0, [], [], [], None, kept, base=second.id))
    assert s.store._tip[0] == third.id
    fourth, _ = s.cell(d=4)  # the tracker never had "e": this commit drops it
    expected = {
        first.id: dict(first.state),
        second.id: {**first.state, "c": second.state["c"]},
        third.id: {**second.state, "e": first.state["b"]},
        fourth.id: {**second.state, "d": s.tracker.versions["d"]},
    }
    for cid, state in expected.items():
        assert s.store.commit(cid).state == state
    s.store.close()
    fresh = Store(tmp_path / "st", read_only=True)  # rebuilt from the rows alone
    for cid, state in expected.items():
        assert fresh.commit(cid).state == state
    assert fresh.commit(fourth.id).changes.deleted == ["e"]


def _pack_inodes(store: Store) -> dict[int, str]:
    return {p.stat().st_ino: p.name for p in store.blobs.packs.glob("pack-*.pack")}


def _copied_states_read_back(src: Store, dst_root: Path, commits, ids) -> None:
    fresh = Store(dst_root, read_only=True)
    for c in commits:
        state = src.commit(c.id).state
        assert {n: ids[v] for n, v in state.items()} == fresh.commit(c.id).state
        for name in state:
            assert _value(fresh, c.id, name) == _value(src, c.id, name)
    assert maintenance.fsck(fresh).ok
    fresh.close()


def test_a_history_from_packs_known_intact_is_linked_not_copied_where_the_file_system_allows(tmp_path, monkeypatch):
    from nbstate import blobs
    from nbstate.bundle import copy_history

    s, commits, _, _ = _history(tmp_path / "st", cells=30)
    s.store.close()
    src = Store(tmp_path / "st", read_only=True)
    ordered = sorted((src.commit(c.id) for c in commits), key=lambda c: c.seq)
    src_inodes = _pack_inodes(src)

    # Known intact (a signed bundle): the source's packs become the destination's own, under new names.
    dst = Store(tmp_path / "linked")
    ids = copy_history(src, dst, ordered, "default", None, verified=True)
    dst.close()
    linked = _pack_inodes(Store(tmp_path / "linked", read_only=True))
    shared = set(linked) & set(src_inodes)
    assert shared and all(linked[i] != src_inodes[i] for i in shared)
    _copied_states_read_back(src, tmp_path / "linked", ordered, ids)

    # Not known intact: every blob is checked and copied, nothing linked.
    dst = Store(tmp_path / "checked")
    ids = copy_history(src, dst, ordered, "default", None)
    dst.close()
    assert not set(_pack_inodes(Store(tmp_path / "checked", read_only=True))) & set(src_inodes)
    _copied_states_read_back(src, tmp_path / "checked", ordered, ids)

    # Where links cannot be made (another file system), the blobs are copied.
    def no_links(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(blobs.os, "link", no_links)
    dst = Store(tmp_path / "copied")
    ids = copy_history(src, dst, ordered, "default", None, verified=True)
    dst.close()
    assert not set(_pack_inodes(Store(tmp_path / "copied", read_only=True))) & set(src_inodes)
    _copied_states_read_back(src, tmp_path / "copied", ordered, ids)


def test_a_pack_mostly_of_other_blobs_is_copied_from_not_linked(tmp_path):
    from nbstate.bundle import copy_history

    s, commits, _, _ = _history(tmp_path / "st", cells=30)
    s.store.close()
    src = Store(tmp_path / "st", read_only=True)
    last = src.commit(commits[-1].id)
    chain = list(src.ancestors(last.id))[::-1]
    one = sorted(set(last.state.values()))[:1]  # the bytes of one version only
    dst = Store(tmp_path / "dst")
    copy_history(src, dst, chain, "default", set(one), verified=True)
    dst.close()
    assert not set(_pack_inodes(Store(tmp_path / "dst", read_only=True))) & set(_pack_inodes(src))
    fresh = Store(tmp_path / "dst", read_only=True)
    name = next(n for n, v in last.state.items() if v == one[0])
    assert _value(fresh, last.id, name) == _value(src, last.id, name)


def test_a_pack_others_may_read_is_copied_not_linked_so_the_store_stays_private(tmp_path):
    from nbstate.bundle import copy_history

    s, commits, _, _ = _history(tmp_path / "st", cells=10)
    s.store.close()
    for p in (tmp_path / "st").rglob("pack-*.pack"):
        p.chmod(0o644)  # as a download under the usual umask leaves it
    src = Store(tmp_path / "st", read_only=True)
    ordered = sorted((src.commit(c.id) for c in commits), key=lambda c: c.seq)
    dst = Store(tmp_path / "dst")
    ids = copy_history(src, dst, ordered, "default", None, verified=True)
    dst.close()
    packs = list(Store(tmp_path / "dst", read_only=True).blobs.packs.glob("pack-*.pack"))
    assert not {p.stat().st_ino for p in packs} & set(_pack_inodes(src))
    assert all(p.stat().st_mode & 0o077 == 0 for p in packs)
    _copied_states_read_back(src, tmp_path / "dst", ordered, ids)


def test_a_bundle_file_is_unpacked_inside_the_importing_store_privately_and_cleaned_up(tmp_path):
    import stat

    from nbstate.bundle import _local_copy, export

    s, commits, _, _ = _history(tmp_path / "st", cells=10)
    dest = tmp_path / "state.nbstate"
    export(s.store, "default", commits[-1].id, str(dest))
    scratch = tmp_path / "importer"
    scratch.mkdir()
    with _local_copy(str(dest), scratch) as root:
        assert root.parent == scratch and root.name.startswith("import-") and root.name.endswith(".tmp")
        files = [p for p in root.rglob("*") if p.is_file()]
        assert any(p.name.endswith(".pack") for p in files)
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert list(scratch.iterdir()) == []
    # Without a usable scratch directory the system's temporary directory serves.
    with _local_copy(str(dest), tmp_path / "no-such-dir") as root:
        assert (root / "bundle.json").is_file() and not root.is_relative_to(tmp_path)


def test_gc_removes_the_scratch_directories_a_killed_import_left_and_no_younger_one(tmp_path):
    import os
    import time

    s, _, _, _ = _history(tmp_path / "st", cells=5)
    root = s.store.root
    old, young = root / "import-abandoned.tmp", root / "import-running.tmp"
    for d in (old, young):
        (d / "objects").mkdir(parents=True)
        (d / "objects" / "pack-0.pack").write_bytes(b"x")
    past = time.time() - 2 * maintenance.SCRATCH_STALE
    os.utime(old, (past, past))
    maintenance.gc(s.store)
    assert not old.exists() and young.is_dir()
