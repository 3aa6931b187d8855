"""Which text encoding a file's attributes are in: honour .cpg, else detect, and say which.

Chinese departments' Shapefiles are mostly GBK (Windows code page 936), often without a
``.cpg``; newer ones are UTF-8. GDAL, left alone, reads a ``.dbf`` without ``.cpg``
or language-driver id as ISO-8859-1 and garbles the text. Here the raw ``.dbf`` bytes of
every character field are checked with *strict* decoders, so the encoding chosen is one
in which every value decodes — never one that would produce U+FFFD.

Decoding strictly is not enough: GBK bytes are often valid UTF-8 too (乾元小学 in GBK
reads as UTF-8 ``ǬԪСѧ``). When several encodings decode the whole file, each decoding
is scored for plausible Chinese text over the whole file — common (GB2312 level-1)
hanzi and CJK punctuation count for it; Cyrillic, Armenian, IPA, Latin Extended-B and
control characters, which is what Chinese in the wrong encoding turns into, count
against it — and the most plausible wins (UTF-8 on a near tie). When both read as
plausible text, or another encoding decoded but was set aside, the choice carries a
note for the import report.
"""
from __future__ import annotations

import codecs
import re
import struct
from collections import Counter
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
    #: a note for the report: (code, details) — ``encoding_ambiguous`` or ``encoding_implausible``
    note: tuple | None = None


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


_NON_ASCII = re.compile(r"[\x00-\x7f]+")
_RUN = re.compile(r"[^\x00-\x1f\"',;|\t]{1,24}")
#: Score of a decoding, from -1 (garbled) to 1 (plainly Chinese), at which it is plausible.
PLAUSIBLE = 0.5
#: UTF-8 wins unless another decoding is this much more plausible (it cannot be had by accident
#: as often as GBK can: most GBK text is not valid UTF-8, the reverse is rarely true).
_UTF8_EDGE = 0.49


def char_weight(ch: str) -> float:
    """How much one non-ASCII character speaks for the text being real Chinese (-1 … 1)."""
    cp = ord(ch)
    if 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF:
        try:
            lead = ch.encode("gb2312")[0]
        except UnicodeEncodeError:
            return 0.2          # a rare hanzi outside GB2312: possible in names, not evidence
        return 1.0 if lead <= 0xD7 else 0.6   # GB2312 level-1 (common) / level-2
    if 0x3000 <= cp <= 0x303F or 0xFF00 <= cp <= 0xFFEF or 0x2010 <= cp <= 0x206F:
        return 1.0              # CJK and full-width punctuation, quotes, dashes
    if 0x00C0 <= cp <= 0x017F and cp not in (0xD7, 0xF7):
        return 0.6              # Latin-1 and Latin Extended-A letters: European names
    if 0x00A0 <= cp <= 0x00BF or cp in (0xD7, 0xF7) or 0x2100 <= cp <= 0x22FF or 0x2460 <= cp <= 0x24FF:
        return 0.3              # °, ·, ², №, ①: plausible symbols
    return -1.0                 # C1 controls, Latin Ext-B, IPA, Greek, Cyrillic, Armenian, PUA...


def plausibility(chars: Counter) -> float:
    """Mean :func:`char_weight` of the non-ASCII characters counted in ``chars`` (1.0 when none)."""
    total = sum(chars.values())
    if not total:
        return 1.0
    return sum(char_weight(ch) * n for ch, n in chars.items()) / total


def _sample(text: str) -> str:
    """The first stretch of non-ASCII text, for a report (at most 24 characters)."""
    m = re.search(r"[^\x00-\x7f]", text)
    if not m:
        return ""
    start = m.start()
    while start > 0 and m.start() - start < 12 and _RUN.match(text[start - 1]):
        start -= 1  # from the start of the word or value
    run = _RUN.match(text, start)
    return (run.group(0) if run else text[start:start + 24]).strip()


def _decide(order: list[str], counts: dict[str, Counter], sample_of) -> tuple[str, tuple | None]:
    """Choose among encodings that all decoded the whole file; also say why, for the report."""
    if len(order) == 1:
        return order[0], None
    scores = {enc: plausibility(counts[enc]) for enc in order}
    best = max(order, key=lambda e: (scores[e] + (_UTF8_EDGE if e == UTF8 else 0.0), -order.index(e)))
    sample = sample_of(best)
    for other in order:
        other_sample = sample_of(other)
        if other == best or other_sample == sample:   # GBK and GB18030 often read the same
            continue
        detail = {"encoding": best, "other": other, "sample": sample, "other_sample": other_sample,
                  "score": round(scores[best], 2), "other_score": round(scores[other], 2)}
        if scores[other] >= PLAUSIBLE:
            return best, ("encoding_ambiguous", detail)
        if other == UTF8:  # worth saying only when valid UTF-8 was set aside
            return best, ("encoding_implausible", detail)
    return best, None


class _Verdict:
    def __init__(self):
        self.non_ascii = False
        self.ok = {UTF8: True, GBK: True, GB18030: True}
        self.chars = {enc: Counter() for enc in self.ok}
        self.first: bytes | None = None

    def feed(self, value: bytes) -> None:
        if not value or value.isascii():
            return
        self.non_ascii = True
        if self.first is None:
            self.first = value
        for enc, still in self.ok.items():
            if not still:
                continue
            try:
                text = codecs.getincrementaldecoder(enc)("strict").decode(value, final=False)
            except UnicodeDecodeError:
                self.ok[enc] = False
                self.chars[enc] = Counter()
                continue
            self.chars[enc].update(_NON_ASCII.sub("", text))

    def hopeless(self) -> bool:
        return self.non_ascii and not any(self.ok.values())

    def best(self) -> tuple[str, tuple | None] | None:
        order = [enc for enc in (UTF8, GBK, GB18030) if self.ok[enc]]
        if not order:
            return None
        return _decide(order, self.chars, lambda enc: _sample(self.first.decode(enc, "replace")))


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
    language-driver id of the ``.dbf`` header, then detection: of UTF-8, GBK and GB18030,
    those that decode every value, the one whose text is the most plausible Chinese
    (see :func:`plausibility`). A declared encoding is verified against the data: if any value does not
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
    return EncodingChoice(best[0], "detected", best[1])


def decode_text(data: bytes, given: str | None = None) -> tuple[str, EncodingChoice]:
    """Decode a whole text file (CSV, GeoJSON): BOM, else given, else the most plausible of
    UTF-8, GBK and GB18030 among those that decode it strictly.

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
    order, counts, samples = [], {}, {}
    for enc in (UTF8, GBK, GB18030):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        order.append(enc)
        counts[enc] = Counter(_NON_ASCII.sub("", text))
        samples[enc] = _sample(text)
        del text  # one decoded copy at a time: the winner is decoded again below
    if not order:
        raise ImportRejected("encoding_undetected")
    best, note = _decide(order, counts, samples.get)
    return data.decode(best), EncodingChoice(best, "detected", note)


def _strict(data: bytes, encoding: str, source: str) -> tuple[str, EncodingChoice]:
    try:
        return data.decode(encoding), EncodingChoice(encoding, source)
    except (UnicodeDecodeError, LookupError):
        raise ImportRejected("encoding_mismatch", encoding=encoding, source=source) from None
