"""Runs coverage cases in real kernels: many cases per kernel, groups of cases in parallel.

Per group, one kernel (in ``WORK/a``) runs every case in turn: setup, create, change; the
change's commit must list the case's names; undo, then checkout of the change's commit, each
followed by a comparison with the reference values (see covcase.py). Then one cell that only
reads every case's names must record none of them as changed (``stable``). Finally the state is
exported and imported into a fresh kernel in ``WORK/b``, where each case's values are compared
with the changed ones, and read once more.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # kernels.py
sys.path.insert(0, str(HERE))

from covcase import CHECKS, Case, bound_names  # noqa: E402
from kernels import Kernel  # noqa: E402

ALL_CHECKS = (*CHECKS, "stable")


@dataclass
class CaseResult:
    id: str
    passed: dict[str, bool | None] = field(default_factory=lambda: dict.fromkeys(ALL_CHECKS))
    reasons: dict[str, str] = field(default_factory=dict)
    broken: str | None = None  # the case itself could not be run as written
    replayed: str | None = None  # why nbstate stores it by replay (not serializable), if it does
    seconds: float = 0.0

    def fail(self, check: str, reason: str) -> None:
        self.passed[check] = False
        self.reasons[check] = _clip(reason)

    def ok(self, check: str) -> None:
        self.passed[check] = True


def _clip(text: str, n: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def kernel_env() -> dict[str, str]:
    return {
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DEDUP_LOGS": "0",
        "TQDM_DISABLE": "1",
    }


class _Session:
    """One kernel with the kernel-side helpers imported."""

    def __init__(self, cwd: Path) -> None:
        self.k = Kernel(cwd, env=kernel_env())
        self.k.inside(f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport covruntime\nresult = None")

    def call(self, expr: str):
        return self.k.inside(f"import covruntime\nresult = {expr}")

    def prepare(self, case: Case, which: tuple[str, ...] = ("before", "after")) -> str | None:
        return self.call(f"covruntime.prepare({case.id!r}, {case.setup!r}, {case.create!r}, {case.change!r}, {which!r})")

    def check(self, case: Case, which: str) -> list[str]:
        eq = case.eq if isinstance(case.eq, str) else dict(case.eq)
        return self.call(f"covruntime.check({case.id!r}, {which!r}, {list(case.checked)!r}, {eq!r}, {list(case.invariants())!r})")

    def alive(self) -> bool:
        return self.k.km.is_alive()

    def shutdown(self) -> None:
        try:
            self.k.shutdown()
        except Exception:  # noqa: BLE001
            pass


def _failed(r) -> str | None:
    """A cell's error, or the UsageError a %nbstate magic printed (IPython shows those as text)."""
    if r.error:
        return r.error
    for line in (r.stderr or "").splitlines():
        if line.startswith("UsageError:"):
            return line
    return None


def _nbstate_warnings(r) -> str:
    return " ".join(ln for ln in (r.stderr or "").splitlines() if "nbstate" in ln)


def _run_case(s: _Session, case: Case, res: CaseResult) -> str | None:
    """Runs one case in the group's kernel; returns the change's commit (None if not reached)."""
    k = s.k
    # The private copies first: the setup cell then seeds global generators for the real run.
    err = s.prepare(case)
    if err:
        res.broken = err
        return None
    r = k.run(case.setup)
    if r.error:
        res.broken = f"setup failed: {r.error}"
        return None
    r = k.run(case.create_cell())
    if r.error:
        res.broken = f"create failed: {r.error}"
        return None
    problems = s.check(case, "before")
    if problems:
        res.broken = "the created value differs from its private copy (not deterministic?): " + "; ".join(problems)
        return None
    same = s.call(f"covruntime.distinct({case.id!r}, {list(case.checked)!r}, {case.eq if isinstance(case.eq, str) else dict(case.eq)!r})")
    if same:
        res.broken = f"the comparison does not tell the change apart for {same}"
        return None
    r = k.run(case.change)
    if r.error:
        res.broken = f"change failed: {r.error}"
        return None
    entry = k.log()[0]
    after_commit = entry["commit"]
    expected = set(case.checked) | {f"{case.primary}_alias"} | ({f"{case.primary}_box"} if case.box_changes else set())
    missing = sorted(expected - set(entry["changed"]))
    warn = _nbstate_warnings(r)
    if missing:
        res.fail("detect", f"the change's commit does not list {', '.join(missing)} as changed" + (f" ({warn})" if warn else ""))
    else:
        res.ok("detect")
    problems = s.check(case, "after")
    if problems:
        res.broken = "the changed value differs from its private copy (not deterministic?): " + "; ".join(problems)
        return None
    unser = s.call("covruntime.unserializable()")
    reasons = sorted({unser[n] for n in case.checked if n in unser})
    res.replayed = "; ".join(reasons) or None

    _move(s, case, res, "undo", "%nbstate undo", "before")
    _move(s, case, res, "redo", f"%nbstate checkout {after_commit}", "after")
    if res.passed["redo"] is False and not s.check(case, "before"):
        # Restore failed and left the earlier value: make the change again, for migration.
        k.run(case.change)
    return after_commit


def _move(s: _Session, case: Case, res: CaseResult, check: str, line: str, which: str) -> None:
    """Run an undo or checkout magic, then compare the case's values with its ``which`` ones."""
    r = s.k.run(line)
    if _failed(r):
        res.fail(check, f"{' '.join(line.split()[:2])} failed: {_failed(r)}")
        return
    problems = s.check(case, which)
    if problems:
        res.fail(check, "; ".join(problems) + (f" [{r.stdout.strip()}]" if r.stdout.strip() else ""))
    else:
        res.ok(check)


def _read_only_cell(names: list[str]) -> str:
    return "(" + ", ".join(names) + ",) and None\n" if names else "None\n"


def _stable(s: _Session, cases: list[Case], results: dict[str, CaseResult], where: str) -> None:
    """One cell that only reads the cases' names: serializable ones must not be recorded again."""
    # (what the first kernel found it could not pickle: a checkout does not say so again)
    unser = {n for c in cases if results[c.id].replayed for n in c.checked}
    todo = [c for c in cases if results[c.id].broken is None]
    names = [n for c in todo for n in c.checked if n not in unser]
    r = s.k.run(_read_only_cell(names))
    if r.error:
        for c in todo:
            results[c.id].fail("stable", f"the read-only cell failed in {where}: {r.error}")
        return
    entry = s.k.log()[0]
    changed = set(entry["changed"])
    if os.environ.get("NBSTATE_COVERAGE_DEBUG"):
        print("stable", where, entry["first_line"][:80], "changed:", sorted(changed), flush=True)
        print("groups", s.k.inside("result = sorted({tuple(sorted(cv.names)) for cv in rec.tracker.by_name.values() if len(cv.names) > 3})"), flush=True)
    for c in todo:
        res = results[c.id]
        if all(n in unser for n in c.checked):
            continue  # replayed values: every look records them anew (stable stays None)
        moved = sorted(n for n in c.checked if n in changed and n not in unser)
        if moved:
            res.fail("stable", f"a cell that only reads {', '.join(moved)} recorded a new version ({where})")
        elif res.passed["stable"] is not False:
            res.ok("stable")


def _names_in(text: str, cases: Iterable[Case]) -> list[Case]:
    return [c for c in cases if any(re.search(rf"\b{re.escape(n)}\b", text) for n in (*c.checked, *bound_names(c.create)))]


def run_group(cases: list[Case], work: Path, progress: Callable[[str], None] | None = None) -> dict[str, CaseResult]:
    """Run ``cases`` in one kernel (plus fresh ones for migration) under ``work``."""
    say = progress or (lambda _m: None)
    results = {c.id: CaseResult(c.id) for c in cases}
    a_dir, b_dir = work / "a", work / "b"
    for d in (a_dir, b_dir):
        d.mkdir(parents=True, exist_ok=True)
        for c in cases:
            for name, text in c.files.items():
                (d / name).write_text(text)
    s = _Session(a_dir)
    done: list[Case] = []
    try:
        for case in cases:
            t0 = time.perf_counter()
            res = results[case.id]
            try:
                _run_case(s, case, res)
            except Exception as exc:  # noqa: BLE001 - a dead or stuck kernel
                res.broken = f"the harness failed: {type(exc).__name__}: {exc}"
                if not s.alive():
                    s.shutdown()
                    say(f"{case.id}: kernel died; starting another")
                    s = _Session(a_dir)
                    continue
            res.seconds = time.perf_counter() - t0
            if res.broken is None:
                done.append(case)
            say(f"{case.id}: {res.passed} {res.broken or ''}")
        _drop(s, [c for c in cases if results[c.id].broken is not None])
        _stable(s, done, results, "the kernel that made it")
        _migrate(s, done, results, work, say)
    finally:
        s.shutdown()
    return results


def _migrate(s: _Session, cases: list[Case], results: dict[str, CaseResult], work: Path, say) -> None:
    left = list(cases)
    for attempt in range(4):
        if not left:
            return
        dest = work / f"bundle{attempt}"
        r = s.k.run(f"%nbstate export {dest}")
        say(f"export: {r.stdout.strip()} {r.stderr.strip()} {r.error or ''}")
        err = _failed(r)
        if err:
            left = _set_aside(s, left, results, f"export failed: {err}")
            continue
        b_dir = work / f"b{attempt}"
        shutil.copytree(work / "b", b_dir, dirs_exist_ok=True)
        b = _Session(b_dir)
        try:
            r = b.k.run(f"%nbstate import {dest}")
            say(f"import: {r.stdout.strip()} {r.stderr.strip()} {r.error or ''}")
            err = _failed(r)
            if err:
                left = _set_aside(s, left, results, f"import failed: {err}")
                continue
            for c in left:
                res = results[c.id]
                err = b.prepare(c, ("after",))
                if err:
                    res.fail("migrate", err)
                    continue
                problems = b.check(c, "after")
                if problems:
                    res.fail("migrate", "; ".join(problems))
                else:
                    res.ok("migrate")
            _stable(b, left, results, "the kernel it was imported into")
            return
        finally:
            b.shutdown()


def _set_aside(s: _Session, left: list[Case], results: dict[str, CaseResult], why: str) -> list[Case]:
    """Fail migration for the cases an export or import error names (all of them when it names
    none), remove them from the source kernel, and return the others, to be tried again."""
    culprits = _names_in(why, left) or left
    for c in culprits:
        results[c.id].fail("migrate", why)
    _drop(s, culprits)
    return [c for c in left if c not in culprits]


def _drop(s: _Session, cases: list[Case]) -> None:
    """Remove cases that cannot migrate from the source kernel, so the others can be tried."""
    names = sorted({n for c in cases for n in (*c.checked, c.primary, f"{c.primary}_alias", f"{c.primary}_box")})
    s.k.run("\n".join(f"try:\n    del {n}\nexcept NameError:\n    pass" for n in names))


def run_all(cases: list[Case], work: Path, jobs: int = 2, progress: Callable[[str], None] | None = None) -> dict[str, CaseResult]:
    """Every case, one kernel per group, ``jobs`` groups at a time (largest first)."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.kernel_group, []).append(c)
    order = sorted(groups, key=lambda g: -len(groups[g]))
    results: dict[str, CaseResult] = {}

    def one(g: str) -> dict[str, CaseResult]:
        t0 = time.perf_counter()
        try:
            out = run_group(groups[g], work / re.sub(r"\W", "_", g), progress)
        except Exception as exc:  # noqa: BLE001
            out = {c.id: CaseResult(c.id, broken=f"the group failed: {exc!r} {traceback.format_exc(limit=3)}") for c in groups[g]}
        if progress:
            progress(f"group {g}: {len(groups[g])} cases in {time.perf_counter() - t0:.1f} s")
        return out

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for out in pool.map(one, order):
            results.update(out)
    return results


def save(results: dict[str, CaseResult], path: Path) -> None:
    path.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=1))


def load(path: Path) -> dict[str, CaseResult]:
    return {k: CaseResult(**v) for k, v in json.loads(path.read_text()).items()}


os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
