"""Safe handling of uploaded ZIP archives.

First the central directory is checked, before anything is decompressed: unsafe paths
(absolute, drive letters, ``..``), symbolic links, encrypted entries, nested archives,
compression methods other than stored and Deflate, the number of entries, each entry's
and the archive's declared uncompressed size and compression ratio. Those sizes are only
claims of the file, so extraction then decompresses each entry itself, in bounded
chunks (Deflate with ``max_length``), counting the bytes actually produced: an entry
that yields more than it declared, or more than the limits (per entry, in total), is
refused at that point, and memory stays bounded by the chunk size whatever the headers
say. Only stored and Deflate entries are accepted: they are what GIS tools and
Windows write, and bzip2/LZMA decoders in ``zipfile`` expand a whole block at once
(a 1.6 KB bzip2 entry can become 2 GiB in memory before any limit is checked).
"""
from __future__ import annotations

import posixpath
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from etl.importers.errors import ArchiveRejected

_NESTED = (".zip", ".7z", ".rar", ".gz", ".tgz", ".bz2", ".xz", ".tar")
_CHUNK = 1 << 20
_METHODS_OK = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
#: ZIP compression method ids (APPNOTE 4.4.5) → a name people recognise.
METHOD_NAMES = {0: "stored", 1: "Shrink", 6: "Implode", 8: "Deflate", 9: "Deflate64", 12: "bzip2", 14: "LZMA",
                18: "IBM TERSE", 19: "IBM LZ77", 20: "Zstandard (old id)", 93: "Zstandard", 94: "MP3", 95: "XZ",
                96: "JPEG", 97: "WavPack", 98: "PPMd", 99: "AES"}


def _settings():
    from geodata.config import get_settings

    return get_settings()


@dataclass(frozen=True)
class Limits:
    """Size limits of an import (defaults from the ``DVMAP_IMPORT_*`` settings).

    Parameters
    ----------
    max_file_bytes : int
        Largest accepted upload (the file as sent).
    max_entries : int
        Most entries in an archive (``DVMAP_IMPORT_MAX_ENTRIES``).
    max_entry_bytes : int
        Largest uncompressed size of one archive entry.
    max_total_bytes : int
        Most one archive may expand to in total (``DVMAP_IMPORT_MAX_EXPANDED_MB``).
    max_ratio : int
        Largest compression ratio of an entry, and of the whole archive, once bigger
        than ``ratio_floor_bytes``.
    ratio_floor_bytes : int
        Entries (archives) smaller than this are not ratio-checked (tiny files compress oddly).
    max_raster_pixels : int
        Most pixels (width × height × bands) of a GeoTIFF.
    max_feature_vertices : int
        Most vertices of one feature (``DVMAP_IMPORT_MAX_VERTICES``).
    max_feature_seconds : float
        Time budget of one feature's geometry checks (``DVMAP_IMPORT_FEATURE_SECONDS``).
    """

    max_file_bytes: int = 1 << 30            # 1 GiB
    max_entries: int = field(default_factory=lambda: _settings().import_max_entries)
    max_entry_bytes: int = 2 << 30           # 2 GiB (max_total_bytes applies too)
    max_total_bytes: int = field(default_factory=lambda: _settings().import_max_expanded_mb << 20)
    max_ratio: int = 200
    ratio_floor_bytes: int = 8 << 20         # 8 MiB
    max_raster_pixels: int = 2_000_000_000
    max_feature_vertices: int = field(default_factory=lambda: _settings().import_max_vertices)
    max_feature_seconds: float = field(default_factory=lambda: _settings().import_feature_seconds)


def _unsafe(name: str) -> bool:
    if not name or "\x00" in name:
        return True
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return True
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    return any(p == ".." for p in parts)


def method_name(method: int) -> str:
    """The name of a ZIP compression method id (``12`` → ``bzip2``)."""
    return METHOD_NAMES.get(method, f"#{method}")


def check_archive(path: str | Path, limits: Limits | None = None) -> list[zipfile.ZipInfo]:
    """Check an archive's central directory without decompressing anything.

    Parameters
    ----------
    path : str or Path
        The ZIP file.
    limits : Limits, optional
        Entry count and size limits (default: from the settings).

    Returns
    -------
    list of zipfile.ZipInfo
        The file entries (directories left out), all found safe.

    Raises
    ------
    ArchiveRejected
        On a corrupt archive, an unsafe path, a symlink, an encrypted or nested
        archive entry, a compression method other than stored/Deflate, or any limit
        exceeded by the declared sizes.
    """
    limits = limits or Limits()
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError) as exc:
        raise ArchiveRejected("bad_archive", error=str(exc) or type(exc).__name__) from None
    if len(infos) > limits.max_entries:
        raise ArchiveRejected("archive_too_many_entries", count=len(infos), limit=limits.max_entries)
    total = 0
    files = []
    for info in infos:
        name = info.filename
        if _unsafe(name):
            raise ArchiveRejected("archive_unsafe_path", entry=name)
        mode = (info.external_attr >> 16) & 0xFFFF
        if stat.S_ISLNK(mode):
            raise ArchiveRejected("archive_symlink", entry=name)
        if info.flag_bits & 0x1 or info.compress_type == 99:
            raise ArchiveRejected("archive_encrypted", entry=name)
        if info.is_dir():
            continue
        if info.compress_type not in _METHODS_OK:
            raise ArchiveRejected("archive_method", entry=name, method=method_name(info.compress_type))
        if info.file_size > limits.max_entry_bytes:
            raise ArchiveRejected("archive_entry_too_large", entry=name, size=info.file_size,
                                  limit=limits.max_entry_bytes)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveRejected("archive_too_large", size=total, limit=limits.max_total_bytes)
        if info.file_size > limits.ratio_floor_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ArchiveRejected("archive_ratio", entry=name, ratio=ratio, limit=limits.max_ratio)
        base = posixpath.basename(name.replace("\\", "/")).lower()
        if base.endswith(_NESTED):
            raise ArchiveRejected("archive_nested", entry=name)
        files.append(info)
    # Many entries each under the per-entry ratio floor can still add up to a bomb
    # (300 × 7 MiB of zeros in 44 KB): the archive as a whole is ratio-checked too.
    if total > limits.ratio_floor_bytes:
        size = Path(path).stat().st_size
        if total / max(size, 1) > limits.max_ratio:
            raise ArchiveRejected("archive_total_ratio", size=total, compressed=size,
                                  ratio=total / max(size, 1), limit=limits.max_ratio)
    return files


def _ignored(name: str) -> bool:
    norm = name.replace("\\", "/")
    base = posixpath.basename(norm)
    return norm.startswith("__MACOSX/") or "/__MACOSX/" in norm or base.startswith("._") or base in (
        ".DS_Store", "Thumbs.db")


def _entry_chunks(fh, info: zipfile.ZipInfo, archive_size: int):
    """Yield the decompressed bytes of one stored/Deflate entry, at most ``_CHUNK`` at a time.

    Reads the raw data after the entry's local header and inflates it with
    ``max_length``, so no call ever produces more than one chunk, whatever the data.
    """
    fh.seek(info.header_offset)
    head = fh.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise ArchiveRejected("bad_archive", error=f"{info.filename}: bad local header")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    left = info.compress_size
    if start + left > archive_size:
        raise ArchiveRejected("bad_archive", error=f"{info.filename}: truncated")
    fh.seek(start)
    inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    while left > 0:
        raw = fh.read(min(_CHUNK, left))
        if not raw:
            raise ArchiveRejected("bad_archive", error=f"{info.filename}: truncated")
        left -= len(raw)
        if inflater is None:
            yield raw
            continue
        while raw:
            out = inflater.decompress(raw, _CHUNK)
            raw = inflater.unconsumed_tail
            if out:
                yield out
            if inflater.eof:
                return
    if inflater is not None and not inflater.eof:
        # all input consumed through unconsumed_tail, so what flush() returns is small
        tail = inflater.flush()
        if tail:
            yield tail


def safe_extract(path: str | Path, dest: str | Path, limits: Limits | None = None) -> list[Path]:
    """Check then extract an archive into ``dest``, entry by entry, in bounded memory.

    Parameters
    ----------
    path : str or Path
        The ZIP file.
    dest : str or Path
        An existing, empty directory (e.g. a ``TemporaryDirectory``).
    limits : Limits, optional
        Limits checked by :func:`check_archive` before extraction, and again on the
        bytes actually produced while extracting (default: from the settings).

    Returns
    -------
    list of Path
        The extracted files (macOS resource forks and the like skipped).

    Raises
    ------
    ArchiveRejected
        When :func:`check_archive` refuses the archive, an entry expands past its
        declared size or a limit, or turns out corrupt (CRC).
    """
    limits = limits or Limits()
    dest = Path(dest).resolve()
    infos = check_archive(path, limits)
    archive_size = Path(path).stat().st_size
    out = []
    written = 0
    with open(path, "rb") as fh:
        for info in infos:
            if _ignored(info.filename):
                continue
            rel = Path(*[p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")])
            target = (dest / rel).resolve()
            if dest not in target.parents:  # belt and braces after _unsafe()
                raise ArchiveRejected("archive_unsafe_path", entry=info.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            crc = 0
            try:
                with open(target, "xb") as dst:
                    for chunk in _entry_chunks(fh, info, archive_size):
                        size += len(chunk)
                        written += len(chunk)
                        if size > info.file_size:
                            raise ArchiveRejected("archive_size_mismatch", entry=info.filename,
                                                  declared=info.file_size, actual=f"> {size - len(chunk)}")
                        if size > limits.max_entry_bytes:
                            raise ArchiveRejected("archive_entry_too_large", entry=info.filename, size=size,
                                                  limit=limits.max_entry_bytes)
                        if written > limits.max_total_bytes:
                            raise ArchiveRejected("archive_too_large", size=written, limit=limits.max_total_bytes)
                        crc = zlib.crc32(chunk, crc)
                        dst.write(chunk)
            except FileExistsError:
                raise ArchiveRejected("archive_unsafe_path", entry=info.filename) from None
            except zlib.error as exc:
                raise ArchiveRejected("bad_archive", error=f"{info.filename}: {exc}") from None
            except OSError as exc:
                raise ArchiveRejected("bad_archive", error=f"{info.filename}: {exc}") from None
            if size != info.file_size:
                raise ArchiveRejected("archive_size_mismatch", entry=info.filename, declared=info.file_size,
                                      actual=size)
            if crc != info.CRC:
                raise ArchiveRejected("bad_archive", error=f"{info.filename}: bad CRC-32")
            out.append(target)
    return out


def copy_bounded(src, dst_path: Path, max_bytes: int) -> int:
    """Copy a binary stream to ``dst_path``, refusing past ``max_bytes``; returns the size."""
    size = 0
    with open(dst_path, "wb") as dst:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ArchiveRejected("file_too_large", size=size, limit=max_bytes)
            dst.write(chunk)
    return size


__all__ = ["Limits", "check_archive", "safe_extract", "copy_bounded", "method_name"]
