"""Static name analysis: what a cell's syntax names, and what notebook code it reaches."""

from __future__ import annotations

import functools
import sys
import textwrap
import types

import pytest

from nbstate.analysis import CellNames, globals_reached, names_in_source


def names(source: str) -> CellNames:
    return names_in_source(textwrap.dedent(source))


def notebook(source: str) -> dict:
    """A namespace like a kernel's: code defined by exec'ing cells in it (module __main__)."""
    ns: dict = {"__name__": "__main__"}
    exec(textwrap.dedent(source), ns)
    return ns


# --- names_in_source ---------------------------------------------------------------------------


def test_assignment_reads_and_writes():
    n = names("x = y + 1\nz, (w, *rest) = pair")
    assert n.writes == {"x", "z", "w", "rest"}
    assert n.reads == {"y", "pair"}
    assert n.deletes == set() and not n.everything


def test_augmented_assignment_reads_and_writes_its_target():
    # a replay of `total += step` needs the value `total` had
    n = names("total += step\nitems[0] += 1\nobj.count += 1")
    assert n.writes == {"total"} and n.reads == {"total", "step", "items", "obj"}
    assert "total" in n.touched


def test_attribute_and_subscript_targets_read_the_object():
    n = names("obj.attr = 1\nlst[0] = v\nd['k'] += 1\ndel lst[1]\ndel obj.attr")
    assert n.reads == {"obj", "lst", "d", "v"}
    assert n.writes == set() and n.deletes == set()


def test_del_deletes():
    n = names("del a, b")
    assert n.deletes == {"a", "b"} and n.writes == set()


def test_imports_write_the_bound_name():
    n = names("import os.path\nimport numpy as np\nfrom math import pi, tau as TAU\nfrom . import sibling")
    assert n.writes == {"os", "np", "pi", "TAU", "sibling"}
    assert not n.everything


def test_star_import_can_bind_anything():
    assert names("from math import *").everything


def test_definitions_write_their_names():
    n = names(
        """
        def f(a, b=default):
            return a + helper(b)
        class K(Base):
            attr = value
        async def g():
            pass
        """
    )
    assert {"f", "K", "g"} <= n.writes
    assert {"default", "helper", "Base", "value"} <= n.reads


def test_global_and_nonlocal_count_as_read_and_write():
    n = names(
        """
        def f():
            global counter
            counter = 1
        """
    )
    assert "counter" in n.writes and "counter" in n.reads


def test_except_handler_name_is_written_then_deleted():
    n = names("try:\n    pass\nexcept ValueError as err:\n    pass")
    assert "err" in n.writes and "err" in n.deletes


def test_walrus_comprehension_and_loop_targets_are_written():
    n = names("if (m := f(x)):\n    pass\nys = [i * 2 for i in xs]\nfor k, v in items:\n    pass")
    assert {"m", "ys", "i", "k", "v"} <= n.writes
    assert {"f", "x", "xs", "items"} <= n.reads


@pytest.mark.skipif(sys.version_info < (3, 10), reason="match needs 3.10")
def test_match_patterns_write_their_captures():
    n = names(
        """
        match value:
            case {"k": kv, **others}:
                pass
            case [first, *tail]:
                pass
            case Point(x=px) as whole:
                pass
        """
    )
    assert {"kv", "others", "first", "tail", "px", "whole"} <= n.writes
    assert {"value", "Point"} <= n.reads


@pytest.mark.parametrize("source", [
    "globals()['k'] = 1",
    "locals()",
    "vars()['x'] = 2",
    "exec('x = 1')",
    "eval('x')",
    "__import__('os')",
    "get_ipython().run_line_magic('run', 'script.py')",
    "get_ipython().run_cell_magic('macro', '', '')",
])
def test_code_that_can_reach_any_name_means_everything(source):
    assert names(source).everything


@pytest.mark.parametrize("source", [
    "get_ipython().run_line_magic('time', 'x = 1')",
    "print(len(a))",
    "obj.exec('x')",  # a method named exec is not the builtin
])
def test_ordinary_calls_do_not_mean_everything(source):
    assert not names(source).everything


def test_unparseable_source_means_everything():
    assert names_in_source("x = (").everything
    assert names_in_source("%time x = 1").everything  # not Python before IPython transforms it


def test_update_and_touched():
    a = CellNames(reads={"a"}, writes={"b"})
    a.update(CellNames(deletes={"c"}, everything=True))
    assert a.touched == {"a", "b", "c"} and a.everything


# --- globals_reached ---------------------------------------------------------------------------


def test_a_function_reaches_the_globals_it_names_transitively():
    ns = notebook(
        """
        data = []
        limit = 3
        unrelated = 0
        def helper():
            return limit
        def grow():
            if len(data) < helper():
                data.append(1)
        """
    )
    reached, wildcard = globals_reached({"grow"}, ns)
    assert reached == {"data", "helper", "limit"}
    assert not wildcard


def test_global_statement_target_is_reached_even_before_it_exists():
    ns = notebook(
        """
        def setg():
            global g
            g = 1
        """
    )
    reached, _ = globals_reached({"setg"}, ns)
    assert reached == set()  # g is not bound yet: nothing to examine, it is caught as a new name
    ns["g"] = 0
    assert globals_reached({"setg"}, ns)[0] == {"g"}


def test_closures_nested_functions_and_lambdas():
    ns = notebook(
        """
        log = []
        def make():
            def inner():
                log.append(1)
            return inner
        h = make()
        sq = lambda v: scale * v
        scale = 2
        """
    )
    assert globals_reached({"h"}, ns)[0] == {"log"}
    assert globals_reached({"make"}, ns)[0] == {"log"}  # code of nested functions counts
    assert globals_reached({"sq"}, ns)[0] == {"scale"}


def test_methods_properties_static_and_class_methods_of_notebook_classes():
    ns = notebook(
        """
        seen = []
        total = 0
        other = 0
        class Base:
            def base_method(self):
                return other
        class Box(Base):
            @property
            def size(self):
                return len(seen)
            @staticmethod
            def s():
                return total
            @classmethod
            def c(cls):
                seen.append(cls)
        box = Box()
        """
    )
    expected = {"seen", "total", "other"}
    assert globals_reached({"box"}, ns)[0] == expected
    assert globals_reached({"Box"}, ns)[0] == expected
    ns["m"] = ns["box"].base_method  # a bound method
    assert globals_reached({"m"}, ns)[0] == {"other"}


def test_partials_wrapped_functions_and_containers_of_functions_or_instances():
    ns = notebook(
        """
        import functools
        hits = []
        count = 0
        def hit(v):
            hits.append(v)
        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                return fn(*a)
            return wrapper
        @deco
        def counted():
            return count
        class Worker:
            def work(self):
                hits.append('w')
        p = functools.partial(hit, 1)
        ops = {'hit': hit}
        workers = [Worker()]
        holder = Worker()
        holder.callback = counted
        """
    )
    assert globals_reached({"p"}, ns)[0] == {"hits"}
    assert globals_reached({"counted"}, ns)[0] == {"count"}
    assert globals_reached({"ops"}, ns)[0] == {"hits"}
    assert globals_reached({"workers"}, ns)[0] == {"hits"}
    assert globals_reached({"holder"}, ns)[0] == {"hits", "count"}


def test_self_referencing_closures_and_objects_terminate():
    ns = notebook(
        """
        out = []
        def outer():
            def rec(n):
                out.append(n)
                return 0 if n == 0 else rec(n - 1)
            return rec
        rec = outer()
        class Node:
            def visit(self):
                out.append(self)
        a = Node()
        b = Node()
        a.peer, b.peer = b, a
        cycle = []
        cycle.append(cycle)
        def even(n):
            return True if n == 0 else odd(n - 1)
        def odd(n):
            return False if n == 0 else even(n - 1)
        """
    )
    assert globals_reached({"rec"}, ns)[0] == {"out"}
    assert globals_reached({"a"}, ns)[0] == {"out"}
    assert globals_reached({"cycle"}, ns)[0] == set()
    assert globals_reached({"even"}, ns)[0] == {"even", "odd"}


def test_code_calling_globals_exec_or_eval_reaches_everything():
    ns = notebook(
        """
        def sneaky():
            globals()['x'] = 1
        def evaluator(s):
            return eval(s)
        def plain():
            return 1
        """
    )
    assert globals_reached({"sneaky"}, ns)[1]
    assert globals_reached({"evaluator"}, ns)[1]
    assert globals_reached({"plain"}, ns) == (set(), False)


def test_library_code_and_unknown_names_reach_nothing():
    ns = notebook(
        """
        import json
        dumps = json.dumps
        items = [1, 2, 3]
        """
    )
    ns["lib_fn"] = functools.reduce
    ns["mod"] = types.SimpleNamespace(f=len)
    assert globals_reached({"json", "dumps", "items", "lib_fn", "mod", "missing"}, ns) == (set(), False)


def test_functions_of_another_namespace_are_not_followed():
    elsewhere = notebook("secret = 1\ndef f():\n    return secret")
    ns = notebook("secret = 2")
    ns["f"] = elsewhere["f"]
    assert globals_reached({"f"}, ns)[0] == set()


def test_suspended_generators_reach_the_globals_of_the_code_they_resume():
    ns = notebook(
        """
        acc = []
        other = 1
        gen = (acc.append(i) for i in range(3))
        def produce():
            acc.append('p')
            yield other
        g2 = produce()
        def outer():
            k = 1
            def g():
                yield k + other
            return g()
        g3 = outer()
        done = (i for i in [])
        list(done)
        """
    )
    assert globals_reached({"gen"}, ns) == ({"acc"}, False)
    assert globals_reached({"g2"}, ns) == ({"acc", "other"}, False)
    assert globals_reached({"g3"}, ns) == ({"other"}, False)
    assert globals_reached({"done"}, ns) == (set(), False)  # finished: it runs nothing more


def test_library_objects_holding_notebook_functions():
    ns = notebook(
        """
        import numpy as np
        import threading
        seen = []
        def record(v):
            seen.append(v)
            return v
        vrecord = np.vectorize(record)
        worker = threading.Thread(target=record, args=(1,))
        """
    )
    assert globals_reached({"vrecord"}, ns)[0] == {"seen"}
    assert globals_reached({"worker"}, ns)[0] == {"seen"}
    assert globals_reached({"np", "threading"}, ns)[0] == set()  # modules are not scanned


def test_long_chains_of_objects_are_looked_into_only_a_few_levels_deep():
    ns = notebook(
        """
        import sys
        hits = []
        class Node:
            def __init__(self, nxt):
                self.next = nxt
            def touch(self):
                return 0
        class Hook:
            def fire(self):
                hits.append(1)
        head = None
        for _ in range(sys.getrecursionlimit() * 3):
            head = Node(head)
        class Holder:
            def __init__(self, inner):
                self.inner = inner
        near = Holder(Holder(Hook()))
        far = Hook()
        for _ in range(6):
            far = Holder(far)
        """
    )
    assert globals_reached({"head"}, ns) == (set(), False)  # no RecursionError
    assert globals_reached({"near"}, ns)[0] == {"hits"}
    assert globals_reached({"far"}, ns)[0] == set()  # deeper than looked at


def test_code_among_many_plain_items_of_a_container_is_found_and_plain_items_reach_nothing():
    ns = notebook(
        """
        seen = []
        total = 0
        class Job:
            def run(self):
                seen.append(1)
        def add(v):
            global total
            total += v
        mixed = [1, 'a', 2.5, None, b'x', (1, 2)] * 40 + [Job, add]  # 240 plain items first
        methods = {'k': 3, 'run': Job().run}
        instances = [0.5, Job()]
        beyond = [0] * 300 + [add]  # past the items a container is looked into for
        plain = list(range(1000)) + [int, str]
        """
    )
    assert globals_reached({"mixed"}, ns) == ({"seen", "total"}, False)
    assert globals_reached({"methods"}, ns)[0] == {"seen"}
    assert globals_reached({"instances"}, ns)[0] == {"seen"}
    assert globals_reached({"beyond"}, ns)[0] == set()
    assert globals_reached({"plain"}, ns)[0] == set()


def test_names_declared_global_anywhere_in_the_code_are_kept_apart():
    n = names("""
        def bump():
            global counter, total
            counter += 1
        class C:
            def m(self):
                global seen
                seen = True
        x = 1
    """)
    assert n.declared == {"counter", "total", "seen"}
    assert names("x = 1\ny = x").declared == set()


@pytest.mark.parametrize("source", [
    "get_ipython().run_line_magic('capture', 'out')",
    "import sys\nsys.modules['__main__'].k = 1",
    "from __main__ import k",
    "holder.__dict__['k'] = 2",
    "frame.f_globals['k'] = 3",
    "shell.user_ns['k'] = 4",
    "import inspect",
    "dill.load_session('s.pkl')",
])
def test_code_that_reaches_the_namespace_without_naming_is_opaque(source):
    assert names(source).opaque is True


def test_ordinary_code_is_not_opaque():
    n = names("import numpy as np\ndf = pd.read_csv('x.csv')\nm = model.fit(df.values).score(df)\nprint(len(m))")
    assert n.opaque is False and n.everything is False


def test_global_targets_of_values_that_no_cell_of_the_session_defined():
    from nbstate.analysis import global_targets

    ns = notebook("""
        counter = 0
        def bump():
            global counter
            counter += 1
            def inner():
                global deep
                deep = 1
            return inner
        def read():
            return counter
        class Box:
            def put(self):
                global boxed
                del boxed
        box = Box()
        hooks = [bump]
    """)
    assert global_targets([ns["bump"]], ns) == {"counter", "deep"}
    assert global_targets([ns["read"]], ns) == set()
    assert global_targets([ns["box"], ns["hooks"]], ns) == {"boxed", "counter", "deep"}
    assert global_targets([len, 3, "x"], ns) == set()


def test_top_level_rebinds_are_the_names_bound_whatever_happens():
    from nbstate.analysis import top_level_rebinds

    code = (
        "import numpy as np, os.path\nfrom math import pi as PI\nlk = make()\na, (b, *c) = 1, (2, 3)\n"
        "n: int = 3\nm: int\nx[0] = 1\ny.attr = 2\nz += 1\ndef f():\n    inner = 1\nclass K:\n    field = 1\n"
        "if cond:\n    branch = 1\nfor i in range(3):\n    looped = i\nwith open(p) as fh:\n    inside = 1\n"
        "try:\n    tried = 1\nexcept Exception as e:\n    pass\n"
    )
    assert top_level_rebinds(code) == {"np", "os", "PI", "lk", "a", "b", "c", "n", "f", "K"}
    assert top_level_rebinds("%time lk = make()") == frozenset()
    assert top_level_rebinds("from mod import *\nq = 1") == {"q"}
