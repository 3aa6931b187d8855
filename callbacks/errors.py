"""How a callback shows a refusal: one helper for the service's typed, bilingual errors.

A callback that expects an error (stale version, not allowed, bad input) catches the
:class:`~geodata.i18n.BilingualError` and renders it with :func:`error_alert` or
:func:`error_text` in the page language. One it does not expect is not caught here:
the callback endpoint answers it with the error's own HTTP status (map_app/errors.py).
"""
from __future__ import annotations

from dash import html

from geodata.i18n import BilingualError, pick


def error_text(error: BilingualError | tuple[str, str] | str, lang: str) -> str:
    """The message of ``error`` in ``lang`` (an error, a ``(zh, en)`` pair or ready text)."""
    if isinstance(error, BilingualError):
        return error.message(lang)
    if isinstance(error, tuple):
        return pick(error[0], error[1], lang)
    return str(error)


def error_alert(error: BilingualError | tuple[str, str] | str, lang: str, class_name: str = "panel-error"):
    """``error`` as an alert block (``role="alert"``), carrying its code for tests and styles."""
    code = getattr(error, "code", None)
    extra = {"data-code": str(code)} if code else {}
    return html.Div(error_text(error, lang), className=class_name, role="alert", **extra)
