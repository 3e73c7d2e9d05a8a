"""The control room against a running gateway and a real Redis: who may do what (refused before
anything is read), live streams with filters, slow and never-reading subscribers, resuming with
no gap and no duplicate, admin actions through to the terminals, the audit log, metrics."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from gateway.wire import protocol as wire
from ops.control import audit
from ops.control.operators import add_operator, authenticate, disable_operator
from ops.control.streams import QUEUE_SIZE, Filter, Hub, SubscriptionError
from tests.gateway.test_control import grafana_metrics
from tests.ops.control_helpers import GATES, World, recv_json, world

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def w(redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(redis_url, tmp_path) as w:
        yield w


def rid() -> str:
    return f"t-{secrets.token_hex(6)}"


async def audit_records(w: World) -> list[dict[str, str]]:
    return await audit.read(w.redis)


async def next_of(ws: Any, mtype: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        while True:
            m = await recv_json(ws)
            if m["type"] == mtype:
                return m


# ------------------------------------------------------------------ operators and roles


async def test_tokens_are_stored_hashed_and_checked(w: World) -> None:
    token = w.tokens["viewer"]
    op = await authenticate(w.redis, token)
    assert op is not None and (op.name, op.role) == ("viewer-op", "viewer")
    for bad in ("", token + "x", token.replace("viewer-op", "admin-op"), "cco.nobody.x" * 3):
        assert await authenticate(w.redis, bad) is None
    stored = b"".join(v for v in (await w.redis.hgetall("{cc}:operators")).values())
    assert token.encode() not in stored and token.split(".")[2].encode() not in stored
    assert await disable_operator(w.redis, "viewer-op")
    assert await authenticate(w.redis, token) is None
    with pytest.raises(ValueError, match="exists"):
        await add_operator(w.redis, "admin-op", "admin")


async def test_unauthenticated_and_wrong_role_are_refused_before_reading(w: World) -> None:
    async with w.http() as anon:
        for path in ("/api/summary", "/api/terminals", "/api/alerts", "/api/me", "/api/audit"):
            assert (await anon.get(path)).status_code == 401, path
        r = await anon.post("/api/admin/block_card",
                            json={"card": "card-1", "reason": "x", "request_id": rid()})
        assert r.status_code == 401
    async with w.http("viewer") as viewer:
        assert (await viewer.get("/api/summary")).status_code == 200
        assert (await viewer.get("/api/audit")).status_code == 403
        r = await viewer.post("/api/admin/block_card",
                              json={"card": "card-1", "reason": "lost", "request_id": rid()})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    async with w.http("supervisor") as sup:
        r = await sup.post("/api/admin/revoke_terminal",
                           json={"terminal": GATES[0], "reason": "x", "request_id": rid()})
        assert r.status_code == 403
    results = [(r["operator"], r["action"], r["result"]) for r in await audit_records(w)]
    assert ("(unauthenticated)", "block_card", "refused: not_authenticated") in results
    assert ("viewer-op", "block_card", "refused: forbidden") in results
    assert ("supervisor-op", "revoke_terminal", "refused: forbidden") in results
    assert (await w.gw.store.get_terminal(GATES[0])).status == "active"  # type: ignore[union-attr]


async def test_login_sets_a_session_cookie_and_is_rate_limited(w: World) -> None:
    async with w.http() as client:
        r = await client.post("/api/login", json={"token": "cco.admin-op.wrong"})
        assert r.status_code == 401
        r = await client.post("/api/login", json={"token": w.tokens["admin"]})
        assert r.status_code == 200 and r.json() == {"operator": "admin-op", "role": "admin"}
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert (await client.get("/api/me")).json()["operator"] == "admin-op"
        # A cookie-authenticated POST without the anti-forgery header is refused.
        r = await client.post("/api/admin/block_card",
                              json={"card": "card-1", "reason": "x", "request_id": rid()})
        assert r.status_code == 403 and r.json()["error"] == "csrf"
        await client.post("/api/logout", headers={"X-Requested-With": "citycard"})
        assert (await client.get("/api/me")).status_code == 401
        codes = [(await client.post("/api/login", json={"token": "nope"})).status_code
                 for _ in range(12)]
        assert 429 in codes
    records = await audit_records(w)
    assert any(r["action"] == "login" and r["result"] == "done" for r in records)
    assert any(r["action"] == "login" and r["result"].startswith("refused") for r in records)


# ------------------------------------------------------------------ streams


async def test_subscriptions_filter_the_live_taps(w: World) -> None:
    declines = await w.stream("viewer", {"subscribe": {"declines": True}})
    gate0 = await w.stream("viewer", {"subscribe": {"terminal": GATES[0]}})
    assert (await next_of(declines, "hello"))["subscription"] == {"stream": "taps",
                                                                   "declines": True}
    await next_of(gate0, "hello")
    g0, g1 = await w.terminal(GATES[0]), await w.terminal(GATES[1])
    assert (await g0.tap("card-1"))["result"] == "approved"
    assert (await g1.tap("card-poor"))["result"] == "declined"
    first = await next_of(gate0, "tap")
    assert (first["terminal"], first["card"], first["result"]) == (GATES[0], "card-1",
                                                                   "approved")
    assert first["kind"] == "gate" and first["stop"] == "stop-0"
    d = await next_of(declines, "tap")
    assert (d["terminal"], d["reason"]) == (GATES[1], "insufficient_funds")
    for ws in (declines, gate0):
        await ws.close()


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"subscribe": {"colour": "red"}}, "bad_subscription"),
        ({"subscribe": {"stream": "gossip"}}, "bad_subscription"),
        ({"subscribe": {"kind": "gate bus"}}, "bad_subscription"),
        ({"subscribe": {"stream": "alerts", "kind": "gate"}}, "bad_subscription"),
        ({"subscribe": {}, "after": "yesterday"}, "bad_subscription"),
        ({"subscribe": {}, "extra": 1}, "bad_subscription"),
        ({"subscribe": {"card": "card-1"}}, "forbidden"),  # a viewer: support calls need more
    ],
)
async def test_malformed_subscriptions_get_a_clear_error(
    w: World, request_: dict[str, Any], code: str
) -> None:
    ws = await w.stream("viewer", request_)
    msg = await recv_json(ws)
    assert (msg["type"], msg["code"]) == ("error", code)


async def test_a_supervisor_follows_one_card(w: World) -> None:
    ws = await w.stream("supervisor", {"subscribe": {"card": "card-2"}})
    await next_of(ws, "hello")
    g = await w.terminal(GATES[2])
    await g.tap("card-1")
    await g.tap("card-2")
    assert (await next_of(ws, "tap"))["card"] == "card-2"
    await ws.close()


async def test_unauthenticated_websocket_is_refused(w: World) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    ws = await connect(f"ws://127.0.0.1:{w.room.port}/ws", compression=None)
    msg = await recv_json(ws)
    assert (msg["type"], msg["code"]) == ("error", "not_authenticated")
    # A page on another site cannot open the stream with an operator's cookie.
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{w.room.port}/ws", compression=None,
                      additional_headers={"Origin": "http://evil.example",
                                          "Authorization": f"Bearer {w.tokens['admin']}"})
    assert refused.value.response.status_code == 403


def test_a_full_queue_drops_and_says_how_many() -> None:
    hub = Hub()
    slow = hub.add(Filter())
    entry = {"op": "commit", "card": "c", "terminal": "t", "result": "approved", "time": "1"}
    for i in range(QUEUE_SIZE + 25):
        hub.on_entry(f"{i}-0@00", entry)
    assert len(slow.queue) == QUEUE_SIZE and slow.dropped == 25

    async def first() -> dict[str, Any]:
        return await slow.next()

    msg = anyio.run(first)
    assert msg == {"type": "missed", "count": 25}
    assert hub.dropped_total == 25
    with pytest.raises(SubscriptionError):
        Filter.parse({"declines": "yes"})


async def test_a_never_reading_subscriber_does_not_hold_up_the_others(w: World) -> None:
    stuck = await w.stream("viewer", {"subscribe": {}})  # never read again
    await next_of(stuck, "hello")
    reader = await w.stream("viewer", {"subscribe": {}})
    await next_of(reader, "hello")
    g = await w.terminal(GATES[3])
    n = 300
    for _ in range(n):
        await g.tap("card-1")
    got = 0
    with anyio.fail_after(20):
        while got < n:
            m = await recv_json(reader)
            got += m["type"] == "tap"
    assert got == n
    await reader.close()


async def test_resuming_has_no_gap_and_no_duplicate(w: World) -> None:
    g = await w.terminal(GATES[0])
    ws = await w.stream("viewer", {"subscribe": {}})
    await next_of(ws, "hello")
    for _ in range(5):
        await g.tap("card-1")
    seen = [await next_of(ws, "tap") for _ in range(5)]
    await ws.close()
    last = seen[-1]["id"]
    for _ in range(7):  # while it was away
        await g.tap("card-2")
    for from_memory in (True, False):
        if not from_memory:
            w.room.tailer.ring.clear()  # force the catch-up read from Redis
        ws = await w.stream("viewer", {"subscribe": {}, "after": last})
        await next_of(ws, "hello")
        missed = [await next_of(ws, "tap") for _ in range(7)]
        assert [m["card"] for m in missed] == ["card-2"] * 7
        ids = [m["id"] for m in missed]
        assert len(set(ids)) == 7 and last not in ids
        # Then live, still in order, nothing twice.
        await g.tap("card-1")
        live = await next_of(ws, "tap")
        assert live["id"] not in ids and live["card"] == "card-1"
        await ws.close()
        last = live["id"]
        for _ in range(7):
            await g.tap("card-2")


# ------------------------------------------------------------------ actions


async def act(w: World, role: str, action: str, **params: Any) -> Any:
    async with w.http(role) as client:
        return await client.post(f"/api/admin/{action}", json=params)


async def test_block_from_the_control_room_reaches_the_terminal(w: World) -> None:
    g = await w.terminal(GATES[1])
    assert (await g.tap("card-2"))["result"] == "approved"
    r = await act(w, "supervisor", "block_card", card="card-2", reason="reported stolen",
                  request_id=rid())
    assert r.status_code == 200, r.text
    assert r.json()["result"]["status"] == "blocked"
    # The terminal is told at once, signed (deny list frame), and the gateway refuses the card.
    with anyio.fail_after(5):
        while True:
            msg = wire.decode_gateway_message(await g.ws.recv())
            if msg["type"] == wire.DENY_LIST:
                break
    assert msg["add"] == ["card-2"]
    answer = await g.tap("card-2")
    assert (answer["result"], answer["reason"]) == ("declined", "card_blocked")
    r = await act(w, "supervisor", "unblock_card", card="card-2", reason="found",
                  request_id=rid())
    assert r.status_code == 200
    assert (await g.tap("card-2"))["result"] == "approved"
    records = [r for r in await audit_records(w) if r["action"].endswith("block_card")]
    assert [(r["operator"], r["action"], r["result"], r["reason"]) for r in records] == [
        ("supervisor-op", "block_card", "done", "reported stolen"),
        ("supervisor-op", "unblock_card", "done", "found"),
    ]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"card": "card-1", "request_id": "r-1"}, "reason_required"),
        ({"card": "card-1", "reason": "  ", "request_id": "r-2"}, "reason_required"),
        ({"card": "card-1", "reason": "x" * 201, "request_id": "r-3"}, "bad_reason"),
        ({"card": "card-1", "reason": "lost"}, "bad_request_id"),
        ({"card": "nobody", "reason": "lost", "request_id": "r-4"}, "unknown_card"),
        ({"card": "bad card", "reason": "lost", "request_id": "r-5"}, "bad_card"),
    ],
)
async def test_bad_actions_are_refused_and_audited(
    w: World, params: dict[str, Any], code: str
) -> None:
    r = await act(w, "supervisor", "block_card", **params)
    assert r.status_code >= 400 and r.json()["error"] == code
    last = (await audit_records(w))[-1]
    assert (last["action"], last["result"]) == ("block_card", f"refused: {code}")
    state = orjson.loads((await w.gw.store.load_card("card-1")).state)  # type: ignore[union-attr]
    assert state["status"] == "active"


async def test_a_replayed_action_is_refused_and_audited(w: World) -> None:
    request_id = rid()
    first = await act(w, "supervisor", "adjust_card", card="card-1", credit=250,
                      reason="double charge on line 4", request_id=request_id)
    assert first.status_code == 200, first.text
    assert first.json()["result"]["balance"] == CARD1 + 250
    again = await act(w, "supervisor", "adjust_card", card="card-1", credit=250,
                      reason="double charge on line 4", request_id=request_id)
    assert again.status_code == 409 and again.json()["error"] == "replayed"
    rec = await w.gw.store.load_card("card-1")
    assert orjson.loads(rec.state)["balance"] == CARD1 + 250  # type: ignore[union-attr]
    results = [r["result"] for r in await audit_records(w) if r["request_id"] == request_id]
    assert results == ["done", "refused: replayed"]
    # The refund is in the journal like any decision: funded by citycard, attributed to it.
    journal = await w.gw.store.read_journal(count=100)
    refund = [f for _, f in journal if f.get("tap") == request_id]
    assert len(refund) == 1 and refund[0]["kind"] == "control"
    assert orjson.loads(refund[0]["events"])[0]["operator"] == "citycard"


CARD1 = 5_000


async def test_a_correction_cannot_overdraw(w: World) -> None:
    r = await act(w, "supervisor", "adjust_card", card="card-poor", credit=-11,
                  reason="undercharged", request_id=rid())
    assert r.status_code == 409 and r.json()["error"] == "insufficient_funds"


async def test_revoking_a_terminal_closes_it_and_is_audited(w: World) -> None:
    g = await w.terminal(GATES[2])
    r = await act(w, "admin", "revoke_terminal", terminal=GATES[2], reason="stolen handheld",
                  request_id=rid())
    assert r.status_code == 200 and r.json()["result"]["gateways_told"] >= 1
    with anyio.fail_after(5):
        while True:
            msg = wire.decode_gateway_message(await g.ws.recv())
            if msg["type"] == "error":
                break
    assert msg["code"] == "terminal_revoked"
    r = await act(w, "admin", "revoke_terminal", terminal="no-such", reason="x",
                  request_id=rid())
    assert r.json()["error"] == "unknown_terminal"


async def test_loading_a_tariff_reaches_the_gateway(w: World, tmp_path: Path) -> None:
    from ops.control.actions import live_gateways

    with anyio.fail_after(10):
        while not await live_gateways(w.redis):  # noqa: ASYNC110  (first presence report)
            await anyio.sleep(0.1)
    city = REPO / "tariffs" / "city-2026.json"
    r = await act(w, "admin", "load_tariff", path=str(city), reason="spring fares",
                  request_id=rid())
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["version"] == "city-2026.2"
    assert result["gateways"]["gw-test"]["ok"] is True
    assert w.gw.tariff.current.version == "city-2026.2"
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1}')
    r = await act(w, "admin", "load_tariff", path=str(bad), reason="oops", request_id=rid())
    assert r.json()["error"] == "invalid_tariff"


async def test_the_audit_log_exports(w: World) -> None:
    await act(w, "supervisor", "block_card", card="card-1", reason="lost", request_id=rid())
    async with w.http("admin") as admin:
        lines = (await admin.get("/api/audit?format=jsonl")).text.splitlines()
        csv_text = (await admin.get("/api/audit?format=csv")).text
    records = [orjson.loads(line) for line in lines]
    assert any(r["action"] == "block_card" and r["reason"] == "lost" for r in records)
    assert csv_text.startswith("id,at_ms,operator,role,action,target,reason,result")
    assert "block_card" in csv_text


# ------------------------------------------------------------------ figures


async def test_summary_and_metrics_move_with_taps(w: World) -> None:
    g = await w.terminal(GATES[3])
    for card in ("card-1", "card-2", "card-poor"):
        await g.tap(card)
    with anyio.fail_after(10):
        while w.room.today.taps < 3:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    async with w.http("viewer") as viewer:
        s = (await viewer.get("/api/summary")).json()
        assert (s["today"]["taps"], s["today"]["approved"], s["today"]["declined"]) == (3, 2, 1)
        assert s["today"]["declines"] == [["insufficient_funds", 1]]
        assert s["today"]["stops"] == [["stop-3", 2]]
        assert s["today"]["revenue"][0]["operator"] == "metro"
        metrics = (await viewer.get("/metrics")).text
        assert "citycard_control_subscribers" in metrics
        # Every control-room series the shipped Grafana dashboard queries is exported.
        room_series = {m for m in grafana_metrics() if m.startswith("citycard_control_")}
        assert room_series and room_series <= set(re.findall(r"^(citycard_[a-z_]+)", metrics,
                                                              re.M))
        assert (await viewer.get("/healthz")).json() == {"status": "alive"}
    with anyio.fail_after(10):
        while w.room.health.snapshot()["counts"]["online"] < 1:  # noqa: ASYNC110
            await anyio.sleep(0.1)
    terms = {t["terminal"]: t for t in w.room.health.snapshot()["terminals"]}
    assert terms[GATES[3]]["status"] == "online" and terms[GATES[0]]["status"] == "offline"
