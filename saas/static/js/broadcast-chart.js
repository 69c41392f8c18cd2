/* The broadcast report's sends-per-minute chart, drawn with the vendored uPlot (saas/static/vendor/uplot, from
   `make vendor`) from the numbers the page carries in data attributes: no inline code (CSP script-src 'self').
   Without scripts the server-drawn SVG stays. */
(function () {
  "use strict";

  function draw() {
    var holder = document.getElementById("sends-chart-plot");
    if (!holder || typeof uPlot === "undefined") {
      return;
    }
    var minutes = JSON.parse(holder.getAttribute("data-minutes") || "[]");
    var sends = JSON.parse(holder.getAttribute("data-sends") || "[]");
    if (!minutes.length) {
      return;
    }
    var options = {
      width: Math.max(holder.clientWidth, 280),
      height: 220,
      series: [{}, {label: "Sends per minute", stroke: "#1f7a3a", fill: "rgba(31, 122, 58, 0.15)", width: 2}],
      axes: [{}, {}]
    };
    new uPlot(options, [minutes, sends], holder);
    holder.setAttribute("data-drawn", "true");
    var fallback = document.getElementById("sends-chart-fallback");
    if (fallback) {
      fallback.hidden = true;
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
