/* Patrol coverage (layers/patrol.py) and the big screen's workers on patrol (map_app/bigscreen.py).
 * Loaded after dvmap.js and bigscreen.js (assets load in name order), so it adds to their objects. */
(function () {
  window.dvmap = window.dvmap || {};
  window.dvmap.styles = window.dvmap.styles || {};
  window.dvmap.styles.patrolCoverage = function (feature, context) {
    const h = (context && context.hideout) || {};
    const breaks = h.breaks || [0.2, 0.4, 0.6, 0.8];
    const colors = h.colors || ["#b91c1c", "#f97316", "#facc15", "#84cc16", "#15803d"];
    const v = feature.properties.coverage || 0;
    let color = colors[colors.length - 1];
    for (let i = 0; i < breaks.length; i++) {
      if (v < breaks[i]) { color = colors[i]; break; }
    }
    const flagged = feature.properties.flagged;
    return {color: flagged ? "#7f1d1d" : "#ffffff", weight: flagged ? 2 : 0.8, dashArray: flagged ? "6 4" : null,
            fillColor: color, fillOpacity: 0.45};
  };
  window.dvmap.each = window.dvmap.each || {};
  window.dvmap.bs = window.dvmap.bs || {};
  /* one dot per worker on patrol now: position only, no name, no track */
  window.dvmap.bs.patrol = function (feature, latlng) {
    // a marker (its pane is the markers', like the events'); sized in CSS by the screen unit
    const icon = L.divIcon({className: "bs-patrol-icon", html: '<span class="bs-patrol"></span>', iconSize: null});
    return L.marker(latlng, {icon: icon, keyboard: false, interactive: false});
  };
})();
