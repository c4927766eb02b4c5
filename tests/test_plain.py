"""Plain values (builtin containers of builtin atoms) pickled without pickle's memo: they come
back equal and with the same sharing of containers, a container met twice sends the value the
usual way, shared strings come back as one object, and co-variables are still found through
the compact ids of a large plain value."""

from __future__ import annotations

import io
import pickle
import sys
from fractions import Fraction
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_storage import Session

from nbstate import codec


def shape(x, memo=None):
    """A value's structure with its containers' sharing: equal shapes, equal values and aliasing."""
    memo = {} if memo is None else memo
    t = type(x)
    if t in (list, tuple, dict, set, frozenset, bytearray):
        if id(x) in memo and (x or t not in (tuple, frozenset)):
            return ("ref", memo[id(x)])
        memo[id(x)] = len(memo)
        if t is dict:
            return ("dict", [(shape(k, memo), shape(v, memo)) for k, v in x.items()])
        if t in (set, frozenset):
            return (t.__name__, sorted(map(repr, x)))
        if t is bytearray:
            return ("bytearray", bytes(x))
        return (t.__name__, [shape(v, memo) for v in x])
    return (t.__name__, x)


def roundtrip(values):
    ser = codec.serialize(values, {})
    assert ser.ok, ser.error
    back, ids = codec.load(ser.stream, ser.buffers, {})
    assert shape(list(back)) == shape(list(values))
    return ser, back, ids


def test_plain_data_is_pickled_without_a_memo_and_comes_back_equal():
    value = {"a": [1, 2.5, None, True], "b": ("x" * 100, b"raw", frozenset({1, 2})), 3: {4, 5}, "c": bytearray(b"xy"), "n": 10**40}
    ser, back, ids = roundtrip([value])
    assert ser.plain and b"\x94" not in ser.stream  # no MEMOIZE opcode
    assert back[0] == value
    assert id(back[0]) in ids and id(back[0]["a"]) in ids and id(back[0][3]) in ids
    assert id(back[0]["b"]) not in ids  # a tuple links no co-variables


def test_a_container_met_twice_is_pickled_with_a_memo():
    shared = [1]
    pair = (shared, 2)
    a = []
    a.append(a)
    for values in ([[shared, shared]], [[pair, pair]], [{"k": shared, "j": [shared]}], [shared, [shared]], [shared, shared], [a]):
        ser, back, _ = roundtrip(values)
        assert not ser.plain


def test_a_value_with_other_types_is_pickled_the_usual_way():
    import datetime

    ser, back, _ = roundtrip([[1, datetime.date(2020, 1, 2)]])
    assert not ser.plain and back[0][1] == datetime.date(2020, 1, 2)
    assert not codec.serialize([[1, 2j]], {}).plain


def test_shared_strings_come_back_as_one_object():
    s = "a string that many places hold" * 3
    ser, back, _ = roundtrip([[s, s, {"k": s}, (s,), *[[s] for _ in range(20)]]])
    assert ser.plain
    out = back[0]
    assert out[0] is out[1] is out[2]["k"] is out[3][0] is out[4][0]
    records = [{"id": i, "name": f"user{i}"} for i in range(3000)]
    ser, back, _ = roundtrip([records])
    keys = {id(k) for r in back[0] for k in r}
    assert ser.plain and len(keys) == 2  # "id" and "name": one object each, as in the session


def test_a_value_keeps_its_bytes_when_code_comes_to_name_its_strings():
    # A key that code names too (a variable of the same name, a constant of a cell) gains a
    # few references without the value changing: its bytes, and so its fingerprint, stay.
    table = {"".join(["bu", "mp"]): 1}  # the dict alone holds its key
    before = codec.serialize([table], {}).stream
    namespace = {next(iter(table)): 1}
    names = [next(iter(table))] * 5
    assert codec.serialize([table], {}).stream == before
    assert len(names) == 5 and list(namespace) == list(table)


def test_the_same_value_pickles_to_the_same_bytes_after_a_round_trip():
    # (Strings held by about 16 references, in the value and elsewhere, may be written the
    # other way after a restore: one new version.)
    s = "shared" * 10
    rows, t, x = ("".join([a, "!"]) for a in ("rows", "t", "x"))
    value = {rows: [{"k": i, "tag": s, "xs": [i, i + 1]} for i in range(5000)], t: (1, x)}
    del rows, t, x
    ser, back, _ = roundtrip([value])
    again = codec.serialize(list(back), {})
    assert ser.plain and again.plain and again.stream == ser.stream


def test_many_containers_keep_compact_ids_and_a_container_met_twice_is_still_found():
    rows = [[i] for i in range(20_000)]
    ser = codec.serialize([rows], {})
    assert ser.plain and isinstance(ser.ids, codec.IdArray) and len(ser.ids) == 20_001
    assert id(rows[123]) in ser.ids and id(rows) in ser.ids and id(object()) not in ser.ids
    assert ser.ids.intersection({id(rows[5]), 1, 2}) == {id(rows[5])}
    assert not codec.ids_disjoint({id(rows[7])}, ser.ids) and codec.ids_disjoint({3}, ser.ids)
    rows.append(rows[19_999])
    ser, back, _ = roundtrip([rows])
    assert not ser.plain and back[0][-1] is back[0][-2]


def test_id_arrays_sort_without_numpy(monkeypatch):
    from array import array

    monkeypatch.setitem(sys.modules, "numpy", None)
    ids = array("q", [5, 3, 9] * 30_000 + list(range(100_000, 0, -7)))
    expected = sorted(ids)
    got = codec.IdArray(ids)
    assert list(got) == expected and len(ids) == 0


plain_atoms = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.binary(max_size=5), st.none(), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_plain_value_with_any_sharing_round_trips(data):
    """Random plain values in which random containers are placed again elsewhere: the structure
    and sharing come back, whichever way the value was pickled."""
    pool: list = []

    def grow(children):
        return st.one_of(
            st.lists(children, max_size=4),
            st.tuples(children, children),
            st.dictionaries(st.text(max_size=3), children, max_size=3),
            st.frozensets(plain_atoms, max_size=3),
            st.sets(plain_atoms, max_size=3),
        )

    value = data.draw(st.recursive(plain_atoms, grow, max_leaves=30))
    containers = []

    def collect(x):
        if type(x) in (list, dict):
            containers.append(x)
            for v in x.values() if type(x) is dict else x:
                collect(v)
        elif type(x) is tuple:
            for v in x:
                collect(v)

    collect(value)
    for target in containers:
        if data.draw(st.booleans()) and containers:
            extra = data.draw(st.sampled_from(containers))
            if extra is not target:
                (target.__setitem__("again", extra) if type(target) is dict else target.append(extra))
    pool.append(value)
    ser = codec.serialize(pool, {})
    back, _ = codec.load(ser.stream, ser.buffers, {})
    assert shape(list(back)) == shape(pool)
    assert pickle.dumps(back[0]) == pickle.dumps(value) or shape(back[0]) == shape(value)


def test_a_cycle_that_makes_the_memoless_pickler_raise_key_error_is_pickled_the_usual_way():
    # Found by the property above: fast mode raises KeyError, not ValueError, for this cycle.
    outer, inner, leaf = [[], [], [], frozenset()], [], []
    loop = [inner]
    inner.extend([leaf, loop])
    leaf.append(outer)
    value = (outer, loop)
    ser = codec.serialize([value], {})
    assert ser.ok
    (back,), _ = codec.load(ser.stream, ser.buffers, {})
    b_outer, b_loop = back
    b_inner = b_loop[0]
    assert b_inner[1] is b_loop and b_inner[0][0] is b_outer
    assert b_outer[:3] == [[], [], []] and b_outer[3] == frozenset()


def test_plain_values_compare_by_value_with_nan_equal_to_nan():
    nan = float("nan")
    deep: list = []
    for _ in range(5000):  # deeper than recursion allows
        deep = [deep]
    cases_equal = [({"k": [1, 2.5, nan]}, {"k": [1, 2.5, float("nan")]}), (deep, copy_deep(deep)), ((1, "s", b"b", None), (1, "s", b"b", None)), ({1, 2}, {2, 1})]
    for a, b in cases_equal:
        assert codec.same_plain(a, b)
    cases_differ = [([1], [1.0]), ([True], [1]), ({"k": 1}, {"j": 1}), ([1, 2], [1, 2, 3]), ((nan,), (0.0,)), ({"k": [1]}, {"k": (1,)})]
    for a, b in cases_differ:
        assert not codec.same_plain(a, b) and not codec.same_plain(b, a)


def test_values_compare_as_pickled_with_strings_written_where_met():
    inner = {"pk": 0, "qk": 0}
    recorded = {"pk": inner, "qk": inner}  # the keys of both dicts are the same two objects

    def fresh(key):  # an equal string that is another object
        return "".join(list(key))

    again = {fresh("pk"): 0, fresh("qk"): 0}
    loaded = {fresh("pk"): again, fresh("qk"): again}
    assert codec.serialize([recorded], {}, plain=False).stream != codec.serialize([loaded], {}, plain=False).stream
    assert codec.same_values([recorded], {}, [loaded], {})
    assert not codec.same_values([recorded], {}, [{"pk": inner, "qk": {"pk": 0, "qk": 0}}], {})  # sharing differs
    assert not codec.same_values([recorded], {}, [{"pk": inner, "qk": {"pk": 0, "qk": 1}}], {})
    assert not codec.same_values(["a"], {}, [b"a"], {})


def copy_deep(x):
    out = root = []
    while x:
        x = x[0]
        nxt: list = []
        out.append(nxt)
        out = nxt
    return root


def test_a_name_that_comes_to_hold_plain_data_is_pickled_as_plain_data(tmp_path: Path):
    # The name held something else first: what it learned of that value is not kept for the next
    s = Session(tmp_path / "st")
    s.cell(data=Fraction(1, 3))
    assert s.tracker.by_name["data"].plain is False
    s.cell(data={i: {"id": i} for i in range(5000)})
    assert s.tracker.by_name["data"].plain is True
    s.cell(data=[Fraction(1, 2)] * 3)
    s.cell(other=1)  # (data not touched)
    assert s.tracker.by_name["data"].plain is False


def test_a_variable_holding_part_of_a_large_plain_value_joins_its_co_variable(tmp_path: Path):
    s = Session(tmp_path / "st")
    records = {i: {"id": i, "tags": ["a"]} for i in range(10_000)}
    commit, _ = s.cell(records=records)
    live = s.tracker.by_name["records"]
    assert live.plain and isinstance(live.ids, codec.IdArray)
    commit, _ = s.cell(one=records[42])
    assert commit.state["one"] == commit.state["records"]  # stored together: aliasing kept
    back = s.load(commit, "records")
    one = s.load(commit, "one")
    assert back == records and one == records[42]
    from nbstate.state import load_version

    both = load_version(s.store, s.store.versions([commit.state["one"]])[commit.state["one"]], {})
    assert both["one"] is both["records"][42]
    commit, _ = s.cell(touched={"one"}, one=None)
    assert commit.state["one"] != commit.state["records"]


def test_a_sink_that_cannot_start_again_gets_the_usual_stream_whole():
    import io

    shared = [1]
    out = io.BytesIO()
    ser = codec.serialize([[shared, shared, {"k": "v"}]], {}, sink=out)
    assert ser.ok and not ser.plain
    back, _ = codec.load(out.getvalue(), ser.buffers, {})
    assert back[0][0] is back[0][1] and back[0][2] == {"k": "v"}


def test_flat_values_take_a_path_without_python_per_item_and_give_the_same_stream():
    # Numbers, and containers of only numbers (a loss history), are pickled by a pickler that
    # runs no Python per item: the stream and the ids are those of the plain pickler.
    cases = [[list(range(3000))], [{1: 2.5, 3: None}], [(1, 2), {3, 4}, 7, True], [[0.1] * 10, frozenset({1})], [5, None]]
    for values in cases:
        assert codec._flat(values)
        flat = codec._serialize_flat(values, None)
        codec._measure_held_once()
        out = io.BytesIO()
        plain = codec._PlainPickler(out, tuple(values))
        plain.dump(tuple(values))
        assert flat.stream == out.getvalue() and flat.ids == set(plain.ids) and flat.plain
        assert pickle.loads(flat.stream) == tuple(values)
    assert not codec._flat([["a", 1]]) and not codec._flat([[[1]]]) and not codec._flat([{"k": 1}])
    shared = [1, 2]
    assert codec._serialize_flat([shared, shared], None) is None  # one list under two names
    assert codec.serialize([shared, shared], {}).plain is False
