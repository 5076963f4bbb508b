"""Hostile guest `infinite-loop` (Python): `evaluate` never returns. It spins in
a pure compute loop: no host calls, no allocation that could fail first.

The host must answer: deny, class `fuel` (or `deadline` when the fuel budget
is so large that the wall-clock limit fires first).
"""

from airlock_policy import Description, Policy


class WitWorld(Policy):
    def describe(self):
        return Description(name="infinite-loop", version="0.1.0")

    def evaluate(self, request):
        n = 0
        while True:
            # Stays below 2**64, so memory use stays flat while it spins.
            n = (n * 6364136223846793005 + 1) % 2**64
