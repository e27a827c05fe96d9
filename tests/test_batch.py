"""Batch lookups against FakeKodMobi over real sockets."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from kodmobi_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BatchResult,
    ConfigurationError,
    FakeClock,
    InvalidSessionIdError,
    KodMobiClient,
    NotFoundError,
    PermissionDeniedError,
    RetryBudgetExhaustedError,
    RetryPolicy,
    ServerError,
    SessionChannel,
)
from kodmobi_async.testing import FakeKodMobi, Fault, new_session_id

from .conftest import SECRET_KEY, ClientFactory

FAST_RETRY = RetryPolicy(initial_wait=0.0, jitter=False)


class TestGather:
    async def test_ten_thousand_ids_with_transient_failures_all_get_channels(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(10_000)
        flaky = random.Random(7).sample(ids, 500)
        for index, session_id in enumerate(flaky):
            fault = Fault.drop() if index % 2 else Fault.status(503)
            fake.script_session(session_id, fault, times=1)
        async with make_client(retry=FAST_RETRY) as client:
            results = await client.gather_session_channels(ids, concurrency=64)
        assert isinstance(results, BatchResult)
        assert list(results) == ids  # input order, one entry per id
        assert len(results.ok) == 10_000
        assert results.errors == {}
        assert all(isinstance(channels, list) and channels for channels in results.values())
        first = results[ids[0]]
        assert isinstance(first, list)
        assert isinstance(first[0], SessionChannel)
        # Every flaky id was tried again; nothing else was.
        assert fake.request_count >= 10_500

    async def test_permanent_errors_are_reported_per_id(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        known = fake.add_sessions(20)
        unknown = [new_session_id() for _ in range(5)]
        ids = known[:10] + unknown + known[10:] + ["not-a-ulid"]
        async with make_client() as client:
            results = await client.gather_session_channels(ids, concurrency=8)
        assert list(results) == ids
        assert set(results.ok) == set(known)
        assert set(results.errors) == {*unknown, "not-a-ulid"}
        for session_id in unknown:
            error = results.errors[session_id]
            assert isinstance(error, NotFoundError)
            assert error.sys_message == "ERROR_MESSAGE_NOT_FOUND"
        assert isinstance(results.errors["not-a-ulid"], InvalidSessionIdError)
        assert fake.request_count == 25  # the malformed id never reached the server
        assert repr(results) == "<BatchResult ok=20 errors=6>"

    async def test_duplicates_are_looked_up_once(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(30)
        progress: list[tuple[int, int | None]] = []
        doubled = ids + ids[::-1] + ids[:5]
        async with make_client() as client:
            results = await client.gather_session_channels(
                doubled,
                concurrency=4,
                on_progress=lambda done, total: progress.append((done, total)),
            )
        assert list(results) == ids
        assert fake.request_count == 30
        assert sorted(r.session_id for r in fake.requests if r.session_id) == sorted(ids)
        assert progress[-1] == (len(doubled), len(doubled))
        assert [done for done, _ in progress] == list(range(1, len(doubled) + 1))

    async def test_outage_costs_at_most_n_plus_budget_requests(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(200)
        fake.script(Fault.status(503), times=None)
        budget = 15
        retry = RetryPolicy(attempts=4, initial_wait=0.0, jitter=False, budget=budget)
        async with make_client(retry=retry) as client:
            results = await client.gather_session_channels(ids, concurrency=16)
        fake.clear_faults()
        assert len(results.errors) == 200
        assert fake.request_count <= 200 + budget
        exhausted = [e for e in results.errors.values() if isinstance(e, RetryBudgetExhaustedError)]
        assert exhausted
        for error in exhausted:
            assert isinstance(error.__cause__, ServerError)
            assert error.last_error is error.__cause__
            assert "retry budget" in str(error)

    async def test_rate_limit_pauses_every_worker(
        self, fake: FakeKodMobi, clock: FakeClock
    ) -> None:
        ids = fake.add_sessions(40)
        fake.script_session(ids[3], Fault.status(429, retry_after=5), times=1)
        starts: list[tuple[float, str]] = []

        async def on_start(
            _session: object, _ctx: object, params: aiohttp.TraceRequestStartParams
        ) -> None:
            starts.append((clock.monotonic(), params.url.query.get("session_id", "")))

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_start)
        async with aiohttp.ClientSession(trace_configs=[trace]) as session:
            client = KodMobiClient(
                SECRET_KEY, base_url=fake.url, clock=clock, session=session, retry=FAST_RETRY
            )
            async with client:
                results = await client.gather_session_channels(ids, concurrency=8)
        assert len(results.ok) == 40
        (limited_at,) = [t for t, sid in starts if sid == ids[3]][:1]
        limited_index = next(i for i, (_, sid) in enumerate(starts) if sid == ids[3])
        # Requests already in flight may finish; every request started after the 429
        # was answered waits until the pause is over (5 s of the fake clock).
        later = starts[limited_index + 1 :]
        in_flight = 8
        assert later
        assert all(t >= limited_at + 5.0 for t, _ in later[in_flight:])
        assert clock.monotonic() - limited_at < 6.0  # paused once, not once per worker

    async def test_authentication_failure_mid_batch_stops_it(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(500)
        fake.script_session(ids[100], Fault.status(401), times=None)
        async with make_client() as client:
            with pytest.raises(AuthenticationError) as caught:
                await client.gather_session_channels(ids, concurrency=4)
        partial = caught.value.partial_result
        assert partial is not None
        assert fake.request_count < 120  # stopped at once, not after 500 lookups
        assert ids[100] in partial.not_looked_up
        assert set(partial) | set(partial.not_looked_up) <= set(ids)
        assert len(partial.ok) + len(partial.not_looked_up) <= fake.request_count + 4
        assert await fake.wait_connections_closed()

    async def test_authentication_failure_with_lookups_in_flight_stops_at_once(
        self, fake: FakeKodMobi, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        ids = fake.add_sessions(20)
        quick, bad = ids[:4], ids[4]
        # Eight workers: four quick answers free four workers, which take ids[8:12];
        # when the 401 comes, seven lookups are waiting for answers that would take 30 s.
        fake.script_session(bad, Fault.delay(0.5, then=Fault.status(401)))
        for session_id in ids[5:]:
            fake.script_session(session_id, Fault.delay(30.0))
        loop = asyncio.get_running_loop()
        caplog.set_level(logging.WARNING)
        async with make_client() as client:
            started = loop.time()
            with pytest.raises(AuthenticationError) as caught:
                await client.gather_session_channels(ids, concurrency=8)
            elapsed = loop.time() - started
            workers = [t for t in asyncio.all_tasks() if "_worker" in repr(t.get_coro())]
        assert elapsed < 5.0  # the in-flight lookups were stopped, not waited for
        assert workers == []
        partial = caught.value.partial_result
        assert partial is not None
        assert list(partial.ok) == quick
        assert partial.errors == {}
        assert partial.not_looked_up == tuple(ids[4:12])  # read, never finished
        assert repr(partial) == "<BatchResult ok=4 errors=0, not_looked_up=8>"
        assert fake.request_count == 12  # nothing past what was in flight was sent
        assert await fake.wait_connections_closed()
        gc.collect()  # an abandoned task or response would complain when collected
        assert [r.getMessage() for r in caplog.records] == []

    async def test_permission_denied_also_stops_the_batch(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(50)
        fake.script(Fault.status(403), times=None)
        async with make_client() as client:
            with pytest.raises(PermissionDeniedError):
                await client.gather_session_channels(ids, concurrency=4)
        assert fake.request_count <= 4

    async def test_cancellation_mid_batch_leaves_no_open_connection(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(200)
        fake.latency = 0.01
        async with make_client() as client:
            batch = asyncio.ensure_future(client.gather_session_channels(ids, concurrency=16))
            assert await fake.wait_for_requests(30)
            batch.cancel()
            with pytest.raises(asyncio.CancelledError):
                await batch
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert [t for t in pending if "_worker" in repr(t)] == []
        assert await fake.wait_connections_closed()
        assert fake.open_connections == 0
        assert fake.request_count < 200

    async def test_per_id_timeout_starts_when_the_lookup_starts(self, fake: FakeKodMobi) -> None:
        ids = fake.add_sessions(12)
        fake.latency = 0.05
        # 12 lookups through 2 slots take ~0.3 s in all, far beyond each one's 0.2 s
        # budget: only time spent queueing could make them time out.
        async with KodMobiClient(
            SECRET_KEY, base_url=fake.url, retry=RetryPolicy.disabled()
        ) as client:
            results = await client.gather_session_channels(ids, concurrency=2, timeout=0.2)
        assert len(results.ok) == 12

    @pytest.mark.parametrize("bad", [0, -1, 1.5, "8"], ids=["zero", "negative", "float", "string"])
    async def test_bad_concurrency_is_refused(
        self, make_client: ClientFactory, bad: object
    ) -> None:
        async with make_client() as client:
            with pytest.raises(ConfigurationError, match="concurrency"):
                await client.gather_session_channels([], concurrency=bad)  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", [0, -2.5, float("inf"), True, "5"])
    async def test_bad_batch_timeout_is_refused(
        self, make_client: ClientFactory, bad: object
    ) -> None:
        async with make_client() as client:
            with pytest.raises(ConfigurationError, match="timeout"):
                await client.gather_session_channels([], timeout=bad)  # type: ignore[arg-type]

    async def test_something_not_iterable_is_refused(self, make_client: ClientFactory) -> None:
        async with make_client() as client:
            with pytest.raises(ConfigurationError, match="iterable of ids, got int"):
                await client.gather_session_channels(42)  # type: ignore[arg-type]

    async def test_a_single_string_is_refused(self, make_client: ClientFactory) -> None:
        async with make_client() as client:
            with pytest.raises(ConfigurationError) as caught:
                await client.gather_session_channels("01HZX3Q8V6W4T1N6B2C3D4E5F6")
        assert str(caught.value) == (
            "session_ids must be an iterable of ids, not a single string; "
            "wrap one id in a list: [session_id]"
        )

    async def test_one_at_a_time_is_a_valid_concurrency(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(3)
        async with make_client() as client:
            results = await client.gather_session_channels(ids, concurrency=1)
        assert list(results.ok) == ids

    async def test_an_async_generator_is_read_to_its_end_by_several_workers(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(30)

        async def source() -> AsyncIterator[str]:
            for session_id in [*ids, ids[0]]:
                await asyncio.sleep(0)  # hand the loop to the other workers mid-read
                yield session_id

        async with make_client() as client:
            results = await client.gather_session_channels(source(), concurrency=4)
        assert list(results.ok) == ids
        assert fake.request_count == len(ids)

    async def test_non_string_ids_become_errors_not_crashes(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        (sid,) = fake.add_sessions(1)
        async with make_client() as client:
            results = await client.gather_session_channels([sid, 42, None, ["x"]])  # type: ignore[list-item]
        assert list(results) == [sid, "42", "None", "['x']"]
        assert all(isinstance(results[k], InvalidSessionIdError) for k in ["42", "None", "['x']"])
        assert str(results["42"]).endswith("got int")
        assert str(results["['x']"]).endswith("got list")

    async def test_an_async_iterator_is_not_read_again_once_it_has_ended(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(3)

        class Cursor:
            """Like a database cursor: asking again after the end is an error."""

            def __init__(self) -> None:
                self.rows = iter(ids)
                self.ended = False

            def __aiter__(self) -> Cursor:
                return self

            async def __anext__(self) -> str:
                if self.ended:
                    raise RuntimeError("cursor read after its end")
                try:
                    return next(self.rows)
                except StopIteration:
                    self.ended = True
                    raise StopAsyncIteration from None

        async with make_client() as client:
            results = await client.gather_session_channels(Cursor(), concurrency=4)
        assert list(results.ok) == ids

    async def test_empty_input_is_an_empty_result(self, make_client: ClientFactory) -> None:
        async with make_client() as client:
            results = await client.gather_session_channels([])
        assert len(results) == 0
        assert repr(results) == "<BatchResult ok=0 errors=0>"

    async def test_connection_refused_is_an_outcome_per_id(self) -> None:
        ids = [new_session_id() for _ in range(3)]
        async with KodMobiClient(
            SECRET_KEY, base_url="http://127.0.0.1:9", retry=RetryPolicy.disabled()
        ) as client:
            results = await client.gather_session_channels(ids)
        assert all(isinstance(e, APIConnectionError) for e in results.errors.values())
        assert len(results.errors) == 3


class TestIter:
    async def test_outcomes_stream_as_they_finish(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(50)
        missing = new_session_id()
        seen: dict[str, object] = {}
        async with make_client() as client:
            async for session_id, outcome in client.iter_session_channels(
                [*ids, missing, ids[0]], concurrency=5
            ):
                assert session_id not in seen
                seen[session_id] = outcome
        assert set(seen) == {*ids, missing}
        assert isinstance(seen[missing], NotFoundError)

    async def test_async_generator_of_100k_ids_runs_on_a_bounded_pool(
        self, fake: FakeKodMobi
    ) -> None:
        count = 100_000
        ids = fake.add_sessions(count)
        pulled = 0
        finished = 0
        max_ahead = 0
        max_tasks = 0

        async def source() -> AsyncIterator[str]:
            nonlocal pulled, max_ahead, max_tasks
            for session_id in ids:
                pulled += 1
                max_ahead = max(max_ahead, pulled - finished)
                if pulled % 5_000 == 0:
                    workers = [t for t in asyncio.all_tasks() if "_worker" in repr(t.get_coro())]
                    max_tasks = max(max_tasks, len(workers))
                yield session_id

        async with KodMobiClient(fake.api_key, base_url=fake.url) as client:
            async for _session_id, outcome in client.iter_session_channels(
                source(), concurrency=64
            ):
                assert isinstance(outcome, list)
                finished += 1
        assert finished == count
        # Workers pull lazily: the input is never more than a pool plus a queue ahead.
        assert max_ahead <= 64 * 3 + 1
        assert 0 < max_tasks <= 64

    async def test_fatal_error_is_raised_from_the_iterator(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(20)
        fake.script(Fault.status(401), times=None)
        async with make_client() as client:
            with pytest.raises(AuthenticationError):
                async for _ in client.iter_session_channels(ids, concurrency=3):
                    pass
        assert await fake.wait_connections_closed()

    async def test_a_slow_consumer_holds_the_workers_back(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(60)
        concurrency = 3
        # Besides what was read: one outcome in each worker's hands, and up to
        # 2 * concurrency queued for the consumer. Nothing more is looked up.
        ahead = 1 + concurrency + 2 * concurrency
        async with make_client() as client:
            stream = client.iter_session_channels(ids, concurrency=concurrency)
            await anext(stream)
            assert await fake.wait_for_requests(ahead)
            # Proving that nothing happens takes some waiting; the lookups are
            # instant, so a fraction of a second would see dozens if they ran on.
            assert not await fake.wait_for_requests(ahead + 1, timeout=0.3)
            await anext(stream)
            assert await fake.wait_for_requests(ahead + 1)  # each read frees one lookup
            assert not await fake.wait_for_requests(ahead + 2, timeout=0.3)
            rest = [session_id async for session_id, _ in stream]
        assert len(rest) == len(ids) - 2
        assert fake.request_count == len(ids)

    async def test_the_batch_timeout_applies_to_each_streamed_lookup(
        self, fake: FakeKodMobi
    ) -> None:
        ids = fake.add_sessions(3)
        fake.script_session(ids[1], Fault.delay(5.0))
        async with KodMobiClient(
            SECRET_KEY, base_url=fake.url, retry=RetryPolicy.disabled()
        ) as client:
            outcomes = dict([item async for item in client.iter_session_channels(ids, timeout=0.2)])
        assert isinstance(outcomes[ids[1]], APITimeoutError)
        assert all(isinstance(outcomes[i], list) for i in (ids[0], ids[2]))

    async def test_progress_is_reported_from_a_stream_too(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(5)
        calls: list[tuple[int, int | None]] = []
        async with make_client() as client:
            async for _ in client.iter_session_channels(
                ids, concurrency=2, on_progress=lambda done, total: calls.append((done, total))
            ):
                pass
        assert calls == [(n, 5) for n in range(1, 6)]

    async def test_breaking_out_early_cancels_the_rest(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        ids = fake.add_sessions(300)
        async with make_client() as client:
            stream = client.iter_session_channels(ids, concurrency=4)
            async for _ in stream:
                break
            await stream.aclose()
        assert fake.request_count < 50
        assert await fake.wait_connections_closed()
