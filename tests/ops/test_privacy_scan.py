"""`citycard privacy scan` finds clear card ids where a test planted them (a Redis key, a
hash field, a stream entry, the AOF, a log, an export) and nothing in a clean place."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis

from gateway.store.redis_server import RedisServer
from ops.privacy import ScanReport, scan_file, scan_redis, words

PLANTED = "c3-card-0019084"


def test_words_split_composite_keys() -> None:
    assert PLANTED in words("{cc:s47}:card:c3-card-0019084")
    assert PLANTED in words('"card":"c3-card-0019084",')
    assert PLANTED not in words("c3-card-00190845")  # a longer id is another id


def test_scan_finds_planted_ids_and_nothing_else(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("clean:key", "token-abc")
        client.set(f"{{cc:s47}}:card:{PLANTED}", "x")
        client.hset("h", mapping={"card": PLANTED})
        client.xadd("j", {"op": "commit", "card": PLANTED})
        client.rpush("l", "nothing", "here")
        time.sleep(1.1)  # everysec: the AOF has it
        ids = {PLANTED, "never-seen-1"}
        report = ScanReport()
        scan_redis(client, ids, report)
        assert report.found["redis keys"] == 1 and report.found["redis values"] == 2
        assert all("c3-" in e and "19084" not in e for e in report.examples["redis keys"])
        client.close()
    finally:
        server.stop()
    log = tmp_path / "gateway.log"
    log.write_text(f"tap t1 failed for {PLANTED}\nall fine\n")
    clean = tmp_path / "export.csv"
    clean.write_text("token,amount\nab12cd,250\n")
    rep = ScanReport()
    scan_file(log, "logs", {PLANTED}, rep)
    scan_file(clean, "exports", {PLANTED}, rep)
    assert (rep.found["logs"], rep.found["exports"]) == (1, 0)

    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(f"# simulator cards\n{PLANTED}\n")
    run = subprocess.run(
        [sys.executable, "-m", "ops.cli", "privacy", "scan", "--ids", str(ids_file),
         "--data-dir", str(tmp_path), "--file", str(clean)],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "aof: " in run.stdout and "logs: 1 clear ids" in run.stdout
    assert "exports: 0 clear ids" in run.stdout
    clean_only = subprocess.run(
        [sys.executable, "-m", "ops.cli", "privacy", "scan", "--ids", str(ids_file),
         "--file", str(clean)], capture_output=True, text=True, timeout=60)
    assert clean_only.returncode == 0 and "total: 0" in clean_only.stdout
