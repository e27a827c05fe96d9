"""The client's shared pace: pure arithmetic first, then batches against a rate-limited fake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from kodmobi_async import (
    ConfigurationError,
    FakeClock,
    KodMobiClient,
    RateLimitError,
    RetryBudgetExhaustedError,
    RetryPolicy,
    ServerError,
)
from kodmobi_async._throttle import Pace
from kodmobi_async.testing import FakeKodMobi, Fault

from .conftest import SECRET_KEY, ClientFactory

FAR = 1e9  # a deadline that never binds


def throttled_pace(starts: int = 100, now: float = 10.0) -> Pace:
    """A pace that has just seen its first 429, after ``starts`` starts this second."""
    pace = Pace()
    for _ in range(starts):
        pace.note_start(now)
    pace.on_throttled(now, now)
    return pace


def first_rate(starts: dict[int, int], throttled_at: float) -> float | None:
    """The rate a fresh pace takes at its first 429, after ``starts`` (second: count)."""
    pace = Pace()
    for second, count in starts.items():
        for step in range(count):
            pace.note_start(second + step / count)  # spread over that second
    pace.on_throttled(throttled_at, throttled_at)
    return pace.rate


class TestPaceArithmetic:
    def test_nothing_is_paced_before_the_first_429(self) -> None:
        pace = Pace()
        assert pace.rate is None
        assert [pace.reserve(float(t), FAR) for t in range(5)] == [0.0] * 5

    def test_the_first_429_starts_from_what_was_sent_in_the_last_second(self) -> None:
        pace = throttled_pace(starts=100)
        assert pace.rate == 100.0
        waits = [pace.reserve(10.0, FAR) for _ in range(4)]
        assert waits == pytest.approx([0.0, 0.01, 0.02, 0.03])  # slots 1/100 s apart

    def test_a_429_for_a_slot_planned_before_the_last_cut_does_not_cut_again(self) -> None:
        pace = throttled_pace(starts=100)
        pace.on_throttled(planned_at=10.15, now=10.2)  # planned after the first cut
        assert pace.rate == pytest.approx(90.0)
        pace.on_throttled(planned_at=10.19, now=10.3)  # planned before the second
        assert pace.rate == pytest.approx(90.0)
        pace.on_throttled(planned_at=10.25, now=10.4)
        assert pace.rate == pytest.approx(81.0)

    def test_in_slow_start_a_429_for_a_slot_planned_just_after_the_cut_is_ignored(
        self,
    ) -> None:
        # Requests sent before pacing began are still emptying the server's bucket.
        pace = throttled_pace(starts=100)
        pace.on_throttled(planned_at=10.05, now=10.1)
        assert pace.rate == 100.0

    def test_the_rate_never_falls_below_one_request_a_second(self) -> None:
        pace = throttled_pace(starts=2)
        for step in range(1, 50):
            pace.on_throttled(planned_at=10.0 + step, now=10.0 + step)
        assert pace.rate == Pace.MIN_RATE

    def test_slow_start_doubles_the_rate_per_tenth_of_a_second_of_answers(self) -> None:
        pace = throttled_pace(starts=100)
        pace.reserve(10.0, FAR)
        pace.reserve(10.0, FAR)  # a caller queues
        for _ in range(10):  # 0.1 s of answers at 100/s
            pace.on_accepted(10.05)
        assert pace.rate == pytest.approx(200.0)

    def test_after_slow_start_each_answer_adds_a_little(self) -> None:
        pace = throttled_pace(starts=100)
        pace.on_throttled(planned_at=10.2, now=10.2)  # ends slow start: 90/s
        pace.reserve(10.2, FAR)
        pace.reserve(10.2, FAR)
        for _ in range(90):  # one second of answers
            pace.on_accepted(10.3)
        assert pace.rate == pytest.approx(90.0 * 1.05)

    def test_the_rate_grows_only_while_callers_queue_and_answers_come(self) -> None:
        pace = throttled_pace(starts=100)
        pace.on_accepted(12.0)  # nobody has waited for a slot in the last second
        assert pace.rate == 100.0
        only_429 = throttled_pace(starts=100)
        for _ in range(50):
            only_429.reserve(10.0, FAR)
        assert only_429.rate == 100.0  # time alone never raises the pace

    def test_pacing_ends_after_thirty_quiet_seconds(self) -> None:
        pace = throttled_pace()
        assert pace.reserve(10.0 + Pace.FORGET_AFTER + 0.1, FAR) == 0.0
        assert pace.rate is None

    def test_a_slot_past_the_deadline_is_refused_and_not_taken(self) -> None:
        pace = throttled_pace(starts=1)  # 1 request/s
        assert pace.reserve(10.0, FAR) == 0.0
        assert pace.reserve(10.0, deadline=10.5) is None
        assert pace.reserve(10.0, FAR) == pytest.approx(1.0)  # the refused slot is free

    def test_a_ceiling_paces_from_the_start_and_is_never_exceeded(self) -> None:
        pace = Pace(ceiling=10.0)
        starts = []
        now = 0.0
        for _ in range(200):
            now += pace.reserve(now, FAR) or 0.0
            starts.append(now)
        assert pace.rate == 10.0
        # Any one-second window, half open, holds at most 10 starts.
        busiest = max(sum(1 for s in starts if t <= s < t + 1.0) for t in starts)
        assert busiest == 10

    def test_a_429_below_a_ceiling_cuts_the_rate_and_growth_stops_at_the_ceiling(self) -> None:
        pace = Pace(ceiling=10.0)
        pace.reserve(0.0, FAR)
        pace.on_throttled(0.0, 0.1)
        assert pace.rate == pytest.approx(9.0)
        pace.reserve(0.1, FAR)
        pace.reserve(0.1, FAR)
        for _ in range(1000):
            pace.on_accepted(0.2)
        assert pace.rate == 10.0

    def test_the_first_429_counts_starts_spread_over_the_second(self) -> None:
        assert first_rate({10: 100}, throttled_at=10.995) == 100.0

    def test_the_first_429_starts_from_the_busier_of_this_second_and_the_last(self) -> None:
        assert first_rate({9: 50, 10: 5}, throttled_at=10.5) == 50.0

    def test_the_first_429_in_a_second_with_no_start_yet_counts_the_last_one(self) -> None:
        # 64 callers started just before 11.0 and all wait for their answers.
        assert first_rate({10: 64}, throttled_at=11.02) == 64.0

    def test_the_first_429_ignores_starts_older_than_the_last_second(self) -> None:
        assert first_rate({8: 50, 10: 5}, throttled_at=10.5) == 5.0
        long_ago = Pace()
        for _ in range(50):
            long_ago.note_start(5.0)
        long_ago.on_throttled(20.0, 20.0)
        assert long_ago.rate == Pace.MIN_RATE

    def test_a_clock_that_starts_at_zero_is_no_special_case(self) -> None:
        # FakeClock(start=0.0) and a fresh event loop may both read zero.
        assert Pace(ceiling=10.0).reserve(0.0, FAR) == 0.0
        pace = Pace()
        for _ in range(5):
            pace.note_start(0.5)
        pace.on_throttled(0.5, 0.5)
        assert pace.rate == 5.0

    def test_pacing_holds_while_the_last_429_is_recent(self) -> None:
        pace = throttled_pace(starts=100, now=100.0)
        assert pace.reserve(101.0, FAR) == 0.0
        assert pace.reserve(101.0, FAR) == pytest.approx(0.01)
        assert pace.rate == 100.0

    def test_a_caller_that_never_waits_for_a_slot_does_not_raise_the_pace(self) -> None:
        pace = throttled_pace(starts=100)
        assert pace.reserve(10.0, FAR) == 0.0  # its slot was free: nobody queued
        pace.on_accepted(10.05)
        assert pace.rate == 100.0

    def test_the_repr_shows_the_rate_in_force_and_the_ceiling(self) -> None:
        assert repr(Pace()) == "Pace(unlimited, ceiling=None)"
        assert repr(Pace(ceiling=12.5)) == "Pace(12.5/s, ceiling=12.5)"

    def test_the_earliest_start_is_now_or_the_next_free_slot(self) -> None:
        assert Pace().earliest_start(5.0) == 5.0
        pace = throttled_pace(starts=100)
        pace.reserve(10.0, FAR)
        pace.reserve(10.0, FAR)
        assert pace.earliest_start(10.0) == pytest.approx(10.02)
        assert pace.earliest_start(11.0) == 11.0


class TestRateLimitSetting:
    @pytest.mark.parametrize("value", [0, 0.5, -1, float("nan"), float("inf"), True, "10"])
    def test_an_unusable_rate_limit_is_a_configuration_error(self, value: object) -> None:
        with pytest.raises(ConfigurationError, match="rate_limit"):
            KodMobiClient(SECRET_KEY, rate_limit=value)  # type: ignore[arg-type]


@pytest.fixture
async def limited() -> AsyncIterator[FakeKodMobi]:
    async with FakeKodMobi(api_keys=[SECRET_KEY], rate_limit=200, burst=20) as fake:
        yield fake


class TestAgainstARateLimitedServer:
    """Over real sockets, on the real clock: pacing is about time, at rates high enough
    that each test spends under two seconds."""

    async def test_a_batch_loses_no_id_and_spends_no_retry_budget(
        self, limited: FakeKodMobi
    ) -> None:
        ids = limited.add_sessions(300)
        # A budget of 5 would be gone after five 429 retries if 429s spent it.
        policy = RetryPolicy(budget=5)
        async with KodMobiClient(SECRET_KEY, base_url=limited.url, retry=policy) as client:
            results = await client.gather_session_channels(ids, concurrency=64)
        statuses = [r.status for r in limited.requests]
        assert len(results.ok) == 300
        assert statuses.count(429) > 0  # the limit was met, and overcome
        assert not any(isinstance(e, RetryBudgetExhaustedError) for e in results.errors.values())
        assert len(statuses) < 300 * 2  # learning the pace costs some 429s, not a flood

    async def test_concurrent_callers_share_one_pace(self, limited: FakeKodMobi) -> None:
        ids = limited.add_sessions(200)
        async with KodMobiClient(SECRET_KEY, base_url=limited.url) as client:
            # Two "handlers" call one client at once, as FastAPI requests would.
            halves = await asyncio.gather(
                client.gather_session_channels(ids[:100], concurrency=32),
                client.gather_session_channels(ids[100:], concurrency=32),
            )
            pace = client._transport._pace.rate
        assert all(len(h.ok) == 100 for h in halves)
        assert pace is not None  # one shared pace was learned from the 429s

    async def test_an_explicit_rate_limit_is_never_exceeded_and_meets_no_429(
        self, limited: FakeKodMobi
    ) -> None:
        ids = limited.add_sessions(150)
        starts: list[float] = []

        async def on_start(
            _session: object, _ctx: object, _params: aiohttp.TraceRequestStartParams
        ) -> None:
            starts.append(time.monotonic())

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_start)
        async with (
            aiohttp.ClientSession(trace_configs=[trace]) as session,
            KodMobiClient(
                SECRET_KEY, base_url=limited.url, session=session, rate_limit=100
            ) as client,
        ):
            results = await client.gather_session_channels(ids, concurrency=64)
        assert len(results.ok) == 150
        assert [r.status for r in limited.requests].count(429) == 0
        busiest = max(sum(1 for s in starts if t <= s < t + 1.0) for t in starts)
        assert busiest <= 100
        assert limited.max_requests_in_window(1.0) <= 100 + 1  # + loopback jitter

    async def test_a_server_that_only_answers_429_gets_no_more_than_the_pace(self) -> None:
        async with FakeKodMobi(api_keys=[SECRET_KEY], rate_limit=1, burst=1) as fake:
            ids = fake.add_sessions(64)
            fake.set_rate_limit(1, burst=1, retry_after=0)  # 429 at once, wait 0
            async with KodMobiClient(SECRET_KEY, base_url=fake.url, timeout=1.5) as client:
                results = await client.gather_session_channels(ids, concurrency=64)
            received = fake.request_count
        # Unpaced, 64 workers retrying at once for 1.5 s would send thousands.
        assert received < 64 + 200
        assert all(
            isinstance(e, RateLimitError) or e.__class__.__name__ == "APITimeoutError"
            for e in results.errors.values()
        )


class TestPaceState:
    async def test_the_client_reports_its_pace_and_pauses(self) -> None:
        async with FakeKodMobi(api_keys=[SECRET_KEY]) as fake:
            client = KodMobiClient(SECRET_KEY, base_url=fake.url, rate_limit=50)
            assert client.pace.rate == 50
            assert client.pace.ceiling == 50
            assert client.pace.limited
            free = KodMobiClient(SECRET_KEY, base_url=fake.url)
            assert free.pace.rate is None
            assert free.pace.paused_for == 0.0
            assert not free.pace.limited
            await client.close()
            await free.close()

    async def test_a_503_pause_shows_as_paused_for(
        self, fake: FakeKodMobi, make_client: ClientFactory, clock: FakeClock
    ) -> None:
        fake.script(Fault.status(503, retry_after=3))
        async with make_client(retry=RetryPolicy.disabled()) as client:
            with pytest.raises(ServerError):
                await client.get_session_channels()
            assert client.pace.paused_for == pytest.approx(3.0)
            assert client.pace.limited
            clock.advance(3.0)
            assert not client.pace.limited


class TestCeilingWindow:
    def test_a_late_start_never_puts_one_too_many_into_a_second(self) -> None:
        pace = Pace(ceiling=3.0)
        for at in (0.0, 0.1, 0.2):
            assert pace.window_wait(at) == 0.0
            pace.record_start(at)
        # A fourth start must wait until the first is a second old.
        assert pace.window_wait(0.5) == pytest.approx(0.5)
        assert pace.window_wait(1.0) == 0.0

    @pytest.mark.parametrize("ceiling", [1.0, 1.5])
    def test_a_ceiling_below_two_allows_one_start_a_second(self, ceiling: float) -> None:
        pace = Pace(ceiling=ceiling)
        pace.record_start(0.0)
        assert pace.window_wait(0.5) == pytest.approx(0.5)
        assert pace.window_wait(1.0) == 0.0

    def test_without_a_ceiling_nothing_is_held(self) -> None:
        pace = Pace()
        for at in range(10):
            pace.record_start(at / 100)
        assert pace.window_wait(0.1) == 0.0
