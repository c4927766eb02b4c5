"""Capture in a real kernel: every cell becomes a commit that records what it changed."""

from __future__ import annotations

import json


def log(kernel):
    return json.loads(kernel.ok("%nbstate log --json").stdout)


def test_each_cell_commits_what_it_created_changed_and_deleted(kernel):
    kernel.ok("a = [1, 2, 3]\nb = {'k': 1}")
    kernel.ok("a.append(4)")
    kernel.ok("del b")
    entries = log(kernel)[:-1]  # the last is the root: the state when nbstate was loaded
    assert [e["first_line"] for e in entries] == ["del b", "a.append(4)", "a = [1, 2, 3]"]
    assert entries[2]["created"] == ["a", "b"]
    assert entries[1]["changed"] == ["a"] and entries[1]["created"] == []
    assert entries[0]["deleted"] == ["b"] and entries[0]["changed"] == []
    assert [e["execution_count"] for e in entries] == [4, 3, 2]
    assert entries[2]["bytes_added"] > 0


def test_magic_only_cells_and_silent_executions_make_no_commit(kernel):
    kernel.ok("x = 1")
    kernel.ok("%nbstate status")
    kernel.run("y = 2", silent=True)
    assert len(log(kernel)) == 2  # the root and `x = 1`


def test_failing_cell_is_committed_and_marked_failed(kernel):
    r = kernel.run("z = [0]\nz.append(1)\n1/0")
    assert r.error == "ZeroDivisionError: division by zero"
    entry, root = log(kernel)
    assert root["kind"] == "baseline"
    assert entry["error"].startswith("ZeroDivisionError")
    assert entry["created"] == ["z"]


def test_globals_changed_by_functions_called_through_containers_are_seen(kernel):
    kernel.ok("total = []\ndef add(v):\n    total.append(v)\nops = {'add': add}\nimport types\nbox = types.SimpleNamespace(cb=add)")
    kernel.ok("ops['add'](1)")
    assert log(kernel)[0]["changed"] == ["total"]
    kernel.ok("box.cb(2)")
    assert log(kernel)[0]["changed"] == ["total"]


def test_names_deleted_and_bound_again_in_an_order_that_keeps_the_size_are_all_seen(kernel):
    # Only the names added since the last cell are looked at, found by the namespace's size and
    # its newest keys. Here the newest keys are deleted and bound again, after a new name, and
    # deletions balance the additions: the size and the newest keys are as before.
    kernel.ok("d = 3\na = 1\nb = 2\nc = 0")
    kernel.ok("del b, c\nx = 5\nb = 2\nc = 0\ndel a, d")
    entry = log(kernel)[0]
    assert entry["created"] == ["x"] and sorted(entry["deleted"]) == ["a", "d"]
    assert kernel.inside("result = sorted(n for n in rec.user_names() if len(n) == 1)") == ["b", "c", "x"]
    kernel.ok("del c\nc = 1\ndel b")  # the newest key bound again, a deletion for IPython's `_iN`
    entry = log(kernel)[0]
    assert entry["changed"] == ["c"] and entry["deleted"] == ["b"]
    assert kernel.inside("result = sorted(n for n in rec.user_names() if len(n) == 1)") == ["c", "x"]
    assert kernel.inside("result = rec.last_error") is None
