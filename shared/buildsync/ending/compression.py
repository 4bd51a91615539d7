"""The two compressions Buildbucket stores and sends: zlib and zstd.

zstd frames written by Buildbucket's Go encoder may leave out the content
size, so decompression streams instead of trusting a size in the header.
"""

from __future__ import annotations

import zlib

import zstandard

from buildsync.proto import notification_pb2 as npb


def compress(data: bytes, compression: int) -> bytes:
    """`data` compressed with `compression` (notification_pb2.ZLIB or ZSTD)."""
    if compression == npb.ZLIB:
        return zlib.compress(data)
    if compression == npb.ZSTD:
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(f"unknown compression {compression}")


def decompress(data: bytes, compression: int) -> bytes:
    """The bytes `compress` took; raises ValueError when `data` is not such a stream."""
    try:
        if compression == npb.ZLIB:
            return zlib.decompress(data)
        if compression == npb.ZSTD:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except (zlib.error, zstandard.ZstdError) as error:
        raise ValueError(f"not a {npb.Compression.Name(compression)} stream: {error}") from error
    raise ValueError(f"unknown compression {compression}")
