"""Content-addressed blobs: chunking, hashing, compression, and the pack files that hold them.

A blob is immutable bytes named by the xxh3-128 hash of its uncompressed content. A serialized
value is cut into chunks, each its own blob, so that an edit stores the chunks it touched, not
the value: out-of-band buffers (numpy, pandas) in fixed 1 MiB chunks that restart at every row
of a multi-row block (a DataFrame gaining rows keeps its old chunks), the pickle stream in
content-defined chunks (FastCDC), whose boundaries follow the bytes, so an insertion shifts
nothing after it. Blobs are appended to pack files (``objects/packs/pack-*.pack``); where each
one lies is kept in the store's SQLite index, which this module reaches only through the lookup
function the store hands it. Every read verifies the hash. Never imports IPython.
"""

from __future__ import annotations

import mmap
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash
import zstandard

if TYPE_CHECKING:
    from concurrent.futures import Future

CHUNK_SIZE = 1 << 20
# An out-of-band buffer whose outer rows are at least this long is chunked row by row.
SEGMENT_MIN = 256 << 10
# Content-defined chunking of pickle streams: FastCDC's minimum, average and maximum sizes.
CDC_MIN = 4 << 10
CDC_AVG = 16 << 10
CDC_MAX = 64 << 10

_HEADER_RAW = b"NBr1"  # loose blob files of format version 1
_HEADER_ZSTD = b"NBz1"
PACK_MAGIC = b"NBpack2\n"
PACK_LIMIT = 1 << 30  # a new pack is started once the current one is this large
_LINK_SHARE = 0.9  # copy_from links a source pack whole when wanted blobs are this share of it
_ALIGN = 4096  # raw payloads of at least _ALIGN_MIN bytes start on a page, so they can be mapped
_ALIGN_MIN = 64 << 10
MMAP_MIN = 64 << 20  # buffers at least this large may be restored as a copy-on-write mapping
_SAMPLE = 64 << 10
_ZSTD_LEVEL = 1
# Compress a chunk only when a sample of it shrinks to at most this share of its size.
_WORTH_IT = 0.9
# Patches: a changed chunk of at least PATCH_MIN bytes whose previous version (the chunk at the
# same place of the same buffer) is known is stored as the runs of bytes that differ from it,
# when those take at most PATCH_WORTH of the chunk. A patch names its base by hash; chains are
# at most PATCH_DEPTH long (the next one is made against the chain's first, full chunk).
PATCH_MAGIC = b"NBp1"
PATCH_MIN = 64 << 10
PATCH_WORTH = 0.5
PATCH_DEPTH = 16
_PATCH_GRAIN = 64  # bytes compared as one unit
_PATCH_HEAD = len(PATCH_MAGIC) + 2 + 32  # magic, depth, flags, the base's hash (hex)
# Deltas: a changed chunk of a pickle stream (content-defined, so its length changes with its
# content) is stored as one zstd frame compressed with the chunk it replaced as a dictionary,
# when that takes at most PATCH_WORTH of what the chunk would take alone. The base is always a
# full chunk (a delta of a delta is made against that delta's base), so a delta is read from
# two chunks. Same header as a patch.
DELTA_MAGIC = b"NBd1"
DELTA_MIN = 8 << 10  # smaller chunks cost more time to delta than they would save
# Level 1 indexes too little of a large dictionary (a grown 1 MiB chunk came out 17x larger).
_DELTA_LEVEL = 3

try:  # FastCDC in C (Cython); without it, streams are cut like buffers (fixed size)
    from pyfastcdc.cy import FastCDC as _FastCDC

    _CDC = _FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX, normalized_chunking=1)
except Exception:  # pragma: no cover - depends on the platform's wheels
    _CDC = None


class BlobError(Exception):
    """A blob is missing or its content does not match its name."""


def digest(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


@dataclass(frozen=True)
class Chunk:
    hash: str
    data: memoryview


def _bytes_view(buf: bytes | memoryview) -> memoryview:
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def split(buf: bytes | memoryview, segment: int = 0) -> Iterator[Chunk]:
    """Cut ``buf`` into CHUNK_SIZE pieces (restarting at every ``segment`` bytes when given) and
    name each by its hash; no copies are made. An empty buffer is one empty chunk."""
    view = _bytes_view(buf)
    n = len(view)
    if n == 0:
        yield Chunk(digest(view), view)
        return
    step = segment if segment > 0 else n
    for base in range(0, n, step):
        end = min(base + step, n)
        for start in range(base, end, CHUNK_SIZE):
            piece = view[start : min(start + CHUNK_SIZE, end)]
            yield Chunk(digest(piece), piece)


def split_stream(buf: bytes | memoryview) -> Iterator[Chunk]:
    """Cut a pickle stream at content-defined boundaries (FastCDC; fixed size without it)."""
    view = _bytes_view(buf)
    if _CDC is None or len(view) <= CDC_MIN:
        yield from split(view)
        return
    for c in _CDC.cut_buf(view):
        piece = view[c.offset : c.offset + c.length]
        yield Chunk(digest(piece), piece)


# How many bytes of a pickle stream StreamChunker holds before it cuts them (it keeps the last,
# unfinished chunk): the stream of a large value never sits whole in memory.
STREAM_WINDOW = 4 << 20


class StreamChunker:
    """A write-only file for a pickle stream that cuts it, as it arrives, into exactly the chunks
    ``split_stream`` would cut the whole stream into: FastCDC boundaries depend only on the bytes
    from the start of a chunk, so every chunk but the last of a window is final. Each batch of
    finished chunks goes to ``on_chunks`` (their data is valid during the call only); ``hashes``
    and ``length`` describe the whole stream once ``close`` has run."""

    def __init__(
        self, on_chunks: Callable[[list[Chunk]], object] | None = None, window: int = STREAM_WINDOW, on_reset: Callable[[], object] | None = None
    ) -> None:
        self._buf = bytearray()
        self._on_chunks = on_chunks
        self._on_reset = on_reset
        self._window = max(window, 2 * CDC_MAX, CHUNK_SIZE + 1)
        self.length = 0
        self.hashes: list[str] = []
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else memoryview(data)
        n = len(view)
        # A large write (pickle hands big bytes and str payloads over directly) goes in by pieces,
        # so that the buffer never holds much more than a window.
        for start in range(0, n, self._window):
            self._buf += view[start : start + self._window]
            if len(self._buf) >= self._window:
                self._cut(final=False)
        self.length += n
        return n

    def reset(self) -> None:
        """Start the stream again (the chunks already handed on stay where they went)."""
        self._buf = bytearray()
        self.length = 0
        self.hashes = []
        if self._on_reset is not None:
            self._on_reset()

    def close(self) -> None:
        if not self.closed:
            self._cut(final=True)
            self.closed = True

    def _cut(self, final: bool) -> None:
        view = memoryview(self._buf)
        try:
            if _CDC is None or (final and self.length <= CDC_MIN and len(view) == self.length):
                step = CHUNK_SIZE
                bounds = [(i, min(step, len(view) - i)) for i in range(0, len(view), step)]
                if not final and bounds and bounds[-1][1] < step:
                    bounds.pop()
            else:
                bounds = [(c.offset, c.length) for c in _CDC.cut_buf(view)]
                if not final:
                    bounds.pop()
            if final and not bounds and self.length == 0:
                bounds = [(0, 0)]
            chunks = [Chunk(digest(view[o : o + n]), view[o : o + n]) for o, n in bounds]
            self.hashes.extend(c.hash for c in chunks)
            if chunks and self._on_chunks is not None:
                self._on_chunks(chunks)
            done = bounds[-1][0] + bounds[-1][1] if bounds else 0
            del chunks
        finally:
            view.release()
        del self._buf[:done]


def stream_cut() -> str:
    """How this installation cuts pickle streams (recorded in each manifest)."""
    return f"cdc-{CDC_MIN >> 10}-{CDC_AVG >> 10}-{CDC_MAX >> 10}" if _CDC is not None else "fixed"


def buffer_segment(buf: memoryview) -> int:
    """Bytes per outer row of an out-of-band buffer (0: chunk it as one run).

    Pickle hands numpy's buffers over as flat bytes whose exporter is the array (in C order:
    numpy passes the transpose of a Fortran-ordered one). The rows of a 2-D pandas block are
    its columns; chunking each on its own keeps their chunks when the frame gains rows.
    """
    try:
        shaped = memoryview(buf.obj) if buf.obj is not None else None
    except TypeError:
        return 0
    if shaped is None or shaped.ndim < 2 or shaped.nbytes != buf.nbytes or not shaped.c_contiguous:
        return 0
    rows = shaped.shape[0]
    if rows < 2:
        return 0
    row = shaped.nbytes // rows
    return row if row >= SEGMENT_MIN else 0


def fingerprint(parts: Iterable[tuple[int, list[str]]]) -> str:
    """The identity of a whole serialized value: the lengths and chunk hashes of its parts."""
    h = xxhash.xxh3_128()
    for length, hashes in parts:
        h.update(f"{length}:".encode())
        for c in hashes:
            h.update(c.encode())
        h.update(b";")
    return h.hexdigest()


@dataclass
class Written:
    """One blob this process wrote: what the index needs to know of it."""

    hash: str
    size: int
    stored_size: int
    codec: str
    pack: str | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Location:
    """Where a blob's stored bytes lie: ``stored`` bytes at ``offset`` of pack ``pack``, or a
    loose file of format version 1 when ``pack`` is None."""

    hash: str
    size: int
    stored: int
    codec: str
    pack: str | None
    offset: int


_LOCATIONS_KEPT = 200_000

# The store's index: the locations of those of ``hashes`` it knows.
Lookup = Callable[[Sequence[str]], dict[str, Location]]


def _no_index(hashes: Sequence[str]) -> dict[str, Location]:
    return {}


# Buffers with at least this many compressed bytes are decoded by a pool of threads.
_PARALLEL_MIN = 8 << 20
# Stored bytes a copy that verifies what it copies reads and checks in the pool at a time.
_COPY_WINDOW = 64 << 20
_pool_instance: Any = None
_local = threading.local()


def _pool() -> Any:
    global _pool_instance
    if _pool_instance is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool_instance = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="nbstate-read")
    return _pool_instance


# Buffers this large are decoded into private anonymous mappings (fresh_buffer): always from
# ANON_ALWAYS (the C allocator maps memory that large afresh anyway), and from ANON_MIN when a
# pool thread decodes them.
ANON_MIN = 4 << 20
ANON_ALWAYS = 32 << 20


def fresh_buffer(n: int) -> bytearray | mmap.mmap:
    """``n`` zero bytes to decode a buffer into. A bytearray is zeroed when made, which faults in
    every fresh page while holding the interpreter's lock, so the read pool's threads took turns
    at it (0.18 s per 436 MB here, as long as decompressing it); a private anonymous mapping's
    pages fault in as zstd writes them, with the lock released, on every thread at once. But
    memory the allocator takes back and hands out again costs no faults: making and filling a
    10 MiB bytearray took 0.4 ms the second time, a new mapping 5.5-6.8 ms every time. So a
    mapping is made where the memory would be fresh anyway (from ANON_ALWAYS) or where threads
    would take turns (ANON_MIN and up, in a pool thread); elsewhere, and on platforms without
    MAP_PRIVATE, a bytearray. Private, so a forked child gets a copy, as of the heap."""
    flags = getattr(mmap, "MAP_PRIVATE", None)
    if flags is None or n < ANON_MIN or (n < ANON_ALWAYS and not getattr(_local, "pooled", False)):
        return bytearray(n)
    return mmap.mmap(-1, n, flags=flags | mmap.MAP_ANONYMOUS)


def _fsync_path(path: Path) -> None:
    """Make a file's bytes, or a directory's entries, durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _threads_pay(nbytes: int, parts: int) -> bool:
    """Whether ``parts`` pieces of work over ``nbytes`` go to the pool: enough bytes, more than
    one piece and one core, and not from a pool thread already (a pool waiting on itself would
    never finish)."""
    return nbytes >= _PARALLEL_MIN and parts > 1 and (os.cpu_count() or 1) > 1 and not getattr(_local, "pooled", False)


def _pooled(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` in a pool thread, marked so that it does not hand work to the pool again."""
    _local.pooled = True
    return fn(*args)


@dataclass
class Patch:
    """A chunk stored as the runs of bytes that differ from another chunk (its base)."""

    base: str
    depth: int  # 1 for a patch of a full chunk, n + 1 for a patch of a patch of depth n
    starts: Any  # numpy arrays of uint32: where each run begins, and its length
    lengths: Any
    data: memoryview  # the runs' bytes, one after another

    def apply(self, dest: memoryview) -> None:
        if len(self.starts) and int((self.starts.astype("u8") + self.lengths).max()) > len(dest):
            raise BlobError(f"a patch of {self.base} reaches past the end of its chunk")
        pos = 0
        data = self.data
        for start, n in zip(self.starts.tolist(), self.lengths.tolist(), strict=True):
            dest[start : start + n] = data[pos : pos + n]
            pos += n


def make_patch(old: bytes | memoryview, new: bytes | memoryview, base: str, depth: int) -> bytes | None:
    """The patch that turns ``old`` (content of blob ``base``, itself at ``depth - 1``) into
    ``new``, or None when it would not be worth it (sizes differ, or too much changed)."""
    import numpy as np

    n = len(new)
    if len(old) != n or n < _PATCH_GRAIN:
        return None
    whole = n - n % _PATCH_GRAIN
    words = _PATCH_GRAIN // 8
    a = np.frombuffer(old, np.uint64, whole // 8).reshape(-1, words)
    b = np.frombuffer(new, np.uint64, whole // 8).reshape(-1, words)
    changed = np.flatnonzero((a != b).any(axis=1))
    if whole < n and bytes(memoryview(old)[whole:]) != bytes(memoryview(new)[whole:]):
        changed = np.append(changed, whole // _PATCH_GRAIN)
    if changed.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(changed) != 1)
    first = changed[np.concatenate(([0], breaks + 1))]
    last = changed[np.concatenate((breaks, [changed.size - 1]))]
    starts = (first * _PATCH_GRAIN).astype(np.uint32)
    ends = np.minimum((last + 1) * _PATCH_GRAIN, n).astype(np.uint32)
    lengths = ends - starts
    total = int(lengths.sum()) + 8 * len(starts)
    if total > PATCH_WORTH * n:
        return None
    view = memoryview(new)
    runs = b"".join(view[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True))
    body = len(starts).to_bytes(4, "little") + starts.tobytes() + lengths.tobytes() + runs
    flags = 0
    packed, codec = _encode(memoryview(body))
    if codec == "zstd" and len(packed) < len(body):
        body, flags = bytes(packed), 1
    return PATCH_MAGIC + bytes((depth, flags)) + base.encode() + body


def read_patch(payload: bytes | memoryview, name: str = "?") -> Patch:
    """Parse a stored patch; BlobError when it is not one."""
    import numpy as np

    payload = memoryview(payload)
    if len(payload) < _PATCH_HEAD + 4 or bytes(payload[:4]) != PATCH_MAGIC:
        raise BlobError(f"blob {name} is damaged: not a patch")
    depth, flags = payload[4], payload[5]
    try:
        base = bytes(payload[6:_PATCH_HEAD]).decode("ascii")
        body = payload[_PATCH_HEAD:]
        if flags & 1:
            body = memoryview(_thread_decompressor().decompress(body))
        count = int.from_bytes(body[:4], "little")
        starts = np.frombuffer(body, np.uint32, count, 4)
        lengths = np.frombuffer(body, np.uint32, count, 4 + 4 * count)
        data = body[4 + 8 * count :]
    except (UnicodeDecodeError, ValueError, zstandard.ZstdError) as exc:
        raise BlobError(f"blob {name} is damaged: {exc}") from None
    if int(lengths.sum()) != len(data):
        raise BlobError(f"blob {name} is damaged: its runs do not add up")
    return Patch(base, depth, starts, lengths, data)


def make_delta(old: bytes | memoryview, new: bytes | memoryview, base: str) -> bytes:
    """``new`` as a delta against ``old``, the content of the full chunk ``base``."""
    dictionary = zstandard.ZstdCompressionDict(bytes(old), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    body = zstandard.ZstdCompressor(level=_DELTA_LEVEL, dict_data=dictionary).compress(new)
    return DELTA_MAGIC + bytes((1, 1)) + base.encode() + body


def apply_delta(payload: bytes | memoryview, old: bytes | memoryview, size: int, name: str = "?") -> bytes:
    """The content a delta and its base's content ``old`` make (``size`` bytes)."""
    payload = memoryview(payload)
    if len(payload) < _PATCH_HEAD or bytes(payload[:4]) != DELTA_MAGIC:
        raise BlobError(f"blob {name} is damaged: not a delta")
    try:
        dictionary = zstandard.ZstdCompressionDict(bytes(old), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        out = zstandard.ZstdDecompressor(dict_data=dictionary).decompress(payload[_PATCH_HEAD:], max_output_size=max(size, 1))
    except zstandard.ZstdError as exc:
        raise BlobError(f"blob {name} is damaged: {exc}") from None
    if size >= 0 and len(out) != size:
        raise BlobError(f"blob {name} is damaged: it does not decompress to {size} bytes")
    return out


_BASED = ("patch", "delta")  # codecs whose content is made from another blob's


def mapping_enabled() -> bool:
    """Whether large buffers may be restored as mappings (``NBSTATE_MMAP=0`` turns it off)."""
    return os.environ.get("NBSTATE_MMAP", "1") != "0"


def _encode(data: memoryview) -> tuple[bytes | memoryview, str]:
    """A chunk's payload: compressed where a sample of it compresses well, else as it is."""
    n = len(data)
    if n >= 256:
        compressor = getattr(_local, "compressor", None)
        if compressor is None:  # one of this thread's own, as for decompressors
            compressor = _local.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        sample = data[: min(n, _SAMPLE)]
        if len(compressor.compress(sample)) <= _WORTH_IT * len(sample):
            return compressor.compress(data), "zstd"
    return data, "raw"


def _thread_decompressor() -> zstandard.ZstdDecompressor:
    """A decompressor of this thread's own (they cannot be shared between threads)."""
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


class BlobFiles:
    """Blobs in pack files under ``<store>/objects/packs/``, found through the store's index.

    Each writing process appends to a pack of its own; a blob's bytes are flushed (and
    ``fdatasync``ed) by ``sync`` before the transaction that names them commits, so the index
    never points past what is on disk. A torn tail (a crash mid-append) is named by no index row
    and is ignored. Loose files ``objects/ab/cdef...`` of format version 1 are still read.
    """

    def __init__(self, root: Path, create: bool = True, lookup: Lookup | None = None, fsync: bool = True, moved: Callable[[], bool] | None = None) -> None:
        self.root = root / "objects"
        self.packs = self.root / "packs"
        if create:
            self.packs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lookup: Lookup = lookup or _no_index
        self.fsync = fsync
        self._seen: set[str] = set()  # named by the index (committed)
        self._uncommitted: dict[str, Written] = {}  # appended by this process, not yet indexed
        # Index rows looked up lately. A row changes only when gc rewrites packs, which ``moved``
        # (from the store) tells: then everything remembered is dropped (see forget).
        self._located: dict[str, Location] = {}
        self._moved = moved
        self.gc_held = False  # set while the store holds gc off (nothing can move meanwhile)
        self._pack: str | None = None
        self._pack_file = None
        self._dirty = False
        self._readers: dict[str, int] = {}
        self._lock = threading.Lock()
        self.damaged: list[str] = []  # found by background verification of mapped buffers
        self._verifiers: list[threading.Thread] = []

    # --- names and places ---------------------------------------------------------------------

    def path(self, h: str) -> Path:
        """The loose file of blob ``h`` (format version 1)."""
        return self.root / h[:2] / h[2:]

    def pack_path(self, pack: str) -> Path:
        return self.packs / pack

    def forget(self) -> None:
        """Drop what this process remembers of the index and its packs (gc rewrote them)."""
        self._located.clear()
        self._seen.clear()
        self._uncommitted.clear()
        self.close_readers()
        self._close_pack()

    def locate(self, hashes: Sequence[str]) -> dict[str, Location]:
        """The locations of ``hashes`` that this process wrote, the index names, or loose files
        hold; missing ones are absent from the answer."""
        out: dict[str, Location] = {}
        rest = []
        if self._located and self._moved is not None and not self.gc_held and self._moved():
            self.forget()
        located = self._located
        for h in hashes:
            w = self._uncommitted.get(h)
            if w is not None:
                out[h] = Location(h, w.size, w.stored_size, w.codec, w.pack, w.offset or 0)
            elif (loc := located.get(h)) is not None:
                out[h] = loc
            else:
                rest.append(h)
        if rest:
            found = self.lookup(rest)
            out.update(found)
            if len(located) + len(found) > _LOCATIONS_KEPT:
                located.clear()
            located.update(found)
            if self._may_hold_loose():
                for h in rest:
                    if h not in found:
                        loose = self._loose_location(h)
                        if loose is not None:
                            out[h] = loose
        return out

    _loose_dirs: bool | None = None

    def _may_hold_loose(self) -> bool:
        """Whether loose files of format version 1 may be here (looked for once: later versions
        never write them), so that a store without them is not searched for each missing blob."""
        if self._loose_dirs is None:
            try:
                self._loose_dirs = any(len(d.name) == 2 and d.is_dir() for d in self.root.iterdir())
            except OSError:
                self._loose_dirs = False
        return self._loose_dirs

    def _loose_location(self, h: str) -> Location | None:
        p = self.path(h)
        try:
            with open(p, "rb") as f:
                header = f.read(4)
                stored = os.fstat(f.fileno()).st_size
        except OSError:
            return None
        codec = "zstd" if header == _HEADER_ZSTD else "raw" if header == _HEADER_RAW else "?"
        return Location(h, -1, stored, codec, None, 4)

    def has(self, h: str) -> bool:
        if h in self._seen or h in self._uncommitted:
            return True
        if self.locate([h]):
            self._seen.add(h)
            return True
        return False

    # --- writing ------------------------------------------------------------------------------

    def put(self, chunk: Chunk) -> Written | None:
        """Store a chunk unless it is already there; returns what the index must record, or
        None when the index has it already."""
        return self.put_many([chunk])[0]

    def put_many(self, chunks: Sequence[Chunk], bases: dict[str, str] | None = None, similar: dict[str, str] | None = None) -> list[Written | None]:
        """``put`` for several chunks (one index query for all); appended in order, so the
        chunks of one buffer lie side by side in one pack. ``bases`` maps a chunk's hash to the
        hash of its previous version (the chunk at the same place of the same buffer): such a
        chunk is stored as a patch of it when few of its bytes changed. ``similar`` maps a
        chunk's hash to a chunk that held much the same bytes, maybe moved (the chunk of a
        stream it replaced): it is stored as a delta of it when that pays."""
        unknown = [c.hash for c in chunks if c.hash not in self._seen and c.hash not in self._uncommitted]
        if unknown:
            known = self.lookup(list(dict.fromkeys(unknown)))
            self._seen.update(known)
        fresh = {c.hash: c.data for c in chunks if c.hash not in self._seen and c.hash not in self._uncommitted}
        if fresh:
            self._ensure_pack()
            datas = list(fresh.values())
            jobs, chains = self._patch_jobs(fresh, bases or {}, similar or {}) if bases or similar else ({}, {})
            calls = [(d, *jobs.get(h, (None, 0)), chains) for h, d in fresh.items()]  # depth 0: a delta
            if _threads_pay(sum(len(d) for d in datas), len(datas)):  # zstd lets go of the GIL
                encoded = self._side_by_side(self._encode_or_patch, calls, [loc for loc, _ in jobs.values()] + list(chains.values()))
            else:
                encoded = [self._encode_or_patch(*call) for call in calls]
            for h, data, (payload, codec) in zip(fresh, datas, encoded, strict=True):
                self._append(h, data, payload, codec)
        return [None if c.hash in self._seen else self._uncommitted[c.hash] for c in chunks]

    def _patch_jobs(self, fresh: dict[str, memoryview], bases: dict[str, str], similar: dict[str, str]) -> tuple[dict[str, tuple[Location, int]], dict[str, Location]]:
        """For each fresh chunk that may be stored as a patch or a delta: the location of the
        chunk it is made against and the new patch's depth (0 for a delta); and the chains of
        patches those locations need."""
        wanted = {h: b for h, d in fresh.items() if (b := bases.get(h, similar.get(h))) is not None and b != h and len(d) >= DELTA_MIN}
        if not wanted:
            return {}, {}
        where = self.locate(list(set(wanted.values())))
        chains = self._chains(where.values())
        jobs: dict[str, tuple[Location, int]] = {}
        for h, b in wanted.items():
            loc = where.get(b)
            if loc is None or loc.pack is None:
                continue
            if h in bases and loc.size == len(fresh[h]) and len(fresh[h]) >= PATCH_MIN:  # an array's chunk changed in place
                try:
                    root, patches = self._chain_of(loc, chains)
                except BlobError:
                    continue  # a broken chain: the chunk is stored whole
                if len(patches) >= PATCH_DEPTH:  # long enough: patch the chain's full chunk instead
                    loc, patches = root, []
                jobs[h] = (loc, len(patches) + 1)
            elif h in bases:
                continue
            elif loc.codec == "delta":  # against the full chunk that delta was made against
                if chains.get(loc.hash) is not None and chains[loc.hash].codec in ("raw", "zstd"):
                    jobs[h] = (chains[loc.hash], 0)
            elif loc.codec in ("raw", "zstd"):
                jobs[h] = (loc, 0)
        return jobs, chains

    def _content(self, loc: Location, chains: dict[str, Location] | None = None) -> bytearray:
        """A packed blob's verified content, rebuilt from its chain when it is a patch or a delta
        (``chains``: see ``_chains``; worked out here when not given)."""
        out = bytearray(loc.size)
        self._fill_one(loc, memoryview(out), chains if chains is not None else self._chains([loc]))
        return out

    def _encode_or_patch(self, data: memoryview, base: Location | None, depth: int, chains: dict[str, Location]) -> tuple[bytes | memoryview, str]:
        if base is None:
            return _encode(data)
        try:
            old = self._content(base, chains)
        except BlobError:
            return _encode(data)  # a damaged base: the chunk is stored whole
        if depth == 0:
            delta = make_delta(old, data, base.hash)
            whole = _encode(data)
            if len(delta) <= PATCH_WORTH * len(whole[0]):
                return delta, "delta"
            return whole
        patch = make_patch(old, data, base.hash, depth)
        if patch is not None:
            return patch, "patch"
        return _encode(data)

    def _chains(self, locations: Iterable[Location]) -> dict[str, Location]:
        """The base of every patch among ``locations``, of every patch among those, and so on:
        patch hash -> its base's location (absent when the base is missing)."""
        out: dict[str, Location] = {}
        level = [loc for loc in locations if loc.codec in _BASED]
        seen = {loc.hash for loc in level}
        for _ in range(PATCH_DEPTH + 2):  # a chain of patches may end in a delta
            if not level:
                break
            heads = {loc.hash: self._patch_base(loc) for loc in level}
            found = self.locate(list({b for b in heads.values() if b is not None}))
            nxt = []
            for h, b in heads.items():
                loc = found.get(b) if b is not None else None
                if loc is not None:
                    out[h] = loc
                    if loc.codec in _BASED and loc.hash not in seen:
                        seen.add(loc.hash)
                        nxt.append(loc)
            level = nxt
        return out

    def _patch_base(self, loc: Location) -> str | None:
        """The base a stored patch names (read from its first bytes), None when unreadable."""
        if loc.pack is None:
            return None
        head = bytearray(_PATCH_HEAD)
        try:
            got = self._pread_into(self._fd(loc.pack), memoryview(head), loc.offset)
        except (OSError, BlobError):
            return None
        if got != _PATCH_HEAD or bytes(head[:4]) not in (PATCH_MAGIC, DELTA_MAGIC):
            return None
        try:
            return head[6:].decode("ascii")
        except UnicodeDecodeError:
            return None

    def bases_of(self, hashes: Iterable[str]) -> dict[str, str]:
        """Patch hash -> the hash it patches, for every patch among ``hashes`` and, in turn,
        among their bases (what must be kept, or copied, with them)."""
        chains = self._chains(self.locate(list(dict.fromkeys(hashes))).values())
        return {h: loc.hash for h, loc in chains.items()}

    def _ensure_pack(self) -> None:
        if self._pack_file is not None and self._pack_file.tell() < PACK_LIMIT:
            return
        self.sync()
        self._close_pack()
        self.packs.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"pack-{secrets.token_hex(8)}.pack"
        # Readable by its owner only (values may be private); kept open for appending.
        f = os.fdopen(os.open(self.packs / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600), "wb")
        f.write(PACK_MAGIC)
        self._pack, self._pack_file = name, f

    def _append(self, h: str, data: memoryview, payload: bytes | memoryview, codec: str) -> Written:
        f = self._pack_file
        assert f is not None and self._pack is not None
        offset = f.tell()
        if codec == "raw" and len(payload) >= _ALIGN_MIN and offset % _ALIGN:
            f.write(b"\0" * (_ALIGN - offset % _ALIGN))
            offset = f.tell()
        try:
            f.write(payload)
        except BaseException:
            # A partial append is a torn tail nobody names: start the next one in a new pack.
            self._abandon_pack()
            raise
        self._dirty = True
        w = Written(h, len(data), len(payload), codec, self._pack, offset)
        self._uncommitted[h] = w
        return w

    def sync(self) -> None:
        """Make every appended byte durable (flush, then fdatasync unless disabled): called
        before the transaction that names the new blobs."""
        f = self._pack_file
        if f is None or not self._dirty:
            return
        try:
            if os.fstat(f.fileno()).st_nlink == 0:  # the pack was deleted under us: its bytes are lost
                raise BlobError(f"pack {self._pack} was deleted while this process appended to it")
            f.flush()
            if self.fsync:
                (getattr(os, "fdatasync", None) or os.fsync)(f.fileno())
        except BaseException:
            self._abandon_pack()
            raise
        self._dirty = False

    def _abandon_pack(self) -> None:
        """After a failed write (a full disk): nothing appended to the current pack since the
        last commit may be trusted, so forget those blobs and start the next append afresh."""
        f, pack = self._pack_file, self._pack
        self._pack_file = self._pack = None
        self._dirty = False
        self._uncommitted = {h: w for h, w in self._uncommitted.items() if w.pack != pack}
        if f is not None:
            try:
                f.close()
            except OSError:  # the buffered bytes cannot be written either: they are the torn tail
                pass

    def committed(self, written: Iterable[Written]) -> None:
        """The index now names these blobs."""
        for w in written:
            if self._uncommitted.pop(w.hash, None) is not None:
                self._seen.add(w.hash)

    def _close_pack(self) -> None:
        """Stop appending to the current pack (what was appended stays readable)."""
        f, self._pack_file, self._pack = self._pack_file, None, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
        self._dirty = False

    def close_readers(self) -> None:
        readers, self._readers = self._readers, {}
        for fd in readers.values():
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        self.sync()
        self._close_pack()
        self.close_readers()

    def copy_from(self, src: BlobFiles, hashes: Iterable[str], verify: bool = True, link: bool = False) -> list[Written]:
        """Copy blobs from another store's files as they are stored (not re-encoded); each is
        decoded and checked against its hash unless ``verify`` is false (the caller knows the
        source's packs are intact; every later read checks the hash anyway). With ``link`` (and
        not ``verify``), a source pack that holds little but wanted blobs is taken whole by a
        hard link (``_link_packs``) rather than copied."""
        unknown = [h for h in dict.fromkeys(hashes) if h not in self._seen and h not in self._uncommitted]
        present = self.locate(unknown)
        self._seen.update(present)
        wanted = [h for h in unknown if h not in present]
        if not wanted:
            return []
        where = src.locate(wanted)
        out = self._link_packs(src, where) if link and not verify else []
        wanted = [h for h in wanted if h not in self._uncommitted]
        if not wanted:
            return out
        self._ensure_pack()
        packed = []
        for h in wanted:
            loc = where.get(h)
            if loc is None:
                raise BlobError(f"blob {h} is missing from {src.root}")
            if loc.pack is None:  # a loose file of version 1: re-encode its content
                w = self.put_many([Chunk(h, memoryview(src.get(h)))])[0]
                if w is not None:
                    out.append(w)
                continue
            packed.append(loc)
        for loc, payload in src._stored_payloads(packed, verify):
            out.append(self._append_stored(loc, payload))
        return out

    def _stored_payloads(self, locations: list[Location], verify: bool) -> Iterator[tuple[Location, bytes]]:
        """Each of ``locations`` with its stored bytes, in order; with ``verify``, each decoded and
        checked against its hash first, by the read pool's threads a window at a time where there
        is enough to decode (an export checks every blob it ships: decoding is most of its time)."""
        if not verify or not _threads_pay(sum(loc.stored for loc in locations), len(locations)):
            for loc in locations:
                payload = self.read_stored(loc)
                if verify:
                    self.check(loc, payload)
                yield loc, payload
            return
        start = 0
        while start < len(locations):
            end, stored = start, 0
            while end < len(locations) and (end == start or stored < _COPY_WINDOW):
                stored += locations[end].stored
                end += 1
            window = locations[start:end]
            bases = self._chains(window).values() if any(loc.codec in _BASED for loc in window) else []
            yield from zip(window, self._side_by_side(self._checked_payload, [(loc,) for loc in window], [*window, *bases]), strict=True)
            start = end

    def _checked_payload(self, loc: Location) -> bytes:
        payload = self.read_stored(loc)
        self.check(loc, payload)
        return payload

    def _link_packs(self, src: BlobFiles, where: dict[str, Location]) -> list[Written]:
        """Hard-link into this store the packs of ``src`` whose bytes are at least
        ``_LINK_SHARE`` wanted blobs (``where``: their locations), as packs of its own under new
        names; the blobs keep their offsets. An import of a bundle on the same file system so
        costs no copy of its bytes (nor a second copy in the page cache). Safe because a pack is
        never written once its writer moved on: a new process appends only to packs it made, and
        gc writes new packs and deletes old ones, which removes a name, not the other's file. The
        other blobs of a linked pack are garbage here, for gc. Only a pack the user owns and no
        one else may read or write is linked. Where links cannot be made (another file system, a
        file system without them, Windows), nothing is linked and the caller copies."""
        if os.name == "nt" or not where:
            return []
        by_pack: dict[str, list[Location]] = {}
        for loc in where.values():
            if loc.pack is not None:
                by_pack.setdefault(loc.pack, []).append(loc)
        out: list[Written] = []
        linked: list[Path] = []
        for pack, locs in sorted(by_pack.items()):
            source = src.pack_path(pack)
            try:
                with open(source, "rb") as f:
                    if f.read(len(PACK_MAGIC)) != PACK_MAGIC:  # another format version: copy
                        continue
                    st = os.fstat(f.fileno())
            except OSError:
                continue
            # A linked file is as private as the store's own only when it is the user's and no one
            # else may read or write it (a pack fetched with the umask's mode is copied instead).
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                continue
            size = st.st_size
            if sum(loc.stored for loc in locs) < _LINK_SHARE * (size - len(PACK_MAGIC)):
                continue  # mostly other blobs: copying the wanted ones is smaller
            self.packs.mkdir(parents=True, exist_ok=True, mode=0o700)
            name = f"pack-{secrets.token_hex(8)}.pack"
            try:
                os.link(source, self.packs / name)
            except OSError:
                break  # one failure (EXDEV, EPERM, no links): the rest fail alike
            linked.append(self.packs / name)
            for loc in locs:
                w = Written(loc.hash, loc.size, loc.stored, loc.codec, name, loc.offset)
                self._uncommitted[loc.hash] = w
                out.append(w)
        if linked and self.fsync:
            try:
                # The source's bytes may never have been synced (a bundle just extracted or
                # downloaded), nor the new names: both are durable before the index names them.
                for path in [*linked, self.packs]:
                    _fsync_path(path)
            except OSError:
                for w in out:
                    self._uncommitted.pop(w.hash, None)
                for path in linked:
                    path.unlink(missing_ok=True)
                return []
        return out

    def _append_stored(self, loc: Location, payload: bytes | memoryview) -> Written:
        self._ensure_pack()
        f = self._pack_file
        assert f is not None and self._pack is not None
        offset = f.tell()
        if loc.codec == "raw" and len(payload) >= _ALIGN_MIN and offset % _ALIGN:
            f.write(b"\0" * (_ALIGN - offset % _ALIGN))
            offset = f.tell()
        f.write(payload)
        self._dirty = True
        w = Written(loc.hash, loc.size, len(payload), loc.codec, self._pack, offset)
        self._uncommitted[loc.hash] = w
        return w

    def rewrite(self, locations: Iterable[Location]) -> list[Written]:
        """Copy blobs into a fresh pack (for compaction); synced when this returns."""
        self._close_pack()
        out = []
        for loc in locations:
            payload = self.read_stored(loc)
            self.check(loc, payload)
            out.append(self._append_stored(loc, payload))
        self.sync()
        self._close_pack()
        return out

    # --- reading ------------------------------------------------------------------------------

    def _fd(self, pack: str) -> int:
        fd = self._readers.get(pack)
        if fd is None:
            if self._pack == pack and self._dirty and self._pack_file is not None:
                self._pack_file.flush()
            try:
                fd = os.open(self.pack_path(pack), os.O_RDONLY | getattr(os, "O_BINARY", 0))
            except FileNotFoundError:
                raise BlobError(f"pack {pack} is missing from {self.packs}") from None
            self._readers[pack] = fd
        elif self._pack == pack and self._dirty and self._pack_file is not None:
            self._pack_file.flush()
        return fd

    def _pread_into(self, fd: int, view: memoryview, offset: int) -> int:
        done = 0
        while done < len(view):
            if hasattr(os, "preadv"):
                n = os.preadv(fd, [view[done:]], offset + done)
            else:  # pragma: no cover - Windows
                data = os.pread(fd, len(view) - done, offset + done) if hasattr(os, "pread") else b""
                n = len(data)
                view[done : done + n] = data
            if n <= 0:
                break
            done += n
        return done

    def read_stored(self, loc: Location) -> bytes:
        """The stored bytes of a blob (compressed when its codec says so), unverified."""
        if loc.pack is None:
            try:
                return self.path(loc.hash).read_bytes()[4:]
            except FileNotFoundError:
                raise BlobError(f"blob {loc.hash} is missing from {self.root}") from None
        fd = self._fd(loc.pack)
        if hasattr(os, "pread"):  # one read into the bytes returned, rather than a copy of a buffer
            data = os.pread(fd, loc.stored, loc.offset)
            if len(data) == loc.stored:
                return data
        buf = bytearray(loc.stored)
        got = self._pread_into(fd, memoryview(buf), loc.offset)
        if got != loc.stored:
            raise BlobError(f"blob {loc.hash} is damaged: its pack {loc.pack} ends {loc.stored - got} bytes early")
        return bytes(buf)

    def _decode(self, loc: Location, payload: bytes | memoryview) -> bytes:
        if loc.codec == "patch":  # ``payload`` over its base, rebuilt (and checked) as any chunk
            patch = read_patch(payload, loc.hash)
            base = self.locate([patch.base]).get(patch.base)
            if base is None:
                raise BlobError(f"blob {loc.hash} is damaged: the blob it patches ({patch.base}) is missing")
            # (a loose file of version 1 is never written as a base, but read)
            content = bytearray(self._get(base)) if base.pack is None else self._content(base)
            patch.apply(memoryview(content))
            return bytes(content)
        if loc.codec == "delta":
            try:
                base_hash = bytes(memoryview(payload)[6:_PATCH_HEAD]).decode("ascii")
            except UnicodeDecodeError:
                base_hash = None
            base = self.locate([base_hash]).get(base_hash) if base_hash else None
            if base is None:
                raise BlobError(f"blob {loc.hash} is damaged: the blob it is a delta of ({base_hash or 'unreadable'}) is missing")
            return apply_delta(payload, self._content(base), loc.size, loc.hash)
        if loc.codec == "zstd":
            try:
                return _thread_decompressor().decompress(payload)
            except zstandard.ZstdError as exc:
                raise BlobError(f"blob {loc.hash} is damaged: {exc}") from None
        if loc.codec == "raw":
            return bytes(payload)
        raise BlobError(f"blob {loc.hash} is damaged: unknown codec {loc.codec!r}")

    def check(self, loc: Location, payload: bytes | memoryview) -> None:
        """Raise BlobError unless ``payload`` decodes to content named ``loc.hash``."""
        data = self._decode(loc, payload)
        if (loc.size >= 0 and len(data) != loc.size) or digest(data) != loc.hash:
            raise BlobError(f"blob {loc.hash} is damaged: its content does not match its hash")

    def get(self, h: str) -> bytes:
        """The verified content of blob ``h``; raises BlobError when missing or damaged."""
        loc = self.locate([h]).get(h)
        if loc is None:
            raise BlobError(f"blob {h} is missing from {self.root}")
        return self._get(loc)

    def _get(self, loc: Location) -> bytes:
        h = loc.hash
        if loc.pack is None:
            try:
                raw = self.path(h).read_bytes()
            except FileNotFoundError:
                raise BlobError(f"blob {h} is missing from {self.root}") from None
            header, payload = raw[:4], memoryview(raw)[4:]
            codec = {_HEADER_ZSTD: "zstd", _HEADER_RAW: "raw"}.get(header)
            if codec is None:
                raise BlobError(f"blob {h} is damaged: unknown header {header!r}")
            data = self._decode(Location(h, -1, len(payload), codec, None, 4), payload)
        else:
            data = self._decode(loc, self.read_stored(loc))
        if (loc.size >= 0 and len(data) != loc.size) or digest(data) != h:
            raise BlobError(f"blob {h} is damaged: its content does not match its hash")
        return data

    def read_into(self, hashes: list[str], length: int, allow_map: bool = False) -> bytearray | mmap.mmap:
        """A buffer of ``length`` bytes assembled from its chunks, each verified.

        Raw chunks are read straight into the buffer and compressed ones decompressed into it.
        With ``allow_map``, a large buffer whose raw chunks lie in order in one pack comes back
        as a private copy-on-write mapping of that pack (writable; the pack never changes), its
        other chunks written into it; the mapped chunks are verified in the background and any
        damage is listed in ``damaged``.
        """
        where = self.locate(list(dict.fromkeys(hashes)))
        for h in hashes:
            if h not in where:
                raise BlobError(f"blob {h} is missing from {self.root}")
        if allow_map and length >= MMAP_MIN and mapping_enabled():
            mapped = self._map(hashes, length, where)
            if mapped is not None:
                return mapped
        out = fresh_buffer(length)
        self._fill(memoryview(out), hashes, where, length)
        return out

    def read_many(self, buffers: Sequence[tuple[list[str], int]], allow_map: bool = False) -> list[bytearray | mmap.mmap]:
        """``read_into`` for several buffers (chunk hashes, length), side by side when they are
        large enough together for threads to pay."""
        if _threads_pay(sum(n for _, n in buffers), len(buffers)):
            locations = self.locate([h for hs, _ in buffers for h in hs]).values()
            return self._side_by_side(self.read_into, [(hs, n, allow_map) for hs, n in buffers], locations)
        return [self.read_into(hs, n, allow_map=allow_map) for hs, n in buffers]

    def read_ahead(self, runs: Sequence[tuple[list[str], int, bool]]) -> list[Future] | None:
        """Start ``read_into(hashes, length, allow_map)`` for each of ``runs`` in the read pool,
        in order, and return at once: futures of the buffers. None when threads would not pay
        (one core, too few bytes, or called from the pool). The chunks are located and their
        packs opened here, so that the threads only read."""
        if not _threads_pay(sum(n for _, n, _ in runs), len(runs)):
            return None
        where = self.locate(list(dict.fromkeys(h for hs, _, _ in runs for h in hs)))
        for pack in {loc.pack for loc in where.values() if loc.pack is not None}:
            self._fd(pack)
        pool = _pool()
        return [pool.submit(_pooled, self.read_into, hs, n, allow_map) for hs, n, allow_map in runs]

    def _side_by_side(self, fn: Callable[..., Any], calls: list[tuple], locations: Iterable[Location]) -> list[Any]:
        """``fn(*args)`` for each of ``calls`` in the pool; zstd and xxhash release the GIL. The
        packs the calls read are opened here first, so that the threads only read."""
        for pack in {loc.pack for loc in locations if loc.pack is not None}:
            self._fd(pack)
        return list(_pool().map(lambda args: _pooled(fn, *args), calls))

    def _fill(self, view: memoryview, hashes: list[str], where: dict[str, Location], length: int, skip: set[int] | None = None) -> None:
        pos = 0
        tasks: list[tuple[Location, memoryview]] = []
        for i, h in enumerate(hashes):
            loc = where[h]
            size = loc.size
            if size < 0 or loc.pack is None:  # loose file of version 1
                data = self._get(loc)
                size = len(data)
                if pos + size > length:
                    raise BlobError(f"chunks {hashes[:1]}... add up to more than {length} bytes")
                if skip is None or i not in skip:
                    view[pos : pos + size] = data
                pos += size
                continue
            if pos + size > length:
                raise BlobError(f"chunks {hashes[:1]}... add up to more than {length} bytes")
            if skip is not None and i in skip:
                pos += size
                continue
            tasks.append((loc, view[pos : pos + size]))
            pos += size
        if pos != length:
            raise BlobError(f"chunks {hashes[:1]}... add up to {pos} bytes, expected {length}")
        chains = self._chains(loc for loc, _ in tasks) if any(loc.codec in _BASED for loc, _ in tasks) else {}
        work = sum(loc.size if loc.codec in _BASED else loc.stored for loc, _ in tasks if loc.codec != "raw")
        if _threads_pay(work, len(tasks)):
            self._side_by_side(self._fill_one, [(loc, dest, chains) for loc, dest in tasks], [loc for loc, _ in tasks] + list(chains.values()))
        else:
            for loc, dest in tasks:
                self._fill_one(loc, dest, chains)

    def _fill_one(self, loc: Location, dest: memoryview, chains: dict[str, Location] | None = None, verify: bool = True) -> None:
        """Read (and decompress, or rebuild from its chain of patches) one chunk into ``dest``
        and check its hash. ``chains``: the bases of the patches involved (see ``_chains``)."""
        if loc.codec == "patch":
            root, patches = self._chain_of(loc, chains or {})
            if root.pack is None:
                dest[:] = self._get(root)
            else:
                self._fill_one(root, dest, verify=False)
            self._apply_patches(patches, dest)
        elif loc.codec == "delta":
            base = (chains or {}).get(loc.hash)
            if base is None:
                raise BlobError(f"blob {loc.hash} is damaged: the blob it is a delta of ({self._patch_base(loc) or 'unreadable'}) is missing")
            dest[:] = apply_delta(self.read_stored(loc), self._content(base, chains), len(dest), loc.hash)
        elif loc.codec == "raw":
            got = self._pread_into(self._fd(loc.pack), dest, loc.offset)
            if got != len(dest):
                raise BlobError(f"blob {loc.hash} is damaged: its pack {loc.pack} ends {len(dest) - got} bytes early")
        else:
            self._decompress_into(loc, self.read_stored(loc), dest)
        if verify and digest(dest) != loc.hash:
            raise BlobError(f"blob {loc.hash} is damaged: its content does not match its hash")

    def _chain_of(self, loc: Location, chains: dict[str, Location]) -> tuple[Location, list[Location]]:
        """The full chunk at the bottom of a patch's chain, and the patches above it, top first."""
        patches = []
        while loc.codec == "patch":
            base = chains.get(loc.hash)
            if base is None:
                named = self._patch_base(loc)
                raise BlobError(f"blob {patches[0].hash if patches else loc.hash} is damaged: the blob {loc.hash if patches else 'it'} patches ({named or 'unreadable'}) is missing")
            if len(patches) > PATCH_DEPTH:
                raise BlobError(f"blob {loc.hash} is damaged: its chain of patches is longer than {PATCH_DEPTH}")
            patches.append(loc)
            loc = base
        return loc, patches

    def _apply_patches(self, patches: list[Location], dest: memoryview) -> None:
        for p in reversed(patches):
            read_patch(self.read_stored(p), p.hash).apply(dest)

    def _decompress_into(self, loc: Location, payload: bytes, dest: memoryview) -> None:
        if loc.codec != "zstd":
            raise BlobError(f"blob {loc.hash} is damaged: unknown codec {loc.codec!r}")
        try:
            reader = _thread_decompressor().stream_reader(payload, read_across_frames=False)
            done = 0
            while done < len(dest):
                n = reader.readinto(dest[done:])
                if not n:
                    break
                done += n
            extra = reader.read(1)
        except zstandard.ZstdError as exc:
            raise BlobError(f"blob {loc.hash} is damaged: {exc}") from None
        if done != len(dest) or extra:
            raise BlobError(f"blob {loc.hash} is damaged: it does not decompress to {len(dest)} bytes")

    def _map(self, hashes: list[str], length: int, where: dict[str, Location]) -> mmap.mmap | None:
        """A copy-on-write mapping of the pack run that holds most of the buffer, or None."""
        votes: dict[tuple[str, int], int] = {}
        pos = 0
        positions = []
        # A patch counts where the full chunk at the bottom of its chain lies: mapped, it is
        # patched in place (only the pages of the changed runs are copied).
        chains = self._chains(where.values()) if any(loc.codec == "patch" for loc in where.values()) else {}
        roots: dict[str, Location] = {}
        for h in hashes:
            loc = where[h]
            if loc.size < 0:
                return None
            positions.append(pos)
            if loc.codec == "patch" and h not in roots:
                try:
                    roots[h] = self._chain_of(loc, chains)[0]
                except BlobError:
                    roots[h] = loc
            root = roots.get(h, loc)
            if root.pack is not None and root.codec == "raw" and root.size == loc.size:
                key = (root.pack, root.offset - pos)
                votes[key] = votes.get(key, 0) + loc.size
            pos += loc.size
        if pos != length or not votes:
            return None
        (pack, base), mapped_bytes = max(votes.items(), key=lambda kv: kv[1])
        if mapped_bytes < length // 2 or base < 0 or base % mmap.ALLOCATIONGRANULARITY:
            return None
        try:
            fd = self._fd(pack)
            if os.fstat(fd).st_size < base + length:
                return None
            mm = mmap.mmap(fd, length, access=mmap.ACCESS_COPY, offset=base)
        except (OSError, ValueError, BlobError):
            return None
        in_place = {
            i for i, h in enumerate(hashes)
            if (r := roots.get(h, where[h])).pack == pack and r.codec == "raw" and r.offset == base + positions[i] and r.size == where[h].size
        }
        view = memoryview(mm)
        try:
            self._fill(view, hashes, where, length, skip=in_place)
            for i in sorted(in_place):
                loc = where[hashes[i]]
                if loc.codec == "patch":
                    dest = view[positions[i] : positions[i] + loc.size]
                    self._apply_patches(self._chain_of(loc, chains)[1], dest)
                    ok = digest(dest) == loc.hash
                    dest.release()
                    if not ok:
                        raise BlobError(f"blob {loc.hash} is damaged: its content does not match its hash")
        except BaseException:
            view.release()
            mm.close()
            raise
        view.release()
        todo = [where[hashes[i]] for i in sorted(in_place) if where[hashes[i]].codec == "raw"]
        if todo:
            t = threading.Thread(target=self._verify_in_background, args=(todo,), name="nbstate-verify", daemon=True)
            self._verifiers = [v for v in self._verifiers if v.is_alive()] + [t]
            t.start()
        return mm

    def _verify_in_background(self, locations: list[Location]) -> None:
        fd = None
        try:
            fd = os.open(self.pack_path(locations[0].pack or ""), os.O_RDONLY | getattr(os, "O_BINARY", 0))
            scratch = bytearray(max(loc.stored for loc in locations))
            view = memoryview(scratch)
            for loc in locations:
                got = self._pread_into(fd, view[: loc.stored], loc.offset)
                if got != loc.stored or digest(view[: loc.stored]) != loc.hash:
                    with self._lock:
                        self.damaged.append(loc.hash)
        except Exception:
            with self._lock:
                self.damaged.extend(loc.hash for loc in locations)
        finally:
            if fd is not None:
                os.close(fd)
        if self.damaged:
            print(
                f"nbstate: {len(self.damaged)} chunk(s) of a value restored by memory mapping are damaged "
                "in the store; check it out again with NBSTATE_MMAP=0 (the value is rebuilt by replay) "
                "and run `nbstate fsck`.",
                file=sys.stderr,
            )

    def wait_verified(self, timeout: float | None = None) -> list[str]:
        """Wait for background verifications; the hashes found damaged so far."""
        for t in list(self._verifiers):
            t.join(timeout)
        with self._lock:
            return list(self.damaged)


def pack_names(blobs: BlobFiles) -> list[str]:
    """The pack files present, by name."""
    try:
        return sorted(p.name for p in blobs.packs.iterdir() if p.name.startswith("pack-") and p.name.endswith(".pack"))
    except FileNotFoundError:
        return []


def loose_hashes(blobs: BlobFiles) -> list[str]:
    """Hashes of the loose blob files (format version 1) present."""
    out = []
    try:
        dirs = list(blobs.root.iterdir())
    except FileNotFoundError:
        return out
    for d in dirs:
        if len(d.name) != 2 or not d.is_dir():
            continue
        for f in d.iterdir():
            if not f.name.startswith(".tmp-") and len(f.name) == 30:
                out.append(d.name + f.name)
    return sorted(out)
