"""Hypothesis strategies shared by the property and state-machine tests of the pure core.

Gates, networks and times are drawn from deliberately small pools so that repeats inside the
double-tap window, exact window edges and unknown networks come up often instead of never.
"""

from __future__ import annotations

from hypothesis import strategies as st

from policies import MAX_RECENT_TAPS, CardState, Command, FareTap, Purchase, Tariff, TopUp

KNOWN_NETWORKS = ("METRO", "BUS", "TRAM")
NETWORKS = (*KNOWN_NETWORKS, "FERRY")  # FERRY is in no tariff below
GATES = ("gate-1", "gate-2", "gate-3")
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

ids = st.sampled_from(["term-1", "term-2", "till-9", "kiosk-3"])
operators = st.sampled_from(["metro-op", "bus-op", "city"])
gates = st.sampled_from(GATES)
networks = st.sampled_from(NETWORKS)

# Mostly ints around the interesting limits, sometimes the garbage a buggy terminal might send.
amounts: st.SearchStrategy[object] = st.one_of(
    st.integers(-1_000, 60_000),
    st.sampled_from([0, -1, 1, 20_000, 20_001, 50_000, 10**30]),
    st.sampled_from([True, False, 1.5, "100", None]),
)

fare_taps = st.builds(FareTap, ids, operators, networks, gates)
purchases = st.builds(Purchase, ids, operators, amounts, st.sampled_from(["bakery", "kiosk"]))
topups = st.builds(TopUp, ids, operators, amounts)
commands: st.SearchStrategy[Command] = st.one_of(fare_taps, purchases, topups)

times = st.integers(BASE_MS - 200_000, BASE_MS + 200_000)
# Small steps, including 0 and the default window's edge, occasionally a clock going back.
time_steps = st.one_of(
    st.integers(0, 130_000), st.sampled_from([0, 59_999, 60_000, 60_001]), st.integers(-5_000, 0)
)

recent_taps = st.lists(st.tuples(gates, times), max_size=MAX_RECENT_TAPS).map(tuple)

card_states = st.builds(
    CardState,
    card_id=st.sampled_from(["card-1", "card-2", "c:3.x_y-z"]),
    balance=st.integers(0, 60_000),
    status=st.sampled_from(["active", "active", "active", "blocked"]),
    category=st.sampled_from(["adult", "child", "senior"]),
    recent_taps=recent_taps,
)
maybe_card_states = st.one_of(st.none(), card_states)

tariffs = st.builds(
    Tariff,
    version=st.sampled_from(["city-2026.1", "test-x"]),
    currency=st.sampled_from(["EUR", "SEK"]),
    network_fares=st.dictionaries(
        st.sampled_from(KNOWN_NETWORKS), st.integers(0, 1_000), min_size=0, max_size=3
    ),
    double_tap_window_ms=st.sampled_from([0, 1, 30_000, 60_000, 120_000]),
    max_balance=st.integers(0, 60_000),
    max_purchase=st.integers(0, 30_000),
    max_topup=st.integers(0, 30_000),
)
