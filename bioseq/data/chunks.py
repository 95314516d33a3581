"""Raw chunk access for genome-store arrays: the cold-read fast path of :class:`GenomeStore`.

zarr's async read pipeline costs about 1 ms per chunk (event-loop round trips, thread hops,
generic indexing), which dominates when a training batch touches hundreds of chunks it has not
cached. For the two layouts :func:`~bioseq.data.store.build_store` writes, this module reads the
encoded bytes of one chunk directly and decodes them with numcodecs:

- **unsharded**: chunk ``c`` is the object ``<array>/c/<c>``;
- **sharded** (``sharding_indexed``, index at the end, ``bytes`` + ``crc32c`` index codecs): shard
  ``s = c // k`` is the object ``<array>/c/<s>``, ending in a little-endian ``(k, 2)`` uint64 table
  of ``(offset, nbytes)`` per inner chunk (``2**64 - 1`` for an empty one) and a 4-byte CRC32C.
  The table is read once per shard and cached; chunk bytes are then a byte-range read.

Local stores use plain file reads (``os.pread``); other stores go through the zarr store's own
``get`` (with byte ranges), so remote URLs keep working. Arrays with any other codec chain are not
handled here (``ChunkSource.direct`` is False) and the caller falls back to zarr.

Integrity (format version 2 stores): each chunk's codec chain ends in zarr's ``crc32c`` codec, whose
4-byte CRC32C is checked here before the bytes reach the decompressor, and so is the CRC32C of each
shard index. ``strict`` sources (version 2) raise :class:`StoreIntegrityError` for a chunk that is
absent, instead of returning the fill value: version 2 stores write every chunk, even all-N ones.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_EMPTY = np.uint64(2**64 - 1)


class StoreIntegrityError(ValueError):
    """Stored data that fails a check: a missing chunk, a checksum mismatch, a truncated shard."""


def crc32c(data: Any) -> int:
    """CRC32C (Castagnoli) of a bytes-like object, the checksum of zarr's ``crc32c`` codec."""
    import google_crc32c

    return google_crc32c.value(data if isinstance(data, bytes) else bytes(data))  # it takes bytes only


def strip_crc32c(raw: bytes, where: str) -> bytes:
    """The payload of ``raw`` (bytes + 4-byte little-endian CRC32C), after checking the CRC."""
    if len(raw) < 4:
        raise StoreIntegrityError(f"{where}: {len(raw)} bytes, too short to hold its checksum")
    body = raw[:-4]
    stored = int.from_bytes(raw[-4:], "little")
    if crc32c(body) != stored:
        raise StoreIntegrityError(f"{where}: CRC32C mismatch (stored {stored:08x}, computed {crc32c(body):08x}): "
                                  "the chunk file is corrupted")
    return body


class ChunkSource:
    """Encoded-chunk reader for one zarr v3 array (see the module docstring).

    Args:
        arr: the ``zarr.Array``.
        strict: an absent chunk is an error (format version 2 writes every chunk), not the fill value.
    """

    def __init__(self, arr: Any, strict: bool = False) -> None:
        import numcodecs
        from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
        from zarr.storage import LocalStore

        self.arr = arr
        self.strict = strict
        self.name = arr.store_path.path or "/"
        self.crc = False  # the codec chain ends in crc32c
        self.decoder = None
        self.per_shard: int | None = None  # inner chunks per shard, None when unsharded
        self._indexes: dict[int, np.ndarray | None] = {}
        codecs = arr.metadata.codecs
        if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
            shard = codecs[0]
            index_ok = (
                shard.index_location.value == "end"
                and len(shard.index_codecs) == 2
                and isinstance(shard.index_codecs[0], BytesCodec)
                and isinstance(shard.index_codecs[1], Crc32cCodec)
            )
            if not index_ok:
                return
            self.per_shard = arr.metadata.chunk_grid.chunk_shape[0] // shard.chunk_shape[0]
            codecs = shard.codecs
        if len(codecs) == 3 and isinstance(codecs[2], Crc32cCodec):
            self.crc, codecs = True, codecs[:2]
        if len(codecs) == 2 and isinstance(codecs[0], BytesCodec):
            if isinstance(codecs[1], BloscCodec):
                self.decoder = numcodecs.Blosc()
            elif isinstance(codecs[1], ZstdCodec):
                self.decoder = numcodecs.Zstd()
        store = arr.store_path.store
        self.root = str(store.root) if isinstance(store, LocalStore) else None
        self.fill_value = int(arr.metadata.fill_value)

    @property
    def direct(self) -> bool:
        """Whether this reader handles the array (else read it through zarr)."""
        return self.decoder is not None

    def _key(self, c: int) -> str:
        key = self.arr.metadata.encode_chunk_key((c,))
        return f"{self.arr.store_path.path}/{key}" if self.arr.store_path.path else key

    def _split(self, c: int) -> tuple[int, int]:
        return divmod(c, self.per_shard)  # (shard, chunk inside the shard)

    def _parse_index(self, blob: bytes | None, s: int, size: int | None = None) -> np.ndarray | None:
        """The ``(k, 2)`` (offset, nbytes) table of shard ``s`` from its last ``16 k + 4`` bytes."""
        if blob is None:
            return None
        where = f"{self.name} shard {s}"
        n = 16 * self.per_shard
        if len(blob) != n + 4:
            raise StoreIntegrityError(f"{where}: truncated ({len(blob)} index bytes, expected {n + 4})")
        if self.crc or self.strict:  # version 2 stores: the shard index's own CRC32C is checked too
            strip_crc32c(blob, f"{where} index")
        index = np.frombuffer(blob[:n], dtype="<u8").reshape(self.per_shard, 2)
        used = index[index[:, 0] != _EMPTY]
        if size is not None and len(used) and int((used[:, 0] + used[:, 1]).max()) > size - n - 4:
            raise StoreIntegrityError(f"{where}: index points past the end of the shard (truncated file?)")
        return index

    # -- local files ----------------------------------------------------------------------------

    def read_local(self, c: int) -> bytes | None:
        """Encoded bytes of chunk ``c`` from a local store (None if never written)."""
        if self.per_shard is None:
            try:
                with open(os.path.join(self.root, self._key(c)), "rb") as fh:
                    return fh.read()
            except (FileNotFoundError, NotADirectoryError):
                return None
        s, j = self._split(c)
        path = os.path.join(self.root, self._key(s))
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            if s not in self._indexes:
                size = os.fstat(fd).st_size
                n = 16 * self.per_shard + 4
                self._indexes[s] = self._parse_index(os.pread(fd, n, max(size - n, 0)), s, size)
            off, nbytes = self._indexes[s][j]
            if off == _EMPTY:
                return None
            raw = os.pread(fd, int(nbytes), int(off))
            if len(raw) != int(nbytes):
                raise StoreIntegrityError(f"{self.name} shard {s}: truncated")
            return raw
        finally:
            os.close(fd)

    # -- any zarr store (remote, in-memory) -----------------------------------------------------

    async def read_remote(self, c: int) -> bytes | None:
        """Encoded bytes of chunk ``c`` through the zarr store (byte ranges for shards)."""
        from zarr.abc.store import RangeByteRequest, SuffixByteRequest
        from zarr.core.buffer import default_buffer_prototype

        store, proto = self.arr.store_path.store, default_buffer_prototype()
        if self.per_shard is None:
            buf = await store.get(self._key(c), prototype=proto)
            return None if buf is None else buf.to_bytes()
        s, j = self._split(c)
        if s not in self._indexes:
            tail = await store.get(self._key(s), prototype=proto,
                                   byte_range=SuffixByteRequest(16 * self.per_shard + 4))
            self._indexes[s] = self._parse_index(None if tail is None else tail.to_bytes(), s)
        index = self._indexes[s]
        if index is None or index[j][0] == _EMPTY:
            return None
        off, nbytes = int(index[j][0]), int(index[j][1])
        buf = await store.get(self._key(s), prototype=proto, byte_range=RangeByteRequest(off, off + nbytes))
        return None if buf is None else buf.to_bytes()

    def decode(self, raw: bytes | None, n: int, c: int) -> np.ndarray:
        """``(n,)`` uint8 chunk ``c`` from its encoded bytes (zarr stores edge chunks at full size: trim).

        Raises:
            StoreIntegrityError: the chunk is absent from a strict store, fails its CRC32C, or does not
                decompress to a full chunk.
        """
        where = f"{self.name} chunk {c}"
        if raw is None:
            if self.strict:
                raise StoreIntegrityError(f"{where}: missing (deleted or never written)")
            return np.full(n, self.fill_value, dtype=np.uint8)
        if self.crc:
            raw = strip_crc32c(raw, where)
        try:
            data = np.frombuffer(self.decoder.decode(raw), dtype=np.uint8)
        except Exception as e:  # numcodecs raises RuntimeError/ValueError on a corrupt stream
            raise StoreIntegrityError(f"{where}: does not decompress ({e})") from None
        if len(data) < n:
            raise StoreIntegrityError(f"{where}: decompresses to {len(data)} bytes, expected {n}")
        return data[:n]
