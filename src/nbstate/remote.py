"""A store at an fsspec URL (``s3://bucket/prefix``, ``gs://...``, any fsspec protocol): a local
working copy, mirrored to the URL after every commit.

SQLite cannot run on an object store, and a kernel must not wait for the network on every cell.
So the store is an ordinary local store in a cache directory (``$XDG_CACHE_HOME/nbstate/remote/
<id>``), and a ``Mirror`` copies what changed to the URL in a background thread after each
commit. What lies at the URL (docs/FORMAT.md, "Stores at a URL"):

* ``packs/<pack name>/<offset>``: the bytes a pack file gained since the last upload, one object
  per upload (packs are append-only, so a pack is the concatenation of its segments);
* ``db/<generation>.sqlite.zst``: a snapshot of the database, taken with SQLite's backup API;
* ``nbstate-remote.json``: the manifest, written last: generation, the database snapshot and
  every pack's segments. A reader that reads the manifest finds everything it names.

One kernel writes a URL store at a time. A mirror that finds a manifest it did not write (another
kernel wrote the URL meanwhile) stops mirroring, says so once, and keeps recording locally:
nothing is overwritten and nothing is lost. Opening a URL store brings the local copy up to date
first (segments not yet here, the newest database), unless the local copy has commits the URL
lacks and the URL has commits it lacks, which is refused with what to do.

Never raises into the user's cell (the recorder guards ``schedule``); never imports IPython.
Credentials come from fsspec's usual places and are never written: URLs are shown redacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .store import StoreError

MANIFEST = "nbstate-remote.json"
SYNC_STATE = "remote-sync.json"  # in the local copy: what the URL holds, as this copy last saw it
REMOTE_FORMAT = 1


def is_url(location: str) -> bool:
    """Whether ``location`` names a store at a URL (and not a local path)."""
    head, sep, _ = location.partition("://")
    return bool(sep) and head.isidentifier() and head.lower() not in ("file", "local")


def _redact(url: str) -> str:
    from .bundle import redact

    return redact(url)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "nbstate" / "remote"


def local_copy(url: str) -> Path:
    """The local working copy of the store at ``url`` (the same for every kernel of this user)."""
    key = hashlib.sha256(_redact(url).rstrip("/").encode()).hexdigest()[:20]
    return cache_root() / key


class Remote:
    """The objects of one URL store, through fsspec."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec is a dependency
            raise StoreError("a store at a URL needs fsspec: pip install fsspec") from None
        self.url = url.rstrip("/")
        self.shown = _redact(self.url)
        try:
            self.fs, self.path = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            hint = " (for s3://: pip install 'nbstate[s3]')" if self.url.startswith("s3") else ""
            raise StoreError(f"cannot use the store at {self.shown}: {exc}{hint}") from None
        self.path = self.path.rstrip("/")

    def key(self, name: str) -> str:
        return f"{self.path}/{name}"

    def manifest(self) -> dict[str, Any] | None:
        try:
            data = self.fs.cat_file(self.key(MANIFEST))
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - every back end has its own errors
            raise StoreError(f"cannot read the store at {self.shown}: {type(exc).__name__}: {_redact(str(exc))}") from None
        try:
            found = json.loads(data)
        except ValueError:
            raise StoreError(f"the store at {self.shown} has a damaged {MANIFEST}") from None
        if not isinstance(found, dict) or found.get("kind") != "nbstate-remote-store":
            raise StoreError(f"{self.shown} holds a {MANIFEST} that is not an nbstate store's")
        if int(found.get("format", 0)) > REMOTE_FORMAT:
            raise StoreError(f"the store at {self.shown} was written by a newer nbstate (remote format {found['format']}): pip install -U nbstate")
        return found

    def put(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self.key(name), data)

    def get(self, name: str) -> bytes:
        return self.fs.cat_file(self.key(name))

    def remove(self, names: list[str]) -> None:
        for name in names:
            try:
                self.fs.rm_file(self.key(name))
            except (FileNotFoundError, OSError):
                pass


def _read_sync_state(root: Path) -> dict[str, Any]:
    try:
        return json.loads((root / SYNC_STATE).read_text())
    except (OSError, ValueError):
        return {}


def _write_sync_state(root: Path, state: dict[str, Any]) -> None:
    tmp = root / (SYNC_STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, root / SYNC_STATE)


def _local_generation(root: Path) -> str:
    """What the local database holds, in a few numbers (commits, sessions, ref moves, refs), to
    tell whether the local copy has changes the URL lacks."""
    db = root / "nbstate.sqlite"
    if not db.exists():
        return ""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("commits", "sessions", "reflog")]
        refs = con.execute("SELECT * FROM refs ORDER BY 1, 2, 3").fetchall() + con.execute("SELECT * FROM heads ORDER BY 1").fetchall()
        return "/".join(map(str, counts)) + "/" + hashlib.sha256(repr(refs).encode()).hexdigest()[:16]
    except sqlite3.Error:
        return ""
    finally:
        con.close()


def pull(url: str, for_writing: bool) -> Path:
    """Bring the local copy of ``url`` up to date and return its directory (created when the
    URL holds no store yet and ``for_writing``)."""
    remote = Remote(url)
    root = local_copy(url)
    manifest = remote.manifest()
    if manifest is None:
        if not for_writing:
            raise StoreError(f"no nbstate store at {remote.shown} ({MANIFEST} is missing)")
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return root
    state = _read_sync_state(root)
    seen = state.get("generation")
    if seen == manifest["generation"] and (root / "nbstate.sqlite").exists():
        return root  # nothing new at the URL (the local copy may be ahead: the mirror sends it)
    local_ahead = seen is not None and state.get("local_mark") != _local_generation(root)
    if local_ahead:
        raise StoreError(
            f"the store at {remote.shown} has commits this machine's copy ({root}) lacks, and the copy has commits the "
            "URL lacks (two kernels wrote it at once). Nothing was changed. Export the local copy "
            f"(`nbstate export --store {root} DEST`) and move it aside, then open the URL again."
        )
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    packs = root / "objects" / "packs"
    packs.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, segments in manifest["packs"].items():
        path = packs / name
        have = path.stat().st_size if path.exists() else 0
        total = sum(n for _, n in segments)
        if have > total:  # not what the URL has: start again
            path.unlink()
            have = 0
        offset = 0
        with open(path, "ab") as f:
            os.chmod(path, 0o600)
            for start, n in segments:
                if start + n <= have:
                    offset = start + n
                    continue
                data = remote.get(f"packs/{name}/{start:016x}")
                if len(data) != n or start != offset:
                    raise StoreError(f"the store at {remote.shown} is damaged: segment {start} of {name} has {len(data)} bytes, not {n}")
                if start < have:  # a local copy cut within a segment
                    data = data[have - start :]
                f.write(data)
                offset = start + n
    for stale in packs.glob("*.pack"):
        if stale.name not in manifest["packs"]:
            stale.unlink()
    import zstandard

    snapshot = zstandard.ZstdDecompressor().decompress(remote.get(manifest["db"]))
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".db-")
    with os.fdopen(fd, "wb") as f:
        f.write(snapshot)
    for suffix in ("-wal", "-shm"):
        try:
            os.unlink(root / f"nbstate.sqlite{suffix}")
        except FileNotFoundError:
            pass
    os.replace(tmp, root / "nbstate.sqlite")
    os.chmod(root / "nbstate.sqlite", 0o600)
    _remember(root, remote, manifest, _local_generation(root))
    return root


def _remember(root: Path, remote: Remote, manifest: dict[str, Any], mark: str, older_db: str | None = None) -> None:
    """Record in the local copy that the URL holds ``manifest`` and the copy's database ``mark``."""
    _write_sync_state(
        root,
        {"url": remote.shown, "generation": manifest["generation"], "writer": manifest.get("writer"), "segments": manifest["packs"],
         "db": manifest["db"], "older_db": older_db, "local_mark": mark},
    )


class Mirror:
    """Copies a local store's changes to its URL, in a background thread, after each commit."""

    def __init__(self, url: str, root: Path) -> None:
        self.remote = Remote(url)
        self.root = root
        self.writer = secrets.token_hex(8)
        self.error: str | None = None  # why mirroring stopped for good
        self.failed: str | None = None  # why the last attempt failed (the next cell tries again)
        self.last_push: float | None = None
        self._wanted = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- the recorder's side ---------------------------------------------------------------------

    def schedule(self) -> None:
        """Ask for a push soon (returns at once)."""
        if self.error is not None:
            return
        self._idle.clear()
        self._wanted.set()
        if self._thread is None or not self._thread.is_alive():
            if self._thread is None:
                import atexit

                atexit.register(self.flush, 30.0)  # a kernel that exits sends its last commits first
            self._thread = threading.Thread(target=self._run, name="nbstate-mirror", daemon=True)
            self._thread.start()

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until what was scheduled has reached the URL; False on timeout or failure."""
        if self._thread is None:
            return self.error is None
        return self._idle.wait(timeout) and self.error is None and self.failed is None

    def describe(self) -> str:
        if self.error:
            return f"mirror to {self.remote.shown} stopped: {self.error}"
        when = "not yet" if self.last_push is None else time.strftime("%H:%M:%S", time.localtime(self.last_push))
        pending = "" if self._idle.is_set() else " (sending)"
        failed = f"; the last attempt failed: {self.failed}" if self.failed else ""
        return f"mirrored to {self.remote.shown}, last sent {when}{pending}{failed}"

    # --- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                self.push()
                self.failed = None
            except Exception as exc:  # noqa: BLE001 - a network that fails must not stop the kernel
                first = self.failed is None
                self.failed = f"{type(exc).__name__}: {_redact(str(exc))}"
                if first:
                    _say(
                        f"nbstate: could not send the store to {self.remote.shown} ({self.failed}). "
                        f"Commits are kept in {self.root}; the next cell tries again."
                    )
            finally:
                if not self._wanted.is_set():
                    self._idle.set()

    def push(self) -> None:
        """Send what changed: new pack bytes, then a database snapshot, then the manifest."""
        import zstandard

        with self._lock:
            state = _read_sync_state(self.root)
            current = self.remote.manifest()
            if current is not None and current.get("generation") != state.get("generation"):
                self.error = (
                    f"another kernel wrote {self.remote.shown} (generation {current.get('generation')}; this copy knew "
                    f"{state.get('generation')}): this kernel goes on recording in {self.root} only"
                )
                _say(f"nbstate: {self.error}. `nbstate export --store {self.root} DEST` saves its history.")
                return
            segments: dict[str, list[list[int]]] = {k: [list(s) for s in v] for k, v in state.get("segments", {}).items()}
            # the database first, so that every pack byte it names is in the packs listed below
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".snapshot-")
            os.close(fd)
            try:
                src = sqlite3.connect(f"file:{self.root / 'nbstate.sqlite'}?mode=ro", uri=True, timeout=30)
                dst = sqlite3.connect(tmp)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
                    src.close()
                snapshot = Path(tmp).read_bytes()
            finally:
                os.unlink(tmp)
            mark = _local_generation(self.root)
            packs = self.root / "objects" / "packs"
            present = {p.name: p.stat().st_size for p in packs.glob("*.pack")} if packs.is_dir() else {}
            for name, size in sorted(present.items()):
                have = sum(n for _, n in segments.get(name, ()))  # segments run from offset 0 without gaps
                if size < have:  # rewritten under the same name: send it again
                    segments[name], have = [], 0
                if size == have:
                    continue
                with open(packs / name, "rb") as f:
                    f.seek(have)
                    data = f.read(size - have)
                self.remote.put(f"packs/{name}/{have:016x}", data)
                segments.setdefault(name, []).append([have, len(data)])
            gone = [name for name in segments if name not in present]
            generation = int(state.get("generation") or 0) + 1
            db_name = f"db/{generation:08d}-{self.writer}.sqlite.zst"
            self.remote.put(db_name, zstandard.ZstdCompressor(level=3).compress(snapshot))
            manifest = {
                "kind": "nbstate-remote-store",
                "format": REMOTE_FORMAT,
                "generation": generation,
                "writer": self.writer,
                "written": time.time(),
                "db": db_name,
                "packs": {k: v for k, v in segments.items() if k not in gone},
            }
            self.remote.put(MANIFEST, json.dumps(manifest, indent=1).encode())
            # What the previous manifest named and this one does not: a reader that read the old
            # one just before may still want it, so the one before the previous goes.
            old_db = state.get("db")
            if state.get("older_db"):
                self.remote.remove([state["older_db"]])
            self.remote.remove([f"packs/{name}/{start:016x}" for name in gone for start, _ in segments[name]])
            _remember(self.root, self.remote, manifest, mark, older_db=old_db)
            self.last_push = time.time()


def _say(text: str) -> None:
    import sys

    try:
        print(text, file=sys.stderr)
    except Exception:  # noqa: BLE001
        pass
