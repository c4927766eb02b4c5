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
import gc
import io
import math
import re
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import blobs as blobs_module
from . import codec
from .analysis import names_in_source, side_effects, top_level_rebinds
from .plan import CellNode, Infeasible, Plan, VersionNode, replay_seconds, solve
from .state import (
    LiveCoVariable,
    ReadAhead,
    Reloaded,
    buffers_of,
    fingerprint_restored,
    fingerprint_with_ids,
    load_version_with_ids,
)
from .store import Commit, Store, StoreError, VariableVersion, manifest_chunks


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
        if n < 1:
            raise RefError(f"{ref}: write @{{-1}} for where HEAD was before its last move, @{{-2}} for the move before, ...")
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
        matches = store.commit_ids_with_prefix(ref, notebook_id)
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


# --- the history graph, read lazily from the store -----------------------------------------------


class ReplayError(Exception):
    pass


class _LoadFailed(Exception):
    def __init__(self, version_id: int, why: str) -> None:
        super().__init__(why)
        self.version_id = version_id


class History:
    """The nodes the planner asks for, fetched from the store on demand and kept."""

    def __init__(
        self, store: Store, unloadable: set[int] | None = None, python_changed: bool = False, check_blobs: bool = False,
        bandwidth: float | None = None, throughput: float | None = None,
    ) -> None:
        self.store = store
        # Bytes per second of the link a bundle crosses (export --bandwidth): a version's stored
        # (compressed) bytes cross it, on top of reading and decoding them.
        self.bandwidth = bandwidth
        self.unloadable = set(unloadable or ())
        # Whether a version's bytes may be missing (a bundle ships only those its exporter's plan
        # loads): then a version is loadable only when the store has every chunk it names.
        self.check_blobs = check_blobs
        self.unreplayable: dict[int, str] = {}
        # A cell that drew from a global random generator (CellRun.randomness) gives other values
        # when replayed, the generator being elsewhere by then: plans leave such cells out while
        # loading can rebuild what they made (plan_for), and replay them only when nothing can.
        self.avoid_random = True
        self.avoided: set[int] = set()
        self.python_changed = python_changed
        # Bytes per second a load reads and decodes at: the store's measured rate unless given.
        self.throughput = throughput if throughput is not None else store.read_throughput()
        self.versions: dict[int, VariableVersion] = {}
        self.cells: dict[int, CellNode] = {}
        # Chunks looked up for version_node: stored size of those present, those absent, those
        # stored as patches or deltas, and (transitively, through bases_of) what those patch.
        self._stored: dict[str, int] = {}
        self._absent: set[str] = set()
        self._based: set[str] = set()
        self._bases: dict[str, str] = {}
        self._runs: dict[int, tuple[Any, Commit, dict[str, int]]] = {}

    def _mapped_bytes(self, v: VariableVersion) -> int:
        """Bytes of ``v`` that a load maps rather than reads: its large buffers held raw (or as
        patches of raw chunks) in the store. A mapped buffer costs page-table entries at
        checkout, and its reads come later, as pages are touched; counted as read, a large
        array would look cheaper to recompute than to map (a checkout would rerun the cell)."""
        if v.manifest is None or self.bandwidth or not blobs_module.mapping_enabled():
            return 0
        large = [b for b in v.manifest["buffers"] if b["n"] >= blobs_module.MMAP_MIN]
        if not large:
            return 0
        where = self.store.blobs.locate([h for b in large for h in b["chunks"]])
        out = 0
        for b in large:
            locs = [where.get(h) for h in b["chunks"]]
            if all(loc is not None and loc.pack is not None and loc.codec in ("raw", "patch") for loc in locs):
                out += b["n"]
        return min(out, v.size)

    def _with_bases(self, hashes: set[str]) -> set[str]:
        """``hashes`` and the chunks their patches and deltas are made from, with the stored
        size of each that the store holds noted in ``_stored``. Versions of one value share
        most of their chunks: each chunk is looked up once per History, and the sets are
        compared by C loops (an EDA import plans over 47 versions of about 1,300 chunks)."""
        new = hashes - self._stored.keys() - self._absent
        if new:
            where = self.store.blobs.locate(list(new))
            self._stored.update((h, loc.stored) for h, loc in where.items())
            self._absent |= new - where.keys()
            self._based.update(h for h, loc in where.items() if loc.codec in ("patch", "delta"))
            based = new & self._based
            if based:
                self._bases.update(self.store.blobs.bases_of(based))
        patched = hashes & self._based
        if not patched:
            return hashes
        bases = {self._bases[h] for h in patched if h in self._bases} - hashes
        return hashes | self._with_bases(bases) if bases else hashes

    def version(self, vid: int) -> VariableVersion:
        if vid not in self.versions:
            self.versions.update(self.store.versions([vid]))
        return self.versions[vid]

    def version_node(self, vid: int) -> VersionNode:
        v = self.version(vid)
        loadable = v.loadable and vid not in self.unloadable and not (self.python_changed and holds_code(v))
        stored = None
        if loadable and (self.check_blobs or self.bandwidth) and v.manifest is not None:
            hashes = self._with_bases(set(manifest_chunks(v.manifest)))
            if self.check_blobs and not hashes <= self._stored.keys():
                self.unloadable.add(vid)
                loadable = False
            stored = sum(self._stored.get(h, 0) for h in hashes)
        objects = _pickling_seconds(v)
        load = math.inf
        if loadable:
            load = (v.size - self._mapped_bytes(v)) / self.throughput + objects + 0.0005
        if loadable and self.bandwidth and stored is not None:
            load += stored / self.bandwidth
        # A value bound to the replay's own functions and classes is loaded instead of checked.
        check = load if loadable and bound_by_replay(v) else objects
        return VersionNode(vid, load, v.cell_run_id, check)

    def run(self, run_id: int) -> tuple[Any, Commit, dict[str, int]]:
        """(the cell run, its commit, the state before it)."""
        if run_id not in self._runs:
            run = self.store.cell_run(run_id)
            commit = self.store.commit_of_run(run_id)
            before = self.store.commit(commit.parent).state if commit.parent else {}
            self._runs[run_id] = (run, commit, before)
        return self._runs[run_id]

    def cell_node(self, run_id: int) -> CellNode | None:
        if run_id in self.unreplayable:
            return None
        if run_id in self.cells:
            return self.cells[run_id]
        run, commit, before = self.run(run_id)
        if commit.kind != "auto" or run.error is not None:
            return None  # the state a session started with, or a cell that raised part-way
        if run.randomness and self.avoid_random:
            self.avoided.add(run_id)
            return None
        earlier = set(before.values())
        outputs = frozenset(vid for vid in commit.state.values() if vid not in earlier)
        # A version can hold names the cell did not make (it joined them to an older value):
        # their earlier versions are inputs, or the replay would not have them. Names its
        # top-level code binds anew (`lk = threading.Lock()`) it made, unless it read them.
        reads = set(run.reads)
        joined = {n for vid in outputs for n in self.version(vid).names if n in before} - reads
        if joined:
            joined -= top_level_rebinds(run.code)
        needed = {before[n] for n in reads | joined if n in before}
        # A value that refers to a notebook class by name is loaded after that class: the
        # class's version is an input too, though the cell may never name it.
        for vid in list(needed):
            manifest = self.version(vid).manifest or {}
            needed.update(before[c] for c in manifest.get("class_refs", ()) if c in before)
        inputs = frozenset(needed)
        node = CellNode(run_id, commit.seq, replay_seconds(run.duration), inputs, outputs)
        self.cells[run_id] = node
        return node


def plan_for(history: History, targets: list[int]) -> Plan:
    """The cheapest plan that rebuilds ``targets``, replaying a cell that drew from a global random
    generator only when no plan without one exists (an unserializable value it made)."""
    try:
        return solve(targets, history.version_node, history.cell_node)
    except Infeasible:
        if not (history.avoid_random and history.avoided):
            raise
        history.avoid_random = False
        return solve(targets, history.version_node, history.cell_node)


def _pickling_seconds(v: VariableVersion) -> float:
    """What the objects of ``v``'s pickle stream cost, to make when it loads and to pickle again
    when a replay's value is checked against its fingerprint: the pickler's own time when the
    version was recorded (``stream.seconds``; unpickling takes about as long). Per byte that
    ranges from a copy (one long string) to tens of times the cost of reading (a million small
    records: 35 MB/s to load, against about 1 GB/s to read and decode), so no rate of bytes can
    stand for it; out-of-band buffers are only read, and hashed at tens of GB/s. Versions
    recorded before it was kept count as read only."""
    return float(v.manifest["stream"].get("seconds", 0.0)) if v.manifest is not None else 0.0


def holds_code(v: VariableVersion) -> bool:
    """Whether a version holds notebook functions or classes (marshalled code is per-Python)."""
    return any(t in ("function", "type") or t.startswith("function") for t in v.types.values())


def names_classes(v: VariableVersion) -> bool:
    """Whether a version refers to notebook classes by name (instances of them)."""
    return bool((v.manifest or {}).get("class_refs"))


def bound_by_replay(v: VariableVersion) -> bool:
    """Whether a replay's value of ``v`` would be bound to the replay's namespace: it holds
    notebook functions or classes (made there, with it as their globals) or names classes
    (found there). Such a value is loaded, wherever its bytes exist, not taken from the replay."""
    return holds_code(v) or names_classes(v)


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
    loaded_versions: list[int] = field(default_factory=list)  # the versions loaded from bytes

    def summary(self) -> str:
        where = f"branch {self.branch}" if self.branch else f"{self.commit[:8]} (detached: the next cell forks a branch)"
        parts = [f"now at {where}"]
        for label, names in (("loaded", self.loaded), ("replayed", self.replayed), ("deleted", self.deleted)):
            if names:
                parts.append(f"{label} {', '.join(names)}")
        parts.append(f"kept {len(self.kept)} unchanged")
        text = "; ".join(parts) + f" ({self.seconds * 1000:.0f} ms)"
        return "\n".join([text, *(f"warning: {w}" for w in self.warnings)])


# Whether a restore in progress turned the cyclic collector off (restores run in the kernel's
# main thread, one at a time).
_paused = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off while values are rebuilt. Every object a load makes is kept
    (it is part of a restored value), so a collection on the way frees nothing of it; yet a
    restore makes enough objects to set off collections, and a full one walks every object
    of the kernel (tens of milliseconds once large libraries are imported). What the restore
    made is looked at by the next collection that comes, once."""
    global _paused
    if not gc.isenabled():
        yield
        return
    gc.disable()
    _paused = True
    try:
        yield
    finally:
        _paused = False
        gc.enable()


@contextlib.contextmanager
def _collector_resumed() -> Iterator[None]:
    """The collector as it was around user code replayed during a restore: a cell may make
    cyclic garbage in a loop, which must be freed as it goes."""
    global _paused
    if not _paused:
        yield
        return
    _paused = False
    gc.enable()
    try:
        yield
    finally:
        gc.disable()
        _paused = True


@collector_paused()
def restore_state(
    store: Store,
    namespace: dict[str, Any],
    current: Mapping[str, int],
    target: Commit,
    transform: Callable[[str], str] = lambda code: code,
    python_changed: bool = False,
    check_blobs: bool = False,
    throughput: float | None = None,
    fingerprint_later: list[Reloaded] | None = None,
    unreplayable: Mapping[int, str] | None = None,
) -> tuple[CheckoutReport, dict[int, tuple[dict[str, Any], LiveCoVariable]]]:
    """Build every value of ``target`` that differs from ``current`` aside, then swap them in.

    ``current`` maps each live user name to its version id. A plan (plan.py) decides per version
    between loading and replaying; a load or replay that fails is ruled out and the plan made
    again. Returns the report and, per restored version, its values with the live co-variable to
    adopt. Raises CheckoutError, leaving the namespace untouched, when nothing works.
    ``throughput``: the read rate to plan with (default: the store's, measured once).
    ``fingerprint_later``: where the loaded co-variables go whose fingerprints as restored are
    still to be taken (``state.fingerprint_restored``); None: they are taken here.
    ``unreplayable``: cell runs the plan must not replay, and why (an import's, whose cells need
    what this machine lacks).

    The cyclic collector is off meanwhile, except while replayed cells run (see
    ``collector_paused``).
    """
    t0 = time.perf_counter()
    report = CheckoutReport(commit=target.id, branch=None)
    wanted = target.state
    same = {n for n, vid in wanted.items() if current.get(n) == vid}
    # An unchanged value that refers to a notebook class by name holds the class object live
    # now: where that class is restored anew, the value is loaded again to refer to the new one.
    replaced = {n for n, vid in current.items() if isinstance(namespace.get(n), type) and wanted.get(n) != vid}
    if replaced:
        for v in store.versions(sorted({wanted[n] for n in same})).values():
            if v.manifest and replaced & set(v.manifest.get("class_refs", ())):
                same -= set(v.names)
    report.kept = sorted(same)
    report.deleted = sorted(n for n in current if n not in wanted)
    to_restore = sorted({vid for n, vid in wanted.items() if n not in same})
    kept_values = {n: namespace[n] for n in report.kept if n in namespace}
    history = History(store, python_changed=python_changed, check_blobs=check_blobs, throughput=throughput)
    history.unreplayable.update(unreplayable or {})
    failures: list[str] = []
    while True:
        try:
            plan = plan_for(history, to_restore)
        except Infeasible:
            raise CheckoutError(_why_infeasible(history, to_restore, failures)) from None
        try:
            with _read_ahead(plan, history, to_restore) as ahead:
                restored = _execute(plan, history, to_restore, namespace, kept_values, transform, report, ahead)
            break
        except _LoadFailed as exc:
            if exc.version_id in history.unloadable:  # pragma: no cover - a plan never loads these
                raise CheckoutError(f"cannot restore: {exc}. Nothing was changed.") from None
            history.unloadable.add(exc.version_id)
            failures.append(f"{', '.join(history.version(exc.version_id).names)}: {exc}")
        except ReplayError as exc:
            run_id, why = exc.args
            if run_id in history.unreplayable:  # pragma: no cover - a plan never replays these
                raise CheckoutError(f"cannot restore: {why}. Nothing was changed.") from None
            history.unreplayable[run_id] = why
            failures.append(why)
    report.warnings[:0] = [f"{f}; used another way" for f in dict.fromkeys(failures)]
    # Everything is built: swap it in. Dict operations cannot fail half-way.
    for n in report.deleted:
        namespace.pop(n, None)
    for values, _ in restored.values():
        namespace.update(values)
    for _, live in restored.values():
        manifest = history.version(live.version_id).manifest or {}
        live.class_refs = {c: id(namespace[c]) for c in manifest.get("class_refs", ()) if c in namespace}
    reloaded = [(restored[vid][0], history.version(vid), restored[vid][1]) for vid in report.loaded_versions]
    if fingerprint_later is None:
        fingerprint_restored(reloaded, namespace)
    else:
        fingerprint_later.extend(reloaded)
    report.loaded.sort()
    report.replayed.sort()
    report.seconds = time.perf_counter() - t0
    return report, restored


def _why_infeasible(history: History, targets: list[int], failures: list[str]) -> str:
    culprits = []
    for t in targets:
        try:
            solve([t], history.version_node, history.cell_node)
        except Infeasible:
            v = history.version(t)
            how = f"not serializable ({v.reason})" if not v.serializable else v.reason or "its stored bytes cannot be read"
            culprits.append(f"{', '.join(v.names)}: {how}, and no recorded cell can rebuild it")
    detail = "; ".join(culprits) or "no mix of loading and replaying can rebuild the target"
    tried = f" (tried: {'; '.join(failures)})" if failures else ""
    return f"cannot restore {detail}{tried}. Nothing was changed."


def _read_ahead(plan: Plan, history: History, targets: list[int]) -> ReadAhead:
    """The plan's loads, their large bytes read ahead in the order they are needed: the
    replays' inputs, then the targets."""
    order = [u for run_id in plan.replay for u in sorted(history.cells[run_id].inputs)] + list(targets)
    return ReadAhead(history.store, [history.version(vid) for vid in dict.fromkeys(order) if vid in plan.load])


def _execute(
    plan: Plan,
    history: History,
    targets: list[int],
    namespace: dict[str, Any],
    kept: dict[str, Any],
    transform: Callable[[str], str],
    report: CheckoutReport,
    ahead: ReadAhead | None = None,
) -> dict[int, tuple[dict[str, Any], LiveCoVariable]]:
    """Carry out a plan: replay its cells in order in an isolated namespace, load the rest."""
    store = history.store
    iso: dict[str, Any] = {"__builtins__": builtins, "__name__": "__main__"}
    at: dict[str, int] = {}  # name -> the version it holds in ``iso``
    # Versions loaded into ``iso`` for a replay, with the ids of their objects; None: they hold
    # functions, bound to ``iso``, so that as targets they are loaded again for the namespace.
    loaded: dict[int, set[int] | codec.IdArray | None] = {}
    load = set(plan.load)
    for run_id in plan.replay:
        run, commit, before = history.run(run_id)
        cell = history.cells[run_id]
        needed = []
        for u in sorted(cell.inputs):
            v = history.version(u)
            if all(at.get(n) == u for n in v.names):
                continue
            if u not in load:
                raise ReplayError(run_id, f"replaying cell [{run.execution_count}] needs {', '.join(v.names)}, which the plan neither loads nor rebuilds")
            needed.append(v)

        def load_input(v: VariableVersion) -> bool:
            bound = codec.functions_bound
            try:
                values, ids = _load(store, v, iso, ChainMap(iso, kept), ahead)
            except codec.MissingName:
                return False
            iso.update(values)
            at.update({n: v.id for n in v.names})
            loaded[v.id] = ids if codec.functions_bound == bound and not names_classes(v) else None
            return True

        stuck = _in_class_order(needed, load_input)
        if stuck:
            names = ", ".join(n for v in stuck for n in v.names)
            raise ReplayError(run_id, f"replaying cell [{run.execution_count}] needs {names}, which refer to a class the plan does not restore first")
        try:
            source = transform(run.code)
        except Exception as exc:
            raise ReplayError(run_id, f"replaying cell [{run.execution_count}] failed: {type(exc).__name__}: {exc}") from None
        # A name the cell deletes without reading it (`del b`) need only exist for the replay.
        for n in names_in_source(source).deletes:
            if n in before and n not in iso:
                iso[n] = None
        effects = side_effects(run.code)
        if effects:
            report.warnings.append(
                f"replayed cell [{run.execution_count}] again did what reaches outside the kernel "
                f"({', '.join(effects)}): files or databases it writes may now hold that twice"
            )
        try:
            code = compile(source, f"<nbstate replay of cell [{run.execution_count}]>", "exec")
            with _collector_resumed(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(code, iso)
        except Exception as exc:
            raise ReplayError(run_id, f"replaying cell [{run.execution_count}] failed: {type(exc).__name__}: {exc}") from None
        for vid in cell.outputs:
            at.update({n: vid for n in history.version(vid).names})
        for n in set(before) - set(commit.state):
            iso.pop(n, None)
            at.pop(n, None)
    restored: dict[int, tuple[dict[str, Any], LiveCoVariable]] = {}
    staged: dict[str, Any] = {}
    lookup = ChainMap(staged, kept)

    def take(v: VariableVersion) -> bool:
        values, ids, how = _obtain(v, iso, at, loaded, namespace, lookup, history, report, ahead)
        if values is None:
            return False
        staged.update(values)
        restored[v.id] = (values, LiveCoVariable(frozenset(v.names), v.id, v.fingerprint, ids, buffers=buffers_of(v.manifest), stream=list(v.manifest['stream']['chunks']) if v.manifest else []))
        (report.replayed if how == "replayed" else report.loaded).extend(v.names)
        if how != "replayed":
            report.loaded_versions.append(v.id)
        return True

    stuck = _in_class_order([history.version(t) for t in targets], take)
    if stuck:
        names = ", ".join(n for v in stuck for n in v.names)
        raise CheckoutError(f"cannot restore {names}: a class it needs is not defined in the target state. Nothing was changed.")
    return restored


def _in_class_order(versions: list[VariableVersion], take: Callable[[VariableVersion], bool]) -> list[VariableVersion]:
    """Call ``take`` on each version until each has returned True: a value that refers to a
    notebook class by name can be loaded only once that class is there, so those that cannot
    yet wait for a later round. Returns the versions that never could (none when all went)."""
    pending = list(versions)
    while pending:
        waiting = [v for v in pending if not take(v)]
        if len(waiting) == len(pending):
            return waiting
        pending = waiting
    return []


def _obtain(
    v: VariableVersion,
    iso: dict[str, Any],
    at: dict[str, int],
    loaded: Mapping[int, set[int] | codec.IdArray | None],
    namespace: dict[str, Any],
    lookup: Mapping[str, Any],
    history: History,
    report: CheckoutReport,
    ahead: ReadAhead | None = None,
) -> tuple[dict[str, Any] | None, set[int] | codec.IdArray, str]:
    """One target version's values: from the replay namespace when it rebuilt them (or loaded
    them for a replay, and no replayed cell made them anew since), else loaded.

    The replay namespace is only the replays' own: what holds functions bound to it, or refers
    to its classes, is loaded for the notebook's namespace instead, where the bytes exist."""
    store = history.store
    loadable = v.id not in history.unloadable and v.loadable
    if not all(at.get(n) == v.id and n in iso for n in v.names):
        return _obtain_loaded(store, v, namespace, lookup, ahead)
    values = {n: iso[n] for n in v.names}
    if v.id in loaded:
        ids = loaded[v.id]
        return (values, ids, "loaded") if ids is not None else _obtain_loaded(store, v, namespace, lookup, ahead)
    ids = None
    if v.serializable:
        # Pickled against the replay namespace, which holds the replayed cells' classes as the
        # notebook's held the recorded ones. Functions the replays made are bound to it, and
        # compiled under another file name, so that they never match the recorded bytes: such
        # values, and those that name its classes, are loaded instead wherever they can be.
        if loadable and bound_by_replay(v):
            return _obtain_loaded(store, v, namespace, lookup, ahead)
        # (and by the pickler that recorded it: the plain one only for a plain stream)
        plain = bool(v.manifest is not None and v.manifest["stream"].get("plain"))
        fingerprint, ids, bound = fingerprint_with_ids(list(values.values()), v.names, iso, plain)
        if bound and loadable:
            return _obtain_loaded(store, v, namespace, lookup, ahead)
        if fingerprint != v.fingerprint and not bound:
            if not loadable:
                report.warnings.append(
                    f"{', '.join(v.names)}: the replayed value differs from the recorded one "
                    "(the cells are not deterministic: random numbers, time, files?)"
                )
            else:
                got = _obtain_loaded(store, v, namespace, lookup, ahead)
                if got[0] is None or not _same(values, got[0], plain, iso, namespace):
                    report.warnings.append(f"{', '.join(v.names)}: replaying gave another value (nondeterministic cells?); used the stored bytes")
                return got
    return values, ids if ids is not None else codec.reachable_ids(list(values.values()), namespace), "replayed"


def _same(replayed: dict[str, Any], stored: dict[str, Any], plain: bool, iso: dict[str, Any], namespace: dict[str, Any]) -> bool:
    """Whether a replayed value whose bytes differ from the recorded ones equals the stored one:
    equal values may pickle to other bytes (codec.same_plain, codec.same_values)."""
    if plain:
        return all(codec.same_plain(replayed[n], stored[n]) for n in replayed)
    return codec.same_values(list(replayed.values()), iso, [stored[n] for n in replayed], namespace)


def _obtain_loaded(
    store: Store, v: VariableVersion, namespace: dict[str, Any], lookup: Mapping[str, Any], ahead: ReadAhead | None = None,
) -> tuple[dict[str, Any] | None, set[int], str]:
    try:
        values, ids = _load(store, v, namespace, lookup, ahead)
    except codec.MissingName:
        return None, set(), "loaded"
    return values, ids, "loaded"


def _load(
    store: Store, v: VariableVersion, namespace: dict[str, Any], lookup: Mapping[str, Any], ahead: ReadAhead | None = None,
) -> tuple[dict[str, Any], set[int]]:
    try:
        return load_version_with_ids(store, v, namespace, lookup, ahead)
    except codec.MissingName:
        raise
    except Exception as exc:
        raise _LoadFailed(v.id, f"{type(exc).__name__}: {exc}") from None
