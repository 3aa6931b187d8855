"""What the villagers' services share: settings, hashing, the sensitive list, errors, plain categories.

Personal values (phone numbers, client addresses, device keys) are never compared
in clear: they are kept as an HMAC-SHA256 under the app's secret (the "pepper"),
so the phone space (10¹¹ numbers) cannot be brute-forced from a dump of hashes.
Tracking codes carry ~60 bits from :mod:`secrets` and are kept as plain SHA-256.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.i18n import BilingualError

#: Alphabet of tracking codes: no 0/O, 1/I/L, so a code read aloud on the phone survives.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12
_CODE = re.compile(rf"^[{CODE_ALPHABET}]{{10,12}}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{6,18}[0-9]$")


def _int_env(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value >= 0 else default


@dataclass(frozen=True)
class PublicSettings:
    """The villagers' channel's settings (environment variables, read at call time)."""

    duplicate_metres: int = 50        # DVMAP_DUPLICATE_METRES
    duplicate_days: int = 7           # DVMAP_DUPLICATE_DAYS
    nearby_metres: int = 50           # DVMAP_PUBLIC_NEARBY_METRES
    rerate_days: int = 7              # DVMAP_PUBLIC_RERATE_DAYS
    points_per_report: int = 2        # DVMAP_PUBLIC_POINTS_PER_REPORT
    points_monthly_cap: int = 100     # DVMAP_PUBLIC_POINTS_CAP

    @classmethod
    def from_env(cls) -> "PublicSettings":
        return cls(
            _int_env("DVMAP_DUPLICATE_METRES", 50), _int_env("DVMAP_DUPLICATE_DAYS", 7),
            _int_env("DVMAP_PUBLIC_NEARBY_METRES", 50), _int_env("DVMAP_PUBLIC_RERATE_DAYS", 7),
            _int_env("DVMAP_PUBLIC_POINTS_PER_REPORT", 2), _int_env("DVMAP_PUBLIC_POINTS_CAP", 100),
        )


class PublicError(BilingualError):
    """Input the public services refuse (400 unless a subclass says otherwise)."""

    code, http_status = "public_input", 400


class PublicNotFound(PublicError):
    """No such tracking code or public event (also for anything not public)."""

    code, http_status = "public_not_found", 404

    def __init__(self):
        super().__init__("未找到该反映(追踪码有误或不公开)。", "No such report (wrong tracking code, or not public).")


# -- hashing --------------------------------------------------------------------------

def personal_hash(value: str, pepper: str) -> str:
    """HMAC-SHA256 (hex) of a personal value under the app's secret ``pepper``."""
    return hmac.new(pepper.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()


def new_tracking_code() -> str:
    """A fresh 12-character tracking code (~59 bits from :mod:`secrets`; not the event id)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def code_hash(code: str) -> str:
    """SHA-256 (hex) of a normalised tracking code; raises :class:`PublicNotFound` for a malformed one."""
    norm = (code or "").strip().upper().replace("-", "").replace(" ", "")
    if not _CODE.match(norm):
        raise PublicNotFound()
    return hashlib.sha256(norm.encode("ascii")).hexdigest()


def normalise_phone(phone) -> str | None:
    """Digits (and a leading +) of a phone number, or None when empty; raises PublicError if malformed."""
    if phone is None or (isinstance(phone, str) and not phone.strip()):
        return None
    if not isinstance(phone, str) or not _PHONE.match(phone.strip()):
        raise PublicError("手机号码格式不对。", "The phone number is not valid.", code="phone")
    return re.sub(r"[ \-]", "", phone.strip())


# -- plain text -------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]*>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def plain_text(value, *, limit: int, required: bool, zh: str, en: str) -> str | None:
    """Text without markup or control characters, at most ``limit`` characters.

    Markup is refused rather than stripped: a description with tags is not what a
    villager typed, and silently altering it would hide that.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PublicError(f"请填写{zh}。", f"Please fill in the {en}.", code=en.replace(" ", "_"))
        return None
    if not isinstance(value, str):
        raise PublicError(f"{zh}必须是文字。", f"The {en} must be text.", code=en.replace(" ", "_"))
    value = value.strip()
    if len(value) > limit:
        raise PublicError(f"{zh}太长(最多 {limit} 字)。", f"The {en} is too long (at most {limit} characters).",
                          code=en.replace(" ", "_"))
    if _TAG.search(value) or _CONTROL.search(value):
        raise PublicError(f"{zh}只能是纯文字(不能含 < > 标记或控制字符)。",
                          f"The {en} must be plain text (no <tags> or control characters).",
                          code=en.replace(" ", "_"))
    return value


_PHONE_RUN = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)|(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")


def mask_phones(value):
    """``value`` with mobile and landline numbers replaced by a marker, for public reads."""
    if not isinstance(value, str):
        return value
    return _PHONE_RUN.sub("[电话已隐藏 phone hidden]", value)


# -- sensitive subclasses ------------------------------------------------------------------

def sensitive_subclasses(session: Session) -> frozenset[str]:
    """Subclass codes never shown publicly (table ``sensitive_subclass``, seeded by migration 0019)."""
    return frozenset(session.execute(text("SELECT subclass_code FROM sensitive_subclass")).scalars())


#: SQL condition: the event ``e`` may appear in a public read.
PUBLIC_EVENT_SQL = "NOT EXISTS (SELECT 1 FROM sensitive_subclass z WHERE z.subclass_code = e.subclass_code)"


# -- the plain-words categories -------------------------------------------------------------

#: (key, words zh, words en, GB subclass): what a villager picks, mapped onto the subclasses.
CATEGORIES: tuple[tuple[str, str, str, str], ...] = (
    ("rubbish", "垃圾乱扔、脏乱", "Rubbish or litter", "0101"),
    ("bin_full", "垃圾桶满了", "Bin overflowing", "0102"),
    ("road", "路面坏了、坑洼", "Road damaged, potholes", "0304"),
    ("light", "路灯不亮", "Street light out", "0303"),
    ("manhole", "井盖丢了或坏了", "Manhole cover missing or broken", "0302"),
    ("leak", "水管漏水", "Water pipe leaking", "0306"),
    ("outage", "停水停电", "No water or power", "0803"),
    ("parking", "乱停车", "Bad parking", "0203"),
    ("vending", "占道摆摊", "Stalls blocking the road", "0201"),
    ("river", "河道脏、污水", "Dirty river, sewage", "0504"),
    ("burning", "焚烧秸秆垃圾", "Burning straw or rubbish", "0505"),
    ("tree", "树倒了", "Fallen tree", "0402"),
    ("danger", "安全隐患", "Something dangerous", "0704"),
    ("building", "乱搭乱建", "Illegal building", "0105"),
)
_BY_KEY = {c[0]: c for c in CATEGORIES}


def category(key) -> tuple[str, str, str, str]:
    """The category row of ``key``; raises PublicError for an unknown one."""
    try:
        return _BY_KEY[key]
    except (KeyError, TypeError):
        raise PublicError("请选择问题类别。", "Please choose what kind of problem it is.", code="category") from None
