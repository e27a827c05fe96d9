"""When and how long to retry. tenacity does the looping; it never leaves this module.

A call's first attempt runs outside tenacity (see ``_client``): most calls succeed at
once, and entering tenacity's machinery costs more than the request's own client-side
work. Only a failed first attempt is handed to :class:`Retrier`, which replays that
failure into tenacity so the decision, wait and logging for every later attempt live
in one place.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

import attrs

from ._calls import Resend
from ._clock import Clock
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    ConfigurationError,
    RateLimitError,
    RetryBudgetExhaustedError,
)
from ._throttle import Pace, PauseGate, RetryBudget

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["DEFAULT_RETRY_STATUSES", "Retrier", "RetryPolicy"]

T = TypeVar("T")

DEFAULT_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Statuses that say a request was refused before kod.mobi acted on it (our assumption
# for 503: it comes from the service's front, not from a half-done delivery).
_NOT_PROCESSED = frozenset({429, 503})


def _positive_int(name: str, value: object) -> None:
    if type(value) is not int or value < 1:
        msg = f"RetryPolicy.{name} must be an integer >= 1, got {value!r}"
        raise ConfigurationError(msg)


def _status_set(value: Iterable[int]) -> frozenset[int]:
    try:
        return frozenset(value)
    except TypeError:
        msg = (
            "RetryPolicy.retry_statuses must be a collection of 4xx/5xx status codes "
            f"such as {{429, 503}}, got {value!r}"
        )
        raise ConfigurationError(msg) from None


# Longest wait or limit any field may name: one day, as for the client's timeout.
_MAX_SECONDS = 86_400.0
# Tokens and refills past this are indistinguishable from math.inf in practice, and
# integers far past it cannot even be turned into floats.
_MAX_TOKENS = 1e15


def _shown(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)[:80]


def _non_negative(name: str, value: object, maximum: float = _MAX_SECONDS) -> None:
    # Comparisons, not math.isfinite(): they are exact for integers of any size (which
    # isfinite would overflow on) and false for NaN.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= maximum:
        msg = (
            f"RetryPolicy.{name} must be a finite number >= 0, got {_shown(value)}; "
            f"the largest accepted is {maximum:g}"
        )
        raise ConfigurationError(msg)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a call is retried. Pass it as ``KodMobiClient(retry=RetryPolicy(...))``.

    Connection errors, per-attempt timeouts and the statuses in ``retry_statuses``
    are retried with exponential backoff (full jitter by default); other 4xx never
    are. A ``Retry-After`` from the service replaces the backoff for that wait, capped
    at ``max_retry_after``. No wait ever runs past the call's deadline (the client's
    ``timeout``): when the next attempt cannot start in time, the last error is raised.

    Every retry, in every call of a client, also takes one token from the client's
    shared retry budget; each successful call returns ``budget_refill`` tokens. When
    the budget is empty the call fails with :class:`RetryBudgetExhaustedError` instead
    of retrying, so an outage does not multiply load by ``attempts``.

    Attributes:
        attempts: Total attempts per call, the first included; ``1`` disables retries.
        initial_wait: Backoff before the second attempt, in seconds (the cap of the
            jitter window when ``jitter`` is on); it doubles on each further attempt.
        max_wait: Upper bound of any single backoff, in seconds.
        jitter: Draw each wait uniformly from ``[0, backoff]`` ("full jitter"), so many
            clients failing together do not retry in lockstep.
        max_retry_after: Longest ``Retry-After`` honoured, in seconds; longer requests
            are shortened to this.
        retry_statuses: HTTP statuses worth another attempt.
        attempt_timeout: Limit for one attempt, in seconds. ``None`` derives it from the
            call's deadline: ``timeout / min(attempts, 3)``, so one hung attempt leaves
            time for another.
        budget: Retry tokens the client starts with and can hold (``math.inf`` turns
            the budget off).
        budget_refill: Tokens a successful call returns to the budget.
    """

    attempts: int = 4
    initial_wait: float = 0.25
    max_wait: float = 8.0
    jitter: bool = True
    max_retry_after: float = 60.0
    retry_statuses: frozenset[int] = attrs.field(
        default=DEFAULT_RETRY_STATUSES, converter=_status_set
    )
    attempt_timeout: float | None = None
    budget: float = 100.0
    budget_refill: float = 0.1

    def __attrs_post_init__(self) -> None:
        _positive_int("attempts", self.attempts)
        for name in ("initial_wait", "max_wait", "max_retry_after"):
            _non_negative(name, getattr(self, name))
        _non_negative("budget_refill", self.budget_refill, _MAX_TOKENS)
        budget: object = self.budget  # checked at run time: callers may pass anything
        if budget != math.inf and (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not 0 <= budget <= _MAX_TOKENS
        ):
            msg = (
                "RetryPolicy.budget must be a number >= 0 (or math.inf), got "
                f"{_shown(budget)}; the largest finite one accepted is {_MAX_TOKENS:g}"
            )
            raise ConfigurationError(msg)
        if self.attempt_timeout is not None:
            _non_negative("attempt_timeout", self.attempt_timeout)
            if self.attempt_timeout == 0:
                msg = "RetryPolicy.attempt_timeout must be > 0 seconds, or None to derive it"
                raise ConfigurationError(msg)
        bad = sorted(
            (s for s in self.retry_statuses if type(s) is not int or not 400 <= s < 600), key=repr
        )
        if bad:
            msg = f"RetryPolicy.retry_statuses must be 4xx/5xx status codes, got {bad!r}"
            raise ConfigurationError(msg)

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries (one attempt), handy in tests.

        Returns:
            ``RetryPolicy(attempts=1)``.
        """
        return cls(attempts=1)

    def is_retryable(self, error: APIError) -> bool:
        """Whether ``error`` is worth another attempt under this policy.

        Args:
            error: What an attempt raised.

        Returns:
            True for connection errors, per-attempt timeouts and retryable statuses.
        """
        if isinstance(error, APIStatusError):
            return error.status in self.retry_statuses
        return isinstance(error, APIConnectionError)

    def backoff(self, attempt: int, error: APIError, rand: Callable[[], float]) -> float:
        """Seconds to wait after attempt number ``attempt`` failed with ``error``.

        Args:
            attempt: The attempt that failed, counting from 1.
            error: Its error; a ``retry_after`` on it wins over the backoff.
            rand: Uniform random number source in ``[0, 1)``.

        Returns:
            The wait in seconds.
        """
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, self.max_retry_after))
        try:
            ceiling = min(self.max_wait, self.initial_wait * 2.0 ** (attempt - 1))
        except OverflowError:  # attempt > ~1025: far past any cap
            ceiling = self.max_wait
        return ceiling * rand() if self.jitter else ceiling

    def attempt_limit(self, timeout: float) -> float:
        """The per-attempt time limit for a call whose whole deadline is ``timeout``."""
        if self.attempt_timeout is not None:
            return min(self.attempt_timeout, timeout)
        return timeout / min(self.attempts, 3)


class Retrier:
    """Decides whether a failed attempt is retried, and runs attempts 2..n.

    The decision lives here alone: :meth:`may_retry` is what the kind of failure and
    the kind of call allow (the client asks it before entering the retry loop, so a
    404 costs nothing more), and the loop adds the attempt count, the deadline and the
    budget.

    Built once per client: the policy, clock, budget and logger are fixed; only the
    per-call deadline and the attempt function vary.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Clock,
        budget: RetryBudget,
        gate: PauseGate,
        logger: logging.Logger,
        rand: Callable[[], float] = random.random,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        pace: Pace | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._budget = budget
        self._gate = gate
        self._pace = pace
        self._logger = logger
        self._rand = rand
        # The client passes a sleep that ends early when it is closed.
        self._sleep = sleep if sleep is not None else clock.sleep

    def may_retry(self, error: APIError, resend: Resend = Resend.ANY_FAILURE) -> bool:
        """Whether this failure, of this kind of call, may be retried at all.

        Args:
            error: What the attempt raised.
            resend: The call's rule; ``IF_NOT_RECEIVED`` (calls that deliver a message,
                check a code or spend a token) only retries what provably never
                reached kod.mobi, or what it refused before processing (429, 503).

        Returns:
            Whether a retry is allowed, before counting attempts, time and budget.
        """
        policy = self.policy
        if policy.attempts == 1 or not policy.is_retryable(error):
            return False
        if resend is Resend.IF_NOT_RECEIVED:
            if isinstance(error, APIStatusError):
                return error.status in _NOT_PROCESSED
            return isinstance(error, APIConnectionError) and not error.may_have_reached_server
        return True

    async def run(
        self,
        first_error: APIError,
        attempt: Callable[[int], Awaitable[T]],
        *,
        deadline: float,
        label: str,
        resend: Resend = Resend.ANY_FAILURE,
    ) -> T:
        """Retry after ``first_error`` until success, a final error, or the deadline.

        Args:
            first_error: What the first attempt raised.
            attempt: Makes one attempt; receives the attempt number (2, 3, ...).
            deadline: The call's deadline on the client clock.
            label: How log lines name the call (session id already masked).

        Returns:
            What the first successful attempt returned.

        Raises:
            APIError: The last attempt's own error, with ``attempts`` set.
            RetryBudgetExhaustedError: A retry was due but the budget was empty.
        """
        policy = self.policy
        pending: list[APIError] = [first_error]
        attempts_made = 1
        planned_wait = 0.0
        out_of_budget = False
        # Attempts answered 429 do not count against `attempts` (see should_retry).
        throttled_attempts = 0

        async def one_attempt() -> T:
            nonlocal attempts_made
            if pending:
                # Replays the first attempt's failure so tenacity decides about it too.
                raise pending.pop()
            attempts_made += 1
            return await attempt(attempts_made)

        def should_retry(state: RetryCallState) -> bool:
            nonlocal planned_wait, out_of_budget, throttled_attempts
            assert state.outcome is not None  # noqa: S101 -- tenacity sets it before asking
            error = state.outcome.exception()
            if not isinstance(error, APIError) or not self.may_retry(error, resend):
                return False
            # A 429 is flow control, not failure: the server is up and asks us to slow
            # down, which the client's pace does. So it neither counts against
            # `attempts` nor spends the outage budget; the deadline still bounds it.
            throttled = isinstance(error, RateLimitError) and policy.attempts > 1
            if throttled:
                throttled_attempts += 1
            elif state.attempt_number - throttled_attempts >= policy.attempts:
                return False
            wait = policy.backoff(state.attempt_number, error, self._rand)
            # The next attempt also waits out any client-wide pause and its slot of the
            # pace; if that is past the deadline, retrying would only spend budget on a
            # certain timeout.
            now = self._clock.monotonic()
            earliest = max(now + wait, self._gate.until)
            if self._pace is not None:
                earliest = max(earliest, self._pace.earliest_start(now))
            if earliest >= deadline:
                return False
            if throttled:
                planned_wait = wait
                return True
            if not self._budget.try_acquire():
                out_of_budget = True
                return False
            planned_wait = wait
            return True

        def log_retry(state: RetryCallState) -> None:
            assert state.outcome is not None  # noqa: S101 -- set before before_sleep runs
            error = state.outcome.exception()
            self._logger.warning(
                "retrying %s in %.3f s: attempt %d of %d failed with %s: %s",
                label,
                planned_wait,
                state.attempt_number,
                policy.attempts,
                type(error).__name__,
                error,
            )

        # Imported on the first retry, not with the package: most programs' calls
        # succeed at once, and tenacity costs more to import than it does to run.
        from tenacity import AsyncRetrying, stop_never

        retrying = AsyncRetrying(
            retry=should_retry,
            wait=lambda _state: planned_wait,
            stop=stop_never,
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            result: T = await retrying(one_attempt)
        except APIError as error:
            error.attempts = attempts_made
            if out_of_budget:
                msg = (
                    f"{label}: retry budget exhausted; too many calls of this client are "
                    f"failing (last error: {error.message})"
                )
                exhausted = RetryBudgetExhaustedError(msg, last_error=error)
                exhausted.attempts = attempts_made
                raise exhausted from error
            raise
        return result
