"""The control room's web application (Starlette): the login page and the dashboard (plain
HTML and JavaScript from `static/`, uPlot vendored for the charts), the JSON API, the live
websocket, and the control room's own `/metrics`, `/healthz`, `/readyz`.

Authentication: `POST /api/login` with an operator token opens a session (HttpOnly, SameSite
Strict cookie); scripts and `citycard watch` may instead send `Authorization: Bearer <token>`.
Every API route checks the operator's role before it reads anything. State-changing requests
must be JSON and, with a cookie, carry `X-Requested-With: citycard` (a header another site's
page cannot send), and the websocket checks its Origin: a page elsewhere cannot act in an
operator's name. Login attempts are limited per client address.

Websocket `/ws`: the client sends one JSON object
`{"subscribe": {<filter>}, "after": <journal id or null>, "summary": <bool>}` (filters in
`ops.control.streams`); the server answers `{"type": "hello", ...}`, then the stream's messages,
`missed` notices, and with `summary` a `summary` object every second.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import anyio
import orjson
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected

from gateway.provisioning import GATEWAY_KEYS_KEY
from gateway.store.interface import JOURNAL_READ_MAX
from ops.control import audit, handhelds
from ops.control.actions import ACTIONS, ActionRefused, perform
from ops.control.operators import (
    Operator,
    authenticate,
    close_session,
    open_session,
    session_operator,
)
from ops.control.payments import StubAcquirer
from ops.control.room import ControlRoom
from ops.control.streams import MAX_REPLAY, Filter, SubscriptionError, tap_message
from ops.control.tailer import position

STATIC: Final = Path(__file__).parent / "static"
COOKIE: Final = "cc_session"
#: Login attempts per client address per LOGIN_WINDOW_S.
LOGIN_ATTEMPTS: Final = 10
LOGIN_WINDOW_S: Final = 60.0
#: Client addresses whose login attempts are tracked at most.
MAX_LOGIN_CLIENTS: Final = 10_000
#: Largest JSON body accepted.
MAX_BODY: Final = 16_384
#: Seconds a websocket client has to send its subscription.
SUBSCRIBE_TIMEOUT_S: Final = 10.0
SUMMARY_INTERVAL_S: Final = 1.0
CSRF_HEADER: Final = "x-requested-with"
CSP: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(code: str, message: str, status: int) -> Response:
    return _json({"error": code, "message": message}, status)


class _LoginLimiter:
    def __init__(self) -> None:
        self._tries: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        tries = self._tries.setdefault(client, deque())
        self._tries.move_to_end(client)
        while tries and tries[0] < now - LOGIN_WINDOW_S:
            tries.popleft()
        if len(self._tries) > MAX_LOGIN_CLIENTS:
            self._tries.popitem(last=False)
        if len(tries) >= LOGIN_ATTEMPTS:
            return False
        tries.append(now)
        return True


def _verifies(public_key_hex: str, message: bytes, sig_hex: str) -> bool:
    try:
        VerifyKey(bytes.fromhex(public_key_hex)).verify(message, bytes.fromhex(sig_hex))
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def control_app(room: ControlRoom) -> Starlette:
    limiter = _LoginLimiter()
    acquirer = StubAcquirer()
    redis = room.redis

    async def operator_of(conn: HTTPConnection) -> tuple[Operator | None, bool]:
        """(operator, by cookie)."""
        auth = conn.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return await authenticate(redis, auth[7:].strip()), False
        sid = conn.cookies.get(COOKIE)
        if sid:
            return await session_operator(redis, sid), True
        return None, False

    async def require(request: Request, role: str) -> Operator | Response:
        op, by_cookie = await operator_of(request)
        if op is None:
            return _error("not_authenticated", "sign in first", 401)
        if not op.may(role):
            return _error("forbidden", f"this needs the {role} role", 403)
        csrf_ok = request.headers.get(CSRF_HEADER) == "citycard"
        if request.method == "POST" and by_cookie and not csrf_ok:
            return _error("csrf", f"send {CSRF_HEADER}: citycard", 403)
        return op

    async def body(request: Request) -> dict[str, Any] | Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error("bad_request", "send JSON", 415)
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _error("bad_request", "body too large", 413)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error("bad_request", "body is not JSON", 400)
        if not isinstance(data, dict):
            return _error("bad_request", "body must be a JSON object", 400)
        return data

    async def page(name: str) -> Response:
        resp = FileResponse(STATIC / name, media_type="text/html")
        resp.headers["content-security-policy"] = CSP
        resp.headers["x-content-type-options"] = "nosniff"
        resp.headers["referrer-policy"] = "no-referrer"
        return resp

    async def index(_: Request) -> Response:
        return await page("index.html")

    async def login_page(_: Request) -> Response:
        return await page("login.html")

    async def limited_body(request: Request) -> dict[str, Any] | Response:
        """The JSON body of a request that presents a secret (a token, an enrolment code):
        attempts are limited per client address."""
        client = request.client.host if request.client else "?"
        if not limiter.allow(client):
            return _error("too_many_attempts", "too many attempts; wait a minute", 429)
        return await body(request)

    async def login(request: Request) -> Response:
        data = await limited_body(request)
        if isinstance(data, Response):
            return data
        token = data.get("token")
        op = await authenticate(redis, token) if isinstance(token, str) else None
        if op is None:
            await audit.record(redis, audit.AuditRecord(
                "(unknown)", "", "login", "", "", "refused: bad_token"))
            return _error("bad_token", "unknown or wrong token", 401)
        sid = await open_session(redis, op)
        await audit.record(redis, audit.AuditRecord(op.name, op.role, "login", "", "", "done"))
        resp = _json({"operator": op.name, "role": op.role})
        resp.set_cookie(
            COOKIE, sid, httponly=True, samesite="strict", secure=room.config.secure_cookies,
            max_age=12 * 3600, path="/",
        )
        return resp

    async def logout(request: Request) -> Response:
        sid = request.cookies.get(COOKIE)
        if sid:
            await close_session(redis, sid)
        resp = _json({"ok": True})
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def me(request: Request) -> Response:
        op = await require(request, "viewer")
        if isinstance(op, Response):
            return op
        return _json({"operator": op.name, "role": op.role,
                      "actions": sorted(a for a, r in ACTIONS.items() if op.may(r))})

    async def summary(request: Request) -> Response:
        op = await require(request, "viewer")
        return op if isinstance(op, Response) else _json(room.summary())

    async def terminals(request: Request) -> Response:
        op = await require(request, "viewer")
        return op if isinstance(op, Response) else _json(room.health.snapshot()["terminals"])

    async def alerts(request: Request) -> Response:
        op = await require(request, "viewer")
        return op if isinstance(op, Response) else _json(list(room.alerts.recent)[::-1])

    async def audit_export(request: Request) -> Response:
        op = await require(request, "admin")
        if isinstance(op, Response):
            return op
        fmt = request.query_params.get("format", "jsonl")
        try:
            since = int(request.query_params.get("since_ms", "0"))
            text = await audit.export(redis, fmt, since_ms=since)
        except ValueError as exc:
            return _error("bad_request", str(exc), 400)
        await audit.record(redis, audit.AuditRecord(
            op.name, op.role, "export_audit", fmt, "", "done"))
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return PlainTextResponse(text, media_type=media)

    async def admin(request: Request) -> Response:
        action = request.path_params["action"]
        op, by_cookie = await operator_of(request)
        if op is not None and by_cookie and request.headers.get(CSRF_HEADER) != "citycard":
            return _error("csrf", f"send {CSRF_HEADER}: citycard", 403)
        data = await body(request)
        if isinstance(data, Response):
            return data
        try:
            result = await perform(room.actions, op, action, data)
        except ActionRefused as refused:
            return _error(refused.code, refused.message, refused.status)
        return _json({"ok": True, "action": action, "result": result})

    async def gateway_url() -> str | None:
        if room.config.apps_gateway_url:
            return room.config.apps_gateway_url
        for info in room.health.gateways.values():
            url = info.get("url")
            if isinstance(url, str) and url.startswith(("ws://", "wss://")):
                return url
        return None

    async def handheld_config(_: Request) -> Response:
        """What any handheld app needs before and after enrolment (nothing secret)."""
        raw = await redis.hgetall(GATEWAY_KEYS_KEY)
        tariff = room.tariff
        taxi = tariff.services.taxi
        products = [
            {"product": p.product_id, "name": p.name, "prices": dict(p.prices)}
            for p in tariff.transit.products.values()
        ]
        return _json({
            "gateway_url": await gateway_url(),
            "gateway_keys": {_text(k): _text(v) for k, v in raw.items()},
            "currency": tariff.currency,
            "taxi": None if taxi is None else taxi.to_dict(),
            "products": products,
            "payment_provider": acquirer.provider,
        })

    async def kiosk_payment(request: Request) -> Response:
        """A kiosk's payment step (authorise, then capture or void), signed by the kiosk's own
        terminal key; the acquirer is `payments.StubAcquirer` (a stub: no money moves)."""
        data = await body(request)
        if isinstance(data, Response):
            return data
        tid, step = data.get("terminal_id"), data.get("step")
        ref, amount, sig = data.get("reference"), data.get("amount"), data.get("sig")
        if not (isinstance(tid, str) and isinstance(ref, str) and isinstance(sig, str)
                and type(amount) is int and step in ("authorise", "capture", "void")):
            return _error("bad_request", "terminal_id, step, reference, amount, sig", 400)
        rec = await room.store.get_terminal(tid)
        message = f"citycard-kiosk-payment-v1\n{tid}\n{step}\n{ref}\n{amount}\n".encode()
        if rec is None or rec.status != "active" or rec.kind != "kiosk" or not _verifies(
            rec.public_key_hex, message, sig
        ):
            await audit.record(redis, audit.AuditRecord(
                f"kiosk:{tid}", "terminal", "kiosk_payment", ref, step, "refused: bad_terminal"))
            return _error("bad_terminal", "not an active kiosk, or the signature is wrong", 403)
        if step == "authorise":
            pay = await acquirer.authorise(amount, room.tariff.currency, f"{tid}:{ref}")
        elif step == "capture":
            pay = await acquirer.capture(ref)
        else:
            pay = await acquirer.void(ref)
        await audit.record(redis, audit.AuditRecord(
            f"kiosk:{tid}", "terminal", "kiosk_payment", pay.payment_id, step,
            "done" if pay.approved else f"refused: {pay.reason}"))
        return _json({"payment_id": pay.payment_id, "approved": pay.approved,
                      "amount": pay.amount, "provider": pay.provider, "reason": pay.reason,
                      "state": acquirer.state.get(pay.payment_id, "")})

    async def handheld_enrol(request: Request) -> Response:
        data = await limited_body(request)
        if isinstance(data, Response):
            return data
        try:
            enrolled = await handhelds.redeem(
                redis, room.store, data.get("code", ""), data.get("public_key", "")
            )
        except handhelds.EnrolRefused as refused:
            return _error(refused.code, refused.message, 400)
        return _json(enrolled)

    async def app_page(request: Request) -> Response:
        name = request.path_params["app"]
        if name not in handhelds.HANDHELD_KINDS:
            return _error("not_found", "no such app", 404)
        resp = FileResponse(STATIC / "apps" / f"{name}.html", media_type="text/html")
        # The app talks to the gateway's websocket: its origin joins connect-src.
        url = await gateway_url() or ""
        origin = "/".join(url.split("/")[:3]) if url else ""
        resp.headers["content-security-policy"] = CSP.replace(
            "connect-src 'self'", f"connect-src 'self' {origin}".rstrip()
        )
        resp.headers["x-content-type-options"] = "nosniff"
        resp.headers["referrer-policy"] = "no-referrer"
        return resp

    async def service_worker(_: Request) -> Response:
        # Served from /apps/ so that its scope covers the apps' pages.
        return FileResponse(STATIC / "apps" / "sw.js", media_type="text/javascript")

    async def favicon(_: Request) -> Response:
        return Response(status_code=204)  # none: browsers ask anyway

    async def healthz(_: Request) -> Response:
        return _json({"status": "alive"})

    async def readyz(_: Request) -> Response:
        ok = room.health.redis_ok and room.tailer.caught_up.is_set()
        return _json({"status": "ready" if ok else "not ready", "redis": room.health.redis_ok,
                      "journal_caught_up": room.tailer.caught_up.is_set()},
                     200 if ok else 503)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RoomCollector(room))

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def ws(socket: WebSocket) -> None:
        await _serve_socket(room, socket, operator_of)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/login", login_page),
            Route("/api/login", login, methods=["POST"]),
            Route("/api/logout", logout, methods=["POST"]),
            Route("/api/me", me),
            Route("/api/summary", summary),
            Route("/api/terminals", terminals),
            Route("/api/alerts", alerts),
            Route("/api/audit", audit_export),
            Route("/api/admin/{action}", admin, methods=["POST"]),
            Route("/api/handheld/config", handheld_config),
            Route("/api/handheld/enrol", handheld_enrol, methods=["POST"]),
            Route("/api/kiosk/payment", kiosk_payment, methods=["POST"]),
            Route("/apps/sw.js", service_worker),
            Route("/apps/{app}", app_page),
            Route("/metrics", metrics),
            Route("/favicon.ico", favicon),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            WebSocketRoute("/ws", ws),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )


async def _serve_socket(room: ControlRoom, socket: WebSocket, operator_of: Any) -> None:
    origin = socket.headers.get("origin")
    host = socket.headers.get("host", "")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        await socket.close(code=4403, reason="cross-origin")
        return
    op, _ = await operator_of(socket)
    await socket.accept()
    if op is None:
        await _send(socket, {"type": "error", "code": "not_authenticated",
                             "message": "sign in first"})
        await socket.close(code=4401)
        return
    try:
        with anyio.fail_after(SUBSCRIBE_TIMEOUT_S):
            request = orjson.loads(await socket.receive_text())
        if not isinstance(request, dict):
            raise SubscriptionError("bad_subscription", "send a JSON object")
        unknown = set(request) - {"subscribe", "after", "summary"}
        if unknown:
            raise SubscriptionError("bad_subscription", f"unknown fields {sorted(unknown)}")
        flt = Filter.parse(request.get("subscribe"))
        if flt.card is not None and not op.may("supervisor"):
            raise SubscriptionError("forbidden", "one card's stream needs the supervisor role")
        after = request.get("after")
        if after is not None:
            if not isinstance(after, str):
                raise SubscriptionError("bad_subscription", "after must be a journal id")
            try:
                position(after)
            except ValueError:
                raise SubscriptionError("bad_subscription", "after is not a journal id") from None
    except (TimeoutError, orjson.JSONDecodeError, SubscriptionError, WebSocketDisconnect) as exc:
        if isinstance(exc, WebSocketDisconnect):
            return
        code = exc.code if isinstance(exc, SubscriptionError) else "bad_subscription"
        message = exc.message if isinstance(exc, SubscriptionError) else "send a subscription"
        await _send(socket, {"type": "error", "code": code, "message": message})
        await socket.close(code=4400)
        return
    sub = room.hub.add(flt)
    # Registered before the replay is read: everything after `head` reaches the queue live.
    head = room.tailer.head
    try:
        async with anyio.create_task_group() as tg:

            async def stream() -> None:
                await _send(socket, {"type": "hello", "operator": op.name, "role": op.role,
                                     "subscription": flt.to_dict(), "head": head})
                if after is not None and flt.stream == "taps" and head is not None:
                    await _replay(room, socket, flt, after, head)
                while True:
                    await _send(socket, await sub.next())

            scope = tg.cancel_scope
            tg.start_soon(_until_gone, scope, stream)
            tg.start_soon(_until_gone, scope, lambda: _drain_client(socket))
            if request.get("summary"):
                tg.start_soon(_until_gone, scope, lambda: _summaries(room, socket))
    finally:
        room.hub.remove(sub)


#: What a websocket raises once its client is gone.
_GONE: Final = (WebSocketDisconnect, ClientDisconnected, RuntimeError, OSError, KeyError)


async def _until_gone(scope: anyio.CancelScope, fn: Callable[[], Awaitable[None]]) -> None:
    """Run `fn` until the client goes away (which ends the whole connection)."""
    with contextlib.suppress(*_GONE):
        await fn()
    scope.cancel()


async def _replay(room: ControlRoom, socket: WebSocket, flt: Filter, after: str, head: str) -> None:
    """What the subscriber missed: entries after `after` up to `head`, in order."""
    end = position(head)
    sent = 0
    entries = room.tailer.since(after)
    if entries is not None:
        for jid, e in entries:
            if position(jid) > end:
                return
            sent += await _replay_one(socket, flt, jid, e)
        return
    cursor = after
    while sent < MAX_REPLAY:
        page = await room.store.read_journal(count=JOURNAL_READ_MAX, after=cursor)
        if not page:
            return
        for jid, e in page:
            if position(jid) > end:
                return
            sent += await _replay_one(socket, flt, jid, e)
            cursor = jid
    await _send(socket, {"type": "missed", "count": -1, "reason": "replay limit reached",
                         "after": cursor})


async def _replay_one(socket: WebSocket, flt: Filter, jid: str, e: dict[str, str]) -> int:
    if not flt.matches_tap(e):
        return 0
    msg = tap_message(jid, e)
    if msg is None:
        return 0
    await _send(socket, msg)
    return 1


async def _summaries(room: ControlRoom, socket: WebSocket) -> None:
    while True:
        await _send(socket, room.summary())
        await anyio.sleep(SUMMARY_INTERVAL_S)


async def _drain_client(socket: WebSocket) -> None:
    """Read (and ignore) what the client sends; its going away ends the connection."""
    while True:
        await socket.receive_text()


async def _send(socket: WebSocket, msg: dict[str, Any]) -> None:
    await socket.send_text(orjson.dumps(msg).decode())


class _RoomCollector(Collector):
    def __init__(self, room: ControlRoom) -> None:
        self._room = room

    def collect(self) -> list[Metric]:  # type: ignore[override]
        r = self._room
        counts = r.health.snapshot()["counts"]
        terminals = GaugeMetricFamily(
            "citycard_control_terminals", "Registered terminals by status", labels=["status"]
        )
        for status, n in counts.items():
            terminals.add_metric([status], n)
        return [
            GaugeMetricFamily("citycard_control_subscribers", "Live stream subscribers",
                              value=len(r.hub.subscribers)),
            CounterMetricFamily("citycard_control_dropped",
                                "Messages dropped for slow subscribers (current ones)",
                                value=r.hub.dropped_total),
            CounterMetricFamily("citycard_control_published", "Tap messages offered",
                                value=r.hub.published),
            CounterMetricFamily("citycard_control_alerts", "Alerts raised",
                                value=r.alerts.raised),
            GaugeMetricFamily("citycard_control_redis_ping_ms", "Redis PING from the room",
                              value=r.health.redis_ping_ms or -1),
            terminals,
        ]

