"""How big a sweep's next batch or verification slice is, from how long its last one took: each
aims at TARGET_SECONDS, so the transaction stays short on a slow or contended disk and grows to its
cap on a quiet machine."""

from __future__ import annotations

# The size halves after a batch or slice slower than TARGET_SECONDS and doubles after one that
# took under half of it, between 1 and the caller's cap.
TARGET_SECONDS = 0.4


def next_size(size: int, most: int, seconds: float) -> int:
    """The next batch's or slice's size after one of ``size`` took ``seconds`` (see TARGET_SECONDS)."""
    if seconds > TARGET_SECONDS:
        return max(1, size // 2)
    if seconds < TARGET_SECONDS / 2:
        return min(most, size * 2)
    return size
