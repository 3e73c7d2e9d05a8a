"""`RedisStore`: the `Store` on Redis, with group commit. asyncio only (redis.asyncio).

Key layout (docs/internals.md; the hash tags keep every card-level write in one cluster slot):

    {cc:sNN}:card:<card>               hash  state, ver
    {cc:sNN}:tap:<terminal>/<tap_id>   string, the tap record, TTL TAP_RECORD_TTL_S
    {cc:sNN}:journal                   stream, XADD MAXLEN ~ JOURNAL_MAXLEN_PER_SHARD
    {cc:t:<terminal>}                  hash  terminal record fields + last_seq
    {cc:t:<terminal>}:recent           list  "tap_id card tap_hash", newest first

with NN = crc32(card) % NUM_SHARDS (two digits; fixed forever, see gateway.store).

Group commit: `commit()` encodes its write into two EVALSHA commands (the card-slot commit script
and the terminal-slot progress script), queues them and awaits a future. One committer task sends
everything queued (up to `max_batch` writes) as one pipeline, resolves the futures from the replies
and immediately takes the next batch, so batches form while the previous round trip is in flight.
The committer owns a dedicated lean connection (`gateway.store.redis_pipe`: replies parsed by
hiredis in the protocol callback, no coroutine per reply); each batch as a whole is bounded by
`socket_timeout`. Card loads are group-fetched the same way on a second connection. A connection
error or timeout fails the whole batch with `StoreUnavailable` (the write may or may not have been
applied; a retry of the tap is deduplicated by the commit script). NOSCRIPT (Redis restarted or
SCRIPT FLUSH) reloads the scripts and resends just the refused commands, which Redis did not run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import anyio
import hiredis
import redis.exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from actors.card_store import (
    CardRecord,
    CardWrite,
    CommitResult,
    StoreError,
    StoreOverloaded,
    StoreUnavailable,
)
from actors.incidents import IncidentLog
from gateway.metrics import LatencyHistogram
from gateway.store.interface import (
    JOURNAL_MAXLEN_PER_SHARD,
    NUM_SHARDS,
    RECENT_TAPS_PER_TERMINAL,
    TAP_RECORD_TTL_S,
    TerminalProgress,
    TerminalRecord,
    TerminalStatus,
    check_journal_count,
    journal_id,
    parse_journal_id,
    shard_of,
)
from gateway.store.redis_pipe import RedisPipe, resp_command
from gateway.store.redis_pipe import resp_bulk as _bulk

log = logging.getLogger(__name__)

#: Writes queued and not yet sent; beyond this `commit` raises StoreOverloaded.
MAX_PENDING_WRITES: Final = 10_000
#: Card loads (actor activations) waiting for the loader's next round trip; more are refused.
MAX_PENDING_LOADS: Final = 10_000
#: Writes per pipeline round trip.
MAX_BATCH: Final = 512
#: A write or card load still unsent after waiting this long (Redis slow or away) is refused with
#: StoreUnavailable instead of being sent: it was never applied, and the tap it belongs to ends
#: within a bounded time even though nothing upstream times it out.
MAX_QUEUE_WAIT_S: Final = 2.0

# KEYS: card hash, tap record, journal stream.
# ARGV: expected ver, has new state ('1'/'0'), new state, tap record, ttl s, journal maxlen,
#       card, terminal, tap id, then journal field/value pairs.
# Reply: {0, ver} ok | {1, ver, record} duplicate | {2, ver} conflict.
COMMIT_LUA: Final = """
local rec = redis.call('GET', KEYS[2])
local ver = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if rec then return {1, ver, rec} end
if ver ~= tonumber(ARGV[1]) then return {2, ver} end
if ARGV[2] == '1' then
  ver = ver + 1
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'ver', ver)
end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'op', 'commit', 'card', ARGV[7],
           'ver', ver, 'terminal', ARGV[8], 'tap', ARGV[9], unpack(ARGV, 10))
return {0, ver}
"""

# KEYS: terminal hash, recent list. ARGV: seq, "tap_id card tap_hash", max recent entries.
PROGRESS_LUA: Final = """
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'last_seq') or '0') then
  redis.call('HSET', KEYS[1], 'last_seq', ARGV[1])
end
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[2] then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
end
return 0
"""

# KEYS: card hash, journal stream. ARGV: state, journal maxlen, card.
PUT_CARD_LUA: Final = """
local ver = redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('HSET', KEYS[1], 'state', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'op', 'put_card', 'card', ARGV[3],
           'ver', ver, 'state', ARGV[1])
return ver
"""

_TERMINAL_FIELDS: Final = ("public_key_hex", "kind", "operator", "network", "location", "status")
_CARD_KEY_PREFIX_LEN: Final = len("{cc:s00}:card:")
_SCAN_CARDS: Final = b"{cc:s[0-9][0-9]}:card:*"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _sha(script: str) -> bytes:
    return hashlib.sha1(script.encode()).hexdigest().encode()


_COMMIT_SHA: Final = _sha(COMMIT_LUA)
_PROGRESS_SHA: Final = _sha(PROGRESS_LUA)
# Pre-encoded pieces of the two hot-path commands.
_SHARD_PREFIX: Final = tuple(b"{cc:s%02d}" % s for s in range(NUM_SHARDS))
_JOURNAL_BULK: Final = tuple(_bulk(p + b":journal") for p in _SHARD_PREFIX)
_COMMIT_HEAD: Final = _bulk(b"EVALSHA") + _bulk(_COMMIT_SHA) + _bulk(b"3")
_COMMIT_CONST: Final = _bulk(b"%d" % TAP_RECORD_TTL_S) + _bulk(b"%d" % JOURNAL_MAXLEN_PER_SHARD)
_PROGRESS_HEAD: Final = b"*8\r\n" + _bulk(b"EVALSHA") + _bulk(_PROGRESS_SHA) + _bulk(b"2")
_MAX_RECENT_BULK: Final = _bulk(b"%d" % RECENT_TAPS_PER_TERMINAL)
# The EVALSHA of the commit script up to the journal fields (see COMMIT_LUA for the arguments).
_COMMIT_FMT: Final = (
    b"*%d\r\n"
    + _COMMIT_HEAD
    + b"$%d\r\n%b:card:%b\r\n"  # KEYS[1] card hash
    + b"$%d\r\n%b:tap:%b/%b\r\n"  # KEYS[2] tap record ("/" is in no identifier)
    + b"%b"  # KEYS[3] journal stream (pre-encoded)
    + b"$%d\r\n%b\r\n"  # expected version
    + b"$1\r\n%b\r\n$%d\r\n%b\r\n"  # has new state, new state
    + b"$%d\r\n%b\r\n"  # tap record
    + _COMMIT_CONST  # ttl, journal maxlen
    + b"$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"  # card, terminal, tap id
)
_PROGRESS_FMT: Final = (
    _PROGRESS_HEAD
    + b"$%d\r\n{cc:t:%b}\r\n$%d\r\n{cc:t:%b}:recent\r\n"  # KEYS
    + b"$%d\r\n%b\r\n$%d\r\n%b %b %b\r\n"  # seq, "tap_id card tap_hash"
    + _MAX_RECENT_BULK
)
_LOAD_SCRIPTS: Final = (
    resp_command(b"SCRIPT", b"LOAD", COMMIT_LUA.encode()),
    resp_command(b"SCRIPT", b"LOAD", PROGRESS_LUA.encode()),
)


def card_key(card: str) -> str:
    return f"{{cc:s{shard_of(card):02d}}}:card:{card}"


def journal_key(shard: int) -> str:
    return f"{{cc:s{shard:02d}}}:journal"


def terminal_key(terminal_id: str) -> str:
    return f"{{cc:t:{terminal_id}}}"


_FIELD_BULKS: dict[str, bytes] = {}


def _field_bulk(name: str) -> bytes:
    """Journal field names repeat from write to write: keep their encoding (bounded)."""
    b = _FIELD_BULKS.get(name)
    if b is None:
        b = _bulk(name.encode())
        if len(_FIELD_BULKS) < 1024:
            _FIELD_BULKS[name] = b
    return b


def encode_write(w: CardWrite) -> tuple[bytes, bytes]:
    """The RESP bytes of the commit and progress EVALSHAs of one write (the hot path: one
    %-format per command plus one per journal field)."""
    card = w.card.encode()
    term = w.terminal_id.encode()
    tap = w.tap_id.encode()
    shard = zlib.crc32(card) % NUM_SHARDS
    prefix = _SHARD_PREFIX[shard]
    ver = b"%d" % w.expected_version
    state = w.new_state
    record = w.tap_record
    journal = w.journal
    fields = []
    for k, v in journal.items():
        vb = v.encode() if isinstance(v, str) else b"%d" % v
        fields.append(_field_bulk(k))
        fields.append(b"$%d\r\n%b\r\n" % (len(vb), vb))
    commit = _COMMIT_FMT % (
        15 + 2 * len(journal),
        len(card) + 14,
        prefix,
        card,
        len(term) + len(tap) + 14,
        prefix,
        term,
        tap,
        _JOURNAL_BULK[shard],
        len(ver),
        ver,
        b"0" if state is None else b"1",
        0 if state is None else len(state),
        state or b"",
        len(record),
        record,
        len(card),
        card,
        len(term),
        term,
        len(tap),
        tap,
    )
    hsh = w.tap_hash.encode()
    seq = b"%d" % w.seq
    progress = _PROGRESS_FMT % (
        len(term) + 7,
        term,
        len(term) + 14,
        term,
        len(seq),
        seq,
        len(tap) + len(card) + len(hsh) + 2,
        tap,
        card,
        hsh,
    )
    return commit + b"".join(fields), progress


def _decode_commit(reply: Any) -> CommitResult:
    code = reply[0]
    if code == 0:
        return CommitResult("ok", reply[1])
    if code == 1:
        return CommitResult("duplicate", reply[1], reply[2])
    if code == 2:
        return CommitResult("conflict", reply[1])
    raise StoreError(f"unexpected commit reply {reply!r}")


@dataclass(slots=True)
class StoreStats:
    batches: int = 0  # pipelines sent by the committer (including failed ones)
    writes: int = 0  # writes in those pipelines
    max_batch: int = 0
    failed_batches: int = 0  # failed as a whole (StoreUnavailable)
    write_errors: int = 0  # single writes failed by Redis (StoreError)
    progress_errors: int = 0  # progress script errors (the commit itself stood)
    script_reloads: int = 0  # NOSCRIPT recoveries
    overloaded: int = 0  # commits and loads refused with StoreOverloaded
    expired: int = 0  # commits and loads refused after MAX_QUEUE_WAIT_S unsent
    load_batches: int = 0  # pipelines sent by the loader
    loads: int = 0  # card loads in those pipelines

    @property
    def mean_batch(self) -> float:
        return self.writes / self.batches if self.batches else 0.0


# (commit command, progress command, future, loop time queued)
_Pending = tuple[bytes, bytes, "asyncio.Future[CommitResult]", float]
# (HMGET command, card, future, loop time queued)
_Load = tuple[bytes, str, "asyncio.Future[CardRecord | None]", float]
_Queued = TypeVar("_Queued", _Pending, _Load)
_UNAVAILABLE_ERRORS: Final = (rexc.ConnectionError, rexc.TimeoutError, TimeoutError, OSError)
#: Error replies that mean "not now" rather than "never": the server is loading its AOF, is
#: busy with a long script, lost its primary, is read-only after a failover, or refuses writes
#: it cannot persist (MISCONF) or hold (OOM). Nothing was applied; the terminal retries.
TRANSIENT_REPLY_PREFIXES: Final = (
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "READONLY",
    "MISCONF",
    "OOM",
    "NOREPLICAS",
)


def is_transient_reply(reply: object) -> bool:
    """Whether an error reply (hiredis.ReplyError or redis-py ResponseError) is transient."""
    return str(reply).startswith(TRANSIENT_REPLY_PREFIXES)


def _reply_error(what: str, reply: object) -> StoreError:
    """The store error an error reply to one command becomes."""
    text = f"{what}: {_describe(reply)}"  # type: ignore[arg-type]
    return StoreUnavailable(text) if is_transient_reply(reply) else StoreError(text)


@contextmanager
def _translate_errors(what: str) -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(f"{what}: {_describe(exc)}") from exc
    except rexc.RedisError as exc:
        raise _reply_error(what, exc) from exc


def _is_noscript(reply: Any) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")


#: Pause between two tries while Redis is not ready at start (seconds).
READY_RETRY_S: Final = 0.25


async def _load_scripts(client: Redis, socket_timeout: float, ready_wait_s: float) -> None:
    """Load the store's scripts, retrying for up to `ready_wait_s` s while Redis is not ready
    (one log line when waiting starts)."""
    deadline = time.monotonic() + ready_wait_s
    waiting = False
    while True:
        try:
            with _translate_errors("loading scripts"), anyio.fail_after(socket_timeout):
                for script in (COMMIT_LUA, PROGRESS_LUA):
                    await client.script_load(script)
        except (StoreUnavailable, TimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise StoreUnavailable(f"Redis not ready: {exc}") from exc
            if not waiting:
                waiting = True
                log.warning("Redis not ready (%s); waiting up to %.0f s", exc, ready_wait_s)
            await anyio.sleep(READY_RETRY_S)
            continue
        if waiting:
            log.warning("Redis ready")
        return


class RedisStore:
    """The Redis `Store`. Create it with `async with RedisStore.connect(url) as store:`."""

    def __init__(
        self,
        client: Redis,
        commit_pipe: RedisPipe,
        load_pipe: RedisPipe,
        *,
        max_pending: int,
        max_batch: int,
    ) -> None:
        self._r = client
        self._pipe = commit_pipe
        self._load_pipe = load_pipe
        self._loads: deque[_Load] = deque()
        self._load_wakeup = asyncio.Event()
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._pending: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()  # set when writes are pending (or on close)
        self._closing = False
        self._stopped = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._put_card = client.register_script(PUT_CARD_LUA)
        self.stats = StoreStats()
        self._commit_log = IncidentLog(log, "Redis commits")
        self._progress_log = IncidentLog(log, "terminal progress script")
        #: Round trip of each commit pipeline (successful ones), for the metrics.
        self.write_latency = LatencyHistogram()

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        *,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        max_connections: int = 16,
        max_pending: int = MAX_PENDING_WRITES,
        max_batch: int = MAX_BATCH,
        close_timeout: float = 5.0,
        ready_wait_s: float = 0.0,
    ) -> AsyncIterator[RedisStore]:
        """Connect, load the scripts, run the committer; on exit send what is queued (for up to
        `close_timeout` s), fail the rest with StoreUnavailable and close the connections.

        `ready_wait_s`: how long to keep trying while Redis is unreachable or still loading its
        AOF (a gateway restarted right after Redis waits for it instead of failing to start);
        0: fail at once with StoreUnavailable.

        `socket_timeout` bounds every read-path call and every commit batch round trip;
        `max_connections` bounds the pool of the read path (the committer has its own
        connection)."""
        pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=False,
        )
        client = Redis(connection_pool=pool)
        # The committer and the loader each own one lean connection (gateway.store.redis_pipe): a
        # batch's replies arrive in order on it, each batch as a whole is bounded by
        # `socket_timeout`, and no pool checkout sits on the tap path.
        commit_pipe = RedisPipe(url, timeout=socket_timeout, connect_timeout=connect_timeout)
        load_pipe = RedisPipe(url, timeout=socket_timeout, connect_timeout=connect_timeout)
        try:
            store = cls(
                client,
                commit_pipe,
                load_pipe,
                max_pending=max_pending,
                max_batch=max_batch,
            )
            await _load_scripts(client, socket_timeout, ready_wait_s)
            # A plain asyncio task rather than a task group, so that an exception in the body
            # reaches the caller as itself and not wrapped in an ExceptionGroup.
            committer = asyncio.create_task(store._committer(), name="RedisStore.committer")
            loader = asyncio.create_task(store._loader(), name="RedisStore.loader")
            try:
                yield store
            finally:
                store._closing = True
                store._wakeup.set()
                store._load_wakeup.set()
                with anyio.move_on_after(close_timeout, shield=True):
                    await store._stopped.wait()
                committer.cancel()
                loader.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(committer, loader, return_exceptions=True)
        finally:
            commit_pipe.close()
            load_pipe.close()
            with anyio.CancelScope(shield=True):
                await client.aclose()
                await pool.disconnect()

    # --- group commit ---------------------------------------------------------------------

    async def commit(self, write: CardWrite) -> CommitResult:
        if self._closing or self._stopped.is_set():
            raise StoreUnavailable("store is closed")
        if len(self._pending) >= self._max_pending:
            self.stats.overloaded += 1
            raise StoreOverloaded(f"{len(self._pending)} writes pending")
        commit_cmd, progress_cmd = encode_write(write)
        fut: asyncio.Future[CommitResult] = self._loop.create_future()
        self._pending.append((commit_cmd, progress_cmd, fut, self._loop.time()))
        self._wakeup.set()
        return await fut

    async def _committer(self) -> None:
        pending = self._pending
        try:
            while True:
                if not pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = self._take_batch(pending, "write")
                if batch:
                    await self._run_batch(batch)
        finally:
            exc = StoreUnavailable("store closed before the write was sent")
            for _, _, fut, _ in pending:
                if not fut.done():
                    fut.set_exception(exc)
            pending.clear()
            self._stopped.set()

    def _take_batch(self, queue: deque[_Queued], what: str) -> list[_Queued]:
        """Up to `max_batch` queued items to send, skipping those whose caller was cancelled
        and refusing those queued longer than MAX_QUEUE_WAIT_S (never sent, so never applied)."""
        batch: list[_Queued] = []
        stale_before = self._loop.time() - MAX_QUEUE_WAIT_S
        while queue and len(batch) < self._max_batch:
            item = queue.popleft()
            fut = item[2]
            if fut.done():
                continue
            if item[3] < stale_before:
                self.stats.expired += 1
                fut.set_exception(
                    StoreUnavailable(f"{what} not sent within {MAX_QUEUE_WAIT_S} s: Redis too slow")
                )
                continue
            batch.append(item)
        return batch

    async def _run_batch(self, batch: list[_Pending]) -> None:
        pipe = self._pipe
        stats = self.stats
        stats.batches += 1
        stats.writes += len(batch)
        stats.max_batch = max(stats.max_batch, len(batch))
        cmds: list[bytes] = []
        for commit_cmd, progress_cmd, _, _ in batch:
            cmds.append(commit_cmd)
            cmds.append(progress_cmd)
        # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
        started = time.perf_counter()
        try:
            replies = await pipe.round_trip(cmds)
            if any(map(_is_noscript, replies)):
                await self._reload_and_resend(pipe, cmds, replies)
            self.write_latency.observe(time.perf_counter() - started)
        except Exception as exc:
            stats.failed_batches += 1
            pipe.close()  # unknown state: start afresh next time
            err: StoreError
            if isinstance(exc, _UNAVAILABLE_ERRORS):
                err = StoreUnavailable(f"commit batch failed: {_describe(exc)}")
            else:
                err = StoreError(f"commit batch failed: {_describe(exc)}")
            self._commit_log.failed(exc, traceback=not isinstance(exc, _UNAVAILABLE_ERRORS))
            for _, _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        except BaseException:  # cancelled (closing): the outcome of this batch is unknown
            closed = StoreUnavailable("store closed during the commit round trip")
            for _, _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(closed)
            raise
        for i, (_, _, fut, _) in enumerate(batch):
            reply = replies[2 * i]
            progress = replies[2 * i + 1]
            if isinstance(progress, hiredis.ReplyError):
                stats.progress_errors += 1
                self._progress_log.failed(progress, traceback=False)
            else:
                self._progress_log.succeeded()
            if fut.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                stats.write_errors += 1
                self._commit_log.failed(reply, traceback=False)
                fut.set_exception(_reply_error("commit script failed", reply))
                continue
            self._commit_log.succeeded()
            try:
                fut.set_result(_decode_commit(reply))
            except Exception as exc:
                stats.write_errors += 1
                fut.set_exception(StoreError(_describe(exc)))

    async def _reload_and_resend(
        self, pipe: RedisPipe, cmds: list[bytes], replies: list[Any]
    ) -> None:
        """Load the scripts and resend the commands refused with NOSCRIPT, in place."""
        for _ in range(3):
            refused = [i for i, r in enumerate(replies) if _is_noscript(r)]
            if not refused:
                return
            self.stats.script_reloads += 1
            log.warning("NOSCRIPT from Redis: reloading scripts (%d commands)", len(refused))
            again = await pipe.round_trip([*_LOAD_SCRIPTS, *(cmds[i] for i in refused)])
            for loaded in again[:2]:
                if isinstance(loaded, hiredis.ReplyError):
                    raise StoreError(f"SCRIPT LOAD refused: {loaded}")
            for i, r in zip(refused, again[2:], strict=True):
                replies[i] = r

    # --- cards ---------------------------------------------------------------------------

    async def load_card(self, card: str) -> CardRecord | None:
        """Group-fetched like commits: every load waiting while the previous round trip was in
        flight goes out in the next one, so a burst of card activations costs one round trip."""
        if self._closing or self._stopped.is_set():
            raise StoreUnavailable("store is closed")
        if len(self._loads) >= MAX_PENDING_LOADS:
            self.stats.overloaded += 1
            raise StoreOverloaded(f"{len(self._loads)} card loads pending")
        cmd = resp_command(b"HMGET", card_key(card).encode(), b"state", b"ver")
        fut: asyncio.Future[CardRecord | None] = self._loop.create_future()
        self._loads.append((cmd, card, fut, self._loop.time()))
        self._load_wakeup.set()
        return await fut

    async def _loader(self) -> None:
        loads = self._loads
        try:
            while True:
                if not loads:
                    if self._closing:
                        return
                    self._load_wakeup.clear()
                    await self._load_wakeup.wait()
                    continue
                batch = self._take_batch(loads, "card load")
                if batch:
                    await self._run_loads(batch)
        finally:
            exc = StoreUnavailable("store closed before the load was sent")
            for _, _, fut, _ in loads:
                if not fut.done():
                    fut.set_exception(exc)
            loads.clear()

    async def _run_loads(self, batch: list[_Load]) -> None:
        self.stats.load_batches += 1
        self.stats.loads += len(batch)
        try:
            replies = await self._load_pipe.round_trip([cmd for cmd, _, _, _ in batch])
        except Exception as exc:
            self._load_pipe.close()
            err: StoreError = (
                StoreUnavailable(f"load batch failed: {_describe(exc)}")
                if isinstance(exc, _UNAVAILABLE_ERRORS)
                else StoreError(f"load batch failed: {_describe(exc)}")
            )
            for _, _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        except BaseException:
            closed = StoreUnavailable("store closed during the load round trip")
            for _, _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(closed)
            raise
        for (_, card, fut, _), reply in zip(batch, replies, strict=True):
            if fut.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(_reply_error("load_card", reply))
                continue
            state, ver = reply
            fut.set_result(None if state is None else CardRecord(card, state, int(ver or 0)))

    async def put_card(self, card: str, state: bytes) -> None:
        with _translate_errors("put_card"):
            await self._put_card(
                keys=[card_key(card), journal_key(shard_of(card))],
                args=[state, JOURNAL_MAXLEN_PER_SHARD, card],
            )

    async def all_cards(self) -> AsyncIterator[CardRecord]:
        keys: list[bytes] = []
        with _translate_errors("all_cards"):
            async for key in self._r.scan_iter(match=_SCAN_CARDS, count=1000, _type="HASH"):
                keys.append(key)
                if len(keys) >= 500:
                    for rec in await self._fetch_cards(keys):
                        yield rec
                    keys = []
            for rec in await self._fetch_cards(keys):
                yield rec

    async def _fetch_cards(self, keys: list[bytes]) -> list[CardRecord]:
        if not keys:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, ["state", "ver"])
            rows = await pipe.execute()
        return [
            CardRecord(key[_CARD_KEY_PREFIX_LEN:].decode(), state, int(ver or 0))
            for key, (state, ver) in zip(keys, rows, strict=True)
            if state is not None
        ]

    # --- terminals -----------------------------------------------------------------------

    async def get_terminal(self, terminal_id: str) -> TerminalRecord | None:
        with _translate_errors("get_terminal"):
            raw: Any = await self._r.hgetall(terminal_key(terminal_id))
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        if "public_key_hex" not in fields:
            return None
        status = fields.get("status", "")
        if status not in ("active", "revoked"):
            raise StoreError(f"terminal {terminal_id!r} has status {status!r}")
        st: TerminalStatus = "active" if status == "active" else "revoked"
        return TerminalRecord(
            terminal_id=terminal_id,
            public_key_hex=fields["public_key_hex"],
            kind=fields.get("kind", ""),
            operator=fields.get("operator", ""),
            network=fields.get("network", ""),
            location=fields.get("location", ""),
            status=st,
        )

    async def put_terminal(self, rec: TerminalRecord) -> None:
        mapping: Any = {name: getattr(rec, name) for name in _TERMINAL_FIELDS}
        with _translate_errors("put_terminal"):
            await self._r.hset(terminal_key(rec.terminal_id), mapping=mapping)

    async def terminal_progress(self, terminal_id: str) -> TerminalProgress:
        key = terminal_key(terminal_id)
        with _translate_errors("terminal_progress"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hget(key, "last_seq")
                pipe.lrange(key + ":recent", 0, -1)
                last_seq, recent = await pipe.execute()
        entries = []
        for raw in recent:
            tap_id, card, tap_hash = raw.decode().split(" ")
            entries.append((tap_id, card, tap_hash))
        return TerminalProgress(int(last_seq or 0), tuple(entries))

    # --- journal -------------------------------------------------------------------------

    async def ping(self, timeout_s: float = 1.0) -> bool:
        """Whether Redis answers PING within `timeout_s` (for readiness checks)."""
        with anyio.move_on_after(timeout_s):
            try:
                return bool(await self._r.ping())
            except (rexc.RedisError, OSError):
                return False
        return False

    async def read_journal(
        self, *, count: int, after: str | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Merges the 64 shard streams in (stream id, shard) order. Only entries from before the
        server's current millisecond are returned (TIME is read before the XRANGEs), so an entry
        appended later can never sort before the returned cursor. This assumes one Redis server
        whose clock does not step back; on a cluster read the shards per node instead."""
        check_journal_count(count)
        if count <= 0:
            return []
        a_ms, a_seq, a_shard = (0, 0, -1) if after is None else parse_journal_id(after)
        with _translate_errors("read_journal"):
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.time()
                for shard in range(NUM_SHARDS):
                    # exclusive of the cursor's id in shards up to the cursor's, inclusive after
                    lo = f"{a_ms}-{a_seq + 1}" if shard <= a_shard else f"{a_ms}-{a_seq}"
                    pipe.xrange(journal_key(shard), min=lo, max="+", count=count)
                now, *streams = await pipe.execute()
        now_ms = now[0] * 1000 + now[1] // 1000
        candidates: list[tuple[tuple[int, int, int], dict[bytes, bytes]]] = []
        for shard, entries in enumerate(streams):
            for sid, fields in entries:
                ms_b, _, seq_b = sid.partition(b"-")
                ms = int(ms_b)
                if ms >= now_ms:
                    break
                candidates.append(((ms, int(seq_b), shard), fields))
        candidates.sort(key=lambda c: c[0])
        return [
            (journal_id(*pos), {k.decode(): v.decode() for k, v in fields.items()})
            for pos, fields in candidates[:count]
        ]
