// Anxin console: the little that htmx does not do. No inline code anywhere (strict CSP).
(function () {
  "use strict";

  // Charts: <div data-charts="/url"> holds <div class="chart" data-chart="key">; the
  // server sends one JSON object with a series description per key.
  function drawCharts(root) {
    if (typeof echarts === "undefined") return;
    root.querySelectorAll("[data-charts]").forEach(function (box) {
      fetch(box.dataset.charts, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          box.querySelectorAll("[data-chart]").forEach(function (el) {
            var spec = data[el.dataset.chart];
            if (!spec) { el.closest("figure").hidden = true; return; }
            var chart = echarts.init(el, null, { renderer: "svg" });
            chart.setOption(option(spec));
            el.dataset.ready = "1";
            new ResizeObserver(function () { chart.resize(); }).observe(el);
          });
        });
    });
  }

  var palette = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#57606a"];

  function option(spec) {
    // Tooltips drawn in the canvas (richText): no HTML with inline styles, so the CSP
    // can forbid inline styles too.
    var base = { color: palette, animation: false, tooltip: { renderMode: "richText" },
                 grid: { left: 48, right: 16, top: 36, bottom: 32, containLabel: true } };
    if (spec.pie) {
      // Reasons are long words: a legend beside the ring instead of labels around it.
      base.tooltip.trigger = "item";
      base.legend = { type: "scroll", orient: "vertical", right: 0, top: "middle",
                      formatter: function (name) {
                        var item = spec.pie.find(function (p) { return p.name === name; });
                        return item ? name + "  " + item.value : name;
                      } };
      base.series = [{ type: "pie", radius: ["35%", "62%"], center: ["30%", "50%"],
                       data: spec.pie, label: { show: false } }];
      return base;
    }
    base.tooltip.trigger = "axis";
    base.legend = { top: 0, type: "scroll" };
    var cat = { type: "category", data: spec.categories };
    var val = { type: "value", minInterval: 1 };
    base.xAxis = spec.horizontal ? val : cat;
    base.yAxis = spec.horizontal ? cat : val;
    base.series = spec.series.map(function (s) {
      return { type: "bar", name: s.name, data: s.data, stack: spec.stack ? "all" : undefined };
    });
    return base;
  }

  // Live lists: <tbody data-live="/url?..."> receives server-sent events whose data is
  // ready-made rows (HTML rendered and escaped by the server), newest first.
  function live(root) {
    root.querySelectorAll("[data-live]").forEach(function (body) {
      if (body.dataset.connected) return;
      body.dataset.connected = "1";
      var source = new EventSource(body.dataset.live);
      source.addEventListener("rows", function (ev) {
        var tpl = document.createElement("template");
        tpl.innerHTML = ev.data;
        var empty = body.querySelector("tr.empty");
        if (empty) empty.remove();
        body.insertBefore(tpl.content, body.firstChild);
        var max = parseInt(body.dataset.max || "200", 10);
        while (body.rows.length > max) body.deleteRow(-1);
        var status = document.querySelector("[data-live-status]");
        if (status) status.textContent = status.dataset.liveStatus;
      });
      source.addEventListener("error", function () {
        var status = document.querySelector("[data-live-status]");
        if (status) status.textContent = status.dataset.liveOffline || "";
      });
    });
  }

  // A form field can ask for confirmation: <button data-confirm="...">.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-confirm]");
    if (btn && !window.confirm(btn.dataset.confirm)) ev.preventDefault();
  });

  function init(root) { drawCharts(root); live(root); }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { live(ev.target); });
})();
