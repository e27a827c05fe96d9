"""KodMobiClient: scripted sequences with aioresponses, real sockets with FakeKodMobi."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
from typing import Any

import aiohttp
import pytest

from kodmobi_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ChannelType,
    ClientStateError,
    ConfigurationError,
    FakeClock,
    InvalidSessionIdError,
    KodMobiClient,
    KodMobiError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    SessionChannel,
)
from kodmobi_async.testing import FakeKodMobi, Fault

from .conftest import SECRET_KEY, ClientFactory

BASE = "https://api.kod.mobi"
SID = "01HZX3Q8V6W4T1N6B2C3D4E5F6"
URL_PROJECT = f"{BASE}/session/channels"
URL_SESSION = re.compile(r"^https://api\.kod\.mobi/session/channels\?session_id=\w+$")
CHANNELS = [
    {"name": "SMS", "type": "sms", "is_active": True, "timeout": 0, "image_url": "i", "link": "l"},
    {"name": "Bot", "type": "telegram", "is_active": False, "timeout": 42},
]


def envelope(status: int, sys_message: str, error: str = "nope", **params: Any) -> dict[str, Any]:
    return {
        "success": False,
        "error": error,
        "error_params": params,
        "status": status,
        "sys_message": sys_message,
    }


@pytest.fixture
async def mock_client(clock: FakeClock) -> Any:
    async with KodMobiClient(
        SECRET_KEY, clock=clock, retry=RetryPolicy(jitter=False, initial_wait=0.5)
    ) as client:
        yield client


def sent_requests(mocked: Any) -> list[Any]:
    return [call for calls in mocked.requests.values() for call in calls]


class TestConfiguration:
    def test_missing_key_names_the_environment_variable(self) -> None:
        with pytest.raises(ConfigurationError, match="KODMOBI_API_KEY"):
            KodMobiClient()

    def test_key_and_url_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KODMOBI_API_KEY", SECRET_KEY)
        monkeypatch.setenv("KODMOBI_BASE_URL", "http://127.0.0.1:9/")
        client = KodMobiClient()
        assert client.base_url == "http://127.0.0.1:9"

    def test_default_base_url_is_production(self) -> None:
        assert KodMobiClient(SECRET_KEY).base_url == "https://api.kod.mobi"

    def test_plain_http_to_a_remote_host_needs_an_explicit_opt_in(self) -> None:
        with pytest.raises(ConfigurationError, match="allow_http=True"):
            KodMobiClient(SECRET_KEY, base_url="http://api.kod.mobi")
        client = KodMobiClient(SECRET_KEY, base_url="http://api.kod.mobi", allow_http=True)
        assert client.base_url == "http://api.kod.mobi"

    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"timeout": 0}, "timeout"),
            ({"timeout": -1.0}, "timeout"),
            ({"timeout": float("nan")}, "timeout"),
            ({"timeout": True}, "timeout"),
            ({"max_connections": 0}, "max_connections"),
            ({"max_connections": 2.5}, "max_connections"),
            ({"language": "de"}, "language"),
            ({"retry": 3}, "RetryPolicy"),
            ({"session": object()}, "ClientSession"),
        ],
    )
    def test_bad_arguments_are_refused_with_the_argument_named(
        self, kwargs: dict[str, Any], fragment: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=fragment):
            KodMobiClient(SECRET_KEY, **kwargs)

    def test_repr_never_shows_the_key(self) -> None:
        client = KodMobiClient(SECRET_KEY, language="ru")
        assert SECRET_KEY not in repr(client)
        assert SECRET_KEY not in repr(vars(client))
        assert "api.kod.mobi" in repr(client)


class TestScriptedResponses:
    async def test_project_channels_are_structured(self, mocked: Any, mock_client: Any) -> None:
        mocked.get(URL_PROJECT, payload=CHANNELS)
        channels = await mock_client.get_session_channels()
        assert channels == [
            SessionChannel(
                name="SMS",
                type=ChannelType.SMS,
                is_active=True,
                timeout=0,
                image_url="i",
                link="l",
            ),
            SessionChannel(name="Bot", type=ChannelType.TELEGRAM, is_active=False, timeout=42),
        ]

    async def test_redirects_are_never_followed(self, mocked: Any, mock_client: Any) -> None:
        mocked.get(URL_SESSION, payload=CHANNELS)
        await mock_client.get_session_channels(SID)
        (request,) = sent_requests(mocked)
        assert request.kwargs.get("allow_redirects") is False

    async def test_503_then_200_succeeds_on_the_second_attempt(
        self, mocked: Any, mock_client: Any, clock: FakeClock
    ) -> None:
        mocked.get(URL_SESSION, status=503, payload=envelope(503, "ERROR_UNAVAILABLE"))
        mocked.get(URL_SESSION, payload=CHANNELS)
        channels = await mock_client.get_session_channels(SID)
        assert len(channels) == 2
        assert len(sent_requests(mocked)) == 2
        assert clock.sleeps == [0.5]  # initial_wait, no jitter

    async def test_429_retry_after_is_waited_exactly(
        self, mocked: Any, mock_client: Any, clock: FakeClock
    ) -> None:
        mocked.get(
            URL_SESSION,
            status=429,
            payload=envelope(429, "ERROR_MESSAGE_ATTEMPT"),
            headers={"Retry-After": "3"},
        )
        mocked.get(URL_SESSION, payload=CHANNELS)
        start = clock.monotonic()
        await mock_client.get_session_channels(SID)
        assert clock.sleeps == [3.0]
        assert clock.monotonic() - start == pytest.approx(3.0)

    @pytest.mark.parametrize(
        ("status", "cls", "sys_message"),
        [
            (400, BadRequestError, "ERROR_BAD_REQUEST"),
            (401, AuthenticationError, "ERROR_UNAUTHORIZED"),
            (403, PermissionDeniedError, "ERROR_ACCESS_DENIED"),
            (404, NotFoundError, "ERROR_MESSAGE_NOT_FOUND"),
        ],
    )
    async def test_client_errors_are_raised_at_once_with_their_fields(
        self,
        mocked: Any,
        mock_client: Any,
        clock: FakeClock,
        status: int,
        cls: type[KodMobiError],
        sys_message: str,
    ) -> None:
        mocked.get(
            URL_SESSION,
            status=status,
            payload=envelope(status, sys_message, "Session not found", count=2),
        )
        with pytest.raises(cls) as caught:
            await mock_client.get_session_channels(SID)
        error = caught.value
        assert error.status == status  # type: ignore[attr-defined]
        assert error.sys_message == sys_message  # type: ignore[attr-defined]
        assert error.error == "Session not found"  # type: ignore[attr-defined]
        assert error.error_params == {"count": 2}  # type: ignore[attr-defined]
        assert error.attempts == 1  # type: ignore[attr-defined]
        assert len(sent_requests(mocked)) == 1
        assert clock.sleeps == []

    async def test_deadline_holds_across_retries(self, mocked: Any, clock: FakeClock) -> None:
        for _ in range(4):
            mocked.get(
                URL_SESSION,
                status=503,
                payload=envelope(503, "ERROR_UNAVAILABLE"),
                headers={"Retry-After": "0.4"},
            )
        async with KodMobiClient(SECRET_KEY, clock=clock, timeout=1.0) as client:
            start = clock.monotonic()
            with pytest.raises(ServerError) as caught:
                await client.get_session_channels(SID)
        # Two waits of 0.4 s fit in 1 s; a third would end past the deadline.
        assert clock.sleeps == [0.4, 0.4]
        assert clock.monotonic() - start < 1.0
        assert caught.value.attempts == 3
        assert len(sent_requests(mocked)) == 3

    async def test_retries_stop_after_the_configured_attempts(
        self, mocked: Any, clock: FakeClock
    ) -> None:
        for _ in range(5):
            mocked.get(URL_SESSION, status=502, body="<html><title>Bad Gateway</title></html>")
        retry = RetryPolicy(attempts=3, jitter=False, initial_wait=0.1)
        async with KodMobiClient(SECRET_KEY, clock=clock, retry=retry) as client:
            with pytest.raises(ServerError) as caught:
                await client.get_session_channels(SID)
        assert caught.value.attempts == 3
        assert caught.value.error == "Bad Gateway"
        assert clock.sleeps == [0.1, 0.2]
        assert "after 3 attempts" in str(caught.value)

    async def test_retry_policy_with_one_attempt_never_retries(
        self, mocked: Any, clock: FakeClock
    ) -> None:
        mocked.get(URL_SESSION, status=503)
        async with KodMobiClient(SECRET_KEY, clock=clock, retry=RetryPolicy.disabled()) as client:
            with pytest.raises(ServerError):
                await client.get_session_channels(SID)
        assert len(sent_requests(mocked)) == 1

    async def test_connection_error_is_retried_then_raised_with_its_cause(
        self, mocked: Any, mock_client: Any
    ) -> None:
        for _ in range(4):
            mocked.get(URL_SESSION, exception=aiohttp.ClientConnectionError("refused"))
        with pytest.raises(APIConnectionError) as caught:
            await mock_client.get_session_channels(SID)
        assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)
        assert caught.value.attempts == 4

    async def test_unknown_channel_type_and_extra_fields_are_tolerated(
        self, mocked: Any, mock_client: Any
    ) -> None:
        mocked.get(
            URL_PROJECT,
            payload=[
                {"name": "Max", "type": "max", "is_active": True, "timeout": 0, "sorting": 3},
            ],
        )
        (channel,) = await mock_client.get_session_channels()
        assert channel.type == "max"
        assert not isinstance(channel.type, ChannelType)

    async def test_wrongly_typed_field_names_its_path(self, mocked: Any, mock_client: Any) -> None:
        bad = [dict(CHANNELS[0]), dict(CHANNELS[1], is_active="yes")]
        mocked.get(URL_PROJECT, payload=bad)
        with pytest.raises(ResponseValidationError) as caught:
            await mock_client.get_session_channels()
        assert caught.value.field_path == "$[1].is_active"
        assert "$[1].is_active" in str(caught.value)

    async def test_invalid_session_id_raises_before_any_request(
        self, mocked: Any, mock_client: Any
    ) -> None:
        for bad in ["", "not-a-ulid", SID.lower(), SID[:-1] + "U"]:
            with pytest.raises(InvalidSessionIdError) as caught:
                await mock_client.get_session_channels(bad)
            assert isinstance(caught.value, ValueError)
        assert sent_requests(mocked) == []


def fake_timeout(fake: FakeKodMobi, session_id: str, channel_type: str) -> int:
    (channel,) = [c for c in fake.channels(session_id) if c["type"] == channel_type]
    timeout: int = channel["timeout"]
    return timeout


class TestAgainstFakeServer:
    async def test_session_channels_over_a_real_socket(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        sid = fake.add_session(
            channels=[{"name": "WA", "type": "whatsapp", "is_active": False, "timeout": 60}]
        )
        async with make_client() as client:
            (channel,) = await client.get_session_channels(sid)
        assert channel == SessionChannel(
            name="WA", type=ChannelType.WHATSAPP, is_active=False, timeout=60
        ) or (channel.name, channel.timeout) == ("WA", 60)
        (request,) = fake.requests
        assert request.query == {"session_id": sid}
        assert request.headers["x-api-key"] == SECRET_KEY
        assert request.headers["accept"] == "application/json"

    async def test_requests_share_one_pooled_connection(
        self, fake: FakeKodMobi, make_client: ClientFactory, session_ids: list[str]
    ) -> None:
        async with make_client() as client:
            for _ in range(10):
                await client.get_session_channels(session_ids[0])
        assert fake.request_count == 10
        assert fake.total_connections == 1
        assert await fake.wait_connections_closed()

    async def test_each_caller_gets_a_list_of_its_own(
        self, fake: FakeKodMobi, make_client: ClientFactory, session_ids: list[str]
    ) -> None:
        async with make_client() as client:
            first = await client.get_session_channels(session_ids[0])
            first.clear()  # the caller's list is the caller's to change
            second = await client.get_session_channels(session_ids[0])
        assert len(second) == len(fake.channels(session_ids[0]))

    async def test_answers_that_differ_are_decoded_separately(
        self, fake: FakeKodMobi, make_client: ClientFactory, session_ids: list[str]
    ) -> None:
        a, b = session_ids[:2]
        fake.set_channel_state(a, "sms", timeout=30)
        async with make_client() as client:
            channels_a = await client.get_session_channels(a)
            channels_b = await client.get_session_channels(b)
        sms_a = next(c for c in channels_a if c.type == "sms")
        sms_b = next(c for c in channels_b if c.type == "sms")
        assert (sms_a.timeout, sms_b.timeout) == (30, fake_timeout(fake, b, "sms"))

    async def test_pool_size_bounds_concurrent_connections(
        self, fake: FakeKodMobi, make_client: ClientFactory, session_ids: list[str]
    ) -> None:
        fake.latency = 0.02
        async with make_client(max_connections=3) as client:
            await asyncio.gather(*(client.get_session_channels(session_ids[0]) for _ in range(12)))
        assert fake.request_count == 12
        assert fake.total_connections <= 3

    async def test_unknown_session_is_not_found_at_once(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        async with make_client() as client:
            with pytest.raises(NotFoundError) as caught:
                await client.get_session_channels(SID)
        assert caught.value.sys_message == "ERROR_MESSAGE_NOT_FOUND"
        assert fake.request_count == 1

    async def test_wrong_key_is_an_authentication_error(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        async with make_client(api_key="wrong-key") as client:
            with pytest.raises(AuthenticationError) as caught:
                await client.get_session_channels()
        assert caught.value.status == 401
        assert fake.request_count == 1

    async def test_russian_errors_when_asked(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        async with make_client(language="ru") as client:
            with pytest.raises(NotFoundError) as caught:
                await client.get_session_channels(SID)
        assert caught.value.error is not None
        assert re.search("[\u0400-\u04ff]", caught.value.error)  # Cyrillic
        assert fake.requests[0].headers["accept-language"] == "ru"

    async def test_503_then_200_recovers_on_attempt_two(
        self, fake: FakeKodMobi, make_client: ClientFactory, session_ids: list[str]
    ) -> None:
        fake.script(Fault.status(503))
        async with make_client() as client:
            channels = await client.get_session_channels(session_ids[0])
        assert channels
        assert [r.status for r in fake.requests] == [503, 200]

    async def test_two_dropped_connections_in_a_row_are_retried_by_the_sdk(
        self,
        fake: FakeKodMobi,
        make_client: ClientFactory,
        session_ids: list[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        sid = session_ids[0]
        fake.script_session(sid, Fault.drop(), times=2)
        caplog.set_level(logging.WARNING, logger="kodmobi_async")
        async with make_client() as client:
            await client.get_session_channels(sid)  # warm keep-alive connection
            fake.clear_requests()
            fake.script_session(sid, Fault.drop(), times=2)
            channels = await client.get_session_channels(sid)
        assert channels
        statuses = [r.status for r in fake.requests]
        assert statuses[-1] == 200
        assert statuses.count(None) == 2
        # aiohttp may resend once by itself; the SDK's own retry shows in its log.
        assert any("retrying" in r.getMessage() for r in caplog.records)

    async def test_attempt_timeout_is_retried(
        self, fake: FakeKodMobi, session_ids: list[str]
    ) -> None:
        fake.script(Fault.delay(5.0), times=None)
        # Generous deadline, short attempts: what ends the call is the attempt count.
        retry = RetryPolicy(attempts=3, initial_wait=0.0, jitter=False, attempt_timeout=0.1)
        async with KodMobiClient(SECRET_KEY, base_url=fake.url, timeout=30, retry=retry) as client:
            with pytest.raises(APITimeoutError) as caught:
                await client.get_session_channels(session_ids[0])
        fake.clear_faults()
        assert isinstance(caught.value, APIConnectionError)
        assert isinstance(caught.value.__cause__, asyncio.TimeoutError | TimeoutError)
        assert caught.value.attempts == 3
        assert await fake.wait_for_requests(3)

    async def test_deadline_ends_a_call_whose_attempts_hang(
        self, fake: FakeKodMobi, session_ids: list[str]
    ) -> None:
        fake.script(Fault.delay(5.0), times=None)
        # Many attempts allowed, but the 0.5 s deadline covers them all.
        retry = RetryPolicy(attempts=50, initial_wait=0.0, jitter=False, attempt_timeout=0.2)
        loop = asyncio.get_running_loop()
        async with KodMobiClient(SECRET_KEY, base_url=fake.url, timeout=0.5, retry=retry) as client:
            started = loop.time()
            with pytest.raises(APITimeoutError) as caught:
                await client.get_session_channels(session_ids[0])
            elapsed = loop.time() - started
        fake.clear_faults()
        assert caught.value.attempts < 50
        # The deadline, plus scheduling slack on a loaded machine; never 50 x 0.2 s.
        assert elapsed < 2.0

    async def test_redirect_is_refused_and_not_followed(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        fake.script(Fault.redirect("https://evil.example/steal"))
        async with make_client() as client:
            with pytest.raises(RedirectError) as caught:
                await client.get_session_channels()
        assert caught.value.location == "https://evil.example/steal"
        assert "evil.example" in str(caught.value)
        assert fake.request_count == 1

    @pytest.mark.parametrize("chunked", [False, True])
    async def test_oversized_body_is_refused_and_connection_dropped(
        self, fake: FakeKodMobi, make_client: ClientFactory, chunked: bool
    ) -> None:
        fake.script(Fault.oversize(4 * 1024 * 1024, chunked=chunked))
        async with make_client() as client:
            with pytest.raises(ResponseValidationError, match="1048576 bytes"):
                await client.get_session_channels()
            # The half-read connection must not go back to the pool.
            assert await client.get_session_channels()
        assert fake.total_connections == 2

    async def test_malformed_json_is_a_validation_error(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        fake.script(Fault.malformed())
        async with make_client() as client:
            with pytest.raises(ResponseValidationError, match="not JSON") as caught:
                await client.get_session_channels()
        assert caught.value.status == 200
        assert fake.request_count == 1  # a broken body is not retried

    async def test_truncated_body_is_a_connection_error_that_is_retried(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        fake.script(Fault.truncated())
        async with make_client() as client:
            assert await client.get_session_channels()
        assert fake.request_count == 2

    async def test_html_error_page_keeps_a_readable_excerpt(
        self, fake: FakeKodMobi, make_client: ClientFactory
    ) -> None:
        fake.script(Fault.status(502, html=True), times=None)
        async with make_client(retry=RetryPolicy.disabled()) as client:
            with pytest.raises(ServerError) as caught:
                await client.get_session_channels()
        fake.clear_faults()
        assert caught.value.status == 502
        assert caught.value.sys_message is None
        assert caught.value.error
        assert "<" not in caught.value.error

    async def test_service_unavailable_retry_after_pauses_the_whole_client(
        self,
        fake: FakeKodMobi,
        make_client: ClientFactory,
        clock: FakeClock,
        session_ids: list[str],
    ) -> None:
        a, b = session_ids[:2]
        fake.script_session(a, Fault.status(503, retry_after=2))
        async with make_client(retry=RetryPolicy.disabled()) as client:
            with pytest.raises(ServerError) as caught:
                await client.get_session_channels(a)
            assert caught.value.retry_after == 2.0
            # Another call of the same client waits out the pause before sending.
            await client.get_session_channels(b)
        assert clock.sleeps == [2.0]

    async def test_a_429_paces_every_call_of_the_client_instead_of_pausing_it(
        self,
        fake: FakeKodMobi,
        make_client: ClientFactory,
        clock: FakeClock,
        session_ids: list[str],
    ) -> None:
        a, b, c = session_ids
        fake.script_session(a, Fault.status(429, retry_after=2))
        async with make_client(retry=RetryPolicy.disabled()) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.get_session_channels(a)
            assert caught.value.retry_after == 2.0
            started = clock.monotonic()
            for session_id in (b, c, b, c):
                await client.get_session_channels(session_id)
        # No 2 s pause for everyone; instead the calls are spaced out at the rate the
        # client learned (one start had been seen: 1 request/s), which then grows
        # (slow start) while calls keep queueing and no 429 comes.
        assert 2.0 not in clock.sleeps
        assert clock.sleeps[:2] == pytest.approx([1.0, 1.0])
        assert 0 < clock.sleeps[2] < 1.0
        assert clock.monotonic() - started == pytest.approx(sum(clock.sleeps))

    async def test_cancelled_call_leaves_no_open_connection(
        self, fake: FakeKodMobi, make_client: ClientFactory, session_ids: list[str]
    ) -> None:
        fake.script(Fault.delay(30.0))
        async with make_client() as client:
            call = asyncio.ensure_future(client.get_session_channels(session_ids[0]))
            assert await fake.wait_for_requests(1)
            assert fake.open_connections == 1
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            # The client is still usable, and the cancelled connection was not pooled.
            assert await client.get_session_channels(session_ids[1])
        assert await fake.wait_connections_closed()
        assert fake.open_connections == 0


class TestLifecycle:
    async def test_closed_client_refuses_calls(self, make_client: ClientFactory) -> None:
        client = make_client()
        await client.close()
        await client.close()  # idempotent
        assert client.closed
        with pytest.raises(ClientStateError, match="closed"):
            await client.get_session_channels()

    def test_client_from_another_event_loop_is_refused(self, fake_in_thread: FakeKodMobi) -> None:
        client = KodMobiClient(SECRET_KEY, base_url=fake_in_thread.url)
        home, other = asyncio.new_event_loop(), asyncio.new_event_loop()
        try:
            assert home.run_until_complete(client.get_session_channels())
            with pytest.raises(ClientStateError, match="another event loop"):
                other.run_until_complete(client.get_session_channels())
            home.run_until_complete(client.close())
        finally:
            home.close()
            other.close()

    async def test_caller_session_is_used_and_left_open(self, fake: FakeKodMobi) -> None:
        async with aiohttp.ClientSession() as session:
            async with KodMobiClient(SECRET_KEY, base_url=fake.url, session=session) as client:
                assert await client.get_session_channels()
            assert not session.closed
            assert fake.requests[0].headers["x-api-key"] == SECRET_KEY

    async def test_closed_caller_session_is_reported(self, fake: FakeKodMobi) -> None:
        session = aiohttp.ClientSession()
        await session.close()
        client = KodMobiClient(SECRET_KEY, base_url=fake.url, session=session)
        with pytest.raises(ClientStateError, match="closed"):
            await client.get_session_channels()


class TestSecrets:
    async def test_key_never_appears_in_errors_logs_or_tracebacks(
        self,
        fake: FakeKodMobi,
        make_client: ClientFactory,
        caplog: pytest.LogCaptureFixture,
        session_ids: list[str],
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="kodmobi_async")
        faults = [
            Fault.status(500),
            Fault.status(401),
            Fault.status(429, retry_after=1),
            Fault.status(502, html=True),
            Fault.drop(),
            Fault.malformed(),
            Fault.truncated(),
            Fault.redirect(),
            Fault.oversize(),
            Fault.body(200, json.dumps([{"name": 1}]).encode()),
        ]
        seen: list[str] = []
        async with make_client(retry=RetryPolicy(attempts=2, jitter=False)) as client:
            seen.append(repr(client))
            for fault in faults:
                fake.script(fault, times=2)
                try:
                    await client.get_session_channels(session_ids[0])
                except KodMobiError as error:
                    seen.append(str(error))
                    seen.append(repr(error))
                    seen.append("".join(traceback.format_exception(error)))
                fake.clear_faults()
            with pytest.raises(InvalidSessionIdError) as caught:
                await client.get_session_channels(SECRET_KEY)
            seen.append("".join(traceback.format_exception(caught.value)))
        seen += [record.getMessage() for record in caplog.records]
        assert len(seen) > 20
        assert any("retrying" in text for text in seen)
        for text in seen:
            assert SECRET_KEY not in text
        # Session ids are masked in log lines.
        assert all(session_ids[0] not in r.getMessage() for r in caplog.records)

    async def test_debug_log_has_one_line_per_attempt(
        self,
        fake: FakeKodMobi,
        make_client: ClientFactory,
        caplog: pytest.LogCaptureFixture,
        session_ids: list[str],
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="kodmobi_async")
        fake.script(Fault.status(503))
        async with make_client() as client:
            await client.get_session_channels(session_ids[0])
        debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(debug) == 2
        assert "-> 503" in debug[0]
        assert "attempt 1" in debug[0]
        assert "-> 200" in debug[1]
        assert "attempt 2" in debug[1]
        assert len(warnings) == 1
        assert "ServerError" in warnings[0]


class TestPromisesUnderHostileInput:
    """Limits and the one rule of every call; tests/test_hostile.py has the raw bytes."""

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("timeout", 10**400),
            ("timeout", float("inf")),
            ("timeout", float("nan")),
            ("timeout", 86_401),
            ("max_connections", 10**400),
            ("max_connections", 65_537),
        ],
    )
    def test_absurd_numbers_are_configuration_errors(self, option: str, value: object) -> None:
        options: dict[str, Any] = {option: value}
        with pytest.raises(ConfigurationError, match=option) as info:
            KodMobiClient(SECRET_KEY, **options)
        assert len(str(info.value)) < 300

    async def test_a_bug_under_a_call_surfaces_as_an_api_error_with_its_cause(
        self,
        fake: FakeKodMobi,
        make_client: ClientFactory,
        session_ids: list[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise TypeError("simulated bug")

        monkeypatch.setattr("kodmobi_async._protocol.status_error", broken)
        fake.script_session(session_ids[1], Fault.status(404))
        async with make_client() as client:
            with pytest.raises(KodMobiError) as info:
                await client.get_session_channels(session_ids[1])
            fake.script_session(session_ids[1], Fault.status(404))
            results = await client.gather_session_channels(session_ids)
        assert type(info.value).__name__ == "APIError"
        assert "please report it" in str(info.value)
        assert isinstance(info.value.__cause__, TypeError)
        assert list(results) == session_ids  # the bug cost one id, not the batch
        assert isinstance(results[session_ids[1]], KodMobiError)
        assert set(results.ok) == {session_ids[0], session_ids[2]}


@pytest.fixture
def tls_cert(tmp_path: Any) -> tuple[Any, Any]:
    """A throwaway self-signed certificate for 127.0.0.1, as a private CA would issue."""
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # noqa: S603 -- fixed arguments
        [  # noqa: S607 -- openssl from PATH, as the benchmarks use it
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TestTLS:
    async def test_a_private_ca_is_trusted_through_ssl(self, tls_cert: tuple[Any, Any]) -> None:
        import ssl

        from aiohttp import web

        cert, key = tls_cert
        served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        served.load_cert_chain(cert, key)

        async def channels(_request: web.Request) -> web.Response:
            return web.json_response(CHANNELS)

        app = web.Application()
        app.router.add_get("/session/channels", channels)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=served)
        await site.start()
        port = runner.addresses[0][1]
        trusted = ssl.create_default_context(cafile=str(cert))
        try:
            base = f"https://127.0.0.1:{port}"
            async with KodMobiClient(SECRET_KEY, base_url=base, ssl=trusted) as client:
                channels_seen = await client.get_session_channels()
            async with KodMobiClient(
                SECRET_KEY, base_url=base, retry=RetryPolicy.disabled()
            ) as untrusting:
                with pytest.raises(APIConnectionError) as info:
                    await untrusting.get_session_channels()
        finally:
            await runner.cleanup()
        assert [c.type for c in channels_seen] == [ChannelType.SMS, ChannelType.TELEGRAM]
        assert "SSL" in str(info.value) or "certificate" in str(info.value)

    def test_turning_certificate_checks_off_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="ssl"):
            KodMobiClient(SECRET_KEY, ssl=False)


class TestBatchAgainstThePool:
    async def test_a_batch_wider_than_the_pool_loses_no_lookup_to_waiting(
        self, fake: FakeKodMobi
    ) -> None:
        ids = fake.add_sessions(40)
        fake.latency = 0.05
        # Each attempt gets 0.3 s; 40 lookups over 2 connections take about a second, so
        # 50 workers queueing for the 2 connections would time out while they wait.
        async with KodMobiClient(
            SECRET_KEY, base_url=fake.url, max_connections=2, timeout=0.9
        ) as client:
            results = await client.gather_session_channels(ids, concurrency=50)
        assert len(results.ok) == 40
        assert fake.request_count == 40
