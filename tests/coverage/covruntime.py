"""The kernel's side of the coverage harness, imported invisibly to nbstate (through a user
expression, never a cell): it makes each case's reference values in private namespaces and
compares the notebook's live values with them."""

from __future__ import annotations

import reprlib
import sys
import types
from typing import Any

import covcompare

# case id -> {"before": namespace after setup + create, "after": ... + change}
_refs: dict[str, dict[str, dict[str, Any]]] = {}
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 120


def _user_ns() -> dict[str, Any]:
    from IPython import get_ipython

    return get_ipython().user_ns


def _run(code: str, ns: dict[str, Any]) -> None:
    exec(compile(code, "<coverage case>", "exec"), ns)


def prepare(cid: str, setup: str, create: str, change: str, which: tuple[str, ...] = ("before", "after")) -> str | None:
    """Make the case's reference values; returns what went wrong, if anything."""
    refs: dict[str, dict[str, Any]] = {}
    for w in which:
        # A module of its own, as the notebook's __main__ is one (dataclasses look theirs up).
        module = types.ModuleType(f"__coverage_ref_{len(sys.modules)}__")
        sys.modules[module.__name__] = module
        ns = module.__dict__
        try:
            _run(setup, ns)
            _run(create, ns)
            if w == "after":
                _run(change, ns)
        except BaseException as exc:  # noqa: BLE001 - reported as the case's own error
            return f"the private copy ({w}) failed: {type(exc).__name__}: {exc}"
        refs[w] = ns
    _refs[cid] = refs
    return None


def _comparison(eq: str, ref: dict[str, Any]):
    if eq.isidentifier() and hasattr(covcompare, eq):
        return getattr(covcompare, eq)
    env = dict(vars(covcompare))
    env.update(ref)
    return eval(eq, env)


def _describe(v: Any) -> str:
    try:
        return _short.repr(v)
    except Exception:  # noqa: BLE001
        return f"<{type(v).__name__}>"


def check(cid: str, which: str, names: list[str], eq: str | dict[str, str], invariants: list[str]) -> list[str]:
    """What differs between the live values and the case's reference ones (empty: all equal)."""
    ns = _user_ns()
    ref = _refs[cid][which]
    problems = []
    for n in names:
        if n not in ns:
            problems.append(f"{n} is not defined")
            continue
        src = eq.get(n, "equal") if isinstance(eq, dict) else eq
        try:
            same = bool(_comparison(src, ref)(ns[n], ref[n]))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"comparing {n} raised {type(exc).__name__}: {exc}")
            continue
        if not same:
            problems.append(f"{n} differs from the {which} value: {_describe(ns[n])} vs {_describe(ref[n])}")
    for expr in invariants:
        try:
            holds = bool(eval(expr, ns))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"`{expr}` raised {type(exc).__name__}: {exc}")
            continue
        if not holds:
            problems.append(f"`{expr}` is false")
    return problems


def distinct(cid: str, names: list[str], eq: str | dict[str, str]) -> list[str]:
    """Names whose comparison cannot tell the value before the change from the one after."""
    before, after = _refs[cid]["before"], _refs[cid]["after"]
    same = []
    for n in names:
        src = eq.get(n, "equal") if isinstance(eq, dict) else eq
        if _comparison(src, after)(before[n], after[n]):
            same.append(n)
    return same


def unserializable() -> dict[str, str]:
    import nbstate

    rec = nbstate.recorder_of(__import__("IPython").get_ipython())
    return dict(rec.tracker.unserializable)
