"""Client-wide flow control shared by every call: the retry budget and the pause gate.

Retries per call are not enough at scale: during an outage a batch of N lookups with
four attempts each sends 4N requests to a service that is already down. The budget
(a token bucket in the spirit of botocore's retry quota and gRPC retry throttling)
lets retries through while most calls succeed and shuts them off when most fail. The
gate makes one ``429 Retry-After`` pause every call of the client, not just the one
that got it.
"""

from __future__ import annotations

__all__ = ["PauseGate", "RetryBudget"]


class RetryBudget:
    """A token bucket: a retry takes one token, a call that succeeds returns a fraction.

    Args:
        capacity: Tokens when full, i.e. retries allowed in a burst of failures.
        refill: Tokens returned by each successful call.
    """

    __slots__ = ("capacity", "refill", "tokens")

    def __init__(self, capacity: float, refill: float) -> None:
        self.capacity = capacity
        self.refill = refill
        self.tokens = capacity

    def try_acquire(self) -> bool:
        """Take a token for one retry; ``False`` when the bucket is empty."""
        # Refills are fractions (0.1) whose float sum falls short: ten of them are
        # 0.9999999999999999, which must still pay for one retry.
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def on_success(self) -> None:
        """Return the refill share; called on every successful call (hot path)."""
        if self.tokens < self.capacity:
            self.tokens = min(self.capacity, self.tokens + self.refill)

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self.tokens:.1f}/{self.capacity:g})"


class PauseGate:
    """Holds new attempts back until a time the service named (``Retry-After``).

    Times are readings of the client's monotonic clock.
    """

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until = 0.0

    def pause_until(self, when: float) -> None:
        """Close the gate until ``when``; an earlier time never shortens a pause."""
        self.until = max(self.until, when)

    def __repr__(self) -> str:
        return f"PauseGate(until={self.until:.3f})"
