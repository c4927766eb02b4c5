"""Content-addressed blobs: chunking, hashing, compression, and the files that hold them.

A blob is immutable bytes named by the xxh3-128 hash of its uncompressed content. Large
buffers are cut into fixed-size chunks, each its own blob, so that a small edit of a large
array stores one chunk, not the array. Every read verifies the hash. This module never imports
IPython and never touches the SQLite metadata.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash
import zstandard

CHUNK_SIZE = 1 << 20
_HEADER_RAW = b"NBr1"
_HEADER_ZSTD = b"NBz1"
_SAMPLE = 64 << 10
_ZSTD_LEVEL = 1
# Compress a chunk only when a sample of it shrinks to at most this share of its size.
_WORTH_IT = 0.9


class BlobError(Exception):
    """A blob is missing or its content does not match its name."""


def digest(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


@dataclass(frozen=True)
class Chunk:
    hash: str
    data: memoryview


def split(buf: bytes | memoryview) -> Iterator[Chunk]:
    """Cut ``buf`` into CHUNK_SIZE pieces and name each by its hash (no copies are made)."""
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) or buf.format != "B" or buf.ndim != 1 else buf
    for start in range(0, max(len(view), 1), CHUNK_SIZE):
        piece = view[start : start + CHUNK_SIZE]
        yield Chunk(digest(piece), piece)


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
    """One blob this process wrote: what the metadata needs to know of it."""

    hash: str
    size: int
    stored_size: int
    codec: str


class BlobFiles:
    """Blobs as files ``objects/ab/cdef...`` under a store directory, written atomically."""

    def __init__(self, root: Path, create: bool = True) -> None:
        self.root = root / "objects"
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        self._seen: set[str] = set()
        self._compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        self._decompressor = zstandard.ZstdDecompressor()

    def path(self, h: str) -> Path:
        return self.root / h[:2] / h[2:]

    def has(self, h: str) -> bool:
        if h in self._seen:
            return True
        if self.path(h).exists():
            self._seen.add(h)
            return True
        return False

    def put(self, chunk: Chunk) -> Written | None:
        """Store a chunk unless it is already there; returns what was written, or None."""
        if self.has(chunk.hash):
            return None
        payload, header = self._encode(chunk.data)
        target = self.path(chunk.hash)
        target.parent.mkdir(exist_ok=True)
        tmp = target.parent / f".tmp-{secrets.token_hex(6)}"
        try:
            with open(tmp, "wb") as f:
                f.write(header)
                f.write(payload)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._seen.add(chunk.hash)
        return Written(chunk.hash, len(chunk.data), len(header) + len(payload), "zstd" if header == _HEADER_ZSTD else "raw")

    def _encode(self, data: memoryview) -> tuple[bytes | memoryview, bytes]:
        n = len(data)
        if n >= 256:
            sample = data[: min(n, _SAMPLE)]
            if len(self._compressor.compress(sample)) <= _WORTH_IT * len(sample):
                return self._compressor.compress(data), _HEADER_ZSTD
        return data, _HEADER_RAW

    def get(self, h: str) -> bytes:
        """The verified content of blob ``h``; raises BlobError when missing or damaged."""
        try:
            raw = self.path(h).read_bytes()
        except FileNotFoundError:
            raise BlobError(f"blob {h} is missing from {self.root}") from None
        header, payload = raw[:4], memoryview(raw)[4:]
        if header == _HEADER_ZSTD:
            try:
                data = self._decompressor.decompress(payload)
            except zstandard.ZstdError as exc:
                raise BlobError(f"blob {h} is damaged: {exc}") from None
        elif header == _HEADER_RAW:
            data = bytes(payload)
        else:
            raise BlobError(f"blob {h} is damaged: unknown header {header!r}")
        if digest(data) != h:
            raise BlobError(f"blob {h} is damaged: its content does not match its hash")
        return data

    def read_into(self, hashes: list[str], length: int) -> bytearray:
        """Assemble a buffer of ``length`` bytes from its chunks, verifying each."""
        out = bytearray(length)
        view = memoryview(out)
        pos = 0
        for h in hashes:
            data = self.get(h)
            view[pos : pos + len(data)] = data
            pos += len(data)
        if pos != length:
            raise BlobError(f"chunks {hashes[:1]}... add up to {pos} bytes, expected {length}")
        return out
