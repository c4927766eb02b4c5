"""Fingerprints of restored values taken in the background (state.RestoredFingerprints): all set
once finished, and none set after the wait for them was interrupted."""

from __future__ import annotations

import _thread
import threading

import pytest

from nbstate import state
from nbstate.state import LiveCoVariable, RestoredFingerprints


def _live(name: str) -> LiveCoVariable:
    return LiveCoVariable(names=frozenset({name}), version_id=1, fingerprint=f"recorded-{name}", ids=set())


def test_finish_waits_for_every_fingerprint(monkeypatch):
    monkeypatch.setattr(state, "restored_fingerprint", lambda values, version, ns: f"restored-{next(iter(values))}" if values else None)
    lives = [_live("a"), _live("b"), _live("c")]
    jobs = [({"a": 1}, None, lives[0]), ({"b": 2}, None, lives[1]), ({}, None, lives[2])]
    t = RestoredFingerprints(jobs, {})
    t.start()
    t.finish()
    assert not t.is_alive()
    # None from restored_fingerprint keeps the recorded fingerprint.
    assert [x.fingerprint for x in lives] == ["restored-a", "restored-b", "recorded-c"]


def test_an_interrupted_wait_leaves_the_fingerprints_not_yet_taken_as_recorded(monkeypatch):
    release = threading.Event()

    def slow(values, version, ns):
        if "b" in values:
            release.wait(10)
        return f"restored-{next(iter(values))}"

    monkeypatch.setattr(state, "restored_fingerprint", slow)
    lives = [_live("a"), _live("b"), _live("c")]
    t = RestoredFingerprints([({"a": 1}, None, lives[0]), ({"b": 2}, None, lives[1]), ({"c": 3}, None, lives[2])], {})
    t.start()
    interrupt = threading.Timer(0.2, _thread.interrupt_main)
    interrupt.start()
    with pytest.raises(KeyboardInterrupt):
        t.finish()
    release.set()
    t.join(10)
    assert not t.is_alive()
    # "a" was done before the interrupt; what was being taken then, and what came after, not.
    assert [x.fingerprint for x in lives] == ["restored-a", "recorded-b", "recorded-c"]


def test_a_begun_thread_waits_for_the_kernel_to_answer_unless_finish_calls_for_the_fingerprints(monkeypatch):
    monkeypatch.setattr(state, "restored_fingerprint", lambda values, version, ns: f"restored-{next(iter(values))}")
    monkeypatch.setattr(RestoredFingerprints, "DELAY", 30.0)
    lives = [_live("a")]
    t = RestoredFingerprints([({"a": 1}, None, lives[0])], {})
    t.begin()
    t.join(0.3)
    # Begun at the cell's end, it leaves the interpreter to the kernel's reply meanwhile.
    assert t.is_alive() and lives[0].fingerprint == "recorded-a"
    # The next cell does not wait out the delay.
    t.finish()
    assert not t.is_alive() and lives[0].fingerprint == "restored-a"


def test_a_begun_thread_takes_the_fingerprints_after_its_delay_with_no_cell_asking(monkeypatch):
    monkeypatch.setattr(state, "restored_fingerprint", lambda values, version, ns: f"restored-{next(iter(values))}")
    monkeypatch.setattr(RestoredFingerprints, "DELAY", 0.05)
    lives = [_live("a"), _live("b")]
    t = RestoredFingerprints([({"a": 1}, None, lives[0]), ({"b": 2}, None, lives[1])], {})
    t.begin()
    t.join(10)
    assert not t.is_alive()
    assert [x.fingerprint for x in lives] == ["restored-a", "restored-b"]
