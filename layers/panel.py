"""Small building blocks for the details panel."""
from __future__ import annotations

from dash import html

from geodata.i18n import pick, t
from layers.base import link_id


def fmt_int(value) -> str:
    return "—" if value is None else f"{int(value):,}"


def fmt_pct(value) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def fmt_area(m2, lang: str) -> str:
    return "—" if m2 is None else f"{float(m2) / 1e6:.2f} {t('unit.km2', lang)}"


def facts(rows: list[tuple[str, object]], lang: str, test_id: str | None = None):
    """A two-column table of label/value pairs (labels are catalog keys or text)."""
    body = [
        html.Tr([html.Th(t(k, lang) if "." in k else k), html.Td(v if v is not None else "—",
                 **({"data-field": k} if "." in k else {}))])
        for k, v in rows
    ]
    return html.Table(html.Tbody(body), className="facts", **({"data-testid": test_id} if test_id else {}))


def header(title: str, subtitle: str, kind_zh: str, kind_en: str, lang: str):
    return html.Div(
        [html.Span(pick(kind_zh, kind_en, lang), className="panel-kind"),
         html.H3(title, className="panel-title"),
         html.Div(subtitle, className="panel-subtitle")],
        className="panel-header",
    )


def link_button(layer: str, feature_id: int, label, test_id: str | None = None, **kw):
    """A button in a panel that opens ``layer``'s panel for ``feature_id`` (callbacks/map.py)."""
    return html.Button(label, id=link_id(layer, feature_id), n_clicks=0, type="button", className="panel-link",
                       **({"data-testid": test_id} if test_id else {}), **kw)
