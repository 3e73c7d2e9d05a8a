"""Fuzz the terminal-message decoder at volume: mutated valid frames (bit flips, byte
insertions and deletions, truncation, splices of two frames, field values swapped for junk) and
random bytes. Every input must either decode or be refused with a documented error code; none
may raise anything else or take longer than HANG_S. Prints one line of figures.

    python bench/fuzz_protocol.py --inputs 1000000 --seed 1
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

import orjson

from gateway.wire import protocol as wire

#: An input that takes longer than this to decode counts as a hang.
HANG_S = 0.05

SEEDS = [
    wire.encode_hello("gate-1"),
    wire.encode_proof("gate-1", "ab" * 32, "cd" * 64),
    wire.encode_heartbeat(42),
    wire.encode_tap(7, "t:7", "card-1", "fare", 1_765_000_000_000, {"network": "METRO"}),
    wire.encode_tap(8, "t:8", "card-1", "purchase", 1_765_000_000_000, {"amount": 250}),
    wire.encode_tap(9, "t:9", "card-1", "recycle", 1, {"material": "pet", "weight_g": 900}),
]
JUNK: list[object] = [None, True, 1.5, -1, 2**63, "", "x" * 5000, [], {}, "é", "\ud800", 0]


def mutate(rng: random.Random) -> bytes:
    base = bytearray(rng.choice(SEEDS))
    how = rng.randrange(7)
    if how == 0:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(base))
            base[i] ^= 1 << rng.randrange(8)
    elif how == 1:  # insert random bytes
        i = rng.randrange(len(base) + 1)
        base[i:i] = rng.randbytes(rng.randint(1, 8))
    elif how == 2:  # delete a slice
        i = rng.randrange(len(base))
        del base[i : i + rng.randint(1, 8)]
    elif how == 3:  # truncate
        del base[rng.randrange(len(base)) :]
    elif how == 4:  # splice two frames
        other = rng.choice(SEEDS)
        base = base[: rng.randrange(len(base))] + other[rng.randrange(len(other)) :]
    elif how == 5:  # a field's value becomes junk
        obj = orjson.loads(bytes(base))
        key = rng.choice(list(obj))
        obj[key] = rng.choice(JUNK)
        try:
            base = bytearray(orjson.dumps(obj))
        except TypeError:  # 2**63 or a lone surrogate: orjson refuses, the raw text goes
            base = bytearray(repr(obj).encode("utf-8", "surrogatepass"))
    else:  # random bytes
        base = bytearray(rng.randbytes(rng.randint(0, 64)))
    return bytes(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    codes: Counter[str] = Counter()
    crashes = hangs = undocumented = 0
    slowest = 0.0
    started = time.perf_counter()
    for _ in range(args.inputs):
        data = mutate(rng)
        as_text = rng.random() < 0.5
        t0 = time.perf_counter()
        try:
            wire.decode_terminal_message(data.decode("utf-8", "replace") if as_text else data)
            codes["decoded"] += 1
        except wire.ProtocolError as exc:
            if exc.code not in wire.ERROR_CODES:
                undocumented += 1
            codes[exc.code] += 1
        except Exception:
            crashes += 1
        took = time.perf_counter() - t0
        slowest = max(slowest, took)
        if took > HANG_S:
            hangs += 1
    wall = time.perf_counter() - started
    top = ", ".join(f"{k}={v}" for k, v in codes.most_common())
    print(
        f"inputs={args.inputs} crashes={crashes} hangs={hangs} undocumented={undocumented} "
        f"slowest_us={slowest * 1e6:.0f} wall_s={wall:.1f} outcomes: {top}"
    )
    return 1 if crashes or hangs or undocumented else 0


if __name__ == "__main__":
    raise SystemExit(main())
