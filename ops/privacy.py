"""`citycard privacy scan`: look for clear card identifiers where none should be.

Given the clear card ids to look for (`--ids FILE`, one per line: for instance the simulator's
cards, or a sample of issued card numbers), it scans every Redis key and value (strings,
hashes, lists, sets, sorted sets and streams, page by page), the Redis AOF files and the logs
under `--data-dir`, and any export files named with `--file`, and reports how many times and
where each kind of place holds one. Exit status 1 when anything is found.

Matching: every text is cut into identifier-like words twice, at any character outside the
identifier alphabet `A-Z a-z 0-9 . _ : -` and at any character outside `A-Z a-z 0-9 _ -`
(so that `card:c3-card-0019084` also yields `c3-card-0019084`), and each word is looked up in the
set of ids. Binary files (the AOF's RDB preamble) are read the same way, bytes as Latin-1.

This is issue 11's scanner. Card ids are not yet tokenised at the gateway's edge, so on a
system today it finds them (that is what it is for); once they are, it must find none.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import redis

#: Keys read per SCAN page, and stream entries / list items per page.
PAGE: Final = 1_000
#: Bytes of a file read at a time.
CHUNK: Final = 1 << 20
#: Examples kept per place.
EXAMPLES: Final = 5

_WIDE: Final = re.compile(r"[^A-Za-z0-9._:-]+")
_NARROW: Final = re.compile(r"[^A-Za-z0-9_-]+")


def words(text: str) -> set[str]:
    return set(_WIDE.split(text)) | set(_NARROW.split(text))


@dataclass
class ScanReport:
    found: Counter[str] = field(default_factory=Counter)
    scanned: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.found.values())

    def saw(self, place: str, text: str, ids: set[str], where: str) -> None:
        self.scanned[place] += 1
        hits = words(text) & ids
        if hits:
            self.found[place] += len(hits)
            ex = self.examples.setdefault(place, [])
            # The report itself must not print a clear id: mask them in the place too.
            for h in hits:
                where = where.replace(h, _masked(h))
            for h in sorted(hits)[: EXAMPLES - len(ex)]:
                ex.append(f"{where[:80]}: {_masked(h)}")

    def lines(self) -> list[str]:
        out = []
        for place in sorted(self.scanned):
            out.append(f"{place}: {self.found[place]} clear ids in {self.scanned[place]} items")
            out += [f"  e.g. {e}" for e in self.examples.get(place, [])]
        out.append(f"total: {self.total}")
        return out


def _masked(card: str) -> str:
    """Enough of an id to find it again, not enough to print a whole card number."""
    return card[:3] + "*" * max(0, len(card) - 5) + card[-2:] if len(card) > 5 else "*" * len(card)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def scan_redis(client: redis.Redis, ids: set[str], report: ScanReport) -> None:
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor=cursor, count=PAGE)  # type: ignore[misc]
        for raw_key in keys:
            key = _text(raw_key)
            report.saw("redis keys", key, ids, key)
            for value in _values(client, raw_key):
                report.saw("redis values", value, ids, key)
        if cursor == 0:
            return


def _values(client: redis.Redis, key: bytes) -> Iterator[str]:
    kind = _text(client.type(key))
    if kind == "string":
        yield _text(client.get(key))
    elif kind == "hash":
        for k, v in client.hscan_iter(key, count=PAGE):
            yield _text(k) + " " + _text(v)
    elif kind == "list":
        n = int(client.llen(key))  # type: ignore[arg-type]
        for start in range(0, n, PAGE):
            yield " ".join(map(_text, client.lrange(key, start, start + PAGE - 1)))  # type: ignore[arg-type]
    elif kind == "set":
        for member in client.sscan_iter(key, count=PAGE):
            yield _text(member)
    elif kind == "zset":
        for member, _score in client.zscan_iter(key, count=PAGE):
            yield _text(member)
    elif kind == "stream":
        after = "-"
        while True:
            entries = client.xrange(key, min=after, count=PAGE)
            if not entries:
                return
            for _entry_id, fields in entries:  # type: ignore[union-attr]
                yield " ".join(_text(k) + " " + _text(v) for k, v in fields.items())
            after = "(" + _text(entries[-1][0])  # type: ignore[index]


def scan_file(path: Path, place: str, ids: set[str], report: ScanReport) -> None:
    """Chunk by chunk, the last partial word carried over to the next chunk."""
    carry = ""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            text = carry + chunk.decode("latin-1")
            cut = max(text.rfind(" "), text.rfind("\n"))
            body, carry = (text[:cut], text[cut:]) if cut > 0 else (text, "")
            report.saw(place, body, ids, str(path.name))
    if carry:
        report.saw(place, carry, ids, str(path.name))


def data_dir_files(data_dir: Path) -> Iterator[tuple[str, Path]]:
    """(place, file) of the AOF files and logs under a gateway's data directory."""
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file():
            continue
        if "appendonlydir" in path.parts or path.suffix in (".aof", ".rdb"):
            yield "aof", path
        elif path.suffix == ".log":
            yield "logs", path


def read_ids(lines: Iterable[str]) -> set[str]:
    return {s for s in (line.strip() for line in lines) if s and not s.startswith("#")}


def privacy_command(args: argparse.Namespace) -> int:
    ids = read_ids(Path(args.ids).read_text(encoding="utf-8").splitlines())
    if not ids:
        print("citycard privacy scan: --ids names no card id", file=sys.stderr)
        return 2
    report = ScanReport()
    if args.redis_url:
        client = redis.Redis.from_url(args.redis_url)
        try:
            scan_redis(client, ids, report)
        finally:
            client.close()
    if args.data_dir is not None:
        for place, path in data_dir_files(Path(args.data_dir)):
            scan_file(path, place, ids, report)
    for name in args.file or ():
        scan_file(Path(name), "exports", ids, report)
    print("\n".join(report.lines()))
    return 1 if report.total else 0


def add_privacy_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("privacy", help="privacy tools: scan for clear card ids")
    psub = p.add_subparsers(dest="privacy_command", required=True)
    s = psub.add_parser(
        "scan",
        help="count clear card ids in Redis, the AOF, the logs and export files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--ids", required=True, help="file of clear card ids to look for")
    s.add_argument("--redis-url", default=None, help="the gateway's Redis (every key and value)")
    s.add_argument("--data-dir", type=Path, default=None,
                   help="a gateway's data directory: its AOF files and logs")
    s.add_argument("--file", action="append", help="an export or log file (repeatable)")
    s.set_defaults(func=privacy_command)
