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
import decimal
import enum
import fractions
import gc
import io
import marshal
import pickle
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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
    ids: set[int] = field(default_factory=set)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

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
    if t in _IMMUTABLE_TYPES or issubclass(t, (type, enum.Enum)):
        verdict = False
    else:
        np = sys.modules.get("numpy")
        if np is not None and issubclass(t, (np.dtype, np.generic, np.ufunc)):
            verdict = False
        pd_dtypes = sys.modules.get("pandas.api.extensions")
        if pd_dtypes is not None and issubclass(t, pd_dtypes.ExtensionDtype):
            verdict = False
    _shareable_by_type[t] = verdict
    return verdict


def _is_shareable(obj: Any, namespace: Mapping[str, Any]) -> bool:
    t = type(obj)
    if t is types.FunctionType:
        # Library functions are pickled by reference and shared by everybody; only functions
        # defined in the notebook are values of their own.
        return obj.__globals__ is namespace
    return _type_is_shareable(t)


# --- the pickler --------------------------------------------------------------------------------

# Where functions and classes restored by value find their globals. Set for the duration of one
# ``deserialize`` call; functions made outside of one get a fresh dict.
_restore_namespace: dict[str, Any] | None = None
# Where references to notebook classes by name are resolved (defaults to _restore_namespace).
_restore_lookup: Mapping[str, Any] | None = None


def _target_namespace() -> dict[str, Any]:
    if _restore_namespace is None:
        return {"__builtins__": builtins}
    return _restore_namespace


def _make_function(code_bytes: bytes, name: str, qualname: str, ncells: int) -> types.FunctionType:
    code = marshal.loads(code_bytes)
    closure = tuple(types.CellType() for _ in range(ncells)) if ncells else None
    fn = types.FunctionType(code, _target_namespace(), name, None, closure)
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


def _rebuild_module(name: str) -> types.ModuleType:
    import importlib

    return importlib.import_module(name)


def _cell_state(cell: types.CellType) -> tuple[bool, Any]:
    try:
        return True, cell.cell_contents
    except ValueError:  # an empty cell: the variable was never assigned
        return False, None


_CLASS_SKELETON_KEYS = ("__module__", "__qualname__", "__slots__", "__doc__")
_CLASS_DROP_KEYS = frozenset({"__dict__", "__weakref__"} | set(_CLASS_SKELETON_KEYS))


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, namespace: Mapping[str, Any], buffers: list, view_roots: set[int]):
        super().__init__(file, protocol=PROTOCOL, buffer_callback=self._take_buffer)
        self._namespace = namespace
        self._buffers = buffers
        self._view_roots = view_roots

    def _take_buffer(self, buf: pickle.PickleBuffer) -> bool:
        try:
            self._buffers.append(buf.raw())
        except BufferError:  # not contiguous: let pickle copy it in band
            return True
        return False

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        if t is types.FunctionType and obj.__globals__ is self._namespace:
            return self._reduce_function(obj)
        if t is types.ModuleType:
            return _rebuild_module, (obj.__name__,)
        if isinstance(obj, type) and obj.__module__ == "__main__":
            return self._reduce_notebook_class(obj)
        np = sys.modules.get("numpy")
        if np is not None and t is np.ndarray and obj.base is not None:
            root = obj
            while isinstance(root.base, np.ndarray):
                root = root.base
            if root is not obj:
                self._view_roots.add(id(root))
        return NotImplemented

    def _reduce_function(self, fn: types.FunctionType) -> tuple:
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
        args = (marshal.dumps(fn.__code__), fn.__name__, fn.__qualname__, len(cells))
        return _make_function, args, state, None, None, _set_function_state

    def _reduce_notebook_class(self, cls: type) -> Any:
        if self._namespace.get(cls.__qualname__) is cls and not self._by_value_class(cls):
            return _lookup_namespace, (cls.__qualname__,)
        skeleton = {k: cls.__dict__[k] for k in _CLASS_SKELETON_KEYS if k in cls.__dict__}
        slots = skeleton.get("__slots__", ())
        slots = (slots,) if isinstance(slots, str) else tuple(slots)
        state = {
            k: v for k, v in cls.__dict__.items() if k not in _CLASS_DROP_KEYS and k not in slots
        }
        return _make_class, (type(cls), cls.__name__, cls.__bases__, skeleton), state, None, None, _set_class_state

    # The class that is the value of a variable of its own name is stored by value: a reference
    # to the name would only point back at whatever the namespace holds at restore time.
    _top_level_class: type | None = None

    def _by_value_class(self, cls: type) -> bool:
        return cls is self._top_level_class


def serialize(values: list[Any], namespace: Mapping[str, Any]) -> Serialized:
    """Pickle ``values`` (a co-variable's objects, in member order) in one pass.

    Returns the stream, the out-of-band buffers and the ids of shareable objects reached. When
    something cannot be pickled, ``error`` says why and ``ids`` comes from a plain traversal.
    """
    out = io.BytesIO()
    buffers: list[memoryview] = []
    view_roots: set[int] = set()
    pickler = _Pickler(out, namespace, buffers, view_roots)
    if len(values) == 1 and isinstance(values[0], type):
        pickler._top_level_class = values[0]
    try:
        pickler.dump(tuple(values))
    except Exception as exc:  # any failure of any reducer means: not serializable
        return Serialized(error=_describe_failure(exc), ids=reachable_ids(values, namespace))
    memo = pickler.memo.copy()
    ids = {oid for oid, (_, obj) in memo.items() if _is_shareable(obj, namespace)}
    ids |= view_roots
    del memo, pickler
    return Serialized(stream=out.getvalue(), buffers=buffers, ids=ids)


def _describe_failure(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def deserialize(stream: bytes, buffers: list[Any], namespace: dict[str, Any]) -> tuple:
    """Unpickle a co-variable's values; notebook functions get ``namespace`` as their globals."""
    return load(stream, buffers, namespace)[0]


def load(
    stream: bytes, buffers: list[Any], namespace: dict[str, Any], lookup: Mapping[str, Any] | None = None
) -> tuple[tuple, set[int]]:
    """Unpickle values and return them with the ids of the shareable objects they are made of.

    Functions get ``namespace`` as their globals; notebook classes referenced by name are found
    in ``lookup`` (default: ``namespace``).
    """
    global _restore_lookup
    previous = _restore_lookup
    _restore_lookup = lookup
    try:
        with restoring_into(namespace):
            unpickler = pickle.Unpickler(io.BytesIO(stream), buffers=buffers)
            values = unpickler.load()
            memo = unpickler.memo.copy()
    finally:
        _restore_lookup = previous
    ids = {id(obj) for obj in memo.values() if _is_shareable(obj, namespace)}
    return values, ids


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

    Used only when pickling failed, so sharing is still known for unserializable variables.
    Stops at modules, classes and library functions, and after ``limit`` objects.
    """
    seen: set[int] = set()
    ids: set[int] = set()
    stack = list(values)
    while stack and len(seen) < limit:
        obj = stack.pop()
        oid = id(obj)
        if oid in seen:
            continue
        seen.add(oid)
        if not _is_shareable(obj, namespace):
            continue
        ids.add(oid)
        if type(obj) is types.FunctionType:
            stack.extend(c.cell_contents for c in obj.__closure__ or () if _cell_state(c)[0])
            stack.extend(obj.__defaults__ or ())
            continue
        stack.extend(gc.get_referents(obj))
    return ids
