// tidal's live dashboard: polls /dashboard/state every second and draws the pipeline graph,
// throughput and view charts, and alerts. Plain JS and SVG; no dependencies.
// Every value from the server is put into the page with textContent or SVG attributes,
// never as markup, so keys, labels and names cannot inject anything.
"use strict";

const POLL_MS = 1000;
const HISTORY_POINTS = 120;
const SVG_NS = "http://www.w3.org/2000/svg";
const NODE_W = 190, NODE_H = 66, GAP_X = 90, GAP_Y = 26, PAD = 16;

let token = null;
let previous = null;          // the last state, for rates
let graphShape = "";          // node/edge names of the drawn graph (redraw when it changes)
const rateHistory = [];       // [t_ms, events/s]
const viewCards = new Map();  // view name -> {card, line, bars, caption}

// -- helpers --------------------------------------------------------------------------------
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
  return v.toFixed(2);
}
function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  const a = Math.abs(ms);
  if (a < 1000) return Math.round(ms) + " ms";
  if (a < 60000) return (ms / 1000).toFixed(1) + " s";
  if (a < 3600000) return (ms / 60000).toFixed(1) + " min";
  if (a < 86400000) return (ms / 3600000).toFixed(1) + " h";
  return (ms / 86400000).toFixed(1) + " d";
}
function fmtTime(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().slice(11, 19);
}
function keyText(key) {
  const parts = Object.entries(key || {}).map(([k, v]) => k + "=" + v);
  return parts.length ? parts.join(" ") : "(all)";
}
function truncate(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + "…" : s; }

// -- fetching -------------------------------------------------------------------------------
function readToken() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    token = decodeURIComponent(m[1]);
    try { sessionStorage.setItem("tidal-token", token); } catch (e) { /* private mode */ }
    history.replaceState(null, "", location.pathname + location.search);
  } else {
    try { token = sessionStorage.getItem("tidal-token"); } catch (e) { token = null; }
  }
}

async function getJSON(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) {
    document.getElementById("token-box").hidden = false;
    throw new Error("this server needs a token");
  }
  if (!response.ok) throw new Error(path + " answered " + response.status);
  return response.json();
}

async function poll() {
  const error = document.getElementById("error");
  try {
    const state = await getJSON("/dashboard/state");
    render(state);
    error.hidden = true;
  } catch (e) {
    error.textContent = "cannot reach the server: " + e.message;
    error.hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// -- rendering ------------------------------------------------------------------------------
function rates(state) {
  // rows/s per edge and node, busy share per node, from the difference with the last poll
  const out = { edges: new Map(), nodes: new Map(), events: null };
  if (!previous || previous.flow !== state.flow) return out;
  const dt = (state.now_ms - previous.now_ms) / 1000;
  if (dt <= 0) return out;
  const before = new Map(previous.nodes.map((n) => [n.name, n]));
  for (const n of state.nodes) {
    const p = before.get(n.name);
    if (!p) continue;
    out.nodes.set(n.name, {
      rowsIn: Math.max(0, n.rows_in - p.rows_in) / dt,
      rowsOut: Math.max(0, n.rows_out - p.rows_out) / dt,
      busy: Math.min(1, Math.max(0, n.self_busy_s - p.self_busy_s) / dt),
    });
  }
  const edgeBefore = new Map(previous.edges.map((e) => [e.from + "\u0000" + e.to, e.rows]));
  for (const e of state.edges) {
    const p = edgeBefore.get(e.from + "\u0000" + e.to);
    if (p !== undefined) out.edges.set(e.from + "\u0000" + e.to, Math.max(0, e.rows - p) / dt);
  }
  if (state.totals && previous.totals && state.totals.events_in !== undefined) {
    out.events = Math.max(0, state.totals.events_in - (previous.totals.events_in || 0)) / dt;
  }
  return out;
}

function render(state) {
  const r = rates(state);
  renderHeader(state, r);
  renderGraph(state, r);
  if (r.events !== null) {
    rateHistory.push([state.now_ms, r.events]);
    if (rateHistory.length > HISTORY_POINTS) rateHistory.shift();
  }
  lineChart(document.getElementById("rate-chart"), rateHistory, { time: true, unit: "/s" });
  renderAlerts(state.alerts);
  renderViews(state.views || []);
  previous = state;
}

function renderHeader(state, r) {
  document.getElementById("flow-name").textContent = state.flow || "(no flow)";
  const badge = document.getElementById("run-state");
  badge.textContent = state.running ? "running" : "stopped";
  badge.className = "badge " + (state.running ? "running" : "stopped");
  const t = state.totals || {};
  const items = [
    ["events/s", r.events === null ? "–" : fmtNum(r.events)],
    ["events", fmtNum(t.events_in)],
    ["watermark lag", fmtMs(t.lag_ms)],
    ["late", fmtNum(t.late)],
    ["dead letters", fmtNum(t.dead_letters)],
    ["checkpoints", fmtNum(t.checkpoints)],
  ];
  const dl = document.getElementById("totals");
  clear(dl);
  for (const [k, v] of items) {
    const div = el("div");
    div.appendChild(el("dt", {}, k));
    div.appendChild(el("dd", { "data-total": k }, v));
    dl.appendChild(div);
  }
}

function layout(nodes) {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const layer = new Map();
  const depth = (n, seen) => {
    if (layer.has(n.name)) return layer.get(n.name);
    if (seen.has(n.name)) return 0;
    seen.add(n.name);
    let d = 0;
    for (const up of n.inputs) { const u = byName.get(up); if (u) d = Math.max(d, depth(u, seen) + 1); }
    layer.set(n.name, d);
    return d;
  };
  for (const n of nodes) depth(n, new Set());
  const columns = [];
  for (const n of nodes) {
    const d = layer.get(n.name);
    (columns[d] = columns[d] || []).push(n);
  }
  // order each column by the mean position of its inputs (fewer crossing edges)
  const index = new Map();
  columns.forEach((col, d) => {
    if (!col) return;
    if (d > 0) {
      const at = (n) => {
        const ups = n.inputs.filter((u) => index.has(u)).map((u) => index.get(u));
        return ups.length ? ups.reduce((a, b) => a + b, 0) / ups.length : 0;
      };
      col.sort((a, b) => at(a) - at(b));
    }
    col.forEach((n, i) => index.set(n.name, i - (col.length - 1) / 2));
  });
  const pos = new Map();
  const tallest = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  columns.forEach((col, d) => {
    if (!col) return;
    const used = col.length * NODE_H + (col.length - 1) * GAP_Y;
    col.forEach((n, i) => {
      pos.set(n.name, { x: PAD + d * (NODE_W + GAP_X), y: (height - used) / 2 + i * (NODE_H + GAP_Y) });
    });
  });
  return { pos, width: PAD * 2 + columns.length * NODE_W + (columns.length - 1) * GAP_X, height };
}

function renderGraph(state, r) {
  const root = document.getElementById("graph");
  const shape = JSON.stringify([state.nodes.map((n) => [n.name, n.inputs]), state.edges.map((e) => [e.from, e.to])]);
  if (shape !== graphShape) {
    graphShape = shape;
    clear(root);
    const { pos, width, height } = layout(state.nodes);
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto" });
    marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#4b6278" }));
    defs.appendChild(marker);
    root.appendChild(defs);
    const edges = svg("g", { class: "edges" });
    state.edges.forEach((e, i) => {
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) return;
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
      const g = svg("g", { class: "edge", "data-edge": i });
      g.dataset.from = e.from;
      g.dataset.to = e.to;
      const mid = (x1 + x2) / 2;
      g.appendChild(svg("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
      // the label sits just before the target, where edges from one step have fanned out
      g.appendChild(svg("text", { x: x2 - 8, y: y2 - 6, "text-anchor": "end", class: "rate" }, "–"));
      edges.appendChild(g);
    });
    root.appendChild(edges);
    const nodes = svg("g", { class: "nodes" });
    for (const n of state.nodes) {
      const p = pos.get(n.name);
      const g = svg("g", { class: "node " + n.kind, transform: `translate(${p.x},${p.y})` });
      g.dataset.node = n.name;
      g.appendChild(svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }));
      const title = svg("text", { x: 10, y: 18, class: "title" }, truncate(n.name, 24));
      title.appendChild(svg("title", {}, n.name));
      g.appendChild(title);
      g.appendChild(svg("text", { x: 10, y: 36, class: "sub rates" }, n.kind));
      g.appendChild(svg("text", { x: 10, y: 54, class: "sub health" }, ""));
      nodes.appendChild(g);
    }
    root.appendChild(nodes);
  }
  const firing = new Set();
  for (const rule of (state.alerts && state.alerts.rules) || []) {
    if (rule.alerts.some((a) => a.state === "firing")) firing.add("alerts." + rule.name);
  }
  for (const g of root.querySelectorAll("g.node")) {
    const n = state.nodes.find((x) => x.name === g.dataset.node);
    if (!n) continue;
    const nr = r.nodes.get(n.name);
    const rowsIn = nr ? nr.rowsIn : null, rowsOut = nr ? nr.rowsOut : null;
    const busy = nr ? nr.busy : null;
    const rateText = n.kind === "source" ? `${n.kind} · out ${fmtNum(rowsOut)}/s`
      : `${n.kind} · in ${fmtNum(rowsIn)}/s` + (n.kind === "sink" ? "" : ` · out ${fmtNum(rowsOut)}/s`);
    g.querySelector(".rates").textContent = rateText;
    const health = [];
    if (n.kind !== "source") health.push("busy " + (busy === null ? "–" : Math.round(busy * 100) + "%"));
    if (n.batch_ms_p99 !== null && n.kind !== "source") health.push("p99 " + fmtMs(n.batch_ms_p99));
    health.push("lag " + fmtMs(n.lag_ms));
    g.querySelector(".health").textContent = health.join(" · ");
    g.dataset.rowsIn = n.rows_in;
    let cls = "node " + n.kind;
    if (busy !== null && busy > 0.8) cls += " hot"; else if (busy !== null && busy > 0.5) cls += " warm";
    if (firing.has(n.name)) cls += " firing";
    g.setAttribute("class", cls);
  }
  const maxRate = Math.max(1, ...r.edges.values());
  for (const g of root.querySelectorAll("g.edge")) {
    const rate = r.edges.get(g.dataset.from + "\u0000" + g.dataset.to);
    g.querySelector("text").textContent = rate === undefined ? "–" : fmtNum(rate) + "/s";
    const w = rate ? 1.5 + 4 * Math.log1p(rate) / Math.log1p(maxRate) : 1.5;
    g.querySelector("path").setAttribute("stroke-width", w.toFixed(2));
  }
}

function lineChart(root, points, opts) {
  const W = 560, H = 180, L = 56, R = 10, T = 10, B = 24;
  root.setAttribute("viewBox", `0 0 ${W} ${H}`);
  root.setAttribute("preserveAspectRatio", "none");
  clear(root);
  root.dataset.points = points.length;
  root.dataset.last = points.length ? points[points.length - 1][1] : "";
  root.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  if (!points.length) {
    root.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted" }, "waiting for data…"));
    return;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1] || 0);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), yMax = Math.max(1e-9, ...ys) * 1.1;
  const sx = (x) => L + (x1 === x0 ? (W - L - R) / 2 : (x - x0) / (x1 - x0) * (W - L - R));
  const sy = (y) => H - B - (y / yMax) * (H - B - T);
  const coords = points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1] || 0).toFixed(1)}`);
  root.appendChild(svg("polygon", { class: "area", points: `${sx(x0)},${H - B} ${coords.join(" ")} ${sx(x1)},${H - B}` }));
  root.appendChild(svg("polyline", { class: "line", points: coords.join(" ") }));
  for (const f of [0, 0.5, 1]) {
    const y = yMax / 1.1 * f;
    root.appendChild(svg("text", { x: L - 6, y: sy(y) + 4, "text-anchor": "end", class: "muted" }, fmtNum(y)));
  }
  root.appendChild(svg("text", { x: L, y: H - 6, class: "muted" }, opts.time ? fmtTime(x0) : ""));
  root.appendChild(svg("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "muted" }, opts.time ? fmtTime(x1) : ""));
  const last = points[points.length - 1][1];
  root.appendChild(svg("text", { x: W - R, y: T + 12, "text-anchor": "end" }, fmtNum(last) + (opts.unit || "")));
}

function barChart(root, items) {
  const W = 560, rowH = 20, L = 150, R = 70;
  const H = Math.max(40, items.length * rowH + 8);
  root.setAttribute("viewBox", `0 0 ${W} ${H}`);
  root.style.height = H + "px";
  clear(root);
  root.dataset.items = items.length;
  if (!items.length) {
    root.appendChild(svg("text", { x: W / 2, y: 24, "text-anchor": "middle", class: "muted" }, "no rows yet"));
    return;
  }
  const max = Math.max(1e-9, ...items.map((i) => i[1] || 0));
  items.forEach(([label, value], i) => {
    const y = 4 + i * rowH;
    const t = svg("text", { x: L - 8, y: y + 14, "text-anchor": "end" }, truncate(label, 22));
    t.appendChild(svg("title", {}, label));
    root.appendChild(t);
    root.appendChild(svg("rect", { class: "bar", x: L, y: y + 2, height: rowH - 6, width: Math.max(1, (value || 0) / max * (W - L - R)) }));
    root.appendChild(svg("text", { x: L + Math.max(1, (value || 0) / max * (W - L - R)) + 6, y: y + 14 }, fmtNum(value)));
  });
}

function renderViews(views) {
  const section = document.getElementById("views");
  const names = new Set(views.map((v) => v.name));
  for (const [name, card] of viewCards) {
    if (!names.has(name)) { card.card.remove(); viewCards.delete(name); }
  }
  for (const v of views) {
    let c = viewCards.get(v.name);
    if (!c) {
      const card = el("section", { class: "card view" });
      card.dataset.view = v.name;
      const h = el("h2", {}, "view " + v.name + " ");
      const caption = el("small");
      h.appendChild(caption);
      card.appendChild(h);
      const lineTitle = el("h3", {}, "");
      const line = svg("svg", { class: "chart series", role: "img" });
      const barTitle = el("h3", {}, "");
      const bars = svg("svg", { class: "chart top", role: "img" });
      card.append(lineTitle, line, barTitle, bars);
      section.appendChild(card);
      c = { card, caption, line, bars, lineTitle, barTitle };
      viewCards.set(v.name, c);
    }
    c.caption.textContent = `${fmtNum(v.rows)} rows · change #${v.seq} · key ${v.keys.join(", ")}`;
    c.card.dataset.seq = v.seq;
    const windowed = v.windows !== null && v.windows !== undefined;
    c.line.style.display = windowed ? "" : "none";
    c.lineTitle.style.display = windowed ? "" : "none";
    if (windowed) {
      c.lineTitle.textContent = `${v.metric || "rows"} per window (sum over keys)`;
      lineChart(c.line, v.series, { time: true });
    }
    c.barTitle.textContent = v.metric ? `top ${v.keys.join("/")} by ${v.metric}` + (windowed ? " (latest window)" : "") : "";
    barChart(c.bars, v.top);
  }
}

function renderAlerts(alerts) {
  const body = document.querySelector("#alerts tbody");
  clear(body);
  const counts = document.getElementById("alert-counts");
  if (!alerts) { counts.textContent = "no rules"; return; }
  counts.textContent = `${alerts.rules.length} rule(s) · ${alerts.firing} firing · ${alerts.pending} pending`;
  let rows = 0;
  for (const rule of alerts.rules) {
    for (const a of rule.alerts) {
      const tr = el("tr", { class: "alert " + a.state });
      const state = el("td");
      state.appendChild(el("span", { class: "badge " + a.state }, a.state));
      tr.appendChild(state);
      const name = el("td", {}, rule.name + " ");
      name.appendChild(el("span", { class: "badge " + rule.severity }, rule.severity));
      tr.appendChild(name);
      tr.appendChild(el("td", {}, keyText(a.key)));
      tr.appendChild(el("td", {}, fmtNum(a.value)));
      tr.appendChild(el("td", {}, fmtTime(a.since)));
      body.appendChild(tr);
      rows++;
    }
  }
  if (!rows) {
    const tr = el("tr");
    tr.appendChild(el("td", { colspan: 5, class: "muted" }, "all clear"));
    body.appendChild(tr);
  }
  const list = document.getElementById("alert-history");
  clear(list);
  for (const h of alerts.history) {
    const li = el("li");
    li.appendChild(el("time", {}, fmtTime(h.at)));
    li.appendChild(el("span", { class: "badge " + h.state }, h.state));
    li.appendChild(document.createTextNode(" " + h.rule + " " + keyText(h.key)));
    list.appendChild(li);
  }
  const channels = alerts.channels.map((c) => `${c.name}: ${c.sent} sent` + (c.failed ? `, ${c.failed} failed` : "") + (c.queued ? `, ${c.queued} queued` : ""));
  document.getElementById("channels").textContent = channels.length ? "channels — " + channels.join(" · ") : "";
}

document.addEventListener("DOMContentLoaded", () => {
  readToken();
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = document.getElementById("token-input").value;
    try { sessionStorage.setItem("tidal-token", token); } catch (err) { /* private mode */ }
    document.getElementById("token-box").hidden = true;
  });
  poll();
});
