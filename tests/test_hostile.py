"""Hostile answers, byte by byte: each case of issue 8 as its own test.

Every test talks to :class:`tests.hostile.HostileServer` over a loopback socket and
checks what the README promises whatever the server sends: channels or a documented
error, by the deadline, with the API key in no error text and no log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from kodmobi_async import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BatchResult,
    ChannelType,
    ConfigurationError,
    FakeClock,
    KodMobiClient,
    KodMobiError,
    RedirectError,
    ResponseValidationError,
    RetryBudgetExhaustedError,
    RetryPolicy,
    SessionChannel,
)
from kodmobi_async._errors import status_error_class

from .conftest import SECRET_KEY
from .hostile import (
    ENTRY_POINTS,
    Ended,
    HostileServer,
    Reply,
    SeenRequest,
    assert_channels,
    assert_documented,
    assert_key_nowhere,
    channel_json,
    http_reply,
    json_reply,
    lookup,
    run_call,
    session_ids,
)

ClientMaker = Callable[..., KodMobiClient]

DEEP = 1500
ABSURD_DATES = [
    "Mon, 01 Jan 99999 00:00:00 GMT",
    "Mon, 01 Jan 2024 00:00:00 +9999999999",
    "Mon, 01 Jan 2024 00:00:00 -9999999999",
    "Mon, 01 Jan 2024 00:00:00 +99999999999999",
    "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 -2359",
    "Mon, 01 Jan 0001 00:00:00 +2359",
]
# What a 503 may end in with retries on: its own class, or giving up for budget or time.
ServerErrorOrGiveUp = (status_error_class(503), RetryBudgetExhaustedError, APITimeoutError)


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as hostile:
        yield hostile


@pytest.fixture
async def make_client(server: HostileServer) -> AsyncIterator[ClientMaker]:
    """Clients on the hostile server, retries off unless asked; all closed at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        def factory(**overrides: Any) -> KodMobiClient:
            defaults = {"timeout": 3.0, "retry": RetryPolicy.disabled()}
            client = KodMobiClient(SECRET_KEY, base_url=server.url, **{**defaults, **overrides})
            stack.push_async_callback(client.close)
            return client

        yield factory


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="kodmobi_async")
    return caplog


Echo = Callable[..., Awaitable[Any]]


@pytest.fixture
def echo(
    server: HostileServer, make_client: ClientMaker, debug_log: pytest.LogCaptureFixture
) -> Echo:
    """Have the server answer with what ``build(key)`` makes of the key it was sent,
    look up through ``how``, check the error is a ``cls`` whose texts and log lines do
    not hold the key, and return it."""

    async def run(
        build: Callable[[str], Reply], cls: type[KodMobiError], how: str = "session"
    ) -> Any:
        server.answer(echo_key(build))
        error = expect_error(await lookup(make_client(), how), cls)
        assert_key_nowhere(SECRET_KEY, error, log_lines(debug_log))
        return error

    return run


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every kodmobi_async record, with its exception text, as a handler would print it."""
    formatter = logging.Formatter("%(message)s")
    return [formatter.format(r) for r in caplog.records if r.name.startswith("kodmobi_async")]


def expect_error(ended: Ended, cls: type[KodMobiError]) -> Any:
    """The documented error ``ended`` raised, checked to be exactly a ``cls``."""
    error = assert_documented(ended.error)
    assert type(error) is cls, f"expected {cls.__name__}, got {type(error).__name__}: {error}"
    return error


def echo_key(build: Callable[[str], Reply]) -> Callable[[SeenRequest], Reply]:
    """A responder that puts the key the client sent into its answer, as a careless
    upstream (or a hostile one) would."""

    def respond(request: SeenRequest) -> Reply:
        key = request.header("x-api-key")
        assert key == SECRET_KEY, "the client did not send its key"
        return build(key)

    return respond


def deep_array(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


class TestDeepJson:
    @pytest.mark.parametrize("how", ENTRY_POINTS)
    async def test_deep_array_on_2xx_is_a_validation_error(
        self, server: HostileServer, make_client: ClientMaker, how: str
    ) -> None:
        server.answer(http_reply(200, deep_array().encode()))
        error = expect_error(await lookup(make_client(), how), ResponseValidationError)
        assert error.status == 200

    async def test_deep_object_on_2xx_is_a_validation_error(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        body = '{"a":' * DEEP + "1" + "}" * DEEP
        server.answer(http_reply(201, body.encode()))
        error = expect_error(await lookup(make_client(), "session"), ResponseValidationError)
        assert error.status == 201

    async def test_deep_legacy_wrapper_on_2xx_is_a_validation_error(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        body = '{"success": true, "data": ' + deep_array() + "}"
        server.answer(http_reply(200, body.encode()))
        error = expect_error(await lookup(make_client(), "project"), ResponseValidationError)
        assert error.status == 200

    @pytest.mark.parametrize("how", ENTRY_POINTS)
    @pytest.mark.parametrize("status", [400, 404, 503])
    async def test_deep_error_envelope_keeps_the_status_class(
        self, server: HostileServer, make_client: ClientMaker, how: str, status: int
    ) -> None:
        body = '{"success": false, "error": ' + deep_array() + ', "sys_message": "X"}'
        server.answer(http_reply(status, body.encode()))
        error = expect_error(await lookup(make_client(), how), status_error_class(status))
        assert error.status == status

    async def test_deep_error_params_keep_the_status_class(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        body = '{"error": "no", "sys_message": "E", "error_params": ' + deep_array() + "}"
        server.answer(http_reply(404, body.encode()))
        error = expect_error(await lookup(make_client(), "session"), status_error_class(404))
        assert error.status == 404


class TestAbsurdRetryAfter:
    @pytest.mark.parametrize("value", ABSURD_DATES)
    @pytest.mark.parametrize("status", [429, 503, 500, 400])
    async def test_absurd_date_keeps_the_status_class(
        self, server: HostileServer, make_client: ClientMaker, status: int, value: str
    ) -> None:
        server.answer(json_reply(status, {"error": "slow down"}, headers=[("Retry-After", value)]))
        error = expect_error(await lookup(make_client(), "session"), status_error_class(status))
        assert error.status == status
        assert error.retry_after is None or (
            math.isfinite(error.retry_after) and error.retry_after >= 0
        )

    @pytest.mark.parametrize("how", ENTRY_POINTS)
    @pytest.mark.parametrize("value", [ABSURD_DATES[0], ABSURD_DATES[3], ABSURD_DATES[4]])
    async def test_absurd_date_through_every_entry_point(
        self, server: HostileServer, make_client: ClientMaker, how: str, value: str
    ) -> None:
        server.answer(http_reply(429, b"", headers=[("Retry-After", value)]))
        error = expect_error(await lookup(make_client(), how), status_error_class(429))
        assert error.status == 429

    @pytest.mark.parametrize(
        "value", ["1e400", "-1", "nan", "inf", "-0", "9" * 400, "0x10", "1_000", " 5 "]
    )
    async def test_odd_numbers_give_a_usable_wait_or_none(
        self, server: HostileServer, make_client: ClientMaker, value: str
    ) -> None:
        server.answer(http_reply(503, b"busy", headers=[("Retry-After", value)]))
        error = expect_error(await lookup(make_client(), "session"), status_error_class(503))
        assert error.retry_after is None or (
            math.isfinite(error.retry_after) and error.retry_after >= 0
        )

    @pytest.mark.parametrize("value", [ABSURD_DATES[3], ABSURD_DATES[4]])
    async def test_absurd_date_with_retries_on_ends_in_a_documented_error(
        self, server: HostileServer, make_client: ClientMaker, value: str
    ) -> None:
        server.answer(http_reply(503, b"busy", headers=[("Retry-After", value)]))
        client = make_client(retry=RetryPolicy(jitter=False), clock=FakeClock())
        error = assert_documented((await lookup(client, "session")).error)
        assert isinstance(error, ServerErrorOrGiveUp)


class TestEchoedKey:
    """The server repeats the key it was sent; no text the SDK builds may repeat it."""

    @pytest.mark.parametrize("how", ENTRY_POINTS)
    async def test_401_json_body(self, echo: Echo, how: str) -> None:
        envelope = {"success": False, "sys_message": "ERROR_INVALID_API_KEY"}
        error = await echo(
            lambda key: json_reply(401, {**envelope, "error": f"invalid api key {key}"}),
            AuthenticationError,
            how,
        )
        assert error.status == 401
        assert error.sys_message == "ERROR_INVALID_API_KEY"

    @pytest.mark.parametrize("how", ENTRY_POINTS)
    async def test_401_plain_text_body(self, echo: Echo, how: str) -> None:
        error = await echo(
            lambda key: http_reply(401, f"invalid api key {key}".encode()), AuthenticationError, how
        )
        assert error.status == 401

    @pytest.mark.parametrize("how", ENTRY_POINTS)
    async def test_non_json_2xx_body(self, echo: Echo, how: str) -> None:
        error = await echo(
            lambda key: http_reply(200, f"<p>hello {key}</p>".encode()),
            ResponseValidationError,
            how,
        )
        assert error.status == 200

    async def test_json_escaped_key_in_an_envelope(self, echo: Echo) -> None:
        # JSON may spell any character as \uXXXX: redacting the raw bytes is not enough.
        def build(key: str) -> Reply:
            escaped = "".join(f"\\u{ord(c):04x}" for c in key)
            body = '{"error": "key ' + escaped + '", "sys_message": "' + escaped + '"}'
            return http_reply(403, body.encode())

        error = await echo(build, status_error_class(403))
        assert error.status == 403

    async def test_html_escaped_key_in_a_proxy_page(self, echo: Echo) -> None:
        # The excerpt of an HTML page is unescaped: &#45; must not rebuild the key.
        def build(key: str) -> Reply:
            spelled = key.replace("-", "&#45;")
            page = f"<html><title>502 for {spelled}</title><body>{spelled}</body></html>"
            return http_reply(502, page.encode(), headers=[("Content-Type", "text/html")])

        error = await echo(build, status_error_class(502))
        assert error.status == 502

    async def test_key_in_error_params(self, echo: Echo) -> None:
        error = await echo(
            lambda key: json_reply(
                400, {"error": "bad", "sys_message": "E", "error_params": {"key": key}}
            ),
            status_error_class(400),
        )
        assert error.sys_message == "E"

    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    async def test_key_in_location(self, echo: Echo, status: int) -> None:
        error = await echo(
            lambda key: http_reply(
                status, b"", headers=[("Location", f"https://evil.example/?k={key}")]
            ),
            RedirectError,
        )
        assert error.status == status

    async def test_key_in_retry_after(self, echo: Echo) -> None:
        error = await echo(
            lambda key: http_reply(429, b"", headers=[("Retry-After", key)]),
            status_error_class(429),
        )
        assert error.retry_after is None

    async def test_key_echoed_while_retrying_stays_out_of_retry_logs(
        self,
        server: HostileServer,
        make_client: ClientMaker,
        debug_log: pytest.LogCaptureFixture,
    ) -> None:
        server.answer(echo_key(lambda key: http_reply(503, f"upstream said {key}".encode())))
        client = make_client(retry=RetryPolicy(jitter=False), clock=FakeClock())
        error = assert_documented((await lookup(client, "session")).error)
        assert isinstance(error, ServerErrorOrGiveUp)
        assert len(server.requests) > 1, "the 503 was not retried: no retry log to check"
        assert_key_nowhere(SECRET_KEY, error, log_lines(debug_log))


class TestChainedCause:
    """aiohttp's exceptions may carry the request (headers, so the key) with them."""

    @pytest.mark.parametrize(
        "reply",
        [
            pytest.param(Reply.raw(b"GARBAGE\r\n\r\n"), id="garbage-status-line"),
            pytest.param(Reply.raw(b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n"), id="no-colon"),
            pytest.param(
                Reply.raw(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), id="bad-length"
            ),
        ],
    )
    async def test_cause_carries_no_request_headers(
        self, server: HostileServer, make_client: ClientMaker, reply: Reply
    ) -> None:
        server.answer(reply)
        error = expect_error(await lookup(make_client(), "session"), APIConnectionError)
        assert server.requests[0].header("x-api-key") == SECRET_KEY
        chain: list[BaseException] = []
        link: BaseException | None = error
        while link is not None:
            chain.append(link)
            link = link.__cause__ or link.__context__
        for link in chain:
            assert "x-api-key" not in repr(link).lower()
            assert "x-api-key" not in repr(vars(link)).lower()
        assert_key_nowhere(SECRET_KEY, error)


_OK = b"HTTP/1.1 200 OK\r\n"
# Whole answers, sent verbatim, then the connection is closed.
BROKEN_FRAMING = {
    "bad-chunk-size": _OK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunked-then-close": _OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\n[]",
    "length-over-body-then-close": _OK + b"Content-Length: 500\r\n\r\n[]",
    "two-lengths": _OK + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n[]",
    "bad-gzip": _OK + b"Content-Encoding: gzip\r\n\r\nnot gzip",
    "no-colon": _OK + b"No colon\r\n\r\n[]",
    "garbage-status": b"GARBAGE GARBAGE GARBAGE\r\n\r\n",
    "four-digit-status": b"HTTP/1.1 2000 OK\r\n\r\n",
    "http-0.9": b'[{"name": "x"}]',
    "close-before-any-byte": b"",
    "close-mid-status-line": b"HTTP/1.1 200 O",
    "binary-noise": b"\x00\xff" * 64,
}


class TestBrokenFraming:
    """Each ends in a documented error, on time, whatever the framing."""

    @pytest.mark.parametrize("answer", BROKEN_FRAMING.values(), ids=BROKEN_FRAMING.keys())
    async def test_ends_in_a_documented_error(
        self, server: HostileServer, make_client: ClientMaker, answer: bytes
    ) -> None:
        server.answer(Reply.raw(answer))
        ended = await lookup(make_client(), "session")
        error = assert_documented(ended.error)
        assert isinstance(error, APIConnectionError | ResponseValidationError)
        assert_key_nowhere(SECRET_KEY, error)

    async def test_ten_megabyte_header(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        big = b"X-Big: " + b"a" * (10 * 1024 * 1024)
        server.answer(Reply.raw(b"HTTP/1.1 200 OK\r\n" + big + b"\r\nContent-Length: 2\r\n\r\n[]"))
        error = expect_error(await lookup(make_client(), "session"), APIConnectionError)
        assert_key_nowhere(SECRET_KEY, error)

    async def test_slowloris_byte_per_100ms_meets_the_deadline(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        body = json.dumps([channel_json(i) for i in range(20)]).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        server.answer(Reply.trickle(head + body, every=0.1))
        ended = await lookup(make_client(timeout=1.0), "session")
        expect_error(ended, APITimeoutError)

    async def test_slowloris_with_retries_meets_the_whole_call_deadline(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        server.answer(Reply.trickle(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 100, every=0.1))
        client = make_client(timeout=1.5, retry=RetryPolicy(initial_wait=0.01))
        error = assert_documented((await lookup(client, "session")).error)
        assert isinstance(error, APITimeoutError | RetryBudgetExhaustedError)

    async def test_headers_then_silence_meets_the_deadline(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        server.answer(Reply.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[", then="hold"))
        expect_error(await lookup(make_client(timeout=1.0), "session"), APITimeoutError)


class TestBatchIsolation:
    """Hostile answers for some ids end as those ids' outcomes; the batch goes on."""

    HOSTILE: tuple[Reply, ...] = (
        http_reply(200, deep_array().encode()),
        http_reply(400, ('{"error": ' + deep_array() + "}").encode()),
        http_reply(429, b"", headers=[("Retry-After", ABSURD_DATES[3])]),
        http_reply(503, b"", headers=[("Retry-After", ABSURD_DATES[4])]),
        http_reply(500, b"{}", headers=[("Retry-After", ABSURD_DATES[3])]),
        http_reply(400, b"", headers=[("Retry-After", ABSURD_DATES[4])]),
    )

    def script(self, server: HostileServer, ids: list[str], every: int) -> set[str]:
        """Answer every ``every``-th id with a hostile reply, the rest with channels."""
        hostile = {sid: self.HOSTILE[i % len(self.HOSTILE)] for i, sid in enumerate(ids[::every])}
        good = json_reply(200, [channel_json(0), channel_json(1)], then="keep")

        def respond(request: SeenRequest) -> Reply:
            session_id = request.session_id
            return hostile.get(session_id, good) if session_id is not None else good

        server.answer(respond)
        return set(hostile)

    def check(self, outcomes: dict[str, object], ids: list[str], hostile: set[str]) -> None:
        assert list(outcomes) == ids or set(outcomes) == set(ids)
        assert len(outcomes) == len(ids)
        for session_id, outcome in outcomes.items():
            if session_id in hostile:
                error = assert_documented(outcome if isinstance(outcome, BaseException) else None)
                assert isinstance(error, APIError)
                assert_key_nowhere(SECRET_KEY, error)
            else:
                channels = assert_channels(outcome)
                assert [c.name for c in channels] == ["Channel 0", "Channel 1"]

    async def gathered(self, client: KodMobiClient, ids: list[str], **options: Any) -> BatchResult:
        """The batch's result, checked to have come back whole and in time."""
        call = client.gather_session_channels(ids, **options)
        ended = await run_call(call, deadline=client.timeout)
        assert ended.error is None, f"the batch raised {ended.error!r}"
        assert isinstance(ended.value, BatchResult)
        return ended.value

    async def test_gather_300_ids_gives_300_outcomes(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        ids = session_ids(300)
        hostile = self.script(server, ids, every=7)
        # Duplicates are looked up once: still one outcome per distinct id.
        result = await self.gathered(make_client(timeout=30.0), ids + ids[:40])
        assert list(result) == ids
        self.check(dict(result), ids, hostile)

    async def test_iter_300_ids_yields_300(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        ids = session_ids(300)
        hostile = self.script(server, ids, every=7)
        client = make_client(timeout=30.0)

        async def collect() -> list[tuple[str, object]]:
            return [item async for item in client.iter_session_channels(ids)]

        ended = await run_call(collect(), deadline=30.0)
        assert ended.error is None, f"the stream raised {ended.error!r}"
        assert isinstance(ended.value, list)
        assert len(ended.value) == 300
        self.check(dict(ended.value), ids, hostile)

    async def test_gather_300_ids_with_retries_on(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        ids = session_ids(300)
        hostile = self.script(server, ids, every=11)
        client = make_client(timeout=30.0, retry=RetryPolicy(jitter=False), clock=FakeClock())
        self.check(dict(await self.gathered(client, ids)), ids, hostile)

    async def test_gather_2000_ids_with_a_few_hostile_gives_2000_outcomes(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        ids = session_ids(2000)
        hostile = self.script(server, ids, every=397)
        result = await self.gathered(make_client(timeout=60.0), ids, concurrency=100)
        assert len(result) == 2000
        assert len(result.errors) == len(hostile)
        self.check(dict(result), ids, hostile)


class TestConfiguration:
    @pytest.mark.parametrize(
        ("url", "secrets"),
        [
            ("https://user:Pa55#Word@api.kod.mobi", ["Pa55", "Word"]),
            ("https://user:Pa55/Word@api.kod.mobi", ["Pa55", "Word"]),
            ("https://user:Pa55?Word@api.kod.mobi", ["Pa55", "Word"]),
            ("https://user:Pa55@Word@api.kod.mobi", ["Pa55", "Word"]),
            ("https://api.kod.mobi/?token=Tok3nValue", ["Tok3nValue"]),
            ("https://api.kod.mobi/#token=Tok3nValue", ["Tok3nValue"]),
            ("https://api.kod.mobi?Tok3nValue", ["Tok3nValue"]),
            ("http://example.com/?key=Tok3nValue", ["Tok3nValue"]),
        ],
    )
    def test_unsafe_base_url_is_refused_without_repeating_its_secret(
        self, url: str, secrets: list[str]
    ) -> None:
        with pytest.raises(ConfigurationError) as info:
            KodMobiClient(SECRET_KEY, base_url=url)
        for text in (str(info.value), repr(info.value), *map(repr, info.value.args)):
            for secret in secrets:
                assert secret not in text
        assert_key_nowhere(SECRET_KEY, info.value)

    @pytest.mark.parametrize(
        "options",
        [
            {"timeout": 10**400},
            {"timeout": -(10**400)},
            {"timeout": float("inf")},
            {"timeout": float("nan")},
            {"max_connections": 10**400},
        ],
        ids=["timeout-10e400", "timeout-minus-10e400", "timeout-inf", "timeout-nan", "pool-10e400"],
    )
    def test_absurd_numbers_are_a_configuration_error(self, options: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError) as info:
            KodMobiClient(SECRET_KEY, **options)
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize(
        "name", ["initial_wait", "max_wait", "max_retry_after", "budget_refill", "attempt_timeout"]
    )
    def test_absurd_retry_numbers_are_a_configuration_error(self, name: str) -> None:
        with pytest.raises(ConfigurationError):
            RetryPolicy(**{name: 10**400})  # type: ignore[arg-type]

    async def test_a_huge_retry_budget_is_refused_or_works(
        self, server: HostileServer, make_client: ClientMaker
    ) -> None:
        try:
            policy = RetryPolicy(budget=10**400, jitter=False)
        except ConfigurationError:
            return
        answers = iter([http_reply(503, b"busy")])
        good = json_reply(200, [channel_json(3)], then="keep")
        server.answer(lambda _request: next(answers, good))
        # The retry takes a token from the budget and the success returns one: both
        # are arithmetic on the huge number.
        ended = await lookup(make_client(retry=policy, clock=FakeClock()), "session")
        assert ended.error is None, f"a call with an accepted policy failed: {ended.error!r}"
        assert assert_channels(ended.value) == [
            SessionChannel(name="Channel 3", type=ChannelType.EMAIL, is_active=False, timeout=3)
        ]
        assert len(server.requests) == 2


class TestContractChecks:
    """The checks above must be able to fail, or they prove nothing."""

    def test_a_leaked_key_in_a_chained_cause_is_found(self) -> None:
        inner = RuntimeError("headers", {"x-api-key": SECRET_KEY})
        outer = APIStatusError("fine", status=500)
        outer.__cause__ = inner
        with pytest.raises(AssertionError, match="leaked") as info:
            assert_key_nowhere(SECRET_KEY, outer)
        assert SECRET_KEY not in str(info.value)

    def test_a_leaked_key_in_an_attribute_is_found(self) -> None:
        error = RedirectError("fine", location=f"https://x/?k={SECRET_KEY}", status=302)
        with pytest.raises(AssertionError, match="leaked"):
            assert_key_nowhere(SECRET_KEY, error)

    def test_an_undocumented_error_is_reported(self) -> None:
        with pytest.raises(AssertionError, match="RecursionError"):
            assert_documented(RecursionError("deep"))

    async def test_a_late_call_is_reported(self) -> None:
        with pytest.raises(AssertionError, match="took"):
            await run_call(asyncio.sleep(0.2), deadline=-1.4)

    async def test_a_stray_cancellation_is_reported(self) -> None:
        async def cancelled() -> None:
            raise asyncio.CancelledError

        with pytest.raises(AssertionError, match="CancelledError"):
            await run_call(cancelled(), deadline=1.0)
