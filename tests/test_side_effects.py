"""Cells whose replay reaches outside the kernel are named when a checkout replays them."""

from __future__ import annotations

from nbstate.analysis import side_effects


def test_side_effects_are_found_in_cell_syntax():
    assert side_effects("log = open('events.log', 'w')") == ["open(..., 'w')"]
    assert side_effects("conn.execute('INSERT INTO t VALUES (1)')\nconn.commit()") == [".commit()", "execute(INSERT ...)"]
    assert side_effects("df.to_csv('out.csv')\nfig.savefig('a.png')") == [".savefig()", ".to_csv()"]


def test_reading_cells_have_none():
    assert side_effects("data = open('in.txt').read()\nrows = conn.execute('select * from t').fetchall()") == []
    assert side_effects("s = text.replace('a', 'b')\nitems.remove(3)\ndf = df.rename(columns=str.lower)") == []
    assert side_effects("this is not python") == []


def test_checkout_that_replays_a_writing_cell_says_so(kernel, tmp_path):
    kernel.ok("import sqlite3\nconn = sqlite3.connect('work.db')\nconn.execute('create table if not exists t(x)')")
    kernel.ok("conn.execute('insert into t values (1)')\nconn.commit()")
    kernel.ok("n = 1")
    kernel.ok("%nbstate undo 2")
    r = kernel.ok("%nbstate checkout @{-1}")
    assert "replayed cell" in r.stdout and "execute(INSERT ...)" in r.stdout and "twice" in r.stdout
