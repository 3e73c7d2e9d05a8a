// The top-up and information kiosk: show a presented card (balance, category, products,
// points), top it up after a payment (through the payment-provider interface; a stub here),
// and sell a pass or the tourist card from stored value. Every result is shown only once its
// signed authorisation verified; the tap in progress survives a reload (same tap id).
import {
  $, bootApp, newPending, resendPending, result, tapError, verifiedAnswer,
} from "/static/apps/common.js";
import { ID_RE, formatMinor, hex, parseMinor, store } from "/static/apps/terminal.js";

const enc = new TextEncoder();
const app = {}; // keys, config, link (bootApp)
let waiting = null; // {resolve} of the tap being answered

async function signed(text) {
  return hex(await crypto.subtle.sign({ name: "Ed25519" }, app.keys.privateKey, enc.encode(text)));
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
    resendPending(app.link);
  });
}

function answered(m) {
  if (waiting) waiting.resolve(m);
  waiting = null;
}

async function onAuth(m) {
  if (await verifiedAnswer(app, m)) answered(m);
}

function onTapError(m, retryable) {
  const err = tapError(app, m, retryable);
  if (err) answered(err);
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

function listProducts() {
  const { config } = app;  // set by bootApp before it starts the app
  $("provider").textContent = config.payment_provider;
  const sel = $("product");
  sel.textContent = "";
  for (const p of config.products) {
    const o = document.createElement("option");
    o.value = p.product;
    o.textContent = `${p.name} (${formatMinor(p.prices.adult ?? 0, config.currency)})`;
    sel.appendChild(o);
  }
}

bootApp(app, { buttons: { show, topup, buy }, onStart: listProducts, onAuth, onTapError });
