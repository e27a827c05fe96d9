"""The asyncio worker how-to: every id ends somewhere, and shutting down leaks nothing.

The fake kod.mobi serves from its own thread (``kodmobi_fake``), so the only tasks on
the test's event loop are the test's and the worker's: after a shutdown,
``asyncio.all_tasks()`` must be the test alone, and the fake must count no open
connection once the client is closed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from kodmobi_async import AuthenticationError, KodMobiClient, KodMobiError, Outcome
from kodmobi_async.testing import FakeKodMobi, new_session_id

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
sys.path.insert(0, str(EXAMPLES))

from asyncio_worker import SessionWorker  # noqa: E402 -- importable once on the path


class Recorder:
    """A handler that remembers every outcome it was given."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.calls = 0

    async def __call__(self, session_id: str, outcome: Outcome) -> None:
        self.calls += 1
        self.outcomes[session_id] = outcome


@pytest.fixture
async def client(kodmobi_fake: FakeKodMobi) -> AsyncIterator[KodMobiClient]:
    async with KodMobiClient(api_key=kodmobi_fake.api_key, base_url=kodmobi_fake.url) as client:
        yield client


def queue_of(ids: Iterable[str]) -> asyncio.Queue[str]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for session_id in ids:
        queue.put_nowait(session_id)
    return queue


def drain(queue: asyncio.Queue[str]) -> list[str]:
    left = []
    while not queue.empty():
        left.append(queue.get_nowait())
    return left


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` (state that changes on another thread) until it holds."""
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    pytest.fail(f"still not true after {timeout} s")


async def assert_nothing_left(fake: FakeKodMobi, client: KodMobiClient) -> None:
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await client.close()
    assert await fake.wait_connections_closed()
    assert fake.open_connections == 0


def assert_each_id_once(
    enqueued: list[str], recorder: Recorder, worker: SessionWorker, left: list[str]
) -> None:
    handled = list(recorder.outcomes)
    assert recorder.calls == len(handled) == worker.handled
    assert sorted([*handled, *worker.unfinished, *left]) == sorted(enqueued)


class TestRunning:
    async def test_handles_every_id_then_stops(
        self, kodmobi_fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        known = kodmobi_fake.add_sessions(45)
        unknown = [new_session_id() for _ in range(5)]
        enqueued = [*known, *unknown]
        queue = queue_of(enqueued)
        recorder = Recorder()
        worker = SessionWorker(client, queue, recorder, concurrency=8)
        stop = asyncio.Event()

        async def stop_when_done() -> None:
            await queue.join()
            stop.set()

        watcher = asyncio.create_task(stop_when_done())
        await worker.run(stop)
        await watcher

        assert_each_id_once(enqueued, recorder, worker, drain(queue))
        assert worker.unfinished == []
        for session_id in known:
            assert not isinstance(recorder.outcomes[session_id], KodMobiError)
        for session_id in unknown:
            assert type(recorder.outcomes[session_id]).__name__ == "NotFoundError"
        await assert_nothing_left(kodmobi_fake, client)

    async def test_never_more_lookups_in_flight_than_its_concurrency(
        self, kodmobi_fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        kodmobi_fake.latency = 0.02
        queue = queue_of(kodmobi_fake.add_sessions(60))
        stop = asyncio.Event()
        worker = SessionWorker(client, queue, Recorder(), concurrency=4)
        task = asyncio.create_task(worker.run(stop))

        await until(lambda: worker.handled >= 20)
        stop.set()
        await task

        assert kodmobi_fake.total_connections <= 4

    def test_refuses_a_concurrency_below_one(self) -> None:
        with pytest.raises(ValueError, match="concurrency must be >= 1"):
            SessionWorker(None, queue_of([]), Recorder(), concurrency=0)  # type: ignore[arg-type]


class TestShuttingDown:
    async def test_stop_with_no_grace_returns_the_ids_in_flight(
        self, kodmobi_fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        kodmobi_fake.latency = 0.3
        enqueued = kodmobi_fake.add_sessions(40)
        queue = queue_of(enqueued)
        recorder = Recorder()
        worker = SessionWorker(client, queue, recorder, concurrency=5)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop, grace=0))

        await until(lambda: len(kodmobi_fake.requests) == 5)  # five lookups in flight
        stop.set()  # what SIGTERM does
        await task

        left = drain(queue)
        assert sorted(worker.unfinished) == sorted(enqueued[:5])
        assert left == enqueued[5:]  # never taken, still in order
        assert_each_id_once(enqueued, recorder, worker, left)
        await assert_nothing_left(kodmobi_fake, client)

    async def test_the_grace_period_lets_lookups_in_flight_finish(
        self, kodmobi_fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        kodmobi_fake.latency = 0.2
        enqueued = kodmobi_fake.add_sessions(40)
        queue = queue_of(enqueued)
        recorder = Recorder()
        worker = SessionWorker(client, queue, recorder, concurrency=5)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop, grace=5.0))

        await until(lambda: len(kodmobi_fake.requests) == 5)
        stop.set()
        await task

        left = drain(queue)
        assert worker.unfinished == []
        assert sorted(recorder.outcomes) == sorted(enqueued[:5])
        assert left == enqueued[5:]
        await assert_nothing_left(kodmobi_fake, client)

    async def test_cancelling_the_worker_returns_the_ids_in_flight(
        self, kodmobi_fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        kodmobi_fake.latency = 0.3
        enqueued = kodmobi_fake.add_sessions(40)
        queue = queue_of(enqueued)
        recorder = Recorder()
        worker = SessionWorker(client, queue, recorder, concurrency=5)
        task = asyncio.create_task(worker.run(asyncio.Event()))

        await until(lambda: len(kodmobi_fake.requests) == 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        left = drain(queue)
        assert sorted(worker.unfinished) == sorted(enqueued[:5])
        assert_each_id_once(enqueued, recorder, worker, left)
        await assert_nothing_left(kodmobi_fake, client)

    async def test_a_rejected_key_stops_the_worker_and_keeps_the_id(
        self, kodmobi_fake: FakeKodMobi
    ) -> None:
        enqueued = kodmobi_fake.add_sessions(10)
        queue = queue_of(enqueued)
        recorder = Recorder()
        async with KodMobiClient(api_key="wrong-key", base_url=kodmobi_fake.url) as client:
            worker = SessionWorker(client, queue, recorder, concurrency=1)

            with pytest.raises(AuthenticationError):
                await worker.run(asyncio.Event())

        assert worker.unfinished == enqueued[:1]
        assert_each_id_once(enqueued, recorder, worker, drain(queue))
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert await kodmobi_fake.wait_connections_closed()

    async def test_a_failing_handler_stops_the_worker_and_keeps_the_id(
        self, kodmobi_fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        enqueued = kodmobi_fake.add_sessions(3)

        async def broken(session_id: str, outcome: Outcome) -> None:
            raise RuntimeError("the database is down")

        worker = SessionWorker(client, queue_of(enqueued), broken, concurrency=1)

        with pytest.raises(RuntimeError, match="the database is down"):
            await worker.run(asyncio.Event())

        assert worker.unfinished == enqueued[:1]
        assert worker.handled == 0
        await assert_nothing_left(kodmobi_fake, client)


class TestTheProgram:
    def test_sigterm_stops_it_cleanly(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KODMOBI_")}
        env["PYTHONWARNINGS"] = "error"
        process = subprocess.Popen(  # noqa: S603 -- our own interpreter and example
            [sys.executable, str(EXAMPLES / "asyncio_worker.py"), "--forever"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith("worker running")
            handled_before = [process.stdout.readline() for _ in range(30)]
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
            process.wait()

        assert process.returncode == 0, err
        assert all(": " in line for line in handled_before)
        summary = out.strip().splitlines()[-1]
        assert summary.startswith("stopped: ")
        assert "Traceback" not in err
        assert "Unclosed" not in err
