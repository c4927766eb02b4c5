"""How the coverage cases tell two values of a class apart (kernel side).

Every function takes the live value and the reference value and says whether they are the
same *state*: the same type (by qualified name: reference values of notebook classes come from
a private namespace), the same contents, the same flags that a user can see. The references are
made independently, so identity never counts except inside one value (cycles, views).
"""

from __future__ import annotations

import math
import sys
import types
from typing import Any


def _mod(name: str) -> Any:
    return sys.modules.get(name)


def _same_type(a: Any, b: Any) -> bool:
    return type(a).__qualname__ == type(b).__qualname__


def equal(a: Any, b: Any) -> bool:
    """Plain ``==`` with the type, for values whose equality is their state."""
    return _same_type(a, b) and bool(a == b)


def state(a: Any, b: Any, _memo: set | None = None) -> bool:
    """A structural comparison: containers element by element, objects attribute by attribute,
    functions by code, defaults, closure and attributes; the library types below by their own
    comparisons. Cycles are followed once."""
    memo = set() if _memo is None else _memo
    key = (id(a), id(b))
    if key in memo or a is b:  # (b is a fresh copy: only singletons such as NaT are both)
        return True
    if not _same_type(a, b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (str, bytes, int, complex, type(None), bool, range, slice)):
        return a == b
    np, pd, torch = _mod("numpy"), _mod("pandas"), _mod("torch")
    if np is not None:
        if isinstance(a, np.ndarray):
            return arrays(a, b)
        if isinstance(a, (np.random.Generator, np.random.BitGenerator, np.random.RandomState)):
            return rng(a, b)
        if isinstance(a, np.generic):
            return bool(a == b) or (a != a and b != b)
    if pd is not None and isinstance(a, (pd.DataFrame, pd.Series, pd.Index, pd.Categorical)):
        return frames(a, b)
    if torch is not None and isinstance(a, torch.Tensor):
        return tensor(a, b)
    if isinstance(a, type):
        return a.__qualname__ == b.__qualname__
    memo.add(key)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(state(x, y, memo) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(state(a[k], b[k], memo) for k in a) and _attrs(a, b, memo)
    if isinstance(a, (set, frozenset)):
        return a == b
    if isinstance(a, types.FunctionType):
        return function(a, b, memo)
    if isinstance(a, types.MethodType):
        return a.__func__.__qualname__ == b.__func__.__qualname__ and state(a.__self__, b.__self__, memo)
    import random

    if isinstance(a, random.Random):
        return a.getstate() == b.getstate()
    notebook = type(a).__module__.startswith(("__main__", "__coverage_ref"))
    if not notebook and type(a).__eq__ is not object.__eq__:
        try:
            same = a == b
        except Exception:  # noqa: BLE001
            same = None
        if isinstance(same, bool):
            return same
    if hasattr(a, "__dict__") or hasattr(type(a), "__slots__"):
        return _attrs(a, b, memo)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return repr(a) == repr(b)


def _slots(obj: Any) -> dict[str, Any]:
    found = {}
    for klass in type(obj).__mro__:
        for s in getattr(klass, "__slots__", ()) if not isinstance(getattr(klass, "__slots__", ()), str) else (klass.__slots__,):
            if s in ("__dict__", "__weakref__"):
                continue
            if hasattr(obj, s):
                found[s] = getattr(obj, s)
    return found


def _attrs(a: Any, b: Any, memo: set) -> bool:
    da = dict(getattr(a, "__dict__", {}) or {})
    db = dict(getattr(b, "__dict__", {}) or {})
    da.update(_slots(a))
    db.update(_slots(b))
    if sorted(da) != sorted(db):
        return False
    return all(state(da[k], db[k], memo) for k in da)


def function(a: Any, b: Any, memo: set | None = None) -> bool:
    """Same code, name, defaults, closure contents and attributes."""
    memo = set() if memo is None else memo
    if not isinstance(a, types.FunctionType) or not isinstance(b, types.FunctionType):
        return False
    if a.__code__.co_code != b.__code__.co_code or a.__qualname__ != b.__qualname__:
        return False
    cells_a = [c.cell_contents for c in a.__closure__ or ()]
    cells_b = [c.cell_contents for c in b.__closure__ or ()]
    return (
        state(a.__defaults__, b.__defaults__, memo)
        and state(a.__kwdefaults__, b.__kwdefaults__, memo)
        and state(cells_a, cells_b, memo)
        and state(dict(a.__dict__), dict(b.__dict__), memo)
    )


def rng(a: Any, b: Any) -> bool:
    """Random generators: the same state (the next numbers they give)."""
    np = _mod("numpy")
    if not _same_type(a, b):
        return False
    if isinstance(a, np.random.RandomState):
        sa, sb = a.get_state(legacy=False), b.get_state(legacy=False)
        return state(sa, sb)
    if isinstance(a, np.random.Generator):
        return state(a.bit_generator.state, b.bit_generator.state)
    if isinstance(a, np.random.BitGenerator):
        return state(a.state, b.state)
    return a.getstate() == b.getstate()


def arrays(a: Any, b: Any) -> bool:
    """numpy arrays: type, dtype, shape, contents (NaN equal to NaN), writeability; masked
    arrays also their mask and fill value."""
    np = _mod("numpy")
    if not _same_type(a, b) or a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.flags.writeable != b.flags.writeable:
        return False
    if isinstance(a, np.ma.MaskedArray):
        return (
            np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
            and arrays(a.data, b.data)
            and state(a.fill_value, b.fill_value)
        )
    if a.dtype.hasobject:
        return all(state(x, y) for x, y in zip(a.ravel().tolist(), b.ravel().tolist()))
    if a.dtype.fields is not None:
        return a.tobytes() == b.tobytes()
    try:
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    except TypeError:
        return bool(np.array_equal(a, b))


def frames(a: Any, b: Any) -> bool:
    """pandas DataFrame, Series, Index, Categorical: pandas' own exact comparisons (dtypes,
    names, index, frequency), plus ``attrs``."""
    pd = _mod("pandas")
    t = pd.testing
    if not _same_type(a, b):
        return False
    try:
        if isinstance(a, pd.DataFrame):
            t.assert_frame_equal(a, b, check_exact=True, check_freq=True, check_flags=True)
        elif isinstance(a, pd.Series):
            t.assert_series_equal(a, b, check_exact=True, check_freq=True, check_flags=True)
        elif isinstance(a, pd.Index):
            t.assert_index_equal(a, b, exact=True, check_exact=True)
            if getattr(a, "freq", None) != getattr(b, "freq", None):
                return False
        else:
            t.assert_extension_array_equal(a, b, check_exact=True)
    except AssertionError:
        return False
    return state(getattr(a, "attrs", {}), getattr(b, "attrs", {}))


def polars(a: Any, b: Any) -> bool:
    """polars DataFrame or Series: schema (or name and dtype) and contents."""
    pl = _mod("polars")
    if not _same_type(a, b):
        return False
    if isinstance(a, pl.DataFrame):
        return a.schema == b.schema and a.equals(b, null_equal=True)
    return a.name == b.name and a.dtype == b.dtype and a.equals(b, check_names=True, null_equal=True)


def arrow(a: Any, b: Any) -> bool:
    """pyarrow values: their own equality, with schema metadata where they have one."""
    if not _same_type(a, b):
        return False
    if hasattr(a, "schema"):
        return a.equals(b, check_metadata=True)
    return a.equals(b)


def sparse(a: Any, b: Any) -> bool:
    """scipy sparse arrays and matrices: format, shape, dtype and every stored value."""
    if not _same_type(a, b) or a.shape != b.shape or a.dtype != b.dtype:
        return False
    np = _mod("numpy")
    return bool(np.array_equal(a.toarray(), b.toarray())) and a.nnz == b.nnz


def estimator(a: Any, b: Any) -> bool:
    """scikit-learn estimators: parameters and fitted attributes (everything in ``vars``)."""
    return _same_type(a, b) and state(vars(a), vars(b))


def fitted(a: Any, b: Any, X: Any) -> bool:
    """scikit-learn estimators whose fitted state holds objects without an equality (trees,
    loss functions): the same parameters, both fitted or not, and the same outputs on ``X``."""
    from sklearn.utils.validation import check_is_fitted

    def is_fitted(e: Any) -> bool:
        try:
            check_is_fitted(e)
        except Exception:  # noqa: BLE001
            return False
        return True

    if not _same_type(a, b) or repr(a.get_params()) != repr(b.get_params()) or is_fitted(a) != is_fitted(b):
        return False
    if not is_fitted(a):
        return True
    np = _mod("numpy")
    for method in ("predict_proba", "decision_function", "predict", "transform"):
        if hasattr(a, method):
            if not np.array_equal(getattr(a, method)(X), getattr(b, method)(X)):
                return False
    return state({k: v for k, v in vars(a).items() if k.endswith("_") and isinstance(v, (int, float, str, np.ndarray))},
                 {k: v for k, v in vars(b).items() if k.endswith("_") and isinstance(v, (int, float, str, np.ndarray))})


def _artist(x: Any) -> tuple:
    """What a matplotlib artist shows."""
    import matplotlib.collections as mc
    import matplotlib.image as mi
    import matplotlib.lines as ml
    import matplotlib.patches as mp
    import matplotlib.text as mt
    import numpy as np

    def arr(v: Any) -> Any:
        return np.asarray(v).tolist()

    common = (type(x).__name__, x.get_visible(), x.get_label() if not isinstance(x, mt.Text) else "", x.get_zorder(), x.get_alpha())
    if isinstance(x, ml.Line2D):
        return common + (arr(x.get_xydata()), x.get_color(), x.get_linewidth(), x.get_linestyle(), x.get_marker())
    if isinstance(x, mt.Text):
        return common + (x.get_text(), x.get_position(), x.get_color(), x.get_fontsize(), x.get_rotation())
    if isinstance(x, mp.Patch):
        return common + (arr(x.get_path().vertices), arr(x.get_patch_transform().get_matrix()), arr(x.get_facecolor()), arr(x.get_edgecolor()))
    if isinstance(x, mc.Collection):
        a = x.get_array()
        return common + (arr(x.get_offsets()), arr(x.get_sizes()) if hasattr(x, "get_sizes") else None, arr(x.get_facecolor()), None if a is None else arr(a))
    if isinstance(x, mi.AxesImage):
        return common + (arr(x.get_array()), x.get_cmap().name, x.get_clim(), x.get_extent())
    return common


def _axes(ax: Any) -> tuple:
    legend = ax.get_legend()
    return (
        type(ax).__name__,
        ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), ax.get_xlim(), ax.get_ylim(),
        ax.get_xscale(), ax.get_yscale(), ax.get_position().bounds,
        [_artist(c) for c in [*ax.lines, *ax.collections, *ax.patches, *ax.texts, *ax.images]],
        None if legend is None else [t.get_text() for t in legend.get_texts()],
    )


def _figure(fig: Any) -> tuple:
    return (
        tuple(fig.get_size_inches()), fig.get_dpi(), fig.get_facecolor(),
        None if fig._suptitle is None else fig._suptitle.get_text(),
        [_axes(ax) for ax in fig.axes],
        [_artist(t) for t in fig.texts],
    )


def artists(a: Any, b: Any) -> bool:
    """matplotlib figures, axes and artists: every artist's data, text, colours and place."""
    import matplotlib.axes
    import matplotlib.figure

    if not _same_type(a, b):
        return False
    if isinstance(a, matplotlib.figure.FigureBase):
        return _figure(a) == _figure(b)
    if isinstance(a, matplotlib.axes.Axes):
        return _axes(a) == _axes(b) and _figure(a.figure) == _figure(b.figure)
    return _artist(a) == _artist(b)


def grid(a: Any, b: Any) -> bool:
    """seaborn grids: their figure, and their own attributes that are data."""
    return _same_type(a, b) and _figure(a.figure) == _figure(b.figure)


def plotly(a: Any, b: Any) -> bool:
    """plotly figures and traces: their JSON."""
    import json

    return _same_type(a, b) and json.loads(a.to_json() if hasattr(a, "to_json") else json.dumps(a.to_plotly_json())) == json.loads(
        b.to_json() if hasattr(b, "to_json") else json.dumps(b.to_plotly_json())
    )


def graph(a: Any, b: Any) -> bool:
    """networkx graphs: type, graph attributes, nodes and edges with their attributes."""
    if not _same_type(a, b) or a.graph != b.graph:
        return False
    if list(a.nodes(data=True)) != list(b.nodes(data=True)):
        return False
    ea = list(a.edges(keys=True, data=True) if a.is_multigraph() else a.edges(data=True))
    eb = list(b.edges(keys=True, data=True) if b.is_multigraph() else b.edges(data=True))
    return ea == eb


def image(a: Any, b: Any) -> bool:
    """Pillow images: mode, size, pixels, palette and info."""
    return (
        _same_type(a, b) and a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes()
        and a.info == b.info and (a.getpalette() == b.getpalette())
    )


def tensor(a: Any, b: Any) -> bool:
    """torch tensors: dtype, shape, device, values, requires_grad and the gradient."""
    torch = _mod("torch")
    if not _same_type(a, b) or a.dtype != b.dtype or a.shape != b.shape or a.device != b.device:
        return False
    if a.requires_grad != b.requires_grad or a.is_leaf != b.is_leaf:
        return False
    if (a.grad is None) != (b.grad is None) or (a.grad is not None and not torch.equal(a.grad, b.grad)):
        return False
    if a.layout != b.layout:
        return False
    if a.is_sparse:
        return torch.equal(a.to_dense(), b.to_dense())
    return torch.equal(a.detach(), b.detach())


def module(a: Any, b: Any) -> bool:
    """torch modules: type, training flags, every parameter and buffer (with requires_grad and
    gradients) and the plain attributes."""
    if not _same_type(a, b):
        return False
    ma, mb = dict(a.named_modules()), dict(b.named_modules())
    if list(ma) != list(mb) or any(ma[k].training != mb[k].training or not _same_type(ma[k], mb[k]) for k in ma):
        return False
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    ba, bb = dict(a.named_buffers()), dict(b.named_buffers())
    if list(pa) != list(pb) or list(ba) != list(bb):
        return False
    return all(tensor(pa[k], pb[k]) for k in pa) and all(tensor(ba[k], bb[k]) for k in ba)


def optimizer(a: Any, b: Any) -> bool:
    """torch optimizers: hyperparameters, the parameters they update, and their state."""
    if not _same_type(a, b) or len(a.param_groups) != len(b.param_groups):
        return False
    for ga, gb in zip(a.param_groups, b.param_groups):
        if {k: v for k, v in ga.items() if k != "params"} != {k: v for k, v in gb.items() if k != "params"}:
            return False
        if len(ga["params"]) != len(gb["params"]) or not all(tensor(x, y) for x, y in zip(ga["params"], gb["params"])):
            return False
        for x, y in zip(ga["params"], gb["params"]):
            sa, sb = a.state.get(x, {}), b.state.get(y, {})
            if sorted(sa) != sorted(sb) or not all(state(sa[k], sb[k]) for k in sa):
                return False
    return True


def results(a: Any, b: Any) -> bool:
    """statsmodels results: parameters, fit statistics and which data they still hold."""
    np = _mod("numpy")
    if not _same_type(a, b):
        return False
    if not np.allclose(np.asarray(a.params), np.asarray(b.params), rtol=0, atol=0):
        return False
    holds = lambda r: [getattr(r.model, k, None) is None for k in ("endog", "exog", "wendog", "wexog")]  # noqa: E731
    return holds(a) == holds(b) and state(getattr(a, "_cache", {}).keys() & {"resid"}, getattr(b, "_cache", {}).keys() & {"resid"})


def generator(a: Any, b: Any) -> bool:
    """Suspended generators, without running them: where each stopped, and its locals (an
    iterator among them by where it stands)."""

    def where(g: Any) -> Any:
        frame = g.gi_frame
        if frame is None:
            return None
        local = {}
        for k, v in frame.f_locals.items():
            reduced = v.__reduce__() if type(v).__name__.endswith("iterator") else None
            local[k] = (type(v).__name__, reduced[1:]) if reduced else v
        return g.__qualname__, frame.f_lasti, local

    return _same_type(a, b) and where(a) == where(b)
