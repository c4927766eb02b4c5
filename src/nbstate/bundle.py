"""Export a state to a self-contained bundle, and bring a bundle into another store.

A bundle is a store of its own (the same format, docs/FORMAT.md) plus ``bundle.json``: the
commits on the path to the exported state (all commits with ``history``), the cells needed to
replay, and the bytes of the versions worth shipping (a plan decides, given the bandwidth).
It can live in a directory, in one ``.nbstate`` file (a tar archive), or under an fsspec URL
such as ``s3://bucket/prefix``. Importing copies it into the local store and checks out its
state there, so time travel goes on. Never imports IPython.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .plan import Infeasible, Plan, replay_all_seconds
from .store import (
    BYTES_LEFT_OUT,
    FORMAT_VERSION,
    Commit,
    Store,
    StoreError,
    manifest_chunks,
)

if TYPE_CHECKING:
    import tarfile

BUNDLE_FILE = "bundle.json"
BUNDLE_KIND = "nbstate-bundle"


class BundleError(Exception):
    """A bundle that cannot be written, read or used here; the message says what to do."""


class UntrustedBundleError(BundleError):
    """A bundle the user's key did not sign as it is (see trust.py); ``--trust`` imports it anyway."""


@dataclass
class ImportCheck:
    """What the destination lacks for a bundle, found before anything is changed."""

    missing_packages: dict[str, str] = field(default_factory=dict)  # module -> version recorded
    missing_files: dict[str, str] = field(default_factory=dict)  # path -> cell that reads it
    python_changed: bool = False
    notes: list[str] = field(default_factory=list)


# --- where bundles live ---------------------------------------------------------------------------


def _is_url(dest: str) -> bool:
    return "://" in dest and not dest.startswith("file://")


def redact(location: str) -> str:
    """``location`` without credentials: a URL's user:password@ and secret-looking query values."""
    import re
    import urllib.parse

    if "://" not in location:
        return location
    try:
        parts = urllib.parse.urlsplit(location)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//", location)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(
        f"{k}=***" if re.search(r"key|secret|token|pass|sig|cred", k, re.I) else f"{k}={v}"
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check_location(location: str) -> None:
    """Refuse a location that looks like a URL but is not one nbstate can use (``s3:/bucket``), or
    is empty, before anything is written where the user did not mean."""
    import re

    if not location.strip():
        raise BundleError("no location given: name a directory, a FILE.nbstate or a URL such as s3://bucket/prefix")
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):(//)?", location)
    if m is None or m.group(1).lower() == "file":
        return
    scheme = m.group(1).lower()
    try:
        import fsspec

        known = scheme in fsspec.available_protocols()
    except ImportError:  # pragma: no cover - fsspec is a dependency
        known = scheme in ("s3", "gs", "gcs", "az", "abfs", "http", "https", "memory")
    if known and not m.group(2):
        raise BundleError(f"{redact(location)} is not a URL nbstate can use: write {scheme}://bucket/prefix, with two slashes")
    if m.group(2) and not known:
        raise BundleError(
            f"{redact(location)}: nbstate does not know the scheme {scheme}://; use a local path, a FILE.nbstate, "
            "or an fsspec URL such as s3://bucket/prefix"
        )


@contextmanager
def _remote(location: str, doing: str) -> Iterator[None]:
    """Turn what fsspec and its back ends raise into a BundleError that names no secret."""
    try:
        yield
    except BundleError:
        raise
    except ImportError as exc:
        scheme = location.split("://", 1)[0]
        hint = "pip install 'nbstate[s3]'" if scheme in ("s3", "s3a") else f"install the fsspec package for {scheme}://"
        raise BundleError(f"cannot {doing} {redact(location)}: {exc} ({hint})") from None
    except Exception as exc:
        text = str(exc).replace(location, redact(location))
        raise BundleError(f"cannot {doing} {redact(location)}: {type(exc).__name__}: {text}") from None


# Where an import unpacks or downloads a bundle inside the store (``opened(scratch=...)``); gc
# removes any a killed kernel left behind.
SCRATCH_PREFIX = "import-"
SCRATCH_SUFFIX = ".tmp"


def _scratch_dir(scratch: Path | None) -> Path:
    """A new private directory to unpack a bundle into: under ``scratch`` (the importing store's
    root, so that its packs lie on the store's file system and can be linked rather than copied)
    where that works, else the system's temporary directory."""
    if scratch is not None:
        try:
            return Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, suffix=SCRATCH_SUFFIX, dir=scratch))
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="nbstate-import-"))


def _private(root: Path) -> None:
    """Files of a bundle fetched here are this user's alone (a download gets the umask's mode),
    as the store's own are: then copy_from may link its packs."""
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            p.chmod(0o600)


@contextmanager
def _local_copy(src: str, scratch: Path | None = None) -> Iterator[Path]:
    """A local directory holding the bundle at ``src`` (a directory, a .nbstate file or a URL);
    one fetched or unpacked is put under ``scratch`` where it can be (see _scratch_dir)."""
    check_location(src)
    if _is_url(src):
        tmp = _scratch_dir(scratch)
        try:
            with _remote(src, "read the bundle at"):
                import fsspec

                fs, root = fsspec.core.url_to_fs(src)
                if not fs.exists(f"{root.rstrip('/')}/{BUNDLE_FILE}"):
                    raise BundleError(f"no nbstate bundle at {redact(src)} ({BUNDLE_FILE} is missing)")
                fs.get(root.rstrip("/") + "/", str(tmp) + "/", recursive=True)
            _private(tmp)
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    path = Path(src.removeprefix("file://")).expanduser()
    if path.is_file():
        import tarfile  # only for bundle files: not imported with the extension

        tmp = _scratch_dir(scratch)
        try:
            try:
                with tarfile.open(path) as tar:
                    tar.extractall(tmp, filter="data") if sys.version_info >= (3, 12) else _safe_extract(tar, tmp)
            except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
                raise BundleError(f"{path} is not an nbstate bundle file, or it is damaged: {type(exc).__name__}: {exc}") from None
            _private(tmp)
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if not (path / BUNDLE_FILE).is_file():
        raise BundleError(f"no nbstate bundle at {path} ({BUNDLE_FILE} is missing): export one with `%nbstate export DEST`")
    yield path


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    root = dest.resolve()
    for member in tar.getmembers():
        target = (dest / member.name).resolve()
        if not (member.isfile() or member.isdir()) or root not in (target, *target.parents):
            raise BundleError(f"the bundle holds an unsafe entry {member.name!r}; refusing to extract it")
    tar.extractall(dest)


def _publish(built: Path, dest: str) -> str:
    """Move a bundle built in a temporary directory to ``dest``; returns where it went."""
    if _is_url(dest):
        with _remote(dest, "write the bundle to"):
            import fsspec

            fs, root = fsspec.core.url_to_fs(dest)
            fs.put(str(built) + "/", root.rstrip("/") + "/", recursive=True)
        return redact(dest)
    path = Path(dest.removeprefix("file://")).expanduser()
    if path.suffix == ".nbstate":
        import tarfile

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tarfile.open(tmp, "w") as tar:  # blobs are compressed already
            for item in sorted(built.rglob("*")):
                tar.add(item, arcname=str(item.relative_to(built)), recursive=False)
        os.replace(tmp, path)
        return str(path)
    if path.exists() and any(path.iterdir()):
        raise BundleError(f"{path} exists and is not empty: export into a new directory, or a DEST.nbstate file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.rmdir()
    shutil.move(str(built), str(path))
    return str(path)


# --- copying history between stores ---------------------------------------------------------------


def copy_history(
    src: Store, dst: Store, commits: list[Commit], notebook: str, blob_versions: set[int] | None,
    inserted: dict[str, list[Any]] | None = None, verified: bool = False,
) -> dict[int, int]:
    """Copy ``commits`` (parents first) with their cell runs and versions into ``dst`` under
    ``notebook``; blobs only of the versions in ``blob_versions`` (None: all). Commits ``dst``
    already has are skipped. Returns the map of version ids, source -> destination; the rows
    written are listed in ``inserted`` when given (for ``forget_history``). ``verified``: the
    source's pack files are known to be as their writer made them (a bundle whose signature
    covers them), so blobs are copied without decoding each to check its hash, and where the
    file systems allow, the source's pack files are hard-linked rather than copied."""
    inserted = inserted if inserted is not None else {}
    for key in ("commits", "runs", "versions", "run_pairs"):
        inserted.setdefault(key, [])
    version_ids: dict[int, int] = {}
    run_ids: dict[int, int] = {}
    have = {r[0] for r in dst.db.execute("SELECT id FROM commits")}
    all_vids = sorted({vid for c in commits for vid in c.state.values()})
    versions = src.versions(all_vids)
    blobs_to_copy: set[str] = set()
    with dst.writing(), dst.transaction() as db:
        db.execute("INSERT OR IGNORE INTO notebooks VALUES (?, NULL, ?)", (notebook, time.time()))
        db.execute("INSERT OR IGNORE INTO heads VALUES (?, 'main', NULL)", (notebook,))
        for c in commits:
            if c.id in have:
                for n, vid in dst.commit(c.id).state.items():
                    version_ids.setdefault(c.state.get(n, -1), vid)
                continue
            run_id = None
            if c.cell_run_id is not None:
                run_id = run_ids.get(c.cell_run_id)
                if run_id is None:
                    run = src.cell_run(c.cell_run_id)
                    db.execute(
                        "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, NULL, NULL, NULL, NULL)",
                        (run.session_id, notebook, run.started),
                    )
                    run_id = db.execute(
                        "INSERT INTO cell_runs (session_id, execution_count, code, started, duration, reads, writes, deletes, error, capture_seconds, examined, randomness) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run.session_id, run.execution_count, run.code, run.started, run.duration, json.dumps(run.reads),
                         json.dumps(run.writes), json.dumps(run.deletes), run.error, run.capture_seconds, json.dumps(run.examined),
                         json.dumps(run.randomness) if run.randomness else None),
                    ).lastrowid
                    run_ids[c.cell_run_id] = run_id
                    inserted["runs"].append(run_id)
                    inserted["run_pairs"].append((c.cell_run_id, run_id))  # (source, destination)
            for vid in sorted(set(c.state.values())):
                if vid in version_ids:
                    continue
                v = versions[vid]
                produced = run_ids.get(v.cell_run_id) if v.cell_run_id is not None else None
                version_ids[vid] = db.execute(
                    "INSERT INTO var_versions (names, fingerprint, manifest, size, serializable, reason, types, cell_run_id) VALUES (?,?,?,?,?,?,?,?)",
                    (json.dumps(v.names), v.fingerprint, json.dumps(v.manifest) if v.manifest else None, v.size,
                     int(v.serializable), v.reason, json.dumps(v.types), produced),
                ).lastrowid
                inserted["versions"].append(version_ids[vid])
                if blob_versions is None or vid in blob_versions:
                    blobs_to_copy.update(manifest_chunks(v.manifest))
            if c.code:
                blobs_to_copy.add(c.code)
            parent = c.parent if c.parent in have or any(p.id == c.parent for p in commits) else None
            seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM commits").fetchone()[0]
            state = {n: version_ids[vid] for n, vid in c.state.items()}
            dst.insert_commit(db, Commit(c.id, notebook, parent, run_id, c.message, c.kind, c.created, c.code, c.bytes_added, seq), state)
            have.add(c.id)
            inserted["commits"].append(c.id)
        # The chunks of each version just written that could be loaded, and (looked up once for
        # them and the blobs to copy) what their patches patch, transitively.
        new = set(inserted["versions"])
        chunks = {version_ids[vid]: set(manifest_chunks(v.manifest)) for vid, v in versions.items() if version_ids.get(vid) in new and v.loadable}
        bases = src.blobs.bases_of(blobs_to_copy.union(*chunks.values()))
        blobs_to_copy = _with_bases(blobs_to_copy, bases)  # a patch travels with what it patches
        # Blobs the source lacks (versions whose bytes were not shipped) are left out.
        present = src.blobs.locate(sorted(blobs_to_copy))
        _mark_bytes_left_out(db, dst, {vid: _with_bases(hs, bases) for vid, hs in chunks.items()}, present)
        written = dst.blobs.copy_from(src.blobs, sorted(present), verify=not verified, link=verified)
        dst.blobs.sync()  # on disk before the rows that name them commit
        db.executemany(
            "INSERT OR IGNORE INTO blobs (hash, size, stored_size, codec, pack, pack_offset) VALUES (?, ?, ?, ?, ?, ?)",
            [(w.hash, w.size, w.stored_size, w.codec, w.pack, w.offset) for w in written],
        )
    dst.blobs.committed(written)
    return version_ids


def _with_bases(hashes: set[str], bases: dict[str, str]) -> set[str]:
    """``hashes`` and what their patches patch, transitively (``bases``: from bases_of)."""
    out = set(hashes)
    edge = out
    while edge := {bases[h] for h in edge if h in bases} - out:
        out |= edge
    return out


def _mark_bytes_left_out(db: Any, dst: Store, needed: dict[int, set[str]], present: dict[str, Any]) -> None:
    """Give the versions just written (``dst`` ids -> the chunks a load of each reads) whose
    bytes do not come along (an export's plan did not ship them, or the bundle they come from
    lacks them) and that ``dst`` does not hold already the reason BYTES_LEFT_OUT: planners then
    replay their cells rather than try a load, gc keeps those cells, and fsck does not report
    their blobs as lost."""
    left_out: list[int] = []
    for vid, hashes in needed.items():
        missing = [h for h in hashes if h not in present]
        if missing and len(dst.blobs.locate(missing)) < len(missing):
            left_out.append(vid)
    for start in range(0, len(left_out), 500):
        part = left_out[start : start + 500]
        db.execute(f"UPDATE var_versions SET reason=? WHERE id IN ({','.join('?' * len(part))})", [BYTES_LEFT_OUT, *part])


def forget_history(dst: Store, inserted: dict[str, list[Any]], notebook: str) -> None:
    """Take back the rows ``copy_history`` wrote (an import that could not be restored); the
    blobs it copied stay, named by nothing, until ``nbstate gc``."""
    with dst.transaction() as db:
        for table, column, key in (("commits", "id", "commits"), ("var_versions", "id", "versions"), ("cell_runs", "id", "runs")):
            keys = inserted.get(key, [])
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                db.execute(f"DELETE FROM {table} WHERE {column} IN ({','.join('?' * len(part))})", part)
        if not db.execute("SELECT 1 FROM commits WHERE notebook_id=? LIMIT 1", (notebook,)).fetchone():
            db.execute("DELETE FROM refs WHERE notebook_id=?", (notebook,))


# --- export ---------------------------------------------------------------------------------------


def parse_bandwidth(text: str | None) -> float | None:
    """'100MB/s' -> bytes per second (None when not given)."""
    if not text:
        return None
    t = text.strip().upper().removesuffix("/S")
    units = {"GB": 1e9, "MB": 1e6, "KB": 1e3, "GIB": 2**30, "MIB": 2**20, "KIB": 2**10, "B": 1}
    for unit, factor in units.items():
        if t.endswith(unit):
            try:
                return float(t[: -len(unit)]) * factor
            except ValueError:
                break
    raise BundleError(f"cannot read the bandwidth {text!r}: write it like 100MB/s or 1GB/s")


def export(store: Store, notebook: str, ref_commit: str, dest: str, history: bool = False, bandwidth: float | None = None) -> dict[str, Any]:
    """Write the state of ``ref_commit`` (and its past, or the whole history) to ``dest``."""
    from . import trust
    from .timetravel import History, plan_for

    check_location(dest)
    target = store.commit(ref_commit)
    chain = list(store.ancestors(target.id))[::-1]
    commits = store.commits(notebook)[::-1] if history else chain
    planner = History(store, bandwidth=bandwidth)
    targets = sorted(set(target.state.values()))
    try:
        plan = plan_for(planner, targets)
    except Infeasible as exc:
        raise BundleError(f"the state of {target.id[:8]} cannot be exported: {exc}") from None
    ship = None if history else set(plan.load) | {t for t in targets if _must_ship(planner, t, plan)}
    built = Path(tempfile.mkdtemp(prefix="nbstate-export-"))
    try:
        bundle_store = Store(built)
        try:
            copy_history(store, bundle_store, commits, notebook, ship)
            bundle_store.keep_read_rate(planner.throughput)
            if history:
                for kind in ("branch", "tag"):
                    for name, where in store.refs(notebook, kind).items():
                        bundle_store.set_ref(notebook, kind, name, where)
            else:
                bundle_store.set_ref(notebook, "branch", "main", target.id)
        finally:
            bundle_store.close()
        for suffix in ("-wal", "-shm"):
            (built / f"nbstate.sqlite{suffix}").unlink(missing_ok=True)
        manifest = {
            "kind": BUNDLE_KIND,
            "format_version": FORMAT_VERSION,
            "nbstate": __version__,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}",
            "platform": sys.platform,
            "created": time.time(),
            "notebook": notebook,
            "commit": target.id,
            "history": history,
            "packages": _package_versions(_modules_needed(store, chain, target)),
            "plan": {"load": len(plan.load), "replay": len(plan.replay), "estimated_seconds": plan.seconds},
        }
        # Signed with the user's key (made on the first export), so that their imports trust it.
        manifest[trust.SIGNATURE_FIELD] = trust.sign(built, manifest, trust.load_key(create=True))
        (built / BUNDLE_FILE).write_text(json.dumps(manifest, indent=1))
        where = _publish(built, dest)
    finally:
        shutil.rmtree(built, ignore_errors=True)
    manifest["dest"] = where
    return manifest


def _must_ship(history: Any, vid: int, plan: Plan) -> bool:
    """Versions whose bytes are here and whose cell is not replayed go in the bundle as bytes;
    so do those holding notebook functions or classes (or naming them), whatever is replayed:
    what a replay makes of those is bound to the replay's namespace (see timetravel._obtain)."""
    from .timetravel import bound_by_replay

    v = history.version(vid)
    return v.loadable and (v.cell_run_id not in plan.replay or bound_by_replay(v))


def _modules_needed(store: Store, chain: list[Commit], target: Commit) -> set[str]:
    """Top-level modules the state's objects come from, and those its cells import."""
    modules: set[str] = set()
    for v in store.versions(sorted(set(target.state.values()))).values():
        for t in v.types.values():
            head = t.split(" ")[0].split("[")[0]
            if "." in head:
                modules.add(head.split(".")[0])
            elif head == "module":
                pass
    for c in chain:
        if c.cell_run_id is not None:
            modules |= imports_of(store.cell_run(c.cell_run_id).code)
    return {m for m in modules if m and m not in sys.builtin_module_names and m != "__main__"}


def imports_of(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


# Top-level modules whose distribution has another name, among those notebooks import most.
_DISTRIBUTION_OF = {
    "sklearn": "scikit-learn", "PIL": "pillow", "yaml": "PyYAML", "bs4": "beautifulsoup4", "skimage": "scikit-image",
    "cv2": "opencv-python", "dateutil": "python-dateutil", "attr": "attrs", "google": "protobuf",
}


def _package_versions(modules: set[str]) -> dict[str, str]:
    """``distribution==version`` per top-level module ("" for the standard library and modules
    of no distribution). Looked up by name first: scanning every installed distribution's files
    (``packages_distributions``) takes a second in a large environment, so it is done only for
    the modules that lookup misses, once per process."""
    out = {}
    for m in sorted(modules):
        if m in getattr(sys, "stdlib_module_names", ()) or m in sys.builtin_module_names:
            out[m] = ""
            continue
        out[m] = _version_of(_DISTRIBUTION_OF.get(m, m)) or next(
            (v for dist in _distributions_scan().get(m, []) if (v := _version_of(dist))), ""
        )
    return out


def _version_of(dist: str) -> str:
    import importlib.metadata  # (only an export needs it: imported then, not with the extension)

    try:
        return f"{dist}=={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.lru_cache(maxsize=1)
def _distributions_scan() -> dict[str, list[str]]:
    import importlib.metadata

    return importlib.metadata.packages_distributions()


# --- import ---------------------------------------------------------------------------------------


def read_manifest(root: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((root / BUNDLE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"the bundle's {BUNDLE_FILE} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != BUNDLE_KIND:
        raise BundleError(f"{root} is not an nbstate bundle ({BUNDLE_FILE} does not say it is one)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _malformed("format_version")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"the bundle has format version {version}, newer than this nbstate "
            f"understands ({FORMAT_VERSION}): upgrade nbstate where you import (pip install -U nbstate)"
        )
    import re

    checks = {
        "commit": lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{40}", v),
        "notebook": lambda v: isinstance(v, str) and v,
        "python": lambda v: isinstance(v, str) and re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", v),
        "history": lambda v: isinstance(v, bool),
        "packages": lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()),
    }
    for key, ok in checks.items():
        if key in manifest or key in ("commit", "notebook"):
            if not ok(manifest.get(key)):
                raise _malformed(key)
    return manifest


def _malformed(key: str) -> BundleError:
    return BundleError(
        f"the bundle's {BUNDLE_FILE} is malformed (its {key!r} is missing or not what nbstate writes): "
        "it was edited or not made by nbstate; export it again"
    )


def check(manifest: dict[str, Any], bundle_store: Store, cwd: Path) -> ImportCheck:
    """What this machine lacks for the bundle (packages, data files, the same Python)."""
    result = ImportCheck()
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    there = ".".join(str(manifest.get("python", "")).split(".")[:2])
    if there and there != here:
        result.python_changed = True
        result.notes.append(f"made with Python {there}, importing into {here}: notebook functions and classes are rebuilt by replay")
        if tuple(int(x) for x in there.split(".")) > tuple(int(x) for x in here.split(".")):
            result.notes.append(f"Python {here} is older than {there}: objects pickled there may not load here")
    for module, pin in manifest.get("packages", {}).items():
        if importlib.util.find_spec(module) is None:
            result.missing_packages[module] = pin
    to_import = [m for m in manifest.get("packages", {}) if m not in sys.modules and m not in result.missing_packages]
    if to_import:  # often most of a restore's time; an import's own duration cannot be known beforehand
        result.notes.append(f"the estimate leaves out importing {', '.join(sorted(to_import))} (not imported here yet)")
    target = bundle_store.commit(manifest["commit"])
    for c in bundle_store.ancestors(target.id):
        if c.cell_run_id is None:
            continue
        code = bundle_store.cell_run(c.cell_run_id).code
        first = code.strip().splitlines()[0][:60] if code.strip() else ""
        for path in files_read(code):
            if not (cwd / path).exists():
                result.missing_files.setdefault(path, first)
        for path in files_read(code, _CREATORS) - set(result.missing_files):
            if not (cwd / path).exists():
                result.notes.append(f"{path} is not here: if cell `{first}` is replayed, it starts from an empty {path}")
    return result


_READERS = frozenset({"open", "read_csv", "read_parquet", "read_json", "read_excel", "read_table", "load", "loadtxt", "genfromtxt", "fromfile", "read_feather", "imread", "read_pickle"})
# Calls that create their file when it is missing: replaying them works, on an empty file.
_CREATORS = frozenset({"connect"})


def files_read(code: str, calls: frozenset[str] = _READERS) -> set[str]:
    """Paths given as string literals to common file-reading calls in ``code``."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else ""
        first = node.args[0]
        if name in calls and isinstance(first, ast.Constant) and isinstance(first.value, str):
            value = first.value
            mode = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else "r"
            if name == "open" and isinstance(mode, str) and any(ch in mode for ch in "wax"):
                continue
            if value and value != ":memory:" and "://" not in value:
                found.add(value)
    return found


def open_bundle_store(root: Path) -> Store:
    """The bundle's store, opened read-only (the bundle itself is never changed)."""
    try:
        return Store(root, immutable=True)
    except StoreError as exc:
        raise BundleError(f"the bundle at {root} is damaged or incomplete: {exc}") from None


@contextmanager
def opened(src: str, trust: bool | None = False, scratch: Path | None = None) -> Iterator[tuple[dict[str, Any], Store, Path, str]]:
    """(manifest, read-only store, local directory, a line on its signature) of the bundle at
    ``src``. Unless ``trust``, the bundle must carry the user's signature (trust.py): otherwise
    UntrustedBundleError, before its database is even opened; ``trust=None`` only reports it.
    ``scratch``: where to unpack or download a bundle that is not a directory (the importing
    store's root)."""
    from . import trust as signing

    with _local_copy(src, scratch) as root:
        manifest = read_manifest(root)
        if trust:
            note = "signature: not checked (--trust)"
        else:
            try:
                note = signing.verify(root, manifest, redact(src))
            except signing.UntrustedBundle as exc:
                if trust is False:
                    raise UntrustedBundleError(str(exc)) from None
                note = f"not trusted: {exc}"
        store = open_bundle_store(root)
        try:
            try:
                store.commit(manifest["commit"])
            except (StoreError, sqlite3.Error) as exc:
                raise BundleError(f"the bundle at {redact(src)} is damaged or incomplete: {exc}") from None
            yield manifest, store, root, note
        finally:
            store.close()


def plan_import(manifest: dict[str, Any], bundle_store: Store, checked: ImportCheck, current: dict[str, int] | None = None) -> Plan:
    """The plan an import would follow (which versions load, which cells replay)."""
    from .timetravel import History, plan_for

    history = History(bundle_store, python_changed=checked.python_changed, check_blobs=True)  # (only some bytes are shipped)
    history.unreplayable.update(unreplayable_runs(bundle_store, manifest, checked))
    targets = sorted(set(bundle_store.commit(manifest["commit"]).state.values()))
    try:
        plan = plan_for(history, targets)
    except Infeasible as exc:
        raise BundleError(_explain_missing(checked) or str(exc)) from None
    if plan.replay_all_seconds is None:  # the plan shown compares itself with rerunning every cell
        plan.replay_all_seconds = replay_all_seconds(targets, history.version_node, history.cell_node)
    return plan


def unreplayable_runs(store: Store, manifest: dict[str, Any], checked: ImportCheck) -> dict[int, str]:
    """The bundle's cell runs (ids in ``store``) that cannot be replayed here, and why: they read
    a file or import a package this machine lacks. The import's plans leave them out."""
    out: dict[int, str] = {}
    if not checked.missing_files and not checked.missing_packages:
        return out
    for c in store.ancestors(manifest["commit"]):
        if c.cell_run_id is None:
            continue
        code = store.cell_run(c.cell_run_id).code
        if files_read(code) & set(checked.missing_files) or imports_of(code) & set(checked.missing_packages):
            out[c.cell_run_id] = "it needs a file or package missing here"
    return out


def _explain_missing(checked: ImportCheck) -> str:
    parts = []
    if checked.missing_packages:
        pins = " ".join(p or m for m, p in checked.missing_packages.items())
        parts.append(f"this kernel lacks the package(s) {', '.join(checked.missing_packages)}: `pip install {pins}`, then import again")
    if checked.missing_files:
        parts.append(
            "cells to replay read file(s) missing here: "
            + ", ".join(f"{p} (cell: {c})" for p, c in checked.missing_files.items())
            + " — copy them into this directory, or export with the bytes of those variables"
        )
    return "; ".join(parts)
