"""Time as the client sees it: a monotonic clock and a way to sleep.

Injecting both lets tests prove "waited 3 s as the server asked" without waiting 3 s.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """What the client needs of time: read a monotonic clock, and sleep on it."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds`` of this clock's time."""


class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def monotonic(self) -> float:
        """Seconds from :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep with :func:`asyncio.sleep`."""
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock for tests: sleeping advances it at once instead of waiting.

    Every sleep is recorded in :attr:`sleeps`, so a test can assert the exact waits
    the client chose (backoff, ``Retry-After``, the rate-limit pause).

    Args:
        start: The initial reading of :meth:`monotonic`.

    Attributes:
        now: The current reading of the clock.
        sleeps: Every wait passed to :meth:`sleep`, in order.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now: float = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake time, moved only by :meth:`sleep` and :meth:`advance`."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Record the wait, move the clock forward, and yield to the event loop once."""
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move the clock forward without a recorded sleep (time passing elsewhere)."""
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r}, sleeps={len(self.sleeps)})"
