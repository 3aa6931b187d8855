"""Which text encoding a file's attributes are in: honour .cpg, else detect, and say which.

Chinese departments' Shapefiles are mostly GBK (Windows code page 936), often without a
``.cpg``; newer ones are UTF-8. GDAL, left alone, reads a ``.dbf`` without ``.cpg``
or language-driver id as ISO-8859-1 and garbles the text. Here the raw ``.dbf`` bytes of
every character field are checked with *strict* decoders, so the encoding chosen is one
in which every value decodes — never one that would produce U+FFFD or mojibake.
"""
from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass
from pathlib import Path

from etl.importers.errors import ImportRejected

UTF8, GBK, GB18030 = "UTF-8", "GBK", "GB18030"

_CPG_ALIASES = {
    "UTF8": UTF8, "UTF-8": UTF8, "65001": UTF8, "UTF_8": UTF8,
    "GBK": GBK, "936": GBK, "CP936": GBK, "ANSI936": GBK, "MS936": GBK, "WINDOWS-936": GBK,
    "GB2312": GBK, "EUC-CN": GBK,  # GBK is a superset of GB2312
    "GB18030": GB18030, "54936": GB18030,
    "BIG5": "BIG5", "950": "BIG5", "CP950": "BIG5",
    "1252": "CP1252", "CP1252": "CP1252", "ANSI1252": "CP1252",
    "88591": "ISO-8859-1", "ISO88591": "ISO-8859-1", "ISO-8859-1": "ISO-8859-1", "LATIN1": "ISO-8859-1",
}
#: dBASE language driver ids that name an encoding (byte 29 of the header).
_LDID = {0x4D: GBK, 0x4F: "BIG5", 0x57: None, 0x00: None}


@dataclass(frozen=True)
class EncodingChoice:
    """The encoding used and where the decision came from.

    ``source`` is one of ``given`` (by the person importing), ``cpg``, ``ldid``
    (the .dbf header), ``detected`` or ``ascii`` (no non-ASCII text at all).
    """

    encoding: str
    source: str


def normalise_name(name: str, source: str = "given") -> str:
    """Return the canonical name (``UTF-8``, ``GBK``, ...) of an encoding label.

    Parameters
    ----------
    name : str
        A label as found in a .cpg or given by a person ("936", "ANSI 936", "utf8").
    source : str
        Where it came from, for the error message.

    Raises
    ------
    ImportRejected
        ``encoding_unknown`` when Python has no codec for it.
    """
    key = "".join((name or "").split()).upper()
    if key in _CPG_ALIASES:
        return _CPG_ALIASES[key]
    if key.startswith("ANSI") and key[4:] in _CPG_ALIASES:
        return _CPG_ALIASES[key[4:]]
    try:
        return codecs.lookup(name.strip()).name.upper()
    except (LookupError, AttributeError, TypeError, ValueError):
        raise ImportRejected("encoding_unknown", encoding=(name or "")[:40], source=source) from None


def _decodes(value: bytes, encoding: str) -> bool:
    """Strict decode that tolerates a multi-byte character cut at the end of a fixed-width field."""
    try:
        codecs.getincrementaldecoder(encoding)("strict").decode(value, final=False)
        return True
    except (UnicodeDecodeError, LookupError):
        return False


class _Verdict:
    def __init__(self):
        self.non_ascii = False
        self.ok = {UTF8: True, GBK: True, GB18030: True}

    def feed(self, value: bytes) -> None:
        if not value or value.isascii():
            return
        self.non_ascii = True
        for enc, still in self.ok.items():
            if still and not _decodes(value, enc):
                self.ok[enc] = False

    def hopeless(self) -> bool:
        return self.non_ascii and not any(self.ok.values())

    def best(self) -> str | None:
        for enc in (UTF8, GBK, GB18030):
            if self.ok[enc]:
                return enc
        return None


def dbf_text_values(dbf: Path, chunk_records: int = 4096):
    """Yield the raw bytes of every field name and character value of a .dbf file.

    Parameters
    ----------
    dbf : Path
        The dBASE file of a Shapefile.
    chunk_records : int
        Records read at a time (memory stays bounded for big files).

    Yields
    ------
    bytes
        Field names first, then the trimmed bytes of each C/M-type value.
    """
    with open(dbf, "rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            return
        n_records, header_len, record_len = struct.unpack("<IHH", head[4:12])
        fields = []
        offset = 1  # deletion flag
        while fh.tell() + 32 <= header_len:
            desc = fh.read(32)
            if not desc or desc[0] == 0x0D or len(desc) < 32:
                break
            name = desc[:11].split(b"\x00", 1)[0]
            yield name
            ftype, length = chr(desc[11]), desc[16]
            if ftype in ("C", "M"):
                fields.append((offset, length))
            offset += length
        if not fields or record_len <= 0:
            return
        fh.seek(header_len)
        remaining = n_records
        while remaining > 0:
            batch = fh.read(record_len * min(chunk_records, remaining))
            if not batch:
                break
            count = len(batch) // record_len
            for i in range(count):
                rec = batch[i * record_len:(i + 1) * record_len]
                for off, length in fields:
                    yield rec[off:off + length].rstrip(b" \x00")
            remaining -= count
            if count == 0:
                break


def dbf_ldid(dbf: Path) -> int | None:
    """The dBASE language driver id (header byte 29), or None when unreadable."""
    with open(dbf, "rb") as fh:
        head = fh.read(32)
    return head[29] if len(head) >= 30 else None


def check_values(values, encoding: str) -> bool:
    """True when every byte string in ``values`` decodes strictly in ``encoding``."""
    return all(v.isascii() or _decodes(v, encoding) for v in values)


def choose_dbf_encoding(dbf: Path, cpg: Path | None = None, given: str | None = None) -> EncodingChoice:
    """Decide the encoding of a Shapefile's attributes.

    The order is: the encoding given by the person importing, the ``.cpg`` file, the
    language-driver id of the ``.dbf`` header, then detection (UTF-8, else GBK, else
    GB18030). A declared encoding is verified against the data: if any value does not
    decode, the import is refused instead of garbling the text.

    Parameters
    ----------
    dbf : Path
        The ``.dbf`` file.
    cpg : Path, optional
        The ``.cpg`` file beside it, when there is one.
    given : str, optional
        An encoding named by the person importing.

    Returns
    -------
    EncodingChoice

    Raises
    ------
    ImportRejected
        ``encoding_unknown``, ``encoding_mismatch`` or ``encoding_undetected``.
    """
    declared, source = None, None
    if given:
        declared, source = normalise_name(given, "given"), "given"
    elif cpg is not None and cpg.exists():
        text = cpg.read_bytes()[:200].decode("ascii", "replace").strip()
        if text:
            declared, source = normalise_name(text, ".cpg"), "cpg"
    if declared is not None:
        if not check_values(dbf_text_values(dbf), declared):
            raise ImportRejected("encoding_mismatch", encoding=declared, source=source)
        return EncodingChoice(declared, source)
    # The header's language-driver id is only a hint: used when the data agrees.
    hint = _LDID.get(dbf_ldid(dbf))
    if hint and check_values(dbf_text_values(dbf), hint) and any(not v.isascii() for v in dbf_text_values(dbf)):
        return EncodingChoice(hint, "ldid")
    verdict = _Verdict()
    for value in dbf_text_values(dbf):
        verdict.feed(value)
        if verdict.hopeless():
            break
    if not verdict.non_ascii:
        return EncodingChoice(UTF8, "ascii")
    best = verdict.best()
    if best is None:
        raise ImportRejected("encoding_undetected")
    return EncodingChoice(best, "detected")


def decode_text(data: bytes, given: str | None = None) -> tuple[str, EncodingChoice]:
    """Decode a whole text file (CSV, GeoJSON): BOM, else given, else UTF-8, GBK, GB18030.

    Parameters
    ----------
    data : bytes
        The file's content.
    given : str, optional
        An encoding named by the person importing (verified strictly).

    Returns
    -------
    tuple of (str, EncodingChoice)

    Raises
    ------
    ImportRejected
        When the text decodes in none of them (or not in the given one).
    """
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[3:], UTF8, "bom")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "UTF-16", "bom")
    if given:
        return _strict(data, normalise_name(given, "given"), "given")
    if data.isascii():
        return data.decode("ascii"), EncodingChoice(UTF8, "ascii")
    for enc in (UTF8, GBK, GB18030):
        try:
            return data.decode(enc), EncodingChoice(enc, "detected")
        except UnicodeDecodeError:
            continue
    raise ImportRejected("encoding_undetected")


def _strict(data: bytes, encoding: str, source: str) -> tuple[str, EncodingChoice]:
    try:
        return data.decode(encoding), EncodingChoice(encoding, source)
    except (UnicodeDecodeError, LookupError):
        raise ImportRejected("encoding_mismatch", encoding=encoding, source=source) from None
