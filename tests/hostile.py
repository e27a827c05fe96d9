"""A hostile HTTP server for the suite: every byte it sends is chosen by the test.

The project's fake server speaks correct HTTP through aiohttp, so it can only misbehave
in the ways aiohttp lets it. This one sits on a raw asyncio socket: it reads a request
head, records it (headers included, so a test can prove the key was sent), then writes
exactly the scripted steps: bytes, pauses between them, and a close or a hold. Status
lines, header lines, framing and timing are all the test's to break.

The server knows nothing of kod.mobi or the SDK, so it shares none of their blind
spots. Below it sit the checks of what the SDK promises whatever the server does (a
model or a documented error, on time, with the key nowhere), shared by the example
tests and the property tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import attrs

from kodmobi_async import BatchResult, KodMobiClient, KodMobiError, SessionChannel
from kodmobi_async import _errors as errors_module

__all__ = [
    "ENTRY_POINTS",
    "GRACE",
    "SESSION_ID",
    "Ended",
    "Exchange",
    "HostileServer",
    "LogCapture",
    "Reply",
    "Responder",
    "SeenRequest",
    "assert_documented",
    "assert_key_nowhere",
    "channel_json",
    "exception_texts",
    "exchange",
    "http_reply",
    "json_reply",
    "lookup",
    "run_call",
    "session_ids",
]

# A request head larger than this is not from the SDK; stop reading rather than buffer it.
_MAX_HEAD = 64 * 1024


@attrs.frozen
class SeenRequest:
    """One request head as the server read it.

    Attributes:
        method: The request method (``"GET"``).
        target: The request target as sent (``"/session/channels?session_id=..."``).
        headers: Every header line as ``(name, value)``, in order, names as sent.
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``.

        Args:
            name: The header's name.

        Returns:
            Its value as sent, or ``None`` when the request did not carry it.
        """
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def session_id(self) -> str | None:
        """The ``session_id`` query value, or ``None`` for the project-level call."""
        _, _, query = self.target.partition("?")
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            if key == "session_id":
                return value
        return None


@attrs.frozen
class Reply:
    """What the server does with one request.

    Attributes:
        steps: Written in order: ``bytes`` are sent at once, a ``float`` is a pause in
            seconds before the next step.
        then: After the last step, ``"close"`` the connection, ``"hold"`` it open until
            the client goes away (a server that never finishes), or ``"keep"`` it for
            the next request (keep-alive).
    """

    steps: tuple[bytes | float, ...]
    then: str = attrs.field(default="close")

    @then.validator
    def _check_then(self, _attribute: object, value: str) -> None:
        if value not in {"close", "hold", "keep"}:
            msg = f"then must be close, hold or keep, got {value!r}"
            raise ValueError(msg)

    @classmethod
    def raw(cls, data: bytes, *, then: str = "close") -> Reply:
        """Send ``data`` verbatim in one write, then ``then``.

        Args:
            data: The exact bytes to send.
            then: See :attr:`then`.

        Returns:
            The reply.
        """
        return cls((data,), then=then)

    @classmethod
    def trickle(cls, data: bytes, *, every: float, then: str = "close") -> Reply:
        """Send ``data`` one byte at a time with ``every`` seconds between bytes.

        Args:
            data: The bytes to send.
            every: Pause between two bytes, in seconds.
            then: See :attr:`then`.

        Returns:
            The reply (a slowloris when ``every`` is long enough).
        """
        steps: list[bytes | float] = []
        for i in range(len(data)):
            if i:
                steps.append(every)
            steps.append(data[i : i + 1])
        return cls(tuple(steps), then=then)


#: Chooses the reply to one request; may read the request (to echo its key, say).
Responder = Callable[[SeenRequest], Reply]


def http_reply(
    status: int | str,
    body: bytes = b"",
    *,
    headers: Iterable[tuple[str, str]] = (),
    reason: str = "Whatever",
    content_length: bool = True,
    then: str = "close",
) -> Reply:
    """A well-framed HTTP/1.1 answer with any status, headers and body.

    Args:
        status: The status code, or any text to put in its place.
        body: The body bytes.
        headers: Header lines to send, as given (no checks, no folding).
        reason: The reason phrase.
        content_length: Add a ``Content-Length`` for ``body``.
        then: See :attr:`Reply.then`; ``"close"`` also announces ``Connection: close``
            so the client does not put the connection back into its pool.

    Returns:
        The reply.
    """
    # UTF-8, not latin-1: any text goes, and what is not ASCII becomes obs-text bytes.
    lines = [f"HTTP/1.1 {status} {reason}".encode()]
    for name, value in headers:
        lines.append(f"{name}: {value}".encode())
    if content_length:
        lines.append(b"Content-Length: %d" % len(body))
    if then == "close":
        lines.append(b"Connection: close")
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    return Reply.raw(head + body, then=then)


def json_reply(
    status: int, value: Any, *, headers: Iterable[tuple[str, str]] = (), then: str = "close"
) -> Reply:
    """:func:`http_reply` with ``value`` as a JSON body.

    Args:
        status: The status code.
        value: Anything :func:`json.dumps` takes.
        headers: Extra header lines.
        then: See :attr:`Reply.then`.

    Returns:
        The reply, with ``Content-Type: application/json``.
    """
    body = json.dumps(value).encode()
    return http_reply(
        status, body, headers=[("Content-Type", "application/json"), *headers], then=then
    )


class HostileServer:
    """A raw-socket HTTP server on ``127.0.0.1`` that answers with scripted bytes.

    Use it as an async context manager. Each request gets the reply of
    :attr:`responder` (set it, or :meth:`answer` with a fixed reply); every request
    head read is kept in :attr:`requests`. Leaving the context closes the listening
    socket and every connection still open, and waits for their handlers.

    Attributes:
        responder: Chooses each reply.
        requests: Every request head read, in arrival order.
    """

    def __init__(self, responder: Responder | Reply | None = None) -> None:
        self.responder: Responder = _as_responder(responder or http_reply(204))
        self.requests: list[SeenRequest] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the ``base_url`` to give the client."""
        assert self._server is not None, "the server is not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def answer(self, reply: Responder | Reply) -> None:
        """Answer every further request with ``reply`` (or what it chooses).

        Args:
            reply: A fixed :class:`Reply`, or a :data:`Responder`.
        """
        self.responder = _as_responder(reply)

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening, drop every connection, and wait for the handlers to end."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client hung up or sent nonsense: nothing left to answer
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.transport.abort()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await _read_head(reader)
            if head is None:
                return
            request = _parse_head(head)
            self.requests.append(request)
            reply = self.responder(request)
            for step in reply.steps:
                if isinstance(step, bytes):
                    if writer.transport.is_closing():
                        return
                    writer.write(step)
                    await writer.drain()
                else:
                    await asyncio.sleep(step)
            if reply.then == "close":
                return
            if reply.then == "hold":
                # Whatever the client sends now is ignored; wait for it to leave.
                while await reader.read(_MAX_HEAD):
                    pass
                return


def _as_responder(reply: Responder | Reply) -> Responder:
    if isinstance(reply, Reply):
        fixed = reply
        return lambda _request: fixed
    return reply


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > _MAX_HEAD:
            return None
    # A GET carries no body, and the SDK does not pipeline: the rest is not expected.
    return bytes(data.split(b"\r\n\r\n", 1)[0])


def _parse_head(head: bytes) -> SeenRequest:
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return SeenRequest(method, target, tuple(headers))


# -- what the SDK promises, whatever the server sends ----------------------------------

#: Slack on top of a call's deadline before it counts as late. Generous: the machine
#: running the suite is shared, and a late event loop is not a broken deadline.
GRACE = 1.5
# A call that has not ended this long after its deadline is hung: stop waiting for it.
_HUNG = 15.0
_DOCUMENTED = frozenset(
    cls
    for name in errors_module.__all__
    if isinstance(cls := getattr(errors_module, name), type) and issubclass(cls, KodMobiError)
)


@attrs.frozen
class Ended:
    """How one call ended.

    Attributes:
        value: What it returned, when it returned.
        error: What it raised, when it raised.
        elapsed: Wall-clock seconds from the call to its end.
    """

    value: object
    error: BaseException | None
    elapsed: float


async def run_call(call: Awaitable[Any], *, deadline: float) -> Ended:
    """Await ``call`` and check it ended, without a stray cancellation, by its deadline.

    Args:
        call: The SDK call, not yet awaited.
        deadline: The call's own deadline in seconds (the client's ``timeout``).

    Returns:
        What the call returned or raised, and how long it took.

    Raises:
        AssertionError: It hung, ended in a ``CancelledError`` nobody asked for, or
            ended later than ``deadline`` plus :data:`GRACE`.
    """
    started = time.monotonic()
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=deadline + _HUNG)
    elapsed = time.monotonic() - started
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        msg = f"the call had not ended {elapsed:.1f} s after it started"
        raise AssertionError(msg)
    assert not task.cancelled(), "the call ended in a CancelledError nobody asked for"
    assert elapsed <= deadline + GRACE, f"the call took {elapsed:.2f} s, deadline {deadline} s"
    error = task.exception()
    if error is not None:
        return Ended(None, error, elapsed)
    return Ended(task.result(), None, elapsed)


def assert_documented(error: BaseException | None) -> KodMobiError:
    """Check ``error`` is an instance of one of the SDK's documented error classes.

    Args:
        error: What a call raised.

    Returns:
        The same error, typed.

    Raises:
        AssertionError: Nothing was raised, or something else was (the traceback of the
            stray exception is in the message, to show where it came from).
    """
    assert error is not None, "the call returned where an error was due"
    if not isinstance(error, KodMobiError) or not any(type(error) is c for c in _DOCUMENTED):
        shown = "".join(traceback.format_exception(error))
        msg = f"undocumented exception escaped the SDK:\n{shown}"
        raise AssertionError(msg)
    return error


def assert_channels(value: object) -> list[SessionChannel]:
    """Check ``value`` is a list of channels.

    Args:
        value: What a call returned.

    Returns:
        The same list, typed.
    """
    assert type(value) is list, f"expected a list of channels, got {type(value).__name__}"
    assert all(type(item) is SessionChannel for item in value)
    return value


def exception_texts(error: BaseException) -> Iterator[str]:
    """Every text a user could get out of ``error``: its traceback, then for it and each
    exception reachable from it (causes, contexts, attributes, group members) its
    ``str``, ``repr``, and the ``str`` and ``repr`` of its args and attributes.

    Args:
        error: Where to start.

    Yields:
        Each text.
    """
    yield "".join(traceback.format_exception(error))
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        values = [current, *current.args, *vars(current).values()]
        values += list(getattr(current, "exceptions", ()))
        for value in values:
            yield from (_safe(str, value), _safe(repr, value))
            if isinstance(value, BaseException):
                todo.append(value)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _safe(show: Callable[[object], str], value: object) -> str:
    try:
        return show(value)
    except Exception as exc:
        return f"<{show.__name__} failed: {type(exc).__name__}>"


class LogCapture(logging.Handler):
    """Everything the ``kodmobi_async`` logger says at DEBUG, while in the ``with``.

    For property tests, where pytest's function-scoped ``caplog`` cannot be shared by
    examples.

    Attributes:
        lines: Each record, formatted with its exception if it has one.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._logger = logging.getLogger("kodmobi_async")
        self._level = self._logger.level
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted record."""
        self.lines.append(self.format(record))

    def __enter__(self) -> LogCapture:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


def assert_key_nowhere(
    key: str, error: BaseException | None = None, log_lines: Iterable[str] = ()
) -> None:
    """Check ``key`` shows in no text of ``error`` and in no log line.

    Args:
        key: The API key the client was given.
        error: What the call raised, if anything.
        log_lines: The formatted log records of the call.

    Raises:
        AssertionError: The key leaked; the message says where, with the key masked.
    """
    masked = key[:3] + "…"
    texts = exception_texts(error) if error is not None else iter(())
    for text in texts:
        if key in text:
            shown = text.replace(key, masked)
            msg = f"the API key leaked through the error: {shown[:2000]}"
            raise AssertionError(msg)
    for line in log_lines:
        assert key not in line, f"the API key leaked into a log line: {line.replace(key, masked)}"


def session_ids(count: int, *, prefix: str = "01HZX") -> list[str]:
    """``count`` distinct valid session ids (ULIDs) in a stable order.

    Args:
        count: How many.
        prefix: Their first characters (digits follow), to tell groups apart.

    Returns:
        The ids.
    """
    width = 26 - len(prefix)
    return [f"{prefix}{i:0{width}d}" for i in range(count)]


def channel_json(index: int = 0) -> dict[str, Any]:
    """One channel as kod.mobi sends it.

    Args:
        index: Varies the name and the cool-down.

    Returns:
        The channel's JSON object.
    """
    return {
        "name": f"Channel {index}",
        "type": ["whatsapp", "telegram", "sms", "email"][index % 4],
        "is_active": index % 2 == 0,
        "timeout": index % 61,
        "image_url": None,
        "link": "https://t.me/example_bot" if index % 4 == 1 else None,
    }


#: The four ways in: a project-level call, a session call, one id through each batch.
ENTRY_POINTS = ("project", "session", "gather", "iter")
SESSION_ID = session_ids(1)[0]


async def lookup(client: KodMobiClient, how: str, session_id: str = SESSION_ID) -> Ended:
    """One lookup through entry point ``how``, checked by :func:`run_call`.

    A batch's outcome for the id is unpacked, so an error it holds is ``error`` here,
    as if the call had raised it.

    Args:
        client: The client to call.
        how: One of :data:`ENTRY_POINTS`.
        session_id: The id to look up (not used by ``"project"``).

    Returns:
        How the lookup ended.
    """
    deadline = client.timeout
    if how == "project":
        return await run_call(client.get_session_channels(), deadline=deadline)
    if how == "session":
        return await run_call(client.get_session_channels(session_id), deadline=deadline)
    if how == "gather":
        ended = await run_call(client.gather_session_channels([session_id]), deadline=deadline)
        if ended.error is not None:
            return ended
        assert isinstance(ended.value, BatchResult)
        assert list(ended.value) == [session_id]
        outcome: object = ended.value[session_id]
    else:

        async def collect() -> list[tuple[str, object]]:
            return [item async for item in client.iter_session_channels([session_id])]

        ended = await run_call(collect(), deadline=deadline)
        if ended.error is not None:
            return ended
        assert isinstance(ended.value, list)
        assert [sid for sid, _ in ended.value] == [session_id]
        outcome = ended.value[0][1]
    if isinstance(outcome, BaseException):
        return Ended(None, outcome, ended.elapsed)
    return Ended(outcome, None, ended.elapsed)


@attrs.frozen
class Exchange:
    """One lookup against a fresh hostile server, as :func:`exchange` saw it.

    Attributes:
        ended: How the lookup ended.
        requests: What the server read.
        log_lines: What the ``kodmobi_async`` logger said, at DEBUG.
    """

    ended: Ended
    requests: list[SeenRequest]
    log_lines: list[str]


async def exchange(reply: Reply | Responder, how: str, *, api_key: str, **options: Any) -> Exchange:
    """Serve ``reply`` on a fresh server, make one lookup with a fresh client, close both.

    Everything lives and dies inside the call, so property-test examples share nothing;
    a task the SDK leaves running after its client is closed fails the check.

    Args:
        reply: What the server answers.
        how: One of :data:`ENTRY_POINTS`.
        api_key: The key the client sends.
        **options: More :class:`KodMobiClient` arguments (``timeout``, ``retry``, ...).

    Returns:
        The lookup's end, the requests the server read, and the log lines.
    """
    before = asyncio.all_tasks()
    with LogCapture() as logs:
        async with HostileServer(reply) as server:
            client = KodMobiClient(api_key, base_url=server.url, **options)
            try:
                ended = await lookup(client, how)
            finally:
                await client.close()
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert not left, f"tasks left running after the client closed: {left}"
    return Exchange(ended, server.requests, logs.lines)
