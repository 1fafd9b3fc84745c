"""Bytes for tier 2: a one-byte header, then the serialized (and maybe compressed) body.

The header names the serializer and whether the body is zstd-compressed, so a reader never
guesses: instances configured with different `cache_serialization` values can share one Redis
during a rolling change of that setting, and a value that does not parse is reported as
`CacheDecodeError`, which every tier treats as a miss rather than an error.

Header byte layout: bits 0-2 serializer (1 = JSON via orjson, 2 = MessagePack via msgspec),
bit 7 zstd. Any other bit set is a value we did not write.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
import orjson
import zstandard

Serialization = Literal["json", "msgpack"]

JSON: Final = 0x01
MSGPACK: Final = 0x02
ZSTD: Final = 0x80
_SERIALIZER_MASK: Final = 0x07
_KNOWN_BITS: Final = _SERIALIZER_MASK | ZSTD

DEFAULT_THRESHOLD: Final = 1024
# A corrupt or hostile frame must not make us allocate without bound.
DEFAULT_MAX_DECODED: Final = 64 * 1024 * 1024


class CacheDecodeError(ValueError):
    """Stored bytes could not be turned back into a value; the caller should treat it as a miss."""


class Codec:
    """Encodes plain data (dict, list, str, int, float, bool, None) to headed bytes and back.

    Values must be plain data so that every tier hands back the same shape: tier 1 keeps the
    loader's object, tier 2 returns what the serializer decodes, and a dataclass in one and a
    dict in the other would be a bug that only shows in scale-out mode.
    """

    __slots__ = (
        "_compress",
        "_compressor",
        "_decoder",
        "_decompressor",
        "_encoder",
        "_header",
        "_max_decoded",
        "_threshold",
    )

    def __init__(
        self,
        serialization: Serialization = "msgpack",
        *,
        compression: bool = True,
        threshold: int = DEFAULT_THRESHOLD,
        level: int = 3,
        max_decoded_size: int = DEFAULT_MAX_DECODED,
    ) -> None:
        if serialization not in ("json", "msgpack"):
            raise ValueError(f"unknown serialization {serialization!r}")
        self._header = JSON if serialization == "json" else MSGPACK
        self._compress = compression
        self._threshold = threshold
        self._max_decoded = max_decoded_size
        # Reused contexts: building a zstd context costs more than decompressing a small value.
        # Neither is thread-safe; a Codec belongs to one event loop.
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._decompressor = zstandard.ZstdDecompressor()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()

    @property
    def serialization(self) -> Serialization:
        return "json" if self._header == JSON else "msgpack"

    def encode(self, value: Any) -> bytes:
        """Serialize, and compress when the body is large enough and compression actually helps."""
        body = orjson.dumps(value) if self._header == JSON else self._encoder.encode(value)
        header = self._header
        if self._compress and len(body) >= self._threshold:
            packed = self._compressor.compress(body)
            if len(packed) < len(body):
                body = packed
                header |= ZSTD
        return bytes((header,)) + body

    def decode(self, data: bytes) -> Any:
        """Decode by the header, whatever this instance's own settings are."""
        if not data:
            raise CacheDecodeError("empty value")
        header = data[0]
        if header & ~_KNOWN_BITS:
            raise CacheDecodeError(f"unknown header byte 0x{header:02x}")
        body: bytes | memoryview = memoryview(data)[1:]
        try:
            if header & ZSTD:
                body = self._decompress(body)
            serializer = header & _SERIALIZER_MASK
            if serializer == JSON:
                return orjson.loads(body)
            if serializer == MSGPACK:
                return self._decoder.decode(body)
        except (zstandard.ZstdError, orjson.JSONDecodeError, msgspec.DecodeError) as exc:
            raise CacheDecodeError(str(exc)) from exc
        raise CacheDecodeError(f"unknown serializer in header 0x{header:02x}")

    def _decompress(self, body: bytes | memoryview) -> bytes:
        size = zstandard.frame_content_size(body)
        if size > self._max_decoded:
            raise CacheDecodeError(f"compressed value claims {size} bytes")
        # Our frames always carry their size; -1 (unknown) only comes from someone else's writer.
        limit = self._max_decoded if size < 0 else 0
        return self._decompressor.decompress(body, max_output_size=limit)
