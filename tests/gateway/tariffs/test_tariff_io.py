"""Tariff files: loading (with the GTFS feed they name), refusing bad ones with the file named,
and `TariffHolder.reload()`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.tariffs.holder import TariffHolder, load_tariff
from gateway.tariffs.tariff_io import TariffError, load_tariff_file
from policies import default_tariff

REPO = Path(__file__).resolve().parents[3]
CITY = REPO / "tariffs" / "city-2026.json"
CTRAN_DIR = REPO / "tests" / "data" / "gtfs" / "ctran-fares-v2"


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path


def city(tmp_path: Path, **changes: Any) -> Path:
    """A copy of the shipped city tariff (and its feed) in `tmp_path`, with top-level changes."""
    shutil.copytree(REPO / "tariffs" / "gtfs", tmp_path / "gtfs", dirs_exist_ok=True)
    data = orjson.loads(CITY.read_bytes())
    return write(tmp_path / "tariff.json", {**data, **changes})


def test_the_shipped_tariff_loads_with_its_feed() -> None:
    t = load_tariff_file(CITY)
    assert t.version == "city-2026.2"
    assert t.transit.feed is not None and t.transit.feed_ref == "gtfs/ctran-fares-v2"
    assert t.transit.timezone == "America/Los_Angeles"


def test_feed_path_is_relative_to_the_tariff_file(tmp_path: Path) -> None:
    data = orjson.loads(CITY.read_bytes())
    data["transit"]["gtfs"]["feed"] = str(CTRAN_DIR)  # absolute paths work too
    t = load_tariff_file(write(tmp_path / "abs.json", data))
    assert t.transit.feed is not None and t.transit.feed.name == "ctran-fares-v2"


def test_a_v1_file_without_transit_still_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "v1.json", default_tariff().to_dict())
    assert load_tariff_file(path) == default_tariff()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=""), r"tariff\.json: tariff field version"),
        (lambda d: d["transit"]["gtfs"].update(feed="nowhere"), "transit.gtfs.feed 'nowhere'"),
        (lambda d: d["transit"]["caps"][0].update(kind="yearly"), r"caps\[0\]\.kind"),
        (lambda d: d["transit"].update(currency="EUR"), "unknown field.*currency"),
        (lambda d: d.update(currency="EUR"), "prices in USD, the tariff in EUR"),
    ],
)
def test_invalid_files_are_refused_with_the_file_named(
    tmp_path: Path, mutate: Any, message: str
) -> None:
    path = city(tmp_path)
    data = orjson.loads(path.read_bytes())
    mutate(data)
    write(path, data)
    with pytest.raises(TariffError, match=message):
        load_tariff_file(path)


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(TariffError, match="cannot read"):
        load_tariff_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TariffError, match="not valid JSON"):
        load_tariff_file(bad)
    path = city(tmp_path)
    (tmp_path / "gtfs" / "ctran-fares-v2" / "fare_products.txt").write_text(
        "fare_product_id,amount,currency\nX,abc,USD\n"
    )
    with pytest.raises(TariffError, match=r"fare_products\.txt line 2"):
        load_tariff_file(path)


def test_reload_swaps_a_valid_tariff_and_keeps_the_old_one_otherwise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = city(tmp_path)
    holder = TariffHolder(load_tariff(path), path)
    before = holder.get()
    assert before.version == "city-2026.2"
    write(path, {**orjson.loads(path.read_bytes()), "version": "city-2026.3"})
    assert holder.reload().version == "city-2026.3"
    assert holder.get().version == "city-2026.3"
    # An invalid new file is refused, logged, and the tariff in force stays.
    write(path, {**orjson.loads(path.read_bytes()), "version": "", "max_topup": -1})
    with pytest.raises(TariffError):
        holder.reload()
    assert holder.get().version == "city-2026.3"
    assert "tariff reload refused, keeping city-2026.3" in caplog.text
    with pytest.raises(TariffError, match="no tariff file"):
        TariffHolder(default_tariff()).reload()
