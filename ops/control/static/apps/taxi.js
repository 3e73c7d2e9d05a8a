// The taxi driver's app: enrol with a one-time code, run a trip, charge the passenger's card,
// show only verified results. The tap being charged is kept in localStorage before it is sent,
// so a reload (or a dead phone) retries it with the same tap id: never charged twice.
import {
  $, badge, bootApp, newPending, resendPending, result, tapError, verifiedAnswer,
} from "/static/apps/common.js";
import { ID_RE, formatMinor, parseMinor, store } from "/static/apps/terminal.js";

const app = {}; // keys, config, link (bootApp)

function show(id, on) {
  $(id).hidden = !on;
}

function onState(state, detail) {
  if (state === "refused") {
    for (const id of ["start-trip", "charge"]) $(id).disabled = true;
    if (detail === "terminal_revoked") {
      result("declined", "This handheld is revoked: it can no longer charge cards.");
    } else {
      result("declined", `The gateway refuses this handheld (${detail}); ask your operator.`);
    }
  }
}

function today() {
  return new Date().toISOString().slice(0, 10);
}

function renderTrips() {
  const trips = store.get("trips", []);
  const body = $("trips").querySelector("tbody");
  body.textContent = "";
  for (const t of trips.slice(-20).reverse()) {
    const tr = document.createElement("tr");
    for (const v of [t.time, t.trip, t.card, t.result, formatMinor(t.amount, app.config.currency)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const total = trips.filter((t) => t.day === today() && t.result === "approved")
    .reduce((a, t) => a + t.amount, 0);
  $("day-total").textContent = formatMinor(total, app.config.currency);
}

function renderTrip() {
  const trip = store.get("trip", null);
  show("trip-idle", !trip);
  show("trip-running", !!trip);
  if (trip) {
    $("trip-id").textContent = trip.id;
    $("trip-since").textContent = new Date(trip.started).toLocaleTimeString();
  }
}

function onStart() {
  const taxi = app.config.taxi || {};
  $("max-tap").textContent = taxi.max_per_tap ? formatMinor(taxi.max_per_tap, app.config.currency) : "-";
  $("max-day").textContent = taxi.max_per_day ? formatMinor(taxi.max_per_day, app.config.currency) : "-";
  renderTrip();
  renderTrips();
  const pending = store.get("pending", null);
  if (pending) result("waiting", `Retrying the charge of ${pending.card} (${pending.tap_id})…`);
}

function startTrip() {
  const term = store.get("terminal");
  const n = store.get("trip_counter", 0) + 1;
  store.put("trip_counter", n);
  store.put("trip", { id: `T${n}`, started: Date.now(), terminal: term.terminal_id });
  $("result").hidden = true;
  renderTrip();
}

function charge() {
  $("charge-error").textContent = "";
  if (store.get("pending", null)) {
    $("charge-error").textContent = "a charge is still being settled; wait for its result";
    return;
  }
  const amount = parseMinor($("amount").value);
  const card = $("card").value.trim();
  const taxi = app.config.taxi || {};
  if (amount === null || amount <= 0) {
    $("charge-error").textContent = "enter the metered fare, e.g. 12.50";
    return;
  }
  if (taxi.max_per_tap && amount > taxi.max_per_tap) {
    // Refused before a card is asked: the gateway would decline it anyway.
    $("charge-error").textContent =
      `over the limit of ${formatMinor(taxi.max_per_tap, app.config.currency)} per ride`;
    return;
  }
  if (!ID_RE.test(card)) {
    $("charge-error").textContent = "not a card number";
    return;
  }
  const term = store.get("terminal");
  const trip = store.get("trip");
  // Stored before it is sent: a reload retries this very tap.
  const tap = newPending("taxi_fare", card,
    { amount, trip_id: `${term.terminal_id}.${trip.id}` }, `${trip.id}:`);
  tap.trip = trip.id;
  store.put("pending", tap);
  result("waiting", `Charging ${card}…`);
  resendPending(app.link);
}

async function onAuth(m) {
  // Never shown as approved unless it verifies (else an error, and the charge is resent).
  const tap = await verifiedAnswer(app, m);
  if (!tap) return;
  const trips = store.get("trips", []);
  trips.push({ time: new Date().toLocaleTimeString(), day: today(), trip: tap.trip,
    card: tap.card, result: m.result, reason: m.reason, amount: m.amount, tap_id: tap.tap_id,
    tap });
  store.put("trips", trips.slice(-200));
  if (m.result === "approved") {
    result("approved", `APPROVED ${formatMinor(m.amount, m.currency)} — balance ` +
      `${formatMinor(m.balance, m.currency)} (signed ${m.key_id})`);
    store.drop("trip");
    $("amount").value = "";
    $("card").value = "";
    renderTrip();
  } else {
    result("declined", `DECLINED: ${m.reason} (signed ${m.key_id})`);
  }
  renderTrips();
}

function onTapError(m, retryable) {
  const mine = (store.get("pending", null) || {}).tap_id === m.tap_id;
  const err = tapError(app, m, retryable);
  if (err) result("declined", `ERROR: ${err.reason} — ${err.message}`);
  else if (mine) result("waiting", `Gateway ${m.code}: retrying the same charge…`);
}

window.addEventListener("offline", () => badge("offline"));
bootApp(app, {
  buttons: { "start-trip": startTrip, charge }, onStart, onState, onAuth, onTapError,
});
