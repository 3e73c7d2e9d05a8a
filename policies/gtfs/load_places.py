"""Loading where a leg happens: routes and their networks, stops and their areas.

This module owns routes.txt (route -> network_id), networks.txt and route_networks.txt (the
newer way to say the same), stops.txt (which stops exist, their parent stations), areas.txt and
stop_areas.txt (stop -> areas, a station's areas applying to its platforms too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from policies.gtfs.errors import FeedError
from policies.gtfs.table import Table


@dataclass(frozen=True, slots=True)
class Places:
    route_network: Mapping[str, str | None]
    networks: frozenset[str]
    stops: frozenset[str]
    stop_areas: Mapping[str, frozenset[str]]
    areas: frozenset[str]


def load_places(
    routes: Table,
    networks_txt: Table | None,
    route_networks_txt: Table | None,
    stops_txt: Table,
    areas_txt: Table | None,
    stop_areas_txt: Table | None,
) -> Places:
    route_network = _load_routes(routes)
    networks = {n for n in route_network.values() if n is not None}
    if networks_txt is not None:
        networks_txt.require_columns("network_id")
        for row in networks_txt.rows:
            networks.add(row.require("network_id"))
    if route_networks_txt is not None:
        route_networks_txt.require_columns("network_id", "route_id")
        for row in route_networks_txt.rows:
            network = row.require("network_id")
            route = row.require("route_id")
            if networks_txt is not None and network not in networks:
                raise row.error("network_id", f'"{network}" is not a network_id of networks.txt')
            if route not in route_network:
                raise row.error("route_id", f'"{route}" is not a route_id of routes.txt')
            current = route_network[route]
            if current is not None and current != network:
                raise row.error(
                    "route_id", f'"{route}" is already in network "{current}"; a route has one'
                )
            route_network[route] = network
            networks.add(network)
    stops, parents = _load_stops(stops_txt)
    areas, stop_areas = _load_areas(areas_txt, stop_areas_txt, stops, parents)
    return Places(route_network, frozenset(networks), frozenset(stops), stop_areas, areas)


def _load_routes(table: Table) -> dict[str, str | None]:
    table.require_columns("route_id")
    out: dict[str, str | None] = {}
    for row in table.rows:
        route = row.require("route_id")
        if route in out:
            raise row.error("route_id", f'"{route}" appears twice')
        out[route] = row.get("network_id") or None
    return out


def _load_stops(table: Table) -> tuple[set[str], dict[str, str]]:
    table.require_columns("stop_id")
    stops: set[str] = set()
    parents: dict[str, str] = {}
    for row in table.rows:
        stop = row.require("stop_id")
        if stop in stops:
            raise row.error("stop_id", f'"{stop}" appears twice')
        stops.add(stop)
        parent = row.get("parent_station")
        if parent:
            parents[stop] = parent
    return stops, parents


def _load_areas(
    areas_txt: Table | None,
    stop_areas_txt: Table | None,
    stops: set[str],
    parents: Mapping[str, str],
) -> tuple[frozenset[str], Mapping[str, frozenset[str]]]:
    areas: set[str] = set()
    if areas_txt is not None:
        areas_txt.require_columns("area_id")
        for row in areas_txt.rows:
            areas.add(row.require("area_id"))
    direct: dict[str, set[str]] = {}
    if stop_areas_txt is not None:
        if areas_txt is None:
            raise FeedError("stop_areas.txt", None, None, "needs areas.txt, which is missing")
        stop_areas_txt.require_columns("area_id", "stop_id")
        for row in stop_areas_txt.rows:
            area = row.require("area_id")
            stop = row.require("stop_id")
            if area not in areas:
                raise row.error("area_id", f'"{area}" is not an area_id of areas.txt')
            if stop not in stops:
                raise row.error("stop_id", f'"{stop}" is not a stop_id of stops.txt')
            direct.setdefault(stop, set()).add(area)
    stop_areas: dict[str, frozenset[str]] = {}
    for stop in stops:
        found = set(direct.get(stop, ()))
        parent = parents.get(stop)
        if parent is not None:
            found |= direct.get(parent, set())
        if found:
            stop_areas[stop] = frozenset(found)
    return frozenset(areas), stop_areas
