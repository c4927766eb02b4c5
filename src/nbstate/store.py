"""The store: SQLite metadata (notebooks, sessions, cell runs, variable versions, commits, refs)
beside a directory of content-addressed blobs.

Blobs are written before the commit that names them, and each commit is one SQLite transaction,
so a crash leaves at worst unreferenced blobs, never a commit that points at nothing. This
module never imports IPython. docs/FORMAT.md describes the layout; FORMAT_VERSION names it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .blobs import BlobFiles, Location, Written

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, gc must run alone
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = 5
# A commit holds its whole state (every name -> version id) once every STATE_EVERY commits along
# a line of history; those in between hold what changed against their parent, so recording a
# commit and listing the log cost what changed, not the size of the namespace, and reading any
# commit's state reads at most STATE_EVERY rows.
STATE_EVERY = 64
DEFAULT_BRANCH = "main"
DEFAULT_NOTEBOOK = "default"
# The meta key of the measured read rate (read_throughput), the bytes it is measured on, and the
# rate assumed where there is too little to measure. (Stores from before the rate was measured
# with the read pool's threads keep theirs under `read_throughput`, no longer read.)
_RATE_KEY = "read_rate"
_RATE_SAMPLE = 8 << 20
_DEFAULT_RATE = 200e6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notebooks (
    id TEXT PRIMARY KEY, path TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, notebook_id TEXT NOT NULL REFERENCES notebooks(id),
    started REAL NOT NULL, pid INTEGER, python TEXT, nbstate TEXT, cwd TEXT);
CREATE TABLE IF NOT EXISTS cell_runs (
    id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
    execution_count INTEGER, code TEXT NOT NULL, started REAL NOT NULL, duration REAL NOT NULL,
    reads TEXT NOT NULL, writes TEXT NOT NULL, deletes TEXT NOT NULL, error TEXT,
    capture_seconds REAL, examined TEXT NOT NULL, randomness TEXT);
CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY, size INTEGER NOT NULL, stored_size INTEGER NOT NULL,
    codec TEXT NOT NULL, pack TEXT, pack_offset INTEGER);
CREATE TABLE IF NOT EXISTS var_versions (
    id INTEGER PRIMARY KEY, names TEXT NOT NULL, fingerprint TEXT, manifest TEXT,
    size INTEGER NOT NULL, serializable INTEGER NOT NULL, reason TEXT,
    types TEXT NOT NULL, cell_run_id INTEGER REFERENCES cell_runs(id));
CREATE TABLE IF NOT EXISTS commits (
    id TEXT PRIMARY KEY, notebook_id TEXT NOT NULL REFERENCES notebooks(id),
    parent TEXT REFERENCES commits(id), cell_run_id INTEGER REFERENCES cell_runs(id),
    state TEXT NOT NULL, message TEXT, kind TEXT NOT NULL, created REAL NOT NULL,
    code TEXT, bytes_added INTEGER NOT NULL, seq INTEGER NOT NULL,
    changes TEXT, state_depth INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS commits_by_notebook ON commits(notebook_id, seq);
CREATE TABLE IF NOT EXISTS refs (
    notebook_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, target TEXT NOT NULL,
    PRIMARY KEY (notebook_id, kind, name));
CREATE TABLE IF NOT EXISTS heads (
    notebook_id TEXT PRIMARY KEY, branch TEXT, commit_id TEXT);
CREATE TABLE IF NOT EXISTS reflog (
    id INTEGER PRIMARY KEY, notebook_id TEXT NOT NULL, created REAL NOT NULL, action TEXT NOT NULL,
    old_branch TEXT, old_commit TEXT, new_branch TEXT, new_commit TEXT);
CREATE INDEX IF NOT EXISTS commits_by_run ON commits(cell_run_id);
CREATE INDEX IF NOT EXISTS commits_by_seq ON commits(seq);
"""


class StoreError(Exception):
    """The store cannot be opened or used as asked; the message says what to do."""


class DamagedStore(StoreError):
    """The store's database cannot be read: it is truncated, overwritten or otherwise damaged."""


def damaged_database_message(root: Path, why: object) -> str:
    return (
        f"the store's database {root / 'nbstate.sqlite'} is damaged ({why}): its history cannot be read, "
        f"and nothing was changed. `nbstate fsck --store {root}` shows what is still readable. To go on "
        f"recording, move the store aside (`mv {root} {root}.damaged`) or choose another one "
        "(NBSTATE_STORE, or `%nbstate init --store PATH`)."
    )


def check_database_file(root: Path) -> None:
    """Raise DamagedStore when ``nbstate.sqlite`` is visibly cut short or emptied.

    SQLite reads a truncated database without complaint until a query reaches a missing page, and
    opens an empty file as a new, empty database: that would start a new history beside the old
    packs. The header's page count is compared with the file's size only when no write-ahead log
    holds newer pages (the log may hold the pages a crash left uncopied)."""
    db = root / "nbstate.sqlite"
    wal = root / "nbstate.sqlite-wal"
    try:
        size = db.stat().st_size
        wal_size = wal.stat().st_size if wal.exists() else 0
    except OSError:
        return
    if wal_size:
        return
    if size == 0:
        packs = root / "objects" / "packs"
        n = sum(1 for p in packs.iterdir() if p.suffix == ".pack") if packs.is_dir() else 0
        if n:
            raise DamagedStore(damaged_database_message(root, f"the file is empty but {n} pack file(s) hold blobs: it was truncated or replaced"))
        return
    try:
        with open(db, "rb") as f:
            header = f.read(100)
    except OSError:
        return
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise DamagedStore(damaged_database_message(root, "it is not an SQLite database"))
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96]  # the in-header size is trusted only then
    if valid and pages and size < pages * page_size:
        raise DamagedStore(damaged_database_message(root, f"the file is {size} bytes, its header says {pages * page_size}: it was cut short"))


def manifest_chunks(manifest: dict[str, Any] | None) -> list[str]:
    """Every chunk hash a version's manifest names: its stream's, then each buffer's."""
    if not manifest:
        return []
    out = list(manifest["stream"]["chunks"])
    for b in manifest["buffers"]:
        out.extend(b["chunks"])
    return out


@dataclass
class VariableVersion:
    id: int
    names: list[str]
    fingerprint: str | None
    manifest: dict[str, Any] | None
    size: int
    serializable: bool
    reason: str | None  # why not serializable; for a serializable one, why its bytes are not here
    types: dict[str, str]
    cell_run_id: int | None

    @property
    def loadable(self) -> bool:
        """Whether this store holds the version's bytes: it was serializable, and it did not come
        from a bundle that left its bytes out (``BYTES_LEFT_OUT``)."""
        return self.serializable and self.manifest is not None and self.reason is None


# The reason of a serializable version whose bytes a bundle did not ship (bundle.copy_history):
# planners replay its cells, gc keeps them, fsck expects no blobs for it.
BYTES_LEFT_OUT = "its bytes were not exported with it (rebuilt by replaying its cells)"


@dataclass
class Changes:
    """What a commit's state changed against its parent's: the names it created and changed
    (-> their version ids now) and the names it deleted."""

    created: dict[str, int]
    changed: dict[str, int]
    deleted: list[str]

    def to_json(self) -> str:
        return json.dumps({"created": dict(sorted(self.created.items())), "changed": dict(sorted(self.changed.items())), "deleted": sorted(self.deleted)})

    @classmethod
    def from_json(cls, text: str) -> Changes:
        data = json.loads(text)
        return cls({k: int(v) for k, v in data["created"].items()}, {k: int(v) for k, v in data["changed"].items()}, list(data["deleted"]))

    def apply(self, state: dict[str, int]) -> None:
        """Turn the parent's ``state`` into this commit's, in place."""
        state.update(self.created)
        state.update(self.changed)
        for n in self.deleted:
            state.pop(n, None)


def state_changes(before: dict[str, int], after: dict[str, int], hint: Iterable[str] | None = None, exact: bool = False) -> Changes:
    """How ``after`` differs from ``before``. ``hint``: the names that most likely differ (a
    cell's new versions and deletions); the changes found among them are checked by applying
    them to ``before`` (a copy and a comparison, both in C), and only when that does not give
    ``after`` is every name compared. ``exact``: the hint is known to name every difference
    (only the sizes are checked)."""
    if hint is not None:
        created, changed, deleted = _hinted_changes(before, after.get, hint)
        if len(before) + len(created) - len(deleted) == len(after):
            probe = Changes(created, changed, deleted)
            if exact:
                return probe
            applied = dict(before)
            probe.apply(applied)
            if applied == after:
                return probe
    created = {n: v for n, v in after.items() if n not in before}
    changed = {n: v for n, v in after.items() if n in before and before[n] != v}
    return Changes(created, changed, [n for n in before if n not in after])


def _hinted_changes(before: Mapping[str, int], after: Callable[[str], int | None], hint: Iterable[str]) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """(created, changed, deleted) among the ``hint`` names, ``after`` giving each name's version
    id now (None: gone)."""
    created, changed, deleted = {}, {}, []
    for n in hint:
        v = after(n)
        if v is None:
            if n in before:
                deleted.append(n)
        elif n not in before:
            created[n] = v
        elif before[n] != v:
            changed[n] = v
    return created, changed, deleted


def encode_state(
    state: dict[str, int], parent_state: dict[str, int] | None, parent_depth: int, hint: Iterable[str] | None = None, exact: bool = False
) -> tuple[str, str, int]:
    """The ``state``, ``changes`` and ``state_depth`` columns of a commit whose whole state is
    ``state``, made on a parent with ``parent_state`` (None: no parent) at ``parent_depth``
    (``hint``, ``exact``: as for state_changes)."""
    changes = state_changes(parent_state or {}, state, hint, exact)
    depth = _depth_after(None if parent_state is None else parent_depth)
    full = json.dumps(dict(sorted(state.items()))) if depth == 0 else ""
    return full, changes.to_json(), depth


def _depth_after(parent_depth: int | None) -> int:
    """The ``state_depth`` of a commit whose parent is at ``parent_depth`` (None: no parent):
    0, a whole state, every STATE_EVERY commits along a line of history."""
    return 0 if parent_depth is None or parent_depth + 1 >= STATE_EVERY else parent_depth + 1


@dataclass(eq=False)
class Commit:
    id: str
    notebook_id: str
    parent: str | None
    cell_run_id: int | None
    message: str | None
    kind: str
    created: float
    code: str | None  # hash of the blob holding the notebook's cells, when the notebook is known
    bytes_added: int
    seq: int
    _changes: Changes | None = field(default=None, repr=False)  # None: a store of format 3 or older
    _state: dict[str, int] | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def short(self) -> str:
        return self.id[:8]

    @property
    def state(self) -> dict[str, int]:
        """Every user name of the commit's namespace -> its version id (read when first asked
        for; shared with the store's cache, so not to be changed)."""
        if self._state is None:
            assert self._store is not None
            self._state = self._store.state_of(self.id)
        return self._state

    @property
    def changes(self) -> Changes:
        """What this commit changed against its parent."""
        if self._changes is None:
            assert self._store is not None
            self._changes = state_changes(self._store.state_of(self.parent) if self.parent else {}, self.state)
        return self._changes


@dataclass
class CellRun:
    id: int
    session_id: str
    execution_count: int | None
    code: str
    started: float
    duration: float
    reads: list[str]
    writes: list[str]
    deletes: list[str]
    error: str | None
    capture_seconds: float | None
    examined: list[str]
    # The global random generators whose state the cell changed (random, numpy, torch): its
    # replay gives the same values only from the same state. None: none seen (or not watched).
    randomness: list[str] | None = None


@dataclass
class NewVersion:
    """A variable version to be recorded with the next commit."""

    names: list[str]
    fingerprint: str | None
    manifest: dict[str, Any] | None
    size: int
    serializable: bool
    reason: str | None
    types: dict[str, str]
    id: int | None = None  # its version id, once recorded


@dataclass
class PendingCommit:
    notebook_id: str
    session_id: str
    code: str
    execution_count: int | None
    started: float
    duration: float
    reads: list[str]
    writes: list[str]
    deletes: list[str]
    error: str | None
    kept: Mapping[str, int]  # name -> existing version id (read once, by Store.record)
    new_versions: list[NewVersion] = field(default_factory=list)
    blobs: list[Written] = field(default_factory=list)
    capture_seconds: float | None = None
    examined: list[str] = field(default_factory=list)
    message: str | None = None
    kind: str = "auto"
    code_blob: str | None = None
    randomness: list[str] | None = None  # see CellRun.randomness
    # The commit whose state ``kept`` and the new versions change, when the writer knows it (its
    # own last commit): when HEAD is still there, the changes are those of the new versions and
    # ``deletes`` alone, and the states are not compared name by name.
    base: str | None = None


class Store:
    """An nbstate store on the local file system."""

    def __init__(self, root: str | os.PathLike[str], read_only: bool = False, immutable: bool = False, check_file: bool = True) -> None:
        """Open (creating when needed) the store at ``root``. ``read_only`` opens an existing store
        for reading without taking any lock; ``immutable`` also promises nobody writes it (a
        bundle), which lets SQLite skip locking altogether. ``check_file=False`` (with
        ``read_only``) reads a database that looks cut short anyway, as fsck does."""
        self.root = Path(root).expanduser()
        self.read_only = read_only or immutable
        if read_only or immutable:
            self._open_read_only(immutable, check_file)
            return
        try:
            if not self.root.exists():
                self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # readable by its owner only
        except OSError as exc:
            raise StoreError(
                f"cannot create the store directory {self.root}: {exc.strerror}. "
                "Choose another location with NBSTATE_STORE or `%nbstate init --store PATH`."
            ) from None
        if not self.root.is_dir():
            raise StoreError(
                f"{self.root} is not a directory, so it cannot be a store. "
                "Choose another location with NBSTATE_STORE or `%nbstate init --store PATH`."
            )
        check_database_file(self.root)
        created = not (self.root / "nbstate.sqlite").exists()
        try:
            self.db = sqlite3.connect(self.root / "nbstate.sqlite", timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store's database {self.root / 'nbstate.sqlite'}: {exc}") from None
        if created:
            _owner_only(self.root / "nbstate.sqlite")
        try:
            self._open_schema()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            if isinstance(exc, sqlite3.OperationalError) and not _is_corruption(exc):
                raise
            raise DamagedStore(damaged_database_message(self.root, exc)) from None
        except BaseException:
            self.db.close()
            raise
        self._packed_index = True
        self._columns(delta_states=True)
        self._data_version = self.db.execute("PRAGMA data_version").fetchone()[0]
        self._generation = self._read_generation()
        self._lock_fd: int | None = None
        self.blobs = BlobFiles(self.root, lookup=self._lookup, fsync=os.environ.get("NBSTATE_FSYNC", "1") != "0", moved=self._blobs_moved)

    def _open_schema(self) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            row = self.db.execute(
                "SELECT value FROM meta WHERE key='format_version'"
            ).fetchone() if self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() else None
            if row is not None and int(row[0]) > FORMAT_VERSION:
                raise StoreError(
                    f"the store {self.root} has format version {row[0]}, newer than this nbstate "
                    f"understands ({FORMAT_VERSION}); upgrade nbstate (pip install -U nbstate)."
                )
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
                self.db.execute("INSERT INTO meta VALUES ('created', ?)", (str(time.time()),))
            elif int(row[0]) < FORMAT_VERSION:
                self._upgrade(int(row[0]))
            # Added within version 5, which readers that do not know it ignore: NULL for the cell
            # runs recorded before (not watched).
            if "randomness" not in {r[1] for r in self.db.execute("PRAGMA table_info(cell_runs)")}:
                self.db.execute("ALTER TABLE cell_runs ADD COLUMN randomness TEXT")

    def _upgrade(self, version: int) -> None:
        """Bring a store of an older format up to this one, in the open transaction. Version 1
        to 2: the blob index gains where each blob lies in a pack; version 1's loose files stay
        where they are (their rows have no pack) and are read as before. Version 2 to 3: blobs
        may be patches (codec ``patch``); nothing stored changes. Version 3 to 4: commits gain
        ``changes`` (filled in here for every commit) and ``state_depth`` (0: the old commits
        keep their whole states). Version 4 to 5: streams may be plain (pickled without a memo,
        shared strings as persistent ids); nothing stored changes."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(blobs)")}
        if "pack" not in columns:
            self.db.execute("ALTER TABLE blobs ADD COLUMN pack TEXT")
        if "pack_offset" not in columns:
            self.db.execute("ALTER TABLE blobs ADD COLUMN pack_offset INTEGER")
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(commits)")}
        if "changes" not in columns:
            self.db.execute("ALTER TABLE commits ADD COLUMN changes TEXT")
        if "state_depth" not in columns:
            self.db.execute("ALTER TABLE commits ADD COLUMN state_depth INTEGER NOT NULL DEFAULT 0")
        states: dict[str, dict[str, int]] = {}
        rows = self.db.execute("SELECT id, parent, state FROM commits WHERE changes IS NULL ORDER BY seq").fetchall()
        for cid, parent, text in rows:
            state = states[cid] = _parse_state(text)
            if parent is not None and parent not in states:
                row = self.db.execute("SELECT state FROM commits WHERE id=?", (parent,)).fetchone()
                states[parent] = _parse_state(row[0]) if row else {}
            changes = state_changes(states[parent] if parent is not None else {}, state)
            self.db.execute("UPDATE commits SET changes=? WHERE id=?", (changes.to_json(), cid))
        self.db.execute("UPDATE meta SET value=? WHERE key='format_version'", (str(FORMAT_VERSION),))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('upgraded_from', ?)", (str(version),))

    def _open_read_only(self, immutable: bool, check_file: bool = True) -> None:
        db_path = self.root / "nbstate.sqlite"
        if not db_path.is_file():
            raise StoreError(f"no nbstate store at {self.root} (nbstate.sqlite is missing)")
        if not immutable and check_file:
            check_database_file(self.root)
        try:
            uri = f"file:{_uri_path(db_path)}?mode=ro" + ("&immutable=1" if immutable else "")
            self.db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA trusted_schema=OFF")  # a database from elsewhere runs no SQL functions of its own
            row = self.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(blobs)")}
            commit_columns = {r[1] for r in self.db.execute("PRAGMA table_info(commits)")}
            run_columns = {r[1] for r in self.db.execute("PRAGMA table_info(cell_runs)")}
        except sqlite3.Error as exc:
            if getattr(self, "db", None) is not None:
                self.db.close()
            raise DamagedStore(damaged_database_message(self.root, exc)) from None
        try:
            version = int(row[0]) if row is not None else None
        except ValueError:
            version = None
        if version is None or version > FORMAT_VERSION:
            raise StoreError(
                f"the store at {self.root} has format version {row[0] if row else '?'}; this nbstate reads up to "
                f"{FORMAT_VERSION}: upgrade nbstate (pip install -U nbstate)"
            )
        self._packed_index = "pack" in columns  # a store of version 1 has loose files only
        # before version 4: whole states only; a store made before cell runs had randomness
        self._columns(delta_states="state_depth" in commit_columns, randomness="randomness" in run_columns)
        self._generation = None
        self._lock_fd = None
        self.blobs = BlobFiles(self.root, create=False, lookup=self._lookup)

    def _columns(self, delta_states: bool, randomness: bool = True) -> None:
        """The commit and cell-run columns this store's database has, and the cache of commits'
        states."""
        self._cell_run_cols = f"{_CELL_RUN_COLUMNS}, {'randomness' if randomness else 'NULL'}"
        extra = "changes, state_depth" if delta_states else "NULL, 0"
        self._commit_cols = f"{_COMMIT_COLUMNS}, {extra}"
        self._commit_cols_c = ", ".join(f"c.{c.strip()}" for c in _COMMIT_COLUMNS.split(",")) + (", c.changes, c.state_depth" if delta_states else ", NULL, 0")
        self._state_sql = (
            """WITH RECURSIVE chain(id, parent, depth, state, changes) AS (
                   SELECT id, parent, state_depth, state, changes FROM commits WHERE id = ?
                   UNION ALL
                   SELECT c.id, c.parent, c.state_depth, c.state, c.changes FROM commits c JOIN chain ON c.id = chain.parent
                   WHERE chain.depth > 0)
               SELECT id, depth, state, changes FROM chain"""
            if delta_states else "SELECT id, 0, state, NULL FROM commits WHERE id = ?"
        )
        self._states: dict[str, tuple[dict[str, int], int]] = {}  # commit id -> (state, depth), newest last
        # The state of the commit this process recorded last, kept up to date in place (its
        # changes applied), so that recording a commit on it costs what the cell changed rather
        # than a copy of every name: (commit id, state, depth). Never handed out; state_of copies it.
        self._tip: tuple[str, dict[str, int], int] | None = None

    def _lookup(self, hashes: Sequence[str]) -> dict[str, Location]:
        """The index rows of ``hashes``, as locations (a row without a pack is a loose file)."""
        cols = "hash, size, stored_size, codec, pack, pack_offset" if self._packed_index else "hash, size, stored_size, codec, NULL, NULL"
        out: dict[str, Location] = {}
        for start in range(0, len(hashes), 500):
            part = list(hashes[start : start + 500])
            q = ",".join("?" * len(part))
            for h, size, stored, codec, pack, offset in self.db.execute(f"SELECT {cols} FROM blobs WHERE hash IN ({q})", part):
                if pack is None:
                    out[h] = Location(h, size, stored - 4, codec, None, 4)
                else:
                    out[h] = Location(h, size, stored, codec, pack, offset)
        return out

    # --- writers and gc ---------------------------------------------------------------------------

    def _blobs_moved(self) -> bool:
        """Whether a gc rewrote packs since this process last looked (then it starts afresh)."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return False  # no other connection has committed anything since the last look
        self._data_version = version
        generation = self._read_generation()
        if generation == self._generation:
            return False
        self._generation = generation
        return True

    def _read_generation(self) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key='gc_generation'").fetchone()
        return row[0] if row else "0"

    def _lock(self, mode: int) -> None:
        if fcntl is None:
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, mode)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold off gc while blobs are written and the commit naming them is recorded (a shared
        lock on ``lock``); after a gc, forget what this process knew of the blob index."""
        if fcntl is not None:
            self._lock(fcntl.LOCK_SH)
        try:
            if self._blobs_moved():
                self.blobs.forget()
                self._states.clear()  # gc may have re-encoded commits' states
                self._tip = None
            self.blobs.gc_held = fcntl is not None
            yield
        finally:
            self.blobs.gc_held = False
            if fcntl is not None:
                self._lock(fcntl.LOCK_UN)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No other process writes while this is held (gc): an exclusive lock on ``lock``,
        and every writer forgets its view of the blob index afterwards."""
        if fcntl is not None:
            self._lock(fcntl.LOCK_EX)
        try:
            yield
        finally:
            try:
                with self.transaction() as db:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('gc_generation', ?)", (os.urandom(8).hex(),))
                self._generation = self._read_generation()
                self.blobs.forget()
            finally:
                if fcntl is not None:
                    self._lock(fcntl.LOCK_UN)

    def close(self) -> None:
        try:
            self.blobs.close()
        finally:
            self.db.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- notebooks and sessions ----------------------------------------------------------------

    def ensure_notebook(self, notebook_id: str, path: str | None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO notebooks VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET path=coalesce(excluded.path, path)",
                (notebook_id, path, time.time()),
            )
            db.execute("INSERT OR IGNORE INTO heads VALUES (?, ?, NULL)", (notebook_id, DEFAULT_BRANCH))

    def start_session(self, session_id: str, notebook_id: str, python: str, nbstate: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, notebook_id, time.time(), os.getpid(), python, nbstate, os.getcwd()),
            )

    # --- reading -------------------------------------------------------------------------------

    def head(self, notebook_id: str) -> tuple[str | None, str | None]:
        """(branch or None when detached, commit id or None when the history is empty)."""
        row = self.db.execute("SELECT branch, commit_id FROM heads WHERE notebook_id=?", (notebook_id,)).fetchone()
        if row is None:
            return DEFAULT_BRANCH, None
        branch, commit_id = row
        if branch is not None:
            return branch, self.ref(notebook_id, "branch", branch)
        return None, commit_id

    def ref(self, notebook_id: str, kind: str, name: str) -> str | None:
        row = self.db.execute(
            "SELECT target FROM refs WHERE notebook_id=? AND kind=? AND name=?", (notebook_id, kind, name)
        ).fetchone()
        return row[0] if row else None

    def refs(self, notebook_id: str, kind: str) -> dict[str, str]:
        rows = self.db.execute("SELECT name, target FROM refs WHERE notebook_id=? AND kind=? ORDER BY name", (notebook_id, kind))
        return dict(rows.fetchall())

    def commit(self, commit_id: str) -> Commit:
        row = self.db.execute(f"SELECT {self._commit_cols} FROM commits WHERE id=?", (commit_id,)).fetchone()
        if row is None:
            raise StoreError(f"no commit {commit_id!r} in {self.root}; `%nbstate log` lists the commits")
        return self._commit_from_row(row)

    def commits(self, notebook_id: str | None = None, limit: int | None = None) -> list[Commit]:
        """Commits newest first (all notebooks when ``notebook_id`` is None)."""
        sql = f"SELECT {self._commit_cols} FROM commits"
        args: list[Any] = []
        if notebook_id is not None:
            sql += " WHERE notebook_id=?"
            args.append(notebook_id)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._commit_from_row(r) for r in self.db.execute(sql, args)]

    def commit_ids_with_prefix(self, prefix: str, notebook_id: str | None = None) -> list[str]:
        sql, args = "SELECT id FROM commits WHERE id >= ? AND id < ?", [prefix, prefix + "\uffff"]
        if notebook_id is not None:
            sql += " AND notebook_id = ?"
            args.append(notebook_id)
        return [r[0] for r in self.db.execute(sql + " LIMIT 3", args)]

    def chain(self, commit_id: str, limit: int | None = None) -> list[Commit]:
        """``commit_id`` and its ancestors, newest first (at most ``limit``), in one query."""
        if limit is not None and limit <= 0:
            return []
        rows = self.db.execute(
            f"""WITH RECURSIVE chain(id, depth) AS (
                   SELECT ?, 0
                   UNION ALL
                   SELECT c.parent, chain.depth + 1 FROM commits c JOIN chain ON c.id = chain.id
                   WHERE c.parent IS NOT NULL AND chain.depth + 1 < ?)
               SELECT {self._commit_cols_c} FROM chain JOIN commits c ON c.id = chain.id ORDER BY chain.depth""",
            (commit_id, limit if limit is not None else 1 << 62),
        )
        return [self._commit_from_row(r) for r in rows]

    def commits_by_id(self, ids: Sequence[str]) -> dict[str, Commit]:
        return {row[0]: self._commit_from_row(row) for row in self._rows_by_id(self._commit_cols, "commits", ids)}

    def cell_runs(self, ids: Sequence[int]) -> dict[int, CellRun]:
        return {row[0]: _cell_run_from_row(row) for row in self._rows_by_id(self._cell_run_cols, "cell_runs", ids)}

    def _rows_by_id(self, columns: str, table: str, ids: Sequence[Any]) -> Iterator[tuple]:
        """The rows of ``table`` whose ``id`` is one of ``ids``, in batches SQLite accepts."""
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            yield from self.db.execute(f"SELECT {columns} FROM {table} WHERE id IN ({','.join('?' * len(part))})", part)

    def ancestors(self, commit_id: str | None) -> Iterator[Commit]:
        while commit_id is not None:
            c = self.commit(commit_id)
            yield c
            commit_id = c.parent

    def versions(self, ids: list[int]) -> dict[int, VariableVersion]:
        out: dict[int, VariableVersion] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            q = ",".join("?" * len(part))
            for row in self.db.execute(
                f"SELECT id, names, fingerprint, manifest, size, serializable, reason, types, cell_run_id FROM var_versions WHERE id IN ({q})",
                part,
            ):
                out[row[0]] = VariableVersion(
                    row[0], json.loads(row[1]), row[2], json.loads(row[3]) if row[3] else None,
                    row[4], bool(row[5]), row[6], json.loads(row[7]), row[8],
                )
        return out

    def unserializable(self, ids: list[int]) -> dict[str, str]:
        """Name -> why it was not stored, for the versions among ``ids`` that hold no bytes
        (their manifests are not read)."""
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            q = ",".join("?" * len(part))
            for names, reason in self.db.execute(f"SELECT names, reason FROM var_versions WHERE serializable=0 AND id IN ({q})", part):
                for n in json.loads(names):
                    out[n] = reason or "not serializable"
        return out

    def cell_run(self, run_id: int) -> CellRun:
        row = self.db.execute(f"SELECT {self._cell_run_cols} FROM cell_runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no cell run {run_id} in {self.root}")
        return _cell_run_from_row(row)

    def sessions(self, notebook_id: str) -> list[tuple[str, float]]:
        return self.db.execute("SELECT id, started FROM sessions WHERE notebook_id=? ORDER BY started", (notebook_id,)).fetchall()

    # --- writing -------------------------------------------------------------------------------

    def record(self, pending: PendingCommit) -> Commit:
        """Record a cell run, its new variable versions and the commit, in one transaction."""
        now = time.time()
        self.blobs.sync()  # the blobs' bytes are on disk before any row names them
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO blobs (hash, size, stored_size, codec, pack, pack_offset) VALUES (?, ?, ?, ?, ?, ?)",
                [(b.hash, b.size, b.stored_size, b.codec, b.pack, b.offset) for b in pending.blobs],
            )
            run_id = None if pending.kind == "manual" else db.execute(
                "INSERT INTO cell_runs (session_id, execution_count, code, started, duration, reads, writes, deletes, error, capture_seconds, examined, randomness) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    pending.session_id, pending.execution_count, pending.code, pending.started, pending.duration,
                    json.dumps(pending.reads), json.dumps(pending.writes), json.dumps(pending.deletes),
                    pending.error, pending.capture_seconds, json.dumps(pending.examined),
                    json.dumps(pending.randomness) if pending.randomness else None,
                ),
            ).lastrowid
            ids: dict[str, int] = {}
            for v in pending.new_versions:
                vid = db.execute(
                    "INSERT INTO var_versions (names, fingerprint, manifest, size, serializable, reason, types, cell_run_id) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        json.dumps(v.names), v.fingerprint, json.dumps(v.manifest) if v.manifest else None,
                        v.size, int(v.serializable), v.reason, json.dumps(v.types), run_id,
                    ),
                ).lastrowid
                for name in v.names:
                    ids[name] = vid
            branch, parent = self._head_in(db, pending.notebook_id)
            if branch is None and parent is not None:
                branch = self._branch_for_detached(db, pending.notebook_id, parent)
                db.execute("UPDATE heads SET branch=?, commit_id=NULL WHERE notebook_id=?", (branch, pending.notebook_id))
            seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM commits").fetchone()[0]
            commit = Commit(
                _commit_id(pending.notebook_id, parent, seq, now), pending.notebook_id, parent, run_id, pending.message,
                pending.kind, now, pending.code_blob, sum(b.stored_size for b in pending.blobs), seq,
            )
            hint = set(ids).union(pending.deletes)
            exact = parent is not None and parent == pending.base
            tip = self._tip if exact and self._tip is not None and self._tip[0] == parent else None
            on_tip = None if tip is None else self._insert_on_tip(db, commit, tip, pending.kept, ids, hint)
            if on_tip is None:
                # (a dict's own copy: a mapping's items one by one cost a lookup each)
                state = pending.kept.copy() if isinstance(pending.kept, (dict, MappingProxyType)) else dict(pending.kept)
                state.update(ids)
                self.insert_commit(db, commit, state, hint, exact=exact)
            self._advance(db, pending.notebook_id, branch, commit.id)
        if on_tip is None:
            self._tip = (commit.id, dict(state), self._states[commit.id][1])
        else:  # recorded: the tip follows, changed in place
            assert tip is not None
            changes, depth = on_tip
            changes.apply(tip[1])
            self._tip = (commit.id, tip[1], depth)
        for v in pending.new_versions:
            v.id = ids[v.names[0]]
        self.blobs.committed(pending.blobs)
        return commit

    def _insert_on_tip(
        self, db: sqlite3.Connection, commit: Commit, tip: tuple[str, dict[str, int], int], kept: Mapping[str, int], ids: dict[str, int], hint: set[str]
    ) -> tuple[Changes, int] | None:
        """insert_commit for a commit on the tip whose changes ``hint`` names exactly: its state
        is ``kept`` with the new versions' ``ids`` over it, and only those names are looked at
        (the whole state is written out every STATE_EVERY commits, as always). Returns its
        changes and depth; None, and nothing written, when the sizes show that the hint missed
        a change."""
        _, before, parent_depth = tip
        created, changed, deleted = _hinted_changes(before, lambda n: ids.get(n, kept.get(n)), hint)
        size = len(kept) + sum(1 for n in ids if n not in kept)
        if len(before) + len(created) - len(deleted) != size:
            return None  # the whole state is compared instead
        changes = Changes(created, changed, deleted)
        depth = _depth_after(parent_depth)
        full = ""
        if depth == 0:
            whole = dict(kept)
            whole.update(ids)
            full = json.dumps(dict(sorted(whole.items())))
        _insert_commit_row(db, commit, full, changes.to_json(), depth)
        commit._changes, commit._store = changes, self
        return changes, depth

    def insert_commit(
        self, db: sqlite3.Connection, commit: Commit, state: dict[str, int], hint: Iterable[str] | None = None, exact: bool = False
    ) -> None:
        """Write the row of ``commit`` (in the open transaction ``db``), whose whole state is
        ``state``: only what changed against its parent, or all of it every STATE_EVERY commits
        (``hint``, ``exact``: the names most likely changed, or known to be all, as for state_changes)."""
        if commit.parent is None:
            parent_state, parent_depth = None, 0
        else:
            parent_state, parent_depth = self._state_and_depth(commit.parent)
        full, changes, depth = encode_state(state, parent_state, parent_depth, hint, exact)
        _insert_commit_row(db, commit, full, changes, depth)
        commit._state, commit._changes, commit._store = state, Changes.from_json(changes), self
        self._remember(commit.id, state, depth)

    def state_of(self, commit_id: str) -> dict[str, int]:
        """The whole state of a commit (name -> version id): its nearest ancestor that holds one,
        with the changes of the commits between applied. Cached; not to be changed."""
        return self._state_and_depth(commit_id)[0]

    def _state_and_depth(self, commit_id: str) -> tuple[dict[str, int], int]:
        known = self._states.get(commit_id)
        if known is not None:
            return known
        if self._tip is not None and self._tip[0] == commit_id:
            state, depth = dict(self._tip[1]), self._tip[2]
            self._remember(commit_id, state, depth)
            return state, depth
        steps: list[str | None] = []
        depth = None
        base: dict[str, int] | str | None = None
        for cid, row_depth, text, changes in self.db.execute(self._state_sql, (commit_id,)):
            if depth is None:
                depth = row_depth
            hit = self._states.get(cid)
            if hit is not None:
                base = hit[0]
                break
            if row_depth == 0:
                base = text
                break
            steps.append(changes)
        if depth is None:
            raise StoreError(f"no commit {commit_id!r} in {self.root}; `%nbstate log` lists the commits")
        if base is None:
            raise StoreError(
                f"the state of commit {commit_id[:12]} cannot be read: an ancestor it is recorded against is missing "
                f"from {self.root}. `nbstate fsck --store {self.root}` lists what is damaged."
            )
        try:
            state = _parse_state(base) if isinstance(base, str) else dict(base)
            for changes in reversed(steps):
                Changes.from_json(changes).apply(state)  # type: ignore[arg-type]
        except (TypeError, ValueError, KeyError) as exc:
            raise StoreError(
                f"the state of commit {commit_id[:12]} cannot be read: a commit it is recorded against holds damaged changes "
                f"({exc}). `nbstate fsck --store {self.root}` lists what is damaged."
            ) from None
        self._remember(commit_id, state, depth)
        return state, depth

    def _remember(self, commit_id: str, state: dict[str, int], depth: int) -> None:
        self._states[commit_id] = (state, depth)
        while len(self._states) > 32:
            del self._states[next(iter(self._states))]

    def _commit_from_row(self, row: tuple) -> Commit:
        changes = Changes.from_json(row[11]) if row[11] else None
        return Commit(row[0], row[1], row[2], row[3], row[5], row[6], row[7], row[8], row[9], row[10], changes, None, self)

    def _head_in(self, db: sqlite3.Connection, notebook_id: str) -> tuple[str | None, str | None]:
        row = db.execute("SELECT branch, commit_id FROM heads WHERE notebook_id=?", (notebook_id,)).fetchone()
        branch, commit_id = row if row else (DEFAULT_BRANCH, None)
        if branch is not None:
            target = db.execute(
                "SELECT target FROM refs WHERE notebook_id=? AND kind='branch' AND name=?", (notebook_id, branch)
            ).fetchone()
            commit_id = target[0] if target else None
        return branch, commit_id

    def _advance(self, db: sqlite3.Connection, notebook_id: str, branch: str | None, commit_id: str) -> None:
        if branch is None:
            db.execute("UPDATE heads SET commit_id=? WHERE notebook_id=?", (commit_id, notebook_id))
        else:
            db.execute(
                "INSERT INTO refs VALUES (?, 'branch', ?, ?) ON CONFLICT(notebook_id, kind, name) DO UPDATE SET target=excluded.target",
                (notebook_id, branch, commit_id),
            )

    def _branch_for_detached(self, db: sqlite3.Connection, notebook_id: str, parent: str) -> str:
        """A cell run on a detached HEAD continues the branch whose tip it is, or forks a new one."""
        tips = [r[0] for r in db.execute(
            "SELECT name FROM refs WHERE notebook_id=? AND kind='branch' AND target=? ORDER BY name", (notebook_id, parent)
        )]
        if tips:
            return tips[0]
        base = f"fork-{parent[:7]}"
        name, k = base, 1
        while db.execute("SELECT 1 FROM refs WHERE notebook_id=? AND kind='branch' AND name=?", (notebook_id, name)).fetchone():
            k += 1
            name = f"{base}-{k}"
        db.execute("INSERT INTO refs VALUES (?, 'branch', ?, ?)", (notebook_id, name, parent))
        return name

    # --- refs, HEAD and its log ----------------------------------------------------------------

    def move_head(self, notebook_id: str, branch: str | None, commit_id: str | None, action: str) -> None:
        """Point HEAD at a branch (attached) or a commit (detached), logging where it was."""
        with self.transaction() as db:
            old_branch, old_commit = self._head_in(db, notebook_id)
            db.execute(
                "INSERT INTO heads VALUES (?, ?, ?) ON CONFLICT(notebook_id) DO UPDATE SET branch=excluded.branch, commit_id=excluded.commit_id",
                (notebook_id, branch, None if branch else commit_id),
            )
            db.execute(
                "INSERT INTO reflog (notebook_id, created, action, old_branch, old_commit, new_branch, new_commit) VALUES (?,?,?,?,?,?,?)",
                (notebook_id, time.time(), action, old_branch, old_commit, branch, commit_id),
            )

    def reflog(self, notebook_id: str, limit: int = 50) -> list[tuple[str, str | None, str | None, str | None, str | None]]:
        """HEAD moves, newest first: (action, old branch, old commit, new branch, new commit)."""
        return self.db.execute(
            "SELECT action, old_branch, old_commit, new_branch, new_commit FROM reflog WHERE notebook_id=? ORDER BY id DESC LIMIT ?",
            (notebook_id, limit),
        ).fetchall()

    def set_ref(self, notebook_id: str, kind: str, name: str, target: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO refs VALUES (?, ?, ?, ?) ON CONFLICT(notebook_id, kind, name) DO UPDATE SET target=excluded.target",
                (notebook_id, kind, name, target),
            )

    def delete_ref(self, notebook_id: str, kind: str, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM refs WHERE notebook_id=? AND kind=? AND name=?", (notebook_id, kind, name))

    def rename_branch(self, notebook_id: str, old: str, new: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE refs SET name=? WHERE notebook_id=? AND kind='branch' AND name=?", (new, notebook_id, old))
            db.execute("UPDATE heads SET branch=? WHERE notebook_id=? AND branch=?", (new, notebook_id, old))

    def commit_of_run(self, cell_run_id: int) -> Commit:
        row = self.db.execute(f"SELECT {self._commit_cols} FROM commits WHERE cell_run_id=?", (cell_run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no commit records cell run {cell_run_id}")
        return self._commit_from_row(row)

    def read_throughput(self) -> float:
        """Bytes per second a load reads, decodes and verifies this store's blobs at: measured
        once on its largest blobs (at most 8 MB), read the way a load reads its buffers (by the
        read pool's threads, side by side), so that plans and their estimates see the rate a
        restore gets. Kept in the store's meta table; a store opened read-only is measured too
        where its table has no rate (a bundle made by an earlier build), and the rate kept in
        memory."""
        cached = getattr(self, "_throughput", None)
        if cached:
            return cached
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (_RATE_KEY,)).fetchone()
        if row is not None:
            self._throughput = float(row[0])
            return self._throughput
        sample, total = [], 0
        for h, size in self.db.execute("SELECT hash, size FROM blobs ORDER BY size DESC LIMIT 64"):
            if total >= _RATE_SAMPLE:
                break
            sample.append(([h], size))
            total += size
        t0 = time.perf_counter()
        try:
            total = sum(len(b) for b in self.blobs.read_many(sample))
        except Exception:  # noqa: BLE001 - a damaged or missing blob: fsck's to report, not this
            total = 0
        elapsed = time.perf_counter() - t0
        if total < (1 << 20) or elapsed <= 0:
            return _DEFAULT_RATE  # too little stored to measure (not kept: measured when there is)
        self._throughput = total / elapsed
        if not self.read_only:
            self.keep_read_rate(self._throughput)
        return self._throughput

    def keep_read_rate(self, rate: float) -> None:
        """Record ``rate`` as this store's read rate (an export gives its bundle the rate of the
        store it comes from, so that an import plans without measuring)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_RATE_KEY, str(rate)))
        self._throughput = rate

    def stored_bytes(self) -> int:
        return self.db.execute("SELECT coalesce(sum(stored_size), 0) FROM blobs").fetchone()[0]


_COMMIT_COLUMNS = "id, notebook_id, parent, cell_run_id, state, message, kind, created, code, bytes_added, seq"
_CELL_RUN_COLUMNS = "id, session_id, execution_count, code, started, duration, reads, writes, deletes, error, capture_seconds, examined"


def _insert_commit_row(db: sqlite3.Connection, commit: Commit, full: str, changes: str, depth: int) -> None:
    """The row of ``commit``, with its ``state``, ``changes`` and ``state_depth`` columns."""
    db.execute(
        f"INSERT INTO commits ({_COMMIT_COLUMNS}, changes, state_depth) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (commit.id, commit.notebook_id, commit.parent, commit.cell_run_id, full, commit.message, commit.kind,
         commit.created, commit.code, commit.bytes_added, commit.seq, changes, depth),
    )


def _cell_run_from_row(row: tuple) -> CellRun:
    return CellRun(
        row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), json.loads(row[7]), json.loads(row[8]), row[9], row[10],
        json.loads(row[11]), json.loads(row[12]) if row[12] else None,
    )


def _is_corruption(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("malformed", "not a database", "corrupt", "disk image"))


def _owner_only(path: Path) -> None:
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def _parse_state(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in json.loads(text).items()}


def _commit_id(notebook_id: str, parent: str | None, seq: int, now: float) -> str:
    import hashlib

    text = f"{notebook_id}\0{parent}\0{seq}\0{now!r}\0{os.getpid()}\0{os.urandom(8).hex()}"
    return hashlib.sha1(text.encode()).hexdigest()
