"""The room file on disk: a zip holding `manifest.json`, `rooms/<n>.json` (one room document each)
and `assets/<sha256>.<ext>` (each image once, however many rooms or assets use it).

Reading treats the file as hostile: only those names (no directories, no `..`, no absolute paths,
no duplicates), a cap on the number of entries, on each entry's size and on the total, all counted
from the bytes actually inflated (never from the sizes the zip's headers claim), so a zip bomb
stops at the cap. Asset bytes are checked against their sha256 name by the importer."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from tableforge.domain.errors import ValidationFailed
from tableforge.domain.wire import EXTENSIONS

MANIFEST: Final = "manifest.json"
_ROOM = re.compile(r"^rooms/[0-9]{1,6}\.json$")
_ASSET = re.compile(r"^assets/([0-9a-f]{64})\.(png|jpg|webp|gif)$")
KIND_OF_EXT: Final = {ext: kind for kind, ext in EXTENSIONS.items()}
JSON_MAX_BYTES: Final = 256 * 1024 * 1024  # one room document (a long campaign's chat fits)
MANIFEST_MAX_BYTES: Final = 4 * 1024 * 1024
_CHUNK = 1024 * 1024


class ArchiveInvalid(ValidationFailed):
    """A room file that cannot be imported; the message says what is wrong and where."""

    def __init__(self, message: str, code: str = "bad_room_file") -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True, slots=True)
class Limits:
    max_total_bytes: int = 4 * 1024 * 1024 * 1024  # inflated, all entries together
    max_entries: int = 20_000
    max_asset_bytes: int = 20 * 1024 * 1024  # the server's upload limit, normally
    max_json_bytes: int = JSON_MAX_BYTES  # one room document (decoded in memory: lower it for untrusted callers)


def asset_name(sha256: str, kind: str) -> str:
    return f"assets/{sha256}.{EXTENSIONS[kind]}"


class Writer:
    """Writes the zip; JSON deflated, images stored (they are compressed already)."""

    def __init__(self, target: IO[bytes]) -> None:
        self._zip = zipfile.ZipFile(target, "w", allowZip64=True)

    def json(self, name: str, data: bytes) -> None:
        self._zip.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)

    def asset(self, name: str, source: Path) -> None:
        self._zip.write(source, name, compress_type=zipfile.ZIP_STORED)

    def close(self) -> None:
        self._zip.close()


class Reader:
    """Reads a room file within `limits`. Every entry name is checked when the file is opened."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.limits = limits
        self._inflated = 0
        try:
            self._zip = zipfile.ZipFile(path)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ArchiveInvalid(f"not a TableForge room file (a zip archive): {exc}") from None
        if len(infos) > limits.max_entries:
            raise ArchiveInvalid(f"the file has {len(infos)} entries; at most {limits.max_entries}",
                                 code="room_file_too_large")
        self.rooms: set[str] = set()
        self.assets: dict[str, str] = {}  # sha256 -> entry name
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            if name in seen:
                raise ArchiveInvalid(f"the entry {name!r} is in the file twice")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise ArchiveInvalid(f"the entry {name!r} is encrypted")
            if name == MANIFEST:
                continue
            if _ROOM.match(name):
                self.rooms.add(name)
                continue
            found = _ASSET.match(name)
            if found is None:
                # Paths such as `../x`, `/etc/x`, `a\\b` or directories all end here: nothing is ever
                # written under an entry's name, but a file with unknown parts is not ours.
                raise ArchiveInvalid(f"unexpected entry {name[:200]!r} (only manifest.json, rooms/<n>.json "
                                     "and assets/<sha256>.<ext>)")
            if found.group(1) in self.assets:
                raise ArchiveInvalid(f"the asset {found.group(1)} is in the file twice")
            self.assets[found.group(1)] = name
        if MANIFEST not in seen:
            raise ArchiveInvalid("the file has no manifest.json: not a TableForge room file")

    def read(self, name: str, most: int) -> bytes:
        """The entry's bytes, inflating at most `most` (and the total cap) before refusing."""
        budget = min(most, self.limits.max_total_bytes - self._inflated)
        parts: list[bytes] = []
        got = 0
        try:
            with self._zip.open(name) as stream:
                while chunk := stream.read(min(_CHUNK, budget - got + 1)):
                    got += len(chunk)
                    if got > budget:
                        if budget < most:
                            raise ArchiveInvalid(f"the file inflates to more than {self.limits.max_total_bytes} "
                                                 "bytes", code="room_file_too_large")
                        raise ArchiveInvalid(f"{name} is larger than {most} bytes", code="room_file_too_large")
                    parts.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # CRC errors, truncation
            raise ArchiveInvalid(f"{name} is damaged: {exc}") from None
        self._inflated += got
        return b"".join(parts)

    def close(self) -> None:
        self._zip.close()
