"""Keeping Buildbucket's Datastore cache true: dscache's write protocol on its Redis.

Buildbucket's frontend reads BuildStatus (and Project) entities through
dscache, a Redis cache kept for 24 hours, and `bb collect` polls the build's
status through it. A writer that bypasses dscache leaves the cached status in
place after the build ended. So every transaction of ours that writes a
cached kind locks the entity's cache key right before its commit, and deletes
the lock after the commit succeeded; after a failed commit the lock expires by
itself, so no reader caches a status that may be stale meanwhile
(docs/handoff.md "The dscache write protocol").

The key is dscache's: `gae:1:0:` and the unpadded standard base64 of the SHA-1
of the Datastore key serialized as luci/gae serializes it, without project or
namespace. `serialize_key` and the cmpbin writers below are that format.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from buildsync import logs
from buildsync.errors import TransientError

# The kinds Buildbucket's frontend caches, one cache shard each (its main.go, cacheEnabled).
CACHED_KINDS = frozenset({"Project", "BuildStatus"})

# dscache's lock on a key being written: a bare "L", kept this many seconds
# (longer than any commit); a reader's lock is "L" + its 8-byte nonce.
LOCK_VALUE = b"L"
MUTATION_LOCK_SECONDS = 120

# A lock that cannot be set in this long fails the transaction: it must not
# commit while a reader may still cache the old value.
REDIS_TIMEOUT_SECONDS = 5.0

_KEY_PREFIX = "gae:1:0:"  # dscache's format version 1, shard 0 (the only shard)
_TYPE_INT, _TYPE_STRING = 1, 5  # luci/gae property types of a key's id


def cmpbin_uint(value: int) -> bytes:
    """A non-negative integer in luci's cmpbin encoding (common/data/cmpbin, number.go)."""
    return _sign_magnitude(value, 0)


def cmpbin_int(value: int) -> bytes:
    """A signed 64-bit integer in cmpbin: negative numbers are the inverted bytes of their magnitude."""
    if value < 0:
        return _sign_magnitude((-value) & 0xFFFFFFFFFFFFFFFF, 0xFF)
    return _sign_magnitude(value, 0)


def _sign_magnitude(magnitude: int, invert: int) -> bytes:
    bits = max(magnitude.bit_length(), 1)
    out = bytearray([(0x80 | (bits - 1)) ^ invert])
    while bits > 8:
        bits -= 8
        out.append(((magnitude >> bits) & 0xFF) ^ invert)
    out.append(((magnitude << (8 - bits)) & 0xFF) ^ invert)
    return bytes(out)


def cmpbin_bytes(data: bytes) -> bytes:
    """Bytes in cmpbin: 7 data bits per byte, the lowest bit set while more follow (string.go)."""
    out = bytearray()
    carry = 0
    for index, byte in enumerate(data):
        shift = index % 7
        out.append(carry | 1 | ((byte & ((0xFF << (shift + 1)) & 0xFF)) >> shift))
        carry = (byte << (7 - shift)) & 0xFF
        if shift == 6:
            out.append(carry | 1)
            carry = 0
    out.append(carry)
    return bytes(out)


def serialize_key(flat_path: tuple) -> bytes:
    """A Datastore key's path as luci/gae's Serializer writes it without key context."""
    out = bytearray([0])
    for index in range(0, len(flat_path), 2):
        kind, id_or_name = flat_path[index], flat_path[index + 1]
        out += b"\x01" + cmpbin_bytes(kind.encode())
        if isinstance(id_or_name, str):
            out += bytes([_TYPE_STRING]) + cmpbin_bytes(id_or_name.encode())
        else:
            out += bytes([_TYPE_INT]) + cmpbin_int(id_or_name)
    out.append(0)
    return bytes(out)


def cache_key(flat_path: tuple) -> str:
    """The Redis key under which dscache keeps the entity of `flat_path`."""
    digest = hashlib.sha1(serialize_key(flat_path)).digest()
    return _KEY_PREFIX + base64.b64encode(digest).decode().rstrip("=")


class Cache:
    """Buildbucket's Redis, as dscache writes to it; thread-safe (redis-py pools its connections)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @classmethod
    def at(cls, address: str) -> Cache:
        """The cache at `host:port` (BUILDSYNC_DSCACHE_REDIS)."""
        host, _, port = address.rpartition(":")
        timeout = REDIS_TIMEOUT_SECONDS
        client = redis.Redis(
            host=host.strip("[]"),
            port=int(port),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One try: the transaction owns the retries (transactions.py). redis-py's
            # own ten, with backoff, would make one attempt against a Redis that is
            # down last a minute or more, and each of the transaction's attempts too.
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client)

    def write_locks(self) -> WriteLocks:
        """The locks of one transaction, over all its attempts."""
        return WriteLocks(self.client)


class WriteLocks:
    """The cache keys one transaction locked; locked before each commit attempt, released after success."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._locked: set[str] = set()

    def lock(self, flat_paths: Iterable[tuple]) -> None:
        """Locks the cache keys of the entities of a cached kind among `flat_paths`; call right before the commit.

        Raises TransientError when Redis cannot take them: the transaction
        must then fail rather than commit under a cache that may serve its
        old values.
        """
        keys = sorted({cache_key(path) for path in flat_paths if path[-2] in CACHED_KINDS})
        if not keys:
            return
        self._locked.update(keys)
        pipeline = self._client.pipeline(transaction=False)
        for key in keys:
            pipeline.set(key, LOCK_VALUE, ex=MUTATION_LOCK_SECONDS)
        try:
            pipeline.execute()
        except redis.RedisError as error:
            raise TransientError(f"locking {len(keys)} dscache keys before the commit: {error}") from error

    def release(self) -> None:
        """Deletes every lock taken, after the commit succeeded; a failure only delays readers until expiry."""
        if not self._locked:
            return
        try:
            self._client.delete(*sorted(self._locked))
        except redis.RedisError as error:
            logs.event("WARNING", "dscache locks left to expire", keys=len(self._locked), error=str(error))
