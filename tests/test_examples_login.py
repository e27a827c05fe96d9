"""The login recipe's app, end to end: a person logs in with a one-time code.

The app runs in the test's event loop through httpx's ASGI transport, with its lifespan
entered by hand; the stateful fake kod.mobi serves on a loopback port of the same loop,
on a :class:`FakeClock` that the tests advance to run out cool-downs and sessions. One
test uses FastAPI's TestClient instead, with the fake in a thread of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kodmobi_async import RetryPolicy
from kodmobi_async.testing import FakeClock, FakeKodMobi, Fault, new_session_id

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "examples"))

import fastapi_login

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package for its TestClient and warns when it
    # falls back to httpx; which one is installed is not what these tests are about.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PUBLIC = "pk-LOGIN-LEAKCHECK-51d2"
SECRET = "sk-LOGIN-LEAKCHECK-7ae9"
PHONE = "+15550100123"
EMAIL = "ada@example.com"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeKodMobi]:
    async with FakeKodMobi(api_keys=[PUBLIC], secret_keys=[SECRET], clock=clock) as server:
        yield server


@asynccontextmanager
async def serve(fake: FakeKodMobi, **client_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it over ASGI (https, for the Secure cookie)."""
    options: dict[str, Any] = {
        "api_key": PUBLIC,
        "secret_key": SECRET,
        "base_url": fake.url,
        "retry": RetryPolicy.disabled(),
    }
    options.update(client_options)
    app = fastapi_login.create_app(session_key=b"test session key", **options)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="https://app") as http,
    ):
        yield http


async def start(http: httpx.AsyncClient, to: str = PHONE, **fields: Any) -> dict[str, Any]:
    response = await http.post("/login/start", json={"to": to, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def check(http: httpx.AsyncClient, session_id: str, code: str) -> httpx.Response:
    return await http.post("/login/check", json={"session_id": session_id, "code": code})


async def verify_token_for(http: httpx.AsyncClient, fake: FakeKodMobi) -> dict[str, Any]:
    """Start a login for PHONE and type the right code: the ``/login/verify`` body."""
    session_id = (await start(http))["session_id"]
    checked = await check(http, session_id, fake.code_for(session_id))
    assert checked.status_code == 200, checked.text
    body: dict[str, Any] = checked.json()
    return body


def wrong(code: str) -> str:
    """A code of the same length that is not ``code``."""
    return "".join(str((int(digit) + 1) % 10) for digit in code)


def signed(key: bytes, payload: bytes) -> str:
    """A token signed as the app signs, around any payload."""
    text = base64.urlsafe_b64encode(payload).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(key, text, hashlib.sha256).digest())
    return f"{text.decode()}.{signature.rstrip(b'=').decode()}"


def problem(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body


class TestLogIn:
    async def test_start_check_verify_then_the_app_session_works(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            started = await start(http)
            session_id = started["session_id"]
            checked = await check(http, session_id, fake.code_for(session_id))
            verified = await http.post("/login/verify", json=checked.json())
            me = await http.get("/me")

        assert started["sent_to"] == "whatsapp"  # the first active channel for a phone
        channels = {c["type"]: c for c in started["channels"]}
        assert channels["whatsapp"]["wait_seconds"] == 60
        assert channels["telegram"]["is_active"] is False
        assert checked.status_code == 200
        assert set(checked.json()) == {"verify_token"}
        assert verified.status_code == 200
        assert verified.json()["user"] == PHONE
        cookie = verified.headers["set-cookie"]
        assert cookie.startswith(f"{fastapi_login.COOKIE}=")
        assert "HttpOnly" in cookie
        assert "Secure" in cookie
        assert "SameSite=lax" in cookie
        assert me.status_code == 200
        assert me.json() == {"user": PHONE}

    async def test_each_call_uses_its_key(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            await http.post("/login/verify", json=await verify_token_for(http, fake))

        keys = {r.path: r.headers["x-api-key"] for r in fake.requests}
        assert keys == {"/session/create": PUBLIC, "/v2/check": PUBLIC, "/verify": SECRET}

    async def test_one_start_sends_exactly_one_code(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            again = await http.post("/login/start", json={"to": PHONE})

        (delivery,) = fake.deliveries
        assert (delivery.to, delivery.channel) == (PHONE, "whatsapp")
        assert delivery.session_id == session_id
        assert delivery.code == fake.code_for(session_id)
        # A second start for the same person while the code is fresh sends nothing.
        assert again.status_code == 429
        assert problem(again)["code"] == "too_soon"

    async def test_an_email_address_over_a_chosen_channel(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            started = await start(http, EMAIL, channel="email")
            session_id = started["session_id"]
            checked = await check(http, session_id, fake.code_for(session_id))
            verified = await http.post("/login/verify", json=checked.json())

        assert started["sent_to"] == "email"
        assert [c["type"] for c in started["channels"]] == ["email"]
        assert verified.json()["user"] == EMAIL

    async def test_the_login_page_can_list_the_channels(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            response = await http.get("/login/channels")

        assert response.status_code == 200
        assert [c["type"] for c in response.json()] == ["whatsapp", "telegram", "sms", "email"]

    async def test_a_malformed_address_is_422_and_never_sent(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            response = await http.post("/login/start", json={"to": "79001234567"})

        assert response.status_code == 422
        body = problem(response)
        assert body["code"] == "invalid_to"
        assert "write it as '+79001234567'" in body["detail"]
        assert fake.requests == []

    async def test_an_inactive_channel_says_to_enable_it(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            response = await http.post("/login/start", json={"to": PHONE, "channel": "telegram"})

        assert response.status_code == 409
        assert problem(response)["code"] == "channel_not_enabled"
        assert fake.deliveries == []


class TestCodes:
    async def test_a_wrong_code_then_the_right_one(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            code = fake.code_for(session_id)
            first = await check(http, session_id, wrong(code))
            second = await check(http, session_id, code)

        assert first.status_code == 400
        assert problem(first) == {
            "status": 400,
            "code": "wrong_code",
            "detail": "that is not the code we sent; check it and try again",
            "wrong_attempts": 1,
        }
        assert second.status_code == 200

    async def test_three_wrong_codes_lock_the_login(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            code = fake.code_for(session_id)
            wrongs = [await check(http, session_id, wrong(code)) for _ in range(3)]
            right = await check(http, session_id, code)

        assert [problem(r)["wrong_attempts"] for r in wrongs] == [1, 2, 3]
        assert right.status_code == 429
        body = problem(right)
        assert body["code"] == "too_many_attempts"
        assert "retry_after" not in body
        assert "Retry-After" not in right.headers

    async def test_a_malformed_code_is_422_and_never_sent(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            response = await check(http, session_id, "12a4")

        assert response.status_code == 422
        assert problem(response)["code"] == "invalid_code"
        assert [r.path for r in fake.requests] == ["/session/create"]

    async def test_an_unknown_login_is_404(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            response = await check(http, new_session_id(), "1234")

        assert response.status_code == 404
        assert problem(response)["code"] == "login_not_found"

    async def test_an_accepted_code_cannot_be_checked_again(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            code = fake.code_for(session_id)
            assert (await check(http, session_id, code)).status_code == 200
            again = await check(http, session_id, code)

        assert again.status_code == 404


class TestResend:
    async def test_during_the_cool_down_is_refused_with_the_seconds_left(
        self, fake: FakeKodMobi, clock: FakeClock
    ) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            clock.advance(15.5)
            response = await http.post(
                "/login/resend", json={"session_id": session_id, "channel": "whatsapp"}
            )

        assert response.status_code == 429
        assert problem(response) == {
            "status": 429,
            "code": "too_soon",
            "detail": "a code was sent a moment ago; ask again in 45 s",
            "retry_after": 45,
        }
        assert response.headers["Retry-After"] == "45"
        assert len(fake.deliveries) == 1

    async def test_after_the_cool_down_sends_a_new_code(
        self, fake: FakeKodMobi, clock: FakeClock
    ) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            old_code = fake.code_for(session_id)
            clock.advance(60)
            response = await http.post(
                "/login/resend", json={"session_id": session_id, "channel": "whatsapp"}
            )
            new_code = fake.code_for(session_id)
            checked = await check(http, session_id, new_code)

        assert response.status_code == 200
        body = response.json()
        assert body["session_id"] == session_id
        assert (body["channel"]["type"], body["channel"]["wait_seconds"]) == ("whatsapp", 60)
        assert [d.code for d in fake.deliveries] == [old_code, new_code]
        assert checked.status_code == 200

    async def test_over_another_channel_at_once(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            response = await http.post(
                "/login/resend", json={"session_id": session_id, "channel": "sms"}
            )

        assert response.status_code == 200
        assert [d.channel for d in fake.deliveries] == ["whatsapp", "sms"]

    async def test_a_channel_that_cannot_reach_the_person_is_422(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            response = await http.post(
                "/login/resend", json={"session_id": session_id, "channel": "email"}
            )

        assert response.status_code == 422
        assert problem(response)["code"] == "channel_unavailable"


class TestExpiry:
    async def test_a_code_past_three_minutes_is_410(
        self, fake: FakeKodMobi, clock: FakeClock
    ) -> None:
        async with serve(fake) as http:
            session_id = (await start(http))["session_id"]
            code = fake.code_for(session_id)
            clock.advance(180)
            checked = await check(http, session_id, code)
            resent = await http.post(
                "/login/resend", json={"session_id": session_id, "channel": "sms"}
            )
            restarted = await start(http)

        for response in (checked, resent):
            assert response.status_code == 410
            assert problem(response)["code"] == "session_expired"
        # Starting again makes a new login; the cool-down of the old code has run out.
        assert restarted["session_id"] != session_id
        assert len(fake.deliveries) == 2


class TestVerify:
    async def test_a_verify_token_works_once(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            token = await verify_token_for(http, fake)
            first = await http.post("/login/verify", json=token)
            http.cookies.clear()
            second = await http.post("/login/verify", json=token)
            me = await http.get("/me")

        assert first.status_code == 200
        assert second.status_code == 401
        assert problem(second)["code"] == "verify_token_rejected"
        assert "set-cookie" not in second.headers
        assert me.status_code == 401

    async def test_a_made_up_token_is_refused(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            response = await http.post("/login/verify", json={"verify_token": "made-up"})

        assert response.status_code == 401
        assert [r.path for r in fake.requests] == ["/verify"]

    async def test_without_the_secret_key_is_500_and_sends_nothing(
        self, fake: FakeKodMobi, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("KODMOBI_SECRET_KEY", raising=False)
        async with serve(fake, secret_key=None) as http:
            response = await http.post("/login/verify", json={"verify_token": "whatever"})

        assert response.status_code == 500
        assert problem(response)["code"] == "login_misconfigured"
        assert fake.requests == []


class TestAppSession:
    async def test_without_a_cookie_is_401(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            response = await http.get("/me")

        assert response.status_code == 401
        assert problem(response)["code"] == "not_logged_in"

    @pytest.mark.parametrize(
        "token",
        [
            "garbage",
            fastapi_login.issue_session(b"another key", PHONE, 0)[0],
            fastapi_login.issue_session(b"test session key", PHONE, 0)[0],  # expired
            signed(b"test session key", b'["not", "claims"]'),
        ],
        ids=["garbage", "forged", "expired", "not-claims"],
    )
    async def test_a_bad_cookie_is_401(self, fake: FakeKodMobi, token: str) -> None:
        async with serve(fake) as http:
            http.cookies.set(fastapi_login.COOKIE, token)
            response = await http.get("/me")

        assert response.status_code == 401

    async def test_a_cookie_with_another_users_name_is_401(self, fake: FakeKodMobi) -> None:
        key = b"test session key"
        mine, _ = fastapi_login.issue_session(key, PHONE, 2e9)
        theirs, _ = fastapi_login.issue_session(key, "+15550100999", 2e9)
        # Their claims under my signature: what a user who edits their cookie sends.
        tampered = f"{theirs.partition('.')[0]}.{mine.partition('.')[2]}"

        async with serve(fake) as http:
            http.cookies.set(fastapi_login.COOKIE, mine)
            assert (await http.get("/me")).status_code == 200
            http.cookies.set(fastapi_login.COOKIE, tampered)
            response = await http.get("/me")

        assert response.status_code == 401

    async def test_logout_ends_the_session(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            token = await verify_token_for(http, fake)
            await http.post("/login/verify", json=token)
            assert (await http.get("/me")).status_code == 200
            logout = await http.post("/logout")
            me = await http.get("/me")

        assert logout.status_code == 204
        assert me.status_code == 401


class TestUpstream:
    async def test_a_lost_answer_to_a_delivery_is_not_retried(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.drop(), route="/session/create")

        async with serve(fake, retry=RetryPolicy(initial_wait=0.01)) as http:
            response = await http.post("/login/start", json={"to": PHONE})

        assert response.status_code == 503
        body = problem(response)
        assert body["code"] == "upstream_unavailable"
        assert body["detail"] == "kod.mobi did not answer; your request may have gone through"
        assert [r.path for r in fake.requests] == ["/session/create"]  # once: no second SMS

    async def test_an_outage_is_503_with_retry_after(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.status(503, retry_after=7), times=None)

        async with serve(fake) as http:
            response = await http.post("/login/start", json={"to": PHONE})

        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        assert fake.deliveries == []

    async def test_a_rejected_key_is_500_for_the_operators(
        self, fake: FakeKodMobi, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="fastapi_login")
        wrong_key = "pk-LOGIN-WRONG-0c3d"

        async with serve(fake, api_key=wrong_key) as http:
            response = await http.post("/login/start", json={"to": PHONE})

        assert response.status_code == 500
        assert problem(response)["code"] == "login_misconfigured"
        assert wrong_key not in response.text
        (record,) = [r for r in caplog.records if r.name == "fastapi_login"]
        assert record.getMessage().startswith("login step failed: AuthenticationError:")
        assert wrong_key not in record.getMessage()


class TestSecrets:
    async def test_keys_codes_and_tokens_stay_out_of_answers_and_logs(
        self, fake: FakeKodMobi, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        responses: list[httpx.Response] = []
        fake.script(Fault.status(503), route="/session/send")

        async with serve(fake, retry=RetryPolicy(initial_wait=0.01)) as http:
            session_id = (await start(http))["session_id"]
            code = fake.code_for(session_id)
            responses.append(await check(http, session_id, wrong(code)))
            responses.append(
                await http.post("/login/resend", json={"session_id": session_id, "channel": "sms"})
            )
            clock.advance(60)
            responses.append(
                await http.post("/login/resend", json={"session_id": session_id, "channel": "sms"})
            )
            code = fake.code_for(session_id)
            checked = await check(http, session_id, code)
            token = checked.json()["verify_token"]
            responses.append(await http.post("/login/verify", json=checked.json()))
            responses.append(await http.post("/login/verify", json=checked.json()))
            responses.append(await http.get("/me"))

        assert [r.status_code for r in responses] == [400, 200, 200, 200, 401, 200]
        answers = "\n".join(f"{r.headers}\n{r.text}" for r in [*responses, checked])
        logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
        assert caplog.records, "the SDK logs its retry"
        for secret in (SECRET, PUBLIC):
            assert secret not in answers
            assert secret not in logged
        for private in (code, token, session_id):
            assert private not in logged


class TestLifespan:
    async def test_one_client_no_leaked_connections(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            for _ in range(3):
                await http.get("/login/channels")
            session_id = (await start(http))["session_id"]
            await check(http, session_id, fake.code_for(session_id))
            client = http._transport.app.state.kodmobi  # type: ignore[attr-defined]
            assert not client.closed

        assert client.closed
        assert fake.total_connections == 1  # one pooled keep-alive connection
        assert await fake.wait_connections_closed()

    async def test_the_served_app_reads_the_environment(
        self, fake: FakeKodMobi, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("KODMOBI_API_KEY", PUBLIC)
        monkeypatch.setenv("KODMOBI_SECRET_KEY", SECRET)
        monkeypatch.setenv("KODMOBI_BASE_URL", fake.url)
        monkeypatch.setenv("LOGIN_SESSION_KEY", "from the environment")
        app = fastapi_login.app

        async with app.router.lifespan_context(app):
            client = app.state.kodmobi
            assert client.timeout == 5.0
            assert client.retry_policy.attempts == 2
            assert app.state.session_key == b"from the environment"
            assert await client.get_session_channels() != []
        assert client.closed


def test_with_fastapis_test_client(kodmobi_fake_env: FakeKodMobi) -> None:
    # The fake serves from its own thread; the client reads KODMOBI_* set by the fixture.
    with TestClient(fastapi_login.create_app(), base_url="https://testserver") as http:
        session_id = http.post("/login/start", json={"to": PHONE}).json()["session_id"]
        code = kodmobi_fake_env.code_for(session_id)
        checked = http.post("/login/check", json={"session_id": session_id, "code": code})
        verified = http.post("/login/verify", json=checked.json())
        me = http.get("/me")

    assert verified.status_code == 200
    assert me.json() == {"user": PHONE}
    assert len(kodmobi_fake_env.deliveries) == 1
    assert kodmobi_fake_env.wait_connections_closed_sync()
