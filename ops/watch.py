"""`citycard watch`: a control-room stream in a terminal — the same subscription and filters as
the dashboard's, over the same websocket, rendered as a live table (rich) or as JSON lines.
When the connection drops it reconnects and resumes after the last tap it showed."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any, Final
from urllib.parse import urlparse

import anyio
import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

#: Rows the live table shows.
ROWS: Final = 25
#: Longest wait between two reconnect attempts.
MAX_RETRY_S: Final = 10.0


def _ws_url(url: str) -> str:
    u = urlparse(url)
    scheme = "wss" if u.scheme == "https" else "ws"
    return f"{scheme}://{u.netloc}/ws"


def _table(rows: deque[dict[str, Any]], spec: dict[str, Any], status: str) -> Table:
    title = " ".join(f"{k}={v}" for k, v in spec.items())
    table = Table(title=f"citycard watch  {title}  [{status}]", expand=True)
    if spec.get("stream", "taps") == "taps":
        for col in ("time", "terminal", "kind", "card", "result", "reason", "amount", "where"):
            table.add_column(col, no_wrap=True)
        for m in rows:
            style = "red" if m.get("result") == "declined" else None
            if m.get("type") == "missed":
                table.add_row("", f"... {m.get('count')} missed", "", "", "", "", "", "",
                              style="yellow")
                continue
            t = m.get("time", 0)
            clock = anyio_time(t)
            table.add_row(
                clock, m.get("terminal", ""), m.get("kind", ""), m.get("card", ""),
                m.get("result", ""), m.get("reason", ""), f"{m.get('amount', 0) / 100:.2f}",
                " / ".join(x for x in (m.get("stop"), m.get("route")) if x), style=style,
            )
    else:
        table.add_column("message")
        for m in rows:
            table.add_row(orjson.dumps(m).decode())
    return table


def anyio_time(ms: int) -> str:
    import datetime

    if not ms:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


async def watch(url: str, token: str, spec: dict[str, Any], max_messages: int, plain: bool) -> int:
    console = Console()
    rows: deque[dict[str, Any]] = deque(maxlen=ROWS)
    last_id: str | None = None
    seen = 0
    retry = 0.5
    live = None if plain else Live(_table(rows, spec, "connecting"), console=console,
                                   refresh_per_second=4)
    if live is not None:
        live.start()
    try:
        while True:
            try:
                async with connect(
                    _ws_url(url), additional_headers={"Authorization": f"Bearer {token}"},
                    compression=None, open_timeout=10,
                ) as ws:
                    await ws.send(orjson.dumps({"subscribe": spec, "after": last_id}).decode())
                    async for raw in ws:
                        m = orjson.loads(raw)
                        if m.get("type") == "error":
                            print(f"citycard watch: {m.get('code')}: {m.get('message')}",
                                  file=sys.stderr)
                            return 2
                        if m.get("type") == "hello":
                            retry = 0.5
                            if live is not None:
                                live.update(_table(rows, spec, "live"))
                            continue
                        if m.get("type") == "tap":
                            last_id = m["id"]
                        seen += 1
                        if plain:
                            print(orjson.dumps(m).decode(), flush=True)
                        else:
                            rows.appendleft(m)
                            assert live is not None
                            live.update(_table(rows, spec, "live"))
                        if max_messages and seen >= max_messages:
                            return 0
            except InvalidStatus as exc:
                print(f"citycard watch: refused: {exc}", file=sys.stderr)
                return 2
            except (OSError, ConnectionClosed, TimeoutError):
                pass
            if live is not None:
                live.update(_table(rows, spec, f"reconnecting in {retry:.1f} s"))
            await anyio.sleep(retry)
            retry = min(MAX_RETRY_S, retry * 2)
    finally:
        if live is not None:
            live.stop()
