"""Deciding, per variable version, whether to load its bytes or recompute it by replaying cells.

Pure computation over a small graph: no I/O, no IPython. The inputs are the cells on the path
to the target commit (what each read, produced, and how long it ran) and the versions involved
(their size, and whether they can be loaded at all); the output is the cheapest set of versions
to load and cells to replay so that every target version exists.

The choice is a minimum cut. For every version v there are two nodes: ``need(v)`` (v must exist)
and ``recompute(v)``; for every cell c, one node ``replay(c)``. On the source side of the cut
a node is "true". Edges (capacity):

    source -> need(t)             infinite   for each target version t
    need(v) -> recompute(v)       load(v)    needed but not recomputed: pay for loading it
    recompute(v) -> replay(c)     infinite   recomputing v means replaying its cell c
    replay(c) -> need(u)          infinite   a replayed cell needs each of its inputs u
    replay(c) -> sink             duration(c)

Every feasible plan is a cut of the same cost and the other way round, so the minimum cut is the
cheapest plan; "load everything loadable" and "replay everything" are both feasible, so the
plan is never worse than either under the same costs. Unloadable versions (not serializable,
damaged, from another Python) cost infinity to load; versions no cell can reproduce (the state
a session started with) cost infinity to recompute.

When no cell is worth replaying (the usual case: every version loads faster than its cell ran),
the graph has no replay node and its minimum cut is plain: load every target. That plan is
made directly; otherwise ``min_cut`` (Dinic's maximum flow, here: a graph library would cost
more to import than these graphs take to cut) finds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

INFINITE = math.inf
# What replaying a cell is expected to cost beyond its recorded duration: runs vary, and a
# replay compiles the cell and re-runs its side effects, so ties go to loading.
REPLAY_FACTOR = 1.2
REPLAY_OVERHEAD_S = 0.005


def replay_seconds(recorded_duration: float) -> float:
    return recorded_duration * REPLAY_FACTOR + REPLAY_OVERHEAD_S


@dataclass(frozen=True)
class CellNode:
    """A recorded cell run on the way to the target."""

    id: int
    order: int  # position in the path (replays run in this order)
    duration: float  # expected seconds to replay it (see replay_seconds)
    inputs: frozenset[int]  # version ids it read
    outputs: frozenset[int]  # version ids it produced


@dataclass(frozen=True)
class VersionNode:
    id: int
    load_seconds: float  # math.inf when it cannot be loaded
    produced_by: int | None  # the cell run that made it; None: no cell can reproduce it
    # Seconds to check the value a replay gives against the recorded fingerprint (pickling it
    # again), paid for a target whose cell is replayed.
    check_seconds: float = 0.0


@dataclass
class Plan:
    load: list[int] = field(default_factory=list)  # version ids
    replay: list[int] = field(default_factory=list)  # cell run ids, in run order
    seconds: float = 0.0  # estimated
    load_all_seconds: float = INFINITE
    # None: not worked out (pruning left cells unexplored; see replay_all_seconds)
    replay_all_seconds: float | None = INFINITE

    def describe(self, names: Mapping[int, list[str]], code: Mapping[int, str] | None = None) -> str:
        others = [f"load everything: {_fmt(self.load_all_seconds)}"]
        if self.replay_all_seconds is not None:
            others.append(f"replay everything: {_fmt(self.replay_all_seconds)}")
        lines = [f"estimated restore time {self.seconds:.2f} s ({', '.join(others)})"]
        if self.load:
            lines.append("load:   " + ", ".join(n for v in self.load for n in names.get(v, [f"#{v}"])))
        if self.replay:
            lines.append(f"replay: {len(self.replay)} cell(s)")
            for c in self.replay:
                first = (code or {}).get(c, "").strip().splitlines()
                lines.append(f"  cell run {c}: {first[0][:60] if first else ''}")
        return "\n".join(lines)


def _fmt(seconds: float) -> str:
    return "impossible" if math.isinf(seconds) else f"{seconds:.2f} s"


class Infeasible(Exception):
    """No mix of loading and replaying can restore the target."""


def solve(
    targets: Iterable[int],
    version: Callable[[int], VersionNode],
    cell: Callable[[int], CellNode | None],
    prune: bool = True,
) -> Plan:
    """The cheapest plan that makes every target version exist.

    ``version`` and ``cell`` fetch nodes on demand, so only the lineage that matters is read.
    With ``prune``, a version that loads faster than its cell ran is simply loaded, and its
    cell's lineage is not explored (the plan may then pay that load where replaying the cell
    would have cost less: at most the load time). Such a version whose cell the plan replays
    anyway, for another of its outputs, is taken from that replay.
    """
    wanted = set(targets)
    targets = sorted(wanted)
    src, sink = "source", "sink"
    edges: list[tuple[Any, Any, float | None]] = [(src, ("need", t), None) for t in targets]  # None: infinite
    versions: dict[int, VersionNode] = {}
    cells: dict[int, CellNode] = {}
    pruned: set[int] = set()  # versions loaded without looking at their cell
    work = list(targets)
    while work:
        v = work.pop()
        if v in versions:
            continue
        node = versions[v] = version(v)
        load = node.load_seconds
        edges.append((("need", v), ("recompute", v), None if math.isinf(load) else load))
        c = cells.get(node.produced_by) if node.produced_by in cells else (cell(node.produced_by) if node.produced_by is not None else None)
        check = node.check_seconds if v in wanted else 0.0
        if c is None or (prune and load <= c.duration + check):
            edges.append((("recompute", v), sink, None))  # recomputing it is impossible (or never better)
            if c is not None:
                pruned.add(v)
            continue
        edges.append((("recompute", v), ("replay", c.id), None))
        if check:
            # A target is taken from the replay of its cell whenever that cell runs (and checked).
            edges.append((("replay", c.id), ("check", v), None))
            edges.append((("check", v), sink, check))
        if c.id in cells:
            continue
        cells[c.id] = c
        edges.append((("replay", c.id), sink, c.duration))
        for u in c.inputs:
            edges.append((("replay", c.id), ("need", u), None))
            work.append(u)
    load_all = sum(versions[t].load_seconds for t in targets)
    if not cells:
        # Only targets were reached, each cut off from the sink by its load alone.
        if math.isinf(load_all):
            raise Infeasible("some version can be neither loaded nor recomputed from what was recorded")
        plan = Plan(load=list(targets), seconds=load_all)
    else:
        plan = _cut(edges, src, sink)
        plan.replay.sort(key=lambda c: cells[c].order)
        _take_from_replays(plan, pruned, versions, wanted)
    plan.load_all_seconds = load_all
    plan.replay_all_seconds = replay_all_seconds(targets, versions.__getitem__, cells.get) if not pruned else None
    return plan


def _take_from_replays(plan: Plan, pruned: set[int], versions: Mapping[int, VersionNode], wanted: set[int]) -> None:
    """A pruned version whose cell the plan replays anyway (for another of its outputs) comes
    from that replay, as a restore takes it: it is not loaded, and a target is checked instead."""
    replayed = set(plan.replay)
    for v in [v for v in plan.load if v in pruned and versions[v].produced_by in replayed]:
        plan.load.remove(v)
        plan.seconds += (versions[v].check_seconds if v in wanted else 0.0) - versions[v].load_seconds


def replay_all_seconds(targets: Iterable[int], version: Callable[[int], VersionNode], cell: Callable[[int], CellNode | None]) -> float:
    """Seconds to rebuild ``targets`` by replaying every cell of their lineage that can be
    replayed (as rerunning the notebook would), loading only the versions no cell can make;
    infinite when one of those cannot be loaded either. Walks the whole lineage."""
    wanted = set(targets)
    total = 0.0
    seen: set[int] = set()
    replayed: set[int] = set()
    work = list(wanted)
    while work:
        v = work.pop()
        if v in seen:
            continue
        seen.add(v)
        node = version(v)
        c = cell(node.produced_by) if node.produced_by is not None else None
        if c is None:
            total += node.load_seconds
            continue
        if v in wanted:
            total += node.check_seconds
        if c.id not in replayed:
            replayed.add(c.id)
            total += c.duration
            work.extend(c.inputs)
    return total


def _cut(edges: list[tuple[Any, Any, float | None]], src: str, sink: str) -> Plan:
    """The plan of the graph's minimum cut (versions to load, cells to replay, unordered)."""
    index: dict[Any, int] = {src: 0, sink: 1}
    numbered = [(index.setdefault(a, len(index)), index.setdefault(b, len(index)), INFINITE if c is None else c) for a, b, c in edges]
    cost, source_side = min_cut(len(index), numbered, 0, 1)
    nodes = list(index)
    side = {nodes[i] for i in source_side}
    plan = Plan(seconds=cost)
    for node in side:
        if isinstance(node, tuple) and node[0] == "need" and ("recompute", node[1]) not in side:
            plan.load.append(node[1])
        elif isinstance(node, tuple) and node[0] == "replay":
            plan.replay.append(node[1])
    plan.load.sort()
    return plan


def min_cut(n: int, edges: list[tuple[int, int, float]], s: int, t: int) -> tuple[float, set[int]]:
    """The value of a minimum s-t cut of a directed graph of nodes 0..n-1 and the source side of
    the largest such cut: every node but those that reach the sink in the residual graph of a
    maximum flow (the same set for every maximum flow, and the side networkx's minimum_cut
    gives). Capacities may be infinite; raises Infeasible when an infinite path joins s to t. Dinic's algorithm: breadth-first levels, then blocking flows
    along them, all without recursion (a long chain of cells makes a deep graph)."""
    head: list[list[int]] = [[] for _ in range(n)]
    to: list[int] = []
    cap: list[float] = []
    for u, v, c in edges:
        head[u].append(len(to))
        to.append(v)
        cap.append(c)
        head[v].append(len(to))
        to.append(u)
        cap.append(0.0)
    if t in _reached(s, head, to, lambda e: cap[e] == INFINITE):
        raise Infeasible("some version can be neither loaded nor recomputed from what was recorded")
    eps = 1e-12 * (1.0 + sum(c for c in cap if c != INFINITE))
    flow = 0.0
    while True:
        level = [-1] * n
        level[s] = 0
        queue = [s]
        for u in queue:
            for e in head[u]:
                if cap[e] > eps and level[to[e]] < 0:
                    level[to[e]] = level[u] + 1
                    queue.append(to[e])
        if level[t] < 0:
            break
        nxt = [0] * n
        while True:
            path: list[int] = []
            u = s
            while u != t:
                edges_u = head[u]
                while nxt[u] < len(edges_u):
                    e = edges_u[nxt[u]]
                    if cap[e] > eps and level[to[e]] == level[u] + 1:
                        break
                    nxt[u] += 1
                if nxt[u] < len(edges_u):
                    e = edges_u[nxt[u]]
                    path.append(e)
                    u = to[e]
                elif u == s:
                    break
                else:  # a dead end: never try it again in this phase
                    level[u] = -1
                    u = to[path.pop() ^ 1]
                    nxt[u] += 1
            if u != t:
                break
            pushed = min(cap[e] for e in path)
            for e in path:
                cap[e] -= pushed
                cap[e ^ 1] += pushed
            flow += pushed
    return flow, set(range(n)) - _reached(t, head, to, lambda e: cap[e ^ 1] > eps)


def _reached(s: int, head: list[list[int]], to: list[int], usable: Callable[[int], bool]) -> set[int]:
    """The nodes reached from ``s`` by the edges ``usable`` accepts (edge ids, from ``head``)."""
    seen = {s}
    queue = [s]
    for u in queue:
        for e in head[u]:
            if to[e] not in seen and usable(e):
                seen.add(to[e])
                queue.append(to[e])
    return seen
