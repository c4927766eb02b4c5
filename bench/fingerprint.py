"""Canonical fingerprints of a kernel's user variables, computed inside the kernel.

The peer harness (bench/peers.py) puts this file on the kernel's PYTHONPATH and calls it with
silent executions of ``get_ipython()._nbbench.<function>(...)``, so that nothing of the harness
is ever bound in the user's namespace (where a tracker would see it, store it or trip on it).
It must run in any peer's interpreter: standard library only, numpy/pandas/matplotlib/xxhash
used when they are importable.

A fingerprint is a hash of the *value*, not of its pickle: two pickles of equal objects can
differ (set order, interned strings, a DataFrame's block layout), which would report a correct
restore as wrong. So values are walked recursively: containers by their items (sets
order-free), numpy arrays by dtype, shape and bytes, pandas objects with
``pandas.util.hash_pandas_object``, notebook functions by code, defaults and closure, anything
else through ``__reduce_ex__(4)`` as pickle would see it. Objects that cannot be pickled get a
type-specific marker (a generator's position, a file's name/mode/offset, a sqlite database's
dump, a lock's state). The identity groups (which names are bound to the same mutable object)
are recorded too, because a restore that splits ``b = a`` into two copies is wrong.

Fingerprinting must not change the state it looks at: it reads the namespace with ``dict``
methods (a tracking namespace subclass sees no access), never draws a figure and never advances
an iterator.
"""

from __future__ import annotations

import json
import os
import sys
import types
from typing import Any

try:
    import xxhash

    def _new_hash() -> Any:
        return xxhash.xxh3_128()
except ImportError:  # pragma: no cover - every peer environment here has xxhash
    import hashlib

    def _new_hash() -> Any:
        return hashlib.blake2b(digest_size=16)


_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
# Bound by the peers' own setup cells, not by the notebook.
_HARNESS_NAMES = frozenset({"init_kishu", "kishu"})
_ATOMS = (type(None), bool, int, float, complex, str, bytes)
_IMMUTABLE = _ATOMS + (
    tuple,
    frozenset,
    range,
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
)
_MAX_DEPTH = 200


def _h(*parts: Any) -> str:
    h = _new_hash()
    for p in parts:
        if isinstance(p, (bytes, bytearray, memoryview)):
            h.update(p)
        else:
            h.update(str(p).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


class _Walker:
    def __init__(self) -> None:
        self.done: dict[int, str] = {}
        self.active: set[int] = set()
        self.keep: list[Any] = []  # objects made while walking stay alive, so their ids stay unique

    def fp(self, obj: Any, depth: int = 0) -> str:
        t = type(obj)
        if t in _ATOMS:
            return _h(t.__name__, repr(obj))
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            return "cycle"
        if depth > _MAX_DEPTH:
            return "too-deep"
        self.active.add(key)
        try:
            out = self._fp(obj, t, depth + 1)
        except Exception as exc:  # a value that defeats every rule: say so, do not crash
            out = _h("unhashable", t.__module__, t.__qualname__, type(exc).__name__)
        finally:
            self.active.discard(key)
        self.done[key] = out
        return out

    def _items(self, tag: str, items: Any, depth: int) -> str:
        items = list(items)
        if all(type(x) in _ATOMS for x in items):
            return _h(tag, len(items), repr(items))
        return _h(tag, len(items), *(self.fp(x, depth) for x in items))

    def _fp(self, obj: Any, t: type, depth: int) -> str:
        if t is list or t is tuple:
            return self._items(t.__name__, obj, depth)
        if t is dict:
            if all(type(k) in _ATOMS and type(v) in _ATOMS for k, v in obj.items()):
                return _h("dict", len(obj), repr(list(obj.items())))
            return _h(
                "dict", len(obj), *(self.fp(k, depth) + self.fp(v, depth) for k, v in obj.items())
            )
        if t is set or t is frozenset:
            return _h(t.__name__, len(obj), *sorted(self.fp(x, depth) for x in obj))
        if t is range:
            return _h("range", obj.start, obj.stop, obj.step)
        mod = t.__module__ or ""
        if mod.startswith("numpy") and t.__name__ == "ndarray":
            return self._ndarray(obj, depth)
        if mod.startswith("pandas"):
            special = self._pandas(obj, depth)
            if special is not None:
                return special
        if mod.startswith("matplotlib"):
            return self._matplotlib(obj, depth)
        if mod.startswith("torch"):
            special = self._torch(obj, depth)
            if special is not None:
                return special
        if isinstance(obj, types.ModuleType):
            return _h("module", obj.__name__)
        if isinstance(obj, types.FunctionType):
            return self._function(obj, depth)
        if isinstance(obj, types.MethodType):
            return _h("method", obj.__func__.__qualname__, self.fp(obj.__self__, depth))
        if isinstance(obj, types.BuiltinFunctionType):
            owner = getattr(obj, "__self__", None)
            if owner is None or isinstance(owner, types.ModuleType):
                return _h("builtin", getattr(obj, "__module__", None), obj.__qualname__)
            return _h("builtin-method", obj.__qualname__, self.fp(owner, depth))
        if isinstance(obj, type):
            return self._class(obj, depth)
        if isinstance(obj, types.GeneratorType):
            return self._generator(obj, depth)
        if isinstance(obj, types.CellType):
            try:
                return _h("cell", self.fp(obj.cell_contents, depth))
            except ValueError:
                return _h("cell", "empty")
        special = self._unpicklable(obj, t, depth)
        if special is not None:
            return special
        return self._reduce(obj, t, depth)

    # --- torch -------------------------------------------------------------------------------

    def _torch(self, obj: Any, depth: int) -> str | None:
        """Tensors by value (their pickle names storages by address), modules by their state and
        mode, optimizers by their state and settings; None: the generic rules."""
        import torch

        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu()
            data = t.contiguous().view(torch.uint8) if t.dtype != torch.bool and t.numel() else t.contiguous()
            raw = bytes(data.numpy().tobytes()) if t.layout == torch.strided else repr(t.to_dense().tolist())
            grad = self.fp(obj.grad, depth) if obj.grad is not None else None
            return _h("tensor", type(obj).__name__, str(t.dtype), tuple(t.shape), obj.requires_grad, grad, raw)
        if isinstance(obj, torch.nn.Module):
            return _h("module", type(obj).__qualname__, obj.training, *(m.training for m in obj.modules()),
                      self.fp(dict(obj.state_dict(keep_vars=True)), depth))
        if isinstance(obj, torch.optim.Optimizer):
            return _h("optimizer", type(obj).__qualname__, self.fp(obj.state_dict(), depth))
        return None

    # --- numbers and frames ----------------------------------------------------------------

    def _ndarray(self, a: Any, depth: int) -> str:
        import numpy as np

        if a.dtype.hasobject:
            return _h("ndarray-object", a.shape, self._items("items", a.ravel().tolist(), depth))
        c = np.ascontiguousarray(a)
        self.keep.append(c)
        return _h("ndarray", a.dtype.str, a.shape, memoryview(c.view(np.uint8).reshape(-1)))

    def _array_like(self, values: Any) -> str:
        """A pandas column, index or series' values."""
        import numpy as np
        import pandas as pd

        arr = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
        dtype = str(getattr(values, "dtype", arr.dtype))
        if (
            isinstance(arr, np.ndarray)
            and arr.dtype.kind in "biufcmM"
            and not isinstance(getattr(values, "dtype", None), pd.api.extensions.ExtensionDtype)
        ):
            c = np.ascontiguousarray(arr)
            self.keep.append(c)
            return _h("values", dtype, c.shape, memoryview(c.view(np.uint8).reshape(-1)))
        hashed = pd.util.hash_pandas_object(
            pd.Series(values) if isinstance(values, pd.Index) else values,
            index=False,
            categorize=True,
        )
        c = np.ascontiguousarray(hashed.to_numpy())
        self.keep.append(c)
        return _h("values", dtype, len(values), memoryview(c.view(np.uint8).reshape(-1)))

    def _index(self, index: Any) -> str:
        import pandas as pd

        if isinstance(index, pd.RangeIndex):
            return _h("range-index", index.start, index.stop, index.step, index.name)
        if isinstance(index, pd.MultiIndex):
            hashed = pd.util.hash_pandas_object(index, index=False)
            return _h("multi-index", list(index.names), self._array_like(hashed))
        return _h("index", type(index).__name__, index.name, self._array_like(index))

    def _pandas(self, obj: Any, depth: int) -> str | None:
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            cols = [self._array_like(obj.iloc[:, i]) for i in range(obj.shape[1])]
            return _h("DataFrame", self._index(obj.columns), self._index(obj.index), *cols)
        if isinstance(obj, pd.Series):
            return _h("Series", repr(obj.name), self._index(obj.index), self._array_like(obj))
        if isinstance(obj, pd.Index):
            return self._index(obj)
        return None

    def _matplotlib(self, obj: Any, depth: int) -> str:
        """Figures and axes by what they show, read without drawing (a draw changes them)."""
        from matplotlib.axes import Axes
        from matplotlib.figure import Figure

        if isinstance(obj, Figure):
            return _h("Figure", *(self._axes(ax) for ax in obj.axes))
        if isinstance(obj, Axes):
            fig = obj.figure
            index = fig.axes.index(obj) if fig is not None and obj in fig.axes else -1
            return _h(
                "Axes", index, self._axes(obj), self.fp(fig, depth) if fig is not None else ""
            )
        import numpy as np

        if isinstance(obj, np.ndarray):  # pragma: no cover - arrays are caught before
            return self._ndarray(obj, depth)
        return _h("matplotlib", type(obj).__qualname__)

    def _axes(self, ax: Any) -> str:
        import numpy as np

        parts: list[Any] = [
            ax.get_title(),
            ax.get_xlabel(),
            ax.get_ylabel(),
            len(ax.lines),
            len(ax.patches),
            len(ax.collections),
            len(ax.texts),
        ]
        for line in ax.lines:
            parts.append(
                memoryview(
                    np.ascontiguousarray(line.get_xydata(), dtype=float).reshape(-1).view(np.uint8)
                )
            )
        for patch in ax.patches:
            try:
                parts.append(repr(patch.get_bbox().bounds))
            except Exception:
                parts.append(type(patch).__name__)
        for coll in ax.collections:
            try:
                parts.append(
                    memoryview(
                        np.ascontiguousarray(coll.get_offsets(), dtype=float)
                        .reshape(-1)
                        .view(np.uint8)
                    )
                )
            except Exception:
                parts.append(type(coll).__name__)
        for text in ax.texts:
            parts.append(text.get_text())
        return _h("axes", *parts)

    # --- code --------------------------------------------------------------------------------

    def _code(self, code: types.CodeType) -> str:
        consts = [
            self._code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
        ]
        return _h(
            "code",
            code.co_name,
            code.co_code,
            code.co_names,
            code.co_varnames,
            code.co_freevars,
            *consts,
        )

    def _function(self, fn: types.FunctionType, depth: int) -> str:
        if (
            fn.__module__ not in (None, "__main__")
            and "<locals>" not in fn.__qualname__
            and fn.__name__ != "<lambda>"
        ):
            return _h("function-ref", fn.__module__, fn.__qualname__)
        closure = [self.fp(c, depth) for c in fn.__closure__ or ()]
        return _h(
            "function",
            fn.__qualname__,
            self._code(fn.__code__),
            self.fp(fn.__defaults__, depth),
            self.fp(fn.__kwdefaults__, depth),
            *closure,
        )

    def _class(self, cls: type, depth: int) -> str:
        if cls.__module__ != "__main__":
            return _h("class-ref", cls.__module__, cls.__qualname__)
        attrs = []
        for k, v in cls.__dict__.items():
            if k in ("__dict__", "__weakref__", "__doc__", "__module__"):
                continue
            if isinstance(v, (staticmethod, classmethod)):
                v = v.__func__
            attrs.append(
                k
                + "="
                + (
                    self.fp(v, depth)
                    if isinstance(v, (types.FunctionType, type) + _ATOMS)
                    else type(v).__name__
                )
            )
        return _h("class", cls.__qualname__, *(self.fp(b, depth) for b in cls.__bases__), *attrs)

    def _generator(self, gen: types.GeneratorType, depth: int) -> str:
        frame = gen.gi_frame
        if frame is None:
            return _h("generator", gen.__qualname__, "exhausted")
        local = {k: v for k, v in frame.f_locals.items()}
        return _h(
            "generator",
            gen.__qualname__,
            self._code(gen.gi_code),
            frame.f_lasti,
            self.fp(local, depth),
        )

    # --- what pickle refuses -------------------------------------------------------------------

    def _unpicklable(self, obj: Any, t: type, depth: int) -> str | None:
        import io
        import sqlite3
        import threading

        if isinstance(obj, io.IOBase):
            name = getattr(obj, "name", None)
            mode = getattr(obj, "mode", None)
            if obj.closed:
                return _h("file", t.__name__, name, mode, "closed")
            try:
                pos = obj.tell()
            except Exception:
                pos = "?"
            return _h("file", t.__name__, name, mode, pos)
        if isinstance(obj, sqlite3.Connection):
            try:
                dump = "\n".join(obj.iterdump())
            except Exception as exc:
                return _h("sqlite", "unusable", type(exc).__name__)
            return _h("sqlite", dump)
        if isinstance(obj, sqlite3.Cursor):
            return _h("sqlite-cursor", self.fp(obj.connection, depth))
        if t in (type(threading.Lock()), type(threading.RLock())) or t.__name__ in (
            "lock",
            "RLock",
            "_RLock",
        ):
            locked = getattr(obj, "locked", None)
            return _h("lock", t.__name__, locked() if locked else repr(obj).split(" object")[0])
        if isinstance(obj, (threading.Condition, threading.Event, threading.Semaphore)):
            return _h("sync", t.__name__)
        if isinstance(obj, types.FrameType) or isinstance(obj, types.CoroutineType):
            return _h("unpicklable", t.__qualname__)
        return None

    def _reduce(self, obj: Any, t: type, depth: int) -> str:
        try:
            rv = obj.__reduce_ex__(4)
        except Exception as exc:
            return _h("unpicklable", t.__module__, t.__qualname__, type(exc).__name__)
        if isinstance(rv, str):
            return _h("global", t.__module__, rv)
        self.keep.append(rv)
        parts = [self.fp(rv[0], depth), self.fp(rv[1], depth) if len(rv) > 1 else ""]
        # A dict subclass is its items: some (scikit-learn's Bunch) drop their __dict__ in
        # __setstate__, so every unpickled copy differs there from the original.
        if len(rv) > 2 and rv[2] is not None and not isinstance(obj, dict):
            parts.append(self.fp(rv[2], depth))
        if len(rv) > 3 and rv[3] is not None:
            items = list(rv[3])
            self.keep.append(items)
            parts.append(self._items("listitems", items, depth))
        if len(rv) > 4 and rv[4] is not None:
            pairs = list(rv[4])
            self.keep.append(pairs)
            parts.append(
                _h("dictitems", *(self.fp(k, depth) + self.fp(v, depth) for k, v in pairs))
            )
        return _h("object", t.__module__, t.__qualname__, *parts)


def user_names(shell: Any) -> list[str]:
    """The notebook's variables: no IPython, harness or underscore names (Kishu skips those)."""
    ns = shell.user_ns
    hidden = getattr(shell, "user_ns_hidden", {})
    out = []
    for name, value in dict.items(ns):
        if name.startswith("_") or name in _IPYTHON_NAMES or name in _HARNESS_NAMES:
            continue
        if name in hidden and hidden[name] is value:
            continue
        out.append(name)
    return sorted(out)


def fingerprint(shell: Any) -> dict[str, Any]:
    """{"vars": {name: fp}, "aliases": [[names bound to one mutable object], ...]}."""
    ns = shell.user_ns
    walker = _Walker()
    names = user_names(shell)
    out: dict[str, str] = {}
    groups: dict[int, list[str]] = {}
    for name in names:
        value = dict.__getitem__(ns, name)
        out[name] = walker.fp(value)
        if not isinstance(value, _IMMUTABLE):
            groups.setdefault(id(value), []).append(name)
    aliases = sorted(g for g in groups.values() if len(g) > 1)
    return {"vars": out, "aliases": aliases}


def compare(expected: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """What differs between two fingerprints (empty lists: an exact restore)."""
    ev, gv = expected["vars"], got["vars"]
    return {
        "missing": sorted(set(ev) - set(gv)),
        "extra": sorted(set(gv) - set(ev)),
        "differ": sorted(n for n in set(ev) & set(gv) if ev[n] != gv[n]),
        "aliases": []
        if expected["aliases"] == got["aliases"]
        else [expected["aliases"], got["aliases"]],
    }


def peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class _Probe:
    """What the harness calls in the kernel, as ``get_ipython()._nbbench.<method>``."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.dill_dir: str | None = None
        self.dill_keep: set[int] = set()
        self.dill_files: list[dict[str, Any]] = []

    def emit(self, value: Any) -> None:
        sys.stdout.write("\n" + json.dumps(value) + "\n")
        sys.stdout.flush()

    def fingerprint(self) -> None:
        import time

        t0 = time.perf_counter()
        fp = fingerprint(self.shell)
        fp["seconds"] = round(time.perf_counter() - t0, 4)
        self.emit(fp)

    def peak_rss(self) -> None:
        self.emit(peak_rss_mb())

    # dill: the whole namespace into one file after every cell
    def install_dill(self, directory: str, keep: list[int]) -> None:
        """Dump after every cell; a dump that no checkout will load is deleted once the next
        cell's dump is written (its size is kept: the store is the sum of all dumps)."""
        self.dill_dir = directory
        self.dill_keep = set(keep)
        os.makedirs(directory, exist_ok=True)
        self.shell.events.register("post_run_cell", self._dill_after_cell)

    def _dill_after_cell(self, result: Any) -> None:
        import time

        import dill

        n = len(self.dill_files)
        path = os.path.join(self.dill_dir or ".", f"cell-{n:03d}.pkl")
        t0 = time.perf_counter()
        error = None
        try:
            dill.dump_module(path, module=self.shell.user_module)
        except Exception as exc:
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if error is not None and os.path.exists(path):
            os.remove(path)  # a half-written dump cannot be loaded
            size = 0
        self.dill_files.append(
            {
                "path": path if error is None else None,
                "seconds": round(time.perf_counter() - t0, 4),
                "bytes": size,
                "error": error,
            }
        )
        if n > 0 and n - 1 not in self.dill_keep:
            previous = self.dill_files[n - 1]
            if previous["path"] is not None and os.path.exists(previous["path"]):
                os.remove(previous["path"])
            previous["path"] = None
            previous["deleted"] = True

    def dill_log(self) -> None:
        self.emit(self.dill_files)

    def dill_checkout(self, index: int) -> None:
        """Replace the user's variables by those of dump ``index`` (as a checkout would)."""
        import time

        import dill

        entry = self.dill_files[index]
        t0 = time.perf_counter()
        if entry["path"] is None:
            self.emit({"error": f"no dump for this cell: {entry['error']}"})
            return
        ns = self.shell.user_ns
        for name in user_names(self.shell):
            dict.__delitem__(ns, name)
        try:
            dill.load_module(entry["path"], module=self.shell.user_module)
        except Exception as exc:
            self.emit(
                {
                    "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                    "seconds": time.perf_counter() - t0,
                }
            )
            return
        self.emit({"error": None, "seconds": round(time.perf_counter() - t0, 4)})


def install(shell: Any) -> None:
    shell._nbbench = _Probe(shell)
