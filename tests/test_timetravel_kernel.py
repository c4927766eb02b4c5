"""Time travel in a real kernel: undo, checkout, branches, tags, diff, and what must hold after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def log(kernel, *flags):
    return json.loads(kernel.ok("%nbstate log --json " + " ".join(flags)).stdout)


def user_names(kernel):
    names = kernel.value("sorted(__import__('nbstate').recorder_of(get_ipython()).user_names())")
    return [n for n in names if n != "_nbstate_json"]


def test_undo_restores_earlier_values_and_keeps_unchanged_objects(kernel):
    kernel.ok("import numpy as np\nbig = np.arange(1_000_000)\nitems = [1, 2]\nalias = items")
    kernel.ok("items.append(3)")
    kernel.ok("extra = {'k': 1}")
    big_id = kernel.value("id(big)")
    r = kernel.ok("%nbstate undo")
    assert "deleted extra" in r.stdout
    assert "extra" not in user_names(kernel)
    r = kernel.ok("%nbstate undo")
    assert "loaded alias, items" in r.stdout
    assert kernel.value("items") == [1, 2]
    assert kernel.value("alias is items") is True
    assert kernel.value("id(big)") == big_id  # untouched co-variable: same object
    assert len(log(kernel, "--all")) == 4  # the root and three cells: undo makes no commit


def test_checkout_branch_head_brings_everything_back(kernel):
    kernel.ok("a = [0]")
    kernel.ok("a.append(1)\nb = 'x'")
    kernel.ok("%nbstate undo 2")
    assert user_names(kernel) == []
    kernel.ok("%nbstate checkout main")
    assert kernel.value("[a, b]") == [[0, 1], "x"]


def test_running_a_cell_after_checkout_forks_a_branch_and_loses_nothing(kernel):
    kernel.ok("x = 1")
    kernel.ok("x = 2")
    kernel.ok("%nbstate checkout HEAD~1")
    kernel.ok("y = x + 10")
    branches = kernel.ok("%nbstate branch").stdout
    assert "main" in branches and "fork-" in branches
    current = [ln for ln in branches.splitlines() if ln.startswith("*")][0].split()[1]
    kernel.ok(f"%nbstate branch -m {current} experiment")
    kernel.ok("%nbstate checkout main")
    assert kernel.value("x") == 2
    assert "y" not in user_names(kernel)
    kernel.ok("%nbstate checkout experiment")
    assert kernel.value("[x, y]") == [1, 11]
    kernel.ok("%nbstate checkout @{-1}")
    assert kernel.value("x") == 2


def test_aliasing_holds_across_loaded_and_kept_variables(kernel):
    kernel.ok("shared = [1]\nholder = {'s': shared}\nother = [9]")
    kernel.ok("shared.append(2)")
    kernel.ok("other.append(10)")
    kernel.ok("%nbstate checkout HEAD~1")
    assert kernel.value("holder['s'] is shared") is True
    assert kernel.value("[shared, other]") == [[1, 2], [9]]
    kernel.ok("def f():\n    return shared")
    kernel.ok("%nbstate undo")
    kernel.ok("%nbstate checkout main")  # f was on the fork; main never had it
    kernel.ok("%nbstate checkout experiment" if False else "%nbstate branch")


def test_restored_function_sees_the_live_namespace(kernel):
    kernel.ok("k = 3\ndef times_k(v):\n    return v * k")
    kernel.ok("def times_k(v):\n    return -v")
    kernel.ok("%nbstate undo")
    kernel.ok("k = 5")
    assert kernel.value("times_k(2)") == 10
    assert kernel.value("times_k.__globals__ is globals()") is True


def test_notebook_class_instances_come_back_with_their_class(kernel):
    kernel.ok("class Point:\n    def __init__(self, x):\n        self.x = x")
    kernel.ok("p = Point(1)")
    kernel.ok("p.x = 5")
    kernel.ok("%nbstate undo")
    assert kernel.value("[p.x, type(p) is Point]") == [1, True]


def test_unserializable_values_are_rebuilt_by_replay(kernel, tmp_path):
    (tmp_path / "data.txt").write_text("one\ntwo\nthree\n")
    kernel.ok("gen = (i * i for i in range(10))\nnext(gen)")
    kernel.ok("next(gen)")
    kernel.ok("import threading\nlock = threading.Lock()\nfh = open('data.txt')\nfirst = fh.readline()")
    kernel.ok("n = 1")
    kernel.ok("%nbstate checkout HEAD~3")  # gen after one next(); lock/fh/first did not exist
    assert kernel.value("next(gen)") == 1
    r = kernel.ok("%nbstate checkout main")
    assert "replayed" in r.stdout
    assert kernel.value("[first, fh.readline(), type(lock).__name__]") == ["one\n", "two\n", "lock"]


def test_what_a_replayed_cell_defines_is_bound_to_the_notebook_not_to_the_replay(kernel):
    # The lock makes its cell replayed; the function, the class and its instance made there are
    # loaded instead, bound to the live namespace (a replay's own are bound to where it ran)
    kernel.ok("k = 3")
    kernel.ok("import threading\nlock = threading.Lock()\ndef f():\n    return k\nclass P:\n    def get(self):\n        return k\np = P()")
    kernel.ok("def f():\n    return -1\nlock = threading.Lock()\np = 1")
    r = kernel.ok("%nbstate checkout HEAD~1")
    assert "replayed lock" in r.stdout and "loaded f, p" in r.stdout and "warning" not in r.stdout, r.stdout
    kernel.ok("k = 5")
    assert kernel.value("[f(), f.__globals__ is globals(), type(p) is P, p.get()]") == [5, True, True, 5]


def back_by_replay(kernel, *cells):
    """Run ``cells`` (the last one makes a lock), undo the last and check it out again, which
    replays it: what the checkout said, which must have no warning."""
    for cell in cells:
        kernel.ok(cell)
    kernel.ok("%nbstate undo")
    r = kernel.ok("%nbstate checkout @{-1}")
    assert "replayed" in r.stdout and "warning" not in r.stdout, r.stdout
    return r.stdout


def test_a_replayed_value_is_checked_with_the_pickler_that_recorded_it(kernel):
    # `a` held a function, so the checkpoint pickled its next value, 0, the usual way rather
    # than as plain data (which gives other bytes): the replay's check must pickle it that way
    said = back_by_replay(kernel, "def a(v):\n    return v", "a = 0\nimport threading\nlk = threading.Lock()")
    assert "replayed a, lk, threading" in said
    assert kernel.value("a") == 0


def test_a_replayed_cell_gets_the_names_it_updates_or_deletes(kernel):
    # The locks make these cells replayed. `a += 0` needs the `a` it had (0, made by a cell that
    # raised, so loaded), not the string an earlier replayed cell left; `del b` needs only a `b`
    kernel.ok("b = [1]")
    kernel.ok("import threading\nlk = threading.Lock()\na = 's0'")
    assert kernel.run("a = 0\nraise RuntimeError('on purpose')").error is not None
    kernel.ok("a += 0\ndel b\nlk = threading.Lock()")
    kernel.ok("c = 1")
    kernel.ok("%nbstate checkout HEAD~4")  # b alone
    r = kernel.ok("%nbstate checkout @{-1}")
    assert "replayed" in r.stdout and "warning" not in r.stdout, r.stdout
    assert kernel.value("[a, 'b' in globals(), c]") == [0, False, 1]


def test_a_replayed_cell_that_rebinds_a_name_does_not_need_its_earlier_value(kernel):
    # The second lock's cell makes `lk` anew without reading it: its replay needs no earlier
    # `lk`, so the slow cell that made the first lock is not replayed for it
    kernel.ok("import threading, time")
    kernel.ok("time.sleep(0.2)\nlk = threading.Lock()\nslow = 1")
    kernel.ok("lk = threading.Lock()\nfast = 2")
    kernel.ok("%nbstate undo 2")
    r = kernel.ok("%nbstate checkout @{-1}")
    assert "replayed fast, lk;" in r.stdout and "loaded slow" in r.stdout and "warning" not in r.stdout, r.stdout
    # One that rebinds it only in a branch is given the earlier value (by replaying its cell)
    kernel.ok("if slow < 5:\n    lk = threading.Lock()\nmore = slow")
    kernel.ok("%nbstate undo 2")
    r = kernel.ok("%nbstate checkout @{-1}")
    assert "replayed fast, lk, more;" in r.stdout and "warning" not in r.stdout, r.stdout
    assert kernel.value("[slow, fast, more, type(lk).__name__]") == [1, 2, 1, "lock"]


def test_a_replayed_plain_value_that_pickles_to_other_bytes_is_compared_by_value(kernel):
    # `'s1'` is held 20 times over when `a = [a, a]` is recorded, and so written as a persistent
    # id; replayed from a loaded `'s1'` that nothing else holds, the same list pickles otherwise
    back_by_replay(kernel, "keep = ['s1'] * 20", "a = 's1'", "a = [a, a]\nimport threading\nlk = threading.Lock()")
    assert kernel.value("[a, a[0] is a[1]]") == [["s1", "s1"], True]


def test_a_replayed_value_whose_strings_are_other_objects_is_compared_by_value(kernel):
    # Recorded, the new dict's keys were the very strings of the old one's (the code's interned
    # constants); replayed, the old one is loaded with strings of its own, so the memo of the
    # usual pickler (the dict is met twice: not plain) writes the keys otherwise
    back_by_replay(kernel, "a = {'p': 0, 'q': 0}", "import threading\nlk = threading.Lock()\na = {'p': a, 'q': a}")
    assert kernel.value("[a, a['p'] is a['q']]") == [{"p": {"p": 0, "q": 0}, "q": {"p": 0, "q": 0}}, True]


def test_a_value_loaded_for_a_replay_is_restored_as_loaded_and_not_checked_again(kernel):
    # df and m are loaded for the replay of the lock's cell, which reads them. They are targets
    # too: taken as loaded, not pickled again to be checked as a replay's values, which for
    # pandas' extension arrays gives other bytes than were recorded (and a false alarm)
    kernel.ok(
        "import numpy as np, pandas as pd\nfrom sklearn.linear_model import LinearRegression\n"
        "X = np.arange(20.0).reshape(10, 2)\nm = LinearRegression().fit(X, X[:, 0])\n"
        "df = pd.DataFrame({'a': pd.array([1, 2, None] * 1000, dtype='Int64'), 'c': pd.Categorical(['x', 'y', 'z'] * 1000)})"
    )
    kernel.ok("import threading\nlock = threading.Lock()\nn = len(df) + m.coef_.size")
    kernel.ok("del df, lock, n, m")
    r = kernel.ok("%nbstate checkout HEAD~1")
    assert "loaded df, m; replayed lock, n" in r.stdout and "warning" not in r.stdout, r.stdout
    assert kernel.value("[n, int(df['a'].sum()), list(df['c'][:2]), round(float(m.coef_.sum()), 6)]") == [3002, 3000, ["x", "y"], 1.0]
    kernel.ok("total = n + 1")
    assert "+total  " in kernel.ok("%nbstate log -n 1").stdout  # what was read and restored is unchanged
    assert kernel.value("type(lock).__name__") == "lock"


def test_many_small_records_are_loaded_where_checking_a_replay_of_their_quick_cell_would_cost_more(kernel):
    # 400,000 dicts, about 20 MB of pickle stream, from a cell that took about 0.3 s: less than
    # the values take to load, but a replayed value is pickled again to be checked, which costs
    # about as much as loading it does.
    kernel.ok("import time\nrecords = [{'id': i, 'name': f'user-{i}', 'score': i / 7} for i in range(400_000)]\ntime.sleep(0.2)")
    expected = kernel.value("[len(records), records[12345], sum(r['score'] for r in records)]")
    kernel.ok("records = None")
    r = kernel.ok("%nbstate undo")
    assert "loaded records" in r.stdout and "replayed" not in r.stdout, r.stdout
    assert kernel.value("[len(records), records[12345], sum(r['score'] for r in records)]") == expected


def test_failed_restore_leaves_namespace_untouched_and_names_the_variable(kernel, tmp_path):
    (tmp_path / "input.txt").write_text("hello")
    kernel.ok("text = open('input.txt').read()\nkeep = [1]")
    kernel.ok("text = 'changed'\nkeep.append(2)")
    # The old versions can come back neither from the store (damaged) nor by replay (the file
    # the cell read is gone): the checkout must fail as a whole and say what and why.
    (tmp_path / "input.txt").unlink()
    for blob in (tmp_path / ".nbstate" / "objects").rglob("*"):
        if blob.is_file():
            blob.write_bytes(b"NBr1garbage")
    head = kernel.value("__import__('nbstate.porcelain').porcelain.Session().head()")
    r = kernel.run("%nbstate checkout HEAD~1")
    assert "cannot restore" in r.stderr and "FileNotFoundError" in r.stderr
    assert ("keep" in r.stderr) or ("text" in r.stderr)
    assert kernel.value("[text, keep]") == ["changed", [1, 2]]
    assert kernel.value("__import__('nbstate.porcelain').porcelain.Session().head()") == head


def test_refs_tags_diff_and_errors(kernel):
    kernel.ok("a = 1")
    kernel.ok("b = [1, 2, 3]")
    kernel.ok("%nbstate tag first HEAD~1")
    assert "first" in kernel.ok("%nbstate tag").stdout
    d = kernel.ok("%nbstate diff first HEAD").stdout
    assert "+ b: list len=3" in d and "+b = [1, 2, 3]" in d
    kernel.ok("%nbstate checkout first")
    assert user_names(kernel) == ["a"]
    for bad, words in (("nope", "unknown ref"), ("HEAD~9", "goes back past"), ("", "")):
        if not bad:
            continue
        r = kernel.run(f"%nbstate checkout {bad}")
        assert "UsageError" in r.stderr and words in r.stderr
    assert user_names(kernel) == ["a"]
    kernel.ok("%nbstate tag -d first")
    assert kernel.ok("%nbstate tag").stdout.strip() == "no tags yet"


def test_commit_with_message_and_magics_do_not_count_as_cell_runs(kernel):
    kernel.ok("v = 1")
    kernel.ok("v = 2")
    kernel.ok('%nbstate commit -m "two"')
    entries = log(kernel)
    assert entries[0]["message"] == "two" and entries[0]["kind"] == "manual"
    kernel.ok("%nbstate log")
    kernel.ok("%nbstate undo")  # back one cell run: past the manual commit and `v = 2`
    assert kernel.value("v") == 1


def test_session_api_in_the_kernel(kernel):
    kernel.ok("q = [1]")
    kernel.ok("q.append(2)")
    kernel.ok("from nbstate.porcelain import Session\nrep = Session().undo()")
    assert kernel.value("q") == [1]
    assert kernel.value("rep.loaded") == ["q"]


def test_offline_session_reads_a_store(kernel, tmp_path):
    kernel.ok("z = 1")
    kernel.ok("z = 2")
    from nbstate.porcelain import Session

    s = Session.open(str(tmp_path / ".nbstate"))
    entries = s.log()
    assert [e.first_line for e in entries] == ["z = 2", "z = 1", "# the state when nbstate was loaded"]
    assert [v.name for v in s.diff().variables] == ["z"]
    with pytest.raises(RuntimeError, match="changes a kernel"):
        s.undo()
    assert not Path(tmp_path / "nowhere").exists()


def test_checkout_code_rewrites_the_notebook_cells_and_keeps_metadata(kernel, tmp_path):
    import nbformat

    nb_path = tmp_path / "analysis.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}, "custom": 7})
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("v = 1")]
    nbformat.write(nb, nb_path)
    kernel.ok("%nbstate init analysis.ipynb")
    kernel.ok("v = 1")
    first = log(kernel)[0]["commit"]
    nb.cells.append(nbformat.v4.new_code_cell("v = v + 1"))
    nbformat.write(nb, nb_path)
    kernel.ok("v = v + 1")
    d = kernel.ok(f"%nbstate diff {first[:10]} HEAD").stdout
    assert "+v = v + 1" in d and "notebook at" in d
    r = kernel.ok(f"%nbstate checkout {first[:10]} --code")
    assert "wrote 2 cells" in r.stdout
    back = nbformat.read(nb_path, as_version=4)
    assert [c.source for c in back.cells] == ["# title", "v = 1"]
    assert back.metadata["custom"] == 7
    assert kernel.value("v") == 1


def test_checkout_code_without_a_known_notebook_restores_variables_only(kernel):
    kernel.ok("w = 1")
    kernel.ok("w = 2")
    r = kernel.ok("%nbstate checkout HEAD~1 --code")
    assert "no notebook file is known" in r.stdout
    assert kernel.value("w") == 1


def test_the_collector_is_off_while_values_load_and_on_while_cells_replay(kernel, tmp_path):
    # A loaded object's __setstate__ and a replayed cell note whether the cyclic collector runs.
    (tmp_path / "gc_probe.py").write_text(
        "import gc\nseen = []\n\n"
        "class Probe:\n"
        "    def __init__(self, x):\n        self.x = x\n"
        "    def __setstate__(self, state):\n        seen.append(('load', gc.isenabled()))\n        self.__dict__.update(state)\n"
    )
    kernel.ok("import gc, threading, gc_probe\np = gc_probe.Probe(1)")
    kernel.ok("lock = threading.Lock()\ngc_probe.seen.append(('cell', gc.isenabled()))")
    kernel.ok("p = gc_probe.Probe(2)\ndel lock")
    kernel.ok("gc_probe.seen.clear()")
    r = kernel.ok("%nbstate checkout HEAD~2")
    assert "loaded p" in r.stdout and "replayed lock" in r.stdout
    assert kernel.value("p.x") == 1
    assert kernel.value("sorted(set(gc_probe.seen))") == [["cell", True], ["load", False]]
    assert kernel.value("gc.isenabled()") is True
    # a kernel that turned the collector off itself finds it off after a checkout too
    kernel.ok("gc.disable()")
    kernel.ok("%nbstate checkout main")
    assert kernel.value("[p.x, gc.isenabled()]") == [2, False]


def test_restored_values_are_fingerprinted_after_the_checkout_returns_and_before_the_next_cell(kernel):
    # A DataFrame with a column of strings pickles to another stream once loaded: without its
    # fingerprint as restored, a cell that only reads it would record it anew.
    kernel.ok("import pandas as pd\ndf = pd.DataFrame({'a': ['x', 'y', None] * 10, 'b': range(30)})")
    kernel.ok("df.loc[0, 'b'] = 100")
    kernel.ok("%nbstate checkout HEAD~1")
    # The checkout cell ran nothing else: its fingerprints were taken in the background, and no
    # cell has started since to wait for them.
    assert kernel.expr("__import__('nbstate').recorder_of(get_ipython())._fingerprinting is not None") is True
    kernel.ok("n = len(df)")
    assert kernel.expr("__import__('nbstate').recorder_of(get_ipython())._fingerprinting is None") is True
    newest = log(kernel)[0]
    assert (newest["created"], newest["changed"]) == (["n"], [])
    # A change made by the first cell after a checkout is recorded, and undone.
    kernel.ok("%nbstate checkout HEAD~1")
    kernel.ok("df.loc[1, 'b'] = 7")
    newest = log(kernel)[0]
    assert newest["changed"] == ["df"]
    kernel.ok("%nbstate undo")
    assert kernel.value("int(df.loc[1, 'b'])") == 1


def test_a_change_made_after_a_checkout_in_the_same_cell_is_recorded(kernel):
    kernel.ok("import pandas as pd\ndf = pd.DataFrame({'a': ['x', 'y', None] * 10, 'b': range(30)})")
    kernel.ok("df.loc[0, 'b'] = 100")
    kernel.ok("%nbstate checkout HEAD~1\ndf.loc[2, 'b'] = -1")
    assert kernel.expr("__import__('nbstate').recorder_of(get_ipython())._fingerprinting is None") is True
    newest = log(kernel)[0]
    assert newest["changed"] == ["df"]
    kernel.ok("%nbstate undo")
    assert kernel.value("[int(df.loc[0, 'b']), int(df.loc[2, 'b'])]") == [0, 2]
