"""The retry policy and the retry loop, driven with a fake clock and scripted attempts."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import tenacity

from kodmobi_async import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    FakeClock,
    InvalidSessionIdError,
    NotFoundError,
    RateLimitError,
    RedirectError,
    ResponseValidationError,
    RetryBudgetExhaustedError,
    RetryPolicy,
    ServerError,
)
from kodmobi_async._calls import Resend
from kodmobi_async._errors import status_error_class
from kodmobi_async._retry import DEFAULT_RETRY_STATUSES, Retrier
from kodmobi_async._throttle import Pace, PauseGate, RetryBudget

LABEL = "GET /session/channels?session_id=01ARZ3…5FAV"
LOGGER = "tests.retry"


def server_error(note: str = "down", status: int = 503) -> ServerError:
    return ServerError(
        f"kod.mobi answered {status}: {note}", status=status, path="/session/channels"
    )


def untyped_policy(**kwargs: Any) -> RetryPolicy:
    """A policy built from untyped keywords.

    ``retry_statuses`` goes through here: under mypy, ``RetryPolicy``'s generated
    ``__init__`` rejects every value for it (see ``test_public_api``'s typing test).
    """
    return RetryPolicy(**kwargs)


def no_rand() -> float:
    raise AssertionError("rand must not be drawn here")


class Script:
    """Attempts 2, 3, ... of a call: each step is raised if it is an exception, else returned."""

    def __init__(self, *steps: BaseException | str) -> None:
        self.steps = list(steps)
        self.calls: list[int] = []

    async def __call__(self, attempt: int) -> str:
        self.calls.append(attempt)
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


@attrs.define
class Harness:
    """A retrier with everything it touches exposed for assertions."""

    retrier: Retrier
    clock: FakeClock
    budget: RetryBudget
    gate: PauseGate

    async def run(
        self,
        first: APIError,
        script: Script,
        *,
        timeout: float = 30.0,
        resend: Resend = Resend.ANY_FAILURE,
    ) -> str:
        return await self.retrier.run(
            first, script, deadline=self.clock.monotonic() + timeout, label=LABEL, resend=resend
        )


def harness(
    policy: RetryPolicy | None = None,
    *,
    budget: float = 100.0,
    rand: Callable[[], float] = no_rand,
    pace: Pace | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Harness:
    policy = policy if policy is not None else RetryPolicy(jitter=False)
    clock = FakeClock(start=1000.0)
    bucket = RetryBudget(budget, 0.1)
    gate = PauseGate()
    logger = logging.getLogger(LOGGER)
    retrier = Retrier(policy, clock, bucket, gate, logger, rand=rand, pace=pace, sleep=sleep)
    return Harness(retrier, clock, bucket, gate)


async def assert_given_up_at_once(h: Harness, *, timeout: float) -> None:
    """A retryable first error is raised as itself: no wait, no attempt, no token."""
    tokens = h.budget.tokens
    first = server_error()
    script = Script("never")

    with pytest.raises(ServerError) as info:
        await h.run(first, script, timeout=timeout)

    assert info.value is first
    assert script.calls == []
    assert h.budget.tokens == tokens
    assert h.clock.sleeps == []


class TestRetryPolicyDefaults:
    def test_defaults_are_four_attempts_with_capped_jittered_backoff(self) -> None:
        policy = RetryPolicy()

        assert policy.attempts == 4
        assert policy.initial_wait == 0.25
        assert policy.max_wait == 8.0
        assert policy.jitter is True
        assert policy.max_retry_after == 60.0
        assert policy.attempt_timeout is None
        assert policy.budget == 100.0
        assert policy.budget_refill == 0.1

    def test_default_retry_statuses_are_timeouts_rate_limits_and_gateway_errors(self) -> None:
        assert RetryPolicy().retry_statuses == {408, 429, 500, 502, 503, 504}
        assert {408, 429, 500, 502, 503, 504} == DEFAULT_RETRY_STATUSES

    @pytest.mark.parametrize("statuses", [[503, 429], {503, 429}, (503, 429, 503)])
    def test_retry_statuses_accept_any_iterable_and_become_a_frozenset(self, statuses: Any) -> None:
        built = untyped_policy(retry_statuses=statuses)

        assert built.retry_statuses == frozenset({429, 503})
        assert type(built.retry_statuses) is frozenset

    def test_a_policy_is_frozen_and_hashable(self) -> None:
        policy = RetryPolicy()

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(policy, "attempts", 5)  # noqa: B010 -- the point is a runtime assignment
        assert hash(policy) == hash(RetryPolicy())

    def test_fields_are_keyword_only(self) -> None:
        args: tuple[Any, ...] = (3,)
        with pytest.raises(TypeError):
            RetryPolicy(*args)

    def test_disabled_makes_one_attempt_and_keeps_other_defaults(self) -> None:
        policy = RetryPolicy.disabled()

        assert policy == RetryPolicy(attempts=1)
        assert type(policy) is RetryPolicy


class TestRetryPolicyValidation:
    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("attempts", 0, "RetryPolicy.attempts must be an integer >= 1, got 0"),
            ("attempts", -1, "RetryPolicy.attempts must be an integer >= 1, got -1"),
            ("attempts", 2.0, "RetryPolicy.attempts must be an integer >= 1, got 2.0"),
            ("attempts", "3", "RetryPolicy.attempts must be an integer >= 1, got '3'"),
            ("attempts", True, "RetryPolicy.attempts must be an integer >= 1, got True"),
            ("attempts", None, "RetryPolicy.attempts must be an integer >= 1, got None"),
            ("initial_wait", -0.1, "RetryPolicy.initial_wait must be a finite number >= 0"),
            ("initial_wait", math.nan, "RetryPolicy.initial_wait must be a finite number >= 0"),
            ("initial_wait", "1", "RetryPolicy.initial_wait must be a finite number >= 0"),
            ("initial_wait", True, "RetryPolicy.initial_wait must be a finite number >= 0"),
            ("max_wait", -1, "RetryPolicy.max_wait must be a finite number >= 0, got -1"),
            ("max_wait", math.inf, "RetryPolicy.max_wait must be a finite number >= 0, got inf"),
            ("max_retry_after", -5.0, "RetryPolicy.max_retry_after must be a finite number >= 0"),
            ("max_retry_after", None, "RetryPolicy.max_retry_after must be a finite number >= 0"),
            ("budget_refill", -0.1, "RetryPolicy.budget_refill must be a finite number >= 0"),
            ("budget_refill", math.inf, "RetryPolicy.budget_refill must be a finite number >= 0"),
            ("budget", -1, "RetryPolicy.budget must be a number >= 0 (or math.inf), got -1"),
            ("budget", math.nan, "RetryPolicy.budget must be a number >= 0 (or math.inf), got nan"),
            ("budget", "100", "RetryPolicy.budget must be a number >= 0 (or math.inf), got '100'"),
            ("budget", False, "RetryPolicy.budget must be a number >= 0 (or math.inf), got False"),
            ("attempt_timeout", 0, "RetryPolicy.attempt_timeout must be > 0 seconds"),
            ("attempt_timeout", -1, "RetryPolicy.attempt_timeout must be a finite number >= 0"),
            ("attempt_timeout", math.inf, "RetryPolicy.attempt_timeout must be a finite number"),
            ("retry_statuses", {200}, "RetryPolicy.retry_statuses must be 4xx/5xx status codes"),
            ("retry_statuses", {399, 503}, "status codes, got [399]"),
            ("retry_statuses", {600}, "status codes, got [600]"),
            ("retry_statuses", {True}, "status codes, got [True]"),
            ("retry_statuses", {"503"}, "status codes, got ['503']"),
            ("retry_statuses", {503.0}, "status codes, got [503.0]"),
            # Too large to print (and past str()'s digit limit): described, not shown.
            pytest.param(
                "initial_wait", 10**5000, "got an integer of 16610 bits", id="initial_wait-huge"
            ),
            pytest.param("budget", 10**5000, "got an integer of 16610 bits", id="budget-huge"),
        ],
    )
    def test_a_bad_value_raises_naming_the_field(
        self, field: str, value: object, message: str
    ) -> None:
        kwargs: dict[str, Any] = {field: value}

        with pytest.raises(ConfigurationError) as info:
            RetryPolicy(**kwargs)

        assert isinstance(info.value, ValueError)
        assert message in str(info.value)

    def test_a_zero_attempt_timeout_says_none_derives_one(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            RetryPolicy(attempt_timeout=0)

        assert str(info.value) == (
            "RetryPolicy.attempt_timeout must be > 0 seconds, or None to derive it"
        )

    @pytest.mark.parametrize("statuses", [{"503", 200}, {"500", 99.5}])
    def test_bad_statuses_of_mixed_types_raise_a_configuration_error(
        self, statuses: set[object]
    ) -> None:
        with pytest.raises(ConfigurationError, match=r"RetryPolicy\.retry_statuses"):
            untyped_policy(retry_statuses=statuses)

    @pytest.mark.parametrize("statuses", [503, None])
    def test_statuses_that_are_not_a_collection_raise_a_configuration_error(
        self, statuses: object
    ) -> None:
        # A plausible slip: retry_statuses=503 instead of retry_statuses={503}.
        with pytest.raises(ConfigurationError) as info:
            untyped_policy(retry_statuses=statuses)

        assert str(info.value) == (
            "RetryPolicy.retry_statuses must be a collection of 4xx/5xx status codes "
            f"such as {{429, 503}}, got {statuses!r}"
        )

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"attempts": 1},
            {"attempts": 100},
            {"initial_wait": 0, "max_wait": 0, "max_retry_after": 0},
            {"budget": math.inf},
            {"budget": 0},
            {"budget_refill": 0},
            {"attempt_timeout": 0.5},
            {"retry_statuses": frozenset()},
            {"retry_statuses": {400, 599}},
            # The largest values the error messages name are themselves accepted.
            {"initial_wait": 86_400, "max_wait": 86_400.0, "max_retry_after": 86_400},
            {"attempt_timeout": 86_400},
            {"budget": 1e15, "budget_refill": 1e15},
        ],
    )
    def test_edge_values_that_make_sense_are_accepted(self, kwargs: dict[str, Any]) -> None:
        policy = RetryPolicy(**kwargs)

        for name, value in kwargs.items():
            assert getattr(policy, name) == value


class TestIsRetryable:
    @pytest.mark.parametrize(
        "error",
        [APIConnectionError("connection reset"), APITimeoutError("deadline passed")],
    )
    def test_connection_errors_and_timeouts_are_retried(self, error: APIError) -> None:
        assert RetryPolicy().is_retryable(error) is True

    @pytest.mark.parametrize(
        ("status", "retryable"),
        [
            (408, True),
            (429, True),
            (500, True),
            (502, True),
            (503, True),
            (504, True),
            (301, False),
            (400, False),
            (401, False),
            (403, False),
            (404, False),
            (409, False),
            (418, False),
            (422, False),
            (501, False),
            (505, False),
        ],
    )
    def test_a_status_is_retried_only_if_listed(self, status: int, retryable: bool) -> None:
        cls = status_error_class(status)
        error = (
            RedirectError("x", status=status, location=None)
            if cls is RedirectError
            else cls("x", status=status)
        )

        assert RetryPolicy().is_retryable(error) is retryable

    def test_custom_statuses_replace_the_defaults(self) -> None:
        custom = untyped_policy(retry_statuses={409})

        assert custom.is_retryable(APIStatusError("x", status=409)) is True
        assert custom.is_retryable(server_error()) is False
        assert custom.is_retryable(APIConnectionError("reset")) is True

    def test_a_bad_success_body_is_not_retried(self) -> None:
        error = ResponseValidationError("not JSON", status=200)

        assert RetryPolicy().is_retryable(error) is False

    def test_an_exhausted_budget_is_not_retried(self) -> None:
        error = RetryBudgetExhaustedError("dry", last_error=server_error())

        assert RetryPolicy().is_retryable(error) is False

    def test_a_malformed_session_id_is_not_retried(self) -> None:
        error: Any = InvalidSessionIdError("not a ULID", session_id="x")

        assert RetryPolicy().is_retryable(error) is False


class TestBackoff:
    @pytest.mark.parametrize(
        ("attempt", "ceiling"),
        [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (5, 4.0), (6, 8.0), (7, 8.0), (30, 8.0)],
    )
    def test_without_jitter_the_wait_doubles_up_to_max_wait(
        self, attempt: int, ceiling: float
    ) -> None:
        policy = RetryPolicy(jitter=False)

        assert policy.backoff(attempt, server_error(), no_rand) == ceiling

    @pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0)])
    def test_initial_wait_and_max_wait_shape_the_curve(self, attempt: int, ceiling: float) -> None:
        policy = RetryPolicy(initial_wait=1.0, max_wait=5.0, jitter=False)

        assert policy.backoff(attempt, APIConnectionError("reset"), no_rand) == ceiling

    @pytest.mark.parametrize(
        ("attempt", "rand", "wait"),
        [(1, 0.5, 0.125), (3, 0.5, 0.5), (10, 0.5, 4.0), (2, 0.0, 0.0), (6, 0.25, 2.0)],
    )
    def test_full_jitter_scales_the_ceiling_by_rand(
        self, attempt: int, rand: float, wait: float
    ) -> None:
        assert RetryPolicy().backoff(attempt, server_error(), lambda: rand) == wait

    def test_a_very_late_attempt_still_waits_max_wait(self) -> None:
        policy = RetryPolicy(attempts=5000, jitter=False)

        assert policy.backoff(2000, server_error(), no_rand) == 8.0

    @pytest.mark.parametrize(("retry_after", "wait"), [(3.0, 3.0), (0.0, 0.0), (20.0, 20.0)])
    def test_retry_after_replaces_the_backoff_and_ignores_max_wait(
        self, retry_after: float, wait: float
    ) -> None:
        error = RateLimitError("slow down", status=429, retry_after=retry_after)

        assert RetryPolicy(max_wait=1.0).backoff(1, error, no_rand) == wait

    def test_retry_after_is_capped_at_max_retry_after(self) -> None:
        error = ServerError("maintenance", status=503, retry_after=3600.0)

        assert RetryPolicy(max_retry_after=30.0).backoff(1, error, no_rand) == 30.0

    def test_retry_after_none_falls_back_to_backoff(self) -> None:
        error = RateLimitError("slow down", status=429, retry_after=None)

        assert RetryPolicy(jitter=False).backoff(2, error, no_rand) == 0.5


class TestAttemptLimit:
    @pytest.mark.parametrize(
        ("attempts", "limit"), [(1, 9.0), (2, 4.5), (3, 3.0), (4, 3.0), (10, 3.0)]
    )
    def test_derived_from_the_deadline_leaving_room_for_retries(
        self, attempts: int, limit: float
    ) -> None:
        assert RetryPolicy(attempts=attempts).attempt_limit(9.0) == limit

    @pytest.mark.parametrize(("attempt_timeout", "limit"), [(2.0, 2.0), (20.0, 9.0)])
    def test_an_explicit_attempt_timeout_is_capped_by_the_deadline(
        self, attempt_timeout: float, limit: float
    ) -> None:
        assert RetryPolicy(attempt_timeout=attempt_timeout).attempt_limit(9.0) == limit


class TestRetrierOutcomes:
    async def test_success_on_the_second_attempt_returns_it_after_the_backoff(self) -> None:
        h = harness()
        script = Script("channels")

        assert await h.run(server_error(), script) == "channels"
        assert script.calls == [2]
        assert h.clock.sleeps == [0.25]

    async def test_jittered_waits_use_the_injected_rand(self) -> None:
        h = harness(RetryPolicy(), rand=lambda: 0.5)
        script = Script(server_error("again"), "channels")

        assert await h.run(server_error(), script) == "channels"
        assert script.calls == [2, 3]
        assert h.clock.sleeps == [0.125, 0.25]

    async def test_a_non_retryable_first_error_is_raised_at_once(self) -> None:
        h = harness()
        first = NotFoundError("no such session", status=404)
        script = Script("never")

        with pytest.raises(NotFoundError) as info:
            await h.run(first, script)

        assert info.value is first
        assert info.value.attempts == 1
        assert script.calls == []
        assert h.clock.sleeps == []
        assert h.budget.tokens == 100.0

    async def test_a_non_retryable_later_error_is_raised_at_once(self) -> None:
        h = harness()
        denied = AuthenticationError("bad key", status=401)
        script = Script(denied, "never")

        with pytest.raises(AuthenticationError) as info:
            await h.run(server_error(), script)

        assert info.value is denied
        assert info.value.attempts == 2
        assert script.calls == [2]
        assert h.clock.sleeps == [0.25]

    async def test_a_bad_success_body_is_not_retried(self) -> None:
        h = harness()
        invalid = ResponseValidationError("not JSON", status=200)
        script = Script(invalid, "never")

        with pytest.raises(ResponseValidationError) as info:
            await h.run(APIConnectionError("reset"), script)

        assert info.value is invalid
        assert info.value.attempts == 2

    async def test_an_exception_that_is_not_an_api_error_propagates_unchanged(self) -> None:
        h = harness()
        bug = RuntimeError("bug in the attempt function")
        script = Script(bug)

        with pytest.raises(RuntimeError) as info:
            await h.run(server_error(), script)

        assert info.value is bug

    async def test_when_attempts_run_out_the_last_real_error_is_raised(self) -> None:
        h = harness()
        errors = [server_error("2nd"), APITimeoutError("3rd timed out"), server_error("4th")]
        script = Script(*errors)

        with pytest.raises(APIError) as info:
            await h.run(server_error("1st"), script)

        assert not isinstance(info.value, tenacity.RetryError)
        assert info.value is errors[-1]
        assert info.value.attempts == 4
        assert str(info.value) == "kod.mobi answered 503: 4th (after 4 attempts)"
        assert script.calls == [2, 3, 4]
        assert h.clock.sleeps == [0.25, 0.5, 1.0]

    async def test_a_disabled_policy_raises_the_first_error(self) -> None:
        h = harness(RetryPolicy.disabled())
        first = server_error()

        with pytest.raises(ServerError) as info:
            await h.run(first, Script())

        assert info.value is first
        assert info.value.attempts == 1
        assert h.clock.sleeps == []

    @pytest.mark.parametrize(("retry_after", "wait"), [(3.0, 3.0), (120.0, 60.0)])
    async def test_retry_after_sets_the_wait(self, retry_after: float, wait: float) -> None:
        h = harness(RetryPolicy())  # jitter on: rand would fail the test if drawn
        first = RateLimitError("slow down", status=429, retry_after=retry_after)

        assert await h.run(first, Script("channels"), timeout=300.0) == "channels"
        assert h.clock.sleeps == [wait]


class TestRetryRulesByCall:
    @pytest.mark.parametrize(
        ("error", "allowed"),
        [
            (RateLimitError("slow down", status=429), True),
            (server_error(status=503), True),
            (server_error(status=500), False),
            (server_error(status=502), False),
            (APIConnectionError("reset after the request was written"), False),
            (APITimeoutError("no answer in time"), False),
        ],
    )
    def test_a_delivery_is_retried_only_when_kodmobi_did_not_process_it(
        self, error: APIError, allowed: bool
    ) -> None:
        retrier = harness().retrier
        assert retrier.may_retry(error, Resend.IF_NOT_RECEIVED) is allowed
        assert retrier.may_retry(error, Resend.ANY_FAILURE) is True

    def test_a_request_that_provably_never_left_is_retried_even_for_a_delivery(self) -> None:
        refused = APIConnectionError("connection refused")
        refused.may_have_reached_server = False
        assert harness().retrier.may_retry(refused, Resend.IF_NOT_RECEIVED) is True

    async def test_the_rule_also_judges_the_later_attempts(self) -> None:
        h = harness()
        maybe_sent = server_error("maybe sent", status=500)
        script = Script(maybe_sent, "never")

        with pytest.raises(ServerError) as info:
            await h.run(
                RateLimitError("slow down", status=429), script, resend=Resend.IF_NOT_RECEIVED
            )

        assert info.value is maybe_sent
        assert info.value.attempts == 2
        assert script.calls == [2]

    async def test_two_attempts_allow_one_retry(self) -> None:
        h = harness(RetryPolicy(attempts=2, jitter=False))
        assert await h.run(server_error(), Script("channels")) == "channels"


class TestRetrierThrottled:
    async def test_429s_neither_count_against_attempts_nor_spend_the_budget(self) -> None:
        h = harness(RetryPolicy(attempts=2, jitter=False), budget=5.0)
        last = server_error("b")
        script = Script(
            RateLimitError("slow down", status=429),
            RateLimitError("slow down", status=429),
            server_error("a"),
            last,
            "never",
        )

        with pytest.raises(ServerError) as info:
            await h.run(RateLimitError("slow down", status=429), script, timeout=60.0)

        # Three 429s, then two real failures: the two attempts the policy allows.
        assert info.value is last
        assert info.value.attempts == 5
        assert script.calls == [2, 3, 4, 5]
        assert h.budget.tokens == 4.0  # only the retry after "a" took a token


class TestRetrierPace:
    async def test_a_pace_slot_past_the_deadline_is_not_waited_for(self) -> None:
        pace = Pace()
        pace.on_throttled(1000.0, 1000.0)  # paced at one request a second
        for _ in range(20):
            pace.reserve(1000.0, math.inf)  # the next free slot is 20 s away
        await assert_given_up_at_once(harness(budget=5.0, pace=pace), timeout=10.0)

    async def test_a_pace_slot_within_the_deadline_lets_the_retry_go(self) -> None:
        pace = Pace()
        pace.on_throttled(1000.0, 1000.0)
        pace.reserve(1000.0, math.inf)
        h = harness(pace=pace)
        assert await h.run(server_error(), Script("channels"), timeout=10.0) == "channels"

    async def test_the_sleep_the_client_passes_is_the_one_used(self) -> None:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        h = harness(sleep=sleep)
        assert await h.run(server_error(), Script("channels")) == "channels"
        assert slept == [0.25]
        assert h.clock.sleeps == []


class TestRetrierDeadline:
    async def test_a_wait_that_would_pass_the_deadline_is_not_taken(self) -> None:
        h = harness(RetryPolicy(initial_wait=1.0, jitter=False))
        second = server_error("2nd")
        script = Script(second, "too late")

        # Attempt 2 may start at +1 s; attempt 3 would start at +3 s, past +2.5 s.
        with pytest.raises(ServerError) as info:
            await h.run(server_error("1st"), script, timeout=2.5)

        assert info.value is second
        assert info.value.attempts == 2
        assert script.calls == [2]
        assert h.clock.sleeps == [1.0]
        assert h.budget.tokens == 99.0

    @pytest.mark.parametrize("timeout", [0.1, 0.25])
    async def test_no_retry_when_the_first_wait_does_not_fit(self, timeout: float) -> None:
        # A wait that ends exactly at the deadline leaves no time for the attempt.
        h = harness()
        first = server_error()

        with pytest.raises(ServerError) as info:
            await h.run(first, Script("never"), timeout=timeout)

        assert info.value is first
        assert info.value.attempts == 1
        assert h.clock.sleeps == []
        assert h.budget.tokens == 100.0

    async def test_a_retry_after_past_the_deadline_is_not_waited(self) -> None:
        h = harness()
        first = RateLimitError("slow down", status=429, retry_after=30.0)

        with pytest.raises(RateLimitError) as info:
            await h.run(first, Script("never"), timeout=10.0)

        assert info.value is first
        assert h.clock.sleeps == []


class TestRetrierBudget:
    async def test_an_empty_budget_raises_budget_exhausted_caused_by_the_real_error(
        self,
    ) -> None:
        h = harness(budget=0.0)
        first = server_error()
        script = Script("never")

        with pytest.raises(RetryBudgetExhaustedError) as info:
            await h.run(first, script)

        error = info.value
        assert error.__cause__ is first
        assert error.last_error is first
        assert error.attempts == 1
        assert first.attempts == 1
        assert (error.method, error.path) == ("GET", "/session/channels")
        assert str(error).startswith(f"{LABEL}: retry budget exhausted;")
        assert "attempt" not in str(error)  # one attempt: nothing to add, and never twice
        assert "kod.mobi answered 503: down" in str(error)
        assert script.calls == []
        assert h.clock.sleeps == []

    async def test_a_pause_that_outlasts_the_deadline_spends_no_budget(self) -> None:
        h = harness(budget=5.0)
        h.gate.pause_until(h.clock.monotonic() + 60.0)
        await assert_given_up_at_once(h, timeout=10.0)

    async def test_a_budget_that_runs_dry_mid_call_reports_the_latest_error(self) -> None:
        h = harness(budget=1.0)
        second = server_error("2nd")

        with pytest.raises(RetryBudgetExhaustedError) as info:
            await h.run(server_error("1st"), Script(second, "never"))

        assert info.value.last_error is second
        assert info.value.__cause__ is second
        assert info.value.attempts == 2
        assert second.attempts == 2
        assert h.clock.sleeps == [0.25]

    async def test_each_retry_takes_one_token(self) -> None:
        h = harness(budget=10.0)

        await h.run(server_error(), Script(server_error(), server_error(), "channels"))

        assert h.budget.tokens == 7.0

    async def test_errors_that_are_not_retried_take_no_token(self) -> None:
        h = harness(budget=10.0)

        with pytest.raises(NotFoundError):
            await h.run(server_error(), Script(NotFoundError("gone", status=404)))

        assert h.budget.tokens == 9.0

    async def test_a_non_retryable_error_with_an_empty_budget_is_raised_as_itself(self) -> None:
        h = harness(budget=0.0)
        first = AuthenticationError("bad key", status=401)

        with pytest.raises(AuthenticationError) as info:
            await h.run(first, Script())

        assert info.value is first


class TestRetrierLogging:
    async def test_each_retry_logs_a_warning_with_the_wait_and_the_reason(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        h = harness()
        script = Script(APITimeoutError("attempt timed out after 3 s"), "channels")

        with caplog.at_level(logging.WARNING, logger=LOGGER):
            await h.run(server_error("Service Unavailable"), script)

        records = [r for r in caplog.records if r.name == LOGGER]
        assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
        assert [r.getMessage() for r in records] == [
            f"retrying {LABEL} in 0.250 s: attempt 1 of 4 failed with ServerError: "
            "kod.mobi answered 503: Service Unavailable",
            f"retrying {LABEL} in 0.500 s: attempt 2 of 4 failed with APITimeoutError: "
            "attempt timed out after 3 s",
        ]

    async def test_a_call_that_is_not_retried_logs_nothing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        h = harness()

        with caplog.at_level(logging.DEBUG, logger=LOGGER), pytest.raises(NotFoundError):
            await h.run(NotFoundError("gone", status=404), Script())

        assert [r for r in caplog.records if r.name == LOGGER] == []
