"""The fake kod.mobi server: an aiohttp app that serves ``GET /session/channels``.

It is written from the API reference alone and shares no code with the client, so a
misreading of the reference in one does not hide the same misreading in the other.

State (project channels, sessions, scripted faults, the rate limit's buckets, the request
log and the connection counts) sits behind one lock, because in thread mode the test
scripts the fake from one thread while the server answers on another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Literal

import attrs
from aiohttp import web

from kodmobi_async._clock import Clock, SystemClock
from kodmobi_async._fake_faults import (
    BAD_KEY,
    BAD_SESSION_ID,
    JSON_CONTENT_TYPE,
    MISSING_KEY,
    RATE_LIMITED,
    UNKNOWN_PATH,
    UNKNOWN_SESSION,
    WRONG_METHOD,
    Exchange,
    Fault,
    Refusal,
    preferred_language,
    respond,
)
from kodmobi_async._fake_limits import RateLimit, checked_retry_after

CHANNELS_PATH = "/session/channels"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Upper case only, as the client insists: one spelling per id, so the fake never answers
# an id the client would refuse to send.
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")

# Long enough for an in-flight answer to finish, short enough that closing a fake with a
# request stuck in a long Fault.delay does not stall a test.
_SHUTDOWN_GRACE_SECONDS = 0.1
_CONNECTIONS_CLOSE_WAIT_SECONDS = 1.0
_POLL_SECONDS = 0.005
_THREAD_START_TIMEOUT_SECONDS = 30.0

_KNOWN_CHANNELS: Mapping[str, tuple[str, str]] = {
    "whatsapp": ("WhatsApp", "https://wa.me/79001234567"),
    "telegram": ("Telegram", "https://t.me/kodmobi_bot"),
    "sms": ("SMS", "https://kod.mobi"),
    "email": ("Email", "https://kod.mobi"),
}
_CHANNEL_FIELDS = ("name", "type", "is_active", "timeout", "image_url", "link")


def new_session_id() -> str:
    """Make a fresh random session id.

    Returns:
        A ULID of 26 upper-case Crockford base32 characters, a millisecond timestamp of
        now followed by 80 random bits.
    """
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _checked_session_id(session_id: str) -> str:
    if _ULID.fullmatch(session_id) is None:
        msg = (
            "session_id must be a ULID (26 upper-case Crockford base32 characters), "
            f"got {session_id!r}"
        )
        raise ValueError(msg)
    return session_id


def default_channels() -> list[dict[str, Any]]:
    """Return the channel list a fake project starts with.

    One channel of each documented type. Telegram is inactive and carries a
    ``description``, so clients meet both states and an undocumented field by default.

    Returns:
        Fresh channel dicts, safe to modify.
    """
    return [
        _channel({"type": "whatsapp"}),
        _channel(
            {
                "type": "telegram",
                "is_active": False,
                "description": "Open the bot and press Start to receive codes",
            }
        ),
        _channel({"type": "sms"}),
        _channel({"type": "email"}),
    ]


def _channel(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Complete and check one channel given as a mapping, keeping extra fields."""
    if not isinstance(spec, Mapping):
        msg = f"a channel must be a mapping, got {spec!r}"
        raise TypeError(msg)
    kind = spec.get("type")
    if not isinstance(kind, str) or not kind:
        msg = f"a channel needs a non-empty string 'type', got {spec!r}"
        raise ValueError(msg)
    name, link = _KNOWN_CHANNELS.get(kind, (kind.title(), "https://kod.mobi"))
    channel: dict[str, Any] = {
        "name": name,
        "type": kind,
        "is_active": True,
        "timeout": 0,
        "image_url": f"https://kod.mobi/static/channels/{kind}.svg",
        "link": link,
    }
    channel.update(spec)
    _check_field(channel, "name", str)
    _check_field(channel, "is_active", bool)
    _check_field(channel, "image_url", str)
    _check_field(channel, "link", str)
    timeout = channel["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= 60:
        msg = (
            f"channel 'timeout' must be an int from 0 to 60, got {timeout!r}; "
            "serve invalid data with Fault.body(...)"
        )
        raise ValueError(msg)
    return channel


def _check_field(channel: Mapping[str, Any], field: str, kind: type) -> None:
    value = channel[field]
    if not isinstance(value, kind):
        msg = (
            f"channel {field!r} must be {kind.__name__}, got {value!r}; "
            "serve invalid data with Fault.body(...)"
        )
        raise TypeError(msg)


def _channels(specs: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    if isinstance(specs, Mapping):
        msg = "channels must be a list of channel mappings, not one mapping"
        raise TypeError(msg)
    return tuple(_channel(spec) for spec in specs)


def _serialize(channels: tuple[dict[str, Any], ...]) -> bytes:
    return json.dumps(list(channels), ensure_ascii=False, separators=(",", ":")).encode()


@attrs.frozen
class _Session:
    # The dicts are never mutated after creation, so sessions made from the same list
    # share both the dicts and the serialized body.
    channels: tuple[dict[str, Any], ...]
    body: bytes


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the fake received.

    Args:
        method: The HTTP method.
        path: The path without the query string.
        query: The query parameters (the first value of a repeated one).
        headers: The request headers; lookups ignore case.
        session_id: The ``session_id`` query parameter exactly as sent, or None.
        status: The status the fake answered with; None when it sent no response (the
            connection was dropped, or the answer is still pending).
        fault: The scripted fault applied to this request, or None.
        received_at: The fake's clock when the request arrived: ``time.monotonic()``
            unless the fake was given a ``clock``.
    """

    method: str
    path: str
    query: Mapping[str, str] = attrs.field(hash=False)
    headers: Mapping[str, str] = attrs.field(hash=False)
    session_id: str | None
    status: int | None
    fault: Fault | None
    received_at: float


@attrs.define(kw_only=True)
class _Entry:
    """The mutable log line behind a RecordedRequest: the status arrives later."""

    # The request object itself is not kept: it pins the connection's protocol and
    # buffers for as long as the log lives.
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    session_id: str | None
    received_at: float
    fault: Fault | None = None
    status: int | None = None

    def set_status(self, status: int | None) -> None:
        self.status = status

    def snapshot(self) -> RecordedRequest:
        return RecordedRequest(
            method=self.method,
            path=self.path,
            query=self.query,
            headers=self.headers,
            session_id=self.session_id,
            status=self.status,
            fault=self.fault,
            received_at=self.received_at,
        )


@attrs.define
class _Scripted:
    fault: Fault
    remaining: int | None


def _checked_times(times: int | None) -> int | None:
    if times is not None and times < 1:
        msg = f"times must be a positive int or None (forever), got {times!r}"
        raise ValueError(msg)
    return times


def _take(queue: deque[_Scripted]) -> Fault:
    head = queue[0]
    if head.remaining is not None:
        head.remaining -= 1
        if head.remaining == 0:
            queue.popleft()
    return head.fault


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


class FakeKodMobi:
    """A fake kod.mobi server on a loopback port, for tests and benchmarks.

    It serves ``GET /session/channels`` as the reference describes: the ``x-api-key``
    header must hold one of the configured keys (401 otherwise); without ``session_id``
    the answer is the project's channel list as a bare JSON array; with one, the
    session's own list, 400 ``ERROR_BAD_REQUEST`` for an id that is not a ULID in upper
    case (a lower-case id included, which the client refuses to send), and 404
    ``ERROR_MESSAGE_NOT_FOUND`` for a ULID the fake does not know. The real service's
    answer for unknown or expired ids is undocumented; the 404 is this fake's
    assumption. Other paths get 404 ``ERROR_NOT_FOUND`` and other methods 405
    ``ERROR_METHOD_NOT_ALLOWED``. Error envelopes honour ``Accept-Language: ru``.

    With a rate limit (``rate_limit``, or :meth:`set_rate_limit` at any time) the fake
    admits each API key's requests through a token bucket, on every path, and answers
    the excess ``429 ERROR_TOO_MANY_REQUESTS`` with ``Retry-After``, as a gateway in
    front of the service would; see :meth:`set_rate_limit`. That check comes first.
    Then come scripted faults: a request that matches one gets the fault, whatever its
    key or path (a rate-limited request does not use one up). Then comes the normal
    answer above. Response bodies are serialized when
    the data changes, never per request, so the fake keeps up with benchmarks.

    Use ``async with FakeKodMobi() as fake`` to serve on the running event loop, or
    ``with FakeKodMobi.in_thread() as fake`` to serve from a background thread (for
    sync tests and FastAPI's TestClient). The scripting and inspection methods are
    thread-safe.

    Args:
        api_keys: The accepted ``x-api-key`` values; the first is :attr:`api_key`.
            Defaults to :attr:`DEFAULT_API_KEY` alone.
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
        clock: Where the fake reads time for the rate limit and
            ``RecordedRequest.received_at``: anything with a ``monotonic()``
            method, such as :class:`~kodmobi_async.FakeClock`; the real monotonic clock
            when None.

    Raises:
        ValueError: ``api_keys`` is empty, ``latency`` is negative, a channel is
            invalid, or the rate limit is (see :meth:`set_rate_limit`).
        TypeError: ``api_keys`` is a single string or a channel has a wrongly typed
            field.
    """

    #: The key the fake accepts when no ``api_keys`` are given.
    DEFAULT_API_KEY: ClassVar[str] = "kodmobi-fake-public-key"

    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
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
        if isinstance(api_keys, str):
            msg = "api_keys must be an iterable of keys, not one string"
            raise TypeError(msg)
        keys = (self.DEFAULT_API_KEY,) if api_keys is None else tuple(dict.fromkeys(api_keys))
        if not keys:
            msg = "api_keys must contain at least one key"
            raise ValueError(msg)
        self._api_keys = frozenset(keys)
        self._api_key = keys[0]
        self._host = host
        self._port = port
        self.latency: float = latency
        self._record_requests = record_requests

        self._lock = threading.Lock()
        self._connections_changed = threading.Condition(self._lock)
        self._project = self._session_from(
            default_channels() if project_channels is None else project_channels
        )
        self._sessions: dict[str, _Session] = {}
        self._faults: deque[_Scripted] = deque()
        self._session_faults: dict[str, deque[_Scripted]] = {}
        self._entries: list[_Entry] = []
        self._request_count = 0
        self._clock: Clock = clock if clock is not None else SystemClock()
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
        thread = _ServerThread(fake)
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
        """Every accepted API key."""
        return self._api_keys

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

    # -- channels and sessions -------------------------------------------------------

    @staticmethod
    def _session_from(channels: Iterable[Mapping[str, Any]]) -> _Session:
        checked = _channels(channels)
        return _Session(checked, _serialize(checked))

    @property
    def project_channels(self) -> list[dict[str, Any]]:
        """The project channel list served without ``session_id``; settable.

        Each channel is a mapping with ``type`` required; missing ``name``,
        ``is_active`` (True), ``timeout`` (0), ``image_url`` and ``link`` are filled in,
        and extra fields such as ``description`` are served as given. Any ``type``
        string is allowed. Setting it does not change existing sessions.
        """
        with self._lock:
            project = self._project
        return [dict(channel) for channel in project.channels]

    @project_channels.setter
    def project_channels(self, channels: Iterable[Mapping[str, Any]]) -> None:
        project = self._session_from(channels)
        with self._lock:
            self._project = project

    def add_session(
        self,
        session_id: str | None = None,
        *,
        channels: Iterable[Mapping[str, Any]] | None = None,
    ) -> str:
        """Register a session the fake will answer for.

        Args:
            session_id: A ULID in upper case; a fresh one when None.
            channels: The session's channel list, in the form described for
                :attr:`project_channels`; a copy of the project channels when None.

        Returns:
            The session id.

        Raises:
            ValueError: The id is not a ULID, is already registered, or a channel is
                invalid.
        """
        sid = new_session_id() if session_id is None else _checked_session_id(session_id)
        self._register([sid], channels)
        return sid

    def add_sessions(
        self,
        count: int,
        *,
        channels: Iterable[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Register many sessions with fresh ids at once; they share one channel list.

        Args:
            count: How many sessions to create.
            channels: Their channel list, as for :meth:`add_session`.

        Returns:
            The new session ids, in creation order.

        Raises:
            ValueError: ``count`` is negative or a channel is invalid.
        """
        if count < 0:
            msg = f"count must be >= 0, got {count}"
            raise ValueError(msg)
        ids = [new_session_id() for _ in range(count)]
        self._register(ids, channels)
        return ids

    def _register(self, ids: list[str], channels: Iterable[Mapping[str, Any]] | None) -> None:
        template = None if channels is None else self._session_from(channels)
        with self._lock:
            session = self._project if template is None else template
            for sid in ids:
                if sid in self._sessions:
                    msg = f"session {sid} already exists; use set_channels()"
                    raise ValueError(msg)
            for sid in ids:
                self._sessions[sid] = session

    def set_channels(self, session_id: str, channels: Iterable[Mapping[str, Any]]) -> None:
        """Replace a session's channel list.

        Args:
            session_id: A registered session id (upper case).
            channels: The new list, in the form described for :attr:`project_channels`.

        Raises:
            KeyError: The session is not registered.
            ValueError: The id is not a ULID or a channel is invalid.
        """
        sid = _checked_session_id(session_id)
        session = self._session_from(channels)
        with self._lock:
            self._require_session(sid)
            self._sessions[sid] = session

    def set_channel_state(
        self,
        session_id: str,
        channel_type: str,
        *,
        is_active: bool | None = None,
        timeout: int | None = None,
    ) -> None:
        """Change the per-session state of the channel(s) of one type.

        Args:
            session_id: A registered session id (upper case).
            channel_type: The ``type`` of the channel(s) to change.
            is_active: The new ``is_active``; unchanged when None.
            timeout: The new ``timeout`` (0 to 60); unchanged when None.

        Raises:
            KeyError: The session is not registered or has no channel of that type.
            ValueError: The id is not a ULID or ``timeout`` is out of range.
        """
        sid = _checked_session_id(session_id)
        changes: dict[str, Any] = {}
        if is_active is not None:
            changes["is_active"] = is_active
        if timeout is not None:
            changes["timeout"] = timeout
        with self._lock:
            channels = self._require_session(sid).channels
            if not any(channel["type"] == channel_type for channel in channels):
                msg = f"session {sid} has no {channel_type!r} channel"
                raise KeyError(msg)
            updated = tuple(
                _channel({**channel, **changes}) if channel["type"] == channel_type else channel
                for channel in channels
            )
            self._sessions[sid] = _Session(updated, _serialize(updated))

    def channels(self, session_id: str) -> list[dict[str, Any]]:
        """Return a session's current channel list.

        Args:
            session_id: A registered session id (upper case).

        Returns:
            Copies of the channel dicts, as served.

        Raises:
            KeyError: The session is not registered.
            ValueError: The id is not a ULID.
        """
        sid = _checked_session_id(session_id)
        with self._lock:
            channels = self._require_session(sid).channels
        return [dict(channel) for channel in channels]

    def remove_session(self, session_id: str) -> None:
        """Forget a session, as when it expires; later requests for it get 404.

        Args:
            session_id: A registered session id (upper case).

        Raises:
            KeyError: The session is not registered.
            ValueError: The id is not a ULID.
        """
        sid = _checked_session_id(session_id)
        with self._lock:
            self._require_session(sid)
            del self._sessions[sid]

    def _require_session(self, sid: str) -> _Session:
        try:
            return self._sessions[sid]
        except KeyError:
            msg = f"no session {sid}; add it with add_session()"
            raise KeyError(msg) from None

    # -- faults ----------------------------------------------------------------------

    def script(self, fault: Fault, *, times: int | None = 1) -> None:
        """Queue a fault for the next requests, whatever they ask for.

        Scripted faults form a FIFO queue: the head answers requests until its
        ``times`` run out, then the next one takes over. A fault with ``times=None``
        stays at the head until :meth:`clear_faults`. A request for a session with its
        own faults (see :meth:`script_session`) takes those first.

        Args:
            fault: The fault to apply.
            times: How many requests get it; None means every request from now on.

        Raises:
            ValueError: ``times`` is not a positive int or None.
        """
        scripted = _Scripted(fault, _checked_times(times))
        with self._lock:
            self._faults.append(scripted)

    def script_session(self, session_id: str, fault: Fault, *, times: int | None = 1) -> None:
        """Queue a fault for requests with this ``session_id`` only.

        The session need not be registered, so unknown ids can be scripted too.
        Queueing works as in :meth:`script`, with one queue per session.

        Args:
            session_id: The session id (upper case).
            fault: The fault to apply.
            times: How many requests get it; None means every one from now on.

        Raises:
            ValueError: The id is not a ULID or ``times`` is invalid.
        """
        sid = _checked_session_id(session_id)
        scripted = _Scripted(fault, _checked_times(times))
        with self._lock:
            self._session_faults.setdefault(sid, deque()).append(scripted)

    def clear_faults(self) -> None:
        """Drop every scripted fault, global and per session."""
        with self._lock:
            self._faults.clear()
            self._session_faults.clear()

    def _take_fault(self, session_id: str | None) -> Fault | None:
        if session_id is not None and self._session_faults:
            queue = self._session_faults.get(session_id)
            if queue:
                return _take(queue)
        if self._faults:
            return _take(self._faults)
        return None

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
        """TCP connections currently open on the server side."""
        with self._lock:
            return self._open_connections

    @property
    def total_connections(self) -> int:
        """TCP connections accepted since the fake was created."""
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
        query = request.query
        session_id = query.get("session_id")
        now = self._clock.monotonic()
        entry = _Entry(
            method=request.method,
            path=request.path,
            query=dict(query),
            headers=request.headers,
            session_id=session_id,
            received_at=now,
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
                fault = self._take_fault(session_id)
        entry.fault = fault
        if self._latency:
            await asyncio.sleep(self._latency)
        if limited is not None:
            headers = {"Retry-After": limited} if limited else None
            return self._refuse(request, entry, RATE_LIMITED, headers)
        if fault is None:
            return self._serve(request, entry)
        exchange = Exchange(
            request=request,
            language=preferred_language(request.headers.get("Accept-Language")),
            sample_body=self._project.body,
            serve=functools.partial(self._serve, request, entry),
            record_status=entry.set_status,
        )
        return await respond(fault, exchange)

    def _serve(self, request: web.BaseRequest, entry: _Entry) -> web.Response:
        if request.path != CHANNELS_PATH:
            return self._refuse(request, entry, UNKNOWN_PATH)
        if request.method != "GET":
            return self._refuse(request, entry, WRONG_METHOD, {"Allow": "GET"})
        key = request.headers.get("x-api-key")
        if key is None:
            return self._refuse(request, entry, MISSING_KEY)
        if key not in self._api_keys:
            return self._refuse(request, entry, BAD_KEY)
        session_id = entry.session_id
        if session_id is None:
            body = self._project.body
        elif _ULID.fullmatch(session_id) is None:
            return self._refuse(request, entry, BAD_SESSION_ID)
        else:
            with self._lock:
                session = self._sessions.get(session_id)
            if session is None:
                return self._refuse(request, entry, UNKNOWN_SESSION)
            body = session.body
        entry.status = 200
        return web.Response(body=body, headers={"Content-Type": JSON_CONTENT_TYPE})

    @staticmethod
    def _refuse(
        request: web.BaseRequest,
        entry: _Entry,
        refusal: Refusal,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        language = preferred_language(request.headers.get("Accept-Language"))
        entry.status = refusal.status
        return web.Response(
            status=refusal.status,
            body=refusal.bodies[language],
            headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
        )


class _ServerThread:
    """Runs a fake under ``asyncio.run`` in a daemon thread until told to stop."""

    def __init__(self, fake: FakeKodMobi) -> None:
        self._fake = fake
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kodmobi-fake", daemon=True)

    def start(self) -> None:
        self._thread.start()
        try:
            self._started.result(timeout=_THREAD_START_TIMEOUT_SECONDS)
        except BaseException:
            self._thread.join(_THREAD_START_TIMEOUT_SECONDS)
            raise

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            # Whatever escapes here would die with the thread; hand it to the caller.
            if not self._started.done():
                self._started.set_exception(exc)
            else:
                self._error = exc

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._fake.start()
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await self._fake.close()
