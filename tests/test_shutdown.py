"""What a call in flight gets when its client closes: a ClientStateError, promptly.

Never a CancelledError the caller did not ask for (a TaskGroup or an ASGI server would
take that for its own cancellation), never aiohttp's bare "Session is closed".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from kodmobi_async import (
    AuthenticationError,
    ClientStateError,
    KodMobiClient,
    RetryPolicy,
    SessionChannel,
)
from kodmobi_async.testing import FakeKodMobi, Fault

from .conftest import SECRET_KEY

T = TypeVar("T")

# Long waits that a prompt shutdown must cut short; a test that actually waited them
# would time out long before they end.
LONG = 30.0
SLOW_RETRY = RetryPolicy(initial_wait=LONG, max_wait=LONG, jitter=False)


def client_for(fake: FakeKodMobi, **options: Any) -> KodMobiClient:
    options.setdefault("timeout", 120.0)
    return KodMobiClient(SECRET_KEY, base_url=fake.url, **options)


async def outcome_of(call: Awaitable[T]) -> T | BaseException:
    try:
        return await call
    except BaseException as error:  # the outcome is what is checked
        return error


async def until(predicate: Any, *, limit: float = 10.0) -> None:
    """Yield to the loop until ``predicate()`` holds (polling, not sleeping a guess)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.001)


class TestCloseWhileCallsAreInFlight:
    async def test_a_call_mid_request_gets_a_client_state_error(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.delay(LONG))
        client = client_for(fake, retry=RetryPolicy.disabled())
        call = asyncio.ensure_future(outcome_of(client.get_session_channels()))
        assert await fake.wait_for_requests(1, timeout=10)

        started = time.monotonic()
        await client.close()
        error = await call

        assert isinstance(error, ClientStateError)
        assert "closed" in str(error)
        assert time.monotonic() - started < 5

    async def test_calls_waiting_for_a_pooled_connection_get_a_client_state_error(
        self, fake: FakeKodMobi
    ) -> None:
        fake.script(Fault.delay(LONG), times=None)
        client = client_for(fake, max_connections=1, retry=RetryPolicy.disabled())
        calls = [asyncio.ensure_future(outcome_of(client.get_session_channels())) for _ in range(4)]
        # One request holds the only connection; the other three wait for it.
        assert await fake.wait_for_requests(1, timeout=10)
        for _ in range(20):
            await asyncio.sleep(0)

        await client.close()
        outcomes = await asyncio.gather(*calls)

        assert fake.request_count == 1
        assert all(isinstance(o, ClientStateError) for o in outcomes), outcomes
        assert not any(isinstance(o, asyncio.CancelledError) for o in outcomes)

    async def test_a_call_in_retry_backoff_is_woken_with_a_client_state_error(
        self, fake: FakeKodMobi
    ) -> None:
        fake.script(Fault.status(503))
        client = client_for(fake, retry=SLOW_RETRY)
        call = asyncio.ensure_future(outcome_of(client.get_session_channels()))
        assert await fake.wait_for_requests(1, timeout=10)
        await until(lambda: client._transport._sleepers)  # now waiting out the 30 s backoff

        started = time.monotonic()
        await client.close()
        error = await call

        assert isinstance(error, ClientStateError)
        assert time.monotonic() - started < 5
        assert fake.request_count == 1  # woken, not retried on a closed pool

    async def test_a_call_paused_by_retry_after_is_woken_with_a_client_state_error(
        self, fake: FakeKodMobi
    ) -> None:
        ids = fake.add_sessions(2)
        fake.script_session(ids[0], Fault.status(503, retry_after=int(LONG)))
        client = client_for(fake, retry=RetryPolicy.disabled())
        limited = await outcome_of(client.get_session_channels(ids[0]))
        waiting = asyncio.ensure_future(outcome_of(client.get_session_channels(ids[1])))
        await until(lambda: client._transport._sleepers)  # held at the client-wide pause

        await client.close()

        assert not isinstance(limited, ClientStateError)
        assert isinstance(await waiting, ClientStateError)
        assert fake.request_count == 1

    async def test_the_callers_own_cancellation_stays_a_cancellation(
        self, fake: FakeKodMobi
    ) -> None:
        fake.script(Fault.status(503))
        client = client_for(fake, retry=SLOW_RETRY)
        call = asyncio.ensure_future(client.get_session_channels())
        await until(lambda: client._transport._sleepers)

        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await client.close()

    async def test_leaving_async_with_ends_calls_of_other_tasks(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.delay(LONG), times=None)
        calls: list[asyncio.Future[list[SessionChannel] | BaseException]] = []
        async with client_for(fake, retry=RetryPolicy.disabled()) as client:
            calls = [asyncio.ensure_future(outcome_of(client.get_session_channels()))]
            assert await fake.wait_for_requests(1, timeout=10)

        assert isinstance(await calls[0], ClientStateError)
        assert await fake.wait_connections_closed(timeout=5)

    async def test_a_batch_stopped_by_close_keeps_every_finished_outcome(
        self, fake: FakeKodMobi
    ) -> None:
        ids = fake.add_sessions(30)
        for session_id in ids[10:]:
            fake.script_session(session_id, Fault.delay(LONG))
        client = client_for(fake, retry=RetryPolicy.disabled())
        batch = asyncio.ensure_future(client.gather_session_channels(ids, concurrency=5))
        await until(lambda: fake.request_count >= 15)

        await client.close()
        with pytest.raises(ClientStateError) as info:
            await batch

        partial = info.value.partial_result
        assert partial is not None
        assert list(partial) == ids[:10]  # all ten answered lookups, in input order
        assert all(isinstance(v, list) for v in partial.values())
        assert set(partial.not_looked_up) == set(ids[10:15])  # the five in flight
        assert partial  # holds something, so `if result:` sees it


class TestBatchResultTruth:
    async def test_a_result_with_only_ids_not_looked_up_is_truthy(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.status(401), times=None)
        ids = fake.add_sessions(3)
        async with client_for(fake) as client:
            with pytest.raises(AuthenticationError) as info:
                await client.gather_session_channels(ids, concurrency=3)
        partial = info.value.partial_result
        assert partial is not None
        assert len(partial) == 0
        assert partial.not_looked_up
        assert partial


class TestProgressWhileHeldBack:
    async def test_on_progress_keeps_being_called_while_no_lookup_finishes(
        self, fake: FakeKodMobi, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("kodmobi_async._batch.HEARTBEAT_SECONDS", 0.02)
        ids = fake.add_sessions(3)
        fake.script(Fault.delay(0.4), times=None)  # every lookup is held for 0.4 s
        calls: list[tuple[int, int | None]] = []
        async with client_for(fake) as client:
            await client.gather_session_channels(
                ids, concurrency=3, on_progress=lambda done, total: calls.append((done, total))
            )
        assert calls.count((0, 3)) >= 3  # heard from the batch before any lookup ended
        assert calls[-1] == (3, 3)
