"""What a cell reads, writes and deletes is observed, and only that is examined (real kernels).

Every cell becomes one commit; ``%nbstate log --json`` says per commit which names were created,
changed and deleted, and which were ``examined`` (serialized to decide). These tests run cells
that reach names in every way Python allows and check those lists exactly.
"""

from __future__ import annotations

# IPython's own names: whatever cells do with them, they are never user state.
IPYTHON_NAMES = {"In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh", "_dh", "_exit_code",
                 "exit", "quit", "get_ipython", "open"}


# A module outside the notebook whose functions set and remove names of __main__'s namespace.
MAIN_WRITER = "import sys, types\nhelper = types.ModuleType('helper')\nexec('def put(k, v):\\n    vars(sys.modules[\"__main__\"])[k] = v\\ndef drop(k):\\n    vars(sys.modules[\"__main__\"]).pop(k)', vars(helper))\nhelper.sys = sys"


def run(kernel, code: str) -> dict:
    """Run a cell that must succeed and return its commit's log entry."""
    kernel.ok(code)
    entry = kernel.log()[0]
    assert entry["first_line"] == code.strip().splitlines()[0], "the cell made no commit"
    return entry


def examined_values(entry: dict, classes: set[str]) -> list[str]:
    """Examined names other than notebook classes (a class is looked at with its instances)."""
    return [n for n in entry["examined"] if n not in classes]


def names_in(entry: dict) -> set[str]:
    return set(entry["created"]) | set(entry["changed"]) | set(entry["deleted"])


def last_run(kernel) -> dict:
    """The reads, writes and deletes the store recorded for the last cell run."""
    return kernel.inside(
        "r = rec.store.cell_run(rec.last_commit.cell_run_id)\n"
        "result = {'reads': r.reads, 'writes': r.writes, 'deletes': r.deletes, 'examined': r.examined}"
    )


def test_assignments_augmented_assignments_deletes_and_imports(kernel):
    e = run(kernel, "x = 1\ny = [1]")
    assert (e["created"], e["changed"], e["examined"]) == (["x", "y"], [], ["x", "y"])
    e = run(kernel, "x += 1")
    assert (e["created"], e["changed"], e["examined"]) == ([], ["x"], ["x"])
    e = run(kernel, "y += [2]")  # in place: same object, new value
    assert (e["changed"], e["examined"]) == (["y"], ["y"])
    e = run(kernel, "del x")
    assert (e["deleted"], e["changed"], e["created"]) == (["x"], [], [])
    e = run(kernel, "import os, json as j\nfrom math import pi as PI")
    assert e["created"] == ["PI", "j", "os"]
    e = run(kernel, "(w := 5)")  # walrus
    assert e["created"] == ["w"]
    e = run(kernel, "for i in range(3):\n    pass")
    assert e["created"] == ["i"]
    e = run(kernel, "try:\n    1 / 0\nexcept ZeroDivisionError as err:\n    caught = str(err)")
    assert e["created"] == ["caught"]  # `err` is unbound again at the end of the handler
    assert kernel.value("sorted(n for n in ['x', 'y', 'PI', 'j', 'os', 'w', 'i', 'caught'] if n in globals())") == [
        "PI", "caught", "i", "j", "os", "w", "y"]


def test_reads_are_recorded_and_examined_without_a_change(kernel):
    kernel.ok("a = [1, 2]\nb = {'k': 1}\nc = 3")
    e = run(kernel, "print(len(a), b['k'])")
    assert (e["examined"], e["changed"], e["bytes_added"]) == (["a", "b"], [], 0)
    r = last_run(kernel)
    assert r["reads"] == ["a", "b"] and r["writes"] == [] and r["deletes"] == []
    e = run(kernel, "d = c * 2")
    assert (e["created"], e["examined"]) == (["d"], ["c", "d"])
    assert last_run(kernel)["reads"] == ["c"]


def test_names_with_one_underscore_are_user_state(kernel):
    e = run(kernel, "_tmp = [1]\n_cache = {}")
    assert e["created"] == ["_cache", "_tmp"]
    e = run(kernel, "_tmp.append(2)")
    assert e["changed"] == ["_tmp"]
    e = run(kernel, "del _cache")
    assert e["deleted"] == ["_cache"]


def test_globals_subscript_assignment_is_seen(kernel):
    kernel.ok("a = 1")
    e = run(kernel, "globals()['k'] = [7]")
    assert e["created"] == ["k"]
    assert "a" in e["examined"]  # globals() may reach anything: everything is looked at
    e = run(kernel, "globals()['k'].append(8)")
    assert e["changed"] == ["k"]
    e = run(kernel, "del globals()['k']")
    assert e["deleted"] == ["k"]
    e = run(kernel, "exec('late = 1')")
    assert e["created"] == ["late"]


def test_names_added_and_removed_behind_the_syntax_are_seen(kernel):
    # A module outside the notebook changes __main__'s namespace: no cell's syntax shows it.
    # Names are found as they come and go, whatever else the namespace holds (IPython's output
    # history here), also when one goes and another comes in the same cell.
    kernel.ok(MAIN_WRITER)
    for i in range(5):
        kernel.ok(f"{i} * 2")  # outputs: IPython adds _N names
    e = run(kernel, "helper.put('p', [1])")
    assert e["created"] == ["p"]
    e = run(kernel, "helper.drop('p'); helper.put('q', [2])")
    assert (e["created"], e["deleted"]) == (["q"], ["p"])
    e = run(kernel, "helper.drop('q')")
    assert e["deleted"] == ["q"]
    names = kernel.value("sorted(__import__('nbstate').recorder_of(get_ipython()).user_names())")
    assert [n for n in names if n != "_nbstate_json"] == ["helper", "sys", "types"]


def test_changes_made_through_notebook_functions(kernel):
    kernel.ok("data = []\ncounter = 0")
    kernel.ok("def setg():\n    global g\n    g = [1]")
    e = run(kernel, "setg()")
    assert e["created"] == ["g"] and e["changed"] == []
    kernel.ok("def bump():\n    global counter\n    counter += 1")
    e = run(kernel, "bump()")
    assert e["changed"] == ["counter"]
    kernel.ok("def grow():\n    data.append(1)")
    e = run(kernel, "grow()")
    assert e["changed"] == ["data"]
    kernel.ok("def outer():\n    grow()")
    e = run(kernel, "outer()")  # transitively
    assert e["changed"] == ["data"]
    kernel.ok("def make():\n    def inner():\n        data.append(2)\n    return inner\nh = make()")
    e = run(kernel, "h()")  # a closure made by a notebook function
    assert e["changed"] == ["data"]
    kernel.ok("import functools\nadd3 = functools.partial(lambda lst, v: lst.append(v), data)")
    e = run(kernel, "add3(3)")  # the list is bound in the partial: one co-variable with add3
    assert e["changed"] == ["add3", "data"]
    kernel.ok("del add3")
    kernel.ok(
        "class Box:\n"
        "    def __init__(self):\n"
        "        self.n = 0\n"
        "    def put(self):\n"
        "        data.append(4)\n"
        "    @property\n"
        "    def peek(self):\n"
        "        data.append(5)\n"
        "        return self.n\n"
        "box = Box()"
    )
    e = run(kernel, "box.put()")  # a method of a notebook class
    assert e["changed"] == ["data"]
    e = run(kernel, "box.peek")  # a property
    assert e["changed"] == ["data"]
    kernel.ok("ops = {'grow': grow}\nboxes = [Box()]")
    e = run(kernel, "ops['grow']()")  # a function held by a container
    assert e["changed"] == ["data"]
    e = run(kernel, "boxes[0].put()")  # an instance held by a container
    assert e["changed"] == ["data"]
    assert kernel.value("[data, counter, g]") == [[1, 1, 2, 3, 4, 5, 1, 4], 1, [1]]


def test_ipython_names_are_never_user_state(kernel):
    kernel.ok("1 + 1")
    kernel.ok("2 + 2")
    kernel.ok("y = _ + __")
    kernel.ok("z = _i2 + _i3")
    kernel.ok("w = _2 + _3")
    kernel.ok("q = len(In) + len(Out)")
    kernel.ok("ex = callable(exit) and callable(quit) and get_ipython() is not None")
    kernel.ok("!true")
    kernel.ok("_ = 5\n__ = 6")  # even when a cell assigns them
    kernel.ok("print(_oh, _ih, _dh, _ii, _iii, _i)")
    entries = kernel.log()
    seen = set().union(*(names_in(e) for e in entries))
    assert seen == {"y", "z", "w", "q", "ex"}
    assert kernel.value("[y, z, w, q > 0, ex]") == [6, "1 + 12 + 2", 6, True, True]
    assert kernel.inside("result = sorted(rec.tracker.all_names())") == ["ex", "q", "w", "y", "z"]
    ipython = kernel.inside("result = sorted(n for n in ns if not rec.is_user_name(n))")
    assert {"In", "Out", "_", "__", "_i2", "_2", "exit", "get_ipython", "_exit_code"} <= set(ipython)


def test_a_small_cell_does_not_examine_a_large_untouched_array(kernel):
    kernel.ok("import numpy as np\nbig = np.arange(25_000_000, dtype=np.float64)")  # 200 MB
    created = kernel.log()[0]
    assert created["created"] == ["big", "np"] and created["bytes_added"] > 1_000_000
    e = run(kernel, "x = 1")
    assert e["examined"] == ["x"] and e["created"] == ["x"]
    assert e["bytes_added"] < 1000
    e = run(kernel, "s = big.sum()")  # reads big: examined, unchanged, nothing stored for it
    assert e["examined"] == ["big", "s"]
    assert e["created"] == ["s"] and e["changed"] == []
    assert e["bytes_added"] < 1000
    e = run(kernel, "big[0] = -1.0")  # a one-element write stores about one chunk, not 200 MB
    assert e["changed"] == ["big"] and e["examined"] == ["big"]
    assert 0 < e["bytes_added"] < 2 * 2**20
    e = run(kernel, "y = x + 1")
    assert e["examined"] == ["x", "y"]
    assert kernel.value("float(big[:3].sum())") == 2.0


def test_container_mutation_is_a_change(kernel):
    for setup, cell, changed in [
        ("a1 = [1]", "a1.append(2)", ["a1"]),
        ("a2 = [1]", "a2[0] = 5", ["a2"]),
        ("a3 = [1, 2, 3]", "a3.sort(reverse=True)", ["a3"]),
        ("a4 = [7, 8, 9]", "a4.pop()", ["a4"]),
        ("d1 = {'k': 1}", "d1['k'] = 2", ["d1"]),
        ("d2 = {'k': [1]}", "d2['k'].append(2)", ["d2"]),
        ("d3 = {'k': 1}", "d3.update(j=2)", ["d3"]),
        ("s1 = {1}", "s1.add(2)", ["s1"]),
        ("s2 = {1, 2}", "s2.discard(1)", ["s2"]),
        ("b1 = bytearray(b'ab')", "b1[0] = 120", ["b1"]),
    ]:
        kernel.ok(setup)
        e = run(kernel, cell)
        assert (e["changed"], e["created"], e["examined"]) == (changed, [], changed), cell
        assert e["bytes_added"] > 0, cell
    assert kernel.value("[a1, a3, a4, d2, sorted(s2), b1.decode()]") == [[1, 2], [3, 2, 1], [7, 8], {"k": [1, 2]}, [2], "xb"]


def test_in_place_changes_of_objects_arrays_and_frames(kernel):
    kernel.ok(
        "import numpy as np\nimport pandas as pd\n"
        "class Obj:\n    pass\n"
        "o = Obj()\no.v = 1\n"
        "arr = np.zeros(10)\n"
        "df = pd.DataFrame({'a': [1, 2, 3], 'b': [4.0, 5.0, 6.0]})"
    )
    cases = [
        ("o.v = 2", ["o"]),
        ("o.w = [1]", ["o"]),
        ("o.w.append(2)", ["o"]),
        ("del o.v", ["o"]),
        ("arr[3] = 7.0", ["arr"]),
        ("arr[5:8] = 1.0", ["arr"]),
        ("arr *= 2", ["arr"]),
        ("np.add(arr, 1, out=arr)", ["arr"]),
        ("df.loc[0, 'a'] = 9", ["df"]),
        ("df.iloc[1, 1] = -1.0", ["df"]),
        ("df['c'] = df['a'] * 2", ["df"]),
        ("df.index = ['x', 'y', 'z']", ["df"]),
        ("df.index.name = 'key'", ["df"]),
        ("df.columns = ['A', 'B', 'C']", ["df"]),
        ("df.rename(columns={'A': 'AA'}, inplace=True)", ["df"]),
        ("df.drop(columns=['C'], inplace=True)", ["df"]),
        ("df.sort_values('AA', inplace=True)", ["df"]),
    ]
    for cell, changed in cases:
        e = run(kernel, cell)
        assert e["changed"] == changed, cell
        assert e["bytes_added"] > 0, cell
    # Touched but unchanged: examined, not changed, nothing written.
    for cell, examined in [
        ("len(o.w)", ["o"]),
        ("arr.sum()", ["arr"]),
        ("arr[:3].copy()", ["arr"]),
        ("df.describe()", ["df"]),
        ("df.loc['x', 'AA'] = df.loc['x', 'AA']", ["df"]),
        ("o.v2 = 1\ndel o.v2", ["o"]),
    ]:
        e = run(kernel, cell)
        assert (e["changed"], e["created"], e["bytes_added"]) == ([], [], 0), cell
        assert examined_values(e, {"Obj"}) == examined, cell
    assert kernel.value("[df.columns.tolist(), df.index.name, float(arr.sum()), o.w]") == [
        ["AA", "B"], "key", 2 * (7 + 3) + 10, [1, 2]]


def test_changes_through_aliases_and_functions(kernel):
    kernel.ok("a = [1]\nb = a\nc = [a]\nother = [0]")
    e = run(kernel, "b.append(2)")  # through a second name
    assert e["changed"] == ["a", "b", "c"]
    e = run(kernel, "c[0].append(3)")  # through a container
    assert e["changed"] == ["a", "b", "c"]
    kernel.ok("def add(lst, v):\n    lst.append(v)")
    e = run(kernel, "add(a, 4)")  # inside a notebook function called with it
    assert e["changed"] == ["a", "b", "c"]
    kernel.ok("def add_to_a():\n    a.append(5)")
    e = run(kernel, "add_to_a()")  # inside a notebook function that names it
    assert e["changed"] == ["a", "b", "c"]
    e = run(kernel, "len(a)")  # touched, not changed
    assert (e["changed"], e["bytes_added"]) == ([], 0)
    assert e["examined"] == ["a", "b", "c"]
    assert "other" not in e["examined"]
    assert kernel.value("[a, c]") == [[1, 2, 3, 4, 5], [[1, 2, 3, 4, 5]]]


def test_code_resumed_in_generators_is_seen(kernel):
    kernel.ok("acc = []\ngen = (acc.append(i) for i in range(3))")
    e = run(kernel, "list(gen)")
    assert e["changed"] == ["acc", "gen"]
    kernel.ok("def produce():\n    acc.append('p')\n    yield 1\n    acc.append('q')\n    yield 2\ng2 = produce()")
    e = run(kernel, "next(g2)")
    assert e["changed"] == ["acc", "g2"]  # a generator is never stored: always a new version
    e = run(kernel, "next(g2)")
    assert e["changed"] == ["acc", "g2"]
    assert kernel.value("acc") == [0, 1, 2, "p", "q"]
    groups = kernel.inside("result = [sorted(rec.tracker.by_name[n].names) for n in ['g2', 'produce']]")
    assert groups == [["g2"], ["produce"]]  # the function stays storable on its own


def test_recursive_closures_and_self_referencing_objects_are_analysed_quietly(kernel):
    kernel.ok(
        "found = []\n"
        "def outer():\n"
        "    def walk(n):\n"
        "        found.append(n)\n"
        "        return 0 if n == 0 else walk(n - 1)\n"
        "    return walk\n"
        "walk = outer()\n"
        "class Node:\n"
        "    def visit(self):\n"
        "        found.append('node')\n"
        "a_node = Node()\nb_node = Node()\n"
        "a_node.peer, b_node.peer = b_node, a_node"
    )
    r = kernel.ok("walk(2)")
    assert r.stderr == ""
    assert kernel.log()[0]["changed"] == ["found"]
    r = kernel.ok("a_node.peer.visit()")
    assert r.stderr == ""
    assert kernel.log()[0]["changed"] == ["found"]
    assert kernel.value("found") == [2, 1, 0, "node"]


def test_a_long_linked_structure_is_read_quietly(kernel):
    kernel.ok(
        "class Node:\n"
        "    def __init__(self, nxt):\n"
        "        self.next = nxt\n"
        "head = None\n"
        "for _i in range(5000):\n"
        "    head = Node(head)\n"
        "del _i"
    )
    r = kernel.ok("n = 0\nnode = head\nwhile node is not None:\n    n += 1\n    node = node.next\nn")
    assert r.stderr == "" and r.outputs[0]["data"]["text/plain"] == "5000"
    e = kernel.log()[0]
    assert {"head", "n", "node"} <= set(e["examined"]) and e["error"] is None
    assert kernel.ok("%nbstate status").stdout.count("last nbstate error") == 0


def test_a_class_changed_through_a_name_the_same_cell_rebinds_is_recorded(kernel):
    """`a[0].scale = 1` changes the notebook class Point that `a` held; the cell then rebinds `a`,
    so nothing that is left in the namespace refers to Point, yet Point's new state must be
    recorded (and restored by a checkout)."""
    kernel.ok("class Point:\n    scale = 0")
    kernel.ok("a = [Point, Point]")
    e = run(kernel, "a[0].scale = 1\na = 0")
    assert set(e["changed"]) == {"Point", "a"}
    kernel.ok("%nbstate undo")
    assert kernel.value("[Point.scale, len(a)]") == [0, 2]
    kernel.ok("%nbstate checkout @{-1}")
    assert kernel.value("[Point.scale, a]") == [1, 0]


def test_names_rebound_by_code_that_names_them_nowhere_in_the_cell(kernel):
    # A cell that reaches the namespace through IPython or the interpreter: every name is compared.
    kernel.ok("k = [1]\nimport types")
    e = run(kernel, "get_ipython().user_ns['k'] = [2]")
    assert e["changed"] == ["k"]
    e = run(kernel, "import sys\nsys.modules['__main__'].k = [3]")
    assert e["changed"] == ["k"]
    e = run(kernel, "%%capture out\nprint('hidden')")
    assert e["created"] == ["out"]
    # A notebook function that declares a name global rebinds it whenever it runs, here after
    # every cell, called by IPython: the cells that trigger it never name it.
    kernel.ok("counter = 0\ndef bump(*args):\n    global counter\n    counter += 1")
    kernel.ok("get_ipython().events.register('post_execute', bump)")
    e = run(kernel, "x = 1")
    assert e["created"] == ["x"] and "counter" in e["changed"]
    e = run(kernel, "y = 2")
    assert e["changed"] == ["counter"]
    assert kernel.value("counter") >= 2


def test_a_library_that_rebinds_a_name_is_caught_and_then_watched_at_every_cell(kernel):
    # Code outside the notebook rebinds an existing name and adds none: no syntax shows it, so
    # the comparison of every name that comes every few cells finds it; from then on every name
    # is compared after every cell.
    from nbstate.capture import COMPARE_ALL_EVERY

    kernel.ok(MAIN_WRITER)
    kernel.ok("p = [1]")
    kernel.ok("helper.put('p', [2])")
    for i in range(COMPARE_ALL_EVERY):
        kernel.ok(f"n{i} = {i}")
    recent = kernel.log()[: COMPARE_ALL_EVERY + 1]  # that cell's commit and those after it
    assert sum("p" in e["changed"] for e in recent) == 1
    e = run(kernel, "helper.put('p', [3])")
    assert e["changed"] == ["p"]
    kernel.ok("%nbstate undo")
    assert kernel.value("p") == [2]
