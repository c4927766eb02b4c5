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


def state_changes(before: dict[str, int], after: dict[str, int]) -> tuple[list[str], list[str], list[str]]:
    """(created, changed, deleted) names between two states."""
    created = sorted(n for n in after if n not in before)
    changed = sorted(n for n in after if n in before and before[n] != after[n])
    deleted = sorted(n for n in before if n not in after)
    return created, changed, deleted


def _first_line(code: str) -> str:
    for line in code.splitlines():
        if line.strip():
            return line.strip()
    return ""


def log(store: Store, notebook_id: str | None, limit: int | None = None) -> list[LogEntry]:
    """The history, newest first, with what each commit created, changed and deleted."""
    commits = store.commits(notebook_id, limit=limit)
    by_id: dict[str, Commit] = {c.id: c for c in commits}
    entries = []
    for c in commits:
        parent_state: dict[str, int] = {}
        if c.parent is not None:
            parent = by_id.get(c.parent) or store.commit(c.parent)
            parent_state = parent.state
        created, changed, deleted = state_changes(parent_state, c.state)
        run = store.cell_run(c.cell_run_id) if c.cell_run_id is not None else None
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


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def format_log(entries: list[LogEntry], as_json: bool = False) -> str:
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
        lines.append(f"{e.short} {count:>5} {when}  {title:<48} {' '.join(parts) or '(no change)'}  {human_bytes(e.bytes_added)}{flag}")
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


def status(store: Store, notebook_id: str, live: Any = None) -> Status:
    """Where the store is, what HEAD is, and which variables cannot be stored (with why)."""
    branch, head = store.head(notebook_id)
    n_commits = store.db.execute("SELECT count(*) FROM commits WHERE notebook_id=?", (notebook_id,)).fetchone()[0]
    variables = 0
    not_serializable: dict[str, str] = {}
    if head is not None:
        commit = store.commit(head)
        variables = len(commit.state)
        for v in store.versions(sorted(set(commit.state.values()))).values():
            if not v.serializable:
                for n in v.names:
                    not_serializable[n] = v.reason or "not serializable"
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
    )


def format_status(s: Status) -> str:
    lines = [
        f"store:     {s.store}",
        f"notebook:  {s.notebook}" + (f" ({s.notebook_path})" if s.notebook_path and s.notebook_path != s.notebook else ""),
        f"HEAD:      {(s.head or '(no commits)')[:8]}" + (f" on branch {s.branch}" if s.branch else " (detached)"),
        f"commits:   {s.commits}, {human_bytes(s.stored_bytes)} stored",
        f"variables: {s.variables}",
    ]
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
