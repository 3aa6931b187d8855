"""The event service's typed errors (bilingual, with a code and an HTTP status)."""
from __future__ import annotations

from geodata.i18n import BilingualError
from geodata.workflow import InvalidTransition, PermissionDenied

__all__ = ["EventError", "EventInputError", "EventNotFound", "StaleVersion", "InvalidTransition",
           "PermissionDenied"]


class EventError(BilingualError):
    """Base of the event service's errors (besides the workflow's own)."""

    code = "event_error"


class EventInputError(EventError):
    """Input that cannot become (or change) an event; ``field`` names the culprit."""

    code = "invalid_input"

    def __init__(self, message_zh: str, message_en: str, field: str | None = None):
        super().__init__(message_zh, message_en)
        self.field = field


class EventNotFound(EventError):
    """No such event, or not visible in the caller's scope (the two look alike on purpose)."""

    code, http_status = "not_found", 404

    def __init__(self, event_id):
        super().__init__(
            f"未找到事件(编号 {event_id}),可能不存在或不在您的权限范围内。",
            f"Event {event_id} not found; it may not exist or is outside your scope.",
        )
        self.event_id = event_id


class StaleVersion(EventError):
    """The event changed since the caller read it (optimistic lock)."""

    code, http_status = "stale", 409

    def __init__(self, event_id, expected: int, current: int | None = None):
        super().__init__(
            f"事件 {event_id} 已被他人更新(您看到的是第 {expected} 版),请刷新后重试。",
            f"Event {event_id} was changed by someone else (you saw version {expected}); "
            "reload and try again.",
        )
        self.event_id = event_id
        self.expected = expected
        self.current = current
