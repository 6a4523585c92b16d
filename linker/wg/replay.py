"""The sliding replay window of received counters (whitepaper 5.4.6), as the Linux kernel implements it.

A ring of 64-bit blocks covering COUNTER_BITS_TOTAL counters, one block of which is redundant so that the window
can slide by whole blocks; the usable window is COUNTER_WINDOW_SIZE counters behind the greatest one seen.
``check`` is the cheap test to run before decryption; ``mark`` is run only once the packet authenticated.
"""

from __future__ import annotations

from linker.wg.constants import (
    COUNTER_BLOCK_BITS,
    COUNTER_BLOCKS,
    COUNTER_WINDOW_SIZE,
    REJECT_AFTER_MESSAGES,
)

_BLOCK_SHIFT = COUNTER_BLOCK_BITS.bit_length() - 1
_BLOCK_MASK = COUNTER_BLOCK_BITS - 1
_RING_MASK = COUNTER_BLOCKS - 1


class ReplayWindow:
    """Not thread-safe: one window per keypair, used by the one receive path."""

    __slots__ = ("_blocks", "_greatest")

    def __init__(self) -> None:
        # _greatest is the greatest accepted counter + 1 (0: none yet), as the kernel keeps it
        self._greatest = 0
        self._blocks = [0] * COUNTER_BLOCKS

    def check(self, counter: int) -> bool:
        """False when ``counter`` is certainly unacceptable (too old, already seen, or past the limit)."""
        greatest = self._greatest
        c = counter + 1
        if greatest < c <= REJECT_AFTER_MESSAGES:  # the newest yet (the common case; both limits hold)
            return True
        if counter >= REJECT_AFTER_MESSAGES or greatest >= REJECT_AFTER_MESSAGES + 1:
            return False
        if c + COUNTER_WINDOW_SIZE < greatest:
            return False
        return not (self._blocks[(c >> _BLOCK_SHIFT) & _RING_MASK] >> (c & _BLOCK_MASK)) & 1

    def mark(self, counter: int) -> bool:
        """Accept ``counter``: True if it is new and inside the window (and records it), else False."""
        greatest = self._greatest
        c = counter + 1
        if greatest < c <= REJECT_AFTER_MESSAGES:
            # the newest yet (the common case; both limits hold, since greatest < c): slide, then it cannot have
            # been seen
            index = c >> _BLOCK_SHIFT
            current = greatest >> _BLOCK_SHIFT
            if index != current:
                for i in range(1, min(index - current, COUNTER_BLOCKS) + 1):
                    self._blocks[(current + i) & _RING_MASK] = 0
            self._greatest = c
            self._blocks[index & _RING_MASK] |= 1 << (c & _BLOCK_MASK)
            return True
        if counter >= REJECT_AFTER_MESSAGES or greatest >= REJECT_AFTER_MESSAGES + 1:
            return False
        index = c >> _BLOCK_SHIFT
        blocks = self._blocks
        if c + COUNTER_WINDOW_SIZE < greatest:
            return False
        slot = index & _RING_MASK
        bit = 1 << (c & _BLOCK_MASK)
        if blocks[slot] & bit:
            return False
        blocks[slot] |= bit
        return True
