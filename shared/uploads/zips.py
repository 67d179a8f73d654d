"""Opening untrusted zips: member count, directory size and declared sizes checked first."""

from __future__ import annotations

import struct
import zipfile
from typing import BinaryIO

from shared.exceptions import InvalidInput, PayloadTooLarge
from shared.uploads.common import UploadLimits, wrap_errors

# Central-directory bytes allowed per permitted member: real archives use well under 150
# (46 fixed + name + extras), and the cap bounds what zipfile parses into memory even when
# the end record lies about the member count.
_CD_BYTES_PER_MEMBER = 256
# zipfile bounds the output of one read only for deflate; a bzip2 or lzma member can expand
# a single read by orders of magnitude, so those members are refused.
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_ZIP_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma", 9: "deflate64"}


def is_ignored_member(name: str) -> bool:
    """Directory entries and OS litter (``__MACOSX/``, dotfiles, Thumbs.db) are skipped."""
    name = name.replace("\\", "/")
    if name.endswith("/"):
        return True
    parts = [p for p in name.split("/") if p]
    return (
        not parts
        or any(p == "__MACOSX" or p.startswith(".") for p in parts)
        or parts[-1].lower() in ("thumbs.db", "desktop.ini")
    )


def _declared_directory(file: BinaryIO, size: int) -> tuple[int, int] | None:
    """(member count, central directory bytes) from the zip's end record, or None."""
    tail_len = min(size, 22 + 0xFFFF)
    file.seek(size - tail_len)
    tail = file.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    entries, cd_size = struct.unpack("<HL", tail[at + 10 : at + 16])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        eocd = size - tail_len + at
        if eocd < 20:
            return None
        file.seek(eocd - 20)
        locator = file.read(20)
        if locator[:4] != b"PK\x06\x07":
            return None
        (zip64_at,) = struct.unpack("<Q", locator[8:16])
        file.seek(zip64_at)
        record = file.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            return None
        entries, cd_size = struct.unpack("<QQ", record[32:48])
    return entries, cd_size


def open_zip(file: BinaryIO, size: int, limits: UploadLimits, what: str) -> zipfile.ZipFile:
    """Open a zip after checking member count and declared sizes (zip bombs, huge directories).

    Nothing is decompressed here. Members named twice, and members to be read that are
    encrypted or compressed with anything but deflate, are refused.
    """
    too_many = f"{what} has more zip members than the {limits.max_zip_members:,} accepted"
    with wrap_errors(what):
        declared = _declared_directory(file, size)
        if declared is not None:
            entries, cd_size = declared
            if entries > limits.max_zip_members:
                raise PayloadTooLarge(f"{too_many} ({entries:,}).")
            if cd_size > limits.max_zip_members * _CD_BYTES_PER_MEMBER + 0xFFFF:
                raise PayloadTooLarge(f"{too_many} (its directory is {cd_size:,} bytes).")
        file.seek(0)
        zf = zipfile.ZipFile(file)
    try:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_members:
            raise PayloadTooLarge(f"{too_many} ({len(infos):,}).")
        total = sum(i.file_size for i in infos)
        if total > limits.max_uncompressed_bytes:
            raise PayloadTooLarge(
                f"{what} would expand to {total:,} bytes; at most "
                f"{limits.max_uncompressed_bytes:,} bytes uncompressed are accepted."
            )
        seen: set[str] = set()
        for info in infos:
            if info.filename in seen:
                raise InvalidInput(f"{what} contains {info.filename!r} twice.")
            seen.add(info.filename)
            if is_ignored_member(info.filename):
                continue
            if info.flag_bits & 0x1:
                raise InvalidInput(f"{what} member {info.filename!r} is encrypted.")
            if info.compress_type not in _ZIP_METHODS:
                raise InvalidInput(
                    f"{what} member {info.filename!r} uses "
                    f"{_ZIP_METHOD_NAMES.get(info.compress_type, 'an unusual')} compression; "
                    "only stored and deflate members are accepted."
                )
    except BaseException:
        zf.close()
        raise
    return zf
