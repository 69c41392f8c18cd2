/* The analytics page's messages-per-day chart, drawn with the vendored uPlot (saas/static/vendor/uplot, from
   `make vendor`) from the series the page carries in a data attribute: no inline code (CSP script-src 'self').
   Without scripts the tables below it say the same. */
(function () {
  "use strict";

  var COLOURS = {sent: "#1f5fa8", delivered: "#1f7a3a", read: "#7a4a1f", failed: "#b3261e"};

  function draw() {
    var holder = document.getElementById("analytics-chart");
    if (!holder || typeof uPlot === "undefined") {
      return;
    }
    var data = JSON.parse(holder.getAttribute("data-series") || "{}");
    if (!data.days || !data.days.length) {
      return;
    }
    var names = ["sent", "delivered", "read", "failed"];
    var series = [{}];
    var columns = [data.days];
    names.forEach(function (name) {
      series.push({label: name.charAt(0).toUpperCase() + name.slice(1), stroke: COLOURS[name], width: 2});
      columns.push(data[name] || []);
    });
    var options = {
      width: Math.max(holder.clientWidth, 280),
      height: 240,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      series: series,
      axes: [{}, {}]
    };
    new uPlot(options, columns, holder);
    holder.setAttribute("data-drawn", "true");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
