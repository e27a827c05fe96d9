"""Many lookups at once: a bounded pool of workers pulling ids from the input.

``asyncio.gather`` over one task per id creates every task up front, lets requests
time out while they queue for a connection, and fails the batch on the first error.
Here a fixed number of workers pull ids lazily (so a generator of millions never
becomes millions of tasks), each lookup's deadline starts when a worker takes it, and
every id ends with exactly one outcome: its channels or its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sized,
)

from ._errors import (
    APIError,
    AuthenticationError,
    ClientStateError,
    ConfigurationError,
    KodMobiError,
    PermissionDeniedError,
)
from ._models import SessionChannel
from ._outcomes import BatchResult, Outcome, ProgressCallback
from ._protocol import validate_session_id
from ._seen import SeenIds

__all__ = ["BatchResult", "Outcome", "ProgressCallback", "gather", "stream"]

#: Looks up one (valid) session id; the batch knows nothing else of the client.
Lookup = Callable[[str], Awaitable[list[SessionChannel]]]

# Errors that would fail every further lookup the same way: stop the batch.
_FATAL = (AuthenticationError, PermissionDeniedError, ClientStateError)
_PENDING: object = object()
_END: object = object()


#: How often a batch with ``on_progress`` calls it while no lookup finishes.
HEARTBEAT_SECONDS = 0.5

# Workers are tasks: more than this is a typo, and would take the memory of a typo.
MAX_CONCURRENCY = 65_536


def _check_concurrency(concurrency: object) -> int:
    if type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY:
        shown = (
            f"an integer of {concurrency.bit_length()} bits"
            if type(concurrency) is int and concurrency.bit_length() > 64
            else repr(concurrency)[:80]
        )
        msg = f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}, got {shown}"
        raise ConfigurationError(msg)
    return concurrency


def _unexpected(session_id: str, exc: Exception) -> APIError:
    error = APIError(
        f"looking up {session_id!r} failed unexpectedly with {type(exc).__name__} "
        "(a bug in kodmobi-async or a dependency; please report it)"
    )
    error.__cause__ = exc
    return error


class _Source:
    """The input, read one id at a time by whichever worker is free."""

    def __init__(self, session_ids: Iterable[str] | AsyncIterable[str]) -> None:
        self.total: int | None = len(session_ids) if isinstance(session_ids, Sized) else None
        #: The input as a plain iterator, when it is one (workers read it directly).
        self.plain: Iterator[object] | None = None
        self._async: AsyncIterator[str] | None = None
        if isinstance(session_ids, AsyncIterable):
            self._async = aiter(session_ids)
        elif isinstance(session_ids, str | bytes):
            msg = (
                "session_ids must be an iterable of ids, not a single string; "
                "wrap one id in a list: [session_id]"
            )
            raise ConfigurationError(msg)
        elif isinstance(session_ids, Iterable):
            self.plain = iter(session_ids)
        else:
            msg = f"session_ids must be an iterable of ids, got {type(session_ids).__name__}"
            raise ConfigurationError(msg)
        # Two workers must not be inside one async generator's __anext__ at once.
        self._lock = asyncio.Lock()
        self.exhausted = False

    async def next(self) -> object:
        """The next item of an async input, or ``_END``; a ``None`` in it is an item."""
        if self.exhausted:
            return _END
        assert self._async is not None  # noqa: S101 -- plain inputs never come here
        async with self._lock:
            if self.exhausted:
                return _END
            try:
                return await anext(self._async)
            except StopAsyncIteration:
                self.exhausted = True
                return _END


class _Batch:
    """State shared by the workers of one batch.

    Outcomes go either into ``store`` (a dict that also serves as the seen-set and
    keeps input order, for :func:`gather`) or through ``deliver`` (for :func:`stream`).
    """

    def __init__(
        self,
        lookup: Lookup,
        session_ids: Iterable[str] | AsyncIterable[str],
        concurrency: int,
        on_progress: ProgressCallback | None,
        *,
        store: dict[str, Outcome] | None = None,
        deliver: Callable[[tuple[str, Outcome]], Awaitable[None]] | None = None,
    ) -> None:
        self.concurrency = _check_concurrency(concurrency)
        self.lookup = lookup
        self.source = _Source(session_ids)
        self.on_progress = on_progress
        self.store = store
        self.deliver = deliver
        # gather's result dict already holds every id; a stream needs its own memory.
        self.seen = SeenIds() if store is None else None
        self.done = 0
        self.fatal: KodMobiError | None = None

    def _progress(self) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(self.done, self.source.total)

    def _is_new(self, session_id: str) -> bool:
        store = self.store
        if store is None:
            assert self.seen is not None  # noqa: S101 -- set whenever store is not
            return self.seen.add(session_id)
        if session_id in store:
            return False
        # Reserves the id's place so the result keeps input order.
        store[session_id] = _PENDING  # type: ignore[assignment]
        return True

    async def _worker(self) -> None:
        fetch = self.lookup
        source = self.source
        plain = source.plain
        is_new = self._is_new
        store = self.store
        deliver = self.deliver
        while self.fatal is None:
            # A plain iterable is read without a coroutine per id: it cannot block.
            item = next(plain, _END) if plain is not None else await source.next()
            if item is _END:
                return
            # Junk in the input is an outcome like any bad id, keyed by its repr so it
            # can be reported (a list, say, is not even hashable).
            session_id = item if isinstance(item, str) else repr(item)
            if not is_new(session_id):
                self._progress()
                continue
            outcome: Outcome
            try:
                if session_id is not item:
                    validate_session_id(item)  # raises, saying what the item was
                outcome = await fetch(session_id)
            except _FATAL as error:
                if self.fatal is None:
                    self.fatal = error
                return
            except KodMobiError as error:
                outcome = error
            except Exception as exc:  # a bug in one lookup must not lose the others
                outcome = _unexpected(session_id, exc)
            if store is not None:
                store[session_id] = outcome
            else:
                assert deliver is not None  # noqa: S101 -- one of the two is always set
                await deliver((session_id, outcome))
            self._progress()

    async def run(self) -> None:
        """Run the workers; on the first fatal error cancel the rest and raise it."""
        workers = [asyncio.ensure_future(self._worker()) for _ in range(self.concurrency)]
        # With a progress callback, wake up now and then: while a rate limit or a pause
        # holds every lookup back, the callback still hears from the batch (with the
        # same counts), so a display can keep moving and say why it waits.
        heartbeat = HEARTBEAT_SECONDS if self.on_progress is not None else None
        reported = -1
        try:
            waiting = set(workers)
            while waiting and self.fatal is None:
                finished, waiting = await asyncio.wait(
                    waiting, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED
                )
                for task in finished:
                    task.result()  # a bug in a worker, or in on_progress, surfaces here
                if not finished and self.on_progress is not None:
                    if self.done == reported:
                        self.on_progress(self.done, self.source.total)
                    reported = self.done
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self.seen is not None:
                self.seen.close()
        if self.fatal is not None:
            raise self.fatal


async def gather(
    lookup: Lookup,
    session_ids: Iterable[str] | AsyncIterable[str],
    *,
    concurrency: int,
    on_progress: ProgressCallback | None,
) -> BatchResult:
    """Look up every distinct id through ``lookup``; one outcome each, in input order.

    The implementation of :meth:`KodMobiClient.gather_session_channels`.
    """
    outcomes: dict[str, Outcome] = {}
    batch = _Batch(lookup, session_ids, concurrency, on_progress, store=outcomes)
    try:
        await batch.run()
    except _FATAL as error:
        missing = tuple(k for k, v in outcomes.items() if v is _PENDING)
        done = {k: v for k, v in outcomes.items() if v is not _PENDING}
        error.partial_result = BatchResult(done, missing)
        raise
    return BatchResult(outcomes)


async def stream(
    lookup: Lookup,
    session_ids: Iterable[str] | AsyncIterable[str],
    *,
    concurrency: int,
    on_progress: ProgressCallback | None,
) -> AsyncGenerator[tuple[str, Outcome], None]:
    """Like :func:`gather`, yielding each outcome as it is ready.

    The implementation of :meth:`KodMobiClient.iter_session_channels`.
    """
    # Bounded, so a slow consumer holds the workers back instead of piling up outcomes.
    queue: asyncio.Queue[tuple[str, Outcome] | None] = asyncio.Queue(maxsize=concurrency * 2)
    batch = _Batch(lookup, session_ids, concurrency, on_progress, deliver=queue.put)

    async def supervise() -> None:
        try:
            await batch.run()
        except asyncio.CancelledError:
            raise  # only the consumer cancels us, and it is no longer listening
        except BaseException:
            await queue.put(None)
            raise
        await queue.put(None)

    supervisor = asyncio.ensure_future(supervise())
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            yield item
        # Every outcome was queued before the end marker: nothing is left behind it.
        await supervisor  # raises the fatal error that stopped the batch, if any
    finally:
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
