// The portal's charts, drawn by the vendored uPlot from the JSON an element names:
// <div class="chart" data-chart="compliance|history|host-runs" data-source="/api/...">.
// No inline script (the CSP forbids it). Once drawn, the element says so in data-drawn
// (how many series) and data-points, which the browser tests read.
"use strict";

(function () {
  const COLORS = { kept: "#2a7d2a", repaired: "#c88a00", not_kept: "#b22222" };
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  const seconds = (iso) => Date.parse(iso) / 1000;

  function counts(rows, timeField) {
    return {
      x: rows.map((r) => seconds(r[timeField])),
      series: ["kept", "repaired", "not_kept"].map((status) => ({
        label: status.replace("_", " "),
        stroke: COLORS[status],
        scale: "promises",
        values: rows.map((r) => r[status]),
      })),
    };
  }

  // Promise counts from zero up to a little above the largest.
  function fromZero(chart) {
    const counted = chart.series.filter((s) => s.scale === "promises");
    const top = Math.max(1, ...counted.flatMap((s) => s.values.filter((v) => v !== null)));
    return { range: () => [0, Math.ceil(top * 1.1)] };
  }

  function compliance(rows) {
    const chart = counts(rows, "time");
    chart.series.unshift({
      label: "compliant hosts %",
      stroke: "#24313f",
      width: 2,
      scale: "%",
      values: rows.map((r) => (r.share === null ? null : 100 * r.share)),
    });
    chart.axes = [{}, { scale: "%", label: "% compliant" },
      { scale: "promises", side: 1, label: "promises", grid: { show: false } }];
    chart.scales = { x: { time: true }, "%": { range: [0, 100] }, promises: fromZero(chart) };
    return chart;
  }

  function hostRuns(rows) {
    const chart = counts(rows, "ran");
    chart.axes = [{}, { scale: "promises", label: "promises" }];
    chart.scales = { x: { time: true }, promises: fromZero(chart) };
    return chart;
  }

  // Events as points, one row per kind: x is when, y the kind's row.
  function history(rows) {
    const events = rows.filter((r) => r.time).sort((a, b) => seconds(a.time) - seconds(b.time));
    const kinds = [...new Set(events.map((e) => e.kind))].sort();
    return {
      x: events.map((e) => seconds(e.time)),
      series: kinds.map((kind, row) => ({
        label: kind,
        stroke: PALETTE[row % PALETTE.length],
        scale: "kind",
        paths: () => null,
        points: { show: true, size: 9, fill: PALETTE[row % PALETTE.length] },
        values: events.map((e) => (e.kind === kind ? row : null)),
      })),
      axes: [{}, {
        scale: "kind", size: 110, incrs: [1],
        values: (u, splits) => splits.map((s) => kinds[s] || ""),
      }],
      scales: { x: { time: true }, kind: { range: [-0.5, Math.max(kinds.length - 0.5, 0.5)] } },
    };
  }

  const BUILD = { compliance: compliance, history: history, "host-runs": hostRuns };

  function draw(el, rows) {
    const chart = BUILD[el.dataset.chart](rows);
    el.replaceChildren();
    if (chart.x.length === 0) {
      el.textContent = "nothing recorded yet";
      el.dataset.drawn = "0";
      return;
    }
    // The time axis spans the data; a single point alone gets ten minutes around it (left
    // to uPlot, one point stretches the axis over years).
    const first = Math.min(...chart.x), last = Math.max(...chart.x);
    chart.scales.x.range = () => (first === last ? [first - 300, last + 300] : [first, last]);
    const opts = {
      width: Math.max(el.clientWidth, 320),
      height: 260,
      scales: chart.scales,
      axes: chart.axes,
      series: [{}].concat(chart.series.map(({ values, ...s }) => ({ spanGaps: false, ...s }))),
      hooks: {
        draw: [(u) => {
          el.dataset.drawn = String(u.series.length - 1);
          el.dataset.points = String(chart.x.length);
        }],
      },
    };
    const data = [chart.x].concat(chart.series.map((s) => s.values));
    el.uplot = new uPlot(opts, data, el);
  }

  async function load(el) {
    try {
      const answer = await fetch(el.dataset.source, {
        credentials: "same-origin", headers: { accept: "application/json" },
      });
      if (!answer.ok) throw new Error(`${answer.status} from ${el.dataset.source}`);
      draw(el, await answer.json());
    } catch (problem) {
      el.textContent = `chart unavailable: ${problem.message}`;
      el.dataset.drawn = "error";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-chart]").forEach(load);
  });
})();
