// The fedlab comparison view: one anywidget ES module, no build step.
// The kernel sends, per federation, the curve of one client metric (mean and p10–p90 per
// round), the heatmap of one federation and a table of final metrics. Every label names
// the metric the kernel sent with the data (`shown_metric`), never the one merely asked
// for (`metric`), so a pending switch never mislabels the numbers on screen.

const W = 880, CH = 260, HH = 180;
const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#4b5563"];
const INK = "#374151", MUTED = "#6b7280", RULE = "#e5e7eb";
const SVG = "http://www.w3.org/2000/svg";
const STOPS = [[68, 1, 84], [59, 81, 139], [33, 144, 141], [92, 200, 99], [253, 231, 37]];

function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1) * (STOPS.length - 1);
  const i = Math.min(Math.floor(x), STOPS.length - 2), f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e6) return String(v);
  if (v === 0 || (a >= 1e-3 && a < 1e6)) return v.toFixed(4);
  return v.toPrecision(3);
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function label(metric) {
  return metric ? metric.replace(":", " ") : "metric";
}

function drawCurves(host, curves, metric) {
  host.replaceChildren();
  const root = svg("svg", { width: W, height: CH, class: "fedlab-curves" });
  const L = 56, R = 16, T = 22, B = 28;
  let lo = Infinity, hi = -Infinity, r0 = Infinity, r1 = -Infinity;
  for (const c of curves) {
    c.mean.forEach((m, i) => {
      if (m === null) return;
      const r = c.start + i;
      r0 = Math.min(r0, r); r1 = Math.max(r1, r);
      lo = Math.min(lo, c.p10[i] ?? m, m); hi = Math.max(hi, c.p90[i] ?? m, m);
    });
  }
  const title = svg("text", { x: L, y: 14, fill: INK, "font-size": 12, class: "fedlab-ylabel" });
  title.textContent = `clients' ${label(metric)}: mean and p10–p90`;
  root.append(title);
  if (!Number.isFinite(lo)) { host.append(root); return; }
  if (hi === lo) { hi += 0.5; lo -= 0.5; }
  if (r1 === r0) r1 = r0 + 1;
  const x = (r) => L + ((r - r0) / (r1 - r0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (CH - T - B);
  root.append(svg("line", { x1: L, y1: CH - B, x2: W - R, y2: CH - B, stroke: RULE }));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    const t = svg("text", { x: L - 4, y: y(v) + 4, fill: MUTED, "font-size": 10, "text-anchor": "end" });
    t.textContent = fmt(v);
    root.append(t);
  }
  const xl = svg("text", { x: W - R, y: CH - 6, fill: MUTED, "font-size": 10, "text-anchor": "end" });
  xl.textContent = `round ${r0}–${r1}`;
  root.append(xl);
  curves.forEach((c, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const pts = c.mean.map((m, i) => [c.start + i, m, c.p10[i], c.p90[i]]).filter((p) => p[1] !== null);
    if (!pts.length) return;
    const upper = pts.map((p) => `${x(p[0])},${y(p[3] ?? p[1])}`);
    const lower = pts.slice().reverse().map((p) => `${x(p[0])},${y(p[2] ?? p[1])}`);
    root.append(svg("polygon", { points: [...upper, ...lower].join(" "), fill: colour, "fill-opacity": 0.15,
      class: "fedlab-band", "data-federation": c.name }));
    root.append(svg("polyline", { points: pts.map((p) => `${x(p[0])},${y(p[1])}`).join(" "), fill: "none",
      stroke: colour, "stroke-width": 2, class: "fedlab-curve", "data-federation": c.name,
      "data-points": pts.length }));
  });
  host.append(root);
}

function buffer(value) {
  if (!value) return new ArrayBuffer(0);
  if (value instanceof ArrayBuffer) return value;
  if (ArrayBuffer.isView(value)) {
    return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
  }
  return new ArrayBuffer(0);
}

function drawHeat(canvas, heat, raw) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!heat || !heat.rows || !heat.cols) return;
  const values = new Float32Array(buffer(raw));
  if (values.length !== heat.rows * heat.cols) return;
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (!Number.isNaN(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const cw = (canvas.width - 40) / heat.cols, rh = canvas.height / heat.rows;
  for (let r = 0; r < heat.rows; r++) {
    for (let c = 0; c < heat.cols; c++) {
      const v = values[r * heat.cols + c];
      const rgb = Number.isNaN(v) ? [243, 244, 246] : viridis(hi > lo ? (v - lo) / (hi - lo) : 0.5);
      ctx.fillStyle = `rgb(${rgb.join(",")})`;
      ctx.fillRect(40 + c * cw, r * rh, Math.ceil(cw), Math.ceil(rh));
    }
  }
  ctx.fillStyle = MUTED;
  ctx.font = "10px system-ui";
  ctx.fillText("clients", 2, 12);
}

function render({ model, el: root }) {
  const box = el("div", "fedlab-dashboard fedlab-compare");
  const head = el("div", "fedlab-head");
  const title = el("span", "fedlab-title");
  const status = el("span", "fedlab-status");
  const picker = el("select", "fedlab-metric");
  head.append(title, status, picker);
  const note = el("div", "fedlab-note");
  const legend = el("div", "fedlab-legend");
  const chart = el("div", "fedlab-chart");
  const tabs = el("div", "fedlab-tabs");
  const heatTitle = el("div", "fedlab-heat-title fedlab-muted");
  const canvas = el("canvas", "fedlab-canvas fedlab-heat");
  canvas.width = W; canvas.height = HH;
  const table = el("table", "fedlab-table");
  box.append(head, note, legend, chart, tabs, heatTitle, canvas, table);
  root.append(box);

  picker.addEventListener("change", () => { model.set("metric", picker.value); model.save_changes(); });

  function redraw() {
    const names = model.get("names"), metric = model.get("shown_metric");
    const curves = model.get("curves"), heat = model.get("heat");
    title.textContent = model.get("title");
    status.textContent = model.get("status");
    const metrics = model.get("metrics");
    if ([...picker.options].map((o) => o.value).join("|") !== metrics.join("|")) {
      picker.replaceChildren(...metrics.map((m) => { const o = el("option", "", label(m)); o.value = m; return o; }));
    }
    picker.value = metric;
    const asked = model.get("metric");
    note.textContent = asked && asked !== metric ? `switching to ${label(asked)}…` : "";
    legend.replaceChildren(...names.map((n, k) => {
      const item = el("span", "fedlab-legend-item", `● ${n}`);
      item.style.color = COLOURS[k % COLOURS.length];
      item.style.marginRight = "12px";
      return item;
    }));
    drawCurves(chart, curves, metric);
    tabs.replaceChildren(...names.map((n) => {
      const b = el("button", "fedlab-tab", n);
      b.dataset.federation = n;
      b.disabled = n === model.get("heat_of");
      b.addEventListener("click", () => { model.set("heat_of", n); model.save_changes(); });
      return b;
    }));
    heatTitle.textContent = heat && heat.federation
      ? `${heat.federation}: ${label(heat.metric)} per client (rows) and round (columns)` : "";
    drawHeat(canvas, heat, model.get("heat_values"));
    const columns = model.get("table_columns"), rows = model.get("table");
    const thead = el("tr");
    thead.append(...columns.map((c) => el("th", "", c)));
    table.replaceChildren(thead, ...rows.map((row) => {
      const tr = el("tr");
      tr.append(...row.map((v) => el("td", "", fmt(v))));
      return tr;
    }));
  }

  for (const name of ["names", "metrics", "metric", "shown_metric", "curves", "heat", "heat_values", "heat_of",
    "table", "table_columns", "status", "title"]) model.on(`change:${name}`, redraw);
  redraw();
}

export default { render };
