"""Which namespace names a cell may read, write or delete, found without running anything.

The answer must be a superset of the truth, at no cost while the cell runs: names come from the
cell's syntax tree, then from the code objects of every notebook-defined function, class or
instance the cell names (their globals are the notebook's namespace), transitively. Code that
can reach any name (``globals()``, ``exec``, ``eval``, ``%run``) makes the answer "everything".
What the names found may rebind is confirmed after the cell by comparing identities (capture.py):
of those names and of the names any notebook function declares ``global`` after most cells, of
every name after a cell that reaches the namespace by other means (magics, IPython's API, the
interpreter's modules) and every few cells. Pure functions; no IPython.
"""

from __future__ import annotations

import ast
import dis
import functools
import itertools
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Calls that can read or write any global.
_WILDCARD_CALLS = frozenset({"globals", "locals", "vars", "exec", "eval", "execfile", "__import__"})
# Magics that run code straight in the namespace, out of reach of the AST transformers.
_WILDCARD_MAGICS = frozenset({"run", "load", "macro", "rerun", "recall", "autoreload", "aimport"})
# Names and attributes through which code reaches the namespace without naming what it changes
# (magics, IPython's API, the interpreter's modules and frames): a cell that uses one is compared
# name by name after it runs.
_OPAQUE_NAMES = frozenset({"get_ipython", "__main__", "sys", "inspect", "builtins", "__builtins__", "gc", "ctypes"})
_OPAQUE_ATTRIBUTES = frozenset({
    "user_ns", "user_global_ns", "push", "run_line_magic", "run_cell_magic", "getoutput", "system",
    "f_globals", "f_locals", "_getframe", "modules", "__dict__", "load_session", "load_module",
})


# How many elements of a container are looked at for functions (keeps the cost per cell bounded).
_CONTAINER_SCAN_LIMIT = 256
# How deep into containers and objects holding other objects (a linked list) that look goes.
_HOLDER_DEPTH = 4


@dataclass
class CellNames:
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    everything: bool = False
    # Names the code declares `global` (or `nonlocal`): a function it defines may rebind them
    # whenever it runs, also between cells (a widget's callback, a thread).
    declared: set[str] = field(default_factory=set)
    # The code reaches the namespace in a way its names do not show (a magic, IPython's API, the
    # interpreter's modules or frames): what it rebinds is found by comparing every name.
    opaque: bool = False

    def update(self, other: CellNames) -> None:
        self.reads |= other.reads
        self.writes |= other.writes
        self.deletes |= other.deletes
        self.everything |= other.everything
        self.declared |= other.declared
        self.opaque |= other.opaque

    @property
    def touched(self) -> set[str]:
        return self.reads | self.writes | self.deletes


class _Collector(ast.NodeVisitor):
    def __init__(self) -> None:
        self.names = CellNames()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.names.reads.add(node.id)
            if node.id in _OPAQUE_NAMES:
                self.names.opaque = True
        elif isinstance(node.ctx, ast.Store):
            self.names.writes.add(node.id)
        else:
            self.names.deletes.add(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        # `a += 1` reads `a` too: its replay needs the value it had.
        if isinstance(node.target, ast.Name):
            self.names.reads.add(node.target.id)
        self.generic_visit(node)

    def _defines(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.names.writes.add(node.name)
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _defines

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.names.everything = True
            else:
                self.names.writes.add(alias.asname or alias.name.split(".")[0])
                self.names.opaque |= alias.name.split(".")[0] in _OPAQUE_NAMES
        self.names.opaque |= isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _OPAQUE_NAMES

    visit_ImportFrom = visit_Import

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _OPAQUE_ATTRIBUTES:
            self.names.opaque = True
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        self.names.writes.update(node.names)
        self.names.reads.update(node.names)
        self.names.declared.update(node.names)

    visit_Nonlocal = visit_Global

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.names.writes.add(node.name)
            self.names.deletes.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: Any) -> None:
        if node.name:
            self.names.writes.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: Any) -> None:
        if node.name:
            self.names.writes.add(node.name)

    def visit_MatchMapping(self, node: Any) -> None:
        if node.rest:
            self.names.writes.add(node.rest)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in _WILDCARD_CALLS:
            self.names.everything = True
        elif isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and first.value in _WILDCARD_MAGICS:
                self.names.everything = True
        self.generic_visit(node)


def names_in_tree(tree: ast.AST) -> CellNames:
    """Names a piece of code mentions, by role (a superset of what it may do)."""
    collector = _Collector()
    collector.visit(tree)
    return collector.names


def names_in_source(source: str) -> CellNames:
    try:
        return names_in_tree(ast.parse(source))
    except (SyntaxError, ValueError):
        return CellNames(everything=True)


@functools.lru_cache(maxsize=1024)
def top_level_rebinds(source: str) -> frozenset[str]:
    """Names the cell's top-level statements bind whatever happens before them: assignments to
    plain names, ``def``, ``class``, ``import``. A replay of the cell need not be given what they
    held before, unless it reads them. Names bound only in a branch, a loop, a ``with`` or a
    function are left out, and so is all of a cell that does not parse (magics)."""
    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError):
        return frozenset()
    out: set[str] = set()

    def targets(node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)
        elif isinstance(node, ast.Starred):
            targets(node.value)

    for stmt in body:
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                targets(t)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets(stmt.target)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            out.update(a.asname or a.name.split(".")[0] for a in stmt.names if a.name != "*")
    return frozenset(out)


def _code_names(code: types.CodeType, out: set[str]) -> None:
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_names(const, out)


def global_targets(values: Iterable[Any], namespace: Mapping[str, Any]) -> set[str]:
    """Names that notebook functions reachable from ``values`` rebind with a ``global``
    statement (as ``CellNames.declared`` says of a cell's code, for values no cell of this
    session defined: those a checkout or an import brought in)."""
    found: set[str] = set()
    seen: set[int] = set()
    for value in values:
        for fn in _callables_inside(value, namespace, seen):
            _global_stores(fn.__code__, found)
    return found


def _global_stores(code: types.CodeType, out: set[str]) -> None:
    for ins in dis.get_instructions(code):
        if ins.opname in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            out.add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _global_stores(const, out)


def _callables_inside(
    value: Any, namespace: Mapping[str, Any], seen: set[int] | None = None, depth: int = _HOLDER_DEPTH
) -> Iterable[types.FunctionType]:
    """Notebook-defined functions whose code may run when ``value`` is used (looking into what
    containers and objects hold down to ``depth`` levels)."""
    if seen is None:
        seen = set()
    if id(value) in seen:  # closures that hold themselves, objects that point at each other
        return
    seen.add(id(value))
    if isinstance(value, types.MethodType):
        value = value.__func__
    if isinstance(value, functools.partial):
        yield from _callables_inside(value.func, namespace, seen, depth)
        return
    if isinstance(value, types.FunctionType):
        if value.__globals__ is namespace:
            yield value
        wrapped = getattr(value, "__wrapped__", None)
        if wrapped is not None and wrapped is not value:
            yield from _callables_inside(wrapped, namespace, seen, depth)
        for cell in value.__closure__ or ():
            try:
                inner = cell.cell_contents
            except ValueError:
                continue
            if isinstance(inner, (types.FunctionType, types.MethodType, functools.partial)):
                yield from _callables_inside(inner, namespace, seen, depth)
        return
    if isinstance(value, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)):
        # A suspended generator runs more of its code when resumed (`next(gen)`).
        frame = getattr(value, "gi_frame", None) or getattr(value, "cr_frame", None) or getattr(value, "ag_frame", None)
        if frame is not None and frame.f_globals is namespace:
            code = frame.f_code
            cells = tuple(types.CellType() for _ in code.co_freevars) or None
            yield types.FunctionType(code, frame.f_globals, closure=cells)
            yield from _callables_among(frame.f_locals.values(), namespace, seen, depth)
        return
    if isinstance(value, (dict, list, tuple, set, frozenset, types.SimpleNamespace)):
        # Functions reached through a container (`ops["add"](1)`, `box.cb(2)`, `boxes[0].put()`):
        # look one level in.
        items = value.values() if isinstance(value, dict) else vars(value).values() if isinstance(value, types.SimpleNamespace) else value
        yield from _callables_among(items, namespace, seen, depth)
        return
    cls = value if isinstance(value, type) else type(value)
    if cls.__module__ != "__main__":
        if not isinstance(value, (type, types.ModuleType)):
            # A library object holding notebook code (`np.vectorize(f)`, a stored callback).
            held = getattr(value, "__dict__", None)
            if isinstance(held, dict):
                yield from _callables_among(held.values(), namespace, seen, depth)
        return
    for klass in cls.__mro__:
        if klass.__module__ != "__main__":
            continue
        for attr in vars(klass).values():
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if isinstance(attr, property):
                candidates: tuple[Any, ...] = (attr.fget, attr.fset, attr.fdel)
            else:
                candidates = (attr,)
            for c in candidates:
                if isinstance(c, types.FunctionType) and c.__globals__ is namespace:
                    yield c
    if not isinstance(value, type):
        # What an instance holds: `self.callback()`, `self.child.method()`.
        yield from _callables_among(getattr(value, "__dict__", {}).values(), namespace, seen, depth)


def _callables_among(items: Iterable[Any], namespace: Mapping[str, Any], seen: set[int], depth: int) -> Iterable[types.FunctionType]:
    if depth <= 0:
        return
    sample = list(itertools.islice(items, _CONTAINER_SCAN_LIMIT))
    # Most containers hold only numbers, strings and library objects: their types, gathered in
    # C, say so without a Python step per item.
    kinds = {k for k in set(map(type, sample)) if issubclass(k, _MAY_HOLD_CODE) or _defined_in_notebook(k)}
    if not kinds:
        return
    for item in sample:
        if type(item) in kinds and (isinstance(item, _CALLABLES) or _defined_in_notebook(item)):
            yield from _callables_inside(item, namespace, seen, depth - 1)


_CALLABLES = (types.FunctionType, types.MethodType, functools.partial)
_MAY_HOLD_CODE = (*_CALLABLES, type)  # a class as an item: whether it is the notebook's is its own


def _defined_in_notebook(value: Any) -> bool:
    cls = value if isinstance(value, type) else type(value)
    return getattr(cls, "__module__", None) == "__main__"


def globals_reached(names: Iterable[str], namespace: Mapping[str, Any]) -> tuple[set[str], bool]:
    """Global names that code reachable from ``names`` may read or write (transitively), and
    whether any of that code calls ``globals()``, ``exec`` or ``eval`` (then: everything)."""
    found: set[str] = set()
    wildcard = False
    seen_functions: set[int] = set()
    work = [n for n in names if n in namespace]
    visited_names: set[str] = set(work)
    while work:
        value = namespace.get(work.pop())
        for fn in _callables_inside(value, namespace):
            if id(fn) in seen_functions:
                continue
            seen_functions.add(id(fn))
            code_names: set[str] = set()
            _code_names(fn.__code__, code_names)
            if not wildcard and not code_names.isdisjoint(_WILDCARD_CALLS):
                wildcard = True
            for n in code_names:
                if n in namespace:
                    found.add(n)
                    if n not in visited_names:
                        visited_names.add(n)
                        work.append(n)
    return found, wildcard


# Calls whose effects reach outside the kernel: replaying a cell that makes them does it again.
_WRITING_METHODS = frozenset({"write", "writelines", "to_csv", "to_parquet", "to_excel", "to_json", "to_pickle", "to_sql", "savefig", "save", "dump", "unlink", "rmtree", "mkdir", "commit", "executemany", "sendall", "post"})
_SQL_WRITES = ("insert", "update", "delete", "create", "drop", "alter", "replace")


def side_effects(source: str) -> list[str]:
    """What a cell does outside the kernel that a replay would do again (a best guess from its
    syntax: files opened for writing, writing methods, SQL that changes data)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name == "open" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
            mode = node.args[1].value
            if isinstance(mode, str) and any(ch in mode for ch in "wax+"):
                found.append(f"open(..., {mode!r})")
        elif name == "execute" and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            if node.args[0].value.lstrip().lower().startswith(_SQL_WRITES):
                found.append(f"execute({node.args[0].value.split()[0].upper()} ...)")
        elif isinstance(func, ast.Attribute) and name in _WRITING_METHODS:
            found.append(f".{name}()")
    return sorted(set(found))
