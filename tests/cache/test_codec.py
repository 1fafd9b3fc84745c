"""Codec: headed bytes, compression above the threshold, corrupt input as CacheDecodeError."""

from __future__ import annotations

import os

import pytest
import zstandard

from tableforge.cache.codec import JSON, MSGPACK, ZSTD, CacheDecodeError, Codec

SMALL = {"id": 7, "name": "Goblin", "tags": ["small", "green"], "hp": 7.5, "boss": False, "note": None}
LARGE = {"rows": [{"id": i, "name": f"token-{i}", "x": i * 3, "y": i * 5} for i in range(200)]}


@pytest.mark.parametrize(("serialization", "header"), [("json", JSON), ("msgpack", MSGPACK)])
def test_small_values_round_trip_uncompressed(serialization: str, header: int) -> None:
    codec = Codec(serialization)  # type: ignore[arg-type]
    data = codec.encode(SMALL)
    assert data[0] == header
    assert codec.decode(data) == SMALL


@pytest.mark.parametrize(("serialization", "header"), [("json", JSON), ("msgpack", MSGPACK)])
def test_large_values_are_compressed_and_round_trip(serialization: str, header: int) -> None:
    codec = Codec(serialization)  # type: ignore[arg-type]
    plain = Codec(serialization, compression=False)  # type: ignore[arg-type]
    data = codec.encode(LARGE)
    assert data[0] == header | ZSTD
    assert len(data) < len(plain.encode(LARGE)) / 3
    assert codec.decode(data) == LARGE


def test_compression_off_never_compresses() -> None:
    data = Codec("msgpack", compression=False).encode(LARGE)
    assert data[0] == MSGPACK
    assert Codec("msgpack").decode(data) == LARGE


def test_incompressible_values_are_stored_plain() -> None:
    value = os.urandom(8192)
    data = Codec("msgpack").encode(value)
    assert data[0] == MSGPACK
    assert Codec("msgpack").decode(data) == value


@pytest.mark.parametrize("value", [SMALL, LARGE])
def test_reader_follows_the_header_not_its_own_settings(value: object) -> None:
    assert Codec("msgpack").decode(Codec("json").encode(value)) == value
    assert Codec("json").decode(Codec("msgpack").encode(value)) == value


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x03{}",  # unknown serializer
        b"\x41{}",  # unknown header bit
        b"\x01{not json",
        b"\x02\xc1",  # invalid msgpack opcode
        b"\x81garbage that is not zstd",
        bytes((MSGPACK | ZSTD,)) + zstandard.ZstdCompressor().compress(b"x" * 5000)[:-4],  # truncated
    ],
)
def test_corrupt_values_raise_decode_error(data: bytes) -> None:
    with pytest.raises(CacheDecodeError):
        Codec("msgpack").decode(data)


def test_decompression_size_is_bounded() -> None:
    bomb = bytes((JSON | ZSTD,)) + zstandard.ZstdCompressor().compress(b"[" + b"0," * 600_000 + b"0]")
    with pytest.raises(CacheDecodeError):
        Codec("json", max_decoded_size=1024 * 1024).decode(bomb)
    assert len(Codec("json").decode(bomb)) == 600_001


def test_unserializable_values_raise_type_error() -> None:
    with pytest.raises(TypeError):
        Codec("json").encode({"when": object()})
