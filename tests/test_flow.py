"""The whole flow through the real client against the stateful fake, over real sockets,
with session expiry and cool-downs on a shared FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from kodmobi_async import (
    APIConnectionError,
    BadRequestError,
    ChannelType,
    FakeClock,
    InvalidArgumentError,
    KodMobiClient,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
)
from kodmobi_async.testing import FakeKodMobi, Fault

PHONE = "+79001234567"
EMAIL = "user@example.com"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeKodMobi]:
    async with FakeKodMobi(clock=clock) as server:
        yield server


@pytest.fixture
async def client(fake: FakeKodMobi, clock: FakeClock) -> AsyncIterator[KodMobiClient]:
    async with KodMobiClient(
        fake.api_key,
        secret_key=fake.secret_key,
        base_url=fake.url,
        clock=clock,
        retry=RetryPolicy(jitter=False),
    ) as kodmobi:
        yield kodmobi


class TestTheFlow:
    async def test_create_check_verify(self, fake: FakeKodMobi, client: KodMobiClient) -> None:
        session = await client.create_session(PHONE, type="sms")
        assert session.sent_to is ChannelType.SMS
        assert isinstance(session.session_expired_at, datetime)
        assert session.session_expired_at.utcoffset() is not None
        check = await client.check_code(session.session_id, fake.code_for(session.session_id))
        assert not check.is_test
        verified = await client.verify(check.verify_token)
        assert verified.to == PHONE
        assert [d.to for d in fake.deliveries] == [PHONE]

    async def test_create_returns_the_live_session_for_the_same_recipient(
        self, client: KodMobiClient
    ) -> None:
        first = await client.create_session(EMAIL)
        again = await client.create_session(EMAIL, send=False)
        assert again.session_id == first.session_id
        assert again.sent_to is None

    async def test_a_wrong_code_is_counted_and_the_right_one_still_works(
        self, fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        session = await client.create_session(PHONE)
        code = fake.code_for(session.session_id)
        wrong = "0000" if code != "0000" else "1111"
        with pytest.raises(BadRequestError) as info:
            await client.check_code(session.session_id, wrong)
        assert info.value.sys_message == "ERROR_MESSAGE_WRONG_CODE"
        assert info.value.error_params["count"] == 1
        assert (await client.check_code(session.session_id, code)).verify_token

    async def test_a_resend_during_the_cool_down_is_refused_with_the_seconds_left(
        self, fake: FakeKodMobi, client: KodMobiClient, clock: FakeClock
    ) -> None:
        session = await client.create_session(PHONE, type="sms")
        clock.advance(20)
        with pytest.raises(BadRequestError) as info:
            await client.send_code(session.session_id, "sms")
        assert info.value.sys_message == "ERROR_MESSAGE_ATTEMPT"
        assert info.value.error_params["timeout"] == 40
        clock.advance(40)
        sent = await client.send_code(session.session_id, ChannelType.SMS)
        assert sent.channel.timeout == 60
        assert len(fake.deliveries) == 2

    async def test_an_expired_session_cannot_be_checked(
        self, fake: FakeKodMobi, client: KodMobiClient, clock: FakeClock
    ) -> None:
        session = await client.create_session(PHONE)
        code = fake.code_for(session.session_id)
        clock.advance(181)
        with pytest.raises(BadRequestError) as info:
            await client.check_code(session.session_id, code)
        assert info.value.sys_message == "ERROR_SESSION_EXPIRED"

    async def test_a_verify_token_verifies_once(
        self, fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        session = await client.create_session(PHONE)
        check = await client.check_code(session.session_id, fake.code_for(session.session_id))
        await client.verify(check.verify_token)
        with pytest.raises(NotFoundError):
            await client.verify(check.verify_token)

    async def test_a_test_recipient_gets_a_test_session(
        self, fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        fake.add_test_recipient(EMAIL, code="4242")
        session = await client.create_session(EMAIL)
        check = await client.check_code(session.session_id, "4242")
        assert check.is_test
        assert fake.deliveries == []

    async def test_manual_mode_and_settings(self, fake: FakeKodMobi, client: KodMobiClient) -> None:
        channels = await client.get_manual_channels()
        provider = channels[0].providers[0]
        sent = await client.manual_send(
            PHONE, channels[0].type, provider_id=provider.id, code="9876"
        )
        assert sent.message_id >= 1
        assert fake.deliveries[-1].code == "9876"
        settings = await client.get_settings()
        assert 4 <= settings.code.length <= 6

    async def test_the_public_key_is_refused_on_a_secret_route(self, fake: FakeKodMobi) -> None:
        # A client built with the public key in the secret slot: kod.mobi says 403.
        async with KodMobiClient(fake.api_key, secret_key=fake.api_key, base_url=fake.url) as c:
            with pytest.raises(PermissionDeniedError):
                await c.get_manual_channels()

    async def test_bad_arguments_never_reach_the_server(
        self, fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        for call in (
            client.create_session("89001234567"),
            client.check_code("01HZX3Q8V6W4T1N6B2C3D4E5F6", "12"),
            client.manual_send(PHONE, "sms", callback_url="ftp://x"),
        ):
            with pytest.raises(InvalidArgumentError):
                await call
        assert fake.request_count == 0


class TestDeliveriesAreNeverDuplicated:
    """Counting what the fake delivered: the SDK must never cause a second message."""

    async def test_a_dropped_answer_to_create_is_not_retried(
        self, fake: FakeKodMobi, client: KodMobiClient
    ) -> None:
        fake.script(Fault.drop(), route="/session/create")
        with pytest.raises(APIConnectionError):
            await client.create_session(PHONE)
        assert fake.request_count == 1

    async def test_a_503_on_send_was_not_processed_and_is_retried(
        self, fake: FakeKodMobi, client: KodMobiClient, clock: FakeClock
    ) -> None:
        session = await client.create_session(PHONE, type="sms")
        clock.advance(61)
        fake.script(Fault.status(503), route="/session/send")
        await client.send_code(session.session_id, "sms")
        assert len(fake.deliveries) == 2  # the first send, and one resend: not two

    async def test_a_slow_answer_to_send_is_not_retried(
        self, fake: FakeKodMobi, clock: FakeClock
    ) -> None:
        async with KodMobiClient(
            fake.api_key, base_url=fake.url, clock=clock, timeout=0.6
        ) as client:
            session = await client.create_session(PHONE, type="sms")
            clock.advance(61)
            fake.script(Fault.delay(5), route="/session/send")
            with pytest.raises(APIConnectionError) as info:
                await client.send_code(session.session_id, "sms")
        assert info.value.may_have_reached_server
        sends = [r for r in fake.requests if r.path == "/session/send"]
        assert len(sends) == 1
