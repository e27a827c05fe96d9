"""The fake kod.mobi server's aiohttp adapter: routing to answers, faults, recording.

What the fake answers is decided by :mod:`._answers` over the state in :mod:`._state`,
both free of I/O; this module reads the request, applies the rate limit and any
scripted fault, records the exchange and writes the answer to the socket.

State (the project, scripted faults, the rate limit's buckets, the request log and the
connection counts) sits behind one lock, because in thread mode the test scripts the
fake from one thread while the server answers on another.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Literal

from aiohttp import web

from kodmobi_async._clock import Clock, SystemClock

from ._answers import Answer, Call, answer, refusal, session_id_of
from ._controls import ProjectControls
from ._envelope import RATE_LIMITED
from ._faults import Exchange, Fault, respond
from ._limits import RateLimit, checked_retry_after
from ._record import Entry, FaultQueue, RecordedRequest
from ._state import ChannelList, Project, checked_session_id, default_channels
from ._thread import ServerThread

# Long enough for an in-flight answer to finish, short enough that closing a fake with a
# request stuck in a long Fault.delay does not stall a test.
_SHUTDOWN_GRACE_SECONDS = 0.1
_CONNECTIONS_CLOSE_WAIT_SECONDS = 1.0
_POLL_SECONDS = 0.005


class _CountingServer(web.Server):
    """aiohttp's low-level server, reporting TCP connections as they open and close."""

    def __init__(self, fake: FakeKodMobi, **kwargs: Any) -> None:
        super().__init__(fake._handle, **kwargs)
        self._fake = fake

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._fake._connection_opened()

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        self._fake._connection_closed()


class FakeKodMobi(ProjectControls):
    """A fake kod.mobi server on a loopback port, for tests and benchmarks.

    It serves the whole one-time-code flow of FLOW-SPEC (issue 10), with state, on its
    clock: ``POST /session/create``, ``POST /session/send``, ``POST /v2/check``,
    ``POST /verify``, ``GET /manual/channels``, ``POST /manual/send``,
    ``GET /v2/settings`` and ``GET /session/channels``. The rules and the assumptions
    behind them are listed in the reference page (``docs/reference/testing.md``):
    sessions live 3 minutes, one live session per ``to``, a 60 s cool-down per channel,
    3 wrong codes lock a session, a verify token verifies once. Read the codes it
    "sent" with :meth:`code_for` and :attr:`deliveries`.

    Keys: the public keys (``api_keys``) open every route but ``/verify`` and
    ``/manual/*``, which answer them 403 ``ERROR_ACCESS_DENIED``; the secret keys
    (``secret_keys``) open every route; any other key, or none, gets 401.

    ``GET /session/channels`` works as the reference describes: without ``session_id``
    the answer is the project's channel list as a bare JSON array; with one, the
    session's own list, 400 ``ERROR_BAD_REQUEST`` for an id that is not a ULID in upper
    case (a lower-case id included, which the client refuses to send), and 404
    ``ERROR_MESSAGE_NOT_FOUND`` for a ULID the fake does not know. The real service's
    answer for unknown or expired ids is undocumented; the 404 is this fake's
    assumption. Other paths get 404 ``ERROR_NOT_FOUND`` and other methods 405
    ``ERROR_METHOD_NOT_ALLOWED``. Error envelopes honour ``Accept-Language: ru``.
    Sessions registered with :meth:`add_session` are channel lists only: they never
    expire, and the flow routes answer 404 for them.

    With a rate limit (``rate_limit``, or :meth:`set_rate_limit` at any time) the fake
    admits each API key's requests through a token bucket, on every path, and answers
    the excess ``429 ERROR_TOO_MANY_REQUESTS`` with ``Retry-After``, as a gateway in
    front of the service would; see :meth:`set_rate_limit`. That check comes first.
    Then come scripted faults: a request that matches one gets the fault, whatever its
    key, on every path or on the one it was scripted for (a rate-limited request does
    not use one up). Then comes the normal
    answer above. Response bodies are serialized when
    the data changes, never per request, so the fake keeps up with benchmarks.

    Use ``async with FakeKodMobi() as fake`` to serve on the running event loop, or
    ``with FakeKodMobi.in_thread() as fake`` to serve from a background thread (for
    sync tests and FastAPI's TestClient). The scripting and inspection methods are
    thread-safe.

    Args:
        api_keys: The accepted public keys; the first is :attr:`api_key`.
            Defaults to :attr:`DEFAULT_API_KEY` alone.
        secret_keys: The accepted secret keys; the first is :attr:`secret_key`.
            Defaults to :attr:`DEFAULT_SECRET_KEY` alone.
        host: The address to listen on.
        port: The port to listen on; 0 picks a free one.
        project_channels: The project's channel list (see :attr:`project_channels`);
            defaults to one active channel of each documented type, Telegram inactive.
        latency: Seconds to wait before answering every request.
        record_requests: Keep a :class:`RecordedRequest` per request in
            :attr:`requests`; turn off for long benchmarks (:attr:`request_count` still
            counts).
        rate_limit: Requests per second admitted per API key, or None for no limit;
            see :meth:`set_rate_limit`.
        burst: Requests a key may send at once; ``max(1, rate_limit / 10)`` when None.
        retry_after: The ``Retry-After`` of a rate-limited answer: whole seconds,
            ``"computed"`` or None; see :meth:`set_rate_limit`.
        clock: Where the fake reads time for the rate limit, session expiry,
            cool-downs and ``RecordedRequest.received_at``: anything with a ``monotonic()``
            method, such as :class:`~kodmobi_async.FakeClock`; the real monotonic clock
            when None.

    Raises:
        ValueError: ``api_keys`` or ``secret_keys`` is empty or they share a key,
            ``latency`` is negative, a channel is invalid, or the rate limit is (see
            :meth:`set_rate_limit`).
        TypeError: ``api_keys`` or ``secret_keys`` is a single string or a channel has
            a wrongly typed field.
    """

    #: The key the fake accepts when no ``api_keys`` are given.
    DEFAULT_API_KEY: ClassVar[str] = "kodmobi-fake-public-key"
    #: The secret key the fake accepts when no ``secret_keys`` are given.
    DEFAULT_SECRET_KEY: ClassVar[str] = "kodmobi-fake-secret-key"  # noqa: S105 -- a fake's

    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
        secret_keys: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        project_channels: Iterable[Mapping[str, Any]] | None = None,
        latency: float = 0.0,
        record_requests: bool = True,
        rate_limit: float | None = None,
        burst: float | None = None,
        retry_after: int | Literal["computed"] | None = 1,
        clock: Clock | None = None,
    ) -> None:
        keys = _keys("api_keys", api_keys, self.DEFAULT_API_KEY)
        secrets = _keys("secret_keys", secret_keys, self.DEFAULT_SECRET_KEY)
        if set(keys) & set(secrets):
            msg = "a key cannot be both public (api_keys) and secret (secret_keys)"
            raise ValueError(msg)
        self._api_key = keys[0]
        self._secret_key = secrets[0]
        self._host = host
        self._port = port
        self.latency: float = latency
        self._record_requests = record_requests

        self._lock = threading.Lock()
        self._connections_changed = threading.Condition(self._lock)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._project = Project(
            frozenset(keys),
            frozenset(secrets),
            ChannelList.of(default_channels() if project_channels is None else project_channels),
            (self._clock.monotonic(), datetime.datetime.now(datetime.timezone.utc)),
        )
        self._faults = FaultQueue()
        self._session_faults: dict[str, FaultQueue] = {}
        self._entries: list[Entry] = []
        self._request_count = 0
        self._rate_limit: RateLimit | None = None
        self.set_rate_limit(rate_limit, burst, retry_after=retry_after)
        self._open_connections = 0
        self._total_connections = 0

        self._runner: web.ServerRunner | None = None
        self._url: str | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening, on the running event loop.

        Raises:
            RuntimeError: The fake is already running.
            OSError: The address cannot be bound.
        """
        if self._runner is not None:
            msg = "this FakeKodMobi is already running"
            raise RuntimeError(msg)
        server = _CountingServer(self, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_GRACE_SECONDS)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"http://{host}:{port}"
        self._runner = runner

    async def close(self) -> None:
        """Stop the server and close every connection; a no-op when not running.

        Requests still being answered get a short grace period, then are cancelled.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        # The sockets are closed, but the protocol callbacks that report it run on the
        # next loop iterations; waiting here leaves nothing pending behind us.
        await self.wait_connections_closed(_CONNECTIONS_CLOSE_WAIT_SECONDS)
        self._url = None

    async def __aenter__(self) -> FakeKodMobi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @classmethod
    @contextlib.contextmanager
    def in_thread(
        cls,
        *,
        api_keys: Iterable[str] | None = None,
        secret_keys: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        project_channels: Iterable[Mapping[str, Any]] | None = None,
        latency: float = 0.0,
        record_requests: bool = True,
        rate_limit: float | None = None,
        burst: float | None = None,
        retry_after: int | Literal["computed"] | None = 1,
        clock: Clock | None = None,
    ) -> Iterator[FakeKodMobi]:
        """Run a fake on its own event loop in a daemon thread, for the ``with`` block.

        The fake works from sync code and from any other event loop (pytest-asyncio of
        any loop scope, anyio, FastAPI's TestClient). Script it from the test thread as
        usual.

        Args:
            api_keys: As for :class:`FakeKodMobi`.
            secret_keys: As for :class:`FakeKodMobi`.
            host: As for :class:`FakeKodMobi`.
            port: As for :class:`FakeKodMobi`.
            project_channels: As for :class:`FakeKodMobi`.
            latency: As for :class:`FakeKodMobi`.
            record_requests: As for :class:`FakeKodMobi`.
            rate_limit: As for :class:`FakeKodMobi`.
            burst: As for :class:`FakeKodMobi`.
            retry_after: As for :class:`FakeKodMobi`.
            clock: As for :class:`FakeKodMobi`.

        Returns:
            A context manager yielding the running fake; leaving it stops the server
            and joins the thread.

        Raises:
            OSError: The address cannot be bound.
        """
        fake = cls(
            api_keys=api_keys,
            secret_keys=secret_keys,
            host=host,
            port=port,
            project_channels=project_channels,
            latency=latency,
            record_requests=record_requests,
            rate_limit=rate_limit,
            burst=burst,
            retry_after=retry_after,
            clock=clock,
        )
        thread = ServerThread(fake)
        thread.start()
        try:
            yield fake
        finally:
            thread.stop()

    # -- addresses -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:54321``.

        Raises:
            RuntimeError: The fake is not running.
        """
        if self._url is None:
            msg = "FakeKodMobi is not running: use 'async with' or start()"
            raise RuntimeError(msg)
        return self._url

    @property
    def api_key(self) -> str:
        """The first accepted API key (:attr:`DEFAULT_API_KEY` unless configured)."""
        return self._api_key

    @property
    def api_keys(self) -> frozenset[str]:
        """Every accepted public key."""
        return self._project.public_keys

    @property
    def secret_key(self) -> str:
        """The first accepted secret key (:attr:`DEFAULT_SECRET_KEY` unless configured)."""
        return self._secret_key

    @property
    def secret_keys(self) -> frozenset[str]:
        """Every accepted secret key."""
        return self._project.secret_keys

    @property
    def latency(self) -> float:
        """Seconds the fake waits before answering each request; settable."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            msg = f"latency must be >= 0 seconds, got {seconds}"
            raise ValueError(msg)
        self._latency = float(seconds)

    # -- rate limit ------------------------------------------------------------------

    def set_rate_limit(
        self,
        rate: float | None,
        burst: float | None = None,
        *,
        retry_after: int | Literal["computed"] | None = 1,
    ) -> None:
        """Limit each API key to ``rate`` requests a second, or lift the limit.

        Every request (any path, method or key, a missing key included) takes a token
        from the bucket of the ``x-api-key`` it carries. A bucket holds up to ``burst``
        tokens, starts full and gains ``rate`` tokens a second on the fake's clock. A
        request that finds no token is answered ``429`` with the envelope
        ``ERROR_TOO_MANY_REQUESTS`` (the same bytes as ``Fault.status(429)``) and is
        recorded like any other; it takes no token and uses up no scripted fault.

        The change takes effect at once, for a server that is running too: each key
        keeps what its bucket holds (capped at the new ``burst``) and refills at the
        new rate from now on. Turning the limit off forgets the buckets, so the next
        limit starts with full ones.

        Args:
            rate: Requests per second admitted per key in the long run, or None to turn
                the limit off.
            burst: Requests a full bucket admits at once; ``max(1, rate / 10)`` when
                None.
            retry_after: The ``Retry-After`` header of a rate-limited answer: whole
                seconds (the default, 1, is what kod.mobi's gateway is assumed to send),
                ``"computed"`` for the time until the key's bucket holds a token,
                rounded up to whole seconds, or None for no header.

        Raises:
            ValueError: ``rate`` is not a positive finite number, ``burst`` is below 1
                or given without ``rate``, or ``retry_after`` is none of the forms
                above.
        """
        if rate is None:
            checked_retry_after(retry_after)
            if burst is not None:
                msg = f"burst={burst!r} needs a rate_limit"
                raise ValueError(msg)
            with self._lock:
                self._rate_limit = None
            return
        limit = RateLimit(rate, burst, retry_after)
        with self._lock:
            if self._rate_limit is not None:
                limit = self._rate_limit.continue_as(limit, self._clock.monotonic())
            self._rate_limit = limit

    @property
    def rate_limit(self) -> float | None:
        """Requests per second admitted per API key, or None when there is no limit."""
        with self._lock:
            return None if self._rate_limit is None else self._rate_limit.rate

    @property
    def burst(self) -> float | None:
        """Requests a key may send at once under the limit, or None when there is none."""
        with self._lock:
            return None if self._rate_limit is None else self._rate_limit.burst

    # -- faults ----------------------------------------------------------------------

    def script(self, fault: Fault, *, times: int | None = 1, route: str | None = None) -> None:
        """Queue a fault for the next requests, whatever they ask for or on one path.

        Scripted faults form a FIFO queue: a request gets the first fault scripted for
        its path (or for every path) until that fault's ``times`` run out. A fault with
        ``times=None`` stays until :meth:`clear_faults`. A request for a session with
        its own faults (see :meth:`script_session`) takes those first.

        Args:
            fault: The fault to apply.
            times: How many requests get it; None means every request from now on.
            route: The path whose requests get it, such as ``"/session/create"``; None
                (the default) for any path.

        Raises:
            ValueError: ``times`` is not a positive int or None, or ``route`` is not a
                path.
        """
        with self._lock:
            self._faults.add(fault, times, route)

    def script_session(
        self, session_id: str, fault: Fault, *, times: int | None = 1, route: str | None = None
    ) -> None:
        """Queue a fault for requests about this ``session_id`` only.

        A request is about the session its ``?session_id=`` names, or for a POST the
        ``session_id`` of its JSON body. The session need not exist, so unknown ids can
        be scripted too. Queueing works as in :meth:`script`, with one queue per
        session.

        Args:
            session_id: The session id (upper case).
            fault: The fault to apply.
            times: How many requests get it; None means every one from now on.
            route: The path whose requests get it; None for any path.

        Raises:
            ValueError: The id is not a ULID, or ``times`` or ``route`` is invalid.
        """
        sid = checked_session_id(session_id)
        with self._lock:
            self._session_faults.setdefault(sid, FaultQueue()).add(fault, times, route)

    def clear_faults(self) -> None:
        """Drop every scripted fault, global and per session."""
        with self._lock:
            self._faults = FaultQueue()
            self._session_faults.clear()

    def _take_fault(self, session_id: str | None, path: str) -> Fault | None:
        if session_id is not None and self._session_faults:
            queue = self._session_faults.get(session_id)
            if queue:
                fault = queue.take(path)
                if fault is not None:
                    return fault
        return self._faults.take(path) if self._faults else None

    # -- observation -----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received since the last :meth:`clear_requests`."""
        with self._lock:
            entries = list(self._entries)
        return [entry.snapshot() for entry in entries]

    @property
    def request_count(self) -> int:
        """How many requests arrived since the last :meth:`clear_requests`."""
        with self._lock:
            return self._request_count

    def clear_requests(self) -> None:
        """Forget the recorded requests and reset :attr:`request_count`."""
        with self._lock:
            self._entries.clear()
            self._request_count = 0

    def max_requests_in_window(self, seconds: float = 1.0) -> int:
        """Count the recorded requests in the busiest window of the given length.

        Use it to check that a client kept to a rate: with a limit of R requests a
        second, a well-paced client gives at most ``R + burst`` for ``seconds=1.0``
        (a full bucket's burst plus one second of refill). Every recorded request
        counts, rate-limited ones included, on the fake's clock
        (``RecordedRequest.received_at``); windows are half-open,
        ``[t, t + seconds)``.

        Args:
            seconds: The window's length.

        Returns:
            The largest number of requests that arrived within any such window; 0 when
            none was recorded.

        Raises:
            ValueError: ``seconds`` is not positive.
            RuntimeError: The fake was made with ``record_requests=False``.
        """
        if not seconds > 0:
            msg = f"seconds must be > 0, got {seconds!r}"
            raise ValueError(msg)
        if not self._record_requests:
            msg = "max_requests_in_window needs a fake made with record_requests=True"
            raise RuntimeError(msg)
        with self._lock:
            times = sorted(entry.received_at for entry in self._entries)
        busiest = first = 0
        for last, arrived in enumerate(times):
            while arrived - times[first] >= seconds:
                first += 1
            busiest = max(busiest, last - first + 1)
        return busiest

    @property
    def open_connections(self) -> int:
        """TCP connections currently open on the server side (a pooling diagnostic)."""
        with self._lock:
            return self._open_connections

    @property
    def total_connections(self) -> int:
        """TCP connections accepted since the fake was created (a pooling diagnostic)."""
        with self._lock:
            return self._total_connections

    async def wait_connections_closed(self, timeout: float = 2.0) -> bool:
        """Wait until the server has no open connection.

        A client closing its socket reaches the server a few loop iterations later;
        poll with this instead of asserting :attr:`open_connections` right away. It
        works from any event loop, including when the fake runs in a thread.

        Args:
            timeout: The longest wait, in seconds.

        Returns:
            True once no connection is open, False if some were still open at the end.
        """
        deadline = time.monotonic() + timeout
        while self.open_connections:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)
        return True

    async def wait_for_requests(self, count: int = 1, timeout: float = 2.0) -> bool:
        """Wait until at least ``count`` requests have arrived.

        Useful to act while a request is in flight, for example to cancel a call the
        fake is holding with :meth:`Fault.delay`. Works from any event loop.

        Args:
            count: How many requests (since the last :meth:`clear_requests`) to wait for.
            timeout: The longest wait, in seconds.

        Returns:
            True once :attr:`request_count` reaches ``count``, False on timeout.
        """
        deadline = time.monotonic() + timeout
        while self.request_count < count:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)
        return True

    def wait_connections_closed_sync(self, timeout: float = 2.0) -> bool:
        """Block the calling thread until the server has no open connection.

        Only for a fake started with :meth:`in_thread`: called on the loop that runs
        the server, it would stop that loop from closing anything.

        Args:
            timeout: The longest wait, in seconds.

        Returns:
            True once no connection is open, False if some were still open at the end.
        """
        with self._connections_changed:
            return self._connections_changed.wait_for(lambda: self._open_connections == 0, timeout)

    def _connection_opened(self) -> None:
        with self._lock:
            self._open_connections += 1
            self._total_connections += 1

    def _connection_closed(self) -> None:
        with self._connections_changed:
            self._open_connections -= 1
            self._connections_changed.notify_all()

    # -- serving ---------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        # Read before the fault is taken: a POST names its session in the body.
        body = await request.read()
        call = Call(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=request.headers,
            body=body,
        )
        session_id = session_id_of(call)
        now = self._clock.monotonic()
        entry = Entry(
            method=call.method,
            path=call.path,
            query=call.query,
            headers=call.headers,
            session_id=session_id,
            received_at=now,
            body=body,
        )
        limited: str | None = None
        fault: Fault | None = None
        with self._lock:
            self._request_count += 1
            if self._record_requests:
                self._entries.append(entry)
            if self._rate_limit is not None:
                limited = self._rate_limit.admit(request.headers.get("x-api-key"), now)
            if limited is None:
                fault = self._take_fault(session_id, call.path)
        entry.fault = fault
        if self._latency:
            await asyncio.sleep(self._latency)
        if limited is not None:
            headers = {"Retry-After": limited} if limited else None
            return _respond(entry, refusal(call, RATE_LIMITED, headers))
        if fault is None:
            return self._serve(call, entry)
        exchange = Exchange(
            request=request,
            language=call.language,
            sample_body=self._project.channels.body,
            serve=functools.partial(self._serve, call, entry),
            record_status=entry.set_status,
        )
        return await respond(fault, exchange)

    def _serve(self, call: Call, entry: Entry) -> web.Response:
        # The clock is read when answering, not on arrival: a Fault.delay on a FakeClock
        # test may move time on in between.
        with self._lock:
            result = answer(call, self._project, self._clock.monotonic())
        return _respond(entry, result)


def _respond(entry: Entry, result: Answer) -> web.Response:
    entry.status = result.status
    return web.Response(status=result.status, body=result.body, headers=result.headers)


def _keys(name: str, given: Iterable[str] | None, default: str) -> tuple[str, ...]:
    if isinstance(given, str):
        msg = f"{name} must be an iterable of keys, not one string"
        raise TypeError(msg)
    keys = (default,) if given is None else tuple(dict.fromkeys(given))
    if not keys:
        msg = f"{name} must contain at least one key"
        raise ValueError(msg)
    return keys
