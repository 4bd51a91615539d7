"""The two compressions Buildbucket stores and sends: zlib and zstd.

zstd frames written by Buildbucket's Go encoder may leave out the content
size, so decompression streams instead of trusting a size in the header.
"""

from __future__ import annotations

import zlib

import zstandard
from google.protobuf.message import DecodeError

from buildsync import wire
from buildsync.proto import notification_pb2 as npb


def compress(data: bytes, compression: int) -> bytes:
    """`data` compressed with `compression` (notification_pb2.ZLIB or ZSTD)."""
    if compression == npb.ZLIB:
        return zlib.compress(data)
    if compression == npb.ZSTD:
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(f"unknown compression {compression}")


def decompress(data: bytes, compression: int) -> bytes:
    """The bytes `compress` took; raises ValueError when `data` is not such a stream, or inflates too far (wire.py)."""
    inflate = {npb.ZLIB: wire.inflate_zlib, npb.ZSTD: wire.inflate_zstd}.get(compression)
    if inflate is None:
        raise ValueError(f"unknown compression {compression}")
    try:
        return inflate(data)
    except DecodeError as error:
        raise ValueError(f"{npb.Compression.Name(compression)}: {error}") from error
