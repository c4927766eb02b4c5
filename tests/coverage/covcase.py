"""One row of the library coverage table: a class, how to make it, how to change it in place,
and how to tell two of its values apart.

A case runs in a real kernel with nbstate loaded, among the other cases of its library:

* ``setup`` (a cell of its own: imports and inputs that are not under test),
* ``create`` (the cell that makes the objects under test; the harness appends two aliases of
  the first name of ``names``, ``NAME_alias = NAME`` and ``NAME_box = [NAME]``),
* ``change`` (the cell that changes them in place: no name of ``names`` is bound again).

Then, for every name in ``names`` (default: the first name ``create`` binds):

* detect:  the commit of ``change`` lists the name as changed;
* undo:    after ``%nbstate undo`` the value equals the one ``create`` made;
* redo:    after ``%nbstate checkout`` of the change's commit it equals the changed one;
* migrate: after ``%nbstate export`` and ``%nbstate import`` into a fresh kernel in another
  directory it equals the changed one;

each time with the aliases (and the case's own ``same`` expressions, such as a view sharing
memory with its base) holding. The values to compare with are made by running ``setup``,
``create`` (and ``change``) again in a private namespace of the same kernel, which nbstate never
sees: so cases must be deterministic (seeded random numbers, no clocks).

``eq`` is the name of a function in covcompare.py, or a lambda over ``a`` and ``b`` evaluated
with the names ``setup`` imports (and covcompare's functions) in scope.

``known`` lists checks that fail for a reason that is understood, with that reason: the suite
then expects them to fail (and says so when they start to pass), and docs/COVERAGE.md shows it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

CHECKS = ("detect", "undo", "redo", "migrate")


@dataclass(frozen=True)
class Case:
    library: str  # the distribution whose version the table shows ("python" for the stdlib)
    cls: str  # the class under test, as users would name it
    setup: str
    create: str
    change: str
    eq: str | dict[str, str] = field(default="equal", hash=False)  # or one per name
    names: tuple[str, ...] = ()
    same: tuple[str, ...] = ()  # expressions that must hold after every restore
    known: dict[str, str] = field(default_factory=dict, hash=False)
    files: dict[str, str] = field(default_factory=dict, hash=False)  # data files beside the notebook
    group: str = ""  # the kernel it runs in (default: the library's)
    note: str = ""  # what the row shows, when the change is not to the class itself
    # Whether ``NAME_box`` (a list holding the value) must be recorded as changed too: not for
    # a class that the namespace names, which the list holds as a reference to that name.
    box_changes: bool = True

    @property
    def primary(self) -> str:
        return self.names[0] if self.names else bound_names(self.create)[0]

    @property
    def checked(self) -> tuple[str, ...]:
        return self.names or (self.primary,)

    @property
    def id(self) -> str:
        return f"{self.library}:{self.cls}"

    @property
    def kernel_group(self) -> str:
        return self.group or self.library

    def create_cell(self) -> str:
        p = self.primary
        return f"{self.create.rstrip()}\n{p}_alias = {p}\n{p}_box = [{p}]\n"

    def invariants(self) -> tuple[str, ...]:
        p = self.primary
        return (f"{p}_alias is {p}", f"{p}_box[0] is {p}", *self.same)


def bound_names(code: str) -> list[str]:
    """The names the top-level statements of ``code`` bind, in order."""
    found: list[str] = []

    def add(target: ast.AST) -> None:
        if isinstance(target, ast.Name):
            if target.id not in found:
                found.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                add(t)

    for stmt in ast.parse(code).body:
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                add(t)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            add(stmt.target)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if stmt.name not in found:
                found.append(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for a in stmt.names:
                n = a.asname or a.name.split(".")[0]
                if n not in found:
                    found.append(n)
    return found
