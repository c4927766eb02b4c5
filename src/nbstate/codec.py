"""Turning a co-variable's objects into bytes and back.

One pickling pass gives three things at once: the in-band pickle stream, the large buffers
(numpy and friends hand them over out of band under protocol 5, so they are never copied into
the stream), and the identities of the mutable objects reached, which is how co-variables are
found. Nothing here knows IPython or the store; it never writes anything.

Objects that belong to the notebook itself are pickled by value, with the namespace left out:
a notebook-defined function is stored as its code, defaults and closure, and comes back with
its ``__globals__`` bound to the namespace it is restored into. Classes defined in the notebook
are referenced by name when the namespace still holds them under that name, by value otherwise.
"""

from __future__ import annotations

import builtins
import contextlib
import copyreg
import datetime
import decimal
import enum
import fractions
import functools
import gc
import io
import itertools
import marshal
import operator
import pathlib
import pickle
import re
import sys
import types
import uuid
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

PROTOCOL = 5

# Types whose instances can never carry shared mutable state: seeing one reached from two
# variables must not merge them (strings are interned, small ints and dtypes are singletons).
_IMMUTABLE_TYPES: frozenset[type] = frozenset(
    {
        str,
        bytes,
        int,
        float,
        complex,
        bool,
        tuple,
        frozenset,
        type(None),
        range,
        slice,
        type(Ellipsis),
        type(NotImplemented),
        types.ModuleType,
        types.BuiltinFunctionType,
        types.BuiltinMethodType,
        types.MethodWrapperType,
        types.WrapperDescriptorType,
        types.MethodDescriptorType,
        types.ClassMethodDescriptorType,
        types.GetSetDescriptorType,
        types.MemberDescriptorType,
        types.CodeType,
        decimal.Decimal,
        fractions.Fraction,
        type,
    }
)
# Immutable by contract, and often cached and handed out by their libraries (``timezone.utc``,
# ``ZoneInfo`` instances, compiled patterns): reaching the same one never links two variables.
_IMMUTABLE_BASES: tuple[type, ...] = (
    type,
    enum.Enum,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.tzinfo,
    re.Pattern,
    uuid.UUID,
    pathlib.PurePath,
)


class NotSerializable(Exception):
    """Raised when an object graph holds something that cannot be pickled."""


class MissingName(pickle.UnpicklingError):
    """A stored object refers to a notebook class that the target namespace does not hold."""

    def __init__(self, name: str) -> None:
        super().__init__(f"class {name!r} is referenced by a stored object but is not defined in the namespace")
        self.name = name


@dataclass
class Serialized:
    """The outcome of one pickling pass over a co-variable (or a single candidate name)."""

    stream: bytes = b""
    buffers: list[memoryview] = field(default_factory=list)
    ids: set[int] | IdArray = field(default_factory=set)
    error: str | None = None
    # The objects behind ``ids``: holding them keeps their ids from being reused by other
    # objects while the caller compares ids.
    held: list[Any] = field(default_factory=list, repr=False)
    # Notebook classes stored as a reference to the name that holds them: their state is that
    # variable's, which changes whenever the class is changed, through any path.
    class_refs: set[str] = field(default_factory=set)
    # Pickled as plain data, without a memo (``_PlainPickler``): shared strings are persistent ids.
    plain: bool = False
    # Holds functions whose globals are the namespace pickled against (stored by value; their
    # methods too, for classes): unpickled, they are bound to the namespace restored into.
    bound: bool = False

    _by_id: dict[int, Any] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def object_with_id(self, oid: int) -> Any:
        """The object behind an id of ``ids`` (None for any other id)."""
        if self._by_id is None:
            self._by_id = {id(obj): obj for obj in self.held}
        return self._by_id.get(oid)

    @property
    def nbytes(self) -> int:
        return len(self.stream) + sum(b.nbytes for b in self.buffers)


# --- deciding which reached objects count for sharing ------------------------------------------

_shareable_by_type: dict[type, bool] = {}


def _type_is_shareable(t: type) -> bool:
    known = _shareable_by_type.get(t)
    if known is not None:
        return known
    verdict = True
    if t in _IMMUTABLE_TYPES or t is object or issubclass(t, _IMMUTABLE_BASES) or _is_function_like(t):
        # (a bare ``object()`` is a sentinel: functools' lru_cache keyword marker is one, shared
        # by every cached function, sqlite3's statement caches included)
        verdict = False
    else:
        np = sys.modules.get("numpy")
        if np is not None and issubclass(t, (np.dtype, np.generic, np.ufunc)):
            verdict = False
        torch = sys.modules.get("torch")
        if torch is not None and issubclass(t, (torch.dtype, torch.device, torch.layout, torch.memory_format, torch.Size)):
            verdict = False  # singletons and immutable descriptions that every tensor names
        pd_dtypes = sys.modules.get("pandas.api.extensions")
        if pd_dtypes is not None and issubclass(t, pd_dtypes.ExtensionDtype):
            verdict = False
        if issubclass(t, _pandas_immutable_types()):
            verdict = False
    _shareable_by_type[t] = verdict
    return verdict


def _is_function_like(t: type) -> bool:
    """Callables that name code of a library (Cython functions and the like): like built-in
    functions, they are pickled by reference and reached by every value that uses them."""
    mro = t.__mro__[:-1]
    return any("__qualname__" in vars(k) for k in mro) and any("__module__" in vars(k) for k in mro)


def _pandas_immutable_types() -> tuple[type, ...]:
    """Immutable pandas scalars that pandas caches and hands to many objects (offsets, NA)."""
    pd = sys.modules.get("pandas")
    if pd is None:
        return ()
    found = []
    for get in (lambda: pd.offsets.BaseOffset, lambda: type(pd.NA), lambda: pd.Period, lambda: pd.Interval):
        try:
            t = get()
        except Exception:
            continue
        if isinstance(t, type):
            found.append(t)
    return tuple(found)


def _is_shareable(obj: Any, namespace: Mapping[str, Any]) -> bool:
    t = type(obj)
    if t is types.FunctionType:
        # Library functions are pickled by reference and shared by everybody; only functions
        # defined in the notebook are values of their own.
        return obj.__globals__ is namespace
    if isinstance(obj, type):
        # So are classes defined in the notebook (mutable like any object), except where the
        # namespace holds them under their name: those are stored as a reference to that name.
        return obj.__module__ == "__main__" and namespace.get(obj.__qualname__) is not obj
    return _type_is_shareable(t)


def _notebook_classes_in(values: list[Any]) -> dict[int, type]:
    return {id(v): v for v in values if isinstance(v, type) and v.__module__ == "__main__"}


# --- the pickler --------------------------------------------------------------------------------

# Where functions and classes restored by value find their globals. Set for the duration of one
# ``deserialize`` call; functions made outside of one get a fresh dict.
_restore_namespace: dict[str, Any] | None = None
# Where references to notebook classes by name are resolved (defaults to _restore_namespace).
_restore_lookup: Mapping[str, Any] | None = None
# How many functions unpickling has bound to a restore namespace, ever: comparing it before and
# after a load tells whether the values hold any (loads run on one thread at a time).
functions_bound = 0


def _target_namespace() -> dict[str, Any]:
    if _restore_namespace is None:
        return {"__builtins__": builtins}
    return _restore_namespace


def _make_function(code_bytes: bytes, name: str, qualname: str, ncells: int, module: str | None = None) -> types.FunctionType:
    global functions_bound
    code = marshal.loads(code_bytes)
    closure = tuple(types.CellType() for _ in range(ncells)) if ncells else None
    if module is None:
        functions_bound += 1
    fn_globals = _target_namespace() if module is None else _rebuild_module(module).__dict__
    fn = types.FunctionType(code, fn_globals, name, None, closure)
    fn.__qualname__ = qualname
    return fn


def _set_function_state(fn: types.FunctionType, state: dict[str, Any]) -> types.FunctionType:
    fn.__defaults__ = state["defaults"]
    fn.__kwdefaults__ = state["kwdefaults"]
    fn.__module__ = state["module"]
    fn.__doc__ = state["doc"]
    fn.__annotations__ = state["annotations"]
    fn.__dict__.update(state["dict"])
    for cell, (filled, value) in zip(fn.__closure__ or (), state["cells"], strict=True):
        if filled:
            cell.cell_contents = value
    return fn


def _lookup_namespace(name: str) -> Any:
    ns = _restore_lookup if _restore_lookup is not None else _target_namespace()
    try:
        return ns[name]
    except KeyError:
        raise MissingName(name) from None


def _make_class(metaclass: type, name: str, bases: tuple, skeleton: dict[str, Any]) -> type:
    return metaclass(name, bases, dict(skeleton))


def _set_class_state(cls: type, state: dict[str, Any]) -> type:
    for key, value in state.items():
        setattr(cls, key, value)
    return cls


def _findable(fn: types.FunctionType) -> bool:
    found: Any = sys.modules.get(fn.__module__)
    for part in fn.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is fn


def _module_named_by(fn_globals: dict[str, Any]) -> str | None:
    name = fn_globals.get("__name__")
    module = sys.modules.get(name) if isinstance(name, str) else None
    return name if module is not None and module.__dict__ is fn_globals else None


def _reduce_descriptor(obj: Any, t: type) -> tuple | None:
    """Descriptors that notebook classes hold and pickle cannot store (``@property`` ...)."""
    if t is property:
        return property, (obj.fget, obj.fset, obj.fdel, obj.__doc__)
    if t is staticmethod or t is classmethod:
        return t, (obj.__func__,)
    if t is functools.cached_property:
        state = {k: v for k, v in vars(obj).items() if k not in ("func", "lock")}
        return functools.cached_property, (obj.func,), state
    return None


def _make_view(root: Any, offset: int, shape: tuple, strides: tuple, dtype: Any, writeable: bool) -> Any:
    view = type(root)(shape, dtype=dtype, buffer=root, offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view


def _make_array(buf: Any, dtype: Any, shape: tuple, order: str, writeable: bool) -> Any:
    """An array straight over a buffer (numpy's own reduce makes a reshaped view of a flat
    array): restored arrays are roots, as the arrays they were made from were, so views
    restored beside them have them as their base, and they pickle again the same way."""
    np = sys.modules["numpy"]
    arr = np.ndarray(shape, dtype=dtype, buffer=buf, order=order)
    if not writeable and arr.flags.writeable:
        arr.flags.writeable = False
    return arr


def _make_storage(buf: Any, nbytes: int) -> Any:
    import torch

    if nbytes == 0:
        return torch.UntypedStorage(0)
    if memoryview(buf).readonly:  # torch would share memory it must not write
        buf = bytearray(buf)
    return torch.frombuffer(buf, dtype=torch.uint8).untyped_storage()


def _make_tensor(storage: Any, dtype: Any, shape: tuple, stride: tuple, offset: int, requires_grad: bool, grad: Any, parameter: bool) -> Any:
    import torch

    t = torch.empty(0, dtype=dtype).set_(storage, offset, shape, stride)
    if parameter:
        t = torch.nn.Parameter(t, requires_grad=requires_grad)
    elif requires_grad:
        t.requires_grad_(True)
    if grad is not None:
        t.grad = grad
    return t


def _set_tensor_state(t: Any, state: dict[str, Any]) -> Any:
    t.__dict__.update(state)
    return t


def _reduce_arrow_extension_array(obj: Any, t: type, module: Any) -> tuple | None:
    """A pandas column backed by one compact pyarrow array, pickled without a copy of it.

    pandas' ``__getstate__`` combines the chunks of the column, which copies the whole array
    even when it has a single chunk (30 ms for 2M short strings, at every checkpoint of every
    frame that holds it). The state is the same as pandas makes (the chunk stands for its
    combination, and ``__setstate__`` wraps it again); a chunk that is a slice of a larger
    array is left to pandas, whose copy stores only the slice, and so is one that carries a
    validity bitmap without nulls (the copy drops it, and so does a restore)."""
    base = getattr(module, "ArrowExtensionArray", None)
    if base is None or not isinstance(obj, base) or t.__getstate__ is not base.__getstate__:
        return None
    try:
        chunked = obj._pa_array
        if chunked.num_chunks != 1:
            return None
        chunk = chunked.chunk(0)
        if chunk.offset != 0 or chunk.get_total_buffer_size() > chunk.nbytes + 64:
            return None
        if chunk.null_count == 0 and chunk.buffers()[0] is not None:
            return None  # a validity bitmap of no nulls, which a restore drops
        state = obj.__dict__.copy()
    except Exception:  # noqa: BLE001 - another pandas: its own way
        return None
    state["_pa_array"] = chunk
    state["_cache"] = {}
    return copyreg.__newobj__, (t,), state, None, None


def _reduce_torch(obj: Any, t: type, torch: Any) -> Any:
    """CPU tensors as a view of their storage, stored once per pickle and out of band: tensors
    that share a storage (``w[0]``, ``x.view(2, 4)``, a module's parameter and an optimizer's
    reference to it) share it again when restored, and nothing in the stream depends on where
    the storage lies in memory (torch's own reduce names it by address). The gradient and
    ``requires_grad`` are part of the value."""
    if t is torch.UntypedStorage:
        if obj.device.type != "cpu":
            return None
        n = obj.nbytes()
        if n == 0:
            return _make_storage, (None, 0)
        flat = torch.empty(0, dtype=torch.uint8).set_(obj, 0, (n,), (1,))
        return _make_storage, (pickle.PickleBuffer(flat.numpy()), n)
    if t is not torch.Tensor and t is not torch.nn.Parameter:
        return None
    if (
        obj.device.type != "cpu" or obj.layout != torch.strided or obj.is_quantized or obj.is_nested
        or (obj.requires_grad and not obj.is_leaf) or obj.is_conj() or obj.is_neg() or obj._backward_hooks
    ):
        return None
    args = (obj.untyped_storage(), obj.dtype, tuple(obj.shape), tuple(obj.stride()), obj.storage_offset(), obj.requires_grad, obj.grad, t is torch.nn.Parameter)
    if obj.__dict__:
        return _make_tensor, args, dict(obj.__dict__), None, None, _set_tensor_state
    return _make_tensor, args


def _array_root(arr: Any, np: Any) -> Any:
    root = arr
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root


# Handles that pickle without complaint but name something of one running cluster, which
# another kernel (or the same one, later) does not have: recorded as not serializable, so they
# come back by replaying the cells that made them.
_HANDLES = {
    ("ray", "ObjectRef"): "a Ray ObjectRef names an object of one Ray session",
    ("ray._raylet", "ObjectRef"): "a Ray ObjectRef names an object of one Ray session",
    ("ray.actor", "ActorHandle"): "a Ray actor handle names an actor of one Ray session",
    ("ray", "ObjectRefGenerator"): "a Ray ObjectRefGenerator names objects of one Ray session",
}


def _make_mappingproxy(d: dict[Any, Any]) -> types.MappingProxyType:
    return types.MappingProxyType(d)


def _rebuild_module(name: str) -> types.ModuleType:
    import importlib

    return importlib.import_module(name)


def _cell_state(cell: types.CellType) -> tuple[bool, Any]:
    try:
        return True, cell.cell_contents
    except ValueError:  # an empty cell: the variable was never assigned
        return False, None


_CLASS_SKELETON_KEYS = ("__module__", "__qualname__", "__slots__", "__doc__")
# ``_abc_impl`` is made anew by ABCMeta when the class is made again.
_CLASS_DROP_KEYS = frozenset({"__dict__", "__weakref__", "_abc_impl"} | set(_CLASS_SKELETON_KEYS))


def _check_remakeable(cls: type) -> None:
    """Classes that their metaclass builds from the class body alone (enums, TypedDicts, named
    tuples) cannot be made again from their attributes: they are not stored by value, and their
    cell runs again instead."""
    import typing

    kind = (
        "enum" if isinstance(cls, enum.EnumMeta)
        else "TypedDict" if typing.is_typeddict(cls)
        else "named tuple" if issubclass(cls, tuple) and hasattr(cls, "_fields")
        else None
    )
    if kind is not None:
        raise pickle.PicklingError(f"the {kind} class {cls.__qualname__} defined in the notebook cannot be stored by value")


_singletons: dict[int, tuple[types.ModuleType, Any, str]] | None = None


def _library_singletons() -> dict[int, tuple[types.ModuleType, Any, str]]:
    """Sentinels that libraries compare by identity (``dataclasses.MISSING``, the markers in a
    dataclass's fields): pickled as references, or a restored dataclass would not know its fields."""
    global _singletons
    if _singletons is None:
        import dataclasses

        _singletons = {
            id(v): (dataclasses, v, name)
            for name, v in vars(dataclasses).items()
            if type(v).__module__ == "dataclasses" and not isinstance(v, type) and not callable(v)
        }
    return _singletons


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, namespace: Mapping[str, Any], buffers: list, view_roots: dict[int, Any]):
        super().__init__(file, protocol=PROTOCOL, buffer_callback=self._take_buffer)
        self._namespace = namespace
        self._buffers = buffers
        self._view_roots = view_roots
        # Arrays that own their memory, met so far or given as values: views of them are views.
        self.array_roots: set[int] = set()
        self._types_seen: dict[type, bool] = {}
        # Objects reached that link no variables: what a library class holds as class attributes
        # (pandas' ``_metadata = []``, reached by every instance) and the insides of immutable
        # containers that libraries share freely between values (pandas indexes).
        self.exempt: set[int] = set()
        self.class_refs: set[str] = set()
        self.bound = False

    _named_ids: set[int] | None = None

    def _named(self) -> set[int]:
        """Ids of the namespace's values (made when first needed)."""
        if self._named_ids is None:
            self._named_ids = {id(v) for v in self._namespace.values()}
        return self._named_ids

    def _take_buffer(self, buf: pickle.PickleBuffer) -> bool:
        try:
            self._buffers.append(buf.raw())
        except BufferError:  # not contiguous: let pickle copy it in band
            return True
        return False

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        immutable = self._types_seen.get(t)
        if immutable is None:
            immutable = self._types_seen[t] = self._note_type(t)
        if immutable:
            inside = {id(o) for o in _walk([obj], self._namespace, 10_000)}
            if id(obj) in self._named():
                # An index that a variable names is that variable's value, which can change in
                # place (``idx.name = "k"``): it links the variables that hold it.
                inside.discard(id(obj))
            self.exempt.update(inside)
        if t is types.FunctionType:
            if obj.__globals__ is self._namespace:
                self.bound = True
                return self._reduce_function(obj)
            # A library's closure around notebook code (the ``__repr__`` of a dataclass, a
            # decorator's wrapper) has no name to be found by: stored by value, with its module.
            if obj.__module__ == "__main__" or not _findable(obj):
                module = _module_named_by(obj.__globals__)
                if module is not None:
                    return self._reduce_function(obj, module)
        if t is functools._lru_cache_wrapper and getattr(obj, "__module__", None) == "__main__":
            # Pickle names the wrapper by its qualified name, which a fresh kernel does not have,
            # and nothing can read its cache out: replaying its cells rebuilds both.
            raise pickle.PicklingError(f"functools.lru_cache keeps the cache of {obj.__qualname__} where it cannot be stored")
        handle = _HANDLES.get((getattr(t, "__module__", ""), t.__qualname__))
        if handle is not None:
            raise pickle.PicklingError(handle)
        if t is types.ModuleType:
            return _rebuild_module, (obj.__name__,)
        if t is types.MappingProxyType:  # e.g. in the fields of a notebook dataclass
            return _make_mappingproxy, (dict(obj),)
        descriptor = _reduce_descriptor(obj, t)
        if descriptor is not None:
            return descriptor
        singleton = _library_singletons().get(id(obj))
        if singleton is not None and singleton[1] is obj:
            return getattr, (singleton[0], singleton[2])
        if isinstance(obj, type) and obj.__module__ == "__main__":
            return self._reduce_notebook_class(obj)
        torch = sys.modules.get("torch")
        if torch is not None:
            reduced = _reduce_torch(obj, t, torch)
            if reduced is not None:
                return reduced
        arrow_arrays = sys.modules.get("pandas.core.arrays.arrow.array")
        if arrow_arrays is not None:
            reduced = _reduce_arrow_extension_array(obj, t, arrow_arrays)
            if reduced is not None:
                return reduced
        np = sys.modules.get("numpy")
        if np is not None and isinstance(obj, np.dtype) and obj.metadata is None:
            # numpy's reduce makes a new dtype object at load; the canonical one is shared by
            # every array and scalar, as it was before they were stored (and pickles the same).
            try:
                canonical = np.dtype(obj.str) is obj
            except TypeError:
                canonical = False
            if canonical:
                return np.dtype, (obj.str,)
        if np is not None and t is np.ndarray and obj.dtype == object and obj.size >= _STR_ARRAY_MIN:
            packed = _pack_str_array(obj)
            if packed is not None:
                return packed
        if np is not None and t is np.ndarray:
            root = _array_root(obj, np)
            if root is obj:
                self.array_roots.add(id(obj))
            else:
                self._view_roots[id(root)] = root
                if id(root) in self.array_roots and root.flags.c_contiguous and not root.dtype.hasobject:
                    # A view of an array that this pickle holds as well: restored as a view of
                    # it, so that the two still share their memory.
                    offset = obj.__array_interface__["data"][0] - root.__array_interface__["data"][0]
                    return _make_view, (root, offset, obj.shape, obj.strides, obj.dtype, obj.flags.writeable)
            if not obj.dtype.hasobject and obj.dtype.itemsize and (obj.flags.c_contiguous or obj.flags.f_contiguous):
                # As numpy's reduce does (a Fortran-ordered array's buffer is its transpose's),
                # but restored as an array that owns its memory, not as a view of one.
                order = "C" if obj.flags.c_contiguous else "F"
                try:
                    buf = pickle.PickleBuffer(obj if order == "C" else obj.T)
                except (ValueError, BufferError):  # no buffer for this dtype (datetimes)
                    return NotImplemented
                return _make_array, (buf, obj.dtype, obj.shape, order, obj.flags.writeable)
        return NotImplemented

    def _note_type(self, t: type) -> bool:
        """Exempt what library classes hold; True for immutable containers of libraries."""
        for klass in t.__mro__:
            if getattr(klass, "__module__", None) != "__main__":
                self.exempt.update(id(v) for v in vars(klass).values())
        pd = sys.modules.get("pandas")
        index = getattr(pd, "Index", None) if pd is not None else None
        return isinstance(index, type) and issubclass(t, index)

    def _reduce_function(self, fn: types.FunctionType, module: str | None = None) -> tuple:
        cells = tuple(_cell_state(c) for c in fn.__closure__ or ())
        state = {
            "defaults": fn.__defaults__,
            "kwdefaults": fn.__kwdefaults__,
            "module": fn.__module__,
            "doc": fn.__doc__,
            "annotations": fn.__annotations__,
            "dict": dict(fn.__dict__),
            "cells": cells,
        }
        # marshal version 2 writes no back-references, whose presence depends on reference
        # counts: the same code gives the same bytes, before and after a restore.
        args: tuple = (marshal.dumps(fn.__code__, 2), fn.__name__, fn.__qualname__, len(cells))
        if module is not None:
            args += (module,)
        return _make_function, args, state, None, None, _set_function_state

    def _reduce_notebook_class(self, cls: type) -> Any:
        if self._namespace.get(cls.__qualname__) is cls and not self._by_value_class(cls):
            self.class_refs.add(cls.__qualname__)
            return _lookup_namespace, (cls.__qualname__,)
        _check_remakeable(cls)
        skeleton = {k: cls.__dict__[k] for k in _CLASS_SKELETON_KEYS if k in cls.__dict__}
        slots = skeleton.get("__slots__", ())
        slots = (slots,) if isinstance(slots, str) else tuple(slots)
        state = {
            k: v for k, v in cls.__dict__.items() if k not in _CLASS_DROP_KEYS and k not in slots
        }
        return _make_class, (type(cls), cls.__name__, cls.__bases__, skeleton), state, None, None, _set_class_state

    # A class that is itself the value of a member is stored by value: a reference to its name
    # would only point back at whatever the namespace holds at restore time (``K = Point`` puts
    # both names in one co-variable, whose restore must make the class, not look it up).
    _member_classes: frozenset[int] = frozenset()

    def _by_value_class(self, cls: type) -> bool:
        return id(cls) in self._member_classes


class IdArray:
    """Ids of objects as a sorted ``array('q')``: 8 bytes an id, where a ``set`` of ints takes
    about 60. The ids of a plain value of millions of containers are kept this way. The array
    given is emptied (its memory is given back before the sorted copy is whole)."""

    __slots__ = ("_a",)

    def __init__(self, ids: array) -> None:
        self._a = _sorted_ids(ids)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[int]:
        return iter(self._a)

    def __contains__(self, oid: object) -> bool:
        a = self._a
        i = bisect_left(a, oid)  # type: ignore[call-overload]
        return i < len(a) and a[i] == oid

    def intersection(self, other: Any) -> set[int]:
        """The ids also in ``other`` (a set, a dict's keys or an IdArray)."""
        if isinstance(other, IdArray):
            small, big = (self, other) if len(self) <= len(other) else (other, self)
            return set(filter(big.__contains__, small))
        if len(other) * 20 < len(self):  # a few ids: look each up by bisection
            return set(filter(self.__contains__, other))
        return set(filter(other.__contains__, self._a))

    def isdisjoint(self, other: Any) -> bool:
        return not self.intersection(other)

    def has_repeats(self) -> bool:
        a = self._a
        return any(map(operator.eq, a, itertools.islice(a, 1, None)))


def _sorted_ids(ids: array) -> array:
    np = sys.modules.get("numpy")
    if np is not None:
        a = np.frombuffer(ids, dtype=np.int64).copy() if len(ids) else np.empty(0, np.int64)
        del ids[:]
        a.sort()
        out = array("q")
        out.frombytes(memoryview(a).cast("B"))
        return out
    # Without numpy: sorted runs of 65,536 (a list of ints costs 40 bytes an id, so never of all
    # of them at once), merged into the array.
    import heapq

    runs = [array("q", sorted(ids[i : i + 65536])) for i in range(0, len(ids), 65536)]
    del ids[:]
    return runs[0] if len(runs) == 1 else array("q", heapq.merge(*runs)) if runs else array("q")


def ids_disjoint(a: Any, b: Any) -> bool:
    """Whether two id collections (sets or IdArrays) share no id."""
    if isinstance(b, IdArray):
        a, b = b, a
    return a.isdisjoint(b)


class _NotPlain(Exception):
    """Raised inside the plain pickler: the value holds something other than plain data."""


# What a plain value is made of: builtin atoms and builtin containers, of exactly these types.
_PLAIN_ATOMS = frozenset({int, float, bool, type(None)})
_PLAIN_CONTAINERS = frozenset({list, tuple, set, frozenset, dict, bytearray})
# A string or bytes object held by one list has this reference count when the pickler shows it
# to ``persistent_id`` (measured once on this interpreter).
_held_once: int | None = None
# A string held by more than this many references is written as a persistent id (loaded back as
# one object). A few references come and go with code that merely names it (a dict key that is
# also a variable's name, or a constant of a cell: ``table['bump']``); counted, they would change
# the value's bytes, and so its fingerprint, while it stayed the same.
_SHARED_BY = 16
_NEVER = 1 << 62  # (while measuring, and where it could not be measured: no string is shared)


class _PlainPickler(pickle.Pickler):
    """Pickles plain data (dicts, lists, tuples, sets of builtin atoms) without a memo.

    Pickle's memo holds an entry per object it saves; for a dict of a million small records it
    is the largest part of a checkpoint's memory. Plain data needs the memo only for an object
    met twice. So this pickler runs in fast mode (no memo), and ``persistent_id``, which sees
    every object, stops at anything but plain data (``_NotPlain``) and collects the ids of the
    containers (8 bytes each; the mutable ones' link co-variables, tuples' and frozensets' do
    not): if one was met twice, the caller pickles the value the usual way.
    A string or bytes object that many hold (``_SHARED_BY``) is written as a persistent id, and
    made one object again, by value, on load (its identity carries nothing), so that the keys
    of a million records stay a few objects."""

    def __init__(self, file: Any, top: tuple = ()) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self.fast = True
        self._top = top  # the tuple of the values, made for the occasion: not part of any value
        self.held: list[Any] | None = []  # the containers while they are few (see Serialized.held)
        self.ids = array("q")  # the mutable containers': what links co-variables
        self.frozen = array("q")  # the tuples' and frozensets': only checked for being met twice
        self._add = self.ids.append
        self._add_frozen = self.frozen.append
        self._shared = _held_once + _SHARED_BY - 1 if _held_once is not None else _NEVER

    def persistent_id(self, obj: Any) -> Any:
        t = type(obj)
        if t in _PLAIN_ATOMS:
            return None
        if t is str or t is bytes:
            return obj if sys.getrefcount(obj) > self._shared and obj else None
        if t in _PLAIN_CONTAINERS:
            if t is tuple or t is frozenset:
                if obj and obj is not self._top:  # () is one object that all share
                    self._add_frozen(id(obj))
            else:
                self._add(id(obj))
                if self.held is not None:
                    self.held.append(obj)
                    if len(self.held) > _FEW_IDS:
                        self.held = None
            return None
        raise _NotPlain(t.__qualname__)


def _measure_held_once() -> None:
    global _held_once
    if _held_once is None:
        seen: list[int] = []

        class Probe(_PlainPickler):
            def persistent_id(self, obj: Any) -> Any:
                if type(obj) is str:
                    seen.append(sys.getrefcount(obj))
                return None

        n = 7
        Probe(_NullSink()).dump([f"probe-{n}"])  # made at run time: held by the list alone
        _held_once = seen[0] if seen else _NEVER


class _NullSink:
    def write(self, data: Any) -> int:
        return len(data)


# Up to this many containers, a plain value's ids are a set and its containers are kept (held).
_FEW_IDS = 4096


def _serialize_plain(values: list[Any], sink: Any) -> Serialized | None:
    """``values`` pickled as plain data (into ``sink`` when given), with the ids of their
    containers and, when they are few, the containers; None when they are not plain data or a
    container is met twice (what was written to ``sink`` is then to be dropped)."""
    if _flat(values):
        return _serialize_flat(values, sink)
    _measure_held_once()
    top = tuple(values)
    out = io.BytesIO() if sink is None else sink
    pickler = _PlainPickler(out, top)
    try:
        pickler.dump(top)
    # A cycle deep enough for fast mode to watch for it raises ValueError, or, where the cycle's
    # first object is met again before the error unwinds, KeyError (CPython's _pickle forgets
    # that object twice on the way out).
    except (_NotPlain, ValueError, KeyError, RecursionError, pickle.PicklingError):
        return None
    ids, held, frozen = pickler.ids, pickler.held, pickler.frozen
    del pickler
    if frozen and IdArray(frozen).has_repeats():
        return None
    if held is not None:
        unique = set(ids)
        if len(unique) < len(ids):
            return None
        found: set[int] | IdArray = unique
    else:
        found = IdArray(ids)
        if found.has_repeats():
            return None
    return Serialized(stream=out.getvalue() if sink is None else b"", ids=found, held=held or [], plain=True)


_FLAT_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})


def _flat(values: list[Any]) -> bool:
    """Whether every value is a number (bool, None) or a container of only those (a loss
    history, a list of counts): the types are gathered in C, without a Python step per item."""
    for v in values:
        t = type(v)
        if t in _PLAIN_ATOMS:
            continue
        if t not in _FLAT_CONTAINERS:
            return False
        kinds = set(map(type, v))
        if t is dict:
            kinds.update(map(type, v.values()))
        if not kinds <= _PLAIN_ATOMS:
            return False
    return True


def _serialize_flat(values: list[Any], sink: Any) -> Serialized | None:
    """``_serialize_plain`` for flat values (``_flat``): the same stream, from a pickler that
    calls no Python code per item (nothing in them can be shared or reach another value)."""
    containers = [v for v in values if type(v) in _FLAT_CONTAINERS]
    if len(set(map(id, containers))) < len(containers):
        return None  # one container under two names: pickled with a memo, which keeps it one
    out = io.BytesIO() if sink is None else sink
    pickler = pickle.Pickler(out, protocol=PROTOCOL)
    pickler.fast = True
    try:
        pickler.dump(tuple(values))
    except (ValueError, RecursionError, pickle.PicklingError):
        return None
    mutable = [v for v in containers if type(v) is not tuple and type(v) is not frozenset]
    return Serialized(stream=out.getvalue() if sink is None else b"", ids=set(map(id, mutable)), held=mutable, plain=True)


_TRAVERSED = frozenset({list, tuple, set, frozenset, dict})
_MUTABLE_PLAIN = frozenset({list, dict, set, bytearray})


class _StringsWhereMet(_Pickler):
    """Writes every string and bytes object where it is met, never as a reference to where the
    same object was met before (fresh bytes stand for each: see same_values)."""

    def persistent_id(self, obj: Any) -> Any:
        t = type(obj)
        if t is str:
            return obj.encode("utf-8", "surrogatepass")
        if t is bytes:
            return bytearray(obj)
        return None


def same_values(a: list[Any], a_namespace: Mapping[str, Any], b: list[Any], b_namespace: Mapping[str, Any]) -> bool:
    """Whether two lists of values pickle alike once every string is written where it is met.
    A pickle's memo writes a string met again as a reference to the first, so equal values give
    other bytes where one holds one string object twice and the other two equal ones: a replay
    reads its code's (interned) constants, a load makes strings afresh. Only a string's identity
    is set aside: everything else compares as pickled (buffers by their bytes)."""
    x = serialize(a, a_namespace, plain=False, _pickler=_StringsWhereMet)
    y = serialize(b, b_namespace, plain=False, _pickler=_StringsWhereMet)
    if not (x.ok and y.ok) or x.stream != y.stream or len(x.buffers) != len(y.buffers):
        return False
    return all(p.nbytes == q.nbytes and bytes(p) == bytes(q) for p, q in zip(x.buffers, y.buffers, strict=True))


def same_plain(a: Any, b: Any) -> bool:
    """Whether two plain values are equal, a NaN equal to a NaN. Two plain streams of equal values
    may differ (a string that many held is written as a persistent id, and what holds a string
    changes with code that names it), so a replayed plain value whose fingerprint differs from
    the recorded one is compared with the stored value instead. Walks with a stack, not by
    recursion (plain values may be deep)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        t = type(x)
        if t is not type(y):
            return False
        if t is float:
            if x != y and not (x != x and y != y):
                return False
        elif t is list or t is tuple:
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif t is dict:
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif x != y:  # atoms, sets and frozensets of atoms, bytearrays
            return False
    return True


def plain_ids(values: tuple) -> set[int] | IdArray:
    """The ids of the mutable containers of values loaded from a plain stream, found a level
    at a time by C-level passes (``gc.get_referents`` of a whole level at once): in plain data
    every reference is a container's to its items."""
    ids = array("q")
    level = list(values)
    while level:
        inner = list(compress(level, map(_TRAVERSED.__contains__, map(type, level))))
        ids.extend(map(id, compress(level, map(_MUTABLE_PLAIN.__contains__, map(type, level)))))
        level = gc.get_referents(*inner) if inner else []
    return IdArray(ids) if len(ids) > _FEW_IDS else set(ids)


def serialize(values: list[Any], namespace: Mapping[str, Any], sink: Any = None, plain: bool = True, _pickler: type[_Pickler] | None = None) -> Serialized:
    """Pickle ``values`` (a co-variable's objects, in member order) in one pass.

    Returns the stream, the out-of-band buffers and the ids of shareable objects reached. When
    something cannot be pickled, ``error`` says why and ``ids`` comes from a plain traversal.
    With ``sink`` (a writable file), the stream is written there as the pickler makes it, and
    ``stream`` stays empty: a large value's stream is never held whole in memory. With
    ``plain``, plain data is first pickled without a memo (``_PlainPickler``); when that stops,
    a ``sink`` is ``reset()`` and the value pickled the usual way.
    """
    if plain and (sink is None or hasattr(sink, "reset")):  # (a sink that cannot start again is not tried)
        done = _serialize_plain(values, sink)
        if done is not None:
            return done
        if sink is not None:
            sink.reset()
    out = io.BytesIO() if sink is None else sink
    buffers: list[memoryview] = []
    view_roots: dict[int, Any] = {}
    pickler = (_pickler or _Pickler)(out, namespace, buffers, view_roots)
    np = sys.modules.get("numpy")
    if np is not None:
        # Arrays given as values are stored whole; so is the array under a view that spans all
        # of it (``np.arange(12).reshape(3, 4)``): other views of those are stored as views.
        for v in values:
            if type(v) is np.ndarray:
                root = _array_root(v, np)
                if root is v or v.nbytes >= root.nbytes:
                    pickler.array_roots.add(id(root))
    pickler._member_classes = frozenset(id(v) for v in values if isinstance(v, type))
    top = tuple(values)
    try:
        pickler.dump(top)
    except Exception as exc:  # any failure of any reducer means: not serializable
        held = list(_walk(values, namespace))
        return Serialized(error=_describe_failure(exc), ids=set(map(id, held)), held=held)
    # A value of millions of objects makes millions of memo tuples here: they must not set off
    # the cyclic collector, which would walk the whole value again at every threshold.
    collecting = gc.isenabled()
    gc.disable()
    try:
        reached = list(map(_second, pickler.memo.copy().values()))
        pickler.clear_memo()  # it held what the reducers returned
        held, ids = _shareable(reached, namespace, pickler.exempt, top=top)
    finally:
        if collecting:
            gc.enable()
    extra = list(view_roots.values()) + list(_notebook_classes_in(values).values())  # (classes: stored by value, though named)
    held.extend(extra)
    ids.update(map(id, extra))
    class_refs, bound = pickler.class_refs, pickler.bound
    del pickler
    stream = out.getvalue() if sink is None else b""
    return Serialized(stream=stream, buffers=buffers, ids=ids, held=held, class_refs=class_refs, bound=bound)


# The most common objects a pickle memoizes, none of which can carry shared mutable state:
# checked by type first, so a column of a million strings costs a set lookup per string.
_ATOMS = frozenset({str, bytes, int, float, bool, complex, type(None), tuple, frozenset})

# Object arrays of at least this many elements that hold only ``str`` (pandas' object columns)
# are stored as one UTF-8 buffer: pickle would memoize every string, and that memo, not the
# pickling, is what costs (seconds per million strings). The buffer goes out of band and is
# chunked like any other, so an unchanged column is recognized by its hash.
_STR_ARRAY_MIN = 1024
_SEPARATORS = ("\x1f", "\x00", "\x1e")


def _pack_str_array(arr: Any) -> tuple | None:
    order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
    items = arr.ravel(order=order).tolist()
    if set(map(type, items)) != {str}:
        return None
    for sep in _SEPARATORS:
        joined = sep.join(items)
        if joined.count(sep) == len(items) - 1:
            data = joined.encode("utf-8", "surrogatepass")
            return _unpack_str_array, (pickle.PickleBuffer(data), sep, arr.shape, order)
    return None


def _unpack_str_array(data: Any, sep: str, shape: tuple, order: str) -> Any:
    import numpy as np

    items = bytes(data).decode("utf-8", "surrogatepass").split(sep)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out.reshape(shape, order=order)


def _describe_failure(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def deserialize(stream: bytes, buffers: list[Any], namespace: dict[str, Any]) -> tuple:
    """Unpickle a co-variable's values; notebook functions get ``namespace`` as their globals."""
    return load(stream, buffers, namespace)[0]


class _Unpickler(pickle.Unpickler):
    """Reads plain streams too: a shared string (or bytes), a persistent id there, comes back as
    one object per value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shared: dict[Any, Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        t = type(pid)
        if t is not str and t is not bytes:
            raise pickle.UnpicklingError(f"a plain stream holds a persistent id of type {t.__name__}")
        return self._shared.setdefault(pid, pid)


def load(
    stream: bytes, buffers: list[Any], namespace: dict[str, Any], lookup: Mapping[str, Any] | None = None
) -> tuple[tuple, set[int] | IdArray]:
    """Unpickle values and return them with the ids of the shareable objects they are made of.

    Functions get ``namespace`` as their globals; notebook classes referenced by name are found
    in ``lookup`` (default: ``namespace``).
    """
    global _restore_lookup
    previous = _restore_lookup
    _restore_lookup = lookup
    try:
        with restoring_into(namespace):
            unpickler = _Unpickler(io.BytesIO(stream), buffers=buffers)
            values = unpickler.load()
            reached = list(unpickler.memo.copy().values())
            unpickler.memo = {}  # it held what was made on the way
    finally:
        _restore_lookup = previous
    if not reached:  # a plain stream memoizes nothing (the others memoize at least their tuple)
        return values, plain_ids(values)
    # Classes looked up by name are where the lookup holds them; those made here are values.
    bound = lookup if lookup is not None else namespace
    return values, _shareable(reached, namespace, frozenset(), bound)[1]


_second = operator.itemgetter(1)


def _shareable(
    reached: list[Any],
    namespace: Mapping[str, Any],
    exempt: set[int] | frozenset[int],
    classes_in: Mapping[str, Any] | None = None,
    top: Any = None,
) -> tuple[list[Any], set[int]]:
    """The shareable objects of ``reached`` (a pickle's memo), less those whose id is in
    ``exempt``, and their ids.

    Left out, besides what cannot carry shared state: what the pickle alone made and held. A
    pickle memoizes what its reducers made for the occasion (the state dict of a
    ``__getstate__``, the argument list of a ``__reduce__``) and, on load, what constructors
    consumed, like any object of the value. Nothing of the value refers to those: their ids are
    reused by unrelated objects once they go, and recorded as part of a value, such an id would
    later link co-variables that share nothing. A memo holds millions of objects for some
    values, so each pass over it is made by C loops (map, compress), not Python ones.
    ``reached`` is emptied; ``classes_in`` is where notebook classes count as named (default:
    ``namespace``); ``top``: the tuple of values that was pickled, made for the occasion too, but
    whose members are held by the caller (so they need not be looked at again).
    """
    n = len(reached)
    kinds = list(map(type, reached))
    verdict: dict[type, bool] = {}
    special = set()
    for t in set(kinds):
        if t is types.FunctionType or issubclass(t, type):
            special.add(t)  # decided per object
        verdict[t] = t not in _ATOMS and _type_is_shareable(t)
    keep = list(map({t for t, v in verdict.items() if v}.__contains__, kinds))
    if special:
        for i in compress(range(n), map(special.__contains__, kinds)):
            obj = reached[i]
            keep[i] = _is_shareable(obj, classes_in if classes_in is not None and isinstance(obj, type) else namespace)
    del kinds
    # References beyond those of ``reached``, of map and of getrefcount's argument, measured on
    # an object that nothing else holds (``probe``: one reference of its own).
    probe: list[Any] = []
    reached.append(probe)
    counts = list(map(sys.getrefcount, reached))
    base = counts.pop() - 1
    reached.pop()
    del probe
    made = list(compress(range(n), map(base.__eq__, counts)))
    if top is not None:
        made = [i for i in made if reached[i] is not top]
    if made:  # held by nothing outside: so is what only they hold, in turn
        index = dict(zip(map(id, reached), range(n), strict=True))
        dead = set(made)
        lost: dict[int, int] = {}
        while made:
            refs = list(map(id, gc.get_referents(reached[made.pop()])))  # some hold millions
            inside = index.keys() & set(refs)
            if not inside:
                continue
            for oid, times in Counter(compress(refs, map(inside.__contains__, refs))).items():
                j = index[oid]
                if j not in dead:
                    lost[j] = lost.get(j, 0) + times
                    if counts[j] - base == lost[j]:
                        dead.add(j)
                        made.append(j)
        for j in dead:
            keep[j] = False
    held = list(compress(reached, keep))
    reached.clear()
    ids = set(map(id, held))
    hits = ids & exempt
    if hits:
        ids -= hits
        held = [obj for obj in held if id(obj) not in hits]
    return held, ids


@contextlib.contextmanager
def restoring_into(namespace: dict[str, Any]) -> Iterator[None]:
    """Make functions unpickled inside the block bind ``namespace`` as their globals."""
    global _restore_namespace
    previous = _restore_namespace
    _restore_namespace = namespace
    try:
        yield
    finally:
        _restore_namespace = previous


def reachable_ids(values: list[Any], namespace: Mapping[str, Any], limit: int = 1_000_000) -> set[int]:
    """Ids of shareable objects reachable from ``values``, by walking references.

    Used when pickling failed, so sharing is still known for unserializable variables.
    Stops at modules, classes and library functions, and after ``limit`` objects.
    """
    return {id(obj) for obj in _walk(values, namespace, limit)}


def holds(values: list[Any], target: Any, namespace: Mapping[str, Any], limit: int = 200_000) -> bool:
    """Whether ``target`` is reachable from ``values`` (also True when the walk is cut short)."""
    walked = 0
    for obj in _walk(values, namespace, limit):
        if obj is target:
            return True
        walked += 1
    return walked >= limit


def _walk(values: list[Any], namespace: Mapping[str, Any], limit: int = 1_000_000) -> Iterator[Any]:
    """The shareable objects reachable from ``values`` by references (at most ``limit``)."""
    seen: set[int] = {id(namespace), id(builtins.__dict__)}  # globals are never part of a value
    stack = list(values)
    members = _notebook_classes_in(values)
    found = 0
    np = sys.modules.get("numpy")
    while stack and found < limit:
        obj = stack.pop()
        oid = id(obj)
        if oid in seen:
            continue
        seen.add(oid)
        t = type(obj)
        if t is tuple or t is frozenset:  # immutable, but what they hold may be shared
            stack.extend(obj)
            continue
        if not _is_shareable(obj, namespace) and oid not in members:
            continue
        found += 1
        yield obj
        if t is types.FunctionType:
            stack.extend(c.cell_contents for c in obj.__closure__ or () if _cell_state(c)[0])
            stack.extend(obj.__defaults__ or ())
            stack.extend((obj.__kwdefaults__ or {}).values())
        elif t is types.GeneratorType or t is types.CoroutineType or t is types.AsyncGeneratorType:
            # What it will go on with (not the function it came from, which it does not change).
            frame = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
            if frame is not None:
                stack.extend(frame.f_locals.values())
        elif np is not None and isinstance(obj, np.ndarray):  # arrays do not report references
            if obj.base is not None:
                stack.append(obj.base)
            if obj.dtype.hasobject and obj.dtype.fields is None:
                stack.extend(obj.ravel(order="K")[: limit - found].tolist())
        else:
            refs = gc.get_referents(obj)
            if t is not types.FrameType and any(r is namespace for r in refs):
                continue  # what runs the notebook (the shell that holds the namespace), not a value
            stack.extend(refs)
