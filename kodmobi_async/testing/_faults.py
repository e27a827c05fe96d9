"""Scripted misbehaviour for the fake kod.mobi server.

A :class:`Fault` is a value that says how the fake should answer one request instead of
answering it correctly: an error status, a dropped connection, a broken body, a redirect.
Each kind is a small private action class that knows how to write itself to the wire;
:class:`Fault` only wraps one of them, so users see a single type with readable
constructors and a repr that looks like the call that built it.

A status fault writes the same error envelope as the fake's own refusals
(:mod:`._envelope`), so a client cannot tell the two apart.
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import attrs
from aiohttp import web

from ._envelope import JSON_CONTENT_TYPE, default_error_text, default_sys_message, envelope

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Big enough that a 2 MiB body is a few dozen writes, small enough to never matter.
_STREAM_CHUNK_BYTES = 64 * 1024

# One channel object repeated to fill oversize bodies, so the body stays valid JSON and a
# client without a size limit would happily parse all of it.
_FILLER_ITEM = (
    b'{"name":"SMS","type":"sms","is_active":true,"timeout":0,'
    b'"image_url":"https://kod.mobi/static/channels/sms.svg","link":"https://kod.mobi"}'
)

# Python-repr quoting: the kind of almost-JSON a buggy backend really emits.
_MALFORMED_BODY = b"[{'name': 'SMS', 'type': 'sms', 'is_active': True}]"


@attrs.frozen(kw_only=True)
class Exchange:
    """What a fault needs from the server to answer one request.

    Args:
        request: The request being answered.
        language: The envelope language picked from ``Accept-Language``.
        sample_body: A realistic 200 body (the project channels) to cut short.
        serve: Produces the answer the fake would give without a fault, recording its
            status itself.
        record_status: Records the status the fault is about to send, or None when it
            sends no response at all.
    """

    request: web.BaseRequest
    language: str
    sample_body: bytes
    serve: Callable[[], web.StreamResponse]
    record_status: Callable[[int | None], None]


class _Action(Protocol):
    async def respond(self, exchange: Exchange) -> web.StreamResponse: ...


def _call_repr(name: str, *args: object, **kwargs: object) -> str:
    parts = [repr(arg) for arg in args]
    parts += [f"{key}={value!r}" for key, value in kwargs.items()]
    return f"Fault.{name}({', '.join(parts)})"


def _close_connection(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


@attrs.frozen(repr=False)
class _StatusAction:
    status: int
    sys_message: str
    error: str | None
    error_params: Mapping[str, Any] = attrs.field(hash=False)
    html: bool
    retry_after: str | None
    headers: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        options: dict[str, object] = {}
        if self.sys_message != default_sys_message(self.status):
            options["sys_message"] = self.sys_message
        if self.error is not None:
            options["error"] = self.error
        if self.error_params:
            options["error_params"] = dict(self.error_params)
        if self.html:
            options["html"] = True
        if self.retry_after is not None:
            options["retry_after"] = self.retry_after
        if self.headers:
            options["headers"] = dict(self.headers)
        return _call_repr("status", self.status, **options)

    async def respond(self, exchange: Exchange) -> web.StreamResponse:
        if self.html:
            body = _html_error_page(self.status)
            headers = {"Content-Type": "text/html; charset=utf-8"}
        else:
            error = self.error or default_error_text(self.status, exchange.language)
            body = envelope(self.status, self.sys_message, error, self.error_params)
            headers = {"Content-Type": JSON_CONTENT_TYPE}
        if self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        headers.update(self.headers)
        exchange.record_status(self.status)
        return web.Response(status=self.status, body=body, headers=headers)


def _html_error_page(status: int) -> bytes:
    # Shaped like the page nginx answers with when the upstream is down: the case where
    # a client gets HTML instead of the JSON it asked for.
    try:
        title = f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


@attrs.frozen(repr=False)
class _DropAction:
    def __repr__(self) -> str:
        return _call_repr("drop")

    async def respond(self, exchange: Exchange) -> web.StreamResponse:
        exchange.record_status(None)
        _close_connection(exchange.request)
        # aiohttp fails to write this to the closed transport, treats that as the client
        # going away and ends the connection without logging an error.
        return web.Response()


@attrs.frozen(repr=False)
class _DelayAction:
    seconds: float
    then: Fault | None

    def __repr__(self) -> str:
        if self.then is None:
            return _call_repr("delay", self.seconds)
        return _call_repr("delay", self.seconds, then=self.then)

    async def respond(self, exchange: Exchange) -> web.StreamResponse:
        await asyncio.sleep(self.seconds)
        if self.then is None:
            return exchange.serve()
        return await self.then._action.respond(exchange)


@attrs.frozen(repr=False)
class _MalformedAction:
    def __repr__(self) -> str:
        return _call_repr("malformed")

    async def respond(self, exchange: Exchange) -> web.StreamResponse:
        exchange.record_status(200)
        return web.Response(body=_MALFORMED_BODY, headers={"Content-Type": JSON_CONTENT_TYPE})


@attrs.frozen(repr=False)
class _TruncatedAction:
    def __repr__(self) -> str:
        return _call_repr("truncated")

    async def respond(self, exchange: Exchange) -> web.StreamResponse:
        body = exchange.sample_body
        response = web.StreamResponse(headers={"Content-Type": JSON_CONTENT_TYPE})
        response.content_length = len(body)
        exchange.record_status(200)
        try:
            await response.prepare(exchange.request)
            await response.write(body[: len(body) // 2])
        except ConnectionError:
            return response
        # asyncio flushes what was written before closing, so the client gets the
        # headers and half the body, then EOF.
        _close_connection(exchange.request)
        return response


@attrs.frozen(repr=False)
class _RedirectAction:
    location: str
    status: int

    def __repr__(self) -> str:
        return _call_repr("redirect", self.location, status=self.status)

    async def respond(self, exchange: Exchange) -> web.StreamResponse:
        exchange.record_status(self.status)
        return web.Response(status=self.status, headers={"Location": self.location})


@attrs.frozen(repr=False)
class _OversizeAction:
    size_bytes: int
    chunked: bool

    def __repr__(self) -> str:
        return _call_repr("oversize", self.size_bytes, chunked=self.chunked)

    async def respond(self, exchange: Exchange) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": JSON_CONTENT_TYPE})
        if self.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = self.size_bytes
        exchange.record_status(200)
        try:
            await response.prepare(exchange.request)
            for chunk in _oversize_chunks(self.size_bytes):
                await response.write(chunk)
        except ConnectionError:
            # The client gave up on the body, which is exactly what a size limit does.
            pass
        return response


def _oversize_chunks(size: int) -> Iterator[bytes]:
    """Yield a JSON array of exactly ``size`` bytes in bounded chunks."""
    head = b"[" + _FILLER_ITEM
    if size < len(head) + 1:
        yield b"[" + b" " * (size - 2) + b"]"
        return
    unit = b"," + _FILLER_ITEM
    repeats, padding = divmod(size - len(head) - 1, len(unit))
    per_block = max(1, _STREAM_CHUNK_BYTES // len(unit))
    blocks, rest = divmod(repeats, per_block)
    yield head
    block = unit * per_block
    for _ in range(blocks):
        yield block
    if rest:
        yield unit * rest
    # Whitespace between the last element and the bracket keeps the length exact.
    yield b" " * padding + b"]"


@attrs.frozen(repr=False)
class _BodyAction:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        options: dict[str, object] = {}
        if self.content_type != "application/json":
            options["content_type"] = self.content_type
        if self.headers:
            options["headers"] = dict(self.headers)
        return _call_repr("body", self.status, self.body, **options)

    async def respond(self, exchange: Exchange) -> web.StreamResponse:
        headers = {"Content-Type": self.content_type}
        headers.update(self.headers)
        exchange.record_status(self.status)
        return web.Response(status=self.status, body=self.body, headers=headers)


def _header_pairs(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((headers or {}).items())


@attrs.frozen(repr=False)
class Fault:
    """One scripted misbehaviour of the fake server, built with the classmethods below.

    Faults are immutable values: compare them, reuse them, and find the one that was
    applied in :attr:`RecordedRequest.fault <kodmobi_async.testing.RecordedRequest>`.
    Hand them to :meth:`FakeKodMobi.script <kodmobi_async.testing.FakeKodMobi.script>`
    or :meth:`~kodmobi_async.testing.FakeKodMobi.script_session`.
    """

    _action: _Action

    def __repr__(self) -> str:
        return repr(self._action)

    @classmethod
    def status(
        cls,
        code: int,
        *,
        sys_message: str | None = None,
        error: str | None = None,
        error_params: Mapping[str, Any] | None = None,
        html: bool = False,
        retry_after: int | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer with an error status and kod.mobi's JSON error envelope.

        Args:
            code: The HTTP status, 400 to 599; the envelope's ``status`` mirrors it.
            sys_message: The machine-readable code; derived from the status when None
                (503 gives ``ERROR_SERVICE_UNAVAILABLE``, 429 ``ERROR_TOO_MANY_REQUESTS``).
            error: The human-readable text, sent as is in every language; when None the
                fake sends the status' reason in the request's language (en or ru).
            error_params: The envelope's ``error_params``; ``{}`` when None.
            html: Send an nginx-style HTML error page instead of JSON, as a proxy in
                front of the service would.
            retry_after: The ``Retry-After`` header: whole seconds as an int, or a string
                passed through verbatim (an HTTP date, or a deliberately odd value).
            headers: Extra response headers, applied last.

        Returns:
            The fault.

        Raises:
            ValueError: ``code`` is not an error status or ``retry_after`` is negative.
            TypeError: ``retry_after`` is neither an int nor a string.
        """
        if not 400 <= code <= 599:
            msg = f"Fault.status needs a 4xx or 5xx code, got {code}"
            raise ValueError(msg)
        retry_header: str | None
        if retry_after is None or isinstance(retry_after, str):
            retry_header = retry_after
        elif type(retry_after) is not int:
            # bool and float would pass as "True" or "1.5"; make the caller say so.
            msg = f"retry_after must be whole seconds (int) or a header string, got {retry_after!r}"
            raise TypeError(msg)
        elif retry_after < 0:
            msg = f"retry_after must be >= 0 seconds, got {retry_after}"
            raise ValueError(msg)
        else:
            retry_header = str(retry_after)
        return cls(
            _StatusAction(
                status=code,
                sys_message=sys_message or default_sys_message(code),
                error=error,
                error_params=dict(error_params or {}),
                html=html,
                retry_after=retry_header,
                headers=_header_pairs(headers),
            )
        )

    @classmethod
    def drop(cls) -> Fault:
        """Close the TCP connection without sending any response.

        Returns:
            The fault. An aiohttp client sees ``aiohttp.ServerDisconnectedError``.
        """
        return cls(_DropAction())

    @classmethod
    def delay(cls, seconds: float, then: Fault | None = None) -> Fault:
        """Wait before answering, on top of the server's configured latency.

        Args:
            seconds: How long to wait before answering.
            then: The fault to apply after the wait; None serves the request normally.

        Returns:
            The fault.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            msg = f"Fault.delay needs seconds >= 0, got {seconds}"
            raise ValueError(msg)
        return cls(_DelayAction(seconds=seconds, then=then))

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 ``application/json`` with a body that is not valid JSON.

        Returns:
            The fault.
        """
        return cls(_MalformedAction())

    @classmethod
    def truncated(cls) -> Fault:
        """Answer 200 with a ``Content-Length`` larger than the bytes sent, then close.

        The fake sends the first half of the project channel list and closes the
        connection, so the client reads a short body.

        Returns:
            The fault. An aiohttp client sees ``aiohttp.ClientPayloadError`` when reading
            the body.
        """
        return cls(_TruncatedAction())

    @classmethod
    def redirect(cls, location: str = "https://evil.example/steal", status: int = 302) -> Fault:
        """Answer with a redirect, which an API client should refuse to follow.

        Args:
            location: The ``Location`` header.
            status: 301, 302, 303, 307 or 308.

        Returns:
            The fault.

        Raises:
            ValueError: ``status`` is not a redirect status.
        """
        if status not in _REDIRECT_STATUSES:
            msg = f"Fault.redirect needs one of {sorted(_REDIRECT_STATUSES)}, got {status}"
            raise ValueError(msg)
        return cls(_RedirectAction(location=location, status=status))

    @classmethod
    def oversize(cls, size_bytes: int = 2 * 1024 * 1024, *, chunked: bool = False) -> Fault:
        """Answer 200 with a huge but valid JSON array, streamed in chunks.

        Args:
            size_bytes: The exact body size, at least 2.
            chunked: Use chunked transfer encoding instead of a ``Content-Length``, so
                the client cannot reject the body from its headers.

        Returns:
            The fault.

        Raises:
            ValueError: ``size_bytes`` is below 2.
        """
        if size_bytes < 2:
            msg = f"Fault.oversize needs size_bytes >= 2, got {size_bytes}"
            raise ValueError(msg)
        return cls(_OversizeAction(size_bytes=size_bytes, chunked=chunked))

    @classmethod
    def body(
        cls,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer with an arbitrary raw response, for anything the other faults miss.

        Use it for wrongly typed fields, surprising envelopes and the like.

        Args:
            status: The HTTP status, 200 to 599.
            body: The exact body bytes.
            content_type: The ``Content-Type`` header, sent verbatim.
            headers: Extra response headers, applied last.

        Returns:
            The fault.

        Raises:
            ValueError: ``status`` is outside 200 to 599.
        """
        if not 200 <= status <= 599:
            msg = f"Fault.body needs a status from 200 to 599, got {status}"
            raise ValueError(msg)
        return cls(
            _BodyAction(
                status=status,
                body=bytes(body),
                content_type=content_type,
                headers=_header_pairs(headers),
            )
        )


async def respond(fault: Fault, exchange: Exchange) -> web.StreamResponse:
    """Answer a request the way ``fault`` says.

    Args:
        fault: The fault to apply.
        exchange: The request and the server hooks the fault may use.

    Returns:
        The response for aiohttp to finish sending.
    """
    return await fault._action.respond(exchange)
