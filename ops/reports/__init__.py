"""Operator reports from the journal: the daily clearing report as CSV (`clearing.py`) and the
tap export following the TIDES `fare_transactions` table (`tides.py`), both over one local day
read with `journal.read_day`. `ops/export_cli.py` is their command line; `docs/reports.md`
describes the files."""
