"""The `nbstate` console script, run as a user runs it, against stores that real kernels wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kernels import Kernel

NBSTATE = Path(sys.executable).parent / "nbstate"


def nbstate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("NBSTATE_STORE", "IPYTHONDIR")}
    full_env.update(env or {})
    return subprocess.run([str(NBSTATE), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


def ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    r = nbstate(*args, cwd=cwd, env=env)
    assert r.returncode == 0, f"nbstate {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory) -> Path:
    """A directory whose ./.nbstate a real kernel session wrote (the kernel has exited)."""
    cwd = tmp_path_factory.mktemp("session")
    k = Kernel(cwd)
    try:
        k.ok("data = [1, 2, 3]\nconfig = {'lr': 0.1}")
        k.ok("data.append(4)")
        k.ok("stream = (n * n for n in range(10))")
        k.ok("del config")
        k.run("boom = 1/0")
    finally:
        k.shutdown()
    return cwd


BASELINE = "# the state when nbstate was loaded"


def test_log_shows_each_cell_newest_first_with_what_it_changed(session_dir):
    lines = ok("log", cwd=session_dir).strip().splitlines()
    assert len(lines) == 6
    assert "boom = 1/0" in lines[0] and "FAILED" in lines[0] and "(HEAD -> main)" in lines[0]
    assert "del config" in lines[1] and "-config" in lines[1]
    assert "stream = (n * n for n in range(10))" in lines[2] and "+stream" in lines[2]
    assert "data.append(4)" in lines[3] and "~data" in lines[3]
    assert "data = [1, 2, 3]" in lines[4] and "+config,data" in lines[4]
    assert BASELINE in lines[5]


def test_log_json_matches_what_the_kernel_recorded(session_dir):
    entries = json.loads(ok("log", "--json", cwd=session_dir))
    assert [e["first_line"] for e in entries] == [
        "boom = 1/0",
        "del config",
        "stream = (n * n for n in range(10))",
        "data.append(4)",
        "data = [1, 2, 3]",
        BASELINE,
    ]
    assert [e["execution_count"] for e in entries] == [6, 5, 4, 3, 2, None]
    assert entries[4]["created"] == ["config", "data"]
    assert entries[3]["changed"] == ["data"]
    assert entries[1]["deleted"] == ["config"]
    assert entries[0]["error"].startswith("ZeroDivisionError")
    assert [e["parent"] for e in entries] == [e["commit"] for e in entries[1:]] + [None]


def test_log_n_limits_to_the_newest_commits(session_dir):
    entries = json.loads(ok("log", "-n", "2", "--json", cwd=session_dir))
    assert [e["first_line"] for e in entries] == ["boom = 1/0", "del config"]


def test_log_rejects_a_count_that_is_not_positive(session_dir):
    r = nbstate("log", "-n", "0", cwd=session_dir)
    assert r.returncode == 2
    assert "not a positive number" in r.stderr


def test_status_reports_head_and_the_variables_that_cannot_be_stored(session_dir):
    out = ok("status", cwd=session_dir)
    head = json.loads(ok("log", "-n", "1", "--json", cwd=session_dir))[0]["commit"]
    assert f"store:     {session_dir / '.nbstate'}" in out
    assert f"HEAD:      {head[:8]} on branch main" in out
    assert "commits:   6" in out
    assert "variables: 2" in out  # data and stream
    assert "stream: TypeError" in out and "generator" in out


def test_status_json_is_the_status_as_data(session_dir):
    st = json.loads(ok("status", "--json", cwd=session_dir))
    head = json.loads(ok("log", "-n", "1", "--json", cwd=session_dir))[0]["commit"]
    assert st["head"] == head
    assert st["branch"] == "main"
    assert st["commits"] == 6
    assert st["variables"] == 2
    assert list(st["not_serializable"]) == ["stream"]
    assert st["session"] is None  # offline: no live session


def test_log_follows_head_and_all_shows_every_branch(tmp_path):
    k = Kernel(tmp_path)
    try:
        k.ok("rows = [1, 2]")
        k.ok("rows.append(3)")
        k.ok("%nbstate undo")
        k.ok("rows.append(30)")  # on a detached HEAD: forks a branch
    finally:
        k.shutdown()
    head_only = [e["first_line"] for e in json.loads(ok("log", "--json", cwd=tmp_path))]
    assert head_only == ["rows.append(30)", "rows = [1, 2]", BASELINE]
    every = [e["first_line"] for e in json.loads(ok("log", "--all", "--json", cwd=tmp_path))]
    assert sorted(every) == sorted(head_only + ["rows.append(3)"])
    text = ok("log", "--all", cwd=tmp_path)
    assert "(main)" in text and "(HEAD -> fork-" in text
    graph = ok("log", "--all", "--graph", cwd=tmp_path).splitlines()
    assert len(graph) == 5  # four commits and the line where the branches join
    assert any(line.startswith("| * ") or line.startswith("* | ") for line in graph)


def test_store_is_found_through_the_option_and_the_environment(session_dir, tmp_path):
    store = str(session_dir / ".nbstate")
    by_option = json.loads(ok("log", "--json", "--store", store, cwd=tmp_path))
    by_env = json.loads(ok("log", "--json", cwd=tmp_path, env={"NBSTATE_STORE": store}))
    assert len(by_option) == len(by_env) == 6


def test_missing_store_says_what_to_do_and_exits_2(tmp_path):
    for verb in ("log", "status"):
        r = nbstate(verb, cwd=tmp_path)
        assert r.returncode == 2
        assert f"no nbstate store at {tmp_path.resolve() / '.nbstate'}" in r.stderr
        assert "%load_ext nbstate" in r.stderr and "--store PATH" in r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / ".nbstate").exists()  # looking for a store does not create one


def test_pointing_at_the_notebook_directory_suggests_its_store(session_dir, tmp_path):
    r = nbstate("log", "--store", str(session_dir), cwd=tmp_path)
    assert r.returncode == 2
    assert f"Did you mean --store {session_dir / '.nbstate'}?" in r.stderr


def test_several_notebooks_need_a_choice(tmp_path):
    for name in ("clean.ipynb", "train.ipynb"):
        k = Kernel(tmp_path, env={"JPY_SESSION_NAME": str(tmp_path / name)})
        try:
            k.ok(f"origin = {name!r}")
        finally:
            k.shutdown()
    r = nbstate("log", cwd=tmp_path)
    assert r.returncode == 2
    assert "holds 2 notebooks: clean.ipynb, train.ipynb" in r.stderr and "--notebook ID" in r.stderr
    train = json.loads(ok("log", "--notebook", "train.ipynb", "--json", cwd=tmp_path))
    assert [e["first_line"] for e in train] == ["origin = 'train.ipynb'", BASELINE]
    st = json.loads(ok("status", "--notebook", "clean.ipynb", "--json", cwd=tmp_path))
    assert st["notebook"] == "clean.ipynb" and st["commits"] == 2 and st["variables"] == 1
    r = nbstate("status", "--notebook", "nope.ipynb", cwd=tmp_path)
    assert r.returncode == 2
    assert "no notebook 'nope.ipynb'" in r.stderr and "clean.ipynb, train.ipynb" in r.stderr


def test_help_describes_every_command_and_option(tmp_path):
    top = ok("--help", cwd=tmp_path)
    for verb in ("log", "status", "install", "uninstall"):
        assert verb in top
    assert "NBSTATE_STORE" in top
    log_help = ok("log", "--help", cwd=tmp_path)
    for option in ("--store PATH", "--notebook ID", "--all", "-n N", "--graph", "--json"):
        assert option in log_help
    status_help = ok("status", "--help", cwd=tmp_path)
    for option in ("--store PATH", "--notebook ID", "--json"):
        assert option in status_help
    assert "ipython_config.py" in ok("install", "--help", cwd=tmp_path)
    assert "ipython_config.py" in ok("uninstall", "--help", cwd=tmp_path)


def test_no_command_is_a_usage_error(tmp_path):
    r = nbstate(cwd=tmp_path)
    assert r.returncode == 2
    assert "usage: nbstate" in r.stderr


# --- install / uninstall ----------------------------------------------------------------------------


def test_install_creates_the_profile_config_and_is_idempotent(tmp_path):
    env = {"IPYTHONDIR": str(tmp_path / "ipython")}
    config = tmp_path / "ipython" / "profile_default" / "ipython_config.py"
    out = ok("install", cwd=tmp_path, env=env)
    assert f"created {config}" in out
    text = config.read_text()
    assert "c = get_config()" in text
    assert 'c.InteractiveShellApp.extensions.append("nbstate")' in text
    again = ok("install", cwd=tmp_path, env=env)
    assert "already installed" in again
    assert config.read_text() == text
    out = ok("uninstall", cwd=tmp_path, env=env)
    assert f"deleted {config}" in out
    assert not config.exists()
    assert "not installed" in ok("uninstall", cwd=tmp_path, env=env)


def test_install_keeps_the_users_own_config(tmp_path):
    env = {"IPYTHONDIR": str(tmp_path / "ipython")}
    config = tmp_path / "ipython" / "profile_default" / "ipython_config.py"
    config.parent.mkdir(parents=True)
    mine = "c = get_config()\nc.InteractiveShell.colors = 'nocolor'\n"
    config.write_text(mine)
    assert "added nbstate's block to" in ok("install", cwd=tmp_path, env=env)
    text = config.read_text()
    assert text.startswith(mine) and text.count("nbstate") >= 2
    assert "removed nbstate's block" in ok("uninstall", cwd=tmp_path, env=env)
    assert config.read_text() == mine


def test_installed_profile_makes_a_kernel_record_without_load_ext(tmp_path):
    ipython_dir = tmp_path / "ipython"
    work = tmp_path / "work"
    work.mkdir()
    ok("install", cwd=tmp_path, env={"IPYTHONDIR": str(ipython_dir)})
    k = Kernel(work, env={"IPYTHONDIR": str(ipython_dir)}, load=False)
    try:
        k.ok("weights = [0.5, 0.25]")
        k.ok("weights.append(0.125)")
        assert k.value("'nbstate' in get_ipython().extension_manager.loaded")
    finally:
        k.shutdown()
    entries = json.loads(ok("log", "--json", cwd=work))
    assert [e["first_line"] for e in entries] == ["weights.append(0.125)", "weights = [0.5, 0.25]", BASELINE]
    assert entries[1]["created"] == ["weights"] and entries[0]["changed"] == ["weights"]

    ok("uninstall", cwd=tmp_path, env={"IPYTHONDIR": str(ipython_dir)})
    later = tmp_path / "later"
    later.mkdir()
    k = Kernel(later, env={"IPYTHONDIR": str(ipython_dir)}, load=False)
    try:
        k.ok("x = 1")
        assert not k.value("'nbstate' in get_ipython().extension_manager.loaded")
    finally:
        k.shutdown()
    assert not (later / ".nbstate").exists()
