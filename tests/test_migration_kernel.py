"""Live migration between real kernels: export from one, import into a fresh one elsewhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SESSION = [
    "import numpy as np\nimport pandas as pd\narr = np.arange(100_000, dtype='float64')\nview_holder = {'a': arr}",
    "df = pd.DataFrame({'x': range(1000), 'y': [i * 0.5 for i in range(1000)]})\ndf['z'] = df.x * 2",
    "items = [1, 2, 3]\nsame = items\nnested = [items, {'k': items}]",
    "def scale(v, k=3):\n    return v * k + offset\noffset = 10",
    "arr[5] = -1.0\nitems.append(4)",
]


def state_summary(kernel):
    return kernel.value(
        "[arr.sum().item(), float(arr[5]), view_holder['a'] is arr, df.z.sum().item(), list(df.columns), "
        "items, same is items, nested[0] is items, nested[1]['k'] is items, scale(2)]"
    )


def exported_session(start_kernel, tmp_path):
    """SESSION run in a kernel in ./a and exported to ./bundle, and a fresh kernel in ./b;
    returns (the state's summary in a, the bundle, kernel b)."""
    (tmp_path / "a").mkdir()
    a = start_kernel(tmp_path / "a")
    for cell in SESSION:
        a.ok(cell)
    expected = state_summary(a)
    a.ok(f"%nbstate export {tmp_path / 'bundle'}")
    (tmp_path / "b").mkdir()
    return expected, tmp_path / "bundle", start_kernel(tmp_path / "b")


def cli_succeeds(store: Path, *verbs: list[str]) -> None:
    """Run each nbstate verb on ``store`` from the command line; each must exit 0."""
    nbstate = Path(sys.executable).with_name("nbstate")
    for verb in verbs:
        done = subprocess.run([str(nbstate), *verb, "--store", str(store)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dest_name", ["bundle_dir", "state.nbstate"])
def test_export_then_import_into_a_fresh_kernel_elsewhere(start_kernel, tmp_path, dest_name):
    a = start_kernel(tmp_path / "a") if (tmp_path / "a").mkdir() is None else None
    for cell in SESSION:
        a.ok(cell)
    expected = state_summary(a)
    dest = tmp_path / dest_name
    out = a.ok(f"%nbstate export {dest}").stdout
    assert "exported" in out
    assert a.value("__import__('gc').isenabled()") is True  # off during the export only
    (tmp_path / "b").mkdir()
    b = start_kernel(tmp_path / "b")
    r = b.ok(f"%nbstate import {dest}")
    assert "now at branch imported" in r.stdout
    assert state_summary(b) == expected
    assert b.value("scale.__globals__ is globals()") is True
    if dest.is_dir():  # the bundle's packs, signed and on this file system, were linked, not copied
        bundle_packs = {p.stat().st_ino for p in dest.rglob("pack-*.pack")}
        assert bundle_packs & {p.stat().st_ino for p in (tmp_path / "b").rglob("pack-*.pack")}
        shutil.rmtree(dest)  # the store's link keeps the bytes
        cli_succeeds(tmp_path / "b" / ".nbstate", ["gc", "--keep-days", "0"], ["fsck"])
    # time travel goes on in the new kernel: its history holds the imported commits
    b.ok("items.append(5)")
    b.ok("%nbstate undo")
    assert b.value("items") == [1, 2, 3, 4]


def test_unserializable_objects_migrate_by_replay_and_say_so(start_kernel, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "lines.txt").write_text("alpha\nbeta\ngamma\n")
    a = start_kernel(tmp_path / "a")
    a.ok("import threading, sqlite3\nnums = [1, 2, 3]\ngen = (n * 10 for n in nums)\nfirst = next(gen)")
    a.ok("table = {'bump': 1}")
    # Replayed for its lock and file, this cell also defines a function and a class, and reads
    # a value that is loaded for it (and is a target too)
    a.ok(
        "lock = threading.Lock()\nfh = open('lines.txt')\nhead = fh.readline()\nbump = table['bump']\n"
        "def count():\n    return len(nums) + bump\nclass Box:\n    def size(self):\n        return bump\nbox = Box()"
    )
    a.ok("con = sqlite3.connect(':memory:')\ncon.execute('create table t (v)')\ncon.execute('insert into t values (42)')")
    # The collector is off through the import, but on while its cells replay (they may make garbage).
    a.ok("import gc\nprobe = [gc.isenabled(), threading.Lock()]  # a lock: replayed")
    dest = tmp_path / "bundle"
    a.ok(f"%nbstate export {dest}")
    b = start_kernel(tmp_path / "b")
    plan = b.ok(f"%nbstate import {dest} --plan-only").stdout
    assert "replay:" in plan
    assert b.value("sorted(k for k in globals() if not k.startswith('_') and k not in ('In', 'Out', 'exit', 'quit', 'get_ipython', 'open'))") == []
    r = b.ok(f"%nbstate import {dest}")
    assert "replayed" in r.stdout and "another value" not in r.stdout and "differs" not in r.stdout, r.stdout
    assert b.value("[first, next(gen), head, fh.readline(), type(lock).__name__, con.execute('select v from t').fetchone()[0]]") == [
        10, 20, "alpha\n", "beta\n", "lock", 42,
    ]
    assert b.value("[probe[0], gc.isenabled()]") == [True, True]
    # the function and the class made by the replayed cell came as bytes, bound to this namespace
    loaded = r.stdout.split("loaded ", 1)[1].split(";")[0].split(", ")
    assert {"table", "count", "Box", "box"} <= set(loaded), r.stdout
    b.ok("bump = 7")
    assert b.value("[count(), count.__globals__ is globals(), type(box) is Box, box.size(), table]") == [10, True, True, 7, {"bump": 1}]


def test_import_says_what_is_missing_before_touching_anything(start_kernel, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "input.txt").write_text("data")
    a = start_kernel(tmp_path / "a")
    a.ok("fh = open('input.txt')")
    dest = tmp_path / "bundle"
    a.ok(f"%nbstate export {dest}")
    b = start_kernel(tmp_path / "b")
    b.ok("mine = 1")
    r = b.run(f"%nbstate import {dest}")
    assert "input.txt" in r.stderr and "copy them" in r.stderr
    assert b.value("mine") == 1
    r = b.run(f"%nbstate import {tmp_path / 'nothing-here'}")
    assert "no nbstate bundle" in r.stderr


def test_cli_exports_offline_and_imports_into_a_running_kernel(start_kernel, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    nbstate = str(Path(sys.executable).with_name("nbstate"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("x = {'v': [1, 2]}")
    a.ok("x['v'].append(3)")
    dest = tmp_path / "out.nbstate"
    r = subprocess.run([nbstate, "export", "--store", str(tmp_path / "a" / ".nbstate"), "--ref", "HEAD~1", str(dest)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    b = start_kernel(tmp_path / "b")
    r = subprocess.run([nbstate, "import", str(dest), "--kernel", b.km.connection_file], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert b.value("x") == {"v": [1, 2]}
    shutil.rmtree(tmp_path / "a" / ".nbstate")


def test_replay_brings_back_values_a_cell_joined_to_older_ones(start_kernel, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("import functools, sqlite3\ngen = (i * 2 for i in range(10))\nnext(gen)")
    a.ok("holder = [gen]")  # one co-variable {gen, holder}, made by a cell that did not make gen
    a.ok("con = sqlite3.connect(':memory:')\nsq = functools.lru_cache(maxsize=None)(lambda k: k * k)")
    groups = a.value("{n: sorted(cv.names) for n, cv in __import__('nbstate').recorder_of(get_ipython()).tracker.by_name.items()}")
    assert groups["holder"] == ["gen", "holder"]
    assert groups["con"] == ["con"] and groups["sq"] == ["sq"]  # a shared lru_cache sentinel is no link
    a.ok(f"%nbstate export {tmp_path / 'bundle'}")
    b = start_kernel(tmp_path / "b")
    b.ok(f"%nbstate import {tmp_path / 'bundle'}")
    assert b.value("[holder[0] is gen, next(gen), sq(7)]") == [True, 2, 49]


def test_a_bundle_for_a_slow_link_ships_what_its_plan_loads_and_the_import_replays_the_rest(start_kernel, tmp_path):
    """With --bandwidth, the exporter's plan replays what is cheaper to recompute than to send, and
    the bundle holds only the bytes of what it loads. The importer, reading from a local disk,
    would rather load those values: it must see that their bytes are not there, and replay."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("import numpy as np\nbase = np.random.default_rng(0).random(2_000_000)")  # 16 MB, quick to make
    a.ok("derived = np.sort(base)")
    a.ok("derived[0] = -1.0\nsmall = {'first': float(derived[1])}")
    expected = a.value("[float(base.sum()), float(derived.sum()), small]")
    dest = tmp_path / "slow-link"
    said = a.ok(f"%nbstate export {dest} --bandwidth 1MB/s").stdout
    assert " 0 cell(s) to replay" not in said
    shipped = sum(p.stat().st_size for p in dest.rglob("*.pack"))
    assert shipped < 1_000_000  # neither array's bytes were sent
    b = start_kernel(tmp_path / "b")
    r = b.ok(f"%nbstate import {dest}")
    assert "missing" not in r.stdout + r.stderr and "used another way" not in r.stdout, r.stdout
    assert "replayed" in r.stdout and "derived" in r.stdout.split("replayed", 1)[1]
    assert b.value("[float(base.sum()), float(derived.sum()), small]") == expected
    # The replayed array's objects are known from the check of its fingerprint: an alias joins it.
    b.ok("alias = derived")
    b.ok("alias[1] = -2.0")
    assert b.log()[0]["changed"] == ["alias", "derived"]
    b.ok("del alias\nderived[1] = float(np.sort(base)[1])")
    expected = b.value("[float(base.sum()), float(derived.sum()), small]")
    # The store knows those values' bytes never came: fsck finds nothing lost, and gc keeps the
    # cells that rebuild them, however little history it is told to keep.
    cli_succeeds(tmp_path / "b" / ".nbstate", ["fsck"], ["gc", "--keep-last", "0", "--keep-days", "0"], ["fsck"])
    b.ok("base = None\nderived = None")
    r = b.ok("%nbstate undo")
    assert "used another way" not in r.stdout and "cannot" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert b.value("[float(base.sum()), float(derived.sum()), small]") == expected


def test_the_import_follows_the_plan_it_shows_without_measuring_the_new_store(start_kernel, tmp_path):
    # The plan is made with the read rate of the bundle (the default for a store nobody wrote
    # here); the restore plans with the same rate, rather than reading blobs just copied.
    expected, bundle, b = exported_session(start_kernel, tmp_path)
    shown = b.ok(f"%nbstate import {bundle} --plan-only").stdout
    # The shown estimate compares itself with rerunning every recorded cell (pruning the plan's
    # graph does not hide them), and says what it cannot know: the imports a load sets off.
    m = re.search(r"estimated restore time ([\d.]+) s \(load everything: ([\d.]+) s, replay everything: ([\d.]+) s\)", shown)
    assert m is not None, shown
    uri = (bundle / "nbstate.sqlite").as_uri() + "?mode=ro&immutable=1"  # (a signed bundle: not a byte changed)
    recorded = b.value(f"[r[0] for r in __import__('sqlite3').connect({uri!r}, uri=True).execute('SELECT duration FROM cell_runs')]")
    assert float(m.group(3)) >= sum(recorded) - 0.01 and float(m.group(1)) <= float(m.group(3))
    assert "the estimate leaves out importing numpy, pandas (not imported here yet)" in shown
    loads = sorted(shown.split("load:", 1)[1].splitlines()[0].replace(",", " ").split())
    r = b.ok(f"%nbstate import {bundle}")
    assert "loaded " + ", ".join(loads) + ";" in r.stdout  # every variable, as the plan said
    assert state_summary(b) == expected
    rate = b.value("__import__('sqlite3').connect('.nbstate/nbstate.sqlite').execute(\"SELECT value FROM meta WHERE key='read_rate'\").fetchall()")
    assert rate == []


def test_functions_brought_by_an_import_keep_their_global_rebinds_seen(start_kernel, tmp_path):
    # After an import no cell of the new session defined `bump`: that it rebinds `counter` is
    # learned from its code, so a cell that runs it without naming it still records the change.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("counter = 0\ndef bump(*args):\n    global counter\n    counter += 1")
    a.ok(f"%nbstate export {tmp_path / 'bundle'}")
    b = start_kernel(tmp_path / "b")
    b.ok(f"%nbstate import {tmp_path / 'bundle'}")
    b.ok("get_ipython().events.register('post_execute', bump)")
    b.ok("x = 1")
    entry = b.log()[0]
    assert entry["created"] == ["x"] and entry["changed"] == ["counter"]


def test_values_drawn_from_a_global_random_generator_travel_as_bytes_even_over_a_slow_link(start_kernel, tmp_path):
    """A cell that draws from a global generator (np.random.rand, random.random) gives other
    values when replayed elsewhere: the bundle ships what it made and the import loads it,
    however cheap the cell is to run again. Cells that draw from no global generator are still
    replayed where that is cheaper."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("import random\nimport numpy as np")
    a.ok("noise = np.random.rand(2_000_000)")  # 16 MB: at 1 MB/s, replaying looks far cheaper
    a.ok("picks = [random.random() for _ in range(3)]")
    a.ok("seeded = np.random.default_rng(7).random(2_000_000)")  # its own seeded generator
    a.ok("total = float(noise.sum() + seeded.sum())")
    drawn = a.value(
        "[__import__('json').loads(r[0]) if r[0] else None for r in __import__('sqlite3').connect('.nbstate/nbstate.sqlite')"
        ".execute('SELECT randomness FROM cell_runs ORDER BY id')][-5:]"
    )
    assert drawn == [None, ["numpy"], ["random"], None, None]  # the cells above, in order
    expected = a.value("[float(noise.sum()), picks, float(seeded.sum()), total]")
    dest = tmp_path / "slow-link"
    a.ok(f"%nbstate export {dest} --bandwidth 1MB/s")
    b = start_kernel(tmp_path / "b")
    plan = b.ok(f"%nbstate import {dest} --plan-only").stdout
    assert "seeded" in plan.split("replay:", 1)[1]  # recomputed: cheaper than 16 MB at 1 MB/s
    r = b.ok(f"%nbstate import {dest}")
    assert "differs" not in r.stdout and "nondeterministic" not in r.stdout, r.stdout
    assert "noise" in r.stdout.split("loaded", 1)[1].split(";")[0]
    assert b.value("[float(noise.sum()), picks, float(seeded.sum()), total]") == expected


def test_a_value_only_a_cell_that_drew_random_numbers_can_rebuild_is_still_replayed_and_said_so(start_kernel, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("import numpy as np")
    a.ok("draws = (float(v) for v in np.random.rand(3))")  # a generator: it cannot be stored
    a.ok("kept = [1, 2]")
    dest = tmp_path / "bundle"
    a.ok(f"%nbstate export {dest}")
    b = start_kernel(tmp_path / "b")
    r = b.ok(f"%nbstate import {dest}")
    assert "replayed draws" in r.stdout, r.stdout
    assert b.value("[len(list(draws)), kept]") == [3, [1, 2]]


def test_an_import_never_replays_a_cell_that_needs_a_file_missing_here(start_kernel, tmp_path):
    # Quick to replay and 8 MB to load: where the file is, the plan would replay the cell. Here
    # the file is missing, so the plan shown loads it, and the restore follows that plan rather
    # than trying the replay first and falling back.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "input.txt").write_text("data")
    a = start_kernel(tmp_path / "a")
    a.ok("big = open('input.txt').read() * 20_000_000")
    a.ok(f"%nbstate export {tmp_path / 'bundle'} --history")
    where_file_is = a.ok(f"%nbstate import {tmp_path / 'bundle'} --plan-only").stdout
    assert "replay: 1 cell(s)" in where_file_is and "load:" not in where_file_is, where_file_is
    b = start_kernel(tmp_path / "b")
    shown = b.ok(f"%nbstate import {tmp_path / 'bundle'} --plan-only").stdout
    assert re.search(r"load:\s+big", shown) and "replay:" not in shown, shown
    r = b.ok(f"%nbstate import {tmp_path / 'bundle'}")
    assert "loaded big" in r.stdout and "used another way" not in r.stdout and "replayed" not in r.stdout, r.stdout
    assert b.value("len(big)") == 80_000_000


def test_the_lab_imports_a_bundle_through_the_kernel_api(start_kernel, tmp_path):
    # What the JupyterLab extension's import runs in the kernel: one silent call of kernelapi.
    expected, bundle, b = exported_session(start_kernel, tmp_path)
    request = json.dumps({"verb": "import", "args": {"src": str(bundle)}})
    r = b.run(f"print(__import__('nbstate.kernelapi').kernelapi.call({request!r}))", silent=True)
    reply = json.loads(r.stdout.strip().splitlines()[-1])
    assert reply["ok"], reply
    assert "now at branch imported" in reply["result"]["summary"]
    assert state_summary(b) == expected
