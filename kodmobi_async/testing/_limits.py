"""The fake server's rate limit: one token bucket per API key, as a real gateway keeps.

Each key's bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second; a
request takes one token or is refused. A refused request takes nothing, as with nginx's
``limit_req``, so a client that keeps retrying too early does not starve itself further.
Time is whatever monotonic clock the server reads, so tests can drive it by hand.

Nothing here does I/O: the server asks :meth:`RateLimit.admit` under its own lock and
writes the ``429`` itself.
"""

from __future__ import annotations

import math
from typing import Literal, Union

__all__ = ["COMPUTED", "RateLimit", "RetryAfter", "checked_retry_after"]

#: ``retry_after="computed"``: the seconds until the key's bucket holds a token again.
COMPUTED: Literal["computed"] = "computed"

#: What a rate-limited answer says in ``Retry-After``: whole seconds, the computed wait,
#: or None for no header at all.
RetryAfter = Union[int, Literal["computed"], None]  # noqa: UP007 -- a runtime alias on 3.10

# Tokens within this of a whole one count as whole (float error in clock differences).
_EPSILON = 1e-9


def _checked_rate(rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
        msg = f"rate_limit must be a positive number of requests per second, got {rate!r}"
        raise ValueError(msg)
    return float(rate)


def _checked_burst(burst: object, rate: float) -> float:
    if burst is None:
        return max(1.0, rate / 10)
    if isinstance(burst, bool) or not isinstance(burst, (int, float)) or not 1 <= burst < math.inf:
        msg = f"burst must be a number of requests >= 1, got {burst!r}"
        raise ValueError(msg)
    return float(burst)


def checked_retry_after(retry_after: object) -> RetryAfter:
    """Check a ``retry_after`` setting of the rate limit.

    Args:
        retry_after: What the caller passed.

    Returns:
        The same value, typed.

    Raises:
        ValueError: It is not whole seconds >= 0 (an int), ``"computed"`` or None.
    """
    if retry_after is None:
        return None
    if retry_after == COMPUTED:
        return COMPUTED
    if type(retry_after) is not int or retry_after < 0:
        msg = (
            f"retry_after must be whole seconds >= 0 (int), 'computed' or None, got {retry_after!r}"
        )
        raise ValueError(msg)
    return retry_after


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimit:
    """Token buckets keyed by API key, with the policy for the ``Retry-After`` header.

    Not thread-safe by itself: the server calls it under its lock.

    Args:
        rate: Requests admitted per second and key, in the long run.
        burst: Requests admitted at once by a full bucket; ``max(1, rate / 10)`` when
            None.
        retry_after: The ``Retry-After`` of a refusal: whole seconds, ``"computed"``
            (the wait until the key's bucket holds a token, rounded up to whole seconds)
            or None to send no header.

    Raises:
        ValueError: ``rate`` is not positive and finite, ``burst`` is below 1, or
            ``retry_after`` is none of the accepted forms.
    """

    __slots__ = ("_buckets", "burst", "rate", "retry_after")

    def __init__(
        self, rate: float, burst: float | None = None, retry_after: RetryAfter = 1
    ) -> None:
        self.rate = _checked_rate(rate)
        self.burst = _checked_burst(burst, self.rate)
        self.retry_after = checked_retry_after(retry_after)
        self._buckets: dict[str | None, _Bucket] = {}

    def admit(self, key: str | None, now: float) -> str | None:
        """Take a token from ``key``'s bucket if it has one.

        Args:
            key: The ``x-api-key`` as sent; None (no header) has a bucket of its own.
            now: The server's monotonic clock.

        Returns:
            None when the request is admitted; otherwise the ``Retry-After`` header value
            to refuse it with (``""`` when the policy sends no header).
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            self._refill(bucket, now)
        # Clock readings are floats: 1000.005 - 1000.0 is a hair under 0.005 s, which
        # must still buy the token a test (or a client pacing itself) paid for.
        if bucket.tokens >= 1.0 - _EPSILON:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return None
        if self.retry_after is None:
            return ""
        if self.retry_after == COMPUTED:
            return str(max(1, math.ceil((1.0 - bucket.tokens) / self.rate)))
        return str(self.retry_after)

    def continue_as(self, other: RateLimit, now: float) -> RateLimit:
        """Hand every key's bucket over to a new setting, as when a limit changes live.

        Each bucket is filled up to ``now`` at the old rate, then capped at the new
        burst, so a change takes effect from ``now`` and forgives nothing already spent.

        Args:
            other: The new setting; its buckets are replaced.
            now: The server's monotonic clock.

        Returns:
            ``other``, now holding the buckets.
        """
        for bucket in self._buckets.values():
            self._refill(bucket, now)
            bucket.tokens = min(bucket.tokens, other.burst)
        other._buckets = self._buckets
        self._buckets = {}
        return other

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = now - bucket.updated
        if elapsed > 0:
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now

    def __repr__(self) -> str:
        return (
            f"RateLimit(rate={self.rate:g}, burst={self.burst:g}, retry_after={self.retry_after!r})"
        )
