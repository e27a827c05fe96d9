"""Client-wide flow control: the retry budget and the pause gate."""

from __future__ import annotations

import math

import pytest

from kodmobi_async._throttle import PauseGate, RetryBudget


class TestRetryBudget:
    def test_a_new_budget_is_full(self) -> None:
        budget = RetryBudget(capacity=5.0, refill=0.5)

        assert budget.tokens == 5.0

    @pytest.mark.parametrize(("capacity", "retries"), [(3.0, 3), (2.5, 2), (1.0, 1), (0.0, 0)])
    def test_acquire_succeeds_once_per_whole_token_then_fails(
        self, capacity: float, retries: int
    ) -> None:
        budget = RetryBudget(capacity=capacity, refill=0.5)

        granted = [budget.try_acquire() for _ in range(retries + 2)]

        assert granted == [True] * retries + [False, False]
        assert budget.tokens == capacity - retries

    def test_a_refused_acquire_takes_nothing(self) -> None:
        budget = RetryBudget(capacity=1.0, refill=0.5)
        budget.try_acquire()
        budget.on_success()

        assert budget.try_acquire() is False
        assert budget.tokens == 0.5

    def test_successes_refill_until_a_retry_is_allowed_again(self) -> None:
        budget = RetryBudget(capacity=2.0, refill=0.5)
        budget.try_acquire()
        budget.try_acquire()

        budget.on_success()
        assert budget.try_acquire() is False
        budget.on_success()
        assert budget.try_acquire() is True

    @pytest.mark.parametrize("refill", [0.1, 0.2, 0.25, 0.5, 1 / 3, 0.05])
    def test_one_over_refill_successes_earn_one_retry(self, refill: float) -> None:
        # The default refill is 0.1: ten successful calls pay for one retry, and float
        # rounding (0.1 added ten times is 0.9999999999999999) must not make it eleven.
        budget = RetryBudget(capacity=5.0, refill=refill)
        while budget.try_acquire():
            pass

        for _ in range(round(1 / refill)):
            budget.on_success()

        assert budget.try_acquire() is True

    def test_refill_is_capped_at_capacity(self) -> None:
        budget = RetryBudget(capacity=2.0, refill=0.75)
        budget.try_acquire()

        for _ in range(5):
            budget.on_success()

        assert budget.tokens == 2.0
        assert [budget.try_acquire() for _ in range(3)] == [True, True, False]

    def test_a_full_budget_stays_full_on_success(self) -> None:
        budget = RetryBudget(capacity=3.0, refill=1.0)

        budget.on_success()

        assert budget.tokens == 3.0

    def test_an_infinite_budget_never_runs_dry(self) -> None:
        budget = RetryBudget(capacity=math.inf, refill=0.1)

        assert all(budget.try_acquire() for _ in range(10_000))
        budget.on_success()
        assert budget.tokens == math.inf

    def test_repr_shows_tokens_and_capacity(self) -> None:
        budget = RetryBudget(capacity=100.0, refill=0.1)
        budget.try_acquire()

        assert repr(budget) == "RetryBudget(tokens=99.0/100)"


class TestPauseGate:
    def test_a_new_gate_is_open(self) -> None:
        assert PauseGate().until == 0.0

    def test_a_later_time_extends_the_pause(self) -> None:
        gate = PauseGate()

        gate.pause_until(1005.0)
        gate.pause_until(1010.0)

        assert gate.until == 1010.0

    @pytest.mark.parametrize("earlier", [1009.999, 1000.0, 0.0, -5.0])
    def test_an_earlier_time_never_shortens_the_pause(self, earlier: float) -> None:
        gate = PauseGate()
        gate.pause_until(1010.0)

        gate.pause_until(earlier)

        assert gate.until == 1010.0

    def test_repr_shows_the_time(self) -> None:
        gate = PauseGate()
        gate.pause_until(12.5)

        assert repr(gate) == "PauseGate(until=12.500)"
