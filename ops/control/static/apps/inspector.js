// The ticket inspector's handheld: check a card on a bus or train (an `inspect` tap: signed and
// recorded, charges nothing) and show VALID or NO VALID TICKET only from a verified answer,
// with why (open trip, pass, recent fare) and the rider category to check against the rider.
import {
  $, bootApp, newPending, resendPending, result, tapError, verifiedAnswer,
} from "/static/apps/common.js";
import { ID_RE, store } from "/static/apps/terminal.js";

const app = {}; // keys, config, link (bootApp)

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
  newPending("inspect", card, network ? { network } : {}, "i");
  result("waiting", `Checking ${card}…`);
  resendPending(app.link);
}

async function onAuth(m) {
  const t = await verifiedAnswer(app, m);
  if (!t) return;
  const info = (m.detail && m.detail.explain || []).find((e) => e.rule === "inspection") || {};
  const until = info.category_until_ms
    ? ` until ${new Date(info.category_until_ms).toLocaleDateString()}` : "";
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
  const err = tapError(app, m, retryable);
  if (err) result("declined", `ERROR: ${err.reason} — ${err.message}`);
}

bootApp(app, { buttons: { check }, onStart: renderLog, onAuth, onTapError });
