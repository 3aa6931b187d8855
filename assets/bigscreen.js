/* The big screen's map functions, referenced as {variable: "dvmap.bs.<name>"} by map_app/bigscreen.py.
 * Sizes follow the screen: one "unit" is 1 % of a 16:9 screen's height (10.8 px at 1080p, 21.6 px at 4K),
 * the same unit assets/bigscreen.css uses. */
(function () {
  function unit() {
    return Math.min(window.innerHeight / 100, window.innerWidth * 0.5625 / 100);
  }
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  const bs = {
    village: function () {
      const u = unit();
      return {color: "#3b82c4", weight: Math.max(0.6, u * 0.09), opacity: 0.75, fillColor: "#0ea5e9",
              fillOpacity: 0.05};
    },
    villageHover: function () {
      return {weight: Math.max(1.5, unit() * 0.25), color: "#7dd3fc", fillOpacity: 0.18};
    },
    villageTip: function (feature, layer) {
      const p = feature.properties || {};
      layer.bindTooltip(esc(p.name) + (p.town ? " · " + esc(p.town) : ""), {sticky: true, className: "bs-tip"});
    },
    outline: function (feature, context) {
      const h = (context && context.hideout) || {};
      const u = unit();
      if (feature.properties.kind === "county") {
        return {color: "#67e8f9", weight: Math.max(2, u * 0.32), opacity: 0.9, fill: false};
      }
      const id = String(feature.id || "").replace("town-", "");
      const selected = h.selected !== null && h.selected !== undefined && String(h.selected) === id;
      return {color: selected ? "#fde047" : "#38bdf8", weight: selected ? Math.max(3, u * 0.45) : Math.max(1, u * 0.14),
              dashArray: selected ? null : (u * 0.7) + " " + (u * 0.45), opacity: selected ? 1 : 0.7,
              fill: selected, fillColor: "#fde047", fillOpacity: selected ? 0.06 : 0};
    },
    hot: function (feature) {
      const colors = ["#fde68a", "#fbbf24", "#f97316", "#ef4444", "#b91c1c"];
      const level = Math.max(1, Math.min(5, feature.properties.level || 1));
      return {stroke: false, fillColor: colors[level - 1], fillOpacity: 0.22 + 0.08 * level};
    },
    event: function (feature, latlng) {
      const p = feature.properties || {};
      const u = unit();
      const cls = "bs-ev ev-" + p.id + (p.overdue ? " bs-ev-overdue" : "");
      if (p["new"]) {
        const size = Math.round(u * 1.6);
        const icon = L.divIcon({
          className: "bs-ev-icon",
          html: '<span class="' + cls + ' bs-ev-new" style="background:' + esc(p.color) + '"></span>',
          iconSize: [size, size], iconAnchor: [size / 2, size / 2]
        });
        return L.marker(latlng, {icon: icon, keyboard: false, zIndexOffset: 1000});
      }
      return L.circleMarker(latlng, {
        radius: Math.max(2.5, u * 0.42), weight: p.overdue ? Math.max(1.2, u * 0.2) : Math.max(0.5, u * 0.06),
        color: p.overdue ? "#ff3b3b" : "#e2f3ff", fillColor: p.color || "#38bdf8", fillOpacity: 0.95,
        className: cls
      });
    },
    eventTip: function (feature, layer) {
      const p = feature.properties || {};
      layer.bindTooltip(esc(p.name) + " · " + esc(p.label) + "<br>" + esc(p.village || "") + " " + esc(p.at),
                        {className: "bs-tip"});
    },
    alarm: function (feature, latlng) {
      const p = feature.properties || {};
      const size = Math.max(6, Math.round(unit() * 0.85));
      const icon = L.divIcon({
        className: "bs-alarm-icon",
        html: '<span class="bs-alarm sensor-' + p.id + '"></span>',
        iconSize: [size, size], iconAnchor: [size / 2, size / 2]
      });
      return L.marker(latlng, {icon: icon, keyboard: false});
    },
    alarmTip: function (feature, layer) {
      const p = feature.properties || {};
      layer.bindTooltip(esc(p.type) + " " + esc(p.code) + "<br>" + esc(p.village || "") + " " + esc(p.seen || ""),
                        {className: "bs-tip"});
    }
  };
  window.dvmap = Object.assign({}, window.dvmap, {bs: bs});
})();
