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
handled here (``ChunkSource.direct`` is False) and the caller falls back to zarr. Chunks never
written (all fill value) come back as None. The CRC32C of shard indexes is not checked.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_EMPTY = np.uint64(2**64 - 1)


class ChunkSource:
    """Encoded-chunk reader for one zarr v3 array (see the module docstring).

    Args:
        arr: the ``zarr.Array``.
    """

    def __init__(self, arr: Any) -> None:
        import numcodecs
        from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
        from zarr.storage import LocalStore

        self.arr = arr
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

    def _parse_index(self, blob: bytes | None) -> np.ndarray | None:
        if blob is None:
            return None
        return np.frombuffer(blob[: 16 * self.per_shard], dtype="<u8").reshape(self.per_shard, 2)

    # -- local files ----------------------------------------------------------------------------

    def read_local(self, c: int) -> bytes | None:
        """Encoded bytes of chunk ``c`` from a local store (None if never written)."""
        if self.per_shard is None:
            try:
                with open(os.path.join(self.root, self._key(c)), "rb") as fh:
                    return fh.read()
            except FileNotFoundError:
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
                self._indexes[s] = self._parse_index(os.pread(fd, n, size - n))
            off, nbytes = self._indexes[s][j]
            if off == _EMPTY:
                return None
            return os.pread(fd, int(nbytes), int(off))
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
            self._indexes[s] = self._parse_index(None if tail is None else tail.to_bytes())
        index = self._indexes[s]
        if index is None or index[j][0] == _EMPTY:
            return None
        off, nbytes = int(index[j][0]), int(index[j][1])
        buf = await store.get(self._key(s), prototype=proto, byte_range=RangeByteRequest(off, off + nbytes))
        return None if buf is None else buf.to_bytes()

    def decode(self, raw: bytes | None, n: int) -> np.ndarray:
        """``(n,)`` uint8 chunk from encoded bytes (zarr stores edge chunks at full size: trim)."""
        if raw is None:
            return np.full(n, self.fill_value, dtype=np.uint8)
        return np.frombuffer(self.decoder.decode(raw), dtype=np.uint8)[:n]
