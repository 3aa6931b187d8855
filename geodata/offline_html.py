"""Standalone HTML maps that open without a network: folium's CDN links replaced by Leaflet itself.

Used by the village export (:mod:`etl.export`) and the analysis export
(:mod:`geodata.analysis.export`); it only rewrites a page's text.
"""
from __future__ import annotations

import re
from pathlib import Path

#: Debian's libjs-leaflet; when installed, the HTML embeds Leaflet and works offline.
LEAFLET_DIR = Path("/usr/share/javascript/leaflet")
_CDN_SCRIPT = re.compile(r'[ \t]*<script src="https?://[^"]+"></script>\n?')
_CDN_CSS = re.compile(r'[ \t]*<link rel="stylesheet" href="https?://[^"]+"/>\n?')


# folium's popups and start-up call jQuery for two things only: $(`<html>`)[0] and $(document).ready(f).
_JQUERY_SHIM = """window.$ = window.$ || function (x) {
  if (typeof x === 'string') { var t = document.createElement('template'); t.innerHTML = x.trim();
                               return [t.content.firstChild]; }
  return {ready: function (f) { if (document.readyState !== 'loading') { f(); }
                                else { document.addEventListener('DOMContentLoaded', f); } }};
};"""


def inline_leaflet(page: str, leaflet_dir: Path = LEAFLET_DIR) -> tuple[str, bool]:
    """Replace folium's CDN links by Leaflet itself, so the page needs no network.

    Only Leaflet is needed by the elements used here, plus a few lines standing in for the
    two jQuery calls folium makes (no Bootstrap or icon fonts).

    Parameters
    ----------
    page : str
        The rendered folium HTML.
    leaflet_dir : Path
        Where leaflet.js and leaflet.css are (Debian: /usr/share/javascript/leaflet).

    Returns
    -------
    tuple of (str, bool)
        The page, and whether Leaflet was embedded (False: the CDN links are kept).
    """
    js, css = leaflet_dir / "leaflet.js", leaflet_dir / "leaflet.css"
    if not (js.is_file() and css.is_file()):
        return page, False
    js_text = js.read_text(encoding="utf-8").replace("</script", "<\\/script")
    css_text = css.read_text(encoding="utf-8")
    page = _CDN_SCRIPT.sub("", page)
    page = _CDN_CSS.sub("", page)
    assets = f"<style>{css_text}</style>\n<script>{js_text}</script>\n<script>{_JQUERY_SHIM}</script>\n"
    return page.replace("<head>", "<head>\n" + assets, 1), True
