"""Co-variables in a real kernel: names whose values share a mutable object are stored together,
unrelated values never are, sharing that starts merges and sharing that ends splits, and a
stored co-variable restores with its sharing intact."""

from __future__ import annotations


def covariable(kernel, name: str) -> list[str]:
    """The names of the live co-variable that holds ``name`` (read without running a cell)."""
    return kernel.inside(f"result = sorted(rec.tracker.by_name[{name!r}].names)")


def covariables(kernel, names: list[str]) -> dict[str, list[str]]:
    return kernel.inside(f"result = {{n: sorted(rec.tracker.by_name[n].names) for n in {names!r}}}")


# Restore the co-variable of ``name`` as recorded at HEAD into a fresh namespace, as a checkout
# would, and describe identities inside the restored values.
RESTORE = """
from nbstate.state import load_version
store = rec.store
head = store.head(rec.notebook_id)[1]
vid = store.commit(head).state[{name!r}]
version = store.versions([vid])[vid]
restored = load_version(store, version, {{}}, lookup=ns)  # classes named by the notebook are its
{check}
"""


def restore(kernel, name: str, check: str):
    return kernel.inside(RESTORE.format(name=name, check=check))


def test_aliases_and_containers_share_a_covariable(kernel):
    kernel.ok("a = [1, 2]\nb = a\nc = [a]\nd = {'k': a}\nlone = [1, 2]")
    assert covariables(kernel, ["a", "b", "c", "d", "lone"]) == {
        "a": ["a", "b", "c", "d"], "b": ["a", "b", "c", "d"], "c": ["a", "b", "c", "d"],
        "d": ["a", "b", "c", "d"], "lone": ["lone"],
    }
    state = kernel.inside("result = rec.store.commit(rec.store.head(rec.notebook_id)[1]).state")
    assert state["a"] == state["b"] == state["c"] == state["d"] != state["lone"]  # one version


def test_restoring_a_covariable_keeps_its_sharing(kernel):
    kernel.ok(
        "import numpy as np\n"
        "a = [1, 2]\nb = a\nc = [a, {'again': a}]\n"
        "class Node:\n    pass\n"
        "n1 = Node()\nn2 = Node()\nn1.peer, n2.peer = n2, n1\n"
        "arr = np.arange(10.0)\nhead = arr[:3]\ncols = arr.reshape(2, 5).T"
    )
    assert restore(kernel, "a", "result = [sorted(restored), restored['c'][0] is restored['a'], "
                   "restored['b'] is restored['a'], restored['c'][1]['again'] is restored['a'], "
                   "restored['a'] is ns['a'], restored['a']]") == [["a", "b", "c"], True, True, True, False, [1, 2]]
    assert restore(kernel, "n1", "result = [sorted(restored), restored['n1'].peer is restored['n2'], "
                   "restored['n2'].peer is restored['n1'], type(restored['n1']) is ns['Node']]") == [
        ["n1", "n2"], True, True, True]
    assert restore(kernel, "arr", "import numpy as np\n"
                   "r = restored\n"
                   "r['arr'][1] = 100.0\n"
                   "result = [sorted(r), bool(np.shares_memory(r['arr'], r['head'])), "
                   "bool(np.shares_memory(r['arr'], r['cols'])), float(r['head'][1]), float(r['cols'][1, 0]), "
                   "float(ns['arr'][1])]") == [["arr", "cols", "head"], True, True, 100.0, 100.0, 1.0]


def test_unrelated_arrays_and_frames_are_never_merged(kernel):
    kernel.ok(
        "import numpy as np\nimport pandas as pd\nimport datetime as dt\n"
        "x = np.arange(10.0)\n"
        "y = x + 1\n"
        "z = x.copy()\n"
        "w = np.zeros(10)\n"
        "r = np.arange(10).reshape(2, 5)\n"
        "q = np.arange(10).reshape(2, 5)\n"
        "rec_a = np.zeros(3, dtype=[('a', 'i4'), ('b', 'f8')])\n"
        "rec_b = np.zeros(3, dtype=[('a', 'i4'), ('b', 'f8')])\n"
        "obj_a = np.array(['s', None], dtype=object)\n"
        "obj_b = np.array(['s', None], dtype=object)\n"
        "df1 = pd.DataFrame(np.random.rand(5, 3), columns=list('abc'))\n"
        "df2 = pd.DataFrame({'x': range(5)})\n"
        "df3 = df1 * 2\n"
        "df4 = df1.copy()\n"
        "df5 = df1.groupby('a').sum()\n"
        "df6 = pd.DataFrame({'t': pd.date_range('2020', periods=5, freq='D')}, index=pd.date_range('2021', periods=5, freq='D'))\n"
        "df7 = pd.DataFrame({'u': [1.0] * 5}, index=pd.date_range('2022', periods=5, freq='D'))\n"
        "df8 = pd.DataFrame({'s': ['a', 'b'], 'n': [pd.NA, 1]})\n"
        "df9 = pd.DataFrame({'s': ['c', 'd'], 'n': [pd.NA, 2]})\n"
        "tz1 = pd.DataFrame({'t': pd.date_range('2020', periods=3, tz='UTC')})\n"
        "tz2 = pd.DataFrame({'t': pd.date_range('2021', periods=3, tz='UTC')})\n"
        "s1 = df1['a'] + 1\n"
        "s2 = pd.Series(['p', 'q'])\n"
        "s3 = pd.Series(['p', 'q'])\n"
        "cat1 = pd.Series(['a', 'b'], dtype='category')\n"
        "cat2 = pd.Series(['a', 'b'], dtype='category')\n"
        "d1 = [dt.datetime.now(dt.timezone.utc)]\n"
        "d2 = [dt.datetime.now(dt.timezone.utc)]"
    )
    names = ["x", "y", "z", "w", "r", "q", "rec_a", "rec_b", "obj_a", "obj_b", "df1", "df2", "df3", "df4", "df5",
             "df6", "df7", "df8", "df9", "tz1", "tz2", "s1", "s2", "s3", "cat1", "cat2", "d1", "d2"]
    assert covariables(kernel, names) == {n: [n] for n in names}
    assert set(kernel.log()[0]["created"]) >= set(names)
    # Touching some of them later merges nothing either.
    kernel.ok("df1.loc[0, 'a'] = 5.0\nx[0] = 3.0\ndf6['v'] = 1")
    assert covariables(kernel, names) == {n: [n] for n in names}
    e = kernel.log()[0]
    assert e["changed"] == ["df1", "df6", "x"]
    assert sorted(e["examined"]) == ["df1", "df6", "x"]


def test_views_are_merged_with_their_base(kernel):
    kernel.ok("import numpy as np\nbase = np.arange(10.0)\nhead = base[:3]\nother = np.arange(10.0)")
    assert covariables(kernel, ["base", "head", "other"]) == {
        "base": ["base", "head"], "head": ["base", "head"], "other": ["other"]}
    kernel.ok("head[0] = 42.0")  # writes into base
    e = kernel.log()[0]
    assert e["changed"] == ["base", "head"]


def test_sharing_that_starts_merges_and_sharing_that_ends_splits(kernel):
    kernel.ok("a = [1]\nb = []\nd = {}")
    assert covariables(kernel, ["a", "b", "d"]) == {"a": ["a"], "b": ["b"], "d": ["d"]}
    kernel.ok("b.append(a)")
    assert covariable(kernel, "a") == ["a", "b"]
    e = kernel.log()[0]
    assert e["changed"] == ["a", "b"]  # a's value is the same, but it is now stored with b
    kernel.ok("b = []")
    assert covariables(kernel, ["a", "b"]) == {"a": ["a"], "b": ["b"]}
    e = kernel.log()[0]
    assert e["changed"] == ["a", "b"]
    kernel.ok("def link():\n    d['a'] = a")
    kernel.ok("link()")  # inside a notebook function
    assert covariable(kernel, "d") == ["a", "d"]
    kernel.ok("d.clear()")
    assert covariables(kernel, ["a", "d"]) == {"a": ["a"], "d": ["d"]}
    kernel.ok("import numpy as np\nbig = np.zeros(1000)\nlst = [1]")
    kernel.ok("lst.append(big)")
    assert covariable(kernel, "big") == ["big", "lst"]
    kernel.ok("del lst")
    assert covariable(kernel, "big") == ["big"]
    assert kernel.log()[0]["deleted"] == ["lst"]


def test_a_name_bound_again_to_an_object_leaves_its_old_covariable(kernel):
    kernel.ok("a = [1]\nb = a")
    assert covariable(kernel, "a") == ["a", "b"]
    kernel.ok("b = list(a)")  # a copy: the two are apart now
    assert covariables(kernel, ["a", "b"]) == {"a": ["a"], "b": ["b"]}
    kernel.ok("a.append(2)")
    e = kernel.log()[0]
    assert e["changed"] == ["a"] and e["examined"] == ["a"]


def test_immutable_shared_values_do_not_merge_but_what_they_hold_does(kernel):
    kernel.ok(
        "import numpy as np\nimport pandas as pd\n"
        "u1 = pd.DataFrame({'a': [1]})\nv1 = pd.DataFrame({'a': [1]})\n"
        "u2 = np.ones(3)\nv2 = [np.ones(3)]\n"
        "u3 = [None, True, 1, 'shared string', (1, 2), 2.5]\nv3 = [None, True, 1, 'shared string', (1, 2), 2.5]\n"
        "t = ([],)\nu4 = t\nv4 = t[0]\n"
        "fs = frozenset({(1, 2)})\nfs2 = fs"
    )
    assert covariables(kernel, ["u1", "v1", "u2", "v2", "u3", "v3", "u4", "v4", "fs"]) == {
        "u1": ["u1"], "v1": ["v1"], "u2": ["u2"], "v2": ["v2"], "u3": ["u3"], "v3": ["v3"],
        "u4": ["t", "u4", "v4"], "v4": ["t", "u4", "v4"], "fs": ["fs"],
    }
