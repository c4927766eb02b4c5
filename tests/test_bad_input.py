"""Bad input gets a clear message saying what to do, and leaves the session and the store as they
were: unknown and ambiguous refs, malformed store paths and URLs, bundles from a newer format or
another Python, damaged bundles, IPython's own names, cells that empty globals() or call %reset."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_security import resign

from nbstate import trust

NBSTATE = str(Path(sys.executable).with_name("nbstate"))


def snapshot(kernel) -> tuple:
    """What must not change: the user's names and values, HEAD, the branches and the commits."""
    names = kernel.inside("result = sorted(rec.user_names())")
    state = kernel.inside("result = {n: repr(ns[n]) for n in sorted(rec.user_names())}")
    status = json.loads(kernel.ok("%nbstate status --json").stdout)
    log = [e["commit"] for e in json.loads(kernel.ok("%nbstate log --all --json").stdout)]
    return names, state, status["head"], status["branch"], kernel.ok("%nbstate branch").stdout, log


def usage_error(kernel, line: str, *words: str) -> str:
    r = kernel.run(line)
    assert r.error is None or "UsageError" in (r.error or ""), r.error
    assert "UsageError" in r.stderr and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (line, w, r.stderr)
    return r.stderr


def test_refs_and_counts_that_name_nothing(kernel):
    kernel.ok("a = [1]")
    kernel.ok("b = {'k': 2}")
    head = json.loads(kernel.ok("%nbstate status --json").stdout)["head"]
    # A second commit whose id starts like HEAD's (as two real ids may): its prefix is ambiguous.
    kernel.inside(
        "db = rec.store.db\n"
        f"row = list(db.execute('SELECT * FROM commits WHERE id=?', ({head!r},)).fetchone())\n"
        f"row[0] = {head[:8]!r} + 'f' * 32\n"
        "row[-1] = row[-1] + 1000\n"
        "db.execute('INSERT INTO commits VALUES (' + ','.join('?' * len(row)) + ')', row)"
    )
    before = snapshot(kernel)
    usage_error(kernel, "%nbstate checkout nope", "unknown ref", "log --all")
    usage_error(kernel, f"%nbstate checkout {head[:6]}", "ambiguous", "more digits")
    usage_error(kernel, "%nbstate checkout HEAD~50", "goes back past")
    usage_error(kernel, "%nbstate checkout @{-1}", "moved only 0")
    usage_error(kernel, "%nbstate checkout @{-0}", "@{-1}")
    usage_error(kernel, "%nbstate undo 0", "positive")
    usage_error(kernel, "%nbstate undo -2", "positive")
    usage_error(kernel, "%nbstate undo 99", "cannot undo 99")
    usage_error(kernel, "%nbstate log -n 0", "positive")
    usage_error(kernel, "%nbstate diff nope", "unknown ref")
    usage_error(kernel, "%nbstate branch HEAD", "not a valid name")
    usage_error(kernel, "%nbstate tag deadbeef", "looks like a commit id")
    usage_error(kernel, "%nbstate checkout", "the following arguments are required: ref")
    assert snapshot(kernel) == before
    done = subprocess.run([NBSTATE, "show", "nope"], cwd=kernel.cwd, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown ref" in done.stderr and "Traceback" not in done.stderr


def test_store_locations_and_urls_that_cannot_work(kernel, tmp_path):
    kernel.ok("a = [1, 2]")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a store")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    before = snapshot(kernel)
    usage_error(kernel, f"%nbstate init --store {a_file}", "is not a directory", "Still recording into")
    usage_error(kernel, "%nbstate export s3:/bucket/prefix", "two slashes")
    usage_error(kernel, "%nbstate export nosuchscheme://bucket/x", "does not know the scheme")
    usage_error(kernel, "%nbstate export ''", "no location given")
    usage_error(kernel, f"%nbstate export {tmp_path / 'full'}", "not empty")
    usage_error(kernel, "%nbstate export out --bandwidth fast", "100MB/s")
    usage_error(kernel, f"%nbstate import {tmp_path / 'nothing'}", "no nbstate bundle")
    usage_error(kernel, "%nbstate import memory://nobody/here", "no nbstate bundle at memory://nobody/here")
    usage_error(kernel, "%nbstate import s3:/bucket/x", "two slashes")
    assert not (kernel.cwd / "s3:").exists()
    assert snapshot(kernel) == before
    # The old store still records.
    kernel.ok("a.append(3)")
    assert kernel.log()[0]["changed"] == ["a"]
    # The CLI says the same, with exit status 2.
    done = subprocess.run([NBSTATE, "export", "--store", str(tmp_path / ".nbstate"), "s3:/x"], capture_output=True, text=True)
    assert done.returncode == 2 and "two slashes" in done.stderr


def test_a_store_path_that_is_a_file_costs_one_line_and_no_cell(start_kernel, tmp_path):
    a_file = tmp_path / "not_a_dir"
    a_file.write_text("x")
    k = start_kernel(tmp_path, load=False, env={"NBSTATE_STORE": str(a_file)})
    r = k.run("%load_ext nbstate")
    assert r.error is None and "not recording" in r.stderr and "is not a directory" in r.stderr
    r = k.run("v = 3\nv")
    assert r.error is None and r.stderr == "" and r.outputs[0]["data"]["text/plain"] == "3"
    k.ok(f"%nbstate init --store {tmp_path / 'store'}")
    k.ok("w = 4")
    assert k.log()[0]["created"] == ["w"]


def test_bundles_from_a_newer_format_another_python_or_damaged(start_kernel, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_kernel(tmp_path / "a")
    a.ok("rows = [1, 2, 3]\ndef double(v):\n    return [x * 2 for x in v]")
    a.ok("doubled = double(rows)")
    a.ok(f"%nbstate export {tmp_path / 'bundle'}")
    a.ok(f"%nbstate export {tmp_path / 'bundle.nbstate'}")
    a.shutdown()
    b = start_kernel(tmp_path / "b")
    b.ok("mine = 'keep me'")
    before = snapshot(b)
    bundle = tmp_path / "bundle"
    manifest = json.loads((bundle / "bundle.json").read_text())

    def with_manifest(**changes):
        (bundle / "bundle.json").write_text(json.dumps({**manifest, **changes}))
        resign(bundle)

    with_manifest(format_version=99)
    usage_error(b, f"%nbstate import {bundle}", "format version 99", "upgrade nbstate")
    with_manifest(python=5)
    usage_error(b, f"%nbstate import {bundle}", "malformed", "'python'")
    with_manifest(commit="0" * 40)
    usage_error(b, f"%nbstate import {bundle}", "damaged or incomplete")
    (bundle / "bundle.json").write_text("{not json")
    usage_error(b, f"%nbstate import {bundle}", "cannot be read")
    # A truncated bundle file.
    data = (tmp_path / "bundle.nbstate").read_bytes()
    (tmp_path / "cut.nbstate").write_bytes(data[: len(data) // 3])
    usage_error(b, f"%nbstate import {tmp_path / 'cut.nbstate'}", "damaged")
    # A damaged blob in a bundle imported with --trust: refused as damaged, nothing imported.
    with_manifest()
    pack = next((bundle / "objects" / "packs").glob("*.pack"))
    raw = bytearray(pack.read_bytes())
    raw[-3] ^= 0xFF
    pack.write_bytes(bytes(raw))
    usage_error(b, f"%nbstate import {bundle} --trust", "damaged", "nothing was imported")
    assert snapshot(b) == before
    # Made by another Python: notebook functions come back by replaying their cells.
    raw[-3] ^= 0xFF
    pack.write_bytes(bytes(raw))
    with_manifest(python="3.99.1")
    r = b.ok(f"%nbstate import {bundle}")
    assert "made with Python 3.99" in r.stdout and "rebuilt by replay" in r.stdout
    assert b.value("[rows, doubled, double([5])]") == [[1, 2, 3], [2, 4, 6], [10]]


def test_ipython_names_globals_and_reset(kernel):
    kernel.ok("a = [1, 2]\nb = {'k': 1}")
    r = kernel.ok("In = 5")
    assert "In is IPython's own name" in r.stderr and "del In" in r.stderr
    assert kernel.ok("In = 6").stderr == ""  # said once
    assert "In" not in kernel.inside("result = sorted(rec.user_names())")
    r = kernel.ok("_i2 = 'mine'\n_ = 'throwaway'")
    assert "_i2" in r.stderr and "input and output history" in r.stderr and "throwaway" not in r.stderr
    r = kernel.ok("del In")
    assert "put back" in r.stderr
    assert kernel.value("type(In).__name__") == "list"
    # get_ipython rebound: magics would fail; the note says how to get it back.
    r = kernel.ok("get_ipython = None")
    assert "del get_ipython" in r.stderr
    kernel.ok("del get_ipython")
    kernel.ok("%nbstate log -n 1")  # magics work again
    # A cell that replaces globals() entries is recorded, and undone, like any other.
    kernel.ok("globals()['a'] = 'replaced'\nglobals().update(c=3)")
    entry = kernel.log()[0]
    assert entry["changed"] == ["a"] and entry["created"] == ["c"]
    kernel.ok("%nbstate undo")
    assert kernel.value("[a, 'c' in globals()]") == [[1, 2], False]
    # globals().clear() removes IPython's names too: they are put back, and undo restores the rest.
    r = kernel.ok("globals().clear()")
    assert "put back" in r.stderr and "get_ipython" in r.stderr
    kernel.ok("%nbstate undo")
    assert kernel.value("[a, b]") == [[1, 2], {"k": 1}]
    # %reset -f: recorded as deleting everything, and undone.
    r = kernel.ok("%reset -f")
    assert "%reset removed 2 variable(s)" in r.stderr and "%nbstate undo" in r.stderr
    assert kernel.value("'a' in globals()") is False
    kernel.ok("%nbstate undo")
    assert kernel.value("[a, b]") == [[1, 2], {"k": 1}]
    # %reset that asks first (the answer comes through the kernel's stdin channel).
    msg_id = kernel.kc.execute("%reset", allow_stdin=True)
    request = kernel.kc.get_stdin_msg(timeout=30)
    assert "Proceed" in request["content"]["prompt"]
    kernel.kc.input("y")
    stderr = ""
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stderr":
            stderr += msg["content"]["text"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert "%reset removed 2 variable(s)" in stderr
    kernel.ok("%nbstate undo")
    assert kernel.value("[a, b]") == [[1, 2], {"k": 1}]
    kernel.ok("%reset_selective -f ^a$")
    assert kernel.log()[0]["deleted"] == ["a"]


def test_import_into_a_kernel_without_a_package_changes_nothing(start_kernel, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "fakepkg_for_nbstate").mkdir()
    (tmp_path / "a" / "fakepkg_for_nbstate" / "__init__.py").write_text("class Box:\n    def __init__(self, v):\n        self.v = v\n")
    a = start_kernel(tmp_path / "a")
    a.ok("import fakepkg_for_nbstate\nbox = fakepkg_for_nbstate.Box(7)")
    a.ok(f"%nbstate export {tmp_path / 'bundle'}")
    b = start_kernel(tmp_path / "b")
    b.ok("mine = 1")
    before = snapshot(b)
    usage_error(b, f"%nbstate import {tmp_path / 'bundle'}", "fakepkg_for_nbstate", "pip install")
    assert snapshot(b) == before
    assert os.environ.get("XDG_CONFIG_HOME")  # the tests' own key signed it
    assert trust.load_key() is not None


def test_a_line_is_parsed_by_its_verb_alone_as_by_the_whole_parser():
    # A line that names a verb is parsed by a parser knowing that verb only (quicker to build):
    # the same arguments come out, and the same errors.
    from IPython.core.error import UsageError

    from nbstate.magics import build_parser, parse_line

    whole = build_parser()
    lines = [
        "log", "log -n 3 --json --all", "status --json", "undo 2", "checkout @{-1} --code", "commit -m 'a message'",
        "branch -m old new", "branch -d x y", "tag v1 HEAD~2", "diff a b", "export out.nbstate --history --bandwidth 10MB/s",
        "import s3://bucket/x --plan-only --trust", "init nb.ipynb --store /tmp/s",
    ]
    for line in lines:
        assert parse_line(line) == whole.parse_args(shlex.split(line)), line
    for bad in ["import", "log -n 0", "undo x", "commit", "nope", "", "export a --bogus"]:
        with pytest.raises(UsageError) as mine:
            parse_line(bad)
        with pytest.raises(UsageError) as theirs:
            whole.parse_args(shlex.split(bad))
        assert str(mine.value).splitlines()[0] == str(theirs.value).splitlines()[0], bad
