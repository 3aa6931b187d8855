/* Grid editor (/grids): map styles and a small vertex-edit mode.
 *
 * dash-leaflet's EditControl draws new shapes but cannot edit polygons it did not draw,
 * so the polygon being drawn or edited (the "sketch", store "grid-sketch") is drawn here:
 * one draggable handle per vertex (drag to move, right-click to remove) and one per edge
 * midpoint (click or drag to add a vertex). Every edit writes the new geometry back into
 * the sketch store with dash_clientside.set_props, which runs the server-side validation.
 * Vertices that are not touched keep their exact coordinates, so edges shared with
 * neighbouring grids stay bit-identical. */
(function () {
  "use strict";
  var ns = window.dvmap = window.dvmap || {};
  var SKETCH_ID = "grid-sketch";
  var MAP_ID = "grid-map";

  var E = ns.gridEditor = ns.gridEditor || {};
  E.parts = [];          // [[ring, ...], ...]; ring = [[lng, lat], ...] without the closing vertex
  E.sketch = null;
  E.count = 0;
  var layer = null;      // L.LayerGroup holding the sketch and its handles

  function noUpdate() {
    return window.dash_clientside ? window.dash_clientside.no_update : null;
  }

  E.findMap = function () {
    var el = document.getElementById(MAP_ID);
    var maps = (window.dvmap && window.dvmap.maps) || [];   // filled by the init hook in dvmap.js
    if (!el) { return null; }
    for (var i = maps.length - 1; i >= 0; i--) {
      var c = maps[i].getContainer();
      if (c === el || el.contains(c) || c.contains(el)) { return maps[i]; }
    }
    return null;
  };

  function latlng(c) { return window.L.latLng(c[1], c[0]); }

  function partsOf(geometry) {
    var polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    return polys.map(function (poly) {
      return poly.map(function (ring) {
        var r = ring.map(function (c) { return [c[0], c[1]]; });
        var a = r[0], b = r[r.length - 1];
        if (r.length > 1 && a[0] === b[0] && a[1] === b[1]) { r.pop(); }
        return r;
      });
    });
  }

  E.geometry = function () {
    var polys = E.parts.map(function (rings) {
      return rings.map(function (r) { return r.map(function (c) { return [c[0], c[1]]; }).concat([[r[0][0], r[0][1]]]); });
    });
    return polys.length === 1 ? {type: "Polygon", coordinates: polys[0]} : {type: "MultiPolygon", coordinates: polys};
  };

  function push() {
    E.sketch = Object.assign({}, E.sketch || {}, {geometry: E.geometry(), from: "js",
                                                   rev: ((E.sketch && E.sketch.rev) || 0) + 1});
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props(SKETCH_ID, {data: E.sketch});
    }
  }

  function icon(cls) {
    return window.L.divIcon({className: cls, iconSize: cls === "ge-vertex" ? [14, 14] : [10, 10]});
  }

  function draw(map) {
    if (layer) { layer.clearLayers(); } else { layer = window.L.layerGroup().addTo(map); }
    var sketch = E.sketch || {};
    if (sketch.line) {
      window.L.polyline(sketch.line.coordinates.map(latlng),
                        {color: "#b91c1c", weight: 3, dashArray: "6 4", interactive: false}).addTo(layer);
    }
    if (!E.parts.length) { return; }
    E.parts.forEach(function (rings, pi) {
      var poly = window.L.polygon(rings.map(function (r) { return r.map(latlng); }),
                                  {color: "#1d4ed8", weight: 2.5, fillColor: "#3b82f6", fillOpacity: 0.18,
                                   className: "ge-sketch-poly", interactive: false}).addTo(layer);
      if (!sketch.editable) { return; }
      rings.forEach(function (ring, ri) {
        var mids = [];
        function midOf(i) {
          var a = ring[i], b = ring[(i + 1) % ring.length];
          return window.L.latLng((a[1] + b[1]) / 2, (a[0] + b[0]) / 2);
        }
        ring.forEach(function (c, i) {
          var mid = window.L.marker(midOf(i), {icon: icon("ge-mid"), draggable: true, keyboard: false,
                                               zIndexOffset: 500, title: "+"}).addTo(layer);
          var insert = function (ll) {
            ring.splice(i + 1, 0, [ll.lng, ll.lat]);
            draw(map);
            push();
          };
          mid.on("click", function () { insert(midOf(i)); });
          mid.on("dragend", function (e) { insert(e.target.getLatLng()); });
          mids.push(mid);
        });
        ring.forEach(function (c, i) {
          var m = window.L.marker(latlng(c), {icon: icon("ge-vertex"), draggable: true, keyboard: false,
                                              zIndexOffset: 1000}).addTo(layer);
          m.on("drag", function (e) {
            var ll = e.target.getLatLng();
            ring[i] = [ll.lng, ll.lat];
            poly.setLatLngs(rings.map(function (r) { return r.map(latlng); }));
            mids[i].setLatLng(midOf(i));
            mids[(i - 1 + ring.length) % ring.length].setLatLng(midOf((i - 1 + ring.length) % ring.length));
          });
          m.on("dragend", function () { push(); });
          m.on("contextmenu", function (e) {
            if (e.originalEvent) { e.originalEvent.preventDefault(); }
            if (ring.length > 3) {
              ring.splice(i, 1);
              draw(map);
              push();
            }
          });
          m.getElement && m.getElement() && m.getElement().setAttribute("data-vertex", pi + ":" + ri + ":" + i);
        });
      });
    });
  }

  /* Called by the clientside callback on every change of the sketch store. */
  E.render = function (sketch) {
    var map = E.findMap();
    if (!map || !window.L) {
      setTimeout(function () { E.render(sketch); }, 100);
      return noUpdate();
    }
    if (sketch && sketch.from === "js" && E.sketch && sketch.rev === E.sketch.rev) {
      return noUpdate();   // our own edit coming back: already on the map
    }
    E.sketch = sketch || null;
    E.parts = sketch && sketch.geometry ? partsOf(sketch.geometry) : [];
    draw(map);
    E.count += 1;
    return E.count;
  };

  /* Screen position of a sketch vertex (for tests and the help overlay). */
  E.vertexPoint = function (part, ring, i) {
    var map = E.findMap();
    var c = E.parts[part][ring][i];
    var p = map.latLngToContainerPoint(latlng(c));
    var r = map.getContainer().getBoundingClientRect();
    return {x: r.left + p.x, y: r.top + p.y};
  };

  /* Shapes drawn with the EditControl are handed to the server as GeoJSON; the drawn
   * layer itself is then removed so that only the editable sketch remains. */
  (function hookDraw() {
    if (!window.L || !window.L.Map) { setTimeout(hookDraw, 50); return; }
    window.L.Map.addInitHook(function () {
      var map = this;
      map.on("draw:created", function (e) {
        setTimeout(function () { if (e.layer) { e.layer.remove(); } }, 0);
      });
    });
  })();

  /* Hatching for the gaps layer: an SVG pattern the gap style's fillColor points at. */
  function addHatch() {
    if (document.getElementById("ge-hatch-defs")) { return; }
    var svgNS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("id", "ge-hatch-defs");
    svg.setAttribute("width", "0");
    svg.setAttribute("height", "0");
    svg.style.position = "absolute";
    svg.innerHTML = '<defs><pattern id="ge-hatch" patternUnits="userSpaceOnUse" width="8" height="8"' +
      ' patternTransform="rotate(45)"><rect width="8" height="8" fill="rgba(250,204,21,0.25)"/>' +
      '<line x1="0" y1="0" x2="0" y2="8" stroke="#ca8a04" stroke-width="3"/></pattern></defs>';
    document.body.appendChild(svg);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", addHatch);
  } else {
    addHatch();
  }

  E.styles = {
    outline: function () {
      return {color: "#14532d", weight: 3, dashArray: "10 6", fill: false};
    },
    gap: function () {
      return {color: "#ca8a04", weight: 1.5, dashArray: "4 3", fillColor: "url(#ge-hatch)", fillOpacity: 1,
              className: "ge-gap"};
    },
    overlap: function (feature) {
      if (feature.geometry.type === "Point") { return {color: "#dc2626", weight: 3, fill: false}; }
      // A thick outline: an overlap of a few m² must still catch the eye at village zoom.
      return {color: "#dc2626", weight: 5, opacity: 0.9, fillColor: "#ef4444", fillOpacity: 0.6,
              className: "ge-overlap"};
    },
    grid: function (feature, context) {
      var h = (context && context.hideout) || {};
      var uid = feature.properties.uid;
      if (h.editing === uid) {
        return {color: "#64748b", weight: 1, dashArray: "4 4", fill: false, className: "ge-grid ge-grid-editing"};
      }
      var merge = (h.merge || []).indexOf(uid) >= 0;
      var sel = h.selected === uid;
      return {color: sel ? "#1d4ed8" : merge ? "#7c3aed" : "#c2410c", weight: sel || merge ? 3 : 1.5,
              fillColor: merge ? "#a78bfa" : sel ? "#93c5fd" : "#fdba74", fillOpacity: sel || merge ? 0.35 : 0.12,
              className: "ge-grid" + (sel ? " ge-grid-selected" : "") + (merge ? " ge-grid-merge" : "")};
    }
  };

  E.each = {
    grid: function (feature, lyr) {
      var p = feature.properties;
      var el = document.createElement("div");
      var code = document.createElement("div");
      code.className = "ge-label-code";
      code.appendChild(document.createTextNode(p.code.slice(0, 12)));
      var b = document.createElement("b");
      b.textContent = p.code.slice(12);
      code.appendChild(b);
      el.appendChild(code);
      var w = document.createElement("div");
      w.className = "ge-label-worker";
      w.textContent = p.worker || "—";   // text, never HTML: names come from data
      el.appendChild(w);
      el.setAttribute("data-code", p.code);
      lyr.bindTooltip(el, {permanent: true, direction: "center", className: "ge-label", interactive: false});
    }
  };

  E.points = {
    overlap: function (feature, ll) {
      return window.L.circleMarker(ll, {radius: 14, color: "#dc2626", weight: 3, fill: false,
                                        className: "ge-overlap-mark"});
    },
    problem: function (feature, ll) {
      return window.L.circleMarker(ll, {radius: 9, color: "#b91c1c", weight: 3, fillColor: "#fecaca",
                                        fillOpacity: 0.9, className: "ge-problem"});
    }
  };
})();
