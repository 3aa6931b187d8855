"""The grid service's typed, bilingual errors and validation findings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from geodata.i18n import BilingualError, pick


@dataclass(frozen=True)
class Issue:
    """One finding of a validation: a code and the text in both languages."""

    code: str
    zh: str
    en: str

    def text(self, lang: str = "zh") -> str:
        """The finding in ``lang`` (``zh`` or ``en``)."""
        return pick(self.zh, self.en, lang)


class GridError(BilingualError):
    """Base of the grid service's errors."""

    code = "grid_error"


class GridInputError(GridError):
    """A candidate geometry or parameter that cannot be saved; ``issues`` lists why."""

    def __init__(self, message_zh: str, message_en: str, code: str = "invalid_input",
                 issues: Sequence[Issue] = (), location: list[float] | None = None):
        super().__init__(message_zh, message_en)
        self.code = code
        self.issues = list(issues) or [Issue(code, message_zh, message_en)]
        self.location = location

    @classmethod
    def of(cls, issue: Issue, **kw) -> "GridInputError":
        """The error for one :class:`Issue`."""
        return cls(issue.zh, issue.en, issue.code, [issue], **kw)


_WHAT_EN = {"网格": "Grid", "村": "Village", "网格员": "Grid worker"}


class GridNotFound(GridError):
    """No such grid or village, or not in the caller's scope (the two look alike on purpose)."""

    code, http_status = "not_found", 404

    def __init__(self, what: str):
        super().__init__(f"未找到{what},可能不存在或不在您的权限范围内。",
                         f"{_WHAT_EN.get(what, what)} not found; it may not exist or is outside your scope.")


class StaleGrid(GridError):
    """The grid (or the village's grids) changed since the caller read them."""

    code, http_status = "stale", 409

    def __init__(self, message_zh: str | None = None, message_en: str | None = None, *, code: str = "",
                 expected: int | None = None, current: int | None = None):
        if message_zh is None:
            message_zh = (f"网格 {code} 已被他人修改(您看到的是第 {expected} 版,当前为第 {current} 版),"
                          "请刷新后重试。未保存任何内容。")
            message_en = (f"Grid {code} was changed by someone else (you saw version {expected}, it is now "
                          f"version {current}); reload and try again. Nothing was saved.")
        super().__init__(message_zh, message_en)
        self.expected = expected
        self.current = current


class GridPermissionDenied(GridError):
    """The caller's role may not change grids."""

    code, http_status = "permission", 403

    def __init__(self):
        super().__init__("只有网格管理员和系统管理员可以修改网格。",
                         "Only grid managers and administrators may change grids.")


class GridTopologyError(GridError):
    """The database refused the change (migration 0006's ``grid_topology`` trigger)."""

    code, http_status = "topology", 409

    def __init__(self, message_zh: str, message_en: str, sqlstate: str = "", detail: dict | None = None):
        super().__init__(message_zh, message_en)
        self.sqlstate = sqlstate
        self.detail = detail or {}


#: Why "new grid" cannot work in a fully tiled village, and what to do instead.
VILLAGE_FULL = ("本村已全部划入网格,没有空白区域可新建网格:请选中一个网格“分割”,"
                "或“编辑顶点”让出区域后再新建。",
                "The village is fully covered by grids, so a new grid has no room: split an existing grid, "
                "or redraw one (edit vertices) to free some area first.")
