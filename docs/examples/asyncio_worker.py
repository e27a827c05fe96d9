"""A long-running asyncio worker that checks kod.mobi sessions as they arrive.

Session ids come in on an :class:`asyncio.Queue` (fed by a message broker, a database
poller, a webhook...). :class:`SessionWorker` checks them with a fixed number of
consumer tasks, so at most ``concurrency`` lookups are in flight, and hands each
outcome to a callback. On SIGTERM or SIGINT it stops taking ids, gives the lookups in
flight a grace period to finish, and reports the ids it had to abandon, so no id is
lost; the client's ``async with`` then closes every connection.

Usage: ``python asyncio_worker.py [--forever]``. Without ``KODMOBI_BASE_URL`` it starts
the SDK's fake kod.mobi on a loopback port and feeds the queue itself: once, or, with
``--forever``, until you stop it with Ctrl-C or ``kill -TERM``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence

from kodmobi_async import (
    AuthenticationError,
    KodMobiClient,
    KodMobiError,
    Outcome,
    PermissionDeniedError,
)

Handler = Callable[[str, Outcome], Awaitable[None]]


class SessionWorker:
    """Check session ids from ``queue``, ``concurrency`` at a time, until stopped.

    Every id the worker takes from the queue ends in exactly one place: ``handle`` was
    awaited with its outcome (its channels, or the error of its lookup), or it is in
    :attr:`unfinished` because the worker stopped before it was done. Ids still in the
    queue were never taken.

    Args:
        client: The client to look sessions up with; the caller keeps it open.
        queue: Where session ids arrive.
        handle: Called with each id and its outcome.
        concurrency: How many lookups may be in flight at once.
    """

    def __init__(
        self,
        client: KodMobiClient,
        queue: asyncio.Queue[str],
        handle: Handler,
        *,
        concurrency: int = 10,
    ) -> None:
        if concurrency < 1:
            msg = f"concurrency must be >= 1, got {concurrency}"
            raise ValueError(msg)
        self._client = client
        self._queue = queue
        self._handle = handle
        self._concurrency = concurrency
        self._stopping = False
        self._in_flight: dict[asyncio.Task[None], str] = {}
        #: How many ids were handled.
        self.handled = 0
        #: Ids taken from the queue but not handled when the worker stopped.
        self.unfinished: list[str] = []

    async def run(self, stop: asyncio.Event, *, grace: float = 10.0) -> None:
        """Check ids until ``stop`` is set, then shut down cleanly.

        Shutting down: no new id is taken; lookups in flight get ``grace`` seconds to
        finish; the rest are cancelled and their ids go to :attr:`unfinished`. The same
        happens, without the grace period, when the task running this is cancelled.

        Raises:
            AuthenticationError: The API key was rejected: every lookup would fail the
                same way, so the worker stops (its id is in :attr:`unfinished`).
            PermissionDeniedError: Likewise, for a key that may not do lookups.
        """
        consumers = [asyncio.create_task(self._consume()) for _ in range(self._concurrency)]
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopped, *consumers], return_when=asyncio.FIRST_COMPLETED)
            self._stopping = True
            for consumer in consumers:
                if consumer not in self._in_flight:
                    consumer.cancel()  # idle, waiting for the queue: nothing to lose
            busy = list(self._in_flight)
            if busy:
                await asyncio.wait(busy, timeout=grace)
            for consumer in consumers:
                if consumer in done:
                    consumer.result()  # it died early (a rejected key): raise its error
        finally:
            stopped.cancel()
            for consumer in consumers:
                consumer.cancel()
            await asyncio.gather(stopped, *consumers, return_exceptions=True)

    async def _consume(self) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 -- always inside a task
        while not self._stopping:
            session_id = await self._queue.get()
            self._in_flight[task] = session_id
            try:
                outcome = await self._check(session_id)
                await self._handle(session_id, outcome)
            except BaseException:  # cancelled, or a fatal error: the id is not done
                self.unfinished.append(session_id)
                raise
            else:
                self.handled += 1
            finally:
                del self._in_flight[task]
                self._queue.task_done()

    async def _check(self, session_id: str) -> Outcome:
        try:
            return await self._client.get_session_channels(session_id)
        except (AuthenticationError, PermissionDeniedError):
            raise
        except KodMobiError as error:
            return error


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT while in the block (where the OS allows)."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows' default event loop
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


# -- running it ------------------------------------------------------------------


async def print_outcome(session_id: str, outcome: Outcome) -> None:
    """The demonstration's handler: one line per session."""
    if isinstance(outcome, KodMobiError):
        print(f"{session_id}: {type(outcome).__name__}")
    else:
        ready = [str(c.type) for c in outcome if c.is_active and not c.is_blocked]
        print(f"{session_id}: ready on {', '.join(ready) or 'nothing'}")


async def work(client: KodMobiClient, queue: asyncio.Queue[str], stop: asyncio.Event) -> None:
    """Run a worker until ``stop`` is set, and say what became of the ids."""
    worker = SessionWorker(client, queue, print_outcome, concurrency=20)
    with stop_on_signals(stop):
        print("worker running; stop it with Ctrl-C or SIGTERM", flush=True)
        await worker.run(stop, grace=5.0)
    # A real worker would give these back to where they came from (nack the message,
    # unlock the row) so another worker picks them up.
    print(
        f"stopped: {worker.handled} handled, {len(worker.unfinished)} unfinished, "
        f"{queue.qsize()} never taken",
        flush=True,
    )


async def main(argv: Sequence[str] | None = None) -> None:
    """Run the worker against a fake kod.mobi, unless ``KODMOBI_BASE_URL`` is set."""
    from kodmobi_async.testing import FakeKodMobi, new_session_id

    args = sys.argv[1:] if argv is None else list(argv)
    forever = "--forever" in args
    queue: asyncio.Queue[str] = asyncio.Queue()
    stop = asyncio.Event()

    async def stop_when_all_handled() -> None:
        await queue.join()
        stop.set()

    if os.environ.get("KODMOBI_BASE_URL"):
        # The ids given on the command line, then stop.
        for session_id in args:
            if session_id != "--forever":
                queue.put_nowait(session_id)
        async with KodMobiClient() as client:
            watcher = asyncio.create_task(stop_when_all_handled())
            await work(client, queue, stop)
            await watcher
        return

    async with (
        FakeKodMobi(latency=0.01) as fake,
        KodMobiClient(api_key=fake.api_key, base_url=fake.url) as client,
    ):

        async def produce() -> None:
            while True:
                for session_id in [*fake.add_sessions(9), new_session_id()]:
                    await queue.put(session_id)  # one unknown id in ten
                if not forever:
                    return await stop_when_all_handled()
                await asyncio.sleep(0.05)

        producer = asyncio.create_task(produce())
        try:
            await work(client, queue, stop)
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
