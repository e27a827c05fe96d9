"""The fake's stateful kod.mobi flow, over real sockets with plain aiohttp, on a FakeClock."""

from __future__ import annotations

import datetime
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kodmobi_async.testing import Delivery, FakeClock, FakeKodMobi, Fault, new_session_id

PHONE = "+79001234567"
EMAIL = "user@example.com"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeKodMobi]:
    async with FakeKodMobi(clock=clock) as server:
        yield server


class Http:
    """A plain aiohttp caller of the fake: no SDK involved."""

    def __init__(self, fake: FakeKodMobi, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    async def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        sent = {"x-api-key": key or self.fake.api_key, **(headers or {})}
        async with self.session.request(
            method,
            self.fake.url + path,
            json=body if raw is None else None,
            data=raw,
            headers=sent,
            params=params,
        ) as response:
            return response.status, await response.json(content_type=None)

    async def create(self, to: str = PHONE, **fields: Any) -> tuple[int, Any]:
        return await self("POST", "/session/create", {"to": to, **fields})

    async def send(self, session_id: str, type: str = "sms") -> tuple[int, Any]:
        return await self("POST", "/session/send", {"session_id": session_id, "type": type})

    async def check(self, session_id: str, code: str, **kwargs: Any) -> tuple[int, Any]:
        return await self("POST", "/v2/check", {"session_id": session_id, "code": code}, **kwargs)

    async def verify(self, token: str, key: str | None = None) -> tuple[int, Any]:
        return await self(
            "POST", "/verify", {"verify_token": token}, key=key or self.fake.secret_key
        )

    async def channels(self, session_id: str) -> tuple[int, Any]:
        return await self("GET", "/session/channels", params={"session_id": session_id})


@pytest.fixture
async def http(fake: FakeKodMobi) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(fake, session)


def assert_error(answer: tuple[int, Any], status: int, sys_message: str) -> dict[str, Any]:
    got_status, body = answer
    assert (got_status, body["sys_message"], body["status"], body["success"]) == (
        status,
        sys_message,
        status,
        False,
    ), body
    params: dict[str, Any] = body["error_params"]
    return params


class TestCreate:
    async def test_creates_a_three_minute_session_and_sends_one_code(
        self, fake: FakeKodMobi, http: Http, clock: FakeClock
    ) -> None:
        before = datetime.datetime.now(datetime.timezone.utc)

        status, body = await http.create()

        assert status == 200
        assert re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", body["session_id"])
        assert body["sent_to"] == "whatsapp"  # the project's first active phone channel
        assert [c["type"] for c in body["channels"]] == ["whatsapp", "telegram", "sms"]
        assert {c["type"]: c["timeout"] for c in body["channels"]} == {
            "whatsapp": 60,
            "telegram": 0,
            "sms": 0,
        }
        expires = datetime.datetime.fromisoformat(body["session_expired_at"])
        assert body["session_expired_at"].endswith("+00:00")
        assert datetime.timedelta(seconds=178) < expires - before < datetime.timedelta(seconds=182)
        [delivery] = fake.deliveries
        assert delivery == Delivery(
            to=PHONE,
            channel="whatsapp",
            code=fake.code_for(body["session_id"]),
            at=clock.now,
            session_id=body["session_id"],
        )
        assert re.fullmatch(r"[0-9]{4}", delivery.code)

    async def test_an_email_is_reached_by_the_email_channel_only(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        status, body = await http.create(EMAIL)

        assert (status, body["sent_to"]) == (200, "email")
        assert [c["type"] for c in body["channels"]] == ["email"]
        assert fake.deliveries[0].to == EMAIL

    async def test_returns_the_live_session_for_the_same_to_without_a_second_message(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        _, first = await http.create()

        again = await http.create()
        status, quiet = await http.create(send=False)

        assert assert_error(again, 400, "ERROR_MESSAGE_ATTEMPT") == {"timeout": 60}
        assert (status, quiet["session_id"], quiet["sent_to"]) == (
            200,
            first["session_id"],
            "none",
        )
        assert len(fake.deliveries) == 1

    async def test_send_false_sends_nothing_and_has_no_code(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        status, body = await http.create(send=False)

        assert (status, body["sent_to"]) == (200, "none")
        assert fake.deliveries == []
        with pytest.raises(ValueError, match="send=false"):
            fake.code_for(body["session_id"])

    async def test_without_type_uses_the_channel_last_used_for_to(
        self, http: Http, clock: FakeClock
    ) -> None:
        await http.create(type="sms")
        clock.advance(180)

        status, body = await http.create()

        assert (status, body["sent_to"]) == (200, "sms")

    @pytest.mark.parametrize(
        ("to", "kind", "sys_message"),
        [
            (PHONE, "viber", "ERROR_PROJECT_HAS_NO_CHANNEL"),
            (PHONE, "email", "ERROR_PROJECT_HAS_NO_CHANNEL"),
            (EMAIL, "sms", "ERROR_PROJECT_HAS_NO_CHANNEL"),
            (PHONE, "telegram", "ERROR_USER_NOT_AUTHORIZE_ON_CHANNEL"),
        ],
    )
    async def test_refuses_a_channel_it_cannot_use(
        self, fake: FakeKodMobi, http: Http, to: str, kind: str, sys_message: str
    ) -> None:
        assert_error(await http.create(to, type=kind), 400, sys_message)
        assert fake.deliveries == []

    async def test_no_fitting_channel_in_the_project(self, fake: FakeKodMobi, http: Http) -> None:
        fake.project_channels = [{"type": "sms"}]

        assert_error(await http.create(EMAIL), 400, "ERROR_PROJECT_HAS_NO_CHANNEL")


class TestCoolDown:
    async def test_the_timeout_counts_down_on_the_fake_clock(
        self, http: Http, clock: FakeClock
    ) -> None:
        _, created = await http.create(type="sms")
        sid = created["session_id"]

        clock.advance(15.5)
        _, channels = await http.channels(sid)
        refused = await http.send(sid, "sms")
        clock.advance(44.5)
        _, later = await http.channels(sid)
        status, sent = await http.send(sid, "sms")

        assert {c["type"]: c["timeout"] for c in channels}["sms"] == 45
        assert assert_error(refused, 400, "ERROR_MESSAGE_ATTEMPT") == {"timeout": 45}
        assert {c["type"]: c["timeout"] for c in later}["sms"] == 0
        assert status == 200
        assert sent["channel"]["type"] == "sms"
        assert sent["channel"]["timeout"] == 60

    async def test_each_channel_cools_down_on_its_own(self, fake: FakeKodMobi, http: Http) -> None:
        _, created = await http.create(type="sms")

        status, sent = await http.send(created["session_id"], "whatsapp")

        assert (status, sent["session_id"]) == (200, created["session_id"])
        assert [d.channel for d in fake.deliveries] == ["sms", "whatsapp"]


class TestSend:
    async def test_a_new_send_replaces_the_code(self, fake: FakeKodMobi, http: Http) -> None:
        _, created = await http.create(type="sms")
        sid = created["session_id"]
        old = fake.code_for(sid)
        fake.set_settings(code_length=6)  # the new code cannot equal the old one

        await http.send(sid, "whatsapp")

        assert len(fake.code_for(sid)) == 6
        assert assert_error(await http.check(sid, old), 400, "ERROR_MESSAGE_WRONG_CODE") == {
            "count": 1
        }
        assert (await http.check(sid, fake.code_for(sid)))[0] == 200

    async def test_unknown_and_expired_sessions(
        self, fake: FakeKodMobi, http: Http, clock: FakeClock
    ) -> None:
        _, created = await http.create()
        registered = fake.add_session()

        clock.advance(180)

        assert_error(await http.send(new_session_id()), 404, "ERROR_MESSAGE_NOT_FOUND")
        assert_error(await http.send(registered), 404, "ERROR_MESSAGE_NOT_FOUND")
        assert_error(await http.send(created["session_id"]), 400, "ERROR_SESSION_EXPIRED")
        assert_error(await http.check(created["session_id"], "0000"), 400, "ERROR_SESSION_EXPIRED")
        assert_error(await http.channels(created["session_id"]), 404, "ERROR_MESSAGE_NOT_FOUND")

    async def test_a_session_expires_at_three_minutes_not_before(
        self, fake: FakeKodMobi, http: Http, clock: FakeClock
    ) -> None:
        _, created = await http.create()
        sid = created["session_id"]

        clock.advance(179.9)
        before = await http.channels(sid)
        clock.advance(0.1)
        _, second = await http.create()

        assert before[0] == 200
        assert second["session_id"] != sid  # the old one is over: create makes a new one
        assert len(fake.deliveries) == 2


class TestCheckAndVerify:
    async def test_a_correct_code_gives_a_token_that_verifies_once(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        _, created = await http.create()
        sid = created["session_id"]

        status, checked = await http.check(sid, fake.code_for(sid))
        again = await http.check(sid, fake.code_for(sid))
        verified = await http.verify(checked["verify_token"])
        reused = await http.verify(checked["verify_token"])

        assert (status, checked["is_test"]) == (200, False)
        assert isinstance(checked["verify_token"], str)
        assert_error(again, 404, "ERROR_MESSAGE_NOT_FOUND")
        assert verified == (200, {"to": PHONE, "phone": PHONE})
        assert_error(reused, 404, "ERROR_MESSAGE_NOT_FOUND")

    async def test_an_email_verifies_without_a_phone(self, fake: FakeKodMobi, http: Http) -> None:
        _, created = await http.create(EMAIL)
        _, checked = await http.check(created["session_id"], fake.code_for(created["session_id"]))

        assert await http.verify(checked["verify_token"]) == (200, {"to": EMAIL})

    async def test_three_wrong_codes_lock_the_session(self, fake: FakeKodMobi, http: Http) -> None:
        _, created = await http.create()
        sid = created["session_id"]
        code = fake.code_for(sid)
        wrong = "9999" if code != "9999" else "0000"

        counts = [
            assert_error(await http.check(sid, wrong), 400, "ERROR_MESSAGE_WRONG_CODE")
            for _ in range(3)
        ]
        locked = await http.check(sid, code)

        assert counts == [{"count": 1}, {"count": 2}, {"count": 3}]
        assert assert_error(locked, 400, "ERROR_MESSAGE_ATTEMPT") == {"count": 3}

    async def test_a_wrong_code_speaks_russian_when_asked(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        _, created = await http.create(send=False)

        _, body = await http.check(created["session_id"], "1234", headers={"Accept-Language": "ru"})

        assert body["error"] == "Неверный код"

    async def test_unknown_token(self, http: Http) -> None:
        assert_error(await http.verify("never-issued"), 404, "ERROR_MESSAGE_NOT_FOUND")

    async def test_code_for_an_unknown_session(self, fake: FakeKodMobi) -> None:
        with pytest.raises(KeyError, match="no session"):
            fake.code_for(new_session_id())
        with pytest.raises(ValueError, match="ULID"):
            fake.code_for("not-a-ulid")


class TestTestRecipients:
    async def test_a_test_recipient_gets_a_fixed_code_and_no_message(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        fake.add_test_recipient(PHONE, code="4321")

        _, created = await http.create()
        status, checked = await http.check(created["session_id"], "4321")

        assert created["sent_to"] == "whatsapp"
        assert fake.code_for(created["session_id"]) == "4321"
        assert fake.deliveries == []
        assert (status, checked["is_test"]) == (200, True)

    def test_refuses_a_bad_recipient_or_code(self, fake: FakeKodMobi) -> None:
        with pytest.raises(ValueError, match=r"E\.164"):
            fake.add_test_recipient("79001234567")
        with pytest.raises(ValueError, match="4 to 6 digits"):
            fake.add_test_recipient(PHONE, code="12")


ROUTES = [
    ("GET", "/session/channels", False),
    ("POST", "/session/create", False),
    ("POST", "/session/send", False),
    ("POST", "/v2/check", False),
    ("GET", "/v2/settings", False),
    ("POST", "/verify", True),
    ("GET", "/manual/channels", True),
    ("POST", "/manual/send", True),
]


class TestKeys:
    @pytest.mark.parametrize(("method", "path", "secret"), ROUTES)
    async def test_an_unknown_key_is_unauthorized_everywhere(
        self, http: Http, method: str, path: str, secret: bool
    ) -> None:
        assert_error(await http(method, path, {}, key="nope"), 401, "ERROR_UNAUTHORIZED")

    @pytest.mark.parametrize(("method", "path", "secret"), ROUTES)
    async def test_the_public_key_is_denied_the_secret_routes(
        self, http: Http, method: str, path: str, secret: bool
    ) -> None:
        status, body = await http(method, path, {})

        if secret:
            assert_error((status, body), 403, "ERROR_ACCESS_DENIED")
        else:
            assert status in {200, 400}  # past the key check: the body is what's wrong

    @pytest.mark.parametrize(("method", "path", "secret"), ROUTES)
    async def test_the_secret_key_opens_every_route(
        self, fake: FakeKodMobi, http: Http, method: str, path: str, secret: bool
    ) -> None:
        status, _ = await http(method, path, {}, key=fake.secret_key)

        assert status in {200, 400}

    def test_defaults_and_configured_keys(self) -> None:
        fake = FakeKodMobi(api_keys=["pub-1", "pub-2"], secret_keys=["sec-1"])

        assert (fake.api_key, fake.secret_key) == ("pub-1", "sec-1")
        assert fake.secret_keys == frozenset({"sec-1"})
        assert FakeKodMobi().secret_key == FakeKodMobi.DEFAULT_SECRET_KEY

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"api_keys": ["same"], "secret_keys": ["same"]}, ValueError),
            ({"secret_keys": []}, ValueError),
            ({"secret_keys": "one-string"}, TypeError),
        ],
    )
    def test_refuses_bad_keys(self, kwargs: dict[str, Any], error: type[Exception]) -> None:
        with pytest.raises(error):
            FakeKodMobi(**kwargs)


class TestChallenge:
    async def test_create_send_and_check_need_the_token(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        fake.enable_challenge("solved", header="X-Captcha")
        ok = {"X-Captcha": "solved"}

        refused = await http.create()
        wrong = await http("POST", "/session/create", {"to": PHONE}, headers={"X-Captcha": "no"})
        status, created = await http("POST", "/session/create", {"to": PHONE}, headers=ok)
        sid = created["session_id"]
        check_refused = await http.check(sid, fake.code_for(sid))
        check_ok = await http.check(sid, fake.code_for(sid), headers=ok)
        _, settings = await http("GET", "/v2/settings")

        assert_error(refused, 400, "ERROR_CHALLENGE")
        assert_error(wrong, 400, "ERROR_CHALLENGE")
        assert status == 200
        assert_error(check_refused, 400, "ERROR_CHALLENGE")
        assert check_ok[0] == 200
        assert settings["challenge"] == {"enabled": True, "api_key": "fake-turnstile-site-key"}

    async def test_disabled_again(self, fake: FakeKodMobi, http: Http) -> None:
        fake.enable_challenge()
        fake.disable_challenge()

        assert (await http.create())[0] == 200


class TestValidation:
    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("/session/create", {}, "to"),
            ("/session/create", {"to": "79001234567"}, "to"),
            ("/session/create", {"to": "+0123456789"}, "to"),
            ("/session/create", {"to": "+1234567"}, "to"),
            ("/session/create", {"to": "a@b"}, "to"),
            ("/session/create", {"to": "@example.com"}, "to"),
            ("/session/create", {"to": "a" * 250 + "@b.cd"}, "to"),
            ("/session/create", {"to": PHONE, "type": ""}, "type"),
            ("/session/create", {"to": PHONE, "send": "yes"}, "send"),
            ("/session/send", {"type": "sms"}, "session_id"),
            (
                "/session/send",
                {"session_id": new_session_id().lower(), "type": "sms"},
                "session_id",
            ),
            ("/session/send", {"session_id": new_session_id(), "type": 3}, "type"),
            ("/v2/check", {"session_id": new_session_id(), "code": "123"}, "code"),
            ("/v2/check", {"session_id": new_session_id(), "code": "1234567"}, "code"),
            ("/v2/check", {"session_id": new_session_id(), "code": "١٢٣٤"}, "code"),
            ("/v2/check", {"session_id": new_session_id(), "code": 1234}, "code"),
            ("/verify", {"verify_token": ""}, "verify_token"),
            ("/manual/send", {"to": PHONE}, "channel"),
            ("/manual/send", {"to": PHONE, "channel": "sms", "provider_id": 0}, "provider_id"),
            ("/manual/send", {"to": PHONE, "channel": "sms", "provider_id": True}, "provider_id"),
            ("/manual/send", {"to": PHONE, "channel": "sms", "code": "12ab"}, "code"),
            (
                "/manual/send",
                {"to": PHONE, "channel": "sms", "callback_url": "ftp://x.example/"},
                "callback_url",
            ),
            (
                "/manual/send",
                {"to": PHONE, "channel": "sms", "callback_url": "/hook"},
                "callback_url",
            ),
        ],
    )
    async def test_a_bad_field_is_a_bad_request(
        self, fake: FakeKodMobi, http: Http, path: str, body: dict[str, Any], field: str
    ) -> None:
        answer = await http("POST", path, body, key=fake.secret_key)

        assert assert_error(answer, 400, "ERROR_BAD_REQUEST") == {"field": field}
        assert field in answer[1]["error"]
        assert fake.deliveries == []

    @pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b"\xff\xfe"])
    async def test_a_body_that_is_not_a_json_object(
        self, fake: FakeKodMobi, http: Http, raw: bytes
    ) -> None:
        answer = await http("POST", "/session/create", raw=raw)

        assert assert_error(answer, 400, "ERROR_BAD_REQUEST") == {"field": "body"}

    async def test_a_wrong_method_is_refused_with_allow(self, fake: FakeKodMobi) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                fake.url + "/session/create", headers={"x-api-key": fake.api_key}
            ) as response,
        ):
            assert (response.status, response.headers["Allow"]) == (405, "POST")


class TestManual:
    async def test_lists_the_channels_with_providers(self, fake: FakeKodMobi, http: Http) -> None:
        fake.manual_channels = [
            {
                "name": "SMS",
                "type": "sms",
                "providers": [{"id": 7, "name": "Gate", "type": "gate", "is_system": False}],
            }
        ]

        status, body = await http("GET", "/manual/channels", key=fake.secret_key)

        assert (status, body) == (200, fake.manual_channels)

    async def test_send_records_its_delivery(
        self, fake: FakeKodMobi, http: Http, clock: FakeClock
    ) -> None:
        status, body = await http(
            "POST",
            "/manual/send",
            {
                "to": PHONE,
                "channel": "sms",
                "provider_id": 2,
                "code": "123456",
                "callback_url": "https://backend.example/hook",
            },
            key=fake.secret_key,
        )

        assert status == 200
        assert isinstance(body["message"], str)
        assert isinstance(body["code"], str)
        assert "123456" not in body["code"]
        assert fake.deliveries == [
            Delivery(
                to=PHONE,
                channel="sms",
                code="123456",
                at=clock.now,
                provider_id=2,
                callback_url="https://backend.example/hook",
                message_id=body["message_id"],
            )
        ]

    async def test_makes_up_a_code_of_the_project_length(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        fake.set_settings(code_length=5)

        ids = [
            (await http("POST", "/manual/send", {"to": EMAIL, "channel": "email"}, key=k))[1][
                "message_id"
            ]
            for k in (fake.secret_key, fake.secret_key)
        ]

        assert ids[1] == ids[0] + 1
        assert [len(d.code) for d in fake.deliveries] == [5, 5]

    async def test_unknown_channel_and_provider(self, fake: FakeKodMobi, http: Http) -> None:
        channel = await http(
            "POST", "/manual/send", {"to": PHONE, "channel": "pigeon"}, key=fake.secret_key
        )
        provider = await http(
            "POST",
            "/manual/send",
            {"to": PHONE, "channel": "sms", "provider_id": 3},  # Email's provider
            key=fake.secret_key,
        )

        assert_error(channel, 400, "ERROR_PROJECT_HAS_NO_CHANNEL")
        assert assert_error(provider, 400, "ERROR_BAD_REQUEST") == {"field": "provider_id"}
        assert fake.deliveries == []

    def test_refuses_bad_manual_channels(self, fake: FakeKodMobi) -> None:
        provider = {"id": 1, "name": "a", "type": "b", "is_system": True}
        with pytest.raises(ValueError, match="unique"):
            fake.manual_channels = [
                {"name": "SMS", "type": "sms", "providers": [provider, provider]}
            ]
        with pytest.raises(TypeError, match="is_system"):
            fake.manual_channels = [
                {"name": "SMS", "type": "sms", "providers": [{**provider, "is_system": 1}]}
            ]


class TestSettings:
    async def test_reports_the_project_settings(self, fake: FakeKodMobi, http: Http) -> None:
        fake.set_settings(language="ru", project_name="Shop", code_length=6)

        assert await http("GET", "/v2/settings") == (
            200,
            {
                "language": "ru",
                "project": {"name": "Shop"},
                "code": {"length": 6, "digits": True, "letters": False},
                "challenge": {"enabled": False},
            },
        )

    async def test_a_session_id_must_be_known(self, fake: FakeKodMobi, http: Http) -> None:
        _, created = await http.create()

        known = await http("GET", "/v2/settings", params={"session_id": created["session_id"]})
        registered = await http("GET", "/v2/settings", params={"session_id": fake.add_session()})
        unknown = await http("GET", "/v2/settings", params={"session_id": new_session_id()})
        bad = await http("GET", "/v2/settings", params={"session_id": "nope"})

        assert (known[0], registered[0]) == (200, 200)
        assert_error(unknown, 404, "ERROR_MESSAGE_NOT_FOUND")
        assert_error(bad, 400, "ERROR_BAD_REQUEST")

    @pytest.mark.parametrize("length", [3, 7, True])
    def test_refuses_a_code_length_the_client_could_not_check(
        self, fake: FakeKodMobi, length: int
    ) -> None:
        with pytest.raises(ValueError, match="4 to 6"):
            fake.set_settings(code_length=length)


class TestFaultsAndLimits:
    async def test_a_fault_scripted_for_a_post_route_hits_only_that_route(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        fake.script(Fault.status(503), route="/session/create")

        channels = await http("GET", "/session/channels")
        failed = await http.create()
        status, _ = await http.create()

        assert channels[0] == 200
        assert_error(failed, 503, "ERROR_SERVICE_UNAVAILABLE")
        assert status == 200
        assert len(fake.deliveries) == 1  # the faulted create sent nothing
        assert [r.fault for r in fake.requests] == [None, Fault.status(503), None]
        assert fake.requests[1].json() == {"to": PHONE}

    async def test_a_dropped_send_is_recorded_and_sends_nothing(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        _, created = await http.create(type="sms")
        sid = created["session_id"]
        fake.script_session(sid, Fault.drop(), route="/session/send")

        with pytest.raises(aiohttp.ServerDisconnectedError):
            await http.send(sid, "whatsapp")

        last = fake.requests[-1]
        assert (last.path, last.session_id, last.status) == ("/session/send", sid, None)
        assert len(fake.deliveries) == 1

    async def test_a_delayed_fault_serves_the_flow_afterwards(
        self, fake: FakeKodMobi, http: Http
    ) -> None:
        fake.script(Fault.delay(0), route="/session/create")

        status, body = await http.create()

        assert (status, body["sent_to"]) == (200, "whatsapp")

    def test_refuses_a_route_that_is_not_a_path(self, fake: FakeKodMobi) -> None:
        with pytest.raises(ValueError, match="route"):
            fake.script(Fault.drop(), route="session/create")

    async def test_the_rate_limit_covers_the_flow_routes(
        self, clock: FakeClock, fake: FakeKodMobi, http: Http
    ) -> None:
        fake.set_rate_limit(1, burst=1)

        first = await http.create()
        limited = await http.create(EMAIL)
        clock.advance(1)
        later = await http.create(EMAIL)

        assert first[0] == 200
        assert_error(limited, 429, "ERROR_TOO_MANY_REQUESTS")
        assert later[0] == 200
        assert [d.to for d in fake.deliveries] == [PHONE, EMAIL]
