"""Resolving refs, and moving a live namespace to the state of another commit.

Checkout compares variable versions: a co-variable whose version is the same in the target
stays the very same object; the rest is loaded from the store, or rebuilt by replaying the
cells that produced it (unserializable values, damaged blobs) in an isolated namespace. All new
objects are built aside and swapped in at the end: if anything cannot be restored, the
namespace is exactly as it was and the error names the variable and the reason.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import re
import time
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import codec
from .state import LiveCoVariable, load_version, load_version_with_ids, version_fingerprint
from .store import Commit, Store, StoreError, VariableVersion


class RefError(StoreError):
    """A ref that names no commit, or more than one."""


class CheckoutError(Exception):
    """A checkout that could not complete; the namespace was left exactly as it was."""


_SUFFIX = re.compile(r"(~\d*|\^+)$")


def resolve(store: Store, notebook_id: str, ref: str) -> tuple[str, str | None]:
    """The commit a ref names, and the branch when the ref is a branch name.

    Accepts HEAD (or @), branch and tag names, commit ids or unique prefixes (4+ hex digits),
    @{-N} (where HEAD was N moves ago), and any of those followed by ~N or ^.
    """
    ref = ref.strip()
    if not ref:
        raise RefError("an empty ref names no commit; try HEAD~1, a branch, a tag or a commit id")
    steps = 0
    base = ref
    while (m := _SUFFIX.search(base)) and m.start() > 0:
        token = m.group(1)
        steps += (int(token[1:]) if len(token) > 1 else 1) if token.startswith("~") else len(token)
        base = base[: m.start()]
    commit_id, branch = _resolve_base(store, notebook_id, base)
    if steps:
        branch = None
        start = commit_id
        for taken in range(steps):
            parent = store.commit(commit_id).parent
            if parent is None:
                raise RefError(f"{ref} goes back past the first commit ({start[:8]} has only {taken} ancestors)")
            commit_id = parent
    return commit_id, branch


def _resolve_base(store: Store, notebook_id: str, ref: str) -> tuple[str, str | None]:
    if ref in ("HEAD", "@"):
        branch, head = store.head(notebook_id)
        if head is None:
            raise RefError("HEAD names no commit yet: run a cell first")
        return head, branch
    m = re.fullmatch(r"@\{-(\d+)\}", ref)
    if m:
        n = int(m.group(1))
        moves = [r for r in store.reflog(notebook_id, limit=max(n, 1) * 4) if r[2] is not None]
        if len(moves) < n:
            raise RefError(f"{ref}: HEAD has moved only {len(moves)} time(s)")
        _, old_branch, old_commit, _, _ = moves[n - 1]
        return old_commit, old_branch
    target = store.ref(notebook_id, "branch", ref)
    if target is not None:
        return target, ref
    target = store.ref(notebook_id, "tag", ref)
    if target is not None:
        return target, None
    if re.fullmatch(r"[0-9a-f]{4,40}", ref):
        matches = store.commit_ids_with_prefix(ref)
        if len(matches) == 1:
            return matches[0], None
        if len(matches) > 1:
            raise RefError(f"{ref} is ambiguous: it starts {', '.join(m[:10] for m in matches)}...; give more digits")
    raise RefError(
        f"unknown ref {ref!r}: not a branch, tag or commit id of notebook {notebook_id!r}. "
        "`%nbstate log --all` lists commits, `%nbstate branch` and `%nbstate tag` list names."
    )


def undo_target(store: Store, notebook_id: str, n: int) -> str:
    """The commit N cell runs before HEAD (commits made with `commit -m` are not cell runs)."""
    if n < 1:
        raise RefError("undo takes a positive number of cell runs")
    _, commit_id = store.head(notebook_id)
    if commit_id is None:
        raise RefError("nothing to undo: no commits yet")
    remaining = n
    while remaining:
        commit = store.commit(commit_id)
        if commit.parent is None:
            raise RefError(f"cannot undo {n} cell run(s): only {n - remaining} recorded before HEAD")
        if commit.kind != "manual":
            remaining -= 1
        commit_id = commit.parent
    return commit_id


# --- replay --------------------------------------------------------------------------------------


class ReplayError(Exception):
    pass


@dataclass
class Replayer:
    """Rebuilds a variable version by re-running the cell that produced it, in a fresh namespace
    holding that cell's inputs as they were (loaded, or themselves replayed)."""

    store: Store
    transform: Callable[[str], str] = lambda code: code
    replayed_cells: list[int] = field(default_factory=list)
    depth_limit: int = 200

    def rebuild(self, version: VariableVersion, depth: int = 0) -> dict[str, Any]:
        if version.cell_run_id is None:
            raise ReplayError(f"{', '.join(version.names)}: no recorded cell produced it")
        if depth > self.depth_limit:
            raise ReplayError(f"{', '.join(version.names)}: the chain of cells to replay is longer than {self.depth_limit}")
        run = self.store.cell_run(version.cell_run_id)
        commit = self.store.commit_of_run(run.id)
        before = self.store.commit(commit.parent).state if commit.parent else {}
        namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "__main__"}
        inputs = sorted(n for n in set(run.reads) | set(version.names) if n in before)
        needed = sorted({before[n] for n in inputs})
        for v in self.store.versions(needed).values():
            values = self.value_of(v, namespace, depth + 1)
            namespace.update({n: values[n] for n in v.names if n in values})
        try:
            code = compile(self.transform(run.code), f"<nbstate replay of cell [{run.execution_count}]>", "exec")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(code, namespace)
        except Exception as exc:
            raise ReplayError(f"replaying cell [{run.execution_count}] failed: {type(exc).__name__}: {exc}") from exc
        self.replayed_cells.append(run.id)
        missing = [n for n in version.names if n not in namespace]
        if missing:
            raise ReplayError(f"replaying cell [{run.execution_count}] did not define {', '.join(missing)}")
        return {n: namespace[n] for n in version.names}

    def value_of(self, version: VariableVersion, namespace: dict[str, Any], depth: int = 0) -> dict[str, Any]:
        if version.serializable:
            try:
                return load_version(self.store, version, namespace)
            except Exception:  # damaged or unreadable: fall through to replay
                pass
        return self.rebuild(version, depth)


# --- checkout ------------------------------------------------------------------------------------


@dataclass
class CheckoutReport:
    commit: str
    branch: str | None
    kept: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        where = f"branch {self.branch}" if self.branch else f"{self.commit[:8]} (detached: the next cell forks a branch)"
        parts = [f"now at {where}"]
        for label, names in (("loaded", self.loaded), ("replayed", self.replayed), ("deleted", self.deleted)):
            if names:
                parts.append(f"{label} {', '.join(names)}")
        parts.append(f"kept {len(self.kept)} unchanged")
        text = "; ".join(parts) + f" ({self.seconds * 1000:.0f} ms)"
        return "\n".join([text, *(f"warning: {w}" for w in self.warnings)])


def restore_state(
    store: Store,
    namespace: dict[str, Any],
    current: Mapping[str, int],
    target: Commit,
    transform: Callable[[str], str] = lambda code: code,
) -> tuple[CheckoutReport, dict[int, tuple[dict[str, Any], LiveCoVariable]]]:
    """Build every value of ``target`` that differs from ``current`` aside, then swap them in.

    ``current`` maps each live user name to its version id. Returns the report and, per restored
    version, its values with the live co-variable to adopt. Raises CheckoutError, leaving the
    namespace untouched, when a value can be neither loaded nor replayed.
    """
    t0 = time.perf_counter()
    report = CheckoutReport(commit=target.id, branch=None)
    wanted = target.state
    report.kept = sorted(n for n, vid in wanted.items() if current.get(n) == vid)
    report.deleted = sorted(n for n in current if n not in wanted)
    to_restore = sorted({vid for n, vid in wanted.items() if current.get(n) != vid})
    versions = store.versions(to_restore)
    kept_values = {n: namespace[n] for n in report.kept if n in namespace}
    staged: dict[str, Any] = {}
    restored: dict[int, tuple[dict[str, Any], LiveCoVariable]] = {}
    lookup = ChainMap(staged, kept_values)
    replayer = Replayer(store, transform)
    pending = [versions[vid] for vid in to_restore]
    failures: dict[int, str] = {}
    # Versions that reference a notebook class by name wait until the class itself is staged.
    while pending:
        waiting: list[VariableVersion] = []
        for v in pending:
            try:
                values, ids = load_version_with_ids(store, v, namespace, lookup)
                report.loaded.extend(v.names)
            except codec.MissingName:
                waiting.append(v)
                continue
            except Exception as exc:  # damaged or unreadable: rebuild it by replay
                failures[v.id] = f"{type(exc).__name__}: {exc}"
                try:
                    values = replayer.rebuild(v)
                except ReplayError as rexc:
                    why = f"{failures[v.id]}; " if v.serializable else f"not serializable ({v.reason}); "
                    raise CheckoutError(f"cannot restore {', '.join(v.names)}: {why}{rexc}") from None
                ids = codec.reachable_ids(list(values.values()), namespace)
                report.replayed.extend(v.names)
                if v.serializable:
                    report.warnings.append(f"{', '.join(v.names)}: stored bytes unreadable ({failures[v.id]}); rebuilt by replay")
                    if version_fingerprint(list(values.values()), v.names, namespace) != v.fingerprint:
                        report.warnings.append(
                            f"{', '.join(v.names)}: the replayed value differs from the recorded one "
                            "(the cells are not deterministic: random numbers, time, files?)"
                        )
            staged.update(values)
            restored[v.id] = (values, LiveCoVariable(frozenset(v.names), v.id, v.fingerprint, ids))
        if len(waiting) == len(pending):
            names = ", ".join(n for v in waiting for n in v.names)
            raise CheckoutError(f"cannot restore {names}: a class it needs is not defined in the target state")
        pending = waiting
    # Everything is built: swap it in. Dict operations cannot fail half-way.
    for n in report.deleted:
        namespace.pop(n, None)
    namespace.update(staged)
    report.loaded.sort()
    report.replayed.sort()
    report.seconds = time.perf_counter() - t0
    return report, restored
