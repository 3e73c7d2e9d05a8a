// A terminal of the citycard protocol (docs/protocol.md) in the browser: its Ed25519 key made
// and kept by WebCrypto (private key not extractable, stored in IndexedDB), the handshake, taps
// with their sequence numbers and tap ids kept across reloads, and the check of every signed
// authorisation with the gateway's public key before anyone is shown a result.

const enc = new TextEncoder();
export const ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const RETRYABLE = new Set(["busy", "unavailable", "internal"]);
const FATAL_STOP = new Set(["terminal_revoked", "unknown_terminal", "bad_proof"]);

export function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function unhex(s) {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

// --- storage: IndexedDB for the key pair (a CryptoKey is stored as is), localStorage for state

function idb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open("citycard-handheld", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("kv");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function idbDo(mode, fn) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction("kv", mode);
    const req = fn(tx.objectStore("kv"));
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
  });
}

export async function keyPair() {
  let kp = await idbDo("readonly", (s) => s.get("key"));
  if (!kp) {
    kp = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    await idbDo("readwrite", (s) => s.put(kp, "key"));
  }
  return kp;
}

export async function publicKeyHex(kp) {
  return hex(await crypto.subtle.exportKey("raw", kp.publicKey));
}

export const store = {
  get(name, fallback) {
    const raw = localStorage.getItem("citycard." + name);
    return raw === null ? fallback : JSON.parse(raw);
  },
  put(name, value) {
    localStorage.setItem("citycard." + name, JSON.stringify(value));
  },
  drop(name) {
    localStorage.removeItem("citycard." + name);
  },
};

// --- the signed bytes (section 8)

export function proofBytes(terminalId, challenge, keyId) {
  return enc.encode(`citycard-proof-v1\n${terminalId}\n${challenge}\n${keyId}\n`);
}

export function authBytes(m) {
  return enc.encode(
    `citycard-auth-v1\n${m.key_id}\n${m.terminal_id}\n${m.seq}\n${m.tap_id}\n${m.card}\n` +
      `${m.result}\n${m.reason}\n${m.amount}\n${m.balance}\n${m.currency}\n${m.gateway_time}\n`,
  );
}

export async function verifyAuth(gatewayKeys, m) {
  const pub = gatewayKeys[m.key_id];
  if (!pub || typeof m.sig !== "string" || !/^[0-9a-f]{128}$/.test(m.sig)) return false;
  try {
    const key = await crypto.subtle.importKey("raw", unhex(pub), { name: "Ed25519" }, false, [
      "verify",
    ]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, unhex(m.sig), authBytes(m));
  } catch {
    return false;
  }
}

// --- the link: one websocket, reconnected with back-off and jitter (section 12)

export class Link {
  constructor({ url, terminalId, keys, gatewayKeys, onState, onAuth, onTapError }) {
    Object.assign(this, { url, terminalId, keys, gatewayKeys, onState, onAuth, onTapError });
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.delay = 500;
  }

  get seq() {
    return store.get("seq", 0);
  }

  set seq(v) {
    store.put("seq", v);
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop(reason) {
    this.stopped = true;
    if (this.ws) this.ws.close();
    this.onState("refused", reason);
  }

  open() {
    this.onState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.retryLater();
      return;
    }
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ v: 1, type: "hello", terminal_id: this.terminalId }));
    ws.onmessage = (ev) => this.message(ev.data);
    ws.onclose = () => {
      this.ready = false;
      if (this.ws === ws) this.ws = null;
      if (!this.stopped) {
        this.onState("offline");
        this.retryLater();
      }
    };
    ws.onerror = () => {};
  }

  retryLater() {
    const wait = this.delay * (0.5 + Math.random());
    this.delay = Math.min(this.delay * 2, 30000);
    setTimeout(() => !this.stopped && !this.ws && this.open(), wait);
  }

  async message(data) {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (m.type === "challenge") {
      const sig = await crypto.subtle.sign(
        { name: "Ed25519" },
        this.keys.privateKey,
        proofBytes(this.terminalId, m.challenge, m.key_id),
      );
      this.ws.send(
        JSON.stringify({
          v: 1, type: "proof", terminal_id: this.terminalId, challenge: m.challenge,
          sig: hex(sig),
        }),
      );
    } else if (m.type === "welcome") {
      this.seq = Math.max(this.seq, m.last_seq);
      this.ready = true;
      this.delay = 500;
      this.onState("online");
    } else if (m.type === "auth") {
      this.onAuth(m);
    } else if (m.type === "error") {
      if (m.fatal && FATAL_STOP.has(m.code)) {
        this.stop(m.code);
      } else if (m.tap_id) {
        this.onTapError(m, RETRYABLE.has(m.code));
      }
    }
  }

  // Send a tap (a new one or a retry: same tap id, same content, a new seq); the seq it was
  // sent with, or 0 when offline. The caller keeps every seq: an original answer carries the
  // first accepted attempt's.
  send(tap) {
    if (!this.ready || !this.ws) return 0;
    const seq = this.seq + 1;
    this.seq = seq;
    this.ws.send(
      JSON.stringify({
        v: 1, type: "tap", seq, tap_id: tap.tap_id, card: tap.card, op: tap.op,
        terminal_time: tap.terminal_time, ...tap.fields,
      }),
    );
    return seq;
  }
}

// Whether `m` is a verified answer to `tap` (section 8: ours, for this tap and card, from a
// seq we sent it with, signed by a trusted gateway key).
export async function isAnswerTo(m, tap, terminalId, gatewayKeys) {
  return (
    m.terminal_id === terminalId &&
    m.tap_id === tap.tap_id &&
    m.card === tap.card &&
    tap.seqs.includes(m.seq) &&
    (await verifyAuth(gatewayKeys, m))
  );
}

// Money as integer minor units, parsed from what the driver types ("12.5" -> 1250).
export function parseMinor(text) {
  const m = /^\s*(\d{1,7})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  return parseInt(m[1], 10) * 100 + parseInt((m[2] || "0").padEnd(2, "0"), 10);
}

export function formatMinor(n, currency) {
  const sign = n < 0 ? "-" : "";
  const a = Math.abs(n);
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, "0")} ${currency}`;
}
