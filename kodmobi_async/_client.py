"""The client: the one module that does network I/O.

It asks ``_protocol`` what to send and what an answer means, and ``_retry`` whether
to try again; what is left here is sockets, deadlines and the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping
from importlib.metadata import version
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import attrs
from yarl import URL

from . import _protocol
from ._batch import Lookup, gather, stream
from ._calls import (
    DEFAULT_CHALLENGE_HEADER,
    Endpoints,
    Key,
    Request,
    Resend,
    check_request,
    create_request,
    manual_channels_request,
    manual_send_request,
    send_request,
    settings_request,
    verify_request,
)
from ._clock import Clock, SystemClock
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientStateError,
    ConfigurationError,
    InvalidArgumentError,
    KodMobiError,
    ResponseValidationError,
)
from ._models import (
    ChannelType,
    CodeCheck,
    ManualChannel,
    ManualMessage,
    ProjectSettings,
    SentCode,
    Session,
    SessionChannel,
    Verification,
)
from ._outcomes import BatchResult, Outcome, ProgressCallback
from ._redact import Redactor
from ._retry import Retrier, RetryPolicy
from ._throttle import Pace, PaceState, PauseGate, RetryBudget

__all__ = ["KodMobiClient"]

logger = logging.getLogger("kodmobi_async")

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 100
T = TypeVar("T")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_BODY = _protocol.MAX_BODY_BYTES
_ENCODING = "Content-Encoding"
_READ_SIZE = 64 * 1024
# The decode-once cache holds at most this many bodies of at most this size, so a
# long-lived client keeps under 1 MiB of bodies (plus their frozen channels) whatever
# an upstream sends. Real channel lists are well under the size limit.
_DECODED_CACHE_SIZE = 256
_DECODED_CACHE_MAX_BODY = 4096
# Past this, a pool or a batch is a mistake (more than a process can hold sockets for).
MAX_CONNECTIONS = 65_536
_MAX_RATE = 1_000_000.0


def _user_agent() -> str:
    return f"kodmobi-async/{version('kodmobi-async')} aiohttp/{aiohttp.__version__}"


class KodMobiClient:
    """An asyncio client for kod.mobi's ``/session/channels``, with pooling and retries.

    Use it as an async context manager so its connection pool is closed::

        async with KodMobiClient() as client:
            channels = await client.get_session_channels()

    One client is meant to live as long as your application (a FastAPI lifespan, a
    worker process) and be shared by all its tasks; it is bound to the event loop it is
    first used in.

    Args:
        api_key: The project's kod.mobi key, sent as ``x-api-key``. Defaults to the
            ``KODMOBI_API_KEY`` environment variable.
        base_url: API root. Defaults to ``KODMOBI_BASE_URL``, then
            ``https://api.kod.mobi``. Plain ``http://`` is accepted only for loopback
            hosts unless ``allow_http`` is set.
        timeout: Deadline in seconds for one whole call, every retry and wait included.
            Each attempt gets a share of it (see :attr:`RetryPolicy.attempt_timeout`).
        retry: How failed calls are retried; defaults to :class:`RetryPolicy()`.
        max_connections: Size of the connection pool the client owns.
        language: ``"en"`` or ``"ru"``, sent as ``Accept-Language`` to localize the
            ``error`` text of failures. ``None`` leaves the service's default.
        session: Your own :class:`aiohttp.ClientSession` to send requests through. The
            client then never closes it, and ``max_connections`` does not apply.
        allow_http: Accept a plain ``http://`` ``base_url`` to a non-loopback host.
        clock: Where the client reads time and sleeps (backoff, ``Retry-After``);
            tests pass :class:`kodmobi_async.FakeClock`.
        rate_limit: Requests per second this client never exceeds, for a project
            whose kod.mobi limit you know: a batch then runs at that pace without a
            single 429. ``None`` (the default) sends freely until kod.mobi answers
            429, then finds the rate it accepts and keeps to it (see the batch guide).

    Raises:
        ConfigurationError: No API key, an unsafe or malformed ``base_url``, or an
            argument out of range.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        language: str | None = None,
        session: aiohttp.ClientSession | None = None,
        allow_http: bool = False,
        clock: Clock | None = None,
        rate_limit: float | None = None,
        secret_key: str | None = None,
        endpoints: Endpoints | None = None,
        challenge_header: str = DEFAULT_CHALLENGE_HEADER,
    ) -> None:
        environ = os.environ
        public, secret = _protocol.resolve_keys(api_key, secret_key, environ)
        self._redactor = Redactor(key for key in (public, secret) if key is not None)
        self._base_url = _protocol.resolve_base_url(
            base_url, environ, allow_http=allow_http, redactor=self._redactor
        )
        if not _protocol.is_positive_seconds(timeout):
            msg = (
                "timeout must be a positive number of seconds, at most "
                f"{_protocol.MAX_SECONDS:g} (one day), got {_shown_number(timeout)}"
            )
            raise ConfigurationError(msg)
        if type(max_connections) is not int or not 1 <= max_connections <= MAX_CONNECTIONS:
            msg = (
                f"max_connections must be an integer from 1 to {MAX_CONNECTIONS}, "
                f"got {_shown_number(max_connections)}"
            )
            raise ConfigurationError(msg)
        given_rate: object = rate_limit  # checked at run time: callers may pass anything
        if given_rate is not None and not (
            isinstance(given_rate, int | float)
            and not isinstance(given_rate, bool)
            and Pace.MIN_RATE <= given_rate <= _MAX_RATE
        ):
            msg = (
                f"rate_limit must be requests per second from {Pace.MIN_RATE:g} to "
                f"{_MAX_RATE:g}, or None to adapt to kod.mobi's 429s; got "
                f"{_shown_number(rate_limit)}"
            )
            raise ConfigurationError(msg)
        if retry is not None and not isinstance(retry, RetryPolicy):
            msg = f"retry must be a RetryPolicy, got {type(retry).__name__}"
            raise ConfigurationError(msg)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            msg = f"session must be an aiohttp.ClientSession, got {type(session).__name__}"
            raise ConfigurationError(msg)
        self._language = _protocol.validate_language(language)
        self._timeout = float(timeout)
        self._policy = retry if retry is not None else RetryPolicy()
        self._max_connections = max_connections
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._attempt_limit = self._policy.attempt_limit(self._timeout)

        if endpoints is not None and not isinstance(endpoints, Endpoints):
            msg = f"endpoints must be an Endpoints, got {type(endpoints).__name__}"
            raise ConfigurationError(msg)
        self._endpoints = endpoints if endpoints is not None else Endpoints()
        header: object = challenge_header  # checked at run time: callers may pass anything
        if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
            msg = (
                "challenge_header must be an HTTP header name such as "
                f"{DEFAULT_CHALLENGE_HEADER!r}, got {challenge_header!r}"
            )
            raise ConfigurationError(msg)
        self._challenge_header = challenge_header

        headers = {"Accept": "application/json", "User-Agent": _user_agent()}
        if public is not None:
            headers["x-api-key"] = public
        if self._language is not None:
            headers["Accept-Language"] = self._language
        # Keys are kept out of any attribute whose repr a user might print.
        self._headers: Mapping[str, str] = _HiddenHeaders(headers)
        self._key_headers: dict[Key, Mapping[str, str] | None] = {
            Key.PUBLIC: None if public is None else _HiddenHeaders({"x-api-key": public}),
            Key.SECRET: None if secret is None else _HiddenHeaders({"x-api-key": secret}),
        }

        channels = self._endpoints.channels
        self._project_url = URL(self._base_url + channels, encoded=True)
        self._session_url_prefix = f"{self._base_url}{channels}?session_id="

        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # Calls waiting out a backoff or a pause, which close() wakes.
        self._sleepers: set[asyncio.Task[Any]] = set()
        self._woken: set[asyncio.Task[Any]] = set()

        # Many sessions of a project answer with byte-identical bodies (same channels,
        # same flags, no cool-down), and SessionChannel is immutable: decoding each
        # distinct body once saves the JSON parse and the validation, and lets a large
        # batch share its channel objects. Each caller still gets a list of its own.
        self._decoded: dict[bytes, tuple[SessionChannel, ...]] = {}
        self._budget = RetryBudget(self._policy.budget, self._policy.budget_refill)
        self._gate = PauseGate()
        self._pace = Pace(rate_limit)
        self._retrier = Retrier(
            self._policy, self._clock, self._budget, self._gate, logger, sleep=self._sleep
        )

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> KodMobiClient:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool the client owns; a caller's session is left open.

        Safe to call more than once. A closed client refuses further calls, and calls
        still in flight end promptly with :class:`ClientStateError`, wherever they are:
        waiting for a pooled connection, mid-request, or waiting before a retry. None
        of them sees a :class:`asyncio.CancelledError` it did not ask for.
        """
        self._closed = True
        for task in self._sleepers - self._woken:
            self._woken.add(task)
            task.cancel()
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._base_url

    @property
    def timeout(self) -> float:
        """The deadline of one call, in seconds."""
        return self._timeout

    @property
    def retry_policy(self) -> RetryPolicy:
        """The :class:`RetryPolicy` in force."""
        return self._policy

    @property
    def pace(self) -> PaceState:
        """How fast the client may send now (its learned or set rate, and any pause)."""
        pace = self._pace
        return PaceState(
            rate=pace.rate,
            ceiling=pace.ceiling,
            paused_for=max(0.0, self._gate.until - self._clock.monotonic()),
        )

    @property
    def language(self) -> str | None:
        """The ``Accept-Language`` sent, if any."""
        return self._language

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<KodMobiClient {state} base_url={self._base_url!r} timeout={self._timeout:g} "
            f"attempts={self._policy.attempts}>"
        )

    def _ensure_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._closed:
            msg = (
                "this KodMobiClient is closed; create a new client, and keep it open for "
                "as long as you make calls (e.g. inside `async with KodMobiClient() as c:`)"
            )
            raise ClientStateError(msg)
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            msg = (
                "this KodMobiClient was first used in another event loop; a client (and "
                "its connection pool) belongs to one loop: create one client per loop"
            )
            raise ClientStateError(msg)
        session = self._session
        if session is None:
            connector = _Connector(limit=self._max_connections, ttl_dns_cache=300)
            session = aiohttp.ClientSession(
                connector=connector,
                headers=dict(self._headers),
                timeout=aiohttp.ClientTimeout(total=self._attempt_limit),
                raise_for_status=False,
            )
            self._session = session
        elif session.closed:
            msg = "the aiohttp.ClientSession given to KodMobiClient(session=...) is closed"
            raise ClientStateError(msg)
        return session

    # -- calls -------------------------------------------------------------------

    async def get_session_channels(self, session_id: str | None = None) -> list[SessionChannel]:
        """The project's channels, or their state for one session.

        Args:
            session_id: A session's ULID (from kod.mobi's session/create) to get the
                channels as they stand for that user (active flags, cool-downs), or
                ``None`` for the project-level list.

        Returns:
            The channels, in the service's order.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a ULID (nothing was sent).
            AuthenticationError: The API key was rejected (401).
            NotFoundError: kod.mobi does not know the session (404).
            APIStatusError: Any other error status, after retries where they apply.
            APIConnectionError: No answer could be had; ``APITimeoutError`` when the
                deadline passed.
            ResponseValidationError: A success answer that is not a list of channels.
            RetryBudgetExhaustedError: A retry was due but too many calls are failing.
            ClientStateError: The client is closed or belongs to another event loop.
        """
        return await self._fetch(session_id, self._timeout, self._attempt_limit)

    async def _fetch(
        self, session_id: str | None, timeout: float, limit: float
    ) -> list[SessionChannel]:
        """One ``/session/channels`` lookup, from argument checks to the last retry."""
        if self._key_headers[Key.PUBLIC] is None:
            raise self._missing_key(Key.PUBLIC, f"GET {self._endpoints.channels}")
        path = self._endpoints.channels
        if session_id is None:
            url = self._project_url
            label = f"GET {path}"
        else:
            _protocol.validate_session_id(session_id)
            url = URL(self._session_url_prefix + session_id, encoded=True)
            label = f"GET {path} session={_protocol.mask_session_id(session_id)}"
        return await self._run(
            _Exchange("GET", url, None, None, path, label, Resend.ANY_FAILURE),
            self._channels,
            timeout,
            limit,
        )

    async def _call(self, request: Request, model: Any) -> Any:
        """Any other call: its request built and checked by ``_calls``, its answer decoded
        into ``model``; the same path to the socket as the channels lookup."""
        headers = self._request_headers(request)
        query = f"?{request.query}" if request.query else ""
        url = URL(f"{self._base_url}{request.path}{query}", encoded=True)
        method, path, redactor = request.method, request.path, self._redactor

        def decode(status: int, answer: Mapping[str, str], body: bytes) -> Any:
            try:
                return _protocol.decode_response(
                    status, answer, body, model, method=method, path=path, redactor=redactor
                )
            except ResponseValidationError as error:
                redactor.seal(error)
                raise

        exchange = _Exchange(
            method, url, request.body, headers, path, request.label, request.resend
        )
        return await self._run(exchange, decode, self._timeout, self._attempt_limit)

    def _request_headers(self, request: Request) -> dict[str, str] | None:
        key_headers = self._key_headers[request.key]
        if key_headers is None:
            raise self._missing_key(request.key, request.label)
        headers: dict[str, str] = {}
        if not self._owns_session:
            headers.update(self._headers)
        if request.key is Key.SECRET or not self._owns_session:
            headers.update(key_headers)
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        if request.challenge is not None:
            headers[self._challenge_header] = request.challenge
        return headers or None

    def _missing_key(self, key: Key, label: str) -> ConfigurationError:
        if key is Key.SECRET:
            return ConfigurationError(
                f"{label} needs the project's secret key, and this client has none: pass "
                f"secret_key=... or set {_protocol.SECRET_KEY_ENV} (server side only; "
                "never ship the secret key to a browser or an app)"
            )
        return ConfigurationError(
            f"{label} needs the project's public key, and this client has only the secret "
            f"one: pass api_key=... or set {_protocol.API_KEY_ENV}"
        )

    async def _run(
        self,
        exchange: _Exchange,
        decode: Callable[[int, Mapping[str, str], bytes], T],
        timeout: float,
        limit: float,
    ) -> T:
        """Every call's attempts and retries.

        The one rule of every call is enforced here, by construction: whatever the
        network sends and wherever a bug hides, nothing but a :class:`KodMobiError` (or
        the caller's own cancellation) leaves.
        """
        try:
            return await self._perform(exchange, decode, timeout, limit)
        except KodMobiError:
            raise
        except Exception as exc:  # a bug (ours or a dependency's): still a typed error
            failure: KodMobiError = APIError(
                self._redactor.text(
                    f"{exchange.label} failed unexpectedly: {_describe(exc)} "
                    "(a bug in kodmobi-async or a dependency; please report it)"
                ),
                method=exchange.method,
                path=exchange.path,
            )
            cause: BaseException = exc
        raise self._sealed(failure, cause)

    async def _perform(
        self,
        exchange: _Exchange,
        decode: Callable[[int, Mapping[str, str], bytes], T],
        timeout: float,
        limit: float,
    ) -> T:
        session = self._ensure_session()
        deadline = self._clock.monotonic() + timeout
        try:
            return await self._attempt(session, exchange, decode, 1, deadline, limit)
        except APIError as error:
            if not self._retrier.may_retry(error, exchange.resend):
                raise
            first_error = error

        async def again(attempt: int) -> T:
            return await self._attempt(session, exchange, decode, attempt, deadline, limit)

        return await self._retrier.run(
            first_error, again, deadline=deadline, label=exchange.label, resend=exchange.resend
        )

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        exchange: _Exchange,
        decode: Callable[[int, Mapping[str, str], bytes], T],
        attempt: int,
        deadline: float,
        limit: float,
    ) -> T:
        method, path, label = exchange.method, exchange.path, exchange.label
        if self._closed:
            raise self._closed_error(label)
        clock = self._clock
        now = clock.monotonic()
        if self._gate.until > now:
            await self._wait_at_gate(now, deadline, exchange)
            now = clock.monotonic()
        pace = self._pace
        # The pace learns from a 429 only if this request's slot was planned after its
        # last cut: slots planned before it were spaced at the old rate.
        planned_at = now
        if pace.rate is None:
            pace.note_start(now)
        else:
            wait = pace.reserve(now, deadline)
            if wait is None:
                msg = (
                    f"the deadline of {method} {path} would pass before this client's pace "
                    f"({pace.rate:.3g} requests/s, slowed by kod.mobi's 429s) allows "
                    f"attempt {attempt}"
                )
                raise _not_sent(APITimeoutError(msg, method=method, path=path))
            if wait > 0:
                await self._sleep(wait)
                now = clock.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            msg = f"the deadline of {method} {path} passed before attempt {attempt}"
            raise _not_sent(APITimeoutError(msg, method=method, path=path))
        started = time.perf_counter()
        # Failures are built inside the except blocks but raised after them, so the
        # error's __context__ is not the transport's exception (whose repr may carry
        # the request headers); its cause is attached explicitly, and sealed.
        failure: KodMobiError
        cause: BaseException | None
        try:
            if (
                self._owns_session
                and remaining >= limit
                and limit == self._attempt_limit
                and exchange.headers is None
            ):
                # The session's defaults (timeout, headers) are already right: pass
                # nothing extra on the hot path.
                response_cm = session.request(
                    method, exchange.url, data=exchange.body, allow_redirects=False
                )
            else:
                limit = min(limit, remaining)
                response_cm = session.request(
                    method,
                    exchange.url,
                    data=exchange.body,
                    allow_redirects=False,
                    headers=exchange.headers
                    if exchange.headers is not None
                    else (None if self._owns_session else self._headers),
                    timeout=aiohttp.ClientTimeout(total=limit),
                    raise_for_status=False,
                )
            async with response_cm as response:
                status = response.status
                headers = response.headers
                length = response.content_length
                if length is not None and length <= _MAX_BODY and _ENCODING not in headers:
                    body = await response.read()  # the common case, without another frame
                else:
                    body = await _read_body(response)
        except asyncio.CancelledError:
            # close() cancels the connector's waiters for a pooled connection; that
            # is the client shutting down, not the caller cancelling.
            if not self._closed or _cancelling():
                raise
            failure, cause = self._closed_error(label), None
        except (asyncio.TimeoutError, TimeoutError) as exc:
            self._log_attempt(label, attempt, "timeout", started)
            msg = (
                f"kod.mobi did not answer {method} {path} within {limit:.3g} s (attempt {attempt})"
            )
            failure, cause = APITimeoutError(msg, method=method, path=path), exc
            if isinstance(exc, _CONNECT_TIMEOUTS):
                _not_sent(failure)
        except _BodyTooLargeError as exc:
            self._log_attempt(label, attempt, "body too large", started)
            msg = (
                f"kod.mobi answered {method} {path} with a body over "
                f"{_protocol.MAX_BODY_BYTES} bytes ({exc}); refused without reading it"
            )
            failure = ResponseValidationError(msg, status=exc.status, method=method, path=path)
            cause = None
        except Exception as exc:  # aiohttp.ClientError, and whatever else a socket raises
            self._log_attempt(label, attempt, type(exc).__name__, started)
            if self._closed:
                failure, cause = self._closed_error(label), None
            else:
                msg = self._redactor.text(
                    f"could not get an answer from kod.mobi for {method} {path}: {_describe(exc)}"
                )
                failure, cause = APIConnectionError(msg, method=method, path=path), exc
                if isinstance(exc, aiohttp.ClientConnectorError):
                    _not_sent(failure)  # refused, unreachable, DNS: nothing left this host
        else:
            if logger.isEnabledFor(logging.DEBUG):
                self._log_attempt(label, attempt, status, started)
            if status != 429 and pace.rate is not None:
                pace.on_accepted(clock.monotonic())
            if 200 <= status < 300:
                result = decode(status, headers, body)
                self._budget.on_success()
                return result
            error = _protocol.status_error(
                status,
                headers,
                self._redactor.body(body),
                method=method,
                path=path,
                redactor=self._redactor,
            )
            if status == 429:
                self._pace.on_throttled(planned_at, clock.monotonic())
            elif error.retry_after is not None and status == 503:
                pause = min(error.retry_after, self._policy.max_retry_after)
                self._gate.pause_until(clock.monotonic() + pause)
            raise error
        raise self._sealed(failure, cause)

    def _channels(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> list[SessionChannel]:
        decoded = self._decoded
        cached = decoded.get(body)
        if cached is None:
            try:
                cached = tuple(
                    _protocol.decode_channels_response(
                        status,
                        headers,
                        body,
                        path=self._endpoints.channels,
                        redactor=self._redactor,
                    )
                )
            except ResponseValidationError as error:
                self._redactor.seal(error)
                raise
            if len(body) <= _DECODED_CACHE_MAX_BODY:
                if len(decoded) >= _DECODED_CACHE_SIZE:
                    del decoded[next(iter(decoded))]  # the oldest entry
                decoded[body] = cached
        return list(cached)

    def _sealed(self, failure: KodMobiError, cause: BaseException | None) -> KodMobiError:
        failure.__cause__ = cause
        self._redactor.seal(failure)
        return failure

    def _closed_error(self, label: str) -> ClientStateError:
        return ClientStateError(
            f"{label} was in flight when its KodMobiClient was closed; "
            "close the client only after its calls have finished (e.g. at the end of "
            "`async with`, or in your application's shutdown)"
        )

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the client's clock; end at once with an error if it is closed.

        The sleep runs in the caller's task, as the clock's own would (a FakeClock's
        bookkeeping depends on it); close() wakes it by cancelling that task while it
        is registered here, and the cancellation is turned back into an error.
        """
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 -- always called from a call's task
        self._sleepers.add(task)
        try:
            await self._clock.sleep(seconds)
        except asyncio.CancelledError:
            if task not in self._woken:
                raise  # the caller's own cancellation
            self._woken.discard(task)
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()
            failure = self._closed_error("a call")
        else:
            if not self._closed:
                return
            failure = self._closed_error("a call")
        finally:
            self._sleepers.discard(task)
        raise failure

    async def _wait_at_gate(self, now: float, deadline: float, exchange: _Exchange) -> None:
        until = self._gate.until
        if until >= deadline:
            msg = (
                f"kod.mobi asked this client to pause for {until - now:.3g} s (Retry-After), "
                f"past the deadline of {exchange.method} {exchange.path}"
            )
            raise _not_sent(APITimeoutError(msg, method=exchange.method, path=exchange.path))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s waits %.3f s at the pause kod.mobi asked for", exchange.label, until - now
            )
        await self._sleep(until - now)

    def _log_attempt(self, label: str, attempt: int, outcome: object, started: float) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s -> %s in %.1f ms (attempt %d)",
                label,
                outcome,
                (time.perf_counter() - started) * 1000,
                attempt,
            )

    # -- the verification flow ----------------------------------------------------

    async def create_session(
        self,
        to: str,
        *,
        type: ChannelType | str | None = None,  # kod.mobi's own name for the field
        send: bool = True,
        challenge_token: str | None = None,
    ) -> Session:
        """Create a verification session for a phone or an email, and send a code.

        kod.mobi "creates or returns": while a session for ``to`` lives (three
        minutes), the same session comes back. With ``send=True`` a code is delivered;
        that request is retried only when it provably never reached kod.mobi, so the
        SDK never causes a second message.

        Args:
            to: An E.164 phone (``"+79001234567"``) or an email address.
            type: The channel to send over; ``None`` lets kod.mobi choose (the channel
                the user used before, else the project's default).
            send: Send a code now (``True``), or only create or reload the session.
            challenge_token: The solved CAPTCHA token, when the project requires one
                (sent in the client's ``challenge_header``).

        Returns:
            The session, with its channels and where the code went.

        Raises:
            InvalidArgumentError: ``to`` or ``type`` is malformed (nothing was sent).
            BadRequestError: kod.mobi refused, e.g. ``sys_message`` is
                ``"ERROR_MESSAGE_ATTEMPT"`` while the channel cools down.
            APIError: As for :meth:`get_session_channels`.
        """
        request = create_request(
            self._endpoints, to, type=type, send=send, challenge=_challenge(challenge_token)
        )
        result: Session = await self._call(request, Session)
        return result

    async def send_code(
        self,
        session_id: str,
        type: ChannelType | str,  # kod.mobi's own name for the field
        *,
        challenge_token: str | None = None,
    ) -> SentCode:
        """Send the session's code again, over ``type`` (60 s cool-down per channel).

        Never retried once the request may have reached kod.mobi (see the retry rules).

        Args:
            session_id: The session's ULID from :meth:`create_session`.
            type: The channel to send over.
            challenge_token: The solved CAPTCHA token, when the project requires one.

        Returns:
            The channel used, with its cool-down running.

        Raises:
            InvalidSessionIdError: Not a ULID (nothing was sent).
            InvalidArgumentError: ``type`` is malformed.
            NotFoundError: No such session.
            BadRequestError: Expired (``ERROR_SESSION_EXPIRED``) or cooling down.
        """
        request = send_request(
            self._endpoints, session_id, type, challenge=_challenge(challenge_token)
        )
        result: SentCode = await self._call(request, SentCode)
        return result

    async def check_code(
        self, session_id: str, code: str, *, challenge_token: str | None = None
    ) -> CodeCheck:
        """Check the code the user typed; on success you get a ``verify_token``.

        Not retried once the request may have reached kod.mobi: a re-sent check could
        count as a second wrong attempt. The path is observed in kod.mobi's JS client,
        not documented (``Endpoints.check``).

        Args:
            session_id: The session's ULID.
            code: What the user typed: 4 to 6 digits, as a string.
            challenge_token: The solved CAPTCHA token, when the project requires one.

        Returns:
            The ``verify_token`` for your backend, and whether it is a test session.

        Raises:
            InvalidArgumentError: ``code`` is not 4 to 6 digits (nothing was sent).
            BadRequestError: A wrong code (``ERROR_MESSAGE_WRONG_CODE``, with
                ``error_params["count"]``), too many attempts, or an expired session.
            NotFoundError: No such session.
        """
        request = check_request(
            self._endpoints, session_id, code, challenge=_challenge(challenge_token)
        )
        result: CodeCheck = await self._call(request, CodeCheck)
        return result

    async def verify(self, verify_token: str) -> Verification:
        """Verify a ``verify_token`` on your backend, with the secret key.

        A token verifies once, so the call is not retried once it may have reached
        kod.mobi. Its path and schema are not in kod.mobi's docs (``Endpoints.verify``).

        Args:
            verify_token: From :meth:`check_code`, passed to your backend.

        Returns:
            The phone or email address that was proven.

        Raises:
            ConfigurationError: The client has no secret key (nothing was sent).
            NotFoundError: Unknown or already used token.
        """
        result: Verification = await self._call(
            verify_request(self._endpoints, verify_token), Verification
        )
        return result

    async def get_manual_channels(self) -> list[ManualChannel]:
        """The manual mode's channels and their providers (secret key).

        Returns:
            The channels, each with its providers.

        Raises:
            ConfigurationError: The client has no secret key (nothing was sent).
        """
        result: list[ManualChannel] = await self._call(
            manual_channels_request(self._endpoints), list[ManualChannel]
        )
        return result

    async def manual_send(
        self,
        to: str,
        channel: ChannelType | str,
        *,
        provider_id: int | None = None,
        code: str | None = None,
        callback_url: str | None = None,
    ) -> ManualMessage:
        """Deliver a code your backend generated (manual mode, secret key).

        Never retried once the request may have reached kod.mobi.

        Args:
            to: An E.164 phone or an email address.
            channel: The channel to deliver over.
            provider_id: A provider from :meth:`get_manual_channels`; ``None`` lets
                kod.mobi choose.
            code: The code to deliver, 4 to 6 digits; ``None`` lets kod.mobi make one.
            callback_url: An http(s) URL where kod.mobi reports the delivery.

        Returns:
            kod.mobi's message, the (encrypted) code and the message id.

        Raises:
            ConfigurationError: The client has no secret key (nothing was sent).
            InvalidArgumentError: A malformed argument (nothing was sent).
        """
        request = manual_send_request(
            self._endpoints,
            to,
            channel,
            provider_id=provider_id,
            code=code,
            callback_url=callback_url,
        )
        result: ManualMessage = await self._call(request, ManualMessage)
        return result

    async def get_settings(self, session_id: str | None = None) -> ProjectSettings:
        """The project's public settings: language, code format, CAPTCHA.

        Observed in kod.mobi's JS client, not documented (``Endpoints.settings``).

        Args:
            session_id: A session's ULID, or ``None`` for the project.

        Returns:
            The settings.
        """
        result: ProjectSettings = await self._call(
            settings_request(self._endpoints, session_id), ProjectSettings
        )
        return result

    # -- batches -----------------------------------------------------------------

    async def gather_session_channels(
        self,
        session_ids: Iterable[str] | AsyncIterable[str],
        *,
        concurrency: int = 50,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> BatchResult:
        """Look up many sessions at once, with one outcome per distinct id.

        See :class:`BatchResult` and the batch how-to for details.

        Args:
            session_ids: Any iterable or async iterable of ids; duplicates are looked
                up once. It is consumed lazily, so a generator of millions is fine.
            concurrency: How many lookups run at a time.
            timeout: Deadline for each lookup, counted from when it starts (not while it
                waits for a slot); defaults to the client's ``timeout``.
            on_progress: Called as ``on_progress(done, total)`` after each lookup;
                ``total`` is ``None`` when the input's length is not known. While no
                lookup finishes (a rate limit or a pause holds them back) it is also
                called every half second with unchanged counts, so a display can keep
                moving and show :attr:`pace`.

        Returns:
            A :class:`BatchResult` mapping each id, in input order, to its channels or
            its error.

        Raises:
            AuthenticationError: The key was rejected; the batch stops at once.
            PermissionDeniedError: The key may not do this; the batch stops at once.
            ValueError: ``concurrency`` is not a positive integer.
        """
        return await gather(
            self._lookup_for(timeout), session_ids, concurrency=concurrency, on_progress=on_progress
        )

    def iter_session_channels(
        self,
        session_ids: Iterable[str] | AsyncIterable[str],
        *,
        concurrency: int = 50,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncGenerator[tuple[str, Outcome], None]:
        """Like :meth:`gather_session_channels`, but yield each outcome as it is ready.

        Args:
            session_ids: Any iterable or async iterable of ids.
            concurrency: How many lookups run at a time.
            timeout: Deadline for each lookup, counted from when it starts.
            on_progress: Called as ``on_progress(done, total)`` after each lookup,
                and every half second while none finishes.

        Returns:
            An async generator of ``(session_id, channels_or_error)`` in completion
            order. Closing it cancels the lookups still running; to stop early with a
            ``break`` and have that happen at once rather than when Python finalizes
            the generator, iterate inside ``async with contextlib.aclosing(...)``.

        Raises:
            AuthenticationError: The key was rejected; the iteration stops at once.
            PermissionDeniedError: The key may not do this; the iteration stops.
            ValueError: ``concurrency`` is not a positive integer.
        """
        return stream(
            self._lookup_for(timeout), session_ids, concurrency=concurrency, on_progress=on_progress
        )

    def _lookup_for(self, timeout: object) -> Lookup:
        """The one-id lookup a batch runs, with the batch's per-lookup deadline."""
        if timeout is None:
            seconds, limit = self._timeout, self._attempt_limit
        elif _protocol.is_positive_seconds(timeout):
            seconds = float(timeout)
            limit = self._policy.attempt_limit(seconds)
        else:
            msg = (
                "timeout must be a positive number of seconds (at most one day) or None, "
                f"got {_shown_number(timeout)}"
            )
            raise ConfigurationError(msg)

        async def lookup(session_id: str) -> list[SessionChannel]:
            return await self._fetch(session_id, seconds, limit)

        return lookup


class _Connector(aiohttp.TCPConnector):
    """A TCPConnector whose plain-TCP transports read in 64 KiB steps instead of 256 KiB.

    asyncio's socket transport hands every read a fresh buffer of ``max_size`` bytes.
    At 256 KiB that is above glibc's mmap threshold, so each read of a 700-byte answer
    maps, shrinks and unmaps memory: measured at about 20 µs of CPU per lookup over
    plain http (the fake server, a local sidecar). TLS transports read into a reused
    buffer and are left alone. The hook is aiohttp's private one; if it ever goes away
    this override is simply not called, and tests/test_client.py notices.
    """

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        transport: Any
        transport, protocol = await super()._wrap_create_connection(*args, **kwargs)
        if getattr(transport, "max_size", 0) > _READ_SIZE:
            transport.max_size = _READ_SIZE
        return transport, protocol


@attrs.frozen
class _Exchange:
    """One call's request as the transport needs it (the answer's decoder aside)."""

    method: str
    url: URL
    body: bytes | None
    headers: Mapping[str, str] | None = attrs.field(repr=False)
    path: str
    label: str
    resend: Resend


# aiohttp 3.10+ says when a timeout hit while connecting (nothing was sent).
_CONNECT_TIMEOUTS: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if isinstance(t, type)
)


def _challenge(token: object) -> str | None:
    if token is None or (
        isinstance(token, str) and token and "\n" not in token and "\r" not in token
    ):
        return token
    msg = f"challenge_token must be the CAPTCHA provider's token string, got {type(token).__name__}"
    raise InvalidArgumentError(msg, argument="challenge_token")


def _not_sent(error: APIConnectionError) -> APIConnectionError:
    error.may_have_reached_server = False
    return error


class _HiddenHeaders(dict[str, str]):
    """Request headers whose repr never shows the API key."""

    def __repr__(self) -> str:
        shown = {k: ("***" if k.lower() == "x-api-key" else v) for k, v in self.items()}
        return repr(shown)


class _BodyTooLargeError(Exception):
    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status = status


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    """Read the body, refusing anything over the limit without holding it in memory."""
    limit = _protocol.MAX_BODY_BYTES
    length = response.content_length
    if length is not None:
        if length > limit:
            detail = f"Content-Length {length}"
            raise _BodyTooLargeError(detail, response.status)
        if "Content-Encoding" not in response.headers:
            return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            detail = f"more than {limit} bytes streamed"
            raise _BodyTooLargeError(detail, response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception that cannot print itself still has a name
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (by its caller)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    # Python 3.10 cannot tell; a CancelledError seen after close() is then taken for
    # the shutdown's, which is right unless the caller cancelled in the same instant.
    return bool(cancelling()) if cancelling is not None else False


def _shown_number(value: object) -> str:
    """A repr that stays short for ints of any size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        return repr(value)[:80]
    except Exception:  # a repr that fails still names the type
        return type(value).__name__
