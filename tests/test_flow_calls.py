"""The verification flow's calls: request building as pure functions, then each call over
a raw loopback server that records exactly what arrived (and so counts retries)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from kodmobi_async import (
    APIConnectionError,
    BadRequestError,
    ChannelType,
    CodeCheck,
    ConfigurationError,
    Endpoints,
    InvalidArgumentError,
    InvalidSessionIdError,
    KodMobiClient,
    KodMobiError,
    ManualChannel,
    ManualProvider,
    RetryPolicy,
    ServerError,
    Verification,
)
from kodmobi_async._calls import (
    Key,
    Request,
    Resend,
    check_request,
    create_request,
    manual_channels_request,
    manual_send_request,
    send_request,
    settings_request,
    validate_code,
    validate_to,
    verify_request,
)

from .conftest import SECRET_KEY
from .hostile import HostileServer, Reply, SeenRequest, json_reply

SID = "01HZX3Q8V6W4T1N6B2C3D4E5F6"
MASKED_SID = "01HZX3…E5F6"
PHONE = "+79001234567"
SERVER_SECRET = "sk-SECRET-LEAKCHECK-9d8e7f"
ENDPOINTS = Endpoints()
EXPIRES = "2026-11-30T06:43:00+00:00"
CHANNEL = {"name": "SMS", "type": "sms", "is_active": True, "timeout": 60}


def body_of(request: Any) -> dict[str, Any]:
    assert request.body is not None
    loaded: dict[str, Any] = json.loads(request.body)
    return loaded


class TestArguments:
    @pytest.mark.parametrize("to", ["+79001234567", "+12025550123", "user@example.com", "a.b@c.co"])
    def test_a_phone_or_an_email_is_accepted(self, to: str) -> None:
        assert validate_to(to) == to

    @pytest.mark.parametrize(
        ("to", "hint"),
        [
            ("79001234567", "without"),
            ("+7 900 123 45 67", "spaces"),
            ("+0123456789", "neither"),
            ("user@localhost", "neither"),
            ("7-900-123-45-67", "without"),
            ("", "neither"),
            (79001234567, "int"),
        ],
    )
    def test_anything_else_is_refused_saying_what_to_fix(self, to: object, hint: str) -> None:
        with pytest.raises(InvalidArgumentError, match=hint) as info:
            validate_to(to)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, KodMobiError)
        assert info.value.argument == "to"

    @pytest.mark.parametrize("code", ["0000", "12345", "000123"])
    def test_codes_of_four_to_six_digits_are_accepted(self, code: str) -> None:
        assert validate_code(code) == code

    @pytest.mark.parametrize("code", ["123", "1234567", "12a4", "١٢٣٤", 1234, None])
    def test_other_codes_are_refused(self, code: object) -> None:
        with pytest.raises(InvalidArgumentError, match="4 to 6 digits"):
            validate_code(code)

    def test_an_int_code_is_told_to_be_a_string(self) -> None:
        with pytest.raises(InvalidArgumentError, match="leading zeros"):
            validate_code(4821)

    def test_a_bad_session_id_is_an_invalid_argument_too(self) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            send_request(ENDPOINTS, SID.lower(), "sms")
        assert isinstance(info.value, InvalidSessionIdError)

    @pytest.mark.parametrize("url", ["ftp://x.example/cb", "/relative", "https://", "not a url", 5])
    def test_a_callback_url_must_be_absolute_http(self, url: object) -> None:
        with pytest.raises(InvalidArgumentError, match="callback_url"):
            manual_send_request(ENDPOINTS, "+79001234567", "sms", callback_url=url)

    @pytest.mark.parametrize("provider_id", [0, -1, True, "3", 1.0])
    def test_a_provider_id_must_be_a_positive_int(self, provider_id: object) -> None:
        with pytest.raises(InvalidArgumentError, match="provider_id"):
            manual_send_request(ENDPOINTS, "+79001234567", "sms", provider_id=provider_id)

    def test_endpoints_must_be_paths(self) -> None:
        with pytest.raises(InvalidArgumentError, match="check"):
            Endpoints(check="v2/check")

    def test_an_endpoint_may_not_carry_a_query(self) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            Endpoints(check="/v2/check?lang=en")
        assert info.value.argument == "check"
        assert str(info.value) == (
            "Endpoints.check must be a path starting with '/' and without a query, such as "
            "'/v2/check'; got '/v2/check?lang=en'"
        )

    def test_an_email_may_be_as_long_as_the_standard_allows_and_no_longer(self) -> None:
        longest = "a" * 64 + "@" + "b" * 185 + ".com"
        assert len(longest) == 254
        assert validate_to(longest) == longest
        with pytest.raises(InvalidArgumentError, match="255 characters"):
            validate_to("a" + longest)

    def test_a_bad_to_names_both_accepted_forms(self) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            validate_to("someone")
        assert str(info.value) == (
            "to must be a phone number in E.164 form (a '+', the country code and the "
            "number, digits only, such as '+79001234567') or an email address; got 7 "
            "characters that are neither"
        )

    @pytest.mark.parametrize(
        ("code", "told"),
        [("123", "got 3 characters"), (12.5, "got float"), (None, "got NoneType")],
    )
    def test_a_bad_code_says_what_it_got(self, code: object, told: str) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            validate_code(code)
        assert str(info.value) == f"code must be a string of 4 to 6 digits, such as '4821'; {told}"
        assert info.value.argument == "code"

    @pytest.mark.parametrize("channel", ["", "sms x", "sms\n", 5, None])
    def test_a_channel_must_be_a_nonempty_token(self, channel: object) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            send_request(ENDPOINTS, SID, channel)
        assert info.value.argument == "type"
        assert str(info.value) == (
            "type must be a channel type such as 'sms', 'whatsapp', 'telegram' or 'email' "
            f"(a ChannelType or its string); got {channel!r}"
        )
        with pytest.raises(InvalidArgumentError) as info:
            create_request(ENDPOINTS, PHONE, type=channel if channel is not None else 5)
        assert info.value.argument == "type"
        with pytest.raises(InvalidArgumentError) as info:
            manual_send_request(ENDPOINTS, PHONE, channel)
        assert info.value.argument == "channel"
        assert str(info.value).startswith("channel must be a channel type")

    @pytest.mark.parametrize(
        ("token", "shown"),
        [
            ("", "0 characters"),
            ("tok en", "6 characters"),
            ("t" * 4097, "4097 characters"),
            (7, "int"),
        ],
    )
    def test_a_verify_token_must_be_a_header_safe_string(self, token: object, shown: str) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            verify_request(ENDPOINTS, token)
        assert info.value.argument == "verify_token"
        assert str(info.value) == (
            "verify_token must be the non-empty token kod.mobi returned, without spaces; "
            f"got {shown}"
        )

    @pytest.mark.parametrize("token", ["t", "t" * 4096])
    def test_tokens_of_one_to_4096_characters_are_accepted(self, token: str) -> None:
        assert body_of(verify_request(ENDPOINTS, token)) == {"verify_token": token}

    def test_send_must_be_a_bool(self) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            create_request(ENDPOINTS, PHONE, send="yes")
        assert info.value.argument == "send"
        assert str(info.value) == "send must be True or False, got 'yes'"

    def test_a_bad_provider_id_names_itself(self) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            manual_send_request(ENDPOINTS, PHONE, "sms", provider_id=0)
        assert info.value.argument == "provider_id"

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://example.com/a b", "'https://example.com/a b'"),
            ("http://[::1/cb", "'http://[::1/cb'"),  # urlsplit refuses it
            ("ftp://example.com/" + "x" * 100, repr("ftp://example.com/" + "x" * 100)[:80]),
            (5, "int"),
        ],
    )
    def test_a_bad_callback_url_is_shown_short(self, url: object, shown: str) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            manual_send_request(ENDPOINTS, PHONE, "sms", callback_url=url)
        assert info.value.argument == "callback_url"
        assert str(info.value) == (
            "callback_url must be an absolute http(s) URL where kod.mobi reports the "
            f"delivery, such as 'https://example.com/kodmobi'; got {shown}"
        )


class TestRequests:
    def test_create_sends_the_wire_names_and_is_retried_only_when_unsent(self) -> None:
        request = create_request(ENDPOINTS, "+79001234567", type=ChannelType.SMS)
        assert (request.method, request.path, request.key) == (
            "POST",
            "/session/create",
            Key.PUBLIC,
        )
        assert body_of(request) == {"to": "+79001234567", "type": "sms", "send": True}
        assert request.resend is Resend.IF_NOT_RECEIVED

    def test_create_without_sending_is_safe_to_retry(self) -> None:
        request = create_request(ENDPOINTS, "user@example.com", send=False)
        assert body_of(request) == {"to": "user@example.com", "send": False}
        assert request.resend is Resend.ANY_FAILURE

    def test_send_check_and_verify_are_never_retried_once_received(self) -> None:
        for request in (
            send_request(ENDPOINTS, SID, "telegram"),
            check_request(ENDPOINTS, SID, "0421"),
            verify_request(ENDPOINTS, "tok-1"),
            manual_send_request(ENDPOINTS, "+79001234567", "sms"),
        ):
            assert request.resend is Resend.IF_NOT_RECEIVED, request.path

    def test_verify_and_manual_calls_need_the_secret_key(self) -> None:
        assert verify_request(ENDPOINTS, "tok").key is Key.SECRET
        assert manual_send_request(ENDPOINTS, "+79001234567", "sms").key is Key.SECRET

    def test_settings_carry_the_session_in_the_query(self) -> None:
        request = settings_request(ENDPOINTS, SID)
        assert (request.path, request.query) == ("/v2/settings", f"session_id={SID}")
        assert "…" in request.label  # the id is masked in logs
        assert settings_request(ENDPOINTS).query == ""

    def test_labels_mask_the_session_id(self) -> None:
        assert SID not in check_request(ENDPOINTS, SID, "0000").label

    def test_each_request_in_full(self) -> None:
        custom = Endpoints(
            create="/c",
            send="/s",
            check="/k",
            verify="/v",
            manual_channels="/mc",
            manual_send="/ms",
            settings="/st",
        )
        built = [
            create_request(custom, PHONE, type="sms", challenge="cf-1"),
            send_request(custom, SID, ChannelType.TELEGRAM, challenge="cf-2"),
            check_request(custom, SID, "0421", challenge="cf-3"),
            verify_request(custom, "tok-1"),
            manual_channels_request(custom),
            manual_send_request(
                custom,
                "user@example.com",
                "email",
                provider_id=1,
                code="123456",
                callback_url="http://example.com/cb",
            ),
            manual_send_request(custom, PHONE, "sms", callback_url="https://example.com/cb"),
            settings_request(custom),
            settings_request(custom, SID),
        ]
        once, secret = Resend.IF_NOT_RECEIVED, Key.SECRET
        expected = [
            (
                "POST",
                "/c",
                "",
                {"to": PHONE, "type": "sms", "send": True},
                Key.PUBLIC,
                once,
                "POST /c",
                "cf-1",
            ),
            (
                "POST",
                "/s",
                "",
                {"session_id": SID, "type": "telegram"},
                Key.PUBLIC,
                once,
                f"POST /s session={MASKED_SID}",
                "cf-2",
            ),
            (
                "POST",
                "/k",
                "",
                {"session_id": SID, "code": "0421"},
                Key.PUBLIC,
                once,
                f"POST /k session={MASKED_SID}",
                "cf-3",
            ),
            ("POST", "/v", "", {"verify_token": "tok-1"}, secret, once, "POST /v", None),
            ("GET", "/mc", "", None, secret, Resend.ANY_FAILURE, "GET /mc", None),
            (
                "POST",
                "/ms",
                "",
                {
                    "to": "user@example.com",
                    "channel": "email",
                    "provider_id": 1,
                    "code": "123456",
                    "callback_url": "http://example.com/cb",
                },
                secret,
                once,
                "POST /ms",
                None,
            ),
            (
                "POST",
                "/ms",
                "",
                {"to": PHONE, "channel": "sms", "callback_url": "https://example.com/cb"},
                secret,
                once,
                "POST /ms",
                None,
            ),
            ("GET", "/st", "", None, Key.PUBLIC, Resend.ANY_FAILURE, "GET /st", None),
            (
                "GET",
                "/st",
                f"session_id={SID}",
                None,
                Key.PUBLIC,
                Resend.ANY_FAILURE,
                f"GET /st session={MASKED_SID}",
                None,
            ),
        ]
        assert [shape(request) for request in built] == expected


def shape(request: Request) -> tuple[object, ...]:
    """A request as comparable values, its body decoded (its JSON spacing is not a contract)."""
    body = None if request.body is None else json.loads(request.body)
    return (
        request.method,
        request.path,
        request.query,
        body,
        request.key,
        request.resend,
        request.label,
        request.challenge,
    )


# -- over a raw loopback server ------------------------------------------------------

Maker = Callable[..., KodMobiClient]


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as hostile:
        yield hostile


@pytest.fixture
async def make(server: HostileServer) -> AsyncIterator[Maker]:
    made: list[KodMobiClient] = []

    def factory(**options: Any) -> KodMobiClient:
        settings: dict[str, Any] = {
            "api_key": SECRET_KEY,
            "secret_key": SERVER_SECRET,
            "base_url": server.url,
            "timeout": 5.0,
            "retry": RetryPolicy(jitter=False, initial_wait=0.01),
        }
        settings.update(options)
        client = KodMobiClient(**settings)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


def one(server: HostileServer) -> SeenRequest:
    (request,) = server.requests
    return request


class TestEachCall:
    async def test_create_session(self, server: HostileServer, make: Maker) -> None:
        server.answer(
            json_reply(
                200,
                {
                    "session_id": SID,
                    "session_expired_at": EXPIRES,
                    "sent_to": "sms",
                    "channels": [CHANNEL],
                },
            )
        )
        session = await make().create_session("+79001234567")
        assert session.session_id == SID
        assert session.session_expired_at == datetime(2026, 11, 30, 6, 43, tzinfo=timezone.utc)
        assert session.sent_to is ChannelType.SMS
        assert session.channels[0].timeout == 60
        request = one(server)
        assert (request.method, request.target) == ("POST", "/session/create")
        assert request.header("x-api-key") == SECRET_KEY
        assert request.header("content-type") == "application/json"

    async def test_create_without_sending_reads_none_as_nothing_sent(
        self, server: HostileServer, make: Maker
    ) -> None:
        server.answer(
            json_reply(
                200,
                {
                    "session_id": SID,
                    "session_expired_at": "2026-11-30T06:43:00Z",
                    "sent_to": "none",
                    "channels": [],
                },
            )
        )
        session = await make().create_session("user@example.com", send=False)
        assert session.sent_to is None
        assert session.channels == ()

    async def test_send_code(self, server: HostileServer, make: Maker) -> None:
        server.answer(
            json_reply(200, {"session_id": SID, "session_expired_at": EXPIRES, "channel": CHANNEL})
        )
        sent = await make().send_code(SID, "sms")
        assert sent.channel.timeout == 60
        assert one(server).target == "/session/send"

    async def test_check_code_and_its_token_stays_out_of_reprs(
        self, server: HostileServer, make: Maker
    ) -> None:
        server.answer(json_reply(200, {"verify_token": "vt-1234567890abcdef", "is_test": False}))
        check = await make().check_code(SID, "0421")
        assert check == CodeCheck(verify_token="vt-1234567890abcdef", is_test=False)
        assert "vt-1234567890abcdef" not in repr(check)
        assert one(server).target == "/v2/check"

    async def test_verify_uses_the_secret_key(self, server: HostileServer, make: Maker) -> None:
        server.answer(json_reply(200, {"to": "+79001234567", "phone": "+79001234567"}))
        verified = await make().verify("vt-1")
        assert verified == Verification(to="+79001234567", phone="+79001234567")
        request = one(server)
        assert (request.target, request.header("x-api-key")) == ("/verify", SERVER_SECRET)

    async def test_manual_channels_and_send(self, server: HostileServer, make: Maker) -> None:
        provider = {"id": 7, "name": "SMSC", "type": "smsc", "is_system": True}
        answers = iter(
            [
                json_reply(200, [{"name": "SMS", "type": "sms", "providers": [provider]}]),
                json_reply(
                    200, {"message": "queued", "code": "aes_256_cbc_00ff", "message_id": 42}
                ),
            ]
        )
        server.answer(lambda _request: next(answers))
        client = make()
        channels = await client.get_manual_channels()
        sent = await client.manual_send("+79001234567", "sms", provider_id=7, code="0421")
        assert channels == [
            ManualChannel(
                name="SMS",
                type=ChannelType.SMS,
                providers=(ManualProvider(id=7, name="SMSC", type="smsc", is_system=True),),
            )
        ]
        assert sent.message_id == 42
        assert [r.header("x-api-key") for r in server.requests] == [SERVER_SECRET] * 2

    async def test_settings_and_a_custom_path(self, server: HostileServer, make: Maker) -> None:
        server.answer(
            json_reply(
                200,
                {
                    "language": "ru",
                    "project": {"name": "Shop"},
                    "code": {"length": 4, "digits": True, "letters": False},
                    "challenge": {"enabled": True, "api_key": "site-key"},
                },
            )
        )
        client = make(endpoints=Endpoints(settings="/session/settings"))
        settings = await client.get_settings(SID)
        assert (settings.project.name, settings.code.length) == ("Shop", 4)
        assert settings.challenge.api_key == "site-key"
        assert one(server).target == f"/session/settings?session_id={SID}"

    async def test_the_challenge_token_goes_in_the_chosen_header(
        self, server: HostileServer, make: Maker
    ) -> None:
        server.answer(json_reply(200, {"verify_token": "vt", "is_test": True}))
        await make(challenge_header="X-Captcha").check_code(SID, "0000", challenge_token="solved")
        assert one(server).header("x-captcha") == "solved"

    async def test_a_client_without_the_secret_key_refuses_before_sending(
        self, server: HostileServer, make: Maker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("KODMOBI_SECRET_KEY", raising=False)
        client = make(secret_key=None)
        with pytest.raises(ConfigurationError, match="secret key"):
            await client.verify("vt")
        with pytest.raises(ConfigurationError, match="KODMOBI_SECRET_KEY"):
            await client.get_manual_channels()
        assert server.requests == []

    async def test_a_client_with_only_the_secret_key_refuses_public_calls(
        self, server: HostileServer, make: Maker
    ) -> None:
        client = make(api_key=None)
        with pytest.raises(ConfigurationError, match="public key"):
            await client.get_session_channels()
        with pytest.raises(ConfigurationError, match="public key"):
            await client.create_session("+79001234567")
        assert server.requests == []

    async def test_the_secret_key_never_shows_even_when_echoed(
        self, server: HostileServer, make: Maker
    ) -> None:
        server.answer(
            json_reply(
                401, {"error": f"bad key {SERVER_SECRET}", "sys_message": "ERROR_UNAUTHORIZED"}
            )
        )
        with pytest.raises(KodMobiError) as info:
            await make().verify("vt")
        assert SERVER_SECRET not in str(info.value)
        assert SERVER_SECRET not in repr(info.value.__dict__)


def error_reply(status: int, sys_message: str, **headers: str) -> Reply:
    body = {
        "success": False,
        "error": "no",
        "error_params": {},
        "status": status,
        "sys_message": sys_message,
    }
    return json_reply(status, body, headers=list(headers.items()))


class TestRetryRules:
    """What the server received decides: a delivery that may have arrived is never re-sent."""

    async def test_a_500_on_create_with_send_is_not_retried(
        self, server: HostileServer, make: Maker
    ) -> None:
        server.answer(error_reply(500, "ERROR_SERVER"))
        with pytest.raises(ServerError):
            await make().create_session("+79001234567")
        assert len(server.requests) == 1

    async def test_a_connection_dropped_after_a_send_is_not_retried(
        self, server: HostileServer, make: Maker
    ) -> None:
        server.answer(Reply.raw(b""))  # reads the request, closes without an answer
        with pytest.raises(APIConnectionError) as info:
            await make().send_code(SID, "sms")
        assert info.value.may_have_reached_server
        assert len(server.requests) == 1

    async def test_a_dropped_check_is_not_retried(self, server: HostileServer, make: Maker) -> None:
        server.answer(Reply.raw(b""))
        with pytest.raises(APIConnectionError):
            await make().check_code(SID, "0000")
        assert len(server.requests) == 1

    async def test_a_429_on_a_delivery_was_not_processed_and_is_retried(
        self, server: HostileServer, make: Maker
    ) -> None:
        answers = iter([error_reply(429, "ERROR_TOO_MANY_REQUESTS", **{"Retry-After": "0"})])
        ok = json_reply(200, {"message": "ok", "code": "x", "message_id": 1})
        server.answer(lambda _request: next(answers, ok))
        sent = await make().manual_send("+79001234567", "sms")
        assert sent.message_id == 1
        assert len(server.requests) == 2

    async def test_a_500_on_create_without_send_is_retried(
        self, server: HostileServer, make: Maker
    ) -> None:
        answers = iter([error_reply(500, "ERROR_SERVER")])
        ok = json_reply(
            200,
            {"session_id": SID, "session_expired_at": EXPIRES, "sent_to": "none", "channels": []},
        )
        server.answer(lambda _request: next(answers, ok))
        await make().create_session("+79001234567", send=False)
        assert len(server.requests) == 2

    async def test_a_refused_connection_never_reached_kodmobi_and_is_retried(
        self, make: Maker
    ) -> None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        client = make(base_url=f"http://127.0.0.1:{port}", timeout=2.0)
        with pytest.raises(APIConnectionError) as info:
            await client.send_code(SID, "sms")
        assert not info.value.may_have_reached_server
        assert info.value.attempts == 4

    async def test_a_bad_request_is_raised_with_its_sys_message(
        self, server: HostileServer, make: Maker
    ) -> None:
        server.answer(error_reply(400, "ERROR_MESSAGE_WRONG_CODE"))
        with pytest.raises(BadRequestError) as info:
            await make().check_code(SID, "0000")
        assert info.value.sys_message == "ERROR_MESSAGE_WRONG_CODE"

    async def test_a_429_on_a_check_spends_no_budget(
        self, server: HostileServer, make: Maker
    ) -> None:
        answers = iter([error_reply(429, "ERROR_TOO_MANY_REQUESTS", **{"Retry-After": "0"})])
        ok = json_reply(200, {"verify_token": "vt", "is_test": False})
        server.answer(lambda _request: next(answers, ok))
        # A budget of zero: any retry that spent it would fail at once.
        client = make(retry=RetryPolicy(jitter=False, initial_wait=0.01, budget=0))
        assert (await client.check_code(SID, "0000")).verify_token == "vt"
        assert len(server.requests) == 2
