// What the three apps share around the protocol client (terminal.js): the page's status badge
// and result box, enrolment with a one-time code, the configuration (waiting for a gateway),
// and the one tap in progress, kept in storage and resent with its tap id until answered.
import { Link, isAnswerTo, keyPair, publicKeyHex, store } from "/static/apps/terminal.js";

export const $ = (id) => document.getElementById(id);

export function result(kind, text) {
  const el = $("result");
  el.className = `result ${kind}`;
  el.textContent = text;
  el.hidden = false;
}

export function badge(state, detail) {
  const el = $("status");
  el.className = `status ${state}`;
  el.textContent = state === "refused" ? `refused: ${detail}` : state;
}

// The configuration, or null while no gateway is known: the page's CSP names the gateway's
// origin, so the page is loaded again rather than retried from here.
async function loadConfig() {
  const config = await (await fetch("/api/handheld/config")).json();
  if (!config.gateway_url) {
    $("status").textContent = "waiting for a gateway";
    setTimeout(() => location.reload(), 2000);
    return null;
  }
  return config;
}

// Redeem the code typed in #code with this browser's public key; calls `done` once enrolled.
async function enrol(keys, done) {
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
  done();
}

// Shows the enrol form or the main view; the enrolled terminal, or null.
function enrolledOrForm() {
  const term = store.get("terminal", null);
  $("enrol").hidden = !!term;
  $("main").hidden = !term;
  if (!term) {
    $("status").textContent = "not enrolled";
    return null;
  }
  $("tid").textContent = term.terminal_id;
  $("op").textContent = term.operator;
  return term;
}

// Send (again) the tap in progress, recording the seq it went with.
export function resendPending(link) {
  const t = store.get("pending", null);
  if (!t || !link) return;
  const seq = link.send(t);
  if (seq) {
    t.seqs.push(seq);
    store.put("pending", t);
  }
}

// A new tap in progress: stored before it is sent (a reload resends it with its tap id).
export function newPending(op, card, fields, prefix = "") {
  const tid = store.get("terminal").terminal_id;
  const n = store.get("tap_counter", 0) + 1;
  store.put("tap_counter", n);
  const tap = { tap_id: `${tid}:${prefix}${n}`, card, op, terminal_time: Date.now(), fields,
    seqs: [] };
  store.put("pending", tap);
  return tap;
}

function registerServiceWorker() {
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/apps/sw.js").catch(() => {});
}

// Start an app: its key, the configuration, the enrol form or the link to the gateway (the tap
// in progress is resent whenever it comes online), and its buttons. Fills `app` (the app's own
// state object) with {keys, config, link}; false while no gateway is known.
export async function bootApp(app, { buttons, onStart, onState, onAuth, onTapError }) {
  registerServiceWorker();
  Object.assign(app, { keys: await keyPair(), config: await loadConfig(), link: null });
  if (!app.config) return false;
  const start = () => {
    const term = enrolledOrForm();
    if (!term) return;
    if (onStart) onStart(term);
    app.link = new Link({
      url: app.config.gateway_url, terminalId: term.terminal_id, keys: app.keys,
      gatewayKeys: app.config.gateway_keys,
      onState: (state, detail) => {
        badge(state, detail);
        if (state === "online") resendPending(app.link);
        if (onState) onState(state, detail);
      },
      onAuth, onTapError,
    });
    app.link.start();
  };
  $("enrol-btn").addEventListener("click", () => enrol(app.keys, start));
  for (const [id, fn] of Object.entries(buttons)) $(id).addEventListener("click", fn);
  start();
  return true;
}

// The tap in progress if `m` is its verified answer (it is then no longer in progress); null
// otherwise. An answer that does not verify is shown as an error and the tap sent again.
export async function verifiedAnswer(app, m) {
  const t = store.get("pending", null);
  if (!t || m.tap_id !== t.tap_id) return null;
  if (!(await isAnswerTo(m, t, store.get("terminal").terminal_id, app.config.gateway_keys))) {
    result("invalid", "ERROR: the authorisation did not verify; the tap is sent again.");
    setTimeout(() => resendPending(app.link), 2000);
    return null;
  }
  store.drop("pending");
  return t;
}

// An error answer to the tap in progress: resent after a pause when retryable; otherwise the
// tap ends, and the error is returned for the app to show (null: not ours, or retried).
export function tapError(app, m, retryable) {
  const t = store.get("pending", null);
  if (!t || m.tap_id !== t.tap_id) return null;
  if (retryable) {
    setTimeout(() => resendPending(app.link), 1000);
    return null;
  }
  store.drop("pending");
  return { result: "error", reason: m.code, message: m.message };
}
