"""The import report: what was read, imported, repaired, flagged and rejected, and why.

A report is built while a file is read, saved in ``import_report`` (see migration 0003)
and shown by the CLI and the upload page. Counts are always complete; the list of
per-feature issues is capped at :data:`MAX_ISSUES` so a million broken rows cannot
bloat the table (``issues_truncated`` says so).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from etl.importers.errors import message

#: Most per-feature issues kept in a saved report.
MAX_ISSUES = 2000

#: Issue kinds: a rejected feature is not imported; repaired and flagged ones are.
KINDS = ("rejected", "repaired", "flagged", "note")


@dataclass
class Issue:
    """One finding about one feature (``row`` is 1-based; None for file-level notes)."""

    kind: str
    code: str
    message_zh: str
    message_en: str
    row: int | None = None
    fid: str | None = None
    detail: dict = field(default_factory=dict)

    @classmethod
    def make(cls, kind: str, code: str, row: int | None = None, fid: Any = None, /, **detail) -> "Issue":
        """Build an issue with its bilingual message from :data:`~etl.importers.errors.MESSAGES`."""
        zh, en = message(code, **detail)
        clean = {k: _jsonable(v) for k, v in detail.items()}
        return cls(kind, code, zh, en, row, None if fid is None else str(fid), clean)

    def text(self, lang: str = "zh") -> str:
        """The issue as one line, with its row and id."""
        where = ""
        if self.row is not None:
            where = f"第 {self.row} 行" if lang != "en" else f"row {self.row}"
            if self.fid:
                where += f" (id {self.fid})"
            where += ": "
        return where + (self.message_en if lang == "en" else self.message_zh)


def _jsonable(value):
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


@dataclass
class ImportReport:
    """Everything a person needs to know about one import attempt."""

    file_name: str
    target: str
    layer: str = ""
    file_sha256: str = ""
    file_size: int = 0
    format: str | None = None
    status: str = "running"   # imported | refused | failed | already_imported
    reason_code: str | None = None
    message_zh: str | None = None
    message_en: str | None = None
    encoding: str | None = None
    encoding_source: str | None = None
    source_crs: str | None = None
    converted_from: str | None = None
    rows_read: int = 0
    rows_imported: int = 0
    rows_repaired: int = 0
    rows_rejected: int = 0
    rows_flagged: int = 0
    counts: dict = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    issues_truncated: bool = False
    notes: list[Issue] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    created_by: str | None = None
    id: int | None = None
    duplicate_of: int | None = None
    started_at: Any = None
    finished_at: Any = None

    # -- building -------------------------------------------------------------
    def add(self, issue: Issue) -> None:
        """Record a per-feature issue (the counts are kept by the loader)."""
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(issue)
        else:
            self.issues_truncated = True

    def note(self, code: str, /, **detail) -> None:
        """Record a file-level note (encoding used, CRS assumed, conversion done...)."""
        self.notes.append(Issue.make("note", code, **detail))

    def refuse(self, code: str, zh: str, en: str) -> None:
        """Mark the whole import refused, with its reason."""
        self.status = "refused"
        self.reason_code, self.message_zh, self.message_en = code, zh, en

    @property
    def ok(self) -> bool:
        """True when the data is in (imported now or before)."""
        return self.status in ("imported", "already_imported")

    def issues_of(self, kind: str) -> list[Issue]:
        """The issues of one kind (rejected, repaired, flagged, note)."""
        return [i for i in self.issues if i.kind == kind]

    # -- presenting -----------------------------------------------------------
    def summary(self, lang: str = "zh") -> str:
        """One line: status and counts."""
        status = {
            "imported": ("已导入", "imported"),
            "refused": ("已拒绝", "refused"),
            "failed": ("失败", "failed"),
            "already_imported": ("此前已导入", "already imported"),
            "running": ("进行中", "running"),
        }.get(self.status, (self.status, self.status))
        if lang == "en":
            return (f"{self.file_name} → {self.target}{':' + self.layer if self.layer else ''}: {status[1]}; "
                    f"read {self.rows_read}, imported {self.rows_imported}, repaired {self.rows_repaired}, "
                    f"flagged {self.rows_flagged}, rejected {self.rows_rejected}")
        return (f"{self.file_name} → {self.target}{':' + self.layer if self.layer else ''}:{status[0]};"
                f"读取 {self.rows_read},导入 {self.rows_imported},修复 {self.rows_repaired},"
                f"标记 {self.rows_flagged},拒绝 {self.rows_rejected}")

    def lines(self, lang: str = "zh", max_issues: int = 50) -> list[str]:
        """The report as text lines (CLI)."""
        out = [self.summary(lang)]
        if self.message_zh:
            out.append("  " + (self.message_en if lang == "en" else self.message_zh))
        if self.duplicate_of:
            out.append(f"  {'see report' if lang == 'en' else '见报告'} #{self.duplicate_of}")
        facts = []
        if self.encoding:
            facts.append(f"encoding {self.encoding} ({self.encoding_source})" if lang == "en"
                         else f"编码 {self.encoding}({self.encoding_source})")
        if self.source_crs:
            facts.append(f"CRS {self.source_crs}" if lang == "en" else f"坐标系 {self.source_crs}")
        if self.counts:
            facts.append(", ".join(f"{k} {v}" for k, v in self.counts.items()))
        if facts:
            out.append("  " + "; ".join(facts))
        for n in self.notes:
            out.append("  * " + n.text(lang))
        for issue in self.issues[:max_issues]:
            out.append(f"  [{issue.kind}] " + issue.text(lang))
        if len(self.issues) > max_issues or self.issues_truncated:
            more = len(self.issues) - max_issues
            out.append(f"  … {'and more' if lang == 'en' else '更多'} ({max(more, 0)}+)")
        return out

    def to_dict(self) -> dict:
        """The report as plain JSON-ready data."""
        data = asdict(self)
        for key in ("started_at", "finished_at"):
            if data[key] is not None and not isinstance(data[key], str):
                data[key] = data[key].isoformat()
        return data

    def to_json(self) -> str:
        """The report as JSON text (Chinese kept readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)

    @classmethod
    def from_row(cls, row: dict) -> "ImportReport":
        """Rebuild a report from an ``import_report`` row (mapping)."""
        names = {f for f in cls.__dataclass_fields__}
        data = {k: v for k, v in dict(row).items() if k in names}
        data["issues"] = [Issue(**i) for i in (data.get("issues") or [])]
        data["notes"] = [Issue(**i) for i in (data.get("notes") or [])]
        data["layer"] = data.get("layer") or ""
        data["file_sha256"] = (data.get("file_sha256") or "").strip()
        return cls(**data)
