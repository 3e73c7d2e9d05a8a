// The top-up and information kiosk: show a presented card (balance, category, products,
// points), top it up after a payment (through the payment-provider interface; a stub here),
// and sell a pass or the tourist card from stored value. Every result is shown only once its
// signed authorisation verified; the tap in progress survives a reload (same tap id).
import {
  $, badge, enrol, enrolledOrForm, loadConfig, newPending, registerServiceWorker,
  resendPending, result,
} from "/static/apps/common.js";
import {
  ID_RE, Link, formatMinor, hex, isAnswerTo, keyPair, parseMinor, store,
} from "/static/apps/terminal.js";

const enc = new TextEncoder();
let config = null;
let link = null;
let keys = null;
let waiting = null; // {resolve} of the tap being answered

function setStatus(state, detail) {
  badge(state, detail);
  if (state === "online") resendPending(link);
}

async function signed(text) {
  return hex(await crypto.subtle.sign({ name: "Ed25519" }, keys.privateKey, enc.encode(text)));
}

async function payment(step, reference, amount) {
  const tid = store.get("terminal").terminal_id;
  const sig = await signed(`citycard-kiosk-payment-v1\n${tid}\n${step}\n${reference}\n${amount}\n`);
  const resp = await fetch("/api/kiosk/payment", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ terminal_id: tid, step, reference, amount, sig }),
  });
  return resp.json();
}

// One tap at a time: kept in storage before it is sent, answered only by a verified auth.
function tap(op, card, fields) {
  newPending(op, card, fields);
  return new Promise((resolve) => {
    waiting = { resolve };
    resendPending(link);
  });
}

async function onAuth(m) {
  const t = store.get("pending", null);
  if (!t || m.tap_id !== t.tap_id) return;
  if (!(await isAnswerTo(m, t, store.get("terminal").terminal_id, config.gateway_keys))) {
    result("invalid", "ERROR: the authorisation did not verify; retrying.");
    setTimeout(() => resendPending(link), 2000);
    return;
  }
  store.drop("pending");
  if (waiting) waiting.resolve(m);
  waiting = null;
}

function onTapError(m, retryable) {
  const t = store.get("pending", null);
  if (!t || m.tap_id !== t.tap_id) return;
  if (retryable) {
    setTimeout(() => resendPending(link), 1000);
    return;
  }
  store.drop("pending");
  if (waiting) waiting.resolve({ result: "error", reason: m.code, message: m.message });
  waiting = null;
}

function card() {
  const c = $("card").value.trim();
  if (!ID_RE.test(c)) {
    $("error").textContent = "not a card number";
    return null;
  }
  $("error").textContent = "";
  return c;
}

function showInfo(m) {
  const info = (m.detail && m.detail.explain || []).find((e) => e.rule === "card_info") || {};
  $("balance").textContent = formatMinor(m.balance, m.currency);
  $("category").textContent = info.category || "?";
  $("points").textContent = String(info.points || 0);
  $("recycling").textContent = info.recycling
    ? `${formatMinor(info.recycling.credit, m.currency)} on ${info.recycling.day}`
    : "none yet";
  const body = $("products").querySelector("tbody");
  body.textContent = "";
  for (const p of info.products || []) {
    const tr = document.createElement("tr");
    const expires = p.expires_ms ? new Date(p.expires_ms).toLocaleString() : "from first use";
    for (const v of [p.product, p.usable ? (p.activated ? "active" : "ready") : "not usable", expires]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $("card-view").hidden = false;
}

async function show() {
  const c = card();
  if (!c) return;
  const m = await tap("card_info", c, {});
  if (m.result === "approved") {
    showInfo(m);
    result("approved", `Card ${c}: ${formatMinor(m.balance, m.currency)} (signed ${m.key_id})`);
  } else {
    result("declined", `DECLINED: ${m.reason}`);
  }
}

async function topup() {
  const c = card();
  const amount = parseMinor($("topup-amount").value);
  if (!c) return;
  if (amount === null || amount <= 0) {
    $("error").textContent = "enter an amount, e.g. 20.00";
    return;
  }
  const reference = `p${store.get("tap_counter", 0) + 1}-${Date.now()}`;
  const pay = await payment("authorise", reference, amount);
  if (!pay.approved) {
    result("declined", `Payment refused (${pay.provider}): ${pay.reason}`);
    return;
  }
  const m = await tap("topup", c, { amount });
  if (m.result === "approved") {
    await payment("capture", pay.payment_id, amount);
    const text = `TOPPED UP ${formatMinor(-m.amount, m.currency)}: balance ` + // a credit is < 0
      `${formatMinor(m.balance, m.currency)} (signed ${m.key_id}; payment ${pay.payment_id}, ` +
      `${pay.provider})`;
    await show();
    result("approved", text);
  } else {
    await payment("void", pay.payment_id, amount);
    result("declined", `DECLINED: ${m.reason}; the payment was voided`);
  }
}

async function buy() {
  const c = card();
  if (!c) return;
  const product = $("product").value;
  const m = await tap("buy_product", c, { product });
  if (m.result === "approved") {
    const text = `BOUGHT ${product} for ${formatMinor(m.amount, m.currency)}: balance ` +
      `${formatMinor(m.balance, m.currency)} (signed ${m.key_id})`;
    await show();
    result("approved", text);
  } else {
    result("declined", `DECLINED: ${m.reason}`);
  }
}

function start() {
  const term = enrolledOrForm();
  if (!term) return;
  $("provider").textContent = config.payment_provider;
  const sel = $("product");
  sel.textContent = "";
  for (const p of config.products) {
    const o = document.createElement("option");
    o.value = p.product;
    o.textContent = `${p.name} (${formatMinor(p.prices.adult ?? 0, config.currency)})`;
    sel.appendChild(o);
  }
  link = new Link({
    url: config.gateway_url, terminalId: term.terminal_id, keys,
    gatewayKeys: config.gateway_keys, onState: setStatus, onAuth, onTapError,
  });
  link.start();
}

async function main() {
  registerServiceWorker();
  keys = await keyPair();
  config = await loadConfig();
  if (!config) return;
  $("enrol-btn").addEventListener("click", () => enrol(keys, start));
  $("show").addEventListener("click", show);
  $("topup").addEventListener("click", topup);
  $("buy").addEventListener("click", buy);
  start();
}

main();
