"""Safe handling of uploaded ZIP archives.

Every check is made on the central directory *before* anything is decompressed:
unsafe paths (absolute, drive letters, ``..``), symbolic links, encrypted entries,
nested archives, the number of entries, each entry's uncompressed size, the total
uncompressed size and the compression ratio. A zip bomb is therefore refused in
milliseconds with memory bounded by the size of the directory. Extraction then
streams each entry in chunks to a fresh directory, never writing outside it;
``zipfile`` stops each entry at the size the directory declares, so a lying header
cannot write more than was checked.
"""
from __future__ import annotations

import posixpath
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from etl.importers.errors import ArchiveRejected

_NESTED = (".zip", ".7z", ".rar", ".gz", ".tgz", ".bz2", ".xz", ".tar")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Size limits of an import.

    Parameters
    ----------
    max_file_bytes : int
        Largest accepted upload (the file as sent).
    max_entries : int
        Most entries in an archive.
    max_entry_bytes : int
        Largest uncompressed size of one archive entry.
    max_total_bytes : int
        Largest total uncompressed size of an archive.
    max_ratio : int
        Largest compression ratio of an entry bigger than ``ratio_floor_bytes``.
    ratio_floor_bytes : int
        Entries smaller than this are not ratio-checked (tiny files compress oddly).
    max_raster_pixels : int
        Most pixels (width × height × bands) of a GeoTIFF.
    """

    max_file_bytes: int = 1 << 30            # 1 GiB
    max_entries: int = 1000
    max_entry_bytes: int = 2 << 30           # 2 GiB
    max_total_bytes: int = 4 << 30           # 4 GiB
    max_ratio: int = 200
    ratio_floor_bytes: int = 8 << 20         # 8 MiB
    max_raster_pixels: int = 2_000_000_000


def _unsafe(name: str) -> bool:
    if not name or "\x00" in name:
        return True
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return True
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    return any(p == ".." for p in parts)


def check_archive(path: str | Path, limits: Limits = Limits()) -> list[zipfile.ZipInfo]:
    """Check an archive's central directory without decompressing anything.

    Parameters
    ----------
    path : str or Path
        The ZIP file.
    limits : Limits
        Entry count and size limits.

    Returns
    -------
    list of zipfile.ZipInfo
        The file entries (directories left out), all found safe.

    Raises
    ------
    ArchiveRejected
        On a corrupt archive, an unsafe path, a symlink, an encrypted or nested
        archive entry, or any limit exceeded.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
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
        if info.flag_bits & 0x1:
            raise ArchiveRejected("archive_encrypted", entry=name)
        if info.is_dir():
            continue
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
    return files


def _ignored(name: str) -> bool:
    norm = name.replace("\\", "/")
    base = posixpath.basename(norm)
    return norm.startswith("__MACOSX/") or "/__MACOSX/" in norm or base.startswith("._") or base in (
        ".DS_Store", "Thumbs.db")


def safe_extract(path: str | Path, dest: str | Path, limits: Limits = Limits()) -> list[Path]:
    """Check then extract an archive into ``dest``, entry by entry, in bounded memory.

    Parameters
    ----------
    path : str or Path
        The ZIP file.
    dest : str or Path
        An existing, empty directory (e.g. a ``TemporaryDirectory``).
    limits : Limits
        Limits checked by :func:`check_archive` before extraction.

    Returns
    -------
    list of Path
        The extracted files (macOS resource forks and the like skipped).

    Raises
    ------
    ArchiveRejected
        When :func:`check_archive` refuses the archive or an entry turns out corrupt.
    """
    dest = Path(dest).resolve()
    infos = check_archive(path, limits)
    out = []
    written = 0
    with zipfile.ZipFile(path) as zf:
        for info in infos:
            if _ignored(info.filename):
                continue
            rel = Path(*[p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")])
            target = (dest / rel).resolve()
            if dest not in target.parents:  # belt and braces after _unsafe()
                raise ArchiveRejected("archive_unsafe_path", entry=info.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "xb") as dst:
                    while True:
                        chunk = src.read(_CHUNK)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > limits.max_total_bytes:
                            raise ArchiveRejected("archive_too_large", size=written, limit=limits.max_total_bytes)
                        dst.write(chunk)
            except FileExistsError:
                raise ArchiveRejected("archive_unsafe_path", entry=info.filename) from None
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise ArchiveRejected("bad_archive", error=f"{info.filename}: {exc}") from None
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


__all__ = ["Limits", "check_archive", "safe_extract", "copy_bounded"]
