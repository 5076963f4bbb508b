"""Hostile guest `memory-bomb` (Python): `evaluate` allocates 1 MiB chunks,
fills every byte, and keeps them all, without bound. Sooner or later
`memory.grow` is refused by the host's memory cap and CPython fails: a
`MemoryError`, or an abort if it cannot even raise that, both a trap.

The host must answer: deny, class `memory`.
"""

from airlock_policy import Description, Policy

CHUNK = 1 << 20


class WitWorld(Policy):
    def describe(self):
        return Description(name="memory-bomb", version="0.1.0")

    def evaluate(self, request):
        hoard = []
        while True:
            # Non-zero fill so every page is really written, never left to a
            # zeroed-allocation shortcut.
            hoard.append(bytearray([len(hoard) % 255 + 1]) * CHUNK)
