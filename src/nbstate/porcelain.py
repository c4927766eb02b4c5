"""One function per user-level verb, over a Store (and, for verbs that need it, a live Recorder).

Shells (the magics, the CLI) call these and only format what they return; no shell holds logic
another would need. Functions here never import IPython.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .store import Commit, Store


@dataclass
class LogEntry:
    commit: str
    short: str
    parent: str | None
    kind: str
    message: str | None
    execution_count: int | None
    created_at: float
    first_line: str
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_added: int = 0
    error: str | None = None
    duration: float | None = None
    capture_seconds: float | None = None
    examined: list[str] = field(default_factory=list)


def changed_names(c: Commit) -> tuple[list[str], list[str], list[str]]:
    """(created, changed, deleted) names of a commit against its parent, each sorted."""
    ch = c.changes
    return sorted(ch.created), sorted(ch.changed), sorted(ch.deleted)


def _first_line(code: str) -> str:
    for line in code.splitlines():
        if line.strip():
            return line.strip()
    return ""


def log(store: Store, notebook_id: str | None, limit: int | None = None) -> list[LogEntry]:
    """The history, newest first, with what each commit created, changed and deleted."""
    return log_entries(store, store.commits(notebook_id, limit=limit))


def log_from(store: Store, head: str, limit: int | None = None) -> list[LogEntry]:
    """``head`` and its ancestors, newest first (at most ``limit``): what ``log`` shows by default.
    Reads only the commits shown (and their parents), whatever the length of the history."""
    return log_entries(store, store.chain(head, limit))


def log_entries(store: Store, commits: list[Commit]) -> list[LogEntry]:
    """Log entries for ``commits``: their cell runs are read in a few batched queries."""
    runs = store.cell_runs([c.cell_run_id for c in commits if c.cell_run_id is not None])
    entries = []
    for c in commits:
        created, changed, deleted = changed_names(c)
        run = runs.get(c.cell_run_id) if c.cell_run_id is not None else None
        entries.append(
            LogEntry(
                commit=c.id,
                short=c.short,
                parent=c.parent,
                kind=c.kind,
                message=c.message,
                execution_count=run.execution_count if run else None,
                created_at=c.created,
                first_line=_first_line(run.code) if run else "",
                created=created,
                changed=changed,
                deleted=deleted,
                bytes_added=c.bytes_added,
                error=run.error if run else None,
                duration=run.duration if run else None,
                capture_seconds=run.capture_seconds if run else None,
                examined=run.examined if run else [],
            )
        )
    return entries


def positive_int(text: str) -> int:
    """An argparse type for counts (``log -n``, ``undo N``), with the shells' one message."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


# Without -n, the text and graph views show this many commits (and say when there are more);
# --json lists them all.
DEFAULT_LOG_LIMIT = 100


def log_text(session: Session, limit: int | None = None, all_branches: bool = False, graph: bool = False, as_json: bool = False) -> str:
    """``log`` as the shells print it."""
    if as_json:
        return format_log(session.log(limit, all_branches=all_branches), as_json=True)
    shown = limit if limit is not None else DEFAULT_LOG_LIMIT
    entries = session.log(shown + 1, all_branches=all_branches)
    more = len(entries) > shown
    entries = entries[:shown]
    text = format_graph(session, entries) if graph else format_log(entries, decorations=decorations(session))
    if more and limit is None:
        text += f"\n... older commits are not shown (these are the newest {shown}): `log -n N` shows N, `log --json` all of them"
    return text


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def format_log(entries: list[LogEntry], as_json: bool = False, decorations: dict[str, str] | None = None) -> str:
    decorations = decorations or {}
    if as_json:
        return json.dumps([asdict(e) for e in entries], indent=1)
    if not entries:
        return "No commits yet: run a cell."
    lines = []
    for e in entries:
        when = _dt.datetime.fromtimestamp(e.created_at).strftime("%H:%M:%S")
        count = f"[{e.execution_count}]" if e.execution_count is not None else "[ ]"
        title = e.message or e.first_line
        if len(title) > 48:
            title = title[:45] + "..."
        parts = []
        if e.created:
            parts.append("+" + ",".join(e.created))
        if e.changed:
            parts.append("~" + ",".join(e.changed))
        if e.deleted:
            parts.append("-" + ",".join(e.deleted))
        flag = " FAILED" if e.error else ""
        deco = f" ({decorations[e.commit]})" if e.commit in decorations else ""
        lines.append(f"{e.short} {count:>5} {when}  {title:<48} {' '.join(parts) or '(no change)'}  {human_bytes(e.bytes_added)}{flag}{deco}")
    return "\n".join(lines)


@dataclass
class Status:
    store: str
    notebook: str
    notebook_path: str | None
    session: str | None
    branch: str | None
    head: str | None
    commits: int
    stored_bytes: int
    variables: int
    not_serializable: dict[str, str]
    last_error: str | None
    mirror: str | None = None  # for a store at a URL: where it is copied and how far


def status(store: Store, notebook_id: str, live: Any = None) -> Status:
    """Where the store is, what HEAD is, and which variables cannot be stored (with why)."""
    branch, head = store.head(notebook_id)
    n_commits = store.db.execute("SELECT count(*) FROM commits WHERE notebook_id=?", (notebook_id,)).fetchone()[0]
    variables = 0
    not_serializable: dict[str, str] = {}
    if head is not None:
        commit = store.commit(head)
        variables = len(commit.state)
        not_serializable = store.unserializable(sorted(set(commit.state.values())))
    return Status(
        store=str(store.root),
        notebook=notebook_id,
        notebook_path=getattr(live, "notebook_path", None),
        session=getattr(live, "session_id", None),
        branch=branch,
        head=head,
        commits=n_commits,
        stored_bytes=store.stored_bytes(),
        variables=variables,
        not_serializable=dict(sorted(not_serializable.items())),
        last_error=getattr(live, "last_error", None),
        mirror=live.mirror.describe() if getattr(live, "mirror", None) is not None else None,
    )


def format_status(s: Status) -> str:
    lines = [
        f"store:     {s.store}",
        f"notebook:  {s.notebook}" + (f" ({s.notebook_path})" if s.notebook_path and s.notebook_path != s.notebook else ""),
        f"HEAD:      {(s.head or '(no commits)')[:8]}" + (f" on branch {s.branch}" if s.branch else " (detached)"),
        f"commits:   {s.commits}, {human_bytes(s.stored_bytes)} stored",
        f"variables: {s.variables}",
    ]
    if s.mirror:
        lines.append(f"mirror:    {s.mirror}")
    if s.session:
        lines.append(f"session:   {s.session[:12]}")
    if s.not_serializable:
        lines.append("not serializable (restored by replaying their cells):")
        lines.extend(f"  {n}: {why}" for n, why in s.not_serializable.items())
    if s.last_error:
        lines.append(f"last nbstate error: {s.last_error}")
    return "\n".join(lines)


def status_dict(s: Status) -> dict[str, Any]:
    return asdict(s)


# --- time travel ---------------------------------------------------------------------------------


@dataclass
class VariableDiff:
    name: str
    change: str  # "added" | "removed" | "changed"
    before: str | None
    after: str | None


@dataclass
class Diff:
    a: str
    b: str
    variables: list[VariableDiff]
    code: list[str]  # unified diff of the cells run on each side since their common ancestor

    def format(self) -> str:
        lines = [f"diff {self.a[:8]} {self.b[:8]}"]
        if not self.variables:
            lines.append("no variable differs")
        marks = {"added": "+", "removed": "-", "changed": "~"}
        for v in self.variables:
            detail = v.after if v.change == "added" else v.before if v.change == "removed" else f"{v.before}  ->  {v.after}"
            lines.append(f"{marks[v.change]} {v.name}: {detail}")
        if self.code:
            lines.append("")
            lines.extend(self.code)
        return "\n".join(lines)


def _preview(store: Store, version: Any, name: str, limit: int = 60) -> str:
    text = f"{version.types.get(name, '?')}, {human_bytes(version.size)}"
    if version.loadable and version.size <= 64_000:
        from .state import load_version

        try:
            value = load_version(store, version, {})[name]
            r = repr(value).replace("\n", " ")
            text += f", {r if len(r) <= limit else r[: limit - 3] + '...'}"
        except Exception:
            pass
    elif not version.serializable:
        text += " (not serializable)"
    elif version.reason:
        text += " (bytes not exported with it)"
    return text


def _cells_since(store: Store, ancestor: str | None, tip: str) -> list[str]:
    cells = []
    for c in store.ancestors(tip):
        if c.id == ancestor:
            break
        if c.cell_run_id is not None:
            cells.append(store.cell_run(c.cell_run_id).code)
    return cells[::-1]


def merge_base(store: Store, a: str, b: str) -> str | None:
    seen = {c.id for c in store.ancestors(a)}
    for c in store.ancestors(b):
        if c.id in seen:
            return c.id
    return None


def diff(store: Store, a: str, b: str) -> Diff:
    """Variables added, removed and changed from commit ``a`` to ``b``, and the code between."""
    import difflib

    ca, cb = store.commit(a), store.commit(b)
    versions = store.versions(sorted(set(ca.state.values()) | set(cb.state.values())))
    out = []
    for name in sorted(set(ca.state) | set(cb.state)):
        va, vb = ca.state.get(name), cb.state.get(name)
        if va == vb:
            continue
        change = "added" if va is None else "removed" if vb is None else "changed"
        out.append(
            VariableDiff(
                name,
                change,
                _preview(store, versions[va], name) if va is not None else None,
                _preview(store, versions[vb], name) if vb is not None else None,
            )
        )
    cells_a, cells_b = code_cells(store, ca), code_cells(store, cb)
    if cells_a is not None and cells_b is not None:
        left = [c["source"] for c in cells_a if c.get("cell_type") == "code"]
        right = [c["source"] for c in cells_b if c.get("cell_type") == "code"]
        labels = (f"notebook at {a[:8]}", f"notebook at {b[:8]}")
    else:
        base = merge_base(store, a, b)
        left, right = _cells_since(store, base, a), _cells_since(store, base, b)
        labels = (f"cells run to {a[:8]}", f"cells run to {b[:8]}")
    code = list(difflib.unified_diff("\n\n".join(left).splitlines(), "\n\n".join(right).splitlines(), *labels, lineterm=""))
    return Diff(a, b, out, code)


def code_cells(store: Store, commit: Commit) -> list[dict[str, str]] | None:
    """The notebook's cells as recorded with ``commit`` (None when no notebook was known)."""
    if commit.code is None:
        return None
    return json.loads(store.blobs.get(commit.code))


def decorations(session: Session) -> dict[str, str]:
    """commit id -> 'HEAD -> main, tag: v1' style labels."""
    labels: dict[str, list[str]] = {}
    branch, head = session.head()
    for name, target in session.branches().items():
        labels.setdefault(target, []).append(f"HEAD -> {name}" if name == branch else name)
    for name, target in session.tags().items():
        labels.setdefault(target, []).append(f"tag: {name}")
    if branch is None and head is not None:
        labels.setdefault(head, []).insert(0, "HEAD")
    return {k: ", ".join(v) for k, v in labels.items()}


def format_graph(session: Session, entries: list[LogEntry]) -> str:
    """The commit graph, newest first: one column per line of descent still open."""
    deco = decorations(session)
    columns: list[str] = []
    lines = []
    for e in entries:
        if e.commit not in columns:
            columns.append(e.commit)
        # Lines of descent that meet at this commit join it first, as in `git log --graph`.
        joining = [i for i, c in enumerate(columns) if c == e.commit][1:]
        for i in reversed(joining):
            lines.append("".join("|/" if j == i - 1 else "| " for j in range(len(columns) - 1)))
            columns.pop(i)
        col = columns.index(e.commit)
        row = "".join("* " if i == col else "| " for i in range(len(columns)))
        label = f" ({deco[e.commit]})" if e.commit in deco else ""
        lines.append(f"{row}{e.short} [{e.execution_count if e.execution_count is not None else ' '}] {(e.message or e.first_line)[:50]}{label}")
        if e.parent is None:
            columns.pop(col)
        else:
            columns[col] = e.parent
    return "\n".join(lines) or "No commits yet: run a cell."


class Session:
    """The verbs of nbstate on one notebook's history: offline over a store, or live in a kernel.

    ``Session()`` inside a kernel where nbstate is loaded binds to it; ``Session.open(path)``
    works on a store without a kernel (verbs that change a namespace then say so).
    """

    def __init__(self, recorder: Any = None, store: Store | None = None, notebook: str | None = None) -> None:
        if recorder is None and store is None:
            from IPython import get_ipython

            from . import recorder_of

            recorder = recorder_of(get_ipython()) if get_ipython() is not None else None
            if recorder is None:
                raise RuntimeError("nbstate is not loaded in this kernel: run `%load_ext nbstate`, or use Session.open(store_path)")
        self.recorder = recorder
        self.store: Store = store if store is not None else recorder.store
        self.notebook: str = notebook or (recorder.notebook_id if recorder is not None else "default")

    @classmethod
    def open(cls, path: str, notebook: str | None = None) -> Session:
        from pathlib import Path

        if not (Path(path).expanduser() / "nbstate.sqlite").exists():
            from .store import StoreError

            raise StoreError(f"no nbstate store at {path}: pass the .nbstate directory a kernel wrote (or set NBSTATE_STORE)")
        return cls(store=Store(path), notebook=notebook)

    # reading
    def resolve(self, ref: str) -> str:
        from .timetravel import resolve

        return resolve(self.store, self.notebook, ref)[0]

    def log(self, limit: int | None = None, all_branches: bool = False) -> list[LogEntry]:
        if all_branches:
            return log(self.store, self.notebook, limit)
        _, head = self.store.head(self.notebook)
        return log_from(self.store, head, limit) if head else []

    def status(self) -> Status:
        return status(self.store, self.notebook, live=self.recorder)

    def diff(self, a: str | None = None, b: str | None = None) -> Diff:
        if a is None and b is None:
            a, b = "HEAD~1", "HEAD"
        elif b is None:
            b = "HEAD"
        return diff(self.store, self.resolve(a or "HEAD"), self.resolve(b))

    def branches(self) -> dict[str, str]:
        return self.store.refs(self.notebook, "branch")

    def tags(self) -> dict[str, str]:
        return self.store.refs(self.notebook, "tag")

    def head(self) -> tuple[str | None, str | None]:
        return self.store.head(self.notebook)

    # refs
    def branch(self, name: str, ref: str = "HEAD") -> str:
        _check_ref_name(name)
        if name in self.branches():
            raise ValueError(f"branch {name!r} exists already; `branch -d {name}` first, or choose another name")
        target = self.resolve(ref)
        self.store.set_ref(self.notebook, "branch", name, target)
        return target

    def delete_branch(self, name: str) -> None:
        if name not in self.branches():
            raise ValueError(f"no branch {name!r}; `%nbstate branch` lists them")
        if self.head()[0] == name:
            raise ValueError(f"cannot delete {name!r}: HEAD is on it; check out another branch first")
        self.store.delete_ref(self.notebook, "branch", name)

    def rename_branch(self, old: str, new: str) -> None:
        _check_ref_name(new)
        if old not in self.branches():
            raise ValueError(f"no branch {old!r}; `%nbstate branch` lists them")
        if new in self.branches():
            raise ValueError(f"branch {new!r} exists already")
        self.store.rename_branch(self.notebook, old, new)

    def tag(self, name: str, ref: str = "HEAD") -> str:
        _check_ref_name(name)
        if name in self.tags():
            raise ValueError(f"tag {name!r} exists already; `tag -d {name}` first")
        target = self.resolve(ref)
        self.store.set_ref(self.notebook, "tag", name, target)
        return target

    def delete_tag(self, name: str) -> None:
        if name not in self.tags():
            raise ValueError(f"no tag {name!r}; `%nbstate tag` lists them")
        self.store.delete_ref(self.notebook, "tag", name)

    # changing the live namespace
    def _live(self) -> Any:
        if self.recorder is None:
            raise RuntimeError("this verb changes a kernel's variables: run it in the kernel (%nbstate ...), or `nbstate ... --kernel FILE`")
        return self.recorder

    def checkout(self, ref: str, code: bool = False) -> Any:
        """Restore the variables of ``ref``; with ``code``, also write its cells into the notebook."""
        from .timetravel import resolve

        commit_id, branch = resolve(self.store, self.notebook, ref)
        cells = None
        if code:
            cells = self._cells_to_write(commit_id)
        report = self._move_to(commit_id, branch, f"checkout {ref}")
        if cells is not None:
            from .notebook import write_cells

            write_cells(self.recorder.notebook_path, cells)
            report.warnings.append(f"wrote {len(cells)} cells into {self.recorder.notebook_path}: reload it in your editor")
        elif code:
            report.warnings.append(self._why_no_code(commit_id))
        return report

    def _cells_to_write(self, commit_id: str) -> list[dict[str, str]] | None:
        if self._live().notebook_path is None:
            return None
        return code_cells(self.store, self.store.commit(commit_id))

    def _why_no_code(self, commit_id: str) -> str:
        if self.recorder.notebook_path is None:
            return "no notebook file is known for this kernel (`%nbstate init NOTEBOOK.ipynb` names it): restored variables only"
        return f"commit {commit_id[:8]} recorded no notebook code: restored variables only"

    def undo(self, n: int = 1) -> Any:
        from .timetravel import undo_target

        return self._move_to(undo_target(self.store, self.notebook, n), None, f"undo {n}")

    def _move_to(
        self, commit_id: str, branch: str | None, action: str, python_changed: bool = False, check_blobs: bool = False,
        throughput: float | None = None, unreplayable: dict[int, str] | None = None,
    ) -> Any:
        from .timetravel import restore_state

        rec = self._live()
        current: dict[str, int] = {n: -1 for n in rec.user_names(full=True)}
        current.update(rec.live_versions())
        reloaded: list[Any] = []
        report, restored = restore_state(
            self.store, rec.namespace, current, self.store.commit(commit_id), rec.transform,
            python_changed=python_changed, check_blobs=check_blobs, throughput=throughput, fingerprint_later=reloaded,
            unreplayable=unreplayable,
        )
        rec.after_restore([live for _, live in restored.values()], report.deleted, reloaded)
        self.store.move_head(self.notebook, branch, commit_id, action)
        report.branch = branch
        return report

    # migration
    def export(self, dest: str, ref: str = "HEAD", history: bool = False, bandwidth: str | None = None) -> str:
        """Write the state of ``ref`` to a directory, a DEST.nbstate file or an fsspec URL.
        The cyclic collector is off meanwhile, as for an import: decoding the manifests of the
        history set off full collections of the kernel's objects (0.13 s of a 0.2 s export after
        the ML notebook's cells, which leave millions), and an export frees nothing."""
        from .bundle import export, parse_bandwidth
        from .timetravel import collector_paused

        with collector_paused():
            manifest = export(self.store, self.notebook, self.resolve(ref), dest, history=history, bandwidth=parse_bandwidth(bandwidth))
        p = manifest["plan"]
        return (
            f"exported {manifest['commit'][:8]} to {manifest['dest']}: {p['load']} variable(s) as bytes, "
            f"{p['replay']} cell(s) to replay (estimated restore {p['estimated_seconds']:.2f} s)"
            + (", with the whole history" if history else "")
        )

    def import_bundle(self, src: str, plan_only: bool = False, trust: bool = False) -> str:
        """Restore the state a bundle holds into this kernel (its history joins this store).

        The bundle must be signed with the user's key (trust.py) unless ``trust``. When anything
        fails, the namespace, HEAD, refs and history are as they were (copied blobs wait for gc).
        The cyclic collector is off throughout, not only while values load: copying the history
        and planning make enough objects to set off a full collection (50-80 ms in a kernel with
        pandas and matplotlib imported), which would free nothing of what the import keeps."""
        from .timetravel import collector_paused

        with collector_paused():
            return self._import_bundle(src, plan_only, trust)

    def _import_bundle(self, src: str, plan_only: bool, trust: bool) -> str:
        import sqlite3
        from pathlib import Path

        from .blobs import BlobError
        from .bundle import (
            BundleError,
            _explain_missing,
            check,
            copy_history,
            opened,
            plan_import,
            redact,
            unreplayable_runs,
        )

        where = redact(src)
        inserted: dict[str, list[Any]] = {}
        refs_before = {kind: self.store.refs(self.notebook, kind) for kind in ("branch", "tag")}
        try:
            scratch = None if plan_only else self.store.root
            with opened(src, trust=True if trust else (None if plan_only else False), scratch=scratch) as (manifest, bundle_store, _, note):
                checked = check(manifest, bundle_store, Path.cwd())
                # The restore plans with the read rate the plan shown here was made with, so that
                # it follows that plan (and does not measure the rate on blobs just copied).
                rate = bundle_store.read_throughput()
                plan = plan_import(manifest, bundle_store, checked)
                names = {vid: v.names for vid, v in bundle_store.versions(plan.load).items()}
                code = {r: bundle_store.cell_run(r).code for r in plan.replay}
                text = "\n".join([plan.describe(names, code), *checked.notes, note])
                if plan_only:
                    return text
                if checked.missing_packages and any(m for m in checked.missing_packages if _needed_by_load(bundle_store, plan, m)):
                    raise BundleError(_explain_missing(checked))
                self._live()
                target = bundle_store.commit(manifest["commit"])
                commits = bundle_store.commits(manifest["notebook"])[::-1] if manifest.get("history") else list(bundle_store.ancestors(target.id))[::-1]
                signed = note.startswith("signature: made with your key")
                copy_history(bundle_store, self.store, commits, self.notebook, None, inserted, verified=signed)
                # The restore plans again, in this store: with the same cells ruled out as the plan shown.
                cannot = unreplayable_runs(bundle_store, manifest, checked)
                ruled_out = {dst: cannot[src] for src, dst in inserted["run_pairs"] if src in cannot}
                if manifest.get("history"):
                    for kind in ("branch", "tag"):
                        for name, where_to in bundle_store.refs(manifest["notebook"], kind).items():
                            existing = self.store.refs(self.notebook, kind)
                            wanted = f"imported/{name}" if kind == "branch" or name in existing else name
                            self.store.set_ref(self.notebook, kind, _unique(existing, wanted), where_to)
            branch = _unique(self.branches(), "imported")
            self.store.set_ref(self.notebook, "branch", branch, manifest["commit"])
            report = self._move_to(
                manifest["commit"], branch, f"import {where}", python_changed=checked.python_changed, check_blobs=True, throughput=rate,
                unreplayable=ruled_out,
            )
        except BaseException as exc:
            if inserted.get("commits") or inserted.get("versions"):
                self._take_back_import(inserted, refs_before)
            if isinstance(exc, (BlobError, sqlite3.DatabaseError)):
                raise BundleError(f"the bundle at {where} is damaged ({exc}); nothing was imported") from None
            raise
        return text + "\n" + report.summary()

    def _take_back_import(self, inserted: dict[str, list[Any]], refs_before: dict[str, dict[str, str]]) -> None:
        from .bundle import forget_history

        for kind, before in refs_before.items():
            for name, target in self.store.refs(self.notebook, kind).items():
                if before.get(name) != target:
                    if name in before:
                        self.store.set_ref(self.notebook, kind, name, before[name])
                    else:
                        self.store.delete_ref(self.notebook, kind, name)
        forget_history(self.store, inserted, self.notebook)

    def commit(self, message: str) -> Commit:
        """A named checkpoint of the current state (made on top of HEAD)."""
        rec = self._live()
        made = rec.commit(code="", kind="manual", message=message)
        if made is None:
            raise RuntimeError(f"the commit could not be written: {rec.last_error}")
        return made


def _unique(existing: dict[str, str], base: str) -> str:
    name, k = base, 1
    while name in existing:
        k += 1
        name = f"{base}-{k}"
    return name


def _needed_by_load(store: Store, plan: Any, module: str) -> bool:
    """Whether a version the plan loads is made of objects from ``module``."""
    for v in store.versions(plan.load).values():
        if any(t.split(".")[0] == module for t in v.types.values()):
            return True
    return False


def _check_ref_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*", name) or name in ("HEAD", "@") or name.endswith((".", "/")):
        raise ValueError(f"{name!r} is not a valid name: use letters, digits, '_', '-', '.', '/' (not HEAD)")
    if re.fullmatch(r"[0-9a-f]{4,40}", name):
        raise ValueError(f"{name!r} looks like a commit id; choose a name with other letters")


def branch_command(session: Session, names: list[str], delete: bool = False, move: bool = False) -> str:
    """`branch [NAME [REF]] | -d NAME... | -m OLD NEW`, as the shells show it."""
    if delete:
        for name in names:
            session.delete_branch(name)
        return f"deleted branch {', '.join(names)}"
    if move:
        if len(names) != 2:
            raise ValueError("branch -m takes OLD NEW")
        session.rename_branch(*names)
        return f"renamed branch {names[0]} to {names[1]}"
    if names:
        target = session.branch(*names[:2])
        return f"created branch {names[0]} at {target[:8]} (`checkout {names[0]}` to switch to it)"
    current, _ = session.head()
    rows = [f"{'*' if n == current else ' '} {n:<20} {t[:8]}" for n, t in session.branches().items()]
    return "\n".join(rows) or "no branches yet"


def tag_command(session: Session, names: list[str], delete: bool = False) -> str:
    """`tag [NAME [REF]] | -d NAME...`, as the shells show it."""
    if delete:
        for name in names:
            session.delete_tag(name)
        return f"deleted tag {', '.join(names)}"
    if names:
        target = session.tag(*names[:2])
        return f"tagged {target[:8]} as {names[0]}"
    return "\n".join(f"{n:<20} {t[:8]}" for n, t in session.tags().items()) or "no tags yet"


def show(session: Session, ref: str) -> str:
    """One commit in full: its cell, its variables, and what changed from its parent."""
    c = session.store.commit(session.resolve(ref))
    run = session.store.cell_run(c.cell_run_id) if c.cell_run_id is not None else None
    created, changed, deleted = changed_names(c)
    versions = session.store.versions(sorted(set(c.state.values())))
    when = _dt.datetime.fromtimestamp(c.created).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"commit {c.id}", f"parent {c.parent or '(none)'}", f"date   {when}", f"kind   {c.kind}"]
    if c.message:
        lines.append(f"message {c.message}")
    if run is not None:
        lines.append(f"cell [{run.execution_count}] ran {run.duration:.3f} s" + (f", FAILED: {run.error}" if run.error else ""))
        lines.extend("    " + ln for ln in run.code.splitlines())
    lines.append(f"variables ({len(c.state)}):")
    for name, vid in sorted(c.state.items()):
        v = versions[vid]
        mark = "+" if name in created else "~" if name in changed else " "
        extra = "" if v.serializable else f"  (not serializable: {v.reason})"
        lines.append(f" {mark} {name}: {v.types.get(name, '?')}, {human_bytes(v.size)}{extra}")
    lines.extend(f" - {name}" for name in deleted)
    return "\n".join(lines)
