"""Pickling co-variables: one pass gives the stream, the out-of-band buffers and the sharing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import sys
import textwrap
import threading
import types

import numpy as np
import pandas as pd
import pytest

from nbstate import codec


@pytest.fixture
def notebook(monkeypatch):
    """Run source as notebook cells: in a namespace that is ``__main__`` (as in a kernel)."""

    def make(source: str) -> dict:
        main = types.ModuleType("__main__")
        monkeypatch.setitem(sys.modules, "__main__", main)
        exec(textwrap.dedent(source), main.__dict__)
        return main.__dict__

    return make


def roundtrip(values: list, ns: dict, target: dict | None = None) -> tuple:
    ser = codec.serialize(values, ns)
    assert ser.ok, ser.error
    return codec.deserialize(ser.stream, [bytearray(b) for b in ser.buffers], ns if target is None else target)


def fresh() -> dict:
    return {"__builtins__": __builtins__}


# --- one pass: buffers out of band -----------------------------------------------------------


def test_a_large_array_comes_out_of_band_without_a_copy():
    arr = np.arange(50 * 2**20 // 8, dtype=np.float64)  # 50 MiB
    ser = codec.serialize([arr], {})
    assert ser.ok
    assert len(ser.stream) < 1000
    assert len(ser.buffers) == 1
    (buf,) = ser.buffers
    assert buf.nbytes == arr.nbytes == 50 * 2**20
    view = np.frombuffer(buf, dtype=np.float64)
    assert np.shares_memory(view, arr)  # the pickler handed over the array's own memory
    assert ser.nbytes == len(ser.stream) + arr.nbytes
    (back,) = codec.deserialize(ser.stream, ser.buffers, {})
    assert np.array_equal(back, arr)


def test_several_arrays_give_one_buffer_each_and_a_view_is_not_copied_in():
    a = np.ones((1000, 100))
    b = np.zeros(5000, dtype=np.int32)
    ser = codec.serialize([a, b, "text"], {})
    assert sorted(x.nbytes for x in ser.buffers) == sorted([a.nbytes, b.nbytes])
    assert len(ser.stream) < 1000
    nc = a[:, ::2]  # not contiguous: copied in band, still correct
    ser = codec.serialize([nc], {})
    assert ser.ok and ser.buffers == [] and len(ser.stream) >= nc.nbytes
    (back,) = codec.deserialize(ser.stream, ser.buffers, {})
    assert np.array_equal(back, nc)


def test_dataframe_columns_come_out_of_band():
    df = pd.DataFrame({"a": np.arange(100_000, dtype=np.int64), "b": np.ones(100_000)})
    ser = codec.serialize([df], {})
    assert ser.ok
    assert sum(b.nbytes for b in ser.buffers) >= 2 * 800_000
    assert len(ser.stream) < 20_000
    (back,) = codec.deserialize(ser.stream, ser.buffers, {})
    pd.testing.assert_frame_equal(back, df)


# --- notebook functions ------------------------------------------------------------------------


def test_a_function_is_restored_with_the_target_namespace_as_its_globals(notebook):
    ns = notebook(
        """
        K = 21
        def double_k(extra=0, *, scale=2):
            '''Doc.'''
            return K * scale + extra
        double_k.tag = 'mine'
        """
    )
    target = fresh()
    target["K"] = 5
    (f,) = roundtrip([ns["double_k"]], ns, target)
    assert f is not ns["double_k"]
    assert f.__globals__ is target
    assert f() == 10 and f(1, scale=3) == 16
    assert (f.__name__, f.__doc__, f.tag, f.__defaults__, f.__kwdefaults__) == ("double_k", "Doc.", "mine", (0,), {"scale": 2})
    assert ns["double_k"]() == 42  # the original is untouched


def test_closures_keep_their_cells_and_stay_live(notebook):
    ns = notebook(
        """
        def counter():
            n = 0
            def step():
                nonlocal n
                n += 1
                return n
            return step
        c = counter()
        c(); c()
        def late():
            def get():
                return value
            value = 'set after'
            return get
        g = late()
        def empty_cell():
            def get():
                return never
            if False:
                never = 1
            return get
        e = empty_cell()
        """
    )
    c, g, e = roundtrip([ns["c"], ns["g"], ns["e"]], ns, fresh())
    assert c() == 3 and c() == 4
    assert ns["c"]() == 3  # independent of the original
    assert g() == "set after"
    with pytest.raises(NameError):
        e()


def test_recursive_functions(notebook):
    ns = notebook(
        """
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        def outer():
            def fib(n):
                return n if n < 2 else fib(n - 1) + fib(n - 2)
            return fib
        fib = outer()
        """
    )
    target = fresh()
    fact, fib = roundtrip([ns["fact"], ns["fib"]], ns, target)
    target["fact"] = fact  # as a checkout binds it: the recursion goes through the namespace
    assert fact(5) == 120
    assert fib(10) == 55  # through its own closure cell


def test_lambdas(notebook):
    ns = notebook(
        """
        offset = 10
        sq = lambda x, p=2: x ** p + offset
        table = {'inc': lambda v: v + 1, 'neg': lambda v: -v}
        """
    )
    target = fresh()
    target["offset"] = 1
    sq, table = roundtrip([ns["sq"], ns["table"]], ns, target)
    assert sq(3) == 10 and sq(2, p=3) == 9
    assert table["inc"](1) == 2 and table["neg"](4) == -4
    assert sq.__name__ == "<lambda>"


def test_modules_are_stored_by_reference():
    (m, npm, sub) = roundtrip([math, np, np.linalg], {})
    assert m is math and npm is np and sub is np.linalg
    assert len(codec.serialize([np], {}).stream) < 100


# --- notebook classes --------------------------------------------------------------------------


def test_a_class_with_slots_round_trips_by_value_and_its_instances_by_reference(notebook):
    ns = notebook(
        """
        class Slotted:
            __slots__ = ('x', 'items')
            kind = 'slotted'
            def __init__(self, x):
                self.x = x
                self.items = [x]
            def total(self):
                return self.x + sum(self.items)
        s = Slotted(3)
        """
    )
    (cls,) = roundtrip([ns["Slotted"]], ns, fresh())
    assert cls is not ns["Slotted"]
    obj = cls(2)
    assert obj.total() == 4 and cls.kind == "slotted"
    assert cls.__slots__ == ("x", "items") and not hasattr(obj, "__dict__")
    (s,) = roundtrip([ns["s"]], ns)  # the class is the one the namespace names
    assert type(s) is ns["Slotted"] and s.total() == 6 and s is not ns["s"]


def test_dataclasses_keep_their_fields_defaults_and_generated_methods(notebook):
    ns = notebook(
        """
        from dataclasses import dataclass, field
        @dataclass
        class Point:
            x: int
            y: int = 0
            tags: list = field(default_factory=list)
            @property
            def norm(self):
                return abs(self.x) + abs(self.y)
        @dataclass(frozen=True)
        class Frozen:
            v: int
        p = Point(1, 2, ['a'])
        """
    )
    target = fresh()
    (Point,) = roundtrip([ns["Point"]], ns, target)
    (Frozen,) = roundtrip([ns["Frozen"]], ns, target)
    assert [f.name for f in dataclasses.fields(Point)] == ["x", "y", "tags"]
    fx, fy, ft = dataclasses.fields(Point)
    assert fx.default is dataclasses.MISSING and fy.default == 0 and ft.default_factory is list
    a, b = Point(1), Point(1)
    assert a == b and a.tags is not b.tags and a.tags == []
    assert repr(Point(3, 4)) == "Point(x=3, y=4, tags=[])"
    assert Point(3, -4).norm == 7
    assert dataclasses.asdict(Point(1, 2)) == {"x": 1, "y": 2, "tags": []}
    assert Point.__init__.__globals__ is target
    with pytest.raises(dataclasses.FrozenInstanceError):
        Frozen(1).v = 2
    (p,) = roundtrip([ns["p"]], ns)
    assert p == ns["p"] and p is not ns["p"]


def test_descriptors_of_notebook_classes(notebook):
    ns = notebook(
        """
        import functools
        class Tools:
            @staticmethod
            def s():
                return 's'
            @classmethod
            def c(cls):
                return cls.__name__
            @functools.cached_property
            def cached(self):
                return [1]
        """
    )
    (cls,) = roundtrip([ns["Tools"]], ns, fresh())
    obj = cls()
    assert (cls.s(), cls.c(), obj.cached) == ("s", "Tools", [1])
    assert obj.cached is obj.cached


# --- sharing -----------------------------------------------------------------------------------


def test_shared_objects_are_one_object_after_a_restore():
    a = [1, 2]
    b = a
    c = [a, {"again": a}]
    restored_a, restored_b, restored_c = roundtrip([a, b, c], {})
    assert restored_b is restored_a
    assert restored_c[0] is restored_a and restored_c[1]["again"] is restored_a
    assert restored_a == [1, 2] and restored_a is not a


def test_ids_name_the_mutable_objects_reached():
    a = [1]
    c = [a]
    ser_a, ser_c = codec.serialize([a], {}), codec.serialize([c], {})
    assert id(a) in ser_a.ids and id(a) in ser_c.ids and id(c) in ser_c.ids
    assert ser_a.object_with_id(id(a)) is a
    lone = codec.serialize([[2]], {})
    assert not (lone.ids & ser_a.ids)


class _Remade:
    """Pickled through objects made for the occasion: a list of arguments, a state dict."""

    def __init__(self, shared):
        self.shared = shared

    def __reduce__(self):
        return (_remade, ([self.shared, []],), {"made": [1]})

    def __setstate__(self, state):
        self.extra = state["made"]


def _remade(args):
    return _Remade(args[0])


def test_what_a_reducer_made_for_the_pickle_is_not_part_of_the_value():
    shared = [1, 2]
    value = _Remade(shared)
    ser = codec.serialize([value], {})
    assert ser.ids == {id(value), id(shared)}  # not the argument list, its inner list, the state
    (back,), ids = codec.load(ser.stream, ser.buffers, {})
    # The loaded value holds its list and the state's list; the argument lists went.
    assert ids == {id(back), id(back.shared), id(back.extra)}
    assert back.shared == [1, 2] and back.extra == [1]


def test_a_value_held_only_through_another_reached_object_is_still_part_of_it():
    inner = {"k": [1]}
    outer = [inner]
    ser = codec.serialize([outer], {})
    assert {id(outer), id(inner), id(inner["k"])} <= ser.ids
    (back,), ids = codec.load(ser.stream, ser.buffers, {})
    assert {id(back), id(back[0]), id(back[0]["k"])} <= ids


def _kinds(v) -> str:
    return str(v.dtypes) if isinstance(v, pd.DataFrame) else str(v.dtype)


def test_a_pandas_string_column_is_pickled_without_a_copy_and_round_trips():
    frame = pd.DataFrame({"s": [f"v{i % 97}" for i in range(5000)], "x": range(5000)})
    if not hasattr(frame["s"].array, "_pa_array"):
        pytest.skip("this pandas does not back strings by pyarrow")
    two_chunks = pd.concat([frame, frame], ignore_index=True)
    for value in (frame, frame.iloc[100:200], two_chunks, frame["s"].str.upper()):
        ser = codec.serialize([value], {})
        back = codec.deserialize(ser.stream, ser.buffers, {})[0]
        assert back.equals(value) and _kinds(back) == _kinds(value)
        # The same state pickles to the same bytes, before and after a restore.
        again = codec.serialize([back], {})
        assert again.stream == ser.stream and [bytes(b) for b in again.buffers] == [bytes(b) for b in ser.buffers]
    # A slice of a larger array is left to pandas, which stores only the slice.
    sliced = codec.serialize([frame.iloc[:10]], {})
    assert sum(b.nbytes for b in sliced.buffers) + len(sliced.stream) < 5000


def test_unrelated_values_share_no_ids():
    """Library internals (cython functions, class-level lists, cached offsets and time zones,
    pandas indexes) reached by many values are no link between them."""
    base = pd.DataFrame(np.random.rand(5, 3), columns=list("abc"))
    values = {
        "df": base,
        "df_times_2": base * 2,
        "df_copy": base.copy(),
        "grouped": base.groupby("a").sum(),
        "ints": pd.DataFrame({"x": range(5)}),
        "daily_1": pd.DataFrame({"u": [1.0] * 5}, index=pd.date_range("2021", periods=5, freq="D")),
        "daily_2": pd.DataFrame({"t": pd.date_range("2020", periods=5, freq="D")}, index=pd.date_range("2022", periods=5, freq="D")),
        "utc_1": pd.DataFrame({"t": pd.date_range("2020", periods=3, tz="UTC")}),
        "utc_2": pd.DataFrame({"t": pd.date_range("2021", periods=3, tz="UTC")}),
        "cat_1": pd.Series(["a", "b"], dtype="category"),
        "cat_2": pd.Series(["a", "b"], dtype="category"),
        "na_1": pd.Series([1, None], dtype="Int64"),
        "na_2": pd.DataFrame({"s": ["a", "b"], "n": [pd.NA, 1]}),
        "periods": pd.period_range("2020", periods=3, freq="M").to_series(),
        "strings": pd.Series(["p", "q"]),
        "arr": np.arange(10),
        "zeros": np.zeros((2, 2)),
        "arr_plus_1": np.arange(10) + 1,
        "structured": np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
        "dates": np.array(["2020-01-01"], dtype="datetime64[D]"),
        "aware_1": [dt.datetime.now(dt.timezone.utc)],
        "aware_2": [dt.datetime.now(dt.timezone.utc)],
    }
    sers = {k: codec.serialize([v], {}) for k, v in values.items()}
    for k, s in sers.items():
        assert s.ok, (k, s.error)
    for k1 in sers:
        for k2 in sers:
            if k1 < k2:
                assert not (sers[k1].ids & sers[k2].ids), (k1, k2)


def test_a_view_and_its_base_share():
    base = np.arange(10)
    view = base[2:5]
    assert id(base) in codec.serialize([view], {}).ids
    assert codec.serialize([view], {}).ids & codec.serialize([base], {}).ids


# --- values that cannot be pickled -------------------------------------------------------------


def test_unserializable_values_say_why_and_still_report_sharing(notebook):
    ns = notebook(
        """
        items = [1, 2]
        gen = (i for i in items)
        lock_holder = {'lock': __import__('threading').Lock(), 'items': items}
        """
    )
    ser = codec.serialize([ns["gen"]], ns)
    assert not ser.ok and "generator" in ser.error
    assert id(ns["items"]) in ser.ids  # the generator iterates over items
    ser = codec.serialize([ns["lock_holder"]], ns)
    assert not ser.ok and "lock" in ser.error
    assert id(ns["items"]) in ser.ids
    assert ser.stream == b"" and ser.buffers == []


def test_the_walk_of_an_unserializable_value_stops_at_what_holds_the_namespace():
    """A shell-like object (it holds the namespace) is part of the process, not of a value."""
    ns: dict = {"shown": [1, 2], "__name__": "__main__"}

    class Shell:
        def __init__(self):
            self.user_ns = ns
            self.history = {"out": ns["shown"]}
            self.lock = threading.Lock()

    ns["ip"] = Shell()
    ser = codec.serialize([ns["ip"]], ns)
    assert not ser.ok
    assert id(ns["shown"]) not in ser.ids


def test_a_tuple_does_not_hide_what_it_holds_from_the_walk():
    inner = [1]
    ser = codec.serialize([(threading.Lock(), (inner,))], {})
    assert not ser.ok and id(inner) in ser.ids


def test_holds():
    inner = [1]
    outer = {"k": (inner,)}
    assert codec.holds([outer], inner, {})
    assert not codec.holds([outer], [1], {})
    arr = np.arange(4)
    assert codec.holds([arr[1:]], arr, {})  # through the view's base
    obj = np.array([inner, None], dtype=object)
    assert codec.holds([obj], inner, {})  # through an object array's elements


def test_views_restored_with_their_base_still_share_its_memory():
    base = np.arange(12, dtype=np.float64)
    view, reversed_view, transposed = base[2:5], base[::-3], base.reshape(3, 4).T
    read_only = np.broadcast_to(base, (2, 12))
    holder = {"inner": base[1:3]}
    v, b, r, t, ro, h = roundtrip([view, base, reversed_view, transposed, read_only, holder], {})
    for restored, original in [(v, view), (r, reversed_view), (t, transposed), (ro, read_only), (h["inner"], holder["inner"])]:
        assert np.shares_memory(restored, b)
        assert np.array_equal(restored, original) and restored.strides == original.strides
    assert not ro.flags.writeable and b.flags.writeable
    b[3] = -1.0
    assert v[1] == -1.0 and t[0, 0] == 0.0 and t[3, 0] == -1.0
    ser = codec.serialize([view, base], {})
    assert [x.nbytes for x in ser.buffers] == [base.nbytes]  # the view's memory is not stored twice
    alone = codec.serialize([view], {})  # without its base: a copy of just the view's elements
    assert [x.nbytes for x in alone.buffers] == [view.nbytes]


def test_a_generator_shares_what_it_iterates_not_the_function_it_came_from(notebook):
    ns = notebook(
        """
        items = [1, 2]
        def produce(source):
            for v in source:
                yield v
        gen = produce(items)
        next(gen)
        """
    )
    ser = codec.serialize([ns["gen"]], ns)
    assert not ser.ok
    assert id(ns["items"]) in ser.ids
    assert id(ns["produce"]) not in ser.ids


def test_classes_with_bases_metaclasses_and_abcs_round_trip(notebook):
    ns = notebook(
        """
        import abc
        class Meta(type):
            def __new__(m, name, bases, d):
                d['tag'] = name.lower()
                return super().__new__(m, name, bases, d)
        class Tagged(metaclass=Meta):
            pass
        class Parent:
            def hello(self):
                return 'parent'
        class Child(Parent):
            def hello(self):
                return 'child+' + super().hello()
        class Shape(abc.ABC):
            @abc.abstractmethod
            def area(self): ...
            def twice(self):
                return 2 * self.area()
        class MyError(ValueError):
            pass
        """
    )
    target = fresh()
    target.update(Meta=ns["Meta"], Parent=ns["Parent"])  # bases named by the notebook are looked up
    (tagged,) = roundtrip([ns["Tagged"]], ns, target)
    assert (tagged.tag, type(tagged)) == ("tagged", ns["Meta"])
    (child,) = roundtrip([ns["Child"]], ns, target)
    assert child().hello() == "child+parent" and child.__bases__ == (ns["Parent"],)
    (shape,) = roundtrip([ns["Shape"]], ns, target)
    with pytest.raises(TypeError):
        shape()  # still abstract
    square = type("Square", (shape,), {"area": lambda self: 4})
    assert square().twice() == 8 and issubclass(square, shape)
    (err,) = roundtrip([ns["MyError"]], ns, target)
    assert issubclass(err, ValueError) and str(err("x")) == "x"


def test_classes_their_metaclass_builds_from_the_body_are_not_stored_by_value(notebook):
    ns = notebook(
        """
        import enum, typing, collections
        class Color(enum.Enum):
            RED = 1
            GREEN = 2
        class TD(typing.TypedDict):
            k: int
        class NT(typing.NamedTuple):
            x: int
        NT2 = collections.namedtuple('NT2', 'a b')
        chosen = [Color.GREEN, NT(1), NT2(1, 2)]
        """
    )
    for name, kind in [("Color", "enum"), ("TD", "TypedDict"), ("NT", "named tuple"), ("NT2", "named tuple")]:
        ser = codec.serialize([ns[name]], ns)
        assert not ser.ok and f"the {kind} class {name}" in ser.error, name
    (chosen,) = roundtrip([ns["chosen"]], ns)  # their instances refer to the classes by name
    assert chosen[0] is ns["Color"].GREEN and chosen[1] == ns["NT"](1) and chosen[2].b == 2
