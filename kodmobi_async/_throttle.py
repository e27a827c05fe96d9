"""Client-wide flow control shared by every call: the retry budget and the pause gate.

Retries per call are not enough at scale: during an outage a batch of N lookups with
four attempts each sends 4N requests to a service that is already down. The budget
(a token bucket in the spirit of botocore's retry quota and gRPC retry throttling)
lets retries through while most calls succeed and shuts them off when most fail. The
gate makes one ``429 Retry-After`` pause every call of the client, not just the one
that got it.
"""

from __future__ import annotations

from collections import deque

import attrs

__all__ = ["Pace", "PaceState", "PauseGate", "RetryBudget"]


@attrs.frozen(kw_only=True)
class PaceState:
    """How fast a client may send right now; read it from :attr:`KodMobiClient.pace`.

    A progress display can show it while a batch is slowed down ("rate-limited,
    pacing at 48 requests/s", "paused by kod.mobi, resuming in 3 s").

    Attributes:
        rate: Requests per second the client keeps to, learned from kod.mobi's 429s
            (or set with ``rate_limit=``); ``None`` while nothing limits it.
        ceiling: The ``rate_limit`` the client was given, if any.
        paused_for: Seconds until a client-wide pause that kod.mobi asked for (a 503
            with ``Retry-After``) ends; ``0.0`` when there is none.
    """

    rate: float | None
    ceiling: float | None
    paused_for: float

    @property
    def limited(self) -> bool:
        """Whether anything holds the client back (a learned pace, or a pause)."""
        return self.rate is not None or self.paused_for > 0


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


class Pace:
    """The client's shared send rate: unlimited until kod.mobi says 429, then adaptive.

    Why this shape. kod.mobi's limit is a rate (requests per second per key), and on a
    fast network a limit on requests in flight does not bound a rate, so the client
    paces request *starts*. Each start takes the next slot of a virtual schedule
    (GCRA): slots are spaced ``1 / rate`` apart, and late wake-ups do not push later
    slots back, so the long-run rate is exactly ``rate``.

    How ``rate`` moves, after TCP congestion control (slow start, then additive
    increase / multiplicative decrease) and AWS's adaptive retry mode:

    - No 429 seen: no pacing at all, and no cost on the hot path.
    - First 429: start from a guess (what the client sent in the last second or so),
      then *slow start*: each accepted answer adds ``1 / SLOW_START_DOUBLING``
      requests/s, which doubles the rate every ``SLOW_START_DOUBLING`` seconds of
      answers, until the next 429.
    - Each later 429 cuts the rate by ``DECREASE`` (x0.9), once per round of slots: a
      429 for a request whose slot was planned before the last cut reflects the old
      rate, not the new one.
    - While callers queue for slots and no 429 comes, each accepted answer adds
      ``INCREASE`` requests/s (5 % a second), probing for a higher limit; a limit that
      rose is found again. Growth comes from answers only: a server that answers
      nothing but 429 never sees the pace rise.
    - ``FORGET_AFTER`` seconds without a 429: pacing ends (back to unlimited).

    With an explicit ``ceiling`` (``KodMobiClient(rate_limit=...)``) pacing starts at
    once at that rate and never exceeds it; 429s still cut it below.

    Times are readings of the client's monotonic clock. The class does no I/O and never
    sleeps: :meth:`reserve` says how long the caller must wait.

    Args:
        ceiling: Requests per second never to exceed, or ``None`` for no ceiling.
    """

    DECREASE = 0.9
    INCREASE = 0.05
    SLOW_START_DOUBLING = 0.1
    FORGET_AFTER = 30.0
    MIN_RATE = 1.0
    # Slots are planned slightly wider than 1 / ceiling, so that wake-up jitter cannot
    # put ceiling + 1 request starts into one second.
    _CEILING_MARGIN = 1.01
    _WINDOW = 1.0

    __slots__ = (
        "_ceiling",
        "_last_cut",
        "_last_throttled",
        "_next_slot",
        "_recent",
        "_slow_start",
        "_waited_at",
        "_window",
        "rate",
    )

    def __init__(self, ceiling: float | None = None) -> None:
        self._ceiling = ceiling
        # The last floor(ceiling) actual start times: the next start waits until the
        # oldest is a second old, so no one-second window ever holds more.
        self._window: deque[float] | None = (
            deque(maxlen=max(1, int(ceiling))) if ceiling is not None else None
        )
        #: Requests per second now in force; ``None`` while nothing limits the client.
        self.rate: float | None = ceiling
        self._slow_start = False
        self._next_slot = 0.0
        self._last_cut = float("-inf")
        self._last_throttled = float("-inf")
        self._waited_at = float("-inf")
        # Request starts counted per whole second of the clock while unpaced:
        # [which second, starts in it, starts in the second before]. Two counters, not
        # a log of times, because every unpaced request passes here.
        self._recent: list[float] = [0.0, 0.0, 0.0]

    def __repr__(self) -> str:
        shown = "unlimited" if self.rate is None else f"{self.rate:.1f}/s"
        return f"Pace({shown}, ceiling={self._ceiling})"

    @property
    def ceiling(self) -> float | None:
        """The explicit ``rate_limit``, if one was given."""
        return self._ceiling

    def note_start(self, now: float) -> None:
        """Count a request start while unpaced, to estimate the server's rate."""
        recent = self._recent
        second = now // 1.0
        if second != recent[0]:
            recent[2] = recent[1] if second == recent[0] + 1 else 0.0
            recent[0] = second
            recent[1] = 0.0
        recent[1] += 1.0

    def window_wait(self, now: float) -> float:
        """Seconds until one more start keeps the ceiling in every one-second window."""
        window = self._window
        if window is None or len(window) < (window.maxlen or 0):
            return 0.0
        return max(0.0, window[0] + self._WINDOW - now)

    def record_start(self, now: float) -> None:
        """Remember an actual start, when a ceiling is set (see :meth:`window_wait`)."""
        if self._window is not None:
            self._window.append(now)

    def earliest_start(self, now: float) -> float:
        """The earliest time a request could start now, given the slots already taken."""
        return now if self.rate is None else max(now, self._next_slot)

    def reserve(self, now: float, deadline: float) -> float | None:
        """Take the next start slot: seconds to wait first, or ``None`` if past ``deadline``.

        Args:
            now: The current time.
            deadline: The call's deadline; a slot after it is not taken.

        Returns:
            How long to wait before sending (``0.0`` to send at once), or ``None``.
        """
        rate = self.rate
        if rate is None:
            return 0.0
        if self._ceiling is None and now - self._last_throttled > self.FORGET_AFTER:
            self.rate = None
            return 0.0
        interval = 1.0 / rate
        if self._ceiling is not None and rate >= self._ceiling:
            interval *= self._CEILING_MARGIN
        slot = max(now, self._next_slot)
        if slot > deadline:
            return None
        self._next_slot = slot + interval
        if slot > now:
            self._waited_at = now
        return slot - now

    def on_accepted(self, now: float) -> None:
        """Grow after an answer that was not a 429, while callers queue for slots.

        Growth is driven by accepted answers, as TCP's window grows by acknowledgements,
        never by time alone: a server that accepts nothing gets no faster pace. In slow
        start each answer adds ``1 / SLOW_START_DOUBLING`` requests/s (the rate doubles
        every ``SLOW_START_DOUBLING`` seconds of answers); after it, ``INCREASE``, which
        grows the rate by that share per second of answers.
        """
        rate = self.rate
        # An idle client has not shown that a higher rate would be accepted.
        if rate is None or now - self._waited_at > 1.0:
            return
        rate += 1.0 / self.SLOW_START_DOUBLING if self._slow_start else self.INCREASE
        if self._ceiling is not None:
            rate = min(rate, self._ceiling)
        self.rate = rate

    def on_throttled(self, planned_at: float, now: float) -> None:
        """Slow down after a 429 for a request whose slot was taken at ``planned_at``."""
        self._last_throttled = now
        if planned_at < self._last_cut:
            return  # planned at the old rate; the cut already answered it
        if self._slow_start and planned_at < self._last_cut + self.SLOW_START_DOUBLING:
            # Right after the first 429 the bucket is still being emptied by requests
            # sent before pacing began; a 429 then says nothing about the new rate.
            return
        self._last_cut = now
        if self.rate is None:
            recent = self._recent
            # Starts in the last second or so bound what the server accepted from
            # above, but only loosely: slow start from there corrects either way.
            second = now // 1.0
            if second == recent[0]:
                counted = max(recent[1], recent[2])
            elif second == recent[0] + 1:
                # Nothing started yet this second (every caller awaits an answer):
                # the last second's starts are the estimate, not zero.
                counted = recent[1]
            else:
                counted = 0.0
            self.rate = max(self.MIN_RATE, counted)
            self._slow_start = True
            self._next_slot = now
            return
        self._slow_start = False
        self.rate = max(self.MIN_RATE, self.rate * self.DECREASE)
