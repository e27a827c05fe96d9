"""The client: the one module that does network I/O.

It asks ``_protocol`` what to send and what an answer means, and ``_retry`` whether
to try again; what is left here is sockets, deadlines and the event loop.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import ssl
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
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
    ConfigurationError,
    InvalidArgumentError,
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
from ._retry import RetryPolicy
from ._throttle import Pace, PaceState
from ._transport import Exchange, HiddenHeaders, Transport

__all__ = ["KodMobiClient"]

logger = logging.getLogger("kodmobi_async")

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 100
T = TypeVar("T")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_BODY = _protocol.MAX_BODY_BYTES
_ENCODING = "Content-Encoding"
# Past this, a pool or a batch is a mistake (more than a process can hold sockets for).
MAX_CONNECTIONS = 65_536
_MAX_RATE = 1_000_000.0
# The `ssl` argument shadows the module inside __init__.
_SSLContext = ssl.SSLContext


@functools.cache
def _user_agent() -> str:
    # Read once, when the first client is made: not on import (see __init__).
    from importlib.metadata import version

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
        secret_key: The project's secret key, for the server-side calls
            (:meth:`verify`, the manual mode). Defaults to ``KODMOBI_SECRET_KEY``. A
            client may hold either key or both; a call whose key is missing raises
            :class:`ConfigurationError` before sending.
        endpoints: The paths of the calls, to override one kod.mobi serves elsewhere
            (the code check, verify and settings paths are observed, not documented).
        challenge_header: The header that carries a CAPTCHA ``challenge_token``
            (kod.mobi does not document it; its legacy playground used this default).
        ssl: TLS settings for the pool the client owns, as aiohttp takes them: an
            :class:`ssl.SSLContext` (a private CA, a client certificate), or ``True``
            for the system's defaults. ``False`` (no verification) is refused.

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
        ssl: ssl.SSLContext | bool = True,
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
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._attempt_limit = self._policy.attempt_limit(self._timeout)

        given_ssl: object = ssl  # checked at run time: callers may pass anything
        if given_ssl is not True and not isinstance(given_ssl, _SSLContext):
            msg = (
                "ssl must be an ssl.SSLContext or True; turning certificate checks off "
                "(False) would send the API key to whoever answers"
            )
            raise ConfigurationError(msg)
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
        self._headers: Mapping[str, str] = HiddenHeaders(headers)
        self._key_headers: dict[Key, Mapping[str, str] | None] = {
            Key.PUBLIC: None if public is None else HiddenHeaders({"x-api-key": public}),
            Key.SECRET: None if secret is None else HiddenHeaders({"x-api-key": secret}),
        }

        channels = self._endpoints.channels
        self._project_url = URL(self._base_url + channels, encoded=True)
        self._session_url_prefix = f"{self._base_url}{channels}?session_id="

        self._max_connections = max_connections
        self._transport = Transport(
            policy=self._policy,
            clock=self._clock,
            attempt_limit=self._attempt_limit,
            max_connections=max_connections,
            headers=self._headers,
            session=session,
            rate_limit=rate_limit,
            redactor=self._redactor,
            ssl=ssl,
        )

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> KodMobiClient:
        self._transport.ensure_session()
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
        await self._transport.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._transport.closed

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
        return self._transport.pace_state()

    @property
    def language(self) -> str | None:
        """The ``Accept-Language`` sent, if any."""
        return self._language

    def __repr__(self) -> str:
        state = "closed" if self._transport.closed else "open"
        return (
            f"<KodMobiClient {state} base_url={self._base_url!r} timeout={self._timeout:g} "
            f"attempts={self._policy.attempts}>"
        )

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
        return await self._transport.run(
            Exchange("GET", url, None, None, path, label, Resend.ANY_FAILURE),
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

        exchange = Exchange(method, url, request.body, headers, path, request.label, request.resend)
        return await self._transport.run(exchange, decode, self._timeout, self._attempt_limit)

    def _request_headers(self, request: Request) -> dict[str, str] | None:
        key_headers = self._key_headers[request.key]
        if key_headers is None:
            raise self._missing_key(request.key, request.label)
        headers: dict[str, str] = {}
        owns_session = self._transport.owns_session
        if not owns_session:
            headers.update(self._headers)
        if request.key is Key.SECRET or not owns_session:
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

    def _channels(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> list[SessionChannel]:
        try:
            return _protocol.decode_channels_response(
                status, headers, body, path=self._endpoints.channels, redactor=self._redactor
            )
        except ResponseValidationError as error:
            self._redactor.seal(error)
            raise

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
            concurrency: How many lookups run at a time; at most ``max_connections``
                when the client owns its pool (more would only queue for a connection).
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
            self._lookup_for(timeout),
            session_ids,
            concurrency=self._workers(concurrency),
            on_progress=on_progress,
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
            concurrency: How many lookups run at a time; at most ``max_connections``
                when the client owns its pool (more would only queue for a connection).
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
            self._lookup_for(timeout),
            session_ids,
            concurrency=self._workers(concurrency),
            on_progress=on_progress,
        )

    def _workers(self, concurrency: int) -> int:
        """The batch's worker count: at most the pool's size, when the pool is ours.

        Workers beyond the pool would only queue for a connection, and that wait counts
        against each attempt's time limit: measured, a batch at concurrency 256 on a
        pool of 64 lost lookups to timeouts that a pool-sized batch never had.
        """
        if (
            self._transport.owns_session
            and type(concurrency) is int
            and concurrency > self._max_connections
        ):
            return self._max_connections
        return concurrency

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


def _challenge(token: object) -> str | None:
    if token is None or (
        isinstance(token, str) and token and "\n" not in token and "\r" not in token
    ):
        return token
    msg = f"challenge_token must be the CAPTCHA provider's token string, got {type(token).__name__}"
    raise InvalidArgumentError(msg, argument="challenge_token")


def _shown_number(value: object) -> str:
    """A repr that stays short for ints of any size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        return repr(value)[:80]
    except Exception:  # a repr that fails still names the type
        return type(value).__name__
