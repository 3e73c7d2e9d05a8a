"use strict";
// The control-room dashboard: one websocket carries the live tap stream (with the operator's
// filters) and a summary every second; actions go to /api/admin/<action>. No build step.

const FEED_ROWS = 60;
const $ = (id) => document.getElementById(id);
const state = {lastId: null, ws: null, retry: 500, me: null, rate: null, latency: null};

function money(minor) {
  const sign = minor < 0 ? "-" : "";
  const v = Math.abs(minor);
  return `${sign}${Math.floor(v / 100)}.${String(v % 100).padStart(2, "0")}`;
}

function hhmmss(ms) {
  if (!ms) return "–";
  return new Date(ms).toLocaleTimeString([], {hour12: false});
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fillBars(tableId, pairs, label) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  const max = Math.max(1, ...pairs.map((p) => p[1]));
  for (const [key, n] of pairs) {
    const row = body.insertRow();
    cell(row, label ? label(key) : key);
    const bar = cell(row, "");
    const span = document.createElement("span");
    span.className = "bar";
    span.style.width = `${Math.round((100 * n) / max)}%`;
    bar.appendChild(span);
    cell(row, String(n), "num");
  }
}

function filterSpec() {
  const spec = {stream: "taps"};
  for (const name of ["kind", "route", "stop", "operator", "card"]) {
    const v = $(`f-${name}`).value.trim();
    if (v) spec[name] = v;
  }
  if ($("f-declines").checked) spec.declines = true;
  return spec;
}

function addTap(m) {
  state.lastId = m.id;
  const body = $("feed").tBodies[0];
  const row = body.insertRow(0);
  row.className = m.result === "declined" ? "declined" : "approved";
  row.dataset.card = m.card || "";
  cell(row, hhmmss(m.time));
  cell(row, m.terminal || "");
  cell(row, m.kind || "");
  cell(row, m.card || "");
  cell(row, m.result || "");
  cell(row, m.reason || "");
  cell(row, m.amount === undefined ? "" : money(m.amount), "num");
  cell(row, [m.stop, m.route].filter(Boolean).join(" / "));
  while (body.rows.length > FEED_ROWS) body.deleteRow(-1);
}

function makeChart(el, series, title) {
  if (typeof uPlot === "undefined") return null;
  const opts = {
    width: el.clientWidth || 520, height: 180, title: "",
    scales: {x: {time: true}},
    axes: [{}, {size: 50}],
    series: [{}, ...series],
  };
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

function ensureCharts() {
  if (!state.rate) {
    state.rate = makeChart($("chart-rate"), [{label: "taps/s", stroke: "#1f6feb", width: 2,
      fill: "rgba(31,111,235,0.12)"}]);
    state.latency = makeChart($("chart-latency"), [
      {label: "p50", stroke: "#2da44e", width: 2},
      {label: "p99", stroke: "#cf222e", width: 2},
    ]);
  }
}

function updateSummary(s) {
  const t = s.today;
  $("k-taps").textContent = t.taps;
  $("k-approved").textContent = t.approved;
  $("k-declined").textContent = t.declined;
  const h = s.health;
  $("k-online").textContent = h.counts.online;
  $("k-silent").textContent = h.counts.silent;
  $("k-offline").textContent = h.counts.offline;
  const series = h.series;
  $("k-rate").textContent = series.length ? series[series.length - 1][1] : 0;
  const redis = $("redis");
  redis.textContent = h.redis.ok ? `Redis ${h.redis.ping_ms} ms` : "Redis DOWN";
  redis.className = `pill ${h.redis.ok ? "on" : "off"}`;
  $("clock").textContent = hhmmss(s.at_ms);
  ensureCharts();
  if (state.rate && series.length) {
    const xs = series.map((p) => p[0]);
    state.rate.setData([xs, series.map((p) => p[1])]);
    state.latency.setData([xs, series.map((p) => p[2]), series.map((p) => p[3])]);
  }
  fillBars("declines", t.declines);
  fillBars("lines", t.lines);
  const names = s.stop_names || {};
  fillBars("stops", t.stops, (k) => (names[k] ? `${names[k]} (${k})` : k));
  const rev = $("revenue").tBodies[0];
  rev.replaceChildren();
  for (const r of t.revenue) {
    const row = rev.insertRow();
    cell(row, r.operator);
    cell(row, money(r.charged), "num");
    cell(row, money(r.credited), "num");
    cell(row, money(r.net), "num");
  }
  const terms = $("terminals").tBodies[0];
  terms.replaceChildren();
  for (const x of h.terminals.slice(0, 40)) {
    const row = terms.insertRow();
    row.className = x.status;
    cell(row, x.terminal);
    cell(row, x.kind);
    cell(row, x.location);
    cell(row, x.status);
    cell(row, hhmmss(x.last_seen_ms));
    cell(row, hhmmss(x.last_tap_ms));
  }
  const list = $("alerts");
  list.replaceChildren();
  for (const a of s.alerts) {
    const li = document.createElement("li");
    li.className = a.severity;
    li.textContent = `${hhmmss(a.at_ms)} ${a.kind}: ${a.text}`;
    list.appendChild(li);
  }
  if (!s.alerts.length) {
    const li = document.createElement("li");
    li.textContent = "no alerts";
    list.appendChild(li);
  }
}

function connect(resume) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  state.ws = ws;
  const conn = $("conn");
  ws.onopen = () => {
    ws.send(JSON.stringify({subscribe: filterSpec(), after: resume ? state.lastId : null,
      summary: true}));
  };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "tap") addTap(m);
    else if (m.type === "summary") updateSummary(m);
    else if (m.type === "hello") {
      conn.textContent = "live";
      conn.className = "pill on";
      state.retry = 500;
    } else if (m.type === "missed") {
      $("feed-note").textContent = `(${m.count > 0 ? m.count : "some"} taps not shown: the feed fell behind)`;
    } else if (m.type === "error") {
      conn.textContent = m.message;
      conn.className = "pill off";
      if (m.code === "not_authenticated") window.location.assign("/login");
    }
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    conn.textContent = "reconnecting…";
    conn.className = "pill off";
    setTimeout(() => connect(true), state.retry);
    state.retry = Math.min(10000, state.retry * 2);
  };
}

function resubscribe() {
  const old = state.ws;
  state.ws = null;
  if (old) old.close();
  $("feed").tBodies[0].replaceChildren();
  $("feed-note").textContent = "";
  state.lastId = null;
  connect(false);
}

function requestId() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return "req-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function act(action, params) {
  const out = $("a-result");
  out.textContent = "…";
  const reason = $("a-reason").value.trim();
  const resp = await fetch(`/api/admin/${action}`, {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Requested-With": "citycard"},
    body: JSON.stringify({...params, reason, request_id: requestId()}),
  });
  const body = await resp.json().catch(() => ({}));
  out.className = resp.ok ? "ok" : "error";
  out.textContent = resp.ok
    ? `${action}: done ${JSON.stringify(body.result)}`
    : `${action}: refused (${body.error}): ${body.message}`;
}

async function start() {
  const resp = await fetch("/api/me");
  if (resp.status === 401) {
    window.location.assign("/login");
    return;
  }
  state.me = await resp.json();
  $("who").textContent = `${state.me.operator} (${state.me.role})`;
  if (state.me.actions.includes("block_card")) $("admin-card").hidden = false;
  if (state.me.actions.includes("revoke_terminal")) $("admin-actions").hidden = false;
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); resubscribe(); });
  $("logout").addEventListener("click", async () => {
    await fetch("/api/logout", {method: "POST", headers: {"X-Requested-With": "citycard"}});
    window.location.assign("/login");
  });
  $("a-block").addEventListener("click", () => act("block_card", {card: $("a-card").value.trim()}));
  $("a-unblock").addEventListener("click", () => act("unblock_card", {card: $("a-card").value.trim()}));
  $("a-adjust").addEventListener("click", () => act("adjust_card", {
    card: $("a-card").value.trim(), credit: parseInt($("a-credit").value, 10),
    funder: $("a-funder").value.trim() || undefined,
  }));
  $("a-revoke").addEventListener("click", () => act("revoke_terminal", {terminal: $("a-terminal").value.trim()}));
  $("a-load-tariff").addEventListener("click", () => act("load_tariff", {path: $("a-tariff").value.trim()}));
  $("feed").addEventListener("click", (ev) => {
    const row = ev.target.closest("tr");
    if (row && row.dataset.card) $("a-card").value = row.dataset.card;
  });
  connect(false);
}

document.addEventListener("DOMContentLoaded", start);
