"""Run every benchmark module in bench/ (those that define BENCHMARK and main), in name order.

    .venv/bin/python -m bench.run            # full runs (make bench)
    .venv/bin/python -m bench.run --quick    # smoke runs (make bench-quick)
    .venv/bin/python -m bench.run overhead   # only the named benchmarks

Afterwards bench/results/latest.json gathers every benchmark's newest full-run results: one
record per workload x system x metric, with the machine, the versions and the date of the run
that produced it (each benchmark's own JSON file holds the raw samples).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import bench


def benchmarks() -> dict[str, ModuleType]:
    found = {}
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda i: i.name):
        if info.name == "run":
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if hasattr(module, "BENCHMARK") and callable(getattr(module, "main", None)):
            found[info.name] = module
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description="Run nbstate's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="smaller, faster runs (results marked quick)")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)
    available = benchmarks()
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")
    exe = Path(sys.executable)
    try:
        shown = str(exe.relative_to(Path.cwd()))
    except ValueError:
        shown = str(exe)
    invoked_as = " ".join([shown, "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)])
    failed = []
    for name in args.names or list(available):
        module = available[name]
        print(f"=== {name}: {module.BENCHMARK} ===", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            code = module.main(["--quick"] if args.quick else [], invoked_as=invoked_as)
        except Exception:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            code = 1
        print(f"=== {name}: done in {time.perf_counter() - started:.0f}s (exit {code}) ===", file=sys.stderr, flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    if not args.quick:
        write_latest(available)
    return 1 if failed else 0


# The full-run results file of each benchmark that has one.
RESULT_FILES = {"overhead": "overhead.json", "storage": "storage.json", "peers": "peers.json", "timetravel": "timetravel.json",
                "migration": "migration.json", "memory": "memory.json", "longsession": "longsession.json"}


def write_latest(available: dict[str, ModuleType]) -> Path:
    """bench/results/latest.json from the full-run results on disk."""
    from bench.overhead import RESULTS_DIR

    runs, records = [], []
    for name, filename in RESULT_FILES.items():
        path = RESULTS_DIR / filename
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        machine = result.get("machine", {})
        run = {"benchmark": name, "file": f"bench/results/{filename}", "command": result.get("command"),
               "date": result.get("date") or machine.get("date"), "machine": machine, "versions": result.get("versions")}
        runs.append(run)
        module = available.get(name)
        found = module.records(result) if module is not None and hasattr(module, "records") else result.get("records", [])
        for r in found:
            records.append({"benchmark": name, "date": run["date"], "nbstate": machine.get("git_commit"), **r})
    out = RESULTS_DIR / "latest.json"
    out.write_text(json.dumps({"runs": runs, "records": records}, indent=1) + "\n")
    print(f"wrote {out} ({len(records)} records from {len(runs)} benchmarks)", file=sys.stderr)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
