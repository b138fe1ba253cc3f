// The fedlab dashboard view: one anywidget ES module, no build step.
// The kernel sends compact binary grids (float32 metric values, uint8 participation):
// the whole grids as traits now and then, and in between custom "delta" messages with
// only the cells that changed (format in _delta.py), applied in place to one store per
// model that its views draw from; a view made after deltas it missed (a reload, another
// page) asks for the whole state at its first gap. This module draws them on a canvas and keeps hover, selection and metric choice local,
// so the view stays usable while a blocking cell keeps the kernel busy.
// Every label names the metric the kernel sent with the grid (`grid_metric`), never the one
// merely asked for (`metric`): until the asked-for grid arrives, the old numbers keep their
// own name and a note says that the switch is pending.

const W = 880;
// Rows of the heatmap and raster: tall enough to hit with a pointer up to 30 clients.
const ROW_H = 16, MAX_HEAT_H = 480;
const STATUS = ["not sampled", "sampled", "finished", "failed", "timed out"];
const STATUS_RGB = [[243, 244, 246], [191, 219, 254], [22, 163, 74], [220, 38, 38], [245, 158, 11]];
const MISSING_RGB = [243, 244, 246];
const INK = "#374151", MUTED = "#6b7280", RULE = "#e5e7eb", BLUE = "#2563eb";
const SERIES = ["#7c3aed", "#db2777", "#0d9488", "#ea580c"];
const TIMING = [["train", "#2563eb"], ["aggregate", "#f59e0b"], ["evaluate", "#10b981"]];
// Viridis, sampled at nine stops and interpolated.
const STOPS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];

function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (STOPS.length - 1);
  const i = Math.min(Math.floor(x), STOPS.length - 2), f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

function buffer(value) {
  if (!value) return new ArrayBuffer(0);
  if (value instanceof ArrayBuffer) return value;
  if (ArrayBuffer.isView(value)) {
    return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
  }
  return new ArrayBuffer(0);
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e6) return String(v);
  if (v === 0 || (a >= 1e-3 && a < 1e6)) return v.toFixed(4);
  return v.toPrecision(3);
}

function secs(s) {
  if (s < 10) return s.toFixed(2) + "s";
  if (s < 600) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60);
  return m + "m " + String(Math.round(s - 60 * m)).padStart(2, "0") + "s";
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

const TYPED = { values: Float32Array, participation: Uint8Array, band: Float32Array,
  timing: Float32Array, central: Float32Array };

// The grids behind one model handle: rebuilt from the traits whenever a full state
// arrives (its `seq` changes), patched in place by each delta that follows.
const stores = new WeakMap();

function copyOf(model, name) {
  return new TYPED[name](buffer(model.get(name)).slice(0));  // a copy: deltas patch it
}

function rebuild(store, model) {
  store.seq = model.get("seq") || 0;
  store.n = model.get("n_clients");
  store.width = model.get("n_rounds");
  store.metric = model.get("grid_metric");
  for (const name of Object.keys(TYPED)) store[name] = copyOf(model, name);
  store.failures = (model.get("failures") || []).slice();
  store.asked = false;
}

// Apply one delta; false if it does not follow the state held (a gap: ask for it all).
function applyDelta(store, content, buffers) {
  if (content.seq !== store.seq + 1) return false;
  let k = 0;
  for (const part of content.parts) {
    if (part.name === "failures") {  // a JSON list: its oldest items dropped, new ones added
      store.failures = part.items ? part.items.slice() : store.failures.slice(part.drop).concat(part.append);
      continue;
    }
    const Typed = TYPED[part.name];
    if (!Typed) return false;
    if (part.whole) {
      store[part.name] = new Typed(buffer(buffers[k++]));
      continue;
    }
    const cells = new Uint32Array(buffer(buffers[k++])), data = new Typed(buffer(buffers[k++]));
    const target = store[part.name];
    if (cells.length !== part.cells || data.length !== part.cells) return false;
    for (let i = 0; i < cells.length; i++) {
      if (cells[i] >= target.length) return false;
      target[cells[i]] = data[i];
    }
  }
  store.seq = content.seq;
  return true;
}

// anywidget hands initialize() and each view a model handle of its own; the `_store_key`
// trait is one object per model in this page, so they all find the same store.
function keyOf(model) {
  return model.get("_store_key") || model;
}

function storeOf(model) {
  let store = stores.get(keyOf(model));
  if (store) return store;
  store = { views: new Set(), owner: model };  // the handle whose listeners feed it
  rebuild(store, model);
  const changed = () => store.views.forEach((f) => f());
  model.on("change:seq", () => { rebuild(store, model); changed(); });
  model.on("msg:custom", (content, buffers) => {
    if (!content || content.type !== "delta") return;
    if (applyDelta(store, content, buffers || [])) { changed(); return; }
    if (!store.asked && content.seq > store.seq) {
      // Missed (or made after) some deltas: the kernel sends the whole state when free.
      store.asked = true;
      model.send({ type: "resync", seq: store.seq });
    }
  });
  stores.set(keyOf(model), store);
  return store;
}

function read(model) {
  const s = storeOf(model), n = s.n, width = s.width;
  return {
    n, width, start: model.get("start_round"),
    values: s.values.length === n * width ? s.values : new Float32Array(n * width).fill(NaN),
    status: s.participation.length === n * width ? s.participation : new Uint8Array(n * width),
    band: s.band,
    timing: s.timing,
    central: s.central,
    centralNames: model.get("central_names"),
    clients: model.get("clients"),
    metric: s.metric,  // what `values` and `band` hold
    requested: model.get("metric"),
    failures: s.failures,
    selected: model.get("selected"),
  };
}

function layout(d) {
  const heatH = Math.max(100, Math.min(MAX_HEAT_H, d.n * ROW_H));
  const top = 214;
  return {
    global: { x: 54, y: 30, w: 360, h: 130 },
    central: { x: 490, y: 30, w: 350, h: 130 },
    heat: { x: 54, y: top, w: 480, h: heatH },
    raster: { x: 580, y: top, w: 260, h: heatH },
    timing: { x: 54, y: top + heatH + 64, w: 480, h: 110 },
    legend: { x: 580, y: top + heatH + 64, w: 260, h: 110 },
    height: top + heatH + 64 + 110 + 34,
  };
}

function label(name) {
  return (name || "").replace(":", " ");
}

const globalTitle = (d) => `clients' ${label(d.metric) || "metric"}: mean and p10–p90`;
const CENTRAL_TITLE = "central evaluation (server)";
const heatTitle = (d) => `${label(d.metric) || "metric"} per client (rows) and round (columns)`;
const RASTER_TITLE = "participation";
const TIMING_TITLE = "seconds per round (stacked) and the slowest client (dash)";

function finiteRange(values, extra) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (const v of extra || []) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  return [lo, hi];
}

function colX(r, d, width) {
  return r.x + ((d - 0.5) / width) * r.w;  // d counts columns from 1
}

function frame(ctx, r, title, d) {
  ctx.fillStyle = INK;
  ctx.font = "600 12px system-ui, sans-serif";
  ctx.textAlign = "left";
  ctx.fillText(title, r.x, r.y - 10);
  ctx.strokeStyle = RULE;
  ctx.strokeRect(r.x + 0.5, r.y + 0.5, r.w, r.h);
  if (!d || d.width <= 0) return;
  ctx.fillStyle = MUTED;
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "center";
  const step = Math.max(1, Math.ceil(d.width / 10));
  for (let c = 0; c < d.width; c += step) {
    ctx.fillText(String(d.start + c), colX(r, c + 1, d.width), r.y + r.h + 12);
  }
}

function yAxis(ctx, r, lo, hi) {
  ctx.fillStyle = MUTED;
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.fillText(fmt(hi), r.x - 4, r.y + 9);
  ctx.fillText(fmt(lo), r.x - 4, r.y + r.h);
}

function yPos(r, v, lo, hi) {
  return r.y + r.h - ((v - lo) / (hi - lo)) * (r.h - 6) - 3;
}

function polyline(ctx, points, stroke, dash) {
  ctx.strokeStyle = stroke;
  ctx.lineWidth = 1.6;
  ctx.setLineDash(dash || []);
  let pen = false;
  ctx.beginPath();
  for (const [x, y] of points) {
    if (y === null) { pen = false; continue; }
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  }
  ctx.stroke();
  ctx.setLineDash([]);
  for (const [x, y] of points) if (y !== null && points.length < 60) {
    ctx.fillStyle = stroke;
    ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
  }
}

function drawGlobal(ctx, r, d) {
  frame(ctx, r, globalTitle(d), d);
  const rows = d.band.length / 3;
  if (!rows) return;
  const [lo, hi] = finiteRange(d.band);
  yAxis(ctx, r, lo, hi);
  ctx.fillStyle = "rgba(37, 99, 235, 0.18)";
  for (let c = 0; c < rows; c++) {
    const p10 = d.band[3 * c], p90 = d.band[3 * c + 2];
    if (!Number.isFinite(p10)) continue;
    const x0 = r.x + (c / d.width) * r.w + 1, x1 = r.x + ((c + 1) / d.width) * r.w - 1;
    const y0 = yPos(r, p90, lo, hi), y1 = yPos(r, p10, lo, hi);
    ctx.fillRect(x0, y0, Math.max(x1 - x0, 1), Math.max(y1 - y0, 1));
  }
  const points = [];
  for (let c = 0; c < rows; c++) {
    const m = d.band[3 * c + 1];
    points.push([colX(r, c + 1, d.width), Number.isFinite(m) ? yPos(r, m, lo, hi) : null]);
  }
  polyline(ctx, points, BLUE);
}

function centralSeries(d) {
  const series = d.centralNames.map(() => []);
  for (let i = 0; i + 2 < d.central.length; i += 3) {
    series[d.central[i]]?.push([d.central[i + 1], d.central[i + 2]]);
  }
  return series;
}

function drawCentral(ctx, r, d) {
  frame(ctx, r, CENTRAL_TITLE, d);
  const series = centralSeries(d);
  if (!series.some((s) => s.length)) {
    ctx.fillStyle = MUTED;
    ctx.textAlign = "center";
    ctx.fillText("no server-side evaluate_fn", r.x + r.w / 2, r.y + r.h / 2);
    return;
  }
  const all = series.flat().map((p) => p[1]);
  let [lo, hi] = finiteRange(all);
  if (lo >= 0 && hi <= 1) [lo, hi] = [0, 1];
  yAxis(ctx, r, lo, hi);
  series.forEach((points, k) => {
    const color = SERIES[k % SERIES.length];
    polyline(ctx, points.map(([round, v]) => [
      Math.max(r.x, colX(r, round - d.start + 1, d.width)), yPos(r, v, lo, hi)]), color);
    const last = points[points.length - 1];
    ctx.fillStyle = color;
    ctx.textAlign = "left";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText(`${d.centralNames[k]} ${last ? fmt(last[1]) : "–"}`, r.x + 6 + 120 * k, r.y + 14);
  });
}

// One image row per client, or per bin of clients when they outnumber the pixels:
// a bin shows its clients' mean value and its worst participation state.
function grid(d, rows, pick) {
  const image = new ImageData(Math.max(d.width, 1), Math.max(rows, 1));
  for (let b = 0; b < rows; b++) {
    const from = Math.floor((b * d.n) / rows), to = Math.max(Math.floor(((b + 1) * d.n) / rows), from + 1);
    for (let c = 0; c < d.width; c++) {
      const rgb = pick(from, to, c);
      const at = 4 * (b * image.width + c);
      image.data[at] = rgb[0]; image.data[at + 1] = rgb[1]; image.data[at + 2] = rgb[2];
      image.data[at + 3] = 255;
    }
  }
  return image;
}

function blit(ctx, r, image) {
  const off = document.createElement("canvas");
  off.width = image.width; off.height = image.height;
  off.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, r.x + 1, r.y + 1, r.w - 1, r.h - 1);
}

function markRow(ctx, r, d, row) {
  if (row < 0 || row >= d.n) return;
  const y0 = r.y + (row / d.n) * r.h, h = Math.max(r.h / d.n, 2);
  ctx.fillStyle = "rgba(37, 99, 235, 0.16)";  // the selected client's row stays marked
  ctx.fillRect(r.x - 3, y0, r.w + 6, h);
  ctx.strokeStyle = "#111827";
  ctx.lineWidth = 2;
  ctx.strokeRect(r.x - 3, y0, r.w + 6, h);
}

// Each row named by its partition id ("7"), or node id, where the rows are tall enough.
function rowLabels(ctx, r, d) {
  const h = r.h / d.n;
  if (h < 10) return false;
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "right";
  for (let row = 0; row < d.n; row++) {
    const [node, partition] = d.clients[row] || [row, null];
    ctx.fillStyle = row === d.selected ? INK : MUTED;
    const name = partition === null || partition === undefined ? `node ${node}` : String(partition);
    ctx.fillText(name.length > 9 ? name.slice(0, 8) + "…" : name, r.x - 5, r.y + (row + 0.5) * h + 3);
  }
  return true;
}

function drawHeat(ctx, r, d, scale) {
  frame(ctx, r, heatTitle(d), d);
  if (!d.n || !d.width) return;
  const rows = Math.min(d.n, Math.floor(r.h * (window.devicePixelRatio || 1)));
  const [lo, hi] = scale;
  blit(ctx, r, grid(d, rows, (from, to, c) => {
    let sum = 0, count = 0;
    for (let i = from; i < to; i++) {
      const v = d.values[i * d.width + c];
      if (Number.isFinite(v)) { sum += v; count++; }
    }
    return count ? colour((sum / count - lo) / (hi - lo)) : MISSING_RGB;
  }));
  markRow(ctx, r, d, d.selected);
  const labelled = rowLabels(ctx, r, d);
  ctx.fillStyle = MUTED;
  ctx.textAlign = "right";
  ctx.font = "10px system-ui, sans-serif";
  const count = d.n === 1 ? "1 client" : `${d.n} clients`;
  ctx.fillText(count, r.x - 4, labelled ? r.y + r.h + 12 : r.y + 10);
}

function drawRaster(ctx, r, d) {
  frame(ctx, r, RASTER_TITLE, d);
  if (!d.n || !d.width) return;
  const rows = Math.min(d.n, Math.floor(r.h * (window.devicePixelRatio || 1)));
  blit(ctx, r, grid(d, rows, (from, to, c) => {
    let worst = 0;
    for (let i = from; i < to; i++) worst = Math.max(worst, d.status[i * d.width + c]);
    return STATUS_RGB[worst] || STATUS_RGB[0];
  }));
  markRow(ctx, r, d, d.selected);
}

function drawTiming(ctx, r, d) {
  frame(ctx, r, TIMING_TITLE, d);
  const rows = d.timing.length / 4;
  if (!rows) return;
  let hi = 0;
  for (let c = 0; c < rows; c++) {
    const t = d.timing.subarray(4 * c, 4 * c + 4);
    hi = Math.max(hi, t[0] + t[1] + t[2], t[3]);
  }
  if (hi <= 0) return;
  yAxis(ctx, r, 0, hi);
  const bar = Math.max((r.w / d.width) * 0.7, 1);
  for (let c = 0; c < rows; c++) {
    let base = r.y + r.h;
    const x = colX(r, c + 1, d.width) - bar / 2;
    TIMING.forEach(([, color], k) => {
      const h = (d.timing[4 * c + k] / hi) * (r.h - 4);
      ctx.fillStyle = color;
      ctx.fillRect(x, base - h, bar, h);
      base -= h;
    });
    if (d.timing[4 * c + 3] > 0) {
      ctx.fillStyle = "#111827";
      ctx.fillRect(x - 1, yPos(r, d.timing[4 * c + 3], 0, hi), bar + 2, 2);
    }
  }
}

function drawLegend(ctx, r, scale) {
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "left";
  ctx.fillStyle = INK;
  ctx.fillText("participation", r.x, r.y - 10);
  STATUS.forEach((name, k) => {
    const y = r.y + 14 * k;
    ctx.fillStyle = `rgb(${STATUS_RGB[k].join(",")})`;
    ctx.fillRect(r.x, y, 10, 10);
    ctx.strokeStyle = RULE;
    ctx.strokeRect(r.x + 0.5, y + 0.5, 10, 10);
    ctx.fillStyle = INK;
    ctx.fillText(name, r.x + 16, y + 9);
  });
  const y = r.y + 84;
  ctx.fillText("heatmap scale", r.x, y - 4);
  for (let i = 0; i < 160; i++) {
    ctx.fillStyle = `rgb(${colour(i / 159).join(",")})`;
    ctx.fillRect(r.x + i, y, 1, 10);
  }
  ctx.fillStyle = MUTED;
  ctx.fillText(fmt(scale[0]), r.x, y + 22);
  ctx.textAlign = "right";
  ctx.fillText(fmt(scale[1]), r.x + 160, y + 22);
  ctx.textAlign = "left";
  TIMING.forEach(([name, color], k) => {
    ctx.fillStyle = color;
    ctx.fillRect(r.x + 175, r.y + 14 * k, 10, 10);
    ctx.fillStyle = INK;
    ctx.fillText(name, r.x + 190, r.y + 14 * k + 9);
  });
}

function inside(r, x, y) {
  return x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
}

function clientName(d, row) {
  const [node, partition] = d.clients[row] || [row, null];
  return partition === null || partition === undefined
    ? `client node ${node}` : `client ${partition} (node ${node})`;
}

function plural(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

// The list behind the header's failure count: one row per failure, newest last.
function showFailures(parts, d, choose) {
  const n = d.failures.length;
  parts.count.style.display = n ? "" : "none";
  const timedOut = d.failures.filter((f) => f.code === "TIMEOUT").length;
  parts.count.textContent = plural(n, "client failure") + (timedOut ? ` (${timedOut} timed out)` : "");
  parts.count.setAttribute("aria-expanded", String(parts.list.dataset.open === "1"));
  parts.list.style.display = n && parts.list.dataset.open === "1" ? "block" : "none";
  const key = d.failures.map((f) => `${f.client}/${f.round}/${f.phase}/${f.code}`).join("|") + `#${d.selected}`;
  if (parts.list.dataset.key === key) return;
  parts.list.dataset.key = key;
  const table = el("table", "fedlab-table fedlab-failure-table");
  const head = el("tr");
  for (const name of ["client", "round", "phase", "error", "first line"]) head.append(el("th", "", name));
  table.append(head);
  d.failures.forEach((f, k) => {
    const tr = el("tr", "fedlab-failure-row" + (f.client === d.selected ? " fedlab-failure-selected" : ""));
    const who = el("td", "", f.name);
    who.title = `node ${f.node_id}`;
    tr.append(who, el("td", "", String(f.round)), el("td", "", f.phase),
      el("td", "", f.error_type), el("td", "fedlab-failure-line", f.first_line));
    tr.title = `show ${f.name}'s traceback`;
    tr.addEventListener("click", () => choose(f.client, k));
    table.append(tr);
  });
  parts.list.replaceChildren(table);
}

function describe(L, d, x, y) {
  for (const key of ["heat", "raster"]) {
    const r = L[key];
    if (!inside(r, x, y) || !d.n || !d.width) continue;
    const row = Math.min(Math.floor(((y - r.y) / r.h) * d.n), d.n - 1);
    const c = Math.min(Math.floor(((x - r.x) / r.w) * d.width), d.width - 1);
    const v = d.values[row * d.width + c];
    const what = key === "heat" ? `${label(d.metric)} = ${fmt(v)}` : STATUS[d.status[row * d.width + c]];
    return { row, text: `${clientName(d, row)} · round ${d.start + c} · ${what}` };
  }
  const columnAt = (r) => Math.min(Math.floor(((x - r.x) / r.w) * d.width), d.width - 1);
  if (inside(L.global, x, y) && d.width) {
    const c = columnAt(L.global), b = d.band.subarray(3 * c, 3 * c + 3);
    return { row: -1, text: `round ${d.start + c} · ${label(d.metric)} mean ${fmt(b[1])} · ` +
      `p10 ${fmt(b[0])} · p90 ${fmt(b[2])}` };
  }
  if (inside(L.timing, x, y) && d.width) {
    const c = columnAt(L.timing), t = d.timing.subarray(4 * c, 4 * c + 4);
    return { row: -1, text: `round ${d.start + c} · train ${secs(t[0])} · aggregate ${secs(t[1])} · ` +
      `evaluate ${secs(t[2])} · slowest client ${secs(t[3])}` };
  }
  if (inside(L.central, x, y) && d.width) {
    const round = d.start + columnAt(L.central);
    const parts = centralSeries(d).map((s, k) => {
      const hit = s.find((p) => p[0] === round);
      return hit ? `${d.centralNames[k]} ${fmt(hit[1])}` : null;
    }).filter(Boolean);
    return parts.length ? { row: -1, text: `round ${round} · ${parts.join(" · ")}` } : null;
  }
  return null;
}

function drawHistory(canvas, d, row) {
  const dpr = window.devicePixelRatio || 1, w = 520, h = 120;  // wide enough for long names
  canvas.width = w * dpr; canvas.height = h * dpr;
  canvas.style.width = w + "px"; canvas.style.height = h + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, w, h);
  const r = { x: 50, y: 22, w: w - 62, h: h - 42 };
  frame(ctx, r, `${label(d.metric) || "metric"}: this client (black) and the mean (blue)`, d);
  if (!d.width) return;
  const mine = Array.from({ length: d.width }, (_, c) => d.values[row * d.width + c]);
  const means = Array.from({ length: d.width }, (_, c) => d.band[3 * c + 1]);
  const [lo, hi] = finiteRange(mine, means);
  yAxis(ctx, r, lo, hi);
  const at = (vs) => vs.map((v, c) => [colX(r, c + 1, d.width), Number.isFinite(v) ? yPos(r, v, lo, hi) : null]);
  polyline(ctx, at(means), BLUE, [4, 3]);
  polyline(ctx, at(mine), "#111827");
  for (let c = 0; c < d.width; c++) {
    const s = d.status[row * d.width + c];
    if (s >= 3) {
      ctx.fillStyle = `rgb(${STATUS_RGB[s].join(",")})`;
      ctx.fillRect(colX(r, c + 1, d.width) - 3, r.y + r.h - 7, 6, 6);
    }
  }
}

function showDetail(parts, d, opened) {
  const row = d.selected;
  parts.errors.replaceChildren();
  if (row < 0 || row >= d.n) {
    parts.head.textContent = "Click a client in the heatmap or the participation raster to see its history.";
    parts.history.style.display = "none";
    return;
  }
  parts.history.style.display = "block";
  const done = [];
  for (let c = 0; c < d.width; c++) done.push(d.status[row * d.width + c]);
  const count = (s) => done.filter((x) => x === s).length;
  const [node] = d.clients[row] || [row];
  parts.head.title = `node ${node}`;
  parts.head.textContent = `${clientName(d, row)}: finished ${count(2)}, failed ${count(3)}, ` +
    `timed out ${count(4)} of ${done.filter((x) => x > 0).length} rounds sampled`;
  drawHistory(parts.history, d, row);
  const failures = d.failures.map((f, k) => [f, k]).filter(([f]) => f.client === row);
  const wanted = failures.some(([, k]) => k === opened) ? opened : failures.length ? failures[0][1] : -1;
  failures.forEach(([f, k]) => {
    // The failure picked in the list opens, else the first (usually the cause).
    const box = el("details", "fedlab-error");
    box.open = k === wanted;
    box.dataset.failure = String(k);
    box.append(el("summary", "fedlab-error-head",
      `round ${f.round} · ${f.phase} · ` + (f.first_line.startsWith(f.error_type)
        ? f.first_line : `${f.error_type}: ${f.first_line}`)));
    box.append(el("pre", "fedlab-traceback", f.reason || f.code));
    parts.errors.append(box);
  });
  if (!failures.length) parts.errors.append(el("div", "fedlab-muted", "no failures"));
}

function render({ model, el: root }) {
  const box = el("div", "fedlab-dashboard");
  const head = el("div", "fedlab-head");
  const title = el("span", "fedlab-title");
  const round = el("span", "fedlab-round");
  const status = el("span", "fedlab-status");
  const picker = el("select", "fedlab-metric");
  const stop = el("button", "fedlab-stop", "Stop");
  const count = el("button", "fedlab-failure-count");
  count.style.display = "none";
  count.title = "list every failure";
  const pickLabel = el("label", "fedlab-picker", "metric ");
  pickLabel.append(picker);
  head.append(title, round, status, count, pickLabel, stop);
  const list = el("div", "fedlab-failures");
  const note = el("div", "fedlab-note");
  const body = el("div", "fedlab-body");
  const canvas = el("canvas", "fedlab-canvas");
  canvas.setAttribute("role", "img");
  const tip = el("div", "fedlab-tooltip");
  body.append(canvas, tip);
  const detail = el("div", "fedlab-detail");
  const parts = {
    head: el("div", "fedlab-detail-head"),
    history: el("canvas", "fedlab-history"),
    errors: el("div", "fedlab-errors"),
  };
  detail.append(parts.head, parts.history, parts.errors);
  parts.count = count;
  parts.list = list;
  box.append(head, note, list, body, detail);
  root.append(box);

  let d = read(model), L = layout(d), frameRequested = false, localSelection = null;
  // The pointer over the canvas (viewport coordinates), so a redraw can renew the tooltip.
  let pointer = null, stopAsked = false, draws = 0, opened = -1;

  function choose(row, failure) {
    // Shown at once; the kernel learns of it whenever it is free to read comm messages.
    localSelection = row;
    opened = failure;
    model.set("selected", row);
    model.save_changes();
    redraw();
  }

  function showNote() {
    // Pending until the grid of the asked-for metric has been drawn (d is what is drawn).
    const switching = model.get("metric") !== d.metric;
    if (model.get("finished")) stopAsked = false;
    const lines = [];
    if (switching) {
      lines.push(`Switching to ${label(model.get("metric"))}: the kernel sends its grid as soon as it ` +
        "is free (at once with fed.start() or await fed.run_async(); after a blocking fed.run() " +
        `ends). Until then the view shows ${label(d.metric) || "the previous metric"}.`);
    }
    if (stopAsked) {
      lines.push("Stop requested: the run ends after the current round. A blocking fed.run() " +
        "cannot hear the button until it returns: interrupt the kernel (■) to stop it.");
    }
    note.textContent = lines.join(" ");
  }

  function showTip() {
    const at = pointer && point(pointer);
    const hit = at && describe(L, d, ...at);
    if (!hit) { tip.style.display = "none"; return; }
    const [x, y] = at;
    tip.textContent = hit.text;
    tip.style.display = "block";
    tip.style.left = Math.min(x + 12, W - 260) + "px";
    tip.style.top = y + 14 + "px";
  }

  function draw() {
    frameRequested = false;
    d = read(model);
    if (localSelection !== null) d.selected = localSelection;
    L = layout(d);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = W * dpr; canvas.height = L.height * dpr;
    canvas.style.width = W + "px"; canvas.style.height = L.height + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, W, L.height);
    const scale = finiteRange(d.values);
    drawGlobal(ctx, L.global, d);
    drawCentral(ctx, L.central, d);
    drawHeat(ctx, L.heat, d, scale);
    drawRaster(ctx, L.raster, d);
    drawTiming(ctx, L.timing, d);
    drawLegend(ctx, L.legend, scale);
    canvas.setAttribute("aria-label", [globalTitle(d), CENTRAL_TITLE, heatTitle(d), RASTER_TITLE,
      TIMING_TITLE].join("; "));
    title.textContent = model.get("title");
    const last = model.get("last_round");
    round.textContent = last ? `round ${model.get("round")} of ${last}` : "waiting for a run";
    status.textContent = model.get("status");
    const metrics = model.get("metrics");
    if (picker.dataset.options !== metrics.join("\n")) {
      picker.replaceChildren(...metrics.map((m) => { const o = el("option", "", label(m)); o.value = m; return o; }));
      picker.dataset.options = metrics.join("\n");
    }
    picker.value = d.requested;  // the choice stays shown while its grid is on its way
    const finished = model.get("finished");
    stop.disabled = finished || model.get("stopping");
    stop.textContent = finished ? "Finished" : model.get("stopping") ? "Stopping…" : "Stop";
    showFailures(parts, d, choose);
    showDetail(parts, d, opened);
    if (opened >= 0) {
      parts.errors.querySelector(`[data-failure="${opened}"]`)?.scrollIntoView({ block: "nearest" });
    }
    showNote();
    showTip();
    // What is on the canvas now, for anyone (a test, an accessibility tool) to wait on.
    canvas.dataset.drawnMetric = d.metric;
    canvas.dataset.draws = String(++draws);
  }

  function redraw() {
    if (!frameRequested) { frameRequested = true; requestAnimationFrame(draw); }
  }

  function point(event) {
    const rect = canvas.getBoundingClientRect();
    return [((event.clientX - rect.left) * W) / rect.width, ((event.clientY - rect.top) * L.height) / rect.height];
  }

  canvas.addEventListener("mousemove", (event) => {
    pointer = { clientX: event.clientX, clientY: event.clientY };
    showTip();
  });
  canvas.addEventListener("mouseleave", () => { pointer = null; showTip(); });
  canvas.addEventListener("click", (event) => {
    const [x, y] = point(event);
    const hit = describe(L, d, x, y);
    if (!hit || hit.row < 0) return;
    choose(hit.row, -1);
  });
  count.addEventListener("click", () => {
    list.dataset.open = list.dataset.open === "1" ? "" : "1";
    redraw();
  });
  picker.addEventListener("change", () => {
    model.set("metric", picker.value);
    model.save_changes();
    showNote();
  });
  stop.addEventListener("click", () => {
    model.send({ type: "stop" });
    stop.disabled = true;
    stop.textContent = "Stopping…";
    stopAsked = true;
    showNote();
  });

  const names = ["values", "participation", "band", "timing", "central", "central_names", "clients",
    "metrics", "metric", "grid_metric", "failures", "selected", "status", "round", "last_round",
    "title", "finished", "stopping", "n_clients", "n_rounds", "start_round"];
  const onSelected = () => { localSelection = null; };
  model.on("change:selected", onSelected);
  for (const name of names) model.on(`change:${name}`, redraw);
  const store = storeOf(model);
  store.views.add(redraw);
  draw();
  return () => {
    store.views.delete(redraw);
    // A view's listeners go with it: a store it started is started again by the next view.
    if (store.owner === model) stores.delete(keyOf(model));
    for (const name of names) model.off(`change:${name}`, redraw);
    model.off("change:selected", onSelected);
  };
}

// From the model's creation on, before any view: deltas that arrive before the first
// view is drawn are kept, so a blocking run's view needs no full state to catch up.
function initialize({ model }) {
  storeOf(model);
}

export default { initialize, render };
