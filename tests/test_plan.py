"""The load-or-recompute planner on hand-built graphs whose best plans are known."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from nbstate.plan import CellNode, Infeasible, VersionNode, replay_all_seconds, solve

INF = math.inf


def graph(cells, versions):
    cs = {c.id: c for c in cells}
    vs = {v.id: v for v in versions}
    return vs.__getitem__, cs.get


def cell(cid, order, duration, inputs=(), outputs=()):
    return CellNode(cid, order, duration, frozenset(inputs), frozenset(outputs))


def test_loading_wins_when_the_cell_was_slow():
    # v1 (100 MB, loads in 0.5 s) came from a 30 s simulation
    v, c = graph([cell(1, 1, 30.0, (), (1,))], [VersionNode(1, 0.5, 1)])
    plan = solve([1], v, c, prune=False)
    assert plan.load == [1] and plan.replay == [] and plan.seconds == pytest.approx(0.5)


def test_recomputing_wins_when_the_cell_was_cheap():
    # a 2 GB array of zeros: 8 s to load, 0.2 s to make again
    v, c = graph([cell(1, 1, 0.2, (), (1,))], [VersionNode(1, 8.0, 1)])
    plan = solve([1], v, c, prune=False)
    assert plan.load == [] and plan.replay == [1] and plan.seconds == pytest.approx(0.2)


def test_unserializable_must_be_replayed_and_its_inputs_come_cheapest():
    # cell 1 makes data (slow, 10 s; data loads in 1 s); cell 2 makes a generator from data (0.01 s)
    cells = [cell(1, 1, 10.0, (), (1,)), cell(2, 2, 0.01, (1,), (2,))]
    versions = [VersionNode(1, 1.0, 1), VersionNode(2, INF, 2)]
    v, c = graph(cells, versions)
    plan = solve([2], v, c, prune=False)
    assert plan.replay == [2] and plan.load == [1]
    assert plan.seconds == pytest.approx(1.01)


def test_one_replay_serves_every_output_of_the_cell():
    # one cheap cell produced two big versions: replay once instead of loading both
    cells = [cell(1, 1, 1.5, (), (1, 2))]
    versions = [VersionNode(1, 1.0, 1), VersionNode(2, 1.0, 1)]
    v, c = graph(cells, versions)
    plan = solve([1, 2], v, c, prune=False)
    assert plan.replay == [1] and plan.load == [] and plan.seconds == pytest.approx(1.5)


def test_checking_a_replayed_target_counts_against_replaying_it():
    # a quick cell (0.2 s) made many small records: loading them takes 0.5 s, but the replay's
    # value must be pickled again to be checked against the recorded fingerprint (0.4 s)
    v, c = graph([cell(1, 1, 0.2, (), (1,))], [VersionNode(1, 0.5, 1, 0.4)])
    for prune in (False, True):
        plan = solve([1], v, c, prune=prune)
        assert plan.load == [1] and plan.replay == [] and plan.seconds == pytest.approx(0.5)
    # a cell that must run anyway (it made a generator) gives its other target too: checked
    cells = [cell(1, 1, 0.2, (), (1, 2))]
    versions = [VersionNode(1, 0.5, 1, 0.1), VersionNode(2, INF, 1)]
    v, c = graph(cells, versions)
    plan = solve([1, 2], v, c, prune=False)
    assert plan.replay == [1] and plan.load == [] and plan.seconds == pytest.approx(0.3)
    assert plan.replay_all_seconds == pytest.approx(0.3)
    # only a target is checked: an input the replays use is not
    cells = [cell(1, 1, 0.2, (), (1,)), cell(2, 2, 0.1, (1,), (2,))]
    versions = [VersionNode(1, 0.5, 1, 0.4), VersionNode(2, INF, 2)]
    v, c = graph(cells, versions)
    plan = solve([2], v, c, prune=False)
    assert plan.replay == [1, 2] and plan.seconds == pytest.approx(0.3)


def test_replays_run_in_recorded_order():
    cells = [cell(7, 1, 0.1, (), (1,)), cell(3, 2, 0.1, (1,), (2,)), cell(5, 3, 0.1, (2,), (3,))]
    versions = [VersionNode(1, INF, 7), VersionNode(2, INF, 3), VersionNode(3, INF, 5)]
    v, c = graph(cells, versions)
    assert solve([3], v, c).replay == [7, 3, 5]


def test_nothing_can_restore_a_version_without_bytes_or_cell():
    v, c = graph([], [VersionNode(1, INF, None)])
    with pytest.raises(Infeasible):
        solve([1], v, c)


@pytest.mark.parametrize("shared", [0.0, 0.4])
def test_plan_is_never_worse_than_load_all_or_replay_all(shared):
    for n, cells, versions, v, c, targets in _random_cases(seed=7, count=200, most=7, reproducible=1.0, shared=shared):
        plan = solve(targets, v, c, prune=False)
        assert plan.seconds <= plan.load_all_seconds + 1e-9
        assert plan.seconds <= plan.replay_all_seconds + 1e-9
        # brute force over every subset of cells to replay: the cut is optimal
        best = INF
        for k in range(n + 1):
            for replayed in itertools.combinations(range(1, n + 1), k):
                cost = _cost(set(replayed), targets, cells, versions)
                best = min(best, cost)
        assert plan.seconds == pytest.approx(best)


def _random_cases(seed, count, most, reproducible, shared=0.0):
    """``count`` random graphs of 1 to ``most`` cells (see _random_chain), each with its lookups
    and some targets: (n, cells, versions, version lookup, cell lookup, targets)."""
    rng = random.Random(seed)
    for _ in range(count):
        n = rng.randint(1, most)
        cells, versions = _random_chain(rng, n, reproducible, shared)
        v, c = graph(cells, versions)
        yield n, cells, versions, v, c, rng.sample(range(1, n + 1), rng.randint(1, n))


def _random_chain(rng, n, reproducible, shared=0.0):
    """n cells, cell i making version i from some earlier versions; each version's cell is
    recorded with probability ``reproducible``. With probability ``shared`` version i is made
    by the cell that made version i - 1 instead (a cell with several outputs; cell i then
    makes none)."""
    cells, versions = [], []
    made_by = {}
    for i in range(1, n + 1):
        made_by[i] = made_by[i - 1] if i > 1 and rng.random() < shared else i
        inputs = [j for j in range(1, i) if made_by[j] < made_by[i] and rng.random() < 0.4] if made_by[i] == i else []
        duration = rng.choice([0.01, 0.5, 3.0, 20.0])
        if made_by[i] == i:
            cells.append(cell(i, i, duration, inputs, (i,)))
        else:
            old = cells[made_by[i] - 1]
            cells[made_by[i] - 1] = cell(old.id, old.order, old.duration, old.inputs, old.outputs | {i})
            cells.append(cell(i, i, duration, (), ()))
        producer = made_by[i] if rng.random() < reproducible else None
        versions.append(VersionNode(i, rng.choice([0.05, 1.0, 5.0, INF]), producer, rng.choice([0.0, 0.0, 0.2, 4.0])))
    return cells, versions


def _cost(replayed, targets, cells, versions):
    by_id = {c.id: c for c in cells}
    vs = {v.id: v for v in versions}
    needed = set(targets) | {u for c in replayed for u in by_id[c].inputs}
    total = sum(by_id[c].duration for c in replayed)
    for u in needed:
        if vs[u].produced_by not in replayed:
            total += vs[u].load_seconds
        elif u in targets:
            total += vs[u].check_seconds  # a target taken from a replay is checked
    return total


def test_pruning_loads_versions_that_load_faster_than_their_cell():
    cells = [cell(1, 1, 5.0, (), (1,))]
    calls = []

    def fetch_cell(cid):
        calls.append(cid)
        return {1: cells[0]}.get(cid)

    plan = solve([1], {1: VersionNode(1, 0.1, 1)}.__getitem__, fetch_cell, prune=True)
    assert plan.load == [1] and plan.replay == []


def test_replay_everything_is_worked_out_over_the_whole_lineage_not_the_pruned_graph():
    # three slow cells (data 4 s -> model 3 s -> report 2 s), each version quick to load: the
    # pruned plan loads the targets without looking past them, so it cannot say what rerunning
    # costs; the walk over the whole lineage can (the session's start state, version 9, loads)
    cells = [cell(1, 1, 4.0, (9,), (1,)), cell(2, 2, 3.0, (1,), (2,)), cell(3, 3, 2.0, (1, 2), (3,))]
    versions = [VersionNode(1, 0.1, 1), VersionNode(2, 0.1, 2), VersionNode(3, 0.1, 3), VersionNode(9, 0.25, None)]
    v, c = graph(cells, versions)
    pruned = solve([2, 3], v, c)
    assert pruned.load == [2, 3] and pruned.seconds == pytest.approx(0.2)
    assert pruned.replay_all_seconds is None
    assert "replay everything" not in pruned.describe({2: ["model"], 3: ["report"]})
    assert replay_all_seconds([2, 3], v, c) == pytest.approx(4.0 + 3.0 + 2.0 + 0.25)
    full = solve([2, 3], v, c, prune=False)
    assert full.replay_all_seconds == pytest.approx(9.25)
    assert "replay everything: 9.25 s" in full.describe({2: ["model"], 3: ["report"]})
    # a version no cell can make and no bytes can load: rerunning cannot rebuild it either
    versions[3] = VersionNode(9, INF, None)
    assert math.isinf(replay_all_seconds([3], graph(cells, versions)[0], c))


@pytest.mark.parametrize("shared", [0.0, 0.4])
def test_replay_everything_is_what_replaying_every_reproducible_cell_costs(shared):
    for _, cells, versions, v, c, targets in _random_cases(seed=5, count=200, most=7, reproducible=0.7, shared=shared):
        # every cell recorded as making a version on the way is on the lineage
        lineage, work = set(), [t for t in targets]
        while work:
            p = versions[work.pop() - 1].produced_by
            if p is not None and p not in lineage:
                lineage.add(p)
                work.extend(cells[p - 1].inputs)
        assert replay_all_seconds(targets, v, c) == pytest.approx(_cost(lineage, targets, cells, versions))


@pytest.mark.parametrize("shared", [0.0, 0.4])
def test_pruned_plans_match_the_brute_force_with_or_without_a_cut(shared):
    # with pruning, many graphs have no replay node left: those plans are made without a cut,
    # and must cost what the best mix costs (within the loads pruning may pay); with cells of
    # several outputs, a version loaded unexplored whose cell is replayed anyway comes from it
    direct = 0
    for n, cells, versions, v, c, targets in _random_cases(seed=11, count=300, most=6, reproducible=0.8, shared=shared):
        producers = {x.produced_by for x in versions}
        best = min(
            _cost(set(r), targets, cells, versions) for k in range(n + 1) for r in itertools.combinations(range(1, n + 1), k)
            if set(r) <= producers
        )
        if math.isinf(best):
            with pytest.raises(Infeasible):
                solve(targets, v, c)
            continue
        plan = solve(targets, v, c)
        if not plan.replay:
            direct += 1
        assert plan.seconds >= best - 1e-9
        assert plan.seconds <= best + sum(versions[t - 1].load_seconds for t in targets if not math.isinf(versions[t - 1].load_seconds)) + 1e-9
        # the plan restores every target: loaded, or made by a replayed cell
        assert all(t in plan.load or versions[t - 1].produced_by in plan.replay for t in targets)
        assert not any(versions[u - 1].produced_by in plan.replay for u in plan.load)
        assert plan.seconds == pytest.approx(_cost(set(plan.replay), targets, cells, versions))
    assert direct > 50  # the direct path was exercised


def test_a_version_loaded_unexplored_comes_from_its_cell_when_that_is_replayed_anyway():
    # cell 1 makes a quick-to-load table (1) and a lock (2, unserializable); cell 2 reads the
    # table and makes another lock (3). Pruning loads the table without looking at cell 1, but
    # the locks need cells 1 and 2 replayed: the table then comes from the replay of cell 1, so
    # it is neither loaded for cell 2 nor paid as a load, and as a target it is checked instead
    cells = [cell(1, 1, 1.0, (), (1, 2)), cell(2, 2, 0.5, (1,), (3,))]
    versions = [VersionNode(1, 0.1, 1, 0.04), VersionNode(2, INF, 1), VersionNode(3, INF, 2)]
    v, c = graph(cells, versions)
    as_input = solve([2, 3], v, c)
    assert as_input.load == [] and as_input.replay == [1, 2]
    assert as_input.seconds == pytest.approx(1.5)
    as_target = solve([1, 2, 3], v, c)
    assert as_target.load == [] and as_target.replay == [1, 2]
    assert as_target.seconds == pytest.approx(1.54)
    assert as_target.seconds == pytest.approx(solve([1, 2, 3], v, c, prune=False).seconds)


def test_planning_imports_no_graph_library():
    import subprocess
    import sys

    code = (
        "import sys, math\n"
        "from nbstate.plan import CellNode, VersionNode, solve\n"
        "cells = {1: CellNode(1, 1, 5.0, frozenset(), frozenset({1}))}\n"
        "versions = {1: VersionNode(1, 0.1, 1), 2: VersionNode(2, 0.2, None)}\n"
        "plan = solve([1, 2], versions.__getitem__, cells.get)\n"
        "assert plan.load == [1, 2] and plan.replay == [] and math.isclose(plan.seconds, 0.3), plan\n"
        "versions[1] = VersionNode(1, 9.0, 1)\n"
        "assert solve([1], versions.__getitem__, cells.get).replay == [1]\n"
        "assert 'networkx' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_min_cut_agrees_with_networkx_on_random_graphs():
    # the value, and the source side (the largest minimum cut's: the same for every maximum flow)
    nx = pytest.importorskip("networkx")
    from nbstate.plan import min_cut

    rng = random.Random(3)
    for _ in range(400):
        n = rng.randint(2, 12)
        edges = {}
        for _ in range(rng.randint(1, 3 * n)):
            u, v = rng.randrange(n), rng.randrange(n)
            if u != v:
                edges[(u, v)] = rng.choice([INF, 0.0005, 0.01, 0.5, 1.0, 3.0, 20.0, rng.random()])
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        for (u, v), c in edges.items():
            g.add_edge(u, v) if math.isinf(c) else g.add_edge(u, v, capacity=c)
        try:
            value, (side, _) = nx.minimum_cut(g, 0, 1)
        except nx.NetworkXUnbounded:
            with pytest.raises(Infeasible):
                min_cut(n, [(u, v, c) for (u, v), c in edges.items()], 0, 1)
            continue
        mine, my_side = min_cut(n, [(u, v, c) for (u, v), c in edges.items()], 0, 1)
        assert mine == pytest.approx(value)
        assert my_side == set(side)


def test_min_cut_of_a_long_chain_needs_no_deep_recursion():
    from nbstate.plan import min_cut

    n = 20_000
    edges = [(i, i + 1, INF) for i in range(2, n - 1)] + [(0, 2, INF), (n - 1, 1, 2.5)]
    value, side = min_cut(n, edges, 0, 1)
    assert value == 2.5 and side == set(range(n)) - {1}
