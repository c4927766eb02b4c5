"""Co-variables, fingerprints and the decision of what a cell changed.

A co-variable is a set of names whose values share a mutable object; it is stored, versioned
and restored as one unit so that aliasing survives. ``Tracker`` keeps the co-variables of the
live namespace with the ids of the objects each reached when it was last serialized, and, given
the names a cell touched, serializes only those co-variables (plus any an object now links them
to), once each. Unchanged fingerprint: the old version is kept and nothing is written.
Never imports IPython; never raises into the user's cell (the caller guards it).
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import codec
from .blobs import (
    DELTA_MIN,
    BlobFiles,
    Chunk,
    StreamChunker,
    Written,
    buffer_segment,
    digest,
    fingerprint,
    split,
    split_stream,
)
from .store import NewVersion, Store, VariableVersion


@dataclass
class LiveCoVariable:
    names: frozenset[str]
    version_id: int | None  # None until the commit that records it is written
    fingerprint: str | None
    ids: set[int] | codec.IdArray
    # Notebook classes the values refer to by name, with the id of the class each name held:
    # when a name comes to hold another object, the values must be examined again.
    class_refs: dict[str, int] = field(default_factory=dict)
    # The stored version's buffers, (length, chunk hashes) each: a changed chunk of the next
    # version may be stored as a patch of the chunk at the same place.
    buffers: list[tuple[int, list[str]]] = field(default_factory=list)
    # The stored version's stream chunks: a changed chunk of the next version's stream may be
    # stored as a delta of the chunk it replaced.
    stream: list[str] = field(default_factory=list)
    # Whether the values were last pickled as plain data (None: not yet tried): a value found
    # not to be is not tried again while it holds the same objects, which would cost a pass over
    # it each time (see _try_plain).
    plain: bool | None = None


@dataclass
class Checkpoint:
    """What one cell changed, ready to be recorded."""

    kept: Mapping[str, int]  # every live name whose version is already stored
    new: list[tuple[NewVersion, LiveCoVariable]]
    blobs: list[Written]
    deleted: list[str]
    examined: list[str]  # the names whose values were serialized to decide


def describe(value: Any) -> str:
    """A short human description of a value's type (and shape where it has one)."""
    t = type(value)
    name = t.__qualname__ if t.__module__ in ("builtins", "__main__") else f"{t.__module__.split('.')[0]}.{t.__qualname__}"
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
        dtype = getattr(value, "dtype", None)
        return f"{name}{list(shape)}" + (f" {dtype}" if dtype is not None and not hasattr(value, "columns") else "")
    if isinstance(value, (list, dict, set, tuple, str, bytes)):
        return f"{name} len={len(value)}"
    return name


@dataclass
class _Stream:
    """A pickle stream as it was cut while the pickler made it (its bytes are not kept)."""

    length: int = 0
    hashes: list[str] = field(default_factory=list)
    stored: bool = False  # its chunks were handed to the store as they came
    written: list[Written] = field(default_factory=list)  # those the store did not have yet
    seconds: float | None = None  # the pickler's own time (storing its chunks left out)


def _pickle(values: list[Any], ns: Mapping[str, Any], blobs: BlobFiles | None, before: list[str] | None = None, plain: bool = True) -> tuple[codec.Serialized, _Stream]:
    """Serialize ``values``, cutting the stream as it is made; with ``blobs``, each new chunk
    is appended to the store at once, so a large stream never sits whole in memory. ``before``:
    the stream chunks of the stored version, which new chunks may be stored as deltas of."""
    stream = _Stream(stored=blobs is not None)
    align = _Aligner(before or [], blobs)

    storing = 0.0

    def store(chunks: list[Chunk]) -> None:
        nonlocal storing
        assert blobs is not None
        t0 = time.perf_counter()
        while chunks:
            n = align.batch(len(chunks))
            head, chunks = chunks[:n], chunks[n:]
            written = blobs.put_many(head, similar=align.bases(head))
            align.learn(written)
            stream.written.extend(w for w in written if w is not None)
        storing += time.perf_counter() - t0

    sink = StreamChunker(store if blobs is not None else None, on_reset=align.restart)
    t0 = time.perf_counter()
    ser = codec.serialize(values, ns, sink=sink, plain=plain)
    pickling = time.perf_counter() - t0 - storing
    if ser.ok:
        sink.close()
        stream.length, stream.hashes, stream.seconds = sink.length, sink.hashes, max(pickling, 0.0)
    return ser, stream


class _Aligner:
    """Pairs each new chunk of a stream with the chunk of the previous version it most likely
    replaced: the one that holds the new chunk's middle once positions are shifted as the last
    chunk both streams share says (content-defined chunks realign after a change, so an edit
    or an insertion replaces only the chunks around it).

    A stream made anew (a list of new strings) has nothing to gain from deltas, and each try
    costs reading the old chunk and a compression: a few chunks are tried first, and pairing
    goes on only while at least one in four tries has paid."""

    TRIAL = 8

    def __init__(self, before: list[str], blobs: BlobFiles | None) -> None:
        self.before = before
        self.blobs = blobs
        self._at: dict[str, int] | None = None  # old chunk -> its first index (made when first needed)
        self.starts: list[int] | None = None  # where each old chunk starts (asked of the index when needed)
        self.anchor: tuple[int, int] | None = None  # the last shared chunk: (old index, new position)
        self.pos = 0  # where the next new chunk starts
        self.tried = 0
        self.paid = 0
        self.proposed: set[str] = set()

    def restart(self) -> None:
        """The stream is made again from its start (a try as plain data stopped)."""
        self.pos, self.anchor = 0, None

    def batch(self, n: int) -> int:
        """How many of ``n`` chunks to hand the store together: the first few alone while it
        is not known whether deltas pay, else all of them."""
        undecided = self.before and self.paid == 0 and self.tried < self.TRIAL
        return min(n, self.TRIAL) if undecided else n

    def bases(self, chunks: list[Chunk]) -> dict[str, str]:
        if not self.before:
            return {}
        if self._at is None:
            self._at = {}
            for i, h in enumerate(self.before):
                self._at.setdefault(h, i)
        out: dict[str, str] = {}
        for c in chunks:
            n = len(c.data)
            i = self._at.get(c.hash)
            if i is not None:
                self.anchor = (i, self.pos)
            elif n >= DELTA_MIN and self._worth_trying(len(out)):
                starts = self._starts()
                shift = starts[self.anchor[0]] - self.anchor[1] if starts and self.anchor else 0
                j = bisect.bisect_right(starts, self.pos + shift + n // 2) - 1
                if starts and 0 <= j < len(self.before):
                    out[c.hash] = self.before[j]
            self.pos += n
        self.proposed = set(out)
        return out

    def _starts(self) -> list[int]:
        if self.starts is None:
            where = self.blobs.locate(list(dict.fromkeys(self.before))) if self.blobs is not None else {}
            self.starts = []
            pos = 0
            for h in self.before:
                loc = where.get(h)
                if loc is None or loc.size < 0:  # unknown sizes: no pairing
                    self.starts = []
                    break
                self.starts.append(pos)
                pos += loc.size
        return self.starts

    def _worth_trying(self, pending: int) -> bool:
        tried = self.tried + pending
        if self.paid == 0:
            return tried < self.TRIAL
        return tried < 4 * self.TRIAL or 4 * self.paid >= self.tried

    def learn(self, written: list[Written | None]) -> None:
        """Count the proposed pairs the store made deltas of."""
        for w in written:
            if w is not None and w.hash in self.proposed:
                self.tried += 1
                self.paid += w.codec == "delta"
        self.proposed = set()


def _streamed_manifest(ser: codec.Serialized, stream: _Stream, names: list[str]) -> tuple[dict[str, Any], list[Chunk], str]:
    """The manifest, the buffers' chunks and the fingerprint of a serialization whose stream was
    cut as it was made. The stream is in content-defined chunks (an insertion shifts nothing after
    it), buffers in fixed chunks restarting at each row of a multi-row block (see blobs.split)."""
    buffers = []
    chunks: list[Chunk] = []
    parts = [(stream.length, list(stream.hashes))]
    for buf in ser.buffers:
        cs = list(split(buf, buffer_segment(buf)))
        chunks.extend(cs)
        hashes = [c.hash for c in cs]
        buffers.append({"n": buf.nbytes, "chunks": hashes})
        parts.append((buf.nbytes, hashes))
    manifest: dict[str, Any] = {"names": names, "stream": {"n": stream.length, "chunks": parts[0][1]}, "buffers": buffers}
    if ser.plain:
        manifest["stream"]["plain"] = True
    if stream.seconds is not None:
        manifest["stream"]["seconds"] = round(stream.seconds, 6)
    if ser.class_refs:
        manifest["class_refs"] = sorted(ser.class_refs)
    return manifest, chunks, fingerprint(parts)


def _manifest(ser: codec.Serialized, names: list[str]) -> tuple[dict[str, Any], list[Chunk], str]:
    """Like _streamed_manifest, for a stream held whole: its chunks are returned too."""
    stream_chunks = list(split_stream(ser.stream))
    stream = _Stream(len(ser.stream), [c.hash for c in stream_chunks])
    manifest, chunks, fp = _streamed_manifest(ser, stream, names)
    return manifest, stream_chunks + chunks, fp


class Tracker:
    """The co-variables of one live namespace, kept in step with the store's versions."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.by_name: dict[str, LiveCoVariable] = {}
        # Object id -> the co-variable that reached it. Entries are not removed when a
        # co-variable is forgotten (a value of millions of objects would cost a Python step per
        # object): an entry counts only while its co-variable is live and still has the id
        # (``_owner``), and the dict is rebuilt once stale entries outnumber the rest.
        self._by_id: dict[int, LiveCoVariable] = {}
        self._stale = 0
        self._referring: dict[int, LiveCoVariable] = {}  # the live co-variables with class_refs
        # Live co-variables whose ids are an IdArray (plain values of many containers): kept out
        # of ``_by_id``, whose entries cost about 100 bytes an id.
        self._large: dict[int, LiveCoVariable] = {}
        self.unserializable: dict[str, str] = {}
        # Each name whose live co-variable is stored -> that version's id: kept in step by
        # adopt, _forget and recorded, so a checkpoint copies it rather than walking every name.
        self.versions: dict[str, int] = {}

    def _forget(self, covar: LiveCoVariable) -> None:
        for name in covar.names:
            if self.by_name.get(name) is covar:
                del self.by_name[name]
                self.versions.pop(name, None)
        self._referring.pop(id(covar), None)
        if self._large.pop(id(covar), None) is None:
            self._stale += len(covar.ids)

    def adopt(self, covar: LiveCoVariable) -> None:
        """Make ``covar`` the live co-variable of its names (after a commit or a checkout)."""
        for name in covar.names:
            old = self.by_name.get(name)
            if old is not None and old is not covar:
                self._forget(old)
            self.by_name[name] = covar
            if covar.version_id is None:
                self.versions.pop(name, None)
            else:
                self.versions[name] = covar.version_id
        if covar.class_refs:
            self._referring[id(covar)] = covar
        if self._stale > max(100_000, len(self._by_id) // 2):
            self._by_id = {}
            self._stale = 0
            for live in {id(c): c for c in self.by_name.values()}.values():
                if not isinstance(live.ids, codec.IdArray):
                    self._by_id.update(dict.fromkeys(live.ids, live))
        if isinstance(covar.ids, codec.IdArray):
            self._large[id(covar)] = covar
        else:
            self._by_id.update(dict.fromkeys(covar.ids, covar))

    def recorded(self, covar: LiveCoVariable, version_id: int) -> None:
        """The commit that stores ``covar`` was written: its version is ``version_id``."""
        covar.version_id = version_id
        for name in covar.names:
            if self.by_name.get(name) is covar:
                self.versions[name] = version_id

    def _sharing(self, ids: set[int] | codec.IdArray, own: LiveCoVariable | None) -> list[tuple[int, LiveCoVariable]]:
        """(an id, the live co-variable other than ``own`` that reached it) for each co-variable
        that ``ids`` share an object with."""
        if isinstance(ids, codec.IdArray):
            hits = ids.intersection(self._by_id.keys())
        else:
            hits = ids & self._by_id.keys()
        if own is not None:
            hits = {h for h in hits if h not in own.ids} if isinstance(own.ids, codec.IdArray) else hits - own.ids
        out = []
        for oid in hits:
            other = self._owner(oid)
            if other is not None:
                out.append((oid, other))
        for other in self._large.values():  # (all live: _forget takes them out)
            if other is own:
                continue
            common = other.ids.intersection(ids)
            if common:
                out.append((next(iter(common)), other))
        return out

    def _owner(self, oid: int) -> LiveCoVariable | None:
        """The live co-variable that reached object ``oid`` when it was last serialized."""
        covar = self._by_id.get(oid)
        if covar is None or oid not in covar.ids or not any(self.by_name.get(n) is covar for n in covar.names):
            return None
        return covar

    def checkpoint(self, touched: set[str], user_names: set[str], blobs: BlobFiles, gone: Iterable[str] | None = None) -> Checkpoint:
        """``gone``: the names that may have left ``user_names`` since the last checkpoint
        (None: any name may have)."""
        ns = self.namespace
        if gone is None:
            deleted = sorted(self.by_name.keys() - user_names)
        else:
            deleted = sorted(n for n in gone if n in self.by_name and n not in user_names)
        # Every member of a co-variable that holds a touched (or deleted) name may have changed.
        candidates = {n for n in touched if n in user_names}
        for n in list(touched) + deleted:
            covar = self.by_name.get(n)
            if covar is not None:
                candidates |= {m for m in covar.names if m in user_names}
                # So may every notebook class its values referred to by name (`a[0].attr = 1`),
                # whatever the name holds now (the same cell may rebind it: `a = 0`).
                for ref in covar.class_refs:
                    ref_covar = self.by_name.get(ref)
                    candidates |= {m for m in (ref_covar.names if ref_covar is not None else {ref}) if m in user_names}
        # A value that refers to a class by name, whose name now holds another object (or none):
        # its bytes would now carry the old class by value.
        for covar in list(self._referring.values()):
            if any(id(ns.get(c)) != cid for c, cid in covar.class_refs.items()):
                candidates |= {m for m in covar.names if m in user_names}
        single: dict[str, codec.Serialized] = {}
        streams: dict[str, _Stream] = {}
        pending = sorted(candidates)
        while pending:
            name = pending.pop()
            # A name alone in its co-variable most likely stays alone: its new chunks go to the
            # store as they are cut. A member of a larger one is pickled again with the others,
            # so its own stream is only hashed.
            covar = own = self.by_name.get(name)
            alone = covar is None or len(covar.names) == 1
            ser, streams[name] = _pickle([ns[name]], ns, blobs if alone else None, covar.stream if covar is not None else None, _try_plain(covar, [ns[name]]))
            single[name] = ser
            # A notebook class stored as a reference to its name may have been changed through
            # this value (`a[0].attr = 1`, `type(p).attr = 1`): its own variable is examined too.
            for ref in ser.class_refs:
                covar = self.by_name.get(ref)
                for m in covar.names if covar is not None else {ref}:
                    if m in user_names and m not in single and m not in pending:
                        pending.append(m)
            # An object now shared with an untouched co-variable pulls that one in as well.
            # (Set operations first: the value's own co-variable had most of these ids.)
            done: set[int] = set()
            for oid, other in self._sharing(ser.ids, own):
                if id(other) in done:
                    continue
                members = [m for m in other.names if m in user_names and m not in single and m not in pending]
                if not members:
                    continue
                # The id may be a reused one (the object it stood for is gone): check that the
                # object is really reachable from the other co-variable before examining it.
                target = ser.object_with_id(oid)
                if target is not None and not codec.holds([ns[m] for m in other.names if m in user_names], target, ns):
                    continue
                done.add(id(other))
                pending.extend(members)
        groups = _group_by_shared_ids(single)
        old_covars = {id(c): c for n in list(single) + deleted if (c := self.by_name.get(n)) is not None}
        result = Checkpoint(kept={}, new=[], blobs=[], deleted=deleted, examined=sorted(single))
        for members in groups:
            names = sorted(members)
            previous = self.by_name.get(names[0])
            before = previous.stream if previous is not None else None
            if len(names) == 1:
                ser, stream = single[names[0]], streams[names[0]]
            else:
                ser, stream = _pickle([ns[n] for n in names], ns, blobs, before, _try_plain(previous, [ns[n] for n in names]))
            if not ser.ok:
                ser.ids = set().union(*(single[n].ids for n in names))
            types = {n: describe(ns[n]) for n in names}
            if ser.ok:
                manifest, chunks, fp = _streamed_manifest(ser, stream, names)
                if previous is not None and previous.names == frozenset(names) and previous.fingerprint == fp and previous.version_id is not None:
                    old_covars.pop(id(previous), None)
                    self._forget(previous)
                    previous.ids = ser.ids
                    previous.class_refs = {c: id(ns[c]) for c in ser.class_refs}
                    previous.plain = ser.plain
                    self.adopt(previous)
                    continue
                if not stream.stored:  # only hashed: pickle it again, this time into the store
                    ser, stream = _pickle([ns[n] for n in names], ns, blobs, before, ser.plain)
                    if ser.ok:
                        manifest, chunks, fp = _streamed_manifest(ser, stream, names)
            if ser.ok:
                result.blobs.extend(stream.written)
                bases, similar = _patch_bases(previous.buffers if previous is not None else [], manifest["buffers"], chunks, blobs)
                result.blobs.extend(w for w in blobs.put_many(chunks, bases, similar) if w is not None)
                for n in names:
                    self.unserializable.pop(n, None)
                version = NewVersion(names, fp, manifest, stream.length + sum(b.nbytes for b in ser.buffers), True, None, types)
            else:
                fp = None
                for n in names:
                    self.unserializable[n] = ser.error or "not serializable"
                version = NewVersion(names, None, None, 0, False, ser.error, types)
            live = LiveCoVariable(
                frozenset(names), None, fp, ser.ids, {c: id(ns[c]) for c in ser.class_refs},
                buffers_of(manifest) if ser.ok else [], list(manifest["stream"]["chunks"]) if ser.ok else [], ser.plain if ser.ok else None,
            )
            result.new.append((version, live))
        for covar in old_covars.values():
            self._forget(covar)
        for n in deleted:
            self.unserializable.pop(n, None)
        for _, live in result.new:
            self.adopt(live)
        result.kept = MappingProxyType(self.versions)  # read at once by Store.record
        return result

    def drop(self, names: set[str]) -> None:
        """Forget names that left the namespace (their co-variables' other members stay)."""
        for n in names:
            covar = self.by_name.get(n)
            if covar is not None:
                self._forget(covar)
                rest = covar.names - names
                if rest:
                    self.adopt(LiveCoVariable(frozenset(rest), None, None, covar.ids, covar.class_refs))
            self.unserializable.pop(n, None)

    def all_names(self) -> set[str]:
        return set(self.by_name)


def buffers_of(manifest: dict[str, Any] | None) -> list[tuple[int, list[str]]]:
    """A manifest's buffers as (length, chunk hashes)."""
    return [(b["n"], list(b["chunks"])) for b in manifest["buffers"]] if manifest else []


def _patch_bases(before: list[tuple[int, list[str]]], after: list[dict[str, Any]], chunks: list[Chunk], blobs: BlobFiles) -> tuple[dict[str, str], dict[str, str]]:
    """New chunk -> the chunk of the same buffer in the stored version it is most likely a
    change of: the chunk at the same place when the buffer's length and chunking did not change
    (an array changed in place: a patch), else, in ``similar``, the one that held the same bytes
    (a frame's columns that gained rows: a delta; at most a few tries per buffer)."""
    out: dict[str, str] = {}
    similar: dict[str, str] = {}
    at = 0
    for i, new in enumerate(after):
        mine, at = chunks[at : at + len(new["chunks"])], at + len(new["chunks"])
        if i >= len(before):
            continue
        n, old = before[i]
        if n == new["n"] and len(old) == len(new["chunks"]):
            for a, b in zip(old, new["chunks"], strict=True):
                if a != b:
                    out.setdefault(b, a)
        elif old:
            for h, b in _Aligner(old, blobs).bases(mine).items():
                similar.setdefault(h, b)
    return out, similar


def _group_by_shared_ids(single: Mapping[str, codec.Serialized]) -> list[set[str]]:
    parent: dict[str, str] = {n: n for n in single}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    names = list(single)
    if len(names) <= 64:  # the usual few candidates: one set operation (in C) per pair
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if not codec.ids_disjoint(single[a].ids, single[b].ids):
                    ra, rb = find(a), find(b)
                    if ra != rb:
                        parent[rb] = ra
    else:
        owner: dict[int, str] = {}
        for name, ser in single.items():
            for oid in ser.ids:
                first = owner.setdefault(oid, name)
                if first != name:
                    ra, rb = find(first), find(name)
                    if ra != rb:
                        parent[rb] = ra
    groups: dict[str, set[str]] = {}
    for n in single:
        groups.setdefault(find(n), set()).add(n)
    return list(groups.values())


def load_version(
    store: Store, version: VariableVersion, namespace: dict[str, Any], lookup: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Rebuild a stored co-variable's values (verified against their hashes) as name -> value."""
    return load_version_with_ids(store, version, namespace, lookup)[0]


def load_version_with_ids(
    store: Store, version: VariableVersion, namespace: dict[str, Any], lookup: Mapping[str, Any] | None = None,
    ahead: ReadAhead | None = None,
) -> tuple[dict[str, Any], set[int] | codec.IdArray]:
    """Like load_version, plus the ids of the shareable objects the values are made of.
    ``ahead``: where some of its bytes may be being read already."""
    if not version.serializable or version.manifest is None:
        raise ValueError(f"{', '.join(version.names)} was not serializable: {version.reason}")
    m = version.manifest
    stream = ahead.take(version.id, -1) if ahead is not None else None
    if stream is None:
        stream = store.blobs.read_into(m["stream"]["chunks"], m["stream"]["n"])
    # Large raw buffers may come back as copy-on-write mappings of the store's packs.
    buffers: list[Any] = [ahead.take(version.id, i) if ahead is not None else None for i in range(len(m["buffers"]))]
    rest = [i for i, b in enumerate(buffers) if b is None]
    for i, b in zip(rest, store.blobs.read_many([(m["buffers"][i]["chunks"], m["buffers"][i]["n"]) for i in rest], allow_map=True), strict=True):
        buffers[i] = b
    values, ids = codec.load(bytes(stream), buffers, namespace, lookup)
    return dict(zip(m["names"], values, strict=True)), ids


class ReadAhead:
    """The large streams and buffers of the versions a restore is about to load, read and
    decoded in the read pool while the interpreter goes on with the rest of the restore:
    unpickling the values before them, importing the libraries their classes come from,
    replaying cells. Importing an EDA notebook's libraries alone took 0.5-0.8 s here, reading
    its 670 MB of buffers 0.45 s on two cores, and they came one after the other. On two
    cores the decoding threads and the interpreter share them, so the gain there is small:
    EDA imports in fresh kernels took 1.58 against 1.66 s (mean of 5 each) in one comparison
    and 1.34 against 1.35 s (7 each) in another, an import that replays a 0.4 s cell and loads
    720 MB 0.75 against 0.87 s (5 each).

    ``take`` hands over what was read for one run (a version's stream: index -1, or one of its
    buffers), waiting for it, and raises what reading it raised; None for a run not read ahead.
    ``close`` (or leaving it as a context) cancels what has not started (a restore that gave up
    on its plan)."""

    RUN_MIN = 1 << 20  # smaller runs are read when loaded, as before

    def __init__(self, store: Store, versions: Iterable[VariableVersion]) -> None:
        keys: list[tuple[int, int]] = []
        runs: list[tuple[list[str], int, bool]] = []
        for v in versions:
            m = v.manifest
            if not v.serializable or m is None:
                continue
            if m["stream"]["n"] >= self.RUN_MIN:
                keys.append((v.id, -1))
                runs.append((list(m["stream"]["chunks"]), m["stream"]["n"], False))
            for i, b in enumerate(m["buffers"]):
                if b["n"] >= self.RUN_MIN:
                    keys.append((v.id, i))
                    runs.append((list(b["chunks"]), b["n"], True))
        futures = store.blobs.read_ahead(runs) if runs else None
        self._pending: dict[tuple[int, int], Any] = dict(zip(keys, futures, strict=True)) if futures else {}

    def take(self, version_id: int, index: int) -> Any:
        future = self._pending.pop((version_id, index), None)
        return None if future is None else future.result()

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Loaded values whose stream is at most this long are fingerprinted again once restored.
RESTORED_STREAM_MAX = 4 << 20


def restored_fingerprint(values: Mapping[str, Any], version: VariableVersion, namespace: Mapping[str, Any]) -> str | None:
    """The fingerprint of values just loaded from ``version``, as the next checkpoint will see them.

    Some libraries rebuild objects on load with other sharing than the originals had (pandas
    extension arrays, fitted estimators, figures): pickled again, the same state gives another
    stream, and a cell that only reads the value would record it anew. The stream is pickled
    again (when short: the cost of pickling many small objects) and the buffers keep the chunk
    hashes recorded for them when their sizes match, so mapped buffers are not read. None: keep
    the recorded fingerprint."""
    m = version.manifest
    if m is None or m["stream"]["n"] > RESTORED_STREAM_MAX:
        return None
    try:
        names = list(m["names"])
        ser, stream = _pickle([values[n] for n in names], namespace, None)
        if not ser.ok or [b.nbytes for b in ser.buffers] != [b["n"] for b in m["buffers"]]:
            return None
        parts = [(stream.length, list(stream.hashes))] + [(b["n"], list(b["chunks"])) for b in m["buffers"]]
        return fingerprint(parts)
    except Exception:  # noqa: BLE001 - the recorded fingerprint is a safe answer
        return None


# A loaded co-variable waiting for its fingerprint: its values, the version they came from, and
# the live co-variable whose fingerprint it sets.
Reloaded = tuple[dict[str, Any], VariableVersion, LiveCoVariable]


def fingerprint_restored(reloaded: Iterable[Reloaded], namespace: Mapping[str, Any], guard: RestoredFingerprints | None = None) -> None:
    """Set each live co-variable's fingerprint to its values' as restored (see restored_fingerprint).
    ``guard``: the thread doing it, whose wait may be interrupted: each fingerprint is then set
    under its lock, and none once it is cancelled."""
    for values, version, live in reloaded:
        fp = restored_fingerprint(values, version, namespace)
        with guard._lock if guard is not None else contextlib.nullcontext():
            if guard is not None and guard._cancelled:
                return
            if fp is not None:
                live.fingerprint = fp


class RestoredFingerprints(threading.Thread):
    """``fingerprint_restored`` in a thread of its own, so that a restore returns as soon as the
    values are in place; the values are pickled again while the user reads the result.

    ``begin`` starts it (once); ``finish`` waits for it, starting it first if need be, and must
    be called before anything may change the values (the next cell) or read the fingerprints (the
    next checkpoint); interrupted, it leaves the fingerprints not yet set as recorded (the safe
    answer: a value that only looks changed is stored again).

    Begun, it first waits ``DELAY`` seconds (or until ``finish``): the kernel sends the cell's
    reply after the cell's end, on the main thread, and each step of that needs the
    interpreter's lock, which the pickling holds for a switch interval at a time. Started at
    once, it made the import cell of the simulation notebook end 0.03 s later (0.13 against
    0.10 s, median of 5 fresh kernels)."""

    DELAY = 0.1

    def __init__(self, reloaded: list[Reloaded], namespace: Mapping[str, Any]) -> None:
        super().__init__(name="nbstate-fingerprint", daemon=True)
        self._reloaded = reloaded
        self._namespace = namespace
        self._lock = threading.Lock()
        self._cancelled = False
        self._go = threading.Event()

    def run(self) -> None:
        self._go.wait(self.DELAY)
        try:
            fingerprint_restored(self._reloaded, self._namespace, guard=self)
        finally:
            self._reloaded = []  # the values are the namespace's to keep, not this thread's

    def begin(self) -> None:
        """Start taking the fingerprints, unless already started."""
        if self.ident is None:
            self.start()

    def finish(self) -> None:
        self._go.set()
        self.begin()  # never started (the cell's end was not seen): take them now
        try:
            while self.is_alive():
                self.join(0.05)
        except KeyboardInterrupt:
            with self._lock:
                self._cancelled = True
            raise


def _try_plain(covar: LiveCoVariable | None, values: list[Any]) -> bool:
    """Whether to try the plain pickler first for ``values``: unless they were found not to be
    plain data when the co-variable was last pickled and are still those objects (a name that
    came to hold another object starts afresh, or a dict of records that replaced a data frame
    would be pickled with a memo of every object from then on)."""
    return covar is None or covar.plain is not False or not all(id(v) in covar.ids for v in values)


def fingerprint_with_ids(
    values: list[Any], names: list[str], namespace: Mapping[str, Any], plain: bool = True
) -> tuple[str | None, set[int] | codec.IdArray | None, bool]:
    """The fingerprint ``values`` would be stored under, the ids of the shareable objects
    pickling them reached (both None when they cannot be pickled), and whether they hold
    functions whose globals are ``namespace``. A replayed value is checked and its sharing known
    in one pass. ``plain``: whether to try the plain pickler first, as a checkpoint does unless
    the co-variable's last value was not plain (the same value pickles to other bytes each way)."""
    ser, stream = _pickle(values, namespace, None, plain=plain)
    if not ser.ok:
        return None, None, False
    return _streamed_manifest(ser, stream, names)[2], ser.ids, ser.bound


__all__ = ["Tracker", "LiveCoVariable", "buffers_of", "Checkpoint", "describe", "load_version", "load_version_with_ids", "ReadAhead", "restored_fingerprint", "fingerprint_restored", "RestoredFingerprints", "Reloaded", "fingerprint_with_ids", "digest"]
