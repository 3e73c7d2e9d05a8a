"""IncidentLog: one line when failures start, a count at most every `repeat_s`, one line with
the total when a success ends the incident."""

from __future__ import annotations

import logging

import pytest

from actors.incidents import IncidentLog


def test_one_line_per_incident(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = IncidentLog(logging.getLogger("t"), "loads", repeat_s=60, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    log.succeeded()  # nothing to end
    for i in range(1_000):
        now[0] = i * 0.01
        log.failed(OSError("down"))
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None
    assert "loads failing: OSError: down" in caplog.records[0].getMessage()
    now[0] = 61.0
    log.failed(OSError("still down"), traceback=False)
    assert len(caplog.records) == 2 and "1001 failures so far" in caplog.messages[1]
    now[0] = 62.5
    log.succeeded()
    log.succeeded()
    assert caplog.messages[2] == "loads recovered after 62.5 s: 1001 failures in this incident"
    assert len(caplog.records) == 3 and not log.open and log.incidents == 1
    log.failed(OSError("again"), traceback=False)
    assert len(caplog.records) == 4 and log.incidents == 2 and caplog.records[3].exc_info is None
