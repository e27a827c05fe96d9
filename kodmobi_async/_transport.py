"""The one request path of every call: attempts, retries, deadlines, pacing, shutdown.

The client builds an :class:`Exchange` (what to send) and a decoder (what a 2xx answer
means), and hands both to :meth:`Transport.run`. Everything between that and the bytes
on the socket lives here, once for every call: the pooled aiohttp session, the pause
kod.mobi asked for and the learned pace, the deadline of each attempt, turning whatever
aiohttp raises into the SDK's errors (sealed, so no secret shows), the retry loop
(``_retry`` decides), and what calls in flight get when the client closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from ssl import SSLContext
from typing import Any, TypeVar

import aiohttp
import attrs
from yarl import URL

from . import _protocol
from ._calls import Resend
from ._clock import Clock
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientStateError,
    KodMobiError,
    ResponseValidationError,
)
from ._redact import Redactor
from ._retry import Retrier, RetryPolicy
from ._throttle import Pace, PaceState, PauseGate, RetryBudget

__all__ = ["Exchange", "HiddenHeaders", "Transport"]

logger = logging.getLogger("kodmobi_async")

T = TypeVar("T")
_MAX_BODY = _protocol.MAX_BODY_BYTES
_ENCODING = "Content-Encoding"


class Transport:
    """Sends a client's requests: one pool, one pace, one retry budget for all its calls.

    Args:
        policy: How failed attempts are retried.
        clock: Where time is read and waits are slept.
        attempt_limit: The default time limit of one attempt.
        max_connections: The pool's size, when the transport owns its session.
        headers: Headers every request carries (the public key among them, if any).
        session: A caller's aiohttp session to use (and never close), or ``None``.
        rate_limit: An explicit ceiling on request starts per second, or ``None``.
        redactor: The secrets no error, log line or cause may show.
        ssl: TLS settings for the pool, when the transport owns it.
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy,
        clock: Clock,
        attempt_limit: float,
        max_connections: int,
        headers: Mapping[str, str],
        session: aiohttp.ClientSession | None,
        rate_limit: float | None,
        redactor: Redactor,
        ssl: SSLContext | bool = True,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._attempt_limit = attempt_limit
        self._max_connections = max_connections
        self._headers = headers
        self._session = session
        self._owns_session = session is None
        self._redactor = redactor
        self._ssl = ssl
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # Calls waiting out a backoff or a pause, which close() wakes.
        self._sleepers: set[asyncio.Task[Any]] = set()
        self._woken: set[asyncio.Task[Any]] = set()
        self._budget = RetryBudget(policy.budget, policy.budget_refill)
        self._gate = PauseGate()
        self._pace = Pace(rate_limit)
        self._retrier = Retrier(
            policy, clock, self._budget, self._gate, logger, sleep=self._sleep, pace=self._pace
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @property
    def owns_session(self) -> bool:
        """Whether the pool is the transport's own (and so carries the default headers)."""
        return self._owns_session

    @property
    def attempt_limit(self) -> float:
        """The default time limit of one attempt."""
        return self._attempt_limit

    def pace_state(self) -> PaceState:
        """The learned or set rate, and any pause kod.mobi asked for."""
        pace = self._pace
        return PaceState(
            rate=pace.rate,
            ceiling=pace.ceiling,
            paused_for=max(0.0, self._gate.until - self._clock.monotonic()),
        )

    async def close(self) -> None:
        """Close the pool (if owned) and end every call in flight with an error."""
        self._closed = True
        for task in self._sleepers - self._woken:
            self._woken.add(task)
            task.cancel()
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    def ensure_session(self) -> aiohttp.ClientSession:
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
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ttl_dns_cache=300, ssl=self._ssl
            )
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

    async def run(
        self,
        exchange: Exchange,
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
        exchange: Exchange,
        decode: Callable[[int, Mapping[str, str], bytes], T],
        timeout: float,
        limit: float,
    ) -> T:
        session = self.ensure_session()
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
        exchange: Exchange,
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
            if pace.ceiling is not None:
                # The schedule keeps the rate; a late wake-up could still put one start
                # too many into a second, so the explicit limit is also held on the
                # actual start times.
                while (hold := pace.window_wait(now)) > 0 and now + hold < deadline:
                    await self._sleep(hold)
                    now = clock.monotonic()
                pace.record_start(now)
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

    async def _wait_at_gate(self, now: float, deadline: float, exchange: Exchange) -> None:
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


@attrs.frozen
class Exchange:
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


def _not_sent(error: APIConnectionError) -> APIConnectionError:
    error.may_have_reached_server = False
    return error


class HiddenHeaders(dict[str, str]):
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
