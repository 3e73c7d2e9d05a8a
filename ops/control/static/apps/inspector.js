// The ticket inspector's handheld: check a card on a bus or train (an `inspect` tap: signed and
// recorded, charges nothing) and show VALID or NO VALID TICKET only from a verified answer,
// with why (open trip, pass, recent fare) and the rider category to check against the rider.
import { ID_RE, Link, isAnswerTo, keyPair, publicKeyHex, store } from "/static/apps/terminal.js";

const $ = (id) => document.getElementById(id);
let config = null;
let link = null;
let keys = null;

function setStatus(state, detail) {
  const el = $("status");
  el.className = `status ${state}`;
  el.textContent = state === "refused" ? `refused: ${detail}` : state;
  if (state === "online") resend();
}

function result(kind, text) {
  const el = $("result");
  el.className = `result ${kind}`;
  el.textContent = text;
  el.hidden = false;
}

function resend() {
  const t = store.get("pending", null);
  if (!t || !link) return;
  const seq = link.send(t);
  if (seq) {
    t.seqs.push(seq);
    store.put("pending", t);
  }
}

function renderLog() {
  const body = $("log").querySelector("tbody");
  body.textContent = "";
  for (const e of store.get("inspections", []).slice(-30).reverse()) {
    const tr = document.createElement("tr");
    for (const v of [e.time, e.card, e.result, e.why]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function check() {
  $("error").textContent = "";
  const card = $("card").value.trim();
  const network = $("network").value.trim();
  if (!ID_RE.test(card) || (network && !ID_RE.test(network))) {
    $("error").textContent = "not a card number (or network)";
    return;
  }
  const tid = store.get("terminal").terminal_id;
  const n = store.get("tap_counter", 0) + 1;
  store.put("tap_counter", n);
  const fields = network ? { network } : {};
  store.put("pending", { tap_id: `${tid}:i${n}`, card, op: "inspect", terminal_time: Date.now(),
    fields, seqs: [] });
  result("waiting", `Checking ${card}…`);
  resend();
}

async function onAuth(m) {
  const t = store.get("pending", null);
  if (!t || m.tap_id !== t.tap_id) return;
  if (!(await isAnswerTo(m, t, store.get("terminal").terminal_id, config.gateway_keys))) {
    result("invalid", "ERROR: the answer did not verify; checking again.");
    setTimeout(resend, 2000);
    return;
  }
  store.drop("pending");
  const info = (m.detail && m.detail.explain || []).find((e) => e.rule === "inspection") || {};
  const until = info.category_until_ms ? ` until ${new Date(info.category_until_ms).toLocaleDateString()}` : "";
  const who = `category ${info.category || "?"}${until}`;
  let why;
  if (m.result === "approved") {
    why = info.valid_by || "";
    result("approved", `VALID (${why}) — ${who} (signed ${m.key_id})`);
  } else {
    why = m.reason;
    result("declined", `NO VALID TICKET (${m.reason}) — ${who} (signed ${m.key_id})`);
  }
  const log = store.get("inspections", []);
  log.push({ time: new Date().toLocaleTimeString(), card: t.card, result: m.result, why,
    tap_id: t.tap_id });
  store.put("inspections", log.slice(-500));
  renderLog();
}

function onTapError(m, retryable) {
  const t = store.get("pending", null);
  if (!t || m.tap_id !== t.tap_id) return;
  if (retryable) {
    setTimeout(resend, 1000);
  } else {
    store.drop("pending");
    result("declined", `ERROR: ${m.code} — ${m.message}`);
  }
}

async function enrol() {
  $("enrol-error").textContent = "";
  const resp = await fetch("/api/handheld/enrol", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code: $("code").value.trim(), public_key: await publicKeyHex(keys) }),
  });
  const data = await resp.json();
  if (!resp.ok) {
    $("enrol-error").textContent = data.message || "enrolment refused";
    return;
  }
  store.put("terminal", data);
  start();
}

function start() {
  const term = store.get("terminal", null);
  $("enrol").hidden = !!term;
  $("main").hidden = !term;
  if (!term) {
    $("status").textContent = "not enrolled";
    return;
  }
  $("tid").textContent = term.terminal_id;
  $("op").textContent = term.operator;
  renderLog();
  link = new Link({
    url: config.gateway_url, terminalId: term.terminal_id, keys,
    gatewayKeys: config.gateway_keys, onState: setStatus, onAuth, onTapError,
  });
  link.start();
}

async function main() {
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/apps/sw.js").catch(() => {});
  keys = await keyPair();
  config = await (await fetch("/api/handheld/config")).json();
  if (!config.gateway_url) {
    $("status").textContent = "waiting for a gateway";
    setTimeout(() => location.reload(), 2000);
    return;
  }
  $("enrol-btn").addEventListener("click", enrol);
  $("check").addEventListener("click", check);
  start();
}

main();
