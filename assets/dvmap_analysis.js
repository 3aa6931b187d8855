/* Style and tooltip functions of the analysis page (dash-leaflet props {variable: "dvmapAnalysis.…"}).
 * Colours and tooltip text are computed on the server (properties._color, properties._tip). */
window.dvmapAnalysis = Object.assign({}, window.dvmapAnalysis, {
  style: function (feature, context) {
    const p = feature.properties || {};
    const h = (context && context.hideout) || {};
    const selected = h.selected && String(h.selected) === String(p._key);
    return {color: selected ? "#111827" : (h.line || "#6b7280"), weight: selected ? 3 : (h.weight || 0.4),
            fillColor: p._color || "#cccccc", fillOpacity: p._color === "#00000000" ? 0 : (h.opacity || 0.72)};
  },
  desert: function (feature) {
    const p = feature.properties || {};
    return {color: p._color || "#7f0000", weight: 1.2, dashArray: "4 3", fillColor: p._color || "#7f0000",
            fillOpacity: 0.28};
  },
  outline: function () {
    return {color: "#1e3a5f", weight: 1.6, fill: false, opacity: 0.8};
  },
  chosen: function () {  /* the villages chosen in the selection */
    return {color: "#ea580c", weight: 3, dashArray: "8 5", fill: false, opacity: 0.95};
  },
  tooltip: function (feature, layer) {
    const p = feature.properties || {};
    if (!p._tip) { return; }
    const el = document.createElement("div");
    p._tip.split("\n").forEach(function (line, i) {
      if (i) { el.appendChild(document.createElement("br")); }
      if (i === 0) { const b = document.createElement("b"); b.textContent = line; el.appendChild(b); }
      else { el.appendChild(document.createTextNode(line)); }
    });
    layer.bindTooltip(el, {sticky: true, direction: "top", className: "feature-tip"});
  }
});
