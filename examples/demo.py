"""nbstate end to end: a small data-science notebook runs in a real kernel with nbstate loaded.

`make demo` runs this. It writes a notebook with nbformat into a fresh directory, starts an
IPython kernel there (as Jupyter's server does: in the notebook's directory, told the
notebook's path), runs the cells one by one, and then shows what nbstate recorded, what undo
and checkout do to the live variables, and the same history read offline by the `nbstate`
command. Everything printed comes from the kernel or the store; nothing is simulated.

    python examples/demo.py [--dir DIR]   (default: a new temporary directory, kept afterwards)
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager

CELLS = [
    "%load_ext nbstate",
    "import itertools\n\nimport numpy as np\nimport pandas as pd\n\nrng = np.random.default_rng(0)",
    "weather = pd.DataFrame({\n"
    '    "city": ["Oslo", "Lima", "Pune", "Oslo", "Lima", "Pune"],\n'
    '    "temp_c": rng.normal(18, 6, 6).round(1),\n'
    "})\n"
    "weather",
    "signal = rng.standard_normal(2_000_000)  # 16 MB: stored as 16 chunks of 1 MiB",
    'weather["temp_f"] = weather["temp_c"] * 9 / 5 + 32  # changes weather in place',
    "signal[:1000] = 0.0  # an in-place edit of one chunk: only that chunk is stored again",
    'def summarize(frame):\n    return frame.groupby("city")["temp_c"].mean().round(1)',
    "summary = summarize(weather)\nprint(summary.to_dict())",
    'sample_ids = (f"sample-{i}" for i in itertools.count())  # a generator: cannot be pickled',
]

# Looks at variables the way a variable inspector does: a silent execution, which makes no commit.
PROBE = (
    'print("signal[0] =", float(signal[0]), "| weather columns:", list(weather.columns), '
    '"| defined:", [n for n in ("summarize", "summary", "sample_ids") if n in globals()])'
)


def heading(title: str) -> None:
    print(f"\n{'=' * 78}\n {title}\n{'=' * 78}")


class DemoKernel:
    """An IPython kernel in ``directory``, serving the notebook at ``notebook``."""

    def __init__(self, directory: Path, notebook: Path) -> None:
        env = dict(os.environ)
        env.pop("NBSTATE_STORE", None)  # the store goes beside the notebook: ./.nbstate
        env["JPY_SESSION_NAME"] = str(notebook)  # what Jupyter's server tells a notebook's kernel
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(directory), env=env)
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, silent: bool = False, timeout: float = 60) -> tuple[int | None, list[dict], str | None]:
        """Execute ``code``; returns (execution count, nbformat outputs, error or None)."""
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent)
        outputs: list[dict] = []
        count = None
        error = None
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"the kernel did not answer within {timeout}s") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "execute_input":
                count = content["execution_count"]
            elif kind in ("stream", "execute_result", "display_data", "error"):
                outputs.append(nbformat.v4.output_from_msg(msg))
                if kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return count, outputs, error

    def ok(self, code: str, silent: bool = False) -> str:
        """Execute ``code``, which must succeed, and return what it printed or displayed."""
        _, outputs, error = self.run(code, silent=silent)
        if error is not None:
            raise RuntimeError(f"{code!r} failed in the kernel: {error}")
        return output_text(outputs)

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def output_text(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            parts.append(out["data"].get("text/plain", "") + "\n")
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}\n")
    return "".join(parts)


def write_notebook(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return nb


def run_notebook(kernel: DemoKernel, nb: nbformat.NotebookNode, path: Path) -> None:
    """Run every cell in order, as "Run All" would, and save the outputs into the notebook."""
    for cell in nb.cells:
        count, outputs, error = kernel.run(cell.source)
        cell.execution_count = count
        cell.outputs = outputs
        prompt = f"In [{count}]: "
        print(prompt + cell.source.replace("\n", "\n" + " " * len(prompt)))
        shown = output_text(outputs).rstrip()
        if shown:
            print(textwrap.indent(shown, "   "))
        if error is not None:
            raise RuntimeError(f"cell [{count}] failed: {error}")
        print()
    nbformat.write(nb, path)


def show_history(kernel: DemoKernel) -> None:
    heading("%nbstate log: one commit per cell, newest first")
    print(kernel.ok("%nbstate log"))
    heading("%nbstate status")
    print(kernel.ok("%nbstate status"))


def step_undo(kernel: DemoKernel) -> None:
    """Undo the last four cells: the variables go back (the in-place edits too), the code stays."""
    heading("%nbstate undo 4: the variables as they were before the last four cells")
    print("before: " + kernel.ok(PROBE, silent=True))
    print(kernel.ok("%nbstate undo 4"))
    print("after:  " + kernel.ok(PROBE, silent=True))


def step_branch(kernel: DemoKernel) -> None:
    """A cell run after an undo starts a branch; the newer history stays on main."""
    heading("A cell run after undo starts a branch")
    cell = 'weather["temp_k"] = weather["temp_c"] + 273.15'
    count, outputs, error = kernel.run(cell)
    if error is not None:
        raise RuntimeError(f"cell [{count}] failed: {error}")
    print(f"In [{count}]: {cell}\n")
    print(kernel.ok("%nbstate branch"))


def step_checkout(kernel: DemoKernel) -> None:
    """Back to the tip of main: changed variables are loaded, the generator is replayed."""
    heading("%nbstate checkout main: back to the newest state of main")
    print(kernel.ok("%nbstate checkout main"))
    print("now:    " + kernel.ok(PROBE, silent=True))
    print(kernel.ok("print(summary.to_dict(), next(sample_ids))", silent=True))


def step_migration(kernel: DemoKernel, directory: Path) -> None:
    """Export this state to one file and import it into a fresh kernel in another directory:
    the plan loads what is cheaper to ship and replays what cannot be shipped (the generator)."""
    heading("Live migration: %nbstate export, then %nbstate import in a fresh kernel elsewhere")
    bundle = directory / "weather-state.nbstate"
    print(kernel.ok(f"%nbstate export {bundle}"))
    before = kernel.ok(PROBE, silent=True)
    elsewhere = directory / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    for data in directory.glob("*.csv"):
        shutil.copy(data, elsewhere / data.name)  # what replayed cells read comes along
    fresh = DemoKernel(elsewhere, elsewhere / "weather.ipynb")
    try:
        fresh.ok("%load_ext nbstate")
        print(fresh.ok(f"%nbstate import {bundle} --plan-only"))
        print(fresh.ok(f"%nbstate import {bundle}"))
        after = fresh.ok(PROBE, silent=True)
        print(f"source kernel:      {before}")
        print(f"destination kernel: {after}")
        if after != before:
            raise RuntimeError("the imported state differs from the exported one")
    finally:
        fresh.shutdown()


def show_offline(directory: Path) -> None:
    nbstate = Path(sys.executable).parent / "nbstate"
    heading("The same history without a kernel: nbstate log --all --graph, nbstate status")
    for args in (["log", "--all", "--graph"], ["status"]):
        print(f"$ nbstate {' '.join(args)}")
        done = subprocess.run([str(nbstate), *args], cwd=directory, capture_output=True, text=True, timeout=60)
        print((done.stdout + done.stderr).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the notebook and its store")
    args = parser.parse_args(argv)
    directory = (args.dir or Path(tempfile.mkdtemp(prefix="nbstate-demo-"))).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "weather.ipynb"
    started = time.perf_counter()

    heading(f"A notebook, run cell by cell in a real kernel: {path}")
    nb = write_notebook(path)
    kernel = DemoKernel(directory, path)
    try:
        run_notebook(kernel, nb, path)
        show_history(kernel)
        step_undo(kernel)
        step_branch(kernel)
        step_checkout(kernel)
        step_migration(kernel, directory)
    finally:
        kernel.shutdown()
    show_offline(directory)

    heading("Done")
    print(f"{time.perf_counter() - started:.1f} s. The notebook and its store are in {directory}:")
    print(f"  {path.name} (with outputs), .nbstate/ (nbstate.sqlite and objects/)")
    nbstate = os.path.relpath(Path(sys.executable).parent / "nbstate")
    print(f"Look again with: {nbstate} log --all --store {directory / '.nbstate'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
