"""Tariff and GTFS feed files read into the pure `policies.Tariff`, and the tariff in force."""
