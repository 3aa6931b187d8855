/* Functions referenced by dash-leaflet props as {variable: "dvmap.<group>.<name>"}.
 * They read display options from context.hideout, so restyling never re-sends data. */
window.dvmap = Object.assign({}, window.dvmap, {
  filters: {
    visible: function (feature, context) {
      const h = (context && context.hideout) || {};
      return h.visible !== false;
    }
  },
  styles: {
    outline: function (feature) {
      if (feature.properties.kind === "county") {
        return {color: "#1c3d5a", weight: 3, fill: true, fillColor: "#f7f5ee", fillOpacity: 1};
      }
      return {color: "#1e3a5f", weight: 2.2, dashArray: "8 5", fill: false, opacity: 0.85};
    },
    village: function (feature, context) {
      const h = (context && context.hideout) || {};
      const selected = h.selected && String(h.selected) === String(feature.properties.id);
      return {color: selected ? "#b91c1c" : "#2f6f4f", weight: selected ? 3 : 1,
              fillColor: "#7fb08f", fillOpacity: selected ? 0.18 : 0.04};
    },
    grid: function (feature, context) {
      const h = (context && context.hideout) || {};
      const selected = h.selected && String(h.selected) === String(feature.properties.id);
      return {color: "#c2410c", weight: selected ? 3 : 1, dashArray: selected ? null : "3 3",
              fillColor: "#fb923c", fillOpacity: selected ? 0.2 : 0.0};
    },
    choropleth: function (feature, context) {
      const h = (context && context.hideout) || {};
      const metric = h.metric || "total";
      const breaks = (h.classes || {})[metric] || [];
      const colors = h.colors || ["#ccc"];
      const v = feature.properties[metric];
      let color = "#e5e7eb";
      if (v !== null && v !== undefined) {
        color = colors[colors.length - 1];
        for (let i = 0; i < breaks.length; i++) {
          if (v <= breaks[i]) { color = colors[Math.min(i, colors.length - 1)]; break; }
        }
      }
      return {color: "#ffffff", weight: 0.6, fillColor: color, fillOpacity: 0.78};
    }
  },
  points: {
    resource: function (feature, latlng) {
      const p = feature.properties;
      const icon = L.divIcon({
        className: "res-marker",
        html: '<span class="res-icon" style="background:' + p.color + '">' + p.icon + "</span>",
        iconSize: [24, 24], iconAnchor: [12, 12]
      });
      return L.marker(latlng, {icon: icon, title: p.name});
    },
    sensor: function (feature, latlng, context) {
      const p = feature.properties;
      const h = (context && context.hideout) || {};
      if (p.kind === "sensor_aggregate") {
        // Live counts from the clock's hideout patch win over the loaded ones: [count, alarm, offline].
        const live = (h.agg || {})[feature.id];
        const count = live ? live[0] : p.count, alarm = live ? live[1] : p.alarm, offline = live ? live[2] : p.offline;
        // A labelled box, unlike the round resource clusters: "感 1,234" with an alarm badge.
        const cls = alarm > 0 ? "agg agg-alarm" : offline > 0 ? "agg agg-offline" : "agg";
        const badge = alarm > 0 ? '<i class="agg-badge">' + alarm + "</i>" : "";
        const icon = L.divIcon({
          className: "sensor-agg",
          html: '<span class="' + cls + '"><b>感</b>' + count.toLocaleString() + badge + "</span>",
          iconSize: null
        });
        return L.marker(latlng, {icon: icon, title: p.name});
      }
      // A status changed since the data was loaded arrives in hideout.live (sensor id → status).
      const status = (h.live || {})[p.id] || p.status;
      const colors = h.status_colors || {};
      const color = colors[status] || "#16a34a";
      const marker = L.circleMarker(latlng, {
        radius: status === "alarm" ? 7 : 5, color: "#ffffff", weight: 1.2,
        fillColor: color, fillOpacity: 0.95,
        className: "sensor-dot sensor-" + status + (status === "alarm" ? " sensor-alarm" : "")
      });
      return marker;
    },
    label: function (feature, latlng) {
      const p = feature.properties;
      const span = document.createElement("span");
      span.textContent = p.label;  // text, never HTML: names come from data
      const icon = L.divIcon({className: "place-label place-label-" + p.level, html: span.outerHTML,
                              iconSize: null});
      return L.marker(latlng, {icon: icon, interactive: false, keyboard: false});
    },
    cluster: function (feature, latlng, index, context) {
      const n = feature.properties.point_count;
      const size = n > 50 ? 40 : n > 10 ? 34 : 28;
      const icon = L.divIcon({
        className: "res-cluster",
        html: '<span style="width:' + size + "px;height:" + size + "px;line-height:" + size + 'px">' + n + "</span>",
        iconSize: [size, size], iconAnchor: [size / 2, size / 2]
      });
      return L.marker(latlng, {icon: icon});
    }
  },
  each: {
    villageTooltip: function (feature, layer) {
      const p = feature.properties;
      const el = document.createElement("div");
      const b = document.createElement("b"); b.textContent = p.name; el.appendChild(b);
      el.appendChild(document.createElement("br"));
      el.appendChild(document.createTextNode(p.town + " · " + p.code));
      if (p.population !== null && p.population !== undefined) {
        el.appendChild(document.createElement("br"));
        el.appendChild(document.createTextNode("人口 " + p.population.toLocaleString()));
      }
      layer.bindTooltip(el, {sticky: true, direction: "top", className: "feature-tip"});
    },
    gridTooltip: function (feature, layer) {
      const p = feature.properties;
      const el = document.createElement("div");
      const b = document.createElement("b"); b.textContent = p.name; el.appendChild(b);
      el.appendChild(document.createElement("br"));
      el.appendChild(document.createTextNode(p.code + (p.worker ? " · 网格员 " + p.worker : "")));
      layer.bindTooltip(el, {sticky: true, direction: "top", className: "feature-tip"});
    },
    populationTooltip: function (feature, layer) {
      const p = feature.properties;
      const el = document.createElement("div");
      const b = document.createElement("b"); b.textContent = p.name; el.appendChild(b);
      el.appendChild(document.createElement("br"));
      el.appendChild(document.createTextNode(
        (p.total || 0).toLocaleString() + " 人 · 60+ " + (100 * (p.share60 || 0)).toFixed(1) + "% · " +
        (p.households || 0).toLocaleString() + " 户"));
      layer.bindTooltip(el, {sticky: true, direction: "top", className: "feature-tip"});
    }
  }
});

/* Keep a handle on the Leaflet map(s): browser tests and the render benchmark use it
 * to turn lon/lat into screen points and to read Performance marks. */
(function hookMaps() {
  if (!window.L || !window.L.Map) { setTimeout(hookMaps, 20); return; }
  window.L.Map.addInitHook(function () {
    window.dvmap.maps = (window.dvmap.maps || []).concat([this]);
    if (window.performance && performance.mark) { performance.mark("dvmap-map-init"); }
  });
})();

window.dvmap.points.event = function (feature, latlng, context) {
  const p = feature.properties;
  const h = (context && context.hideout) || {};
  if (p.kind === "event_aggregate") {
    const cls = p.overdue > 0 ? "evt-agg evt-agg-overdue" : "evt-agg";
    const badge = p.overdue > 0 ? '<i class="agg-badge">' + p.overdue + "</i>" : "";
    const icon = L.divIcon({className: "event-agg",
      html: '<span class="' + cls + '"><b>事</b>' + p.count.toLocaleString() + badge + "</span>", iconSize: null});
    return L.marker(latlng, {icon: icon, title: p.name});
  }
  const color = (h.state_colors || {})[p.state] || "#d1242f";
  return L.circleMarker(latlng, {
    radius: 6, color: p.overdue ? (h.overdue || "#ff0000") : "#ffffff", weight: p.overdue ? 3 : 1.5,
    fillColor: color, fillOpacity: 0.95, className: "event-point" + (p.overdue ? " event-overdue" : "")
  });
};

/* Events UI. The map remembers where the last click landed ("preclick" fires for the
 * map even when a feature takes the click), since a feature's clickData is the
 * feature only; the report form needs the point itself. */
(function hookClicks() {
  if (!window.L || !window.L.Map) { setTimeout(hookClicks, 20); return; }
  window.L.Map.addInitHook(function () {
    this.on("preclick", function (e) {
      window.dvmap.lastClick = {lat: e.latlng.lat, lon: e.latlng.lng, t: Date.now()};
    });
  });
})();

window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.dvmapEvents = {
  /* The clicked point for the report offer: the map's clickData, or the recorded
   * position for a click on a feature. Aggregates and clusters are not places. */
  clickedPoint: function (layerClicks, mapClick) {
    const cc = dash_clientside.callback_context;
    const trig = (cc.triggered || [])[0];
    if (!trig || !trig.value) { return dash_clientside.no_update; }
    if (trig.prop_id.indexOf("map.") === 0) {
      if (!mapClick || !mapClick.latlng) { return dash_clientside.no_update; }
      return {lat: mapClick.latlng.lat, lon: mapClick.latlng.lng, kind: "map", t: Date.now()};
    }
    const last = (window.dvmap || {}).lastClick;
    if (!last) { return dash_clientside.no_update; }
    const name = JSON.parse(trig.prop_id.split(".")[0]).name;
    const state = (cc.states_list[0] || []).find(function (s) { return s.id.name === name; });
    const props = ((state && state.value) || {}).properties || {};
    if ((props.kind || "").endsWith("_aggregate") || props.cluster) { return dash_clientside.no_update; }
    return {lat: last.lat, lon: last.lon, kind: props.kind || name, id: props.id || null, t: Date.now()};
  },
  /* Open/close the events drawer and tell Leaflet the map changed size. */
  toggleDrawer: function (n) {
    const open = (n || 0) % 2 === 1;
    setTimeout(function () {
      ((window.dvmap || {}).maps || []).forEach(function (m) { m.invalidateSize(); });
    }, 80);
    return [open, open ? "evt-drawer open" : "evt-drawer"];
  }
};

/* Imported (custom) layers: one neutral style for any geometry; a layer may set
 * hideout.color (and hideout.selected, a feature id, to highlight one). */
window.dvmap.styles.custom = function (feature, context) {
  const h = (context && context.hideout) || {};
  const selected = h.selected !== undefined && h.selected !== null && String(h.selected) === String(feature.id);
  return {color: h.color || "#0e7490", weight: selected ? 4 : 2, fillColor: h.color || "#22d3ee", fillOpacity: 0.25};
};
window.dvmap.points.custom = function (feature, latlng, context) {
  const h = (context && context.hideout) || {};
  return L.circleMarker(latlng, {radius: 6, color: "#ffffff", weight: 1.5, fillColor: h.color || "#0e7490",
                                 fillOpacity: 0.95});
};

/* Labels and count boxes must not cover each other (issue 18): after every redraw, place
 * names keep their spot (a village name under a town name gives way), then the count
 * boxes (events, then sensors, then resource clusters) take the nearest free spot around
 * their anchor; a box with no free spot nearby is hidden until the user zooms in. Single
 * resource icons stand where the resource is: never moved, but the boxes avoid them. Boxes
 * move by the CSS `translate` property of their inner element, so Leaflet's own
 * positioning (the outer element's transform) is untouched. */
window.dvmap.declutterOrder = [
  [".place-label-town", "label"], [".place-label-village", "label"], [".res-marker", "fixed"],
  [".event-agg", "box"], [".sensor-agg", "box"], [".res-cluster", "box"]
];
window.dvmap.declutter = function (map) {
  const root = map.getContainer();
  const frame = root.getBoundingClientRect();
  const placed = [];
  const GAP = 2;
  const hits = function (r) {
    for (let i = 0; i < placed.length; i++) {
      const o = placed[i];
      if (r.left < o.right + GAP && r.right + GAP > o.left && r.top < o.bottom + GAP && r.bottom + GAP > o.top) {
        return true;
      }
    }
    return false;
  };
  const items = [];
  window.dvmap.declutterOrder.forEach(function (pair) {
    root.querySelectorAll(".leaflet-marker-icon" + pair[0]).forEach(function (el) {
      const inner = el.firstElementChild || el;
      inner.style.translate = "";
      if (el.dataset.decluttered) { el.style.visibility = ""; delete el.dataset.decluttered; }
      items.push({el: el, inner: inner, kind: pair[1]});
    });
  });
  // Measure everything first, then write: one layout pass instead of one per marker.
  items.forEach(function (it) {
    // The alarm/overdue badge sticks out of its box's top-right corner: it takes room too.
    const r = it.inner.getBoundingClientRect(), badge = it.inner.querySelector(".agg-badge");
    const b = badge ? badge.getBoundingClientRect() : r;
    it.rect = {left: Math.min(r.left, b.left), right: Math.max(r.right, b.right), width: r.width,
               top: Math.min(r.top, b.top), bottom: Math.max(r.bottom, b.bottom)};
    it.rect.height = it.rect.bottom - it.rect.top;
  });
  items.forEach(function (it) {
    const r = it.rect;
    if (r.width === 0 || r.right < frame.left || r.left > frame.right || r.bottom < frame.top || r.top > frame.bottom) {
      return;  // off screen or not drawn: takes no room
    }
    const box = function (dx, dy) {
      return {left: r.left + dx, right: r.right + dx, top: r.top + dy, bottom: r.bottom + dy, dx: dx, dy: dy};
    };
    let spot = null;
    if (it.kind === "fixed") {
      spot = box(0, 0);
    } else if (it.kind === "label") {
      spot = hits(r) ? null : box(0, 0);
    } else {
      const dy = r.height + GAP + 1, dx = r.width + GAP + 1;
      const tries = [[0, 0], [0, dy], [0, -dy], [dx, 0], [-dx, 0], [dx, dy], [-dx, dy], [dx, -dy], [-dx, -dy],
                     [0, 2 * dy], [0, -2 * dy], [dx / 2, 2 * dy], [-dx / 2, 2 * dy], [dx / 2, -2 * dy], [-dx / 2, -2 * dy]];
      for (let i = 0; i < tries.length && !spot; i++) {
        const b = box(tries[i][0], tries[i][1]);
        if (!hits(b)) { spot = b; }
      }
    }
    if (!spot) {
      it.el.style.visibility = "hidden";
      it.el.dataset.decluttered = "1";
      return;
    }
    if (spot.dx || spot.dy) { it.inner.style.translate = spot.dx + "px " + spot.dy + "px"; }
    placed.push(spot);
  });
};
(function hookDeclutter() {
  if (!window.L || !window.L.Map) { setTimeout(hookDeclutter, 20); return; }
  window.L.Map.addInitHook(function () {
    const map = this;
    let pending = null;
    // Markers arrive one by one (layeradd per marker): wait for the burst to end.
    const later = function () {
      if (pending) { clearTimeout(pending); }
      pending = setTimeout(function () { pending = null; window.dvmap.declutter(map); }, 60);
    };
    map.on("zoomend moveend layeradd layerremove resize", later);
  });
})();
