// Completed and failed per minute over the last hour, as inline SVG (no chart library).

import { h, svg } from "./dom.js";

const W = 600;
const H = 160;
const PAD = { left: 34, right: 6, top: 8, bottom: 20 };

/** Sum the per-minute series of every queue (GET /stats answers them aligned, oldest first). */
export function totals(stats) {
  const minutes = new Map();
  for (const queue of stats?.queues || []) {
    for (const point of queue.per_minute || []) {
      const seen = minutes.get(point.minute) || { minute: point.minute, completed: 0, failed: 0 };
      seen.completed += point.completed;
      seen.failed += point.failed;
      minutes.set(point.minute, seen);
    }
  }
  return [...minutes.values()].sort((a, b) => (a.minute < b.minute ? -1 : 1));
}

export function throughputChart(points) {
  const peak = Math.max(1, ...points.map((p) => p.completed + p.failed));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const step = plotW / Math.max(points.length, 1);
  const y = (v) => PAD.top + plotH - (v / peak) * plotH;
  const bars = points.flatMap((p, i) => {
    const x = PAD.left + i * step + step * 0.12;
    const width = Math.max(step * 0.76, 1);
    const label = `${new Date(p.minute).toLocaleTimeString("en-GB", { hour12: false, hour: "2-digit", minute: "2-digit" })}: ${p.completed} completed, ${p.failed} failed`;
    return [
      svg("g", { class: "bar" },
        svg("title", { text: label }),
        svg("rect", { class: "completed", x, y: y(p.completed), width, height: plotH + PAD.top - y(p.completed) }),
        svg("rect", { class: "failed", x, y: y(p.completed + p.failed), width, height: y(p.completed) - y(p.completed + p.failed) }),
      ),
    ];
  });
  const grid = [0, 0.5, 1].map((f) =>
    svg("g", null,
      svg("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(peak * f), y2: y(peak * f) }),
      svg("text", { class: "axis", x: PAD.left - 4, y: y(peak * f) + 4, "text-anchor": "end", text: String(Math.round(peak * f)) }),
    ),
  );
  const ends = [
    svg("text", { class: "axis", x: PAD.left, y: H - 4, text: "60 min ago" }),
    svg("text", { class: "axis", x: W - PAD.right, y: H - 4, "text-anchor": "end", text: "now" }),
  ];
  const total = points.reduce((sum, p) => sum + p.completed + p.failed, 0);
  const chart = svg(
    "svg",
    { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Completed and failed per minute, last hour: ${total} jobs` },
    grid,
    bars,
    ends,
  );
  const legend = h("p", { class: "legend" },
    h("span", { class: "key completed" }), " completed ",
    h("span", { class: "key failed" }), " failed ",
    h("span", { class: "muted" }, `· ${total.toLocaleString("en")} in the last hour`));
  return h("div", { class: "chart-box", "data-count": total }, chart, legend);
}
