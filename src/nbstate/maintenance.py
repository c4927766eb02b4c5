"""Housekeeping of a store: what takes space (du), whether it is whole (fsck), and freeing what
no kept commit needs (gc).

All three work on a ``Store`` without a kernel. ``gc`` holds the store's exclusive lock, so
kernels recording into the store wait for it (and forget their view of the blob index after
it); ``du`` and ``fsck`` only read. Never imports IPython.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .blobs import PACK_MAGIC, BlobError, BlobFiles, Location, digest, loose_hashes, pack_names
from .store import Changes, Store, encode_state, manifest_chunks

# --- shared reading -------------------------------------------------------------------------------


@dataclass
class _Commit:
    id: str
    notebook: str
    parent: str | None
    run: int | None
    state: dict[str, int]
    kind: str
    created: float
    code: str | None
    seq: int


def _commits(store: Store, broken: dict[str, str] | None = None) -> dict[str, _Commit]:
    """Every commit with its whole state, rebuilt in recording order (a parent's comes before
    its children's). A state that cannot be rebuilt is left empty, and why is put in ``broken``."""
    cols = "changes, state_depth" if "state_depth" in _columns(store, "commits") else "NULL, 0"
    rows = store.db.execute(f"SELECT id, notebook_id, parent, cell_run_id, state, kind, created, code, seq, {cols} FROM commits ORDER BY seq")
    out: dict[str, _Commit] = {}
    for r in rows:
        try:
            if r[10] == 0:
                state = {k: int(v) for k, v in json.loads(r[4]).items()}
            elif r[2] not in out:
                raise ValueError(f"it is recorded as changes against {str(r[2])[:12]}, which is not in the store")
            elif r[2] in (broken or {}):
                raise ValueError(f"it is recorded against {str(r[2])[:12]}, whose state cannot be read either")
            else:
                state = dict(out[r[2]].state)
                Changes.from_json(r[9]).apply(state)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            state = {}
            if broken is not None:
                broken[r[0]] = str(exc)
        out[r[0]] = _Commit(r[0], r[1], r[2], r[3], state, r[5], r[6], r[7], r[8])
    return out


def _columns(store: Store, table: str) -> set[str]:
    return {r[1] for r in store.db.execute(f"PRAGMA table_info({table})")}


def _version_rows(store: Store) -> dict[int, tuple[list[str], dict[str, Any] | None, int, bool, int | None, bool]]:
    """version id -> (names, manifest, size, serializable, cell run, whether the store holds its
    bytes: serializable, and not imported without them, store.BYTES_LEFT_OUT)."""
    rows = store.db.execute("SELECT id, names, manifest, size, serializable, cell_run_id, reason FROM var_versions")
    return {r[0]: (json.loads(r[1]), json.loads(r[2]) if r[2] else None, r[3], bool(r[4]), r[5], bool(r[4]) and r[2] is not None and r[6] is None) for r in rows}


def _index(store: Store) -> dict[str, Location]:
    cols = "hash, size, stored_size, codec, pack, pack_offset" if store._packed_index else "hash, size, stored_size, codec, NULL, NULL"
    out = {}
    for h, size, stored, codec, pack, offset in store.db.execute(f"SELECT {cols} FROM blobs"):
        out[h] = Location(h, size, stored, codec, pack, offset) if pack is not None else Location(h, size, stored - 4, codec, None, 4)
    return out


def _file_size(path: os.PathLike[str] | str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def store_bytes(store: Store) -> int:
    """Bytes on disk under the store directory (apparent sizes)."""
    total = 0
    for root, _, files in os.walk(store.root):
        for f in files:
            total += _file_size(os.path.join(root, f))
    return total


# --- du -------------------------------------------------------------------------------------------


@dataclass
class DiskUsage:
    total_bytes: int
    database_bytes: int
    pack_count: int
    pack_bytes: int
    loose_count: int
    loose_bytes: int
    blob_count: int
    stored_bytes: int  # the index's account of blob bytes (referenced or not)
    unreferenced_bytes: int  # stored bytes of blobs no version or commit names
    pack_waste_bytes: int  # pack bytes no index row names (padding, torn tails, freed blobs)
    by_variable: list[dict[str, Any]] = field(default_factory=list)
    by_commit: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def du(store: Store, notebook: str | None = None, commits_limit: int | None = 20) -> DiskUsage:
    """Space by kind of file, by variable and by commit. Each stored blob is counted once: for
    the first version (lowest id) that names it, and that version for the first commit (in
    order of recording) whose state holds it."""
    index = _index(store)
    versions = _version_rows(store)
    commits = sorted(_commits(store).values(), key=lambda c: c.seq)
    blob_owner: dict[str, int] = {}
    for vid in sorted(versions):
        for h in manifest_chunks(versions[vid][1]):
            blob_owner.setdefault(h, vid)
    code_blobs = {c.code for c in commits if c.code}
    version_commit: dict[int, _Commit] = {}
    for c in commits:
        for vid in c.state.values():
            version_commit.setdefault(vid, c)
    own_bytes: dict[int, int] = defaultdict(int)
    for h, vid in blob_owner.items():
        loc = index.get(h)
        if loc is not None:
            own_bytes[vid] += loc.stored
    referenced = set(blob_owner) | code_blobs
    by_var: dict[str, dict[str, Any]] = {}
    per_commit: dict[str, dict[str, Any]] = {}
    for vid, (names, _, size, serializable, _, _) in versions.items():
        c = version_commit.get(vid)
        if notebook is not None and (c is None or c.notebook != notebook):
            continue
        key = ", ".join(names)
        entry = by_var.setdefault(key, {"names": key, "versions": 0, "serialized_bytes": 0, "stored_bytes": 0, "unserializable_versions": 0})
        entry["versions"] += 1
        entry["serialized_bytes"] += size
        entry["stored_bytes"] += own_bytes.get(vid, 0)
        entry["unserializable_versions"] += 0 if serializable else 1
        if c is not None:
            pc = per_commit.setdefault(c.id, {"new_versions": 0, "stored_bytes": 0})
            pc["new_versions"] += 1
            pc["stored_bytes"] += own_bytes.get(vid, 0)
    by_commit = []
    for c in reversed(commits):
        if notebook is not None and c.notebook != notebook:
            continue
        pc = per_commit.get(c.id, {"new_versions": 0, "stored_bytes": 0})
        by_commit.append({"commit": c.id, "notebook": c.notebook, "kind": c.kind, "created": c.created, **pc})
    if commits_limit is not None:
        by_commit = by_commit[:commits_limit]
    packs = pack_names(store.blobs)
    pack_bytes = sum(_file_size(store.blobs.pack_path(p)) for p in packs)
    indexed_in_packs = sum(loc.stored for loc in index.values() if loc.pack is not None)
    loose = loose_hashes(store.blobs)
    loose_bytes = sum(_file_size(store.blobs.path(h)) for h in loose)
    db = sum(_file_size(store.root / f"nbstate.sqlite{s}") for s in ("", "-wal", "-shm"))
    return DiskUsage(
        total_bytes=store_bytes(store),
        database_bytes=db,
        pack_count=len(packs),
        pack_bytes=pack_bytes,
        loose_count=len(loose),
        loose_bytes=loose_bytes,
        blob_count=len(index),
        stored_bytes=sum(loc.stored for loc in index.values()),
        unreferenced_bytes=sum(loc.stored for h, loc in index.items() if h not in referenced),
        pack_waste_bytes=max(0, pack_bytes - indexed_in_packs - len(PACK_MAGIC) * len(packs)),
        by_variable=sorted(by_var.values(), key=lambda e: -e["stored_bytes"]),
        by_commit=by_commit,
    )


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_du(u: DiskUsage, top: int = 20) -> str:
    lines = [
        f"store: {human(u.total_bytes)} on disk",
        f"  packs: {u.pack_count} file(s), {human(u.pack_bytes)} ({human(u.pack_waste_bytes)} not named by the index: gc frees it)",
        f"  loose blob files (format 1): {u.loose_count}, {human(u.loose_bytes)}",
        f"  database: {human(u.database_bytes)}",
        f"  blobs: {u.blob_count}, {human(u.stored_bytes)} stored ({human(u.unreferenced_bytes)} named by no version: gc frees it)",
        "",
        "by variable (stored bytes of the blobs each one's versions brought first):",
        f"  {'stored':>10}  {'serialized':>10}  {'versions':>8}  names",
    ]
    for e in u.by_variable[:top]:
        extra = f" ({e['unserializable_versions']} not serializable)" if e["unserializable_versions"] else ""
        lines.append(f"  {human(e['stored_bytes']):>10}  {human(e['serialized_bytes']):>10}  {e['versions']:>8}  {e['names']}{extra}")
    if len(u.by_variable) > top:
        lines.append(f"  ... {len(u.by_variable) - top} more")
    lines += ["", "by commit, newest first (stored bytes of the blobs it brought first):", f"  {'stored':>10}  {'versions':>8}  commit    kind"]
    for c in u.by_commit:
        lines.append(f"  {human(c['stored_bytes']):>10}  {c['new_versions']:>8}  {c['commit'][:8]}  {c['kind']}")
    return "\n".join(lines)


# --- fsck -----------------------------------------------------------------------------------------


@dataclass
class Problem:
    kind: str  # damaged database | missing blob | truncated blob | damaged blob | dangling ref | dangling parent | missing version
    what: str  # the blob, ref, commit or version
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.what}: {self.detail}"


@dataclass
class FsckReport:
    problems: list[Problem] = field(default_factory=list)
    blobs_checked: int = 0
    bytes_checked: int = 0
    versions: int = 0
    commits: int = 0
    refs: int = 0
    affected: dict[str, list[str]] = field(default_factory=dict)  # blob -> "names @ commit" it breaks

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": [p.__dict__ for p in self.problems],
            "blobs_checked": self.blobs_checked,
            "bytes_checked": self.bytes_checked,
            "versions": self.versions,
            "commits": self.commits,
            "refs": self.refs,
            "affected": self.affected,
        }


def fsck(store: Store) -> FsckReport:
    """Verify every blob the index names (its bytes are there and hash to its name) and every
    reference: refs and HEADs to commits, commits to parents, versions and code blobs,
    versions to blobs."""
    report = FsckReport()
    try:
        checked = [r[0] for r in store.db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        checked = [str(exc)]
    if checked != ["ok"]:
        report.problems.append(Problem("damaged database", "nbstate.sqlite", "; ".join(checked[:5])))
    try:
        _fsck_contents(store, report)
    except sqlite3.DatabaseError as exc:  # the rows themselves cannot all be read
        report.problems.append(Problem("damaged database", "nbstate.sqlite", f"reading it failed: {exc}"))
    return report


def _fsck_contents(store: Store, report: FsckReport) -> None:
    broken: dict[str, str] = {}
    commits = _commits(store, broken)
    versions = _version_rows(store)
    index = _index(store)
    report.commits, report.versions = len(commits), len(versions)
    for cid, why in broken.items():
        report.problems.append(Problem("damaged state", f"commit {cid[:12]}", f"its state cannot be read: {why}"))
    for notebook, kind, name, target in store.db.execute("SELECT notebook_id, kind, name, target FROM refs"):
        report.refs += 1
        if target not in commits:
            report.problems.append(Problem("dangling ref", f"{kind} {name} ({notebook})", f"points at commit {target[:12]}, which is not in the store"))
    for notebook, branch, commit_id in store.db.execute("SELECT notebook_id, branch, commit_id FROM heads"):
        if branch is None and commit_id is not None and commit_id not in commits:
            report.problems.append(Problem("dangling ref", f"HEAD ({notebook})", f"points at commit {commit_id[:12]}, which is not in the store"))
    needed: dict[str, list[str]] = defaultdict(list)
    for c in commits.values():
        if c.parent is not None and c.parent not in commits:
            report.problems.append(Problem("dangling parent", f"commit {c.id[:12]}", f"its parent {c.parent[:12]} is not in the store"))
        for name, vid in sorted(c.state.items()):
            if vid not in versions:
                report.problems.append(Problem("missing version", f"commit {c.id[:12]}", f"{name} names version {vid}, which is not in the store"))
        if c.code:
            needed[c.code].append(f"notebook cells @ {c.id[:8]}")
    first_commit: dict[int, str] = {}
    for c in sorted(commits.values(), key=lambda c: c.seq):
        for vid in c.state.values():
            first_commit.setdefault(vid, c.id[:8])
    for vid, (names, manifest, _, _, _, loadable) in versions.items():
        if not loadable:  # no bytes here by design (not serializable, or imported without them)
            continue
        for h in manifest_chunks(manifest):
            needed[h].append(f"{', '.join(names)} (version {vid}" + (f", first in {first_commit[vid]})" if vid in first_commit else ")"))
    loose_present = set(loose_hashes(store.blobs))
    # Blobs the index names, read pack by pack in file order.
    ordered = sorted(index.values(), key=lambda loc: (loc.pack or "", loc.offset))
    bad: dict[str, Problem] = {}
    for loc in ordered:
        problem = _check_blob(store.blobs, loc)
        report.blobs_checked += 1
        report.bytes_checked += max(loc.stored, 0)
        if problem is not None:
            bad[loc.hash] = problem
    for h in needed:
        if h not in index and h not in bad:
            if h in loose_present:  # a loose file the index lost track of: check it too
                problem = _check_blob(store.blobs, Location(h, -1, -1, "?", None, 4))
                if problem is not None:
                    bad[h] = problem
            else:
                bad[h] = Problem("missing blob", h, "named by the store but found in no pack or file")
    for h, problem in sorted(bad.items()):
        report.problems.append(problem)
        if h in needed:
            report.affected[h] = sorted(set(needed[h]))


def _check_blob(blobs: BlobFiles, loc: Location) -> Problem | None:
    h = loc.hash
    if loc.pack is None:
        path = blobs.path(h)
        if not path.exists():
            return Problem("missing blob", h, f"its file {path} is missing")
        try:
            blobs.get(h) if loc.size < 0 else blobs._get(loc)
        except BlobError as exc:
            return Problem("damaged blob", h, str(exc))
        return None
    path = blobs.pack_path(loc.pack)
    if not path.exists():
        return Problem("missing blob", h, f"its pack {loc.pack} is missing")
    size = _file_size(path)
    if size < loc.offset + loc.stored:
        return Problem("truncated blob", h, f"pack {loc.pack} ends at byte {size}, before the blob's end ({loc.offset + loc.stored})")
    try:
        payload = blobs.read_stored(loc)
        blobs.check(loc, payload)
    except BlobError as exc:
        return Problem("damaged blob", h, f"in pack {loc.pack} at {loc.offset}: {exc}")
    return None


def format_fsck(r: FsckReport) -> str:
    head = (
        f"checked {r.blobs_checked} blob(s) ({human(r.bytes_checked)}), {r.versions} version(s), "
        f"{r.commits} commit(s), {r.refs} ref(s)"
    )
    if r.ok:
        return head + ": no damage found"
    lines = [head + f": {len(r.problems)} problem(s)"]
    for p in r.problems:
        lines.append(f"  {p}")
        for where in r.affected.get(p.what, [])[:5]:
            lines.append(f"      needed by {where}")
        more = len(r.affected.get(p.what, [])) - 5
        if more > 0:
            lines.append(f"      ... and {more} more")
    if any(p.kind == "damaged database" for p in r.problems):
        lines.append(
            "The database is damaged: nbstate cannot repair it. Keep a copy, then move the store aside to start "
            "a new one (`sqlite3 nbstate.sqlite .recover` may save part of its history)."
        )
    if any(p.kind.endswith("blob") for p in r.problems):
        lines.append("Values held in damaged blobs are rebuilt by replaying their cells at checkout, where possible.")
    return "\n".join(lines)


# --- gc -------------------------------------------------------------------------------------------


@dataclass
class GcReport:
    dry_run: bool
    commits_kept: int = 0
    commits_removed: int = 0
    versions_removed: int = 0
    cell_runs_removed: int = 0
    blobs_removed: int = 0
    blob_bytes_removed: int = 0
    packs_rewritten: int = 0
    packs_removed: int = 0
    loose_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def retained(commits: dict[str, _Commit], versions: dict[int, Any], refs: Iterable[str], keep_last: int, keep_within: float, now: float) -> set[str]:
    """The commits gc keeps: manual commits, ref targets (branches, tags, detached HEADs), the
    last ``keep_last`` other commits of each notebook and those younger than ``keep_within``
    seconds; then, for every value that cannot be loaded (not serializable, or imported without
    its bytes) in a kept state, the commit that made it and its parent, so that its cell can
    still be replayed."""
    keep = {c for c in refs if c in commits}
    by_notebook: dict[str, list[_Commit]] = defaultdict(list)
    for c in commits.values():
        if c.kind == "manual":
            keep.add(c.id)
        else:
            by_notebook[c.notebook].append(c)
    for cs in by_notebook.values():
        cs.sort(key=lambda c: -c.seq)
        for i, c in enumerate(cs):
            if i < keep_last or now - c.created <= keep_within:
                keep.add(c.id)
    by_run = {c.run: c for c in commits.values() if c.run is not None}
    todo = list(keep)
    while todo:
        c = commits[todo.pop()]
        for vid in set(c.state.values()):
            v = versions.get(vid)
            if v is None or v[5] or v[4] is None:
                continue
            producer = by_run.get(v[4])
            for extra in (producer.id if producer else None, producer.parent if producer else None):
                if extra is not None and extra in commits and extra not in keep:
                    keep.add(extra)
                    todo.append(extra)
    return keep


def gc(store: Store, keep_last: int = 100, keep_within: float = 7 * 86400, dry_run: bool = False, now: float | None = None) -> GcReport:
    """Remove the commits the retention policy does not keep, then every version, cell run and
    blob that no kept commit needs, and compact packs that are mostly free space."""
    now = time.time() if now is None else now
    report = GcReport(dry_run=dry_run, bytes_before=store_bytes(store))
    with store.exclusive() if not dry_run else _nothing():
        commits = _commits(store)
        versions = _version_rows(store)
        refs = [r[0] for r in store.db.execute("SELECT target FROM refs")]
        refs += [r[0] for r in store.db.execute("SELECT commit_id FROM heads WHERE commit_id IS NOT NULL")]
        keep = retained(commits, versions, refs, keep_last, keep_within, now)
        report.commits_kept, report.commits_removed = len(keep), len(commits) - len(keep)
        kept_versions = {vid for cid in keep for vid in commits[cid].state.values()}
        # A kept commit whose parent goes hangs from its nearest kept ancestor.
        new_parent: dict[str, str | None] = {}
        for cid in keep:
            p = commits[cid].parent
            if p is None or p in keep:
                continue
            while p is not None and p not in keep:
                p = commits[p].parent if p in commits else None
            new_parent[cid] = p
        kept_runs = {commits[c].run for c in keep if commits[c].run is not None}
        replayable_runs = {commits[c].run for c in keep if commits[c].run is not None and c not in new_parent}
        # Versions whose cell can no longer be replayed against the state it ran on: load only.
        orphaned = [vid for vid in kept_versions if versions[vid][4] is not None and versions[vid][4] not in replayable_runs] if versions else []
        drop_versions = [vid for vid in versions if vid not in kept_versions]
        report.versions_removed = len(drop_versions)
        needed_runs = kept_runs | {versions[v][4] for v in kept_versions if versions[v][4] in replayable_runs}
        all_runs = [r[0] for r in store.db.execute("SELECT id FROM cell_runs")]
        drop_runs = [r for r in all_runs if r not in needed_runs]
        report.cell_runs_removed = len(drop_runs)
        referenced: set[str] = {commits[c].code for c in keep if commits[c].code}
        for vid in kept_versions:
            referenced.update(manifest_chunks(versions[vid][1]))
        referenced.update(store.blobs.bases_of(referenced).values())  # what kept patches patch
        index = _index(store)
        drop_blobs = [h for h in index if h not in referenced]
        report.blobs_removed = len(drop_blobs)
        report.blob_bytes_removed = sum(index[h].stored for h in drop_blobs)
        if dry_run:
            report.bytes_after = report.bytes_before - report.blob_bytes_removed
            return report
        drop_commits = [c for c in commits if c not in keep]
        with store.transaction() as db:
            _reencode(db, commits, keep, new_parent)
            _delete_in(db, "UPDATE var_versions SET cell_run_id=NULL WHERE id IN ({})", orphaned)
            _delete_in(db, "DELETE FROM commits WHERE id IN ({})", drop_commits)
            _delete_in(db, "DELETE FROM reflog WHERE old_commit IN ({})", drop_commits)
            _delete_in(db, "DELETE FROM reflog WHERE new_commit IN ({})", drop_commits)
            _delete_in(db, "DELETE FROM var_versions WHERE id IN ({})", drop_versions)
            _delete_in(db, "DELETE FROM cell_runs WHERE id IN ({})", drop_runs)
            _delete_in(db, "DELETE FROM blobs WHERE hash IN ({})", drop_blobs)
        _compact(store, report)
        for h in loose_hashes(store.blobs):
            if h not in referenced:
                store.blobs.path(h).unlink(missing_ok=True)
                report.loose_removed += 1
        for tmp in store.blobs.root.glob("*/.tmp-*"):
            tmp.unlink(missing_ok=True)
        _remove_stale_scratch(store.root, now)
        try:
            store.db.execute("VACUUM")
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:
            pass
    report.bytes_after = store_bytes(store)
    return report


SCRATCH_STALE = 3600.0  # an import's scratch directory this old was left by a killed kernel


def _remove_stale_scratch(root: Path, now: float) -> None:
    """Delete the directories imports unpack bundles into (bundle.SCRATCH_PREFIX) that a killed
    kernel left behind; a younger one may belong to an import still running."""
    from .bundle import SCRATCH_PREFIX, SCRATCH_SUFFIX

    for d in root.glob(f"{SCRATCH_PREFIX}*{SCRATCH_SUFFIX}"):
        try:
            if d.is_dir() and not d.is_symlink() and now - d.stat().st_mtime > SCRATCH_STALE:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def _reencode(db: Any, commits: dict[str, _Commit], keep: set[str], new_parent: dict[str, str | None]) -> None:
    """Give each kept commit its new parent, and its state as changes against that parent's (the
    whole state every STATE_EVERY commits, as when recording); rows that stay as they were are
    not written."""
    depth: dict[str, int] = {}
    current = {r[0]: (r[1], r[2], r[3]) for r in db.execute("SELECT id, state, changes, state_depth FROM commits")}
    for c in sorted((commits[cid] for cid in keep), key=lambda c: c.seq):
        parent = new_parent.get(c.id, c.parent)
        full, changes, depth[c.id] = encode_state(c.state, commits[parent].state if parent is not None else None, depth.get(parent, 0))
        if parent != c.parent or current.get(c.id) != (full, changes, depth[c.id]):
            db.execute("UPDATE commits SET parent=?, state=?, changes=?, state_depth=? WHERE id=?", (parent, full, changes, depth[c.id], c.id))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _delete_in(db: Any, sql: str, keys: list[Any]) -> None:
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        db.execute(sql.format(",".join("?" * len(part))), part)


COMPACT_BELOW = 0.8  # rewrite a pack once a fifth of it or more is no longer needed


def _compact(store: Store, report: GcReport) -> None:
    """Delete packs nothing names; rewrite those mostly free into a new pack (synced before the
    index moves to it; the old pack is deleted after that commit)."""
    index = _index(store)
    live: dict[str, list[Location]] = defaultdict(list)
    for loc in index.values():
        if loc.pack is not None:
            live[loc.pack].append(loc)
    for pack in pack_names(store.blobs):
        path = store.blobs.pack_path(pack)
        locs = live.get(pack, [])
        if not locs:
            path.unlink(missing_ok=True)
            report.packs_removed += 1
            continue
        used = sum(loc.stored for loc in locs)
        if used >= COMPACT_BELOW * _file_size(path):
            continue
        writer = BlobFiles(store.root, lookup=lambda hs: {})
        written = writer.rewrite(sorted(locs, key=lambda loc: loc.offset))
        writer.close()
        with store.transaction() as db:
            db.executemany(
                "UPDATE blobs SET pack=?, pack_offset=? WHERE hash=?",
                [(w.pack, w.offset, w.hash) for w in written],
            )
        store.blobs.forget()
        path.unlink(missing_ok=True)
        report.packs_rewritten += 1


def format_gc(r: GcReport) -> str:
    verb = "would remove" if r.dry_run else "removed"
    lines = [
        f"kept {r.commits_kept} commit(s); {verb} {r.commits_removed} commit(s), {r.versions_removed} variable version(s), "
        f"{r.cell_runs_removed} cell run(s) and {r.blobs_removed} blob(s) ({human(r.blob_bytes_removed)} stored)",
    ]
    if r.dry_run:
        lines.append("dry run: nothing was changed")
    else:
        lines.append(
            f"packs: {r.packs_rewritten} rewritten, {r.packs_removed} deleted; {r.loose_removed} loose file(s) deleted; "
            f"store {human(r.bytes_before)} -> {human(r.bytes_after)}"
        )
    return "\n".join(lines)


def verify_blob(blobs: BlobFiles, h: str) -> bool:
    """Whether blob ``h`` reads back whole (used by tests and tools)."""
    try:
        return digest(blobs.get(h)) == h
    except BlobError:
        return False
