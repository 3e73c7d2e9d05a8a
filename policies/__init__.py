"""The pure core of citycard: `decide(state, command, now_ms, tariff) -> Outcome`.

This package owns every money and fare rule and nothing else: no clock, no randomness, no I/O
(tests/policies/test_purity.py enforces it). The actors feed it a card's state, a command and
the time, persist the outcome, and sign the decision. docs/internals.md pins the contract.
"""

from policies import reasons
from policies.core import decide
from policies.model import (
    MAX_RECENT_TAPS,
    BalanceAdjustment,
    BuyProduct,
    CardInfo,
    CardState,
    CardStatusChange,
    Command,
    Decision,
    Event,
    FareCorrection,
    FareTap,
    Inspect,
    NotPermitted,
    Outcome,
    Purchase,
    TapOff,
    TapOn,
    TopUp,
)
from policies.tariff import Tariff, default_tariff

__all__ = [
    "MAX_RECENT_TAPS",
    "BalanceAdjustment",
    "BuyProduct",
    "CardInfo",
    "CardState",
    "CardStatusChange",
    "Command",
    "Decision",
    "Event",
    "FareCorrection",
    "FareTap",
    "Inspect",
    "NotPermitted",
    "Outcome",
    "Purchase",
    "TapOff",
    "TapOn",
    "Tariff",
    "TopUp",
    "decide",
    "default_tariff",
    "reasons",
]
