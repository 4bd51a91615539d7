"""A reader of Datastore through Buildbucket's dscache, following dscache's Get step by step.

Buildbucket's frontend reads BuildStatus this way (docs/handoff.md "The
dscache write protocol"): add a lock with a random nonce unless the key holds
something, read the key back; cached data is served as is; our own lock means
"read Datastore and fill the cache if the lock is still ours" (a Lua
compare-and-set); anyone else's lock means "read Datastore, cache nothing".
Values are written in luci/gae's binary property-map format, so this reader
and Buildbucket's read each other's entries. For tests: it proves that what
buildsync writes leaves no stale status behind.
"""

from __future__ import annotations

import datetime
import enum
import io
import os
import struct

import redis
import zstandard
from buildsync.store import dscache
from google.cloud import datastore

NONCE_BYTES = 8
REFRESH_LOCK_SECONDS = 20
CACHE_SECONDS = 24 * 3600
COMPRESSION_THRESHOLD = 16 * 1024

# dscache's compare-and-set: store the value only if the key still starts with our lock.
CAS_SCRIPT = """
if redis.call("GETRANGE", KEYS[1], 0, 9) == ARGV[1] then
	return redis.call("SET", KEYS[1], ARGV[2], "EX", ARGV[3])
end
""".strip()

# luci/gae property types.
PT_NULL, PT_INT, PT_TIME, PT_BOOL, PT_BYTES, PT_STRING, PT_FLOAT = 0, 1, 2, 3, 4, 5, 6
_INDEXED = 0x80
_NO_COMPRESSION, _ZLIB, _ZSTD = 0, 1, 2
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class Source(enum.Enum):
    CACHE = "cache"  # served from Redis
    FILLED = "filled"  # read from Datastore and stored in Redis
    DATASTORE = "datastore"  # read from Datastore, someone else's lock: nothing stored


class DscacheReader:
    """Reads entities as Buildbucket's frontend does, through the cache at `cache`."""

    def __init__(self, cache: redis.Redis, client: datastore.Client) -> None:
        self.cache = cache
        self.client = client
        self._cas = cache.register_script(CAS_SCRIPT)

    def get(self, key: datastore.Key) -> tuple[dict | None, Source]:
        """The entity's properties (None when it does not exist), and where they came from."""
        item_key = dscache.cache_key(key.flat_path)
        nonce = os.urandom(NONCE_BYTES)
        lock = b"L" + nonce
        pipeline = self.cache.pipeline(transaction=False)
        pipeline.set(item_key, lock, nx=True, ex=REFRESH_LOCK_SECONDS)
        pipeline.get(item_key)
        _, body = pipeline.execute()
        if body and body[:1] == b"D":
            return decode_value(body[1:]), Source.CACHE
        entity = self.client.get(key)
        properties = None if entity is None else dict(entity)
        if body != lock:
            return properties, Source.DATASTORE
        value = b"D" if entity is None else encode_value(entity, b"D")
        self._cas(keys=[item_key], args=[lock, value, CACHE_SECONDS])
        return properties, Source.FILLED


def encode_value(entity: datastore.Entity, prefix: bytes) -> bytes:
    """dscache's cached value: `prefix`, a compression byte, the property map (zstd above 16 KiB, as luci/server)."""
    data = property_map(entity)
    if len(prefix) + 1 + len(data) <= COMPRESSION_THRESHOLD:
        return prefix + bytes([_NO_COMPRESSION]) + data
    return prefix + bytes([_ZSTD]) + zstandard.ZstdCompressor().compress(data)


def property_map(entity: datastore.Entity) -> bytes:
    """The entity's properties in luci/gae's Serializer.PropertyMap format (rows sorted, as its tests make them)."""
    rows = []
    for name, value in entity.items():
        indexed = name not in entity.exclude_from_indexes
        row = dscache.cmpbin_bytes(name.encode())
        if isinstance(value, list):
            row += dscache.cmpbin_int(len(value)) + b"".join(_property(item, indexed) for item in value)
        else:
            row += dscache.cmpbin_int(-1) + _property(value, indexed)
        rows.append(row)
    return dscache.cmpbin_uint(len(rows)) + b"".join(sorted(rows))


def _property(value, indexed: bool) -> bytes:
    flag = _INDEXED if indexed else 0
    if value is None:
        return bytes([PT_NULL | flag])
    if isinstance(value, bool):
        return bytes([PT_BOOL | flag, int(value)])
    if isinstance(value, int):
        return bytes([PT_INT | flag]) + dscache.cmpbin_int(value)
    if isinstance(value, float):
        return bytes([PT_FLOAT | flag]) + _cmpbin_float(value)
    if isinstance(value, str):
        return bytes([PT_STRING | flag]) + dscache.cmpbin_bytes(value.encode())
    if isinstance(value, bytes):
        return bytes([PT_BYTES | flag]) + dscache.cmpbin_bytes(value)
    if isinstance(value, datetime.datetime):
        micros = (value - _EPOCH) // datetime.timedelta(microseconds=1)
        return bytes([PT_TIME | flag]) + dscache.cmpbin_int(micros)
    raise ValueError(f"no luci/gae encoding here for {type(value).__name__}")


def _cmpbin_float(value: float) -> bytes:
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    bits ^= 0xFFFFFFFFFFFFFFFF if bits >> 63 else 1 << 63
    return struct.pack(">Q", bits)


def decode_value(data: bytes) -> dict | None:
    """A cached value after its `D`: None for a cached missing entity, else the properties."""
    if not data:
        return None
    compression, body = data[0], data[1:]
    if compression == _ZSTD:
        body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    elif compression != _NO_COMPRESSION:
        raise ValueError(f"compression {compression} is not read here")
    buf = io.BytesIO(body)
    properties = {}
    for _ in range(_read_int(buf)):
        name = _read_bytes(buf).decode()
        count = _read_int(buf)
        values = [_read_property(buf) for _ in range(max(count, 1))]
        properties[name] = values[0] if count < 0 else values
    return properties


def _read_property(buf: io.BytesIO):
    kind = buf.read(1)[0] & 0x7F
    if kind == PT_NULL:
        return None
    if kind == PT_BOOL:
        return buf.read(1)[0] != 0
    if kind == PT_INT:
        return _read_int(buf)
    if kind == PT_STRING:
        return _read_bytes(buf).decode()
    if kind == PT_BYTES:
        return _read_bytes(buf)
    if kind == PT_TIME:
        return _EPOCH + datetime.timedelta(microseconds=_read_int(buf))
    raise ValueError(f"property type {kind} is not read here")


def _read_int(buf: io.BytesIO) -> int:
    """cmpbin's ReadInt (and ReadUint, for non-negative numbers)."""
    first = buf.read(1)[0]
    invert = 0 if first & 0x80 else 0xFF
    bits = ((first ^ invert) & 0x7F) + 1
    magnitude = 0
    for _ in range((bits + 7) // 8):
        magnitude = (magnitude << 8) | (buf.read(1)[0] ^ invert)
    magnitude >>= ((bits + 7) // 8) * 8 - bits
    return magnitude if not invert else -magnitude


def _read_bytes(buf: io.BytesIO) -> bytes:
    """cmpbin's ReadBytes: 7 bits a byte, until a byte whose lowest bit is clear."""
    out = bytearray()
    carry = 0
    index = 0
    while True:
        byte = buf.read(1)[0]
        data = byte & 0xFE
        shift = index % 8
        if shift == 0:
            carry = data
        else:
            out.append(carry | (data >> (8 - shift)))
            carry = (data << shift) & 0xFF
        index += 1
        if not byte & 1:
            return bytes(out)
