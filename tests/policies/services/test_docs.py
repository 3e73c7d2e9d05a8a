"""docs/services.md stays true: its tariff example loads, its ops and reasons exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.wire import protocol as wire
from policies import reasons
from policies.services.commands import SERVICE_OPS
from policies.services.tariff import ServicesTariff

DOC = Path(__file__).resolve().parents[3] / "docs" / "services.md"


def test_tariff_example_loads() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The tariff section") :]
    example = re.search(r"```json\n(.*?)```", section, re.S)
    assert example is not None
    services = ServicesTariff.from_dict(json.loads(example.group(1)))
    assert services.parking["P-CENTRE"].lost_amount == 2_500


SERVICE_REASONS = (
    "service_not_offered",
    "unknown_facility",
    "unknown_venue",
    "unknown_material",
    "invalid_quantity",
    "implausible_quantity",
    "daily_limit",
    "outside_hours",
    "category_not_allowed",
    "parking_session_open",
    "no_parking_session",
    "duplicate_trip",
    "not_authorised",
    "insufficient_points",
)


def test_every_op_and_reason_is_documented_and_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    for op in SERVICE_OPS:
        assert f"`{op}`" in text and op in wire.OPS, op
    for code in SERVICE_REASONS:
        assert f"`{code}`" in text and code in reasons.REASONS, code
