"""Tests of the fake kod.mobi server, driven by a plain aiohttp client over loopback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI

from kodmobi_async import InvalidSessionIdError, KodMobiClient
from kodmobi_async.testing import FakeClock, FakeKodMobi, Fault, RecordedRequest, new_session_id

CHANNELS = "/session/channels"
SESSION_ID = "01HZX3Q8V6W4T1N6B2C3D4E5F6"
OTHER_SESSION_ID = "01HZX3Q8V6W4T1N6B2C3D4E5F7"
ULID_PATTERN = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeKodMobi]:
    async with FakeKodMobi() as server:
        yield server


@pytest.fixture
async def client(fake: FakeKodMobi) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=fake.url, headers={"x-api-key": fake.api_key}
    ) as session:
        yield session


async def get_json(
    client: aiohttp.ClientSession,
    *,
    session_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    params = {} if session_id is None else {"session_id": session_id}
    async with client.get(CHANNELS, params=params, headers=headers) as response:
        return response.status, await response.json()


def error_envelope(status: int, sys_message: str, error: str) -> dict[str, Any]:
    return {
        "success": False,
        "error": error,
        "error_params": {},
        "status": status,
        "sys_message": sys_message,
    }


async def fetch_with_new_session(url: str, api_key: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers={"x-api-key": api_key}) as session,
        session.get(url + CHANNELS) as response,
    ):
        return response.status, await response.json()


class TestAuthentication:
    async def test_missing_key_gets_401_envelope(self, fake: FakeKodMobi) -> None:
        async with aiohttp.ClientSession(base_url=fake.url) as anonymous:
            status, body = await get_json(anonymous)

        assert status == 401
        assert body == error_envelope(
            401,
            "ERROR_UNAUTHORIZED",
            "API key is missing: send it in the x-api-key header",
        )

    async def test_wrong_key_gets_401_envelope(self, client: aiohttp.ClientSession) -> None:
        status, body = await get_json(client, headers={"x-api-key": "not-the-key"})

        assert status == 401
        assert body == error_envelope(401, "ERROR_UNAUTHORIZED", "Invalid API key")

    async def test_every_configured_key_is_accepted(self) -> None:
        async with (
            FakeKodMobi(api_keys=["public", "secret"]) as fake,
            aiohttp.ClientSession(base_url=fake.url) as session,
        ):
            statuses = [
                (await get_json(session, headers={"x-api-key": key}))[0]
                for key in ("public", "secret")
            ]

        assert statuses == [200, 200]
        assert fake.api_key == "public"
        assert fake.api_keys == frozenset({"public", "secret"})

    def test_default_key_is_the_documented_constant(self) -> None:
        assert FakeKodMobi().api_key == FakeKodMobi.DEFAULT_API_KEY == "kodmobi-fake-public-key"

    def test_single_string_as_api_keys_is_refused(self) -> None:
        with pytest.raises(TypeError, match="not one string"):
            FakeKodMobi(api_keys="public")

    def test_empty_api_keys_are_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one key"):
            FakeKodMobi(api_keys=[])


class TestProjectChannels:
    async def test_default_project_has_one_channel_per_documented_type(
        self, client: aiohttp.ClientSession
    ) -> None:
        status, body = await get_json(client)

        assert status == 200
        assert [channel["type"] for channel in body] == ["whatsapp", "telegram", "sms", "email"]
        for channel in body:
            assert isinstance(channel["name"], str)
            assert isinstance(channel["is_active"], bool)
            assert 0 <= channel["timeout"] <= 60
            assert channel["image_url"].startswith("https://")
            assert channel["link"].startswith("https://")

    async def test_success_is_a_bare_json_array(self, client: aiohttp.ClientSession) -> None:
        async with client.get(CHANNELS) as response:
            raw = await response.read()
            content_type = response.headers["Content-Type"]

        assert content_type == "application/json; charset=utf-8"
        assert raw.startswith(b"[")

    async def test_new_project_channels_are_served_with_defaults_filled_in(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.project_channels = [
            {"type": "viber", "is_active": False, "description": "new", "sorting": 3}
        ]

        _, body = await get_json(client)

        assert body == [
            {
                "name": "Viber",
                "type": "viber",
                "is_active": False,
                "timeout": 0,
                "image_url": "https://kod.mobi/static/channels/viber.svg",
                "link": "https://kod.mobi",
                "description": "new",
                "sorting": 3,
            }
        ]
        assert fake.project_channels == body

    def test_out_of_range_timeout_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"timeout.*Fault\.body"):
            FakeKodMobi(project_channels=[{"type": "sms", "timeout": 61}])

    def test_wrongly_typed_field_is_refused(self) -> None:
        with pytest.raises(TypeError, match="'is_active' must be bool"):
            FakeKodMobi(project_channels=[{"type": "sms", "is_active": "yes"}])

    def test_channel_without_type_is_refused(self) -> None:
        with pytest.raises(ValueError, match="'type'"):
            FakeKodMobi(project_channels=[{"name": "SMS"}])

    def test_single_mapping_instead_of_list_is_refused(self) -> None:
        with pytest.raises(TypeError, match="not one mapping"):
            FakeKodMobi(project_channels={"type": "sms"})  # type: ignore[dict-item]


class TestSessions:
    async def test_known_session_gets_its_own_channels(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        sid = fake.add_session(SESSION_ID, channels=[{"type": "telegram", "timeout": 42}])

        status, body = await get_json(client, session_id=sid)

        assert sid == SESSION_ID
        assert status == 200
        assert [(c["type"], c["timeout"]) for c in body] == [("telegram", 42)]

    async def test_new_session_starts_with_the_project_channels(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        sid = fake.add_session()

        _, session_body = await get_json(client, session_id=sid)
        _, project_body = await get_json(client)

        assert ULID_PATTERN.fullmatch(sid)
        assert session_body == project_body

    @pytest.mark.parametrize("spelling", [SESSION_ID.lower(), SESSION_ID[:-1] + "f"])
    async def test_lowercase_session_id_is_malformed_even_when_registered(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession, spelling: str
    ) -> None:
        fake.add_session(SESSION_ID)

        status, body = await get_json(client, session_id=spelling)

        assert status == 400
        assert body == error_envelope(
            400, "ERROR_BAD_REQUEST", "Invalid session_id: expected a ULID"
        )

    @pytest.mark.parametrize(
        "candidate",
        [SESSION_ID, SESSION_ID.lower(), SESSION_ID[:-1] + "f", SESSION_ID[:-1] + "U", "nope"],
    )
    async def test_fake_refuses_exactly_the_ids_the_client_refuses(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession, candidate: str
    ) -> None:
        fake.add_session(SESSION_ID)
        async with KodMobiClient(api_key=fake.api_key, base_url=fake.url) as sdk:
            try:
                await sdk.get_session_channels(candidate)
            except InvalidSessionIdError:
                client_refuses = True
            else:
                client_refuses = False

        status, _ = await get_json(client, session_id=candidate)

        assert client_refuses == (status == 400)

    async def test_unknown_session_gets_404_envelope(self, client: aiohttp.ClientSession) -> None:
        status, body = await get_json(client, session_id=SESSION_ID)

        assert status == 404
        assert body == error_envelope(404, "ERROR_MESSAGE_NOT_FOUND", "Session not found")

    @pytest.mark.parametrize(
        "bad_id",
        [
            "",
            "nope",
            SESSION_ID[:-1],
            SESSION_ID + "0",
            "81HZX3Q8V6W4T1N6B2C3D4E5F6",
            "01HZX3Q8V6W4T1N6B2C3D4E5FU",
        ],
    )
    async def test_malformed_session_id_gets_400_envelope(
        self, client: aiohttp.ClientSession, bad_id: str
    ) -> None:
        status, body = await get_json(client, session_id=bad_id)

        assert status == 400
        assert body == error_envelope(
            400, "ERROR_BAD_REQUEST", "Invalid session_id: expected a ULID"
        )

    async def test_set_channels_changes_only_that_session(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.add_session(SESSION_ID)
        fake.add_session(OTHER_SESSION_ID)

        fake.set_channels(SESSION_ID, [{"type": "email"}])

        _, changed = await get_json(client, session_id=SESSION_ID)
        _, untouched = await get_json(client, session_id=OTHER_SESSION_ID)
        assert [c["type"] for c in changed] == ["email"]
        assert len(untouched) == 4

    async def test_channel_state_is_per_session(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.add_session(SESSION_ID)
        fake.add_session(OTHER_SESSION_ID)

        fake.set_channel_state(SESSION_ID, "telegram", is_active=True, timeout=60)

        _, changed = await get_json(client, session_id=SESSION_ID)
        _, untouched = await get_json(client, session_id=OTHER_SESSION_ID)
        telegram = next(c for c in changed if c["type"] == "telegram")
        assert (telegram["is_active"], telegram["timeout"]) == (True, 60)
        assert telegram["description"] == "Open the bot and press Start to receive codes"
        assert next(c for c in untouched if c["type"] == "telegram")["is_active"] is False
        assert fake.channels(SESSION_ID) == changed

    async def test_removed_session_is_not_found(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.add_session(SESSION_ID)

        fake.remove_session(SESSION_ID)

        status, body = await get_json(client, session_id=SESSION_ID)
        assert (status, body["sys_message"]) == (404, "ERROR_MESSAGE_NOT_FOUND")

    async def test_many_sessions_are_added_at_once(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        ids = fake.add_sessions(1000, channels=[{"type": "sms"}])

        statuses = [(await get_json(client, session_id=sid))[0] for sid in (ids[0], ids[-1])]

        assert len(set(ids)) == 1000
        assert statuses == [200, 200]

    def test_adding_an_existing_session_is_refused(self) -> None:
        fake = FakeKodMobi()
        fake.add_session(SESSION_ID)

        with pytest.raises(ValueError, match="already exists"):
            fake.add_session(SESSION_ID)

    @pytest.mark.parametrize("bad_id", ["session-1", SESSION_ID.lower()])
    def test_session_id_that_is_not_an_uppercase_ulid_is_refused(self, bad_id: str) -> None:
        fake = FakeKodMobi()

        with pytest.raises(ValueError, match="must be a ULID \\(26 upper-case"):
            fake.add_session(bad_id)
        with pytest.raises(ValueError, match="must be a ULID"):
            fake.script_session(bad_id, Fault.drop())

    def test_changing_an_unknown_session_is_refused(self) -> None:
        fake = FakeKodMobi()

        with pytest.raises(KeyError, match="no session"):
            fake.set_channels(SESSION_ID, [])
        with pytest.raises(KeyError, match="no session"):
            fake.remove_session(SESSION_ID)

    def test_changing_a_missing_channel_type_is_refused(self) -> None:
        fake = FakeKodMobi()
        fake.add_session(SESSION_ID, channels=[{"type": "sms"}])

        with pytest.raises(KeyError, match="no 'telegram' channel"):
            fake.set_channel_state(SESSION_ID, "telegram", is_active=True)


class TestNewSessionId:
    def test_is_an_uppercase_ulid(self) -> None:
        assert ULID_PATTERN.fullmatch(new_session_id())

    def test_timestamp_part_is_now(self) -> None:
        before = time.time_ns() // 1_000_000
        sid = new_session_id()
        after = time.time_ns() // 1_000_000

        alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
        timestamp = 0
        for char in sid[:10]:
            timestamp = timestamp * 32 + alphabet.index(char)
        assert before <= timestamp <= after

    def test_ids_are_unique(self) -> None:
        assert len({new_session_id() for _ in range(1000)}) == 1000


class TestLocalization:
    @pytest.mark.parametrize("accept_language", ["ru", "ru-RU,ru;q=0.9,en;q=0.8", "de, ru;q=0.5"])
    async def test_russian_is_used_when_preferred(
        self, client: aiohttp.ClientSession, accept_language: str
    ) -> None:
        _, body = await get_json(
            client, session_id=SESSION_ID, headers={"Accept-Language": accept_language}
        )

        assert body["error"] == "Сессия не найдена"
        assert body["sys_message"] == "ERROR_MESSAGE_NOT_FOUND"

    @pytest.mark.parametrize("accept_language", ["en", "en;q=0.9, ru;q=0.5", "de", "ru;q=0"])
    async def test_english_is_the_default(
        self, client: aiohttp.ClientSession, accept_language: str
    ) -> None:
        _, body = await get_json(
            client, session_id=SESSION_ID, headers={"Accept-Language": accept_language}
        )

        assert body["error"] == "Session not found"

    async def test_status_fault_text_is_localized(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.status(503))

        _, body = await get_json(client, headers={"Accept-Language": "ru"})

        assert body["error"] == "Сервис временно недоступен"


class TestRouting:
    async def test_unknown_path_gets_404_envelope(self, client: aiohttp.ClientSession) -> None:
        async with client.get("/session/nope") as response:
            status, body = response.status, await response.json()

        assert status == 404
        assert body == error_envelope(404, "ERROR_NOT_FOUND", "Not found")

    async def test_other_method_gets_405_with_allow(self, client: aiohttp.ClientSession) -> None:
        async with client.post(CHANNELS) as response:
            status, allow = response.status, response.headers["Allow"]
            body = await response.json()

        assert (status, allow) == (405, "GET")
        assert body["sys_message"] == "ERROR_METHOD_NOT_ALLOWED"


class TestStatusFault:
    @pytest.mark.parametrize(
        ("code", "sys_message", "error"),
        [
            (429, "ERROR_TOO_MANY_REQUESTS", "Too Many Requests"),
            (500, "ERROR_INTERNAL_SERVER_ERROR", "Internal Server Error"),
            (503, "ERROR_SERVICE_UNAVAILABLE", "Service Unavailable"),
            (520, "ERROR_HTTP_520", "HTTP error 520"),
        ],
    )
    async def test_envelope_defaults_follow_the_status(
        self,
        fake: FakeKodMobi,
        client: aiohttp.ClientSession,
        code: int,
        sys_message: str,
        error: str,
    ) -> None:
        fake.script(Fault.status(code))

        status, body = await get_json(client)

        assert status == code
        assert body == error_envelope(code, sys_message, error)

    async def test_envelope_fields_and_headers_can_be_set(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(
            Fault.status(
                400,
                sys_message="ERROR_MESSAGE_WRONG_CODE",
                error="Wrong code",
                error_params={"count": 2},
                headers={"X-Request-Id": "abc"},
            )
        )

        async with client.get(CHANNELS) as response:
            body = await response.json()
            request_id = response.headers["X-Request-Id"]

        assert body == {
            "success": False,
            "error": "Wrong code",
            "error_params": {"count": 2},
            "status": 400,
            "sys_message": "ERROR_MESSAGE_WRONG_CODE",
        }
        assert request_id == "abc"

    @pytest.mark.parametrize(
        ("retry_after", "header"),
        [(3, "3"), (0, "0"), ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT")],
    )
    async def test_retry_after_is_sent(
        self,
        fake: FakeKodMobi,
        client: aiohttp.ClientSession,
        retry_after: int | str,
        header: str,
    ) -> None:
        fake.script(Fault.status(429, retry_after=retry_after))

        async with client.get(CHANNELS) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, header)

    async def test_html_page_imitates_a_proxy(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.status(502, html=True, retry_after=5))

        async with client.get(CHANNELS) as response:
            status, headers, text = response.status, response.headers, await response.text()

        assert status == 502
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Retry-After"] == "5"
        assert "<title>502 Bad Gateway</title>" in text

    @pytest.mark.parametrize("code", [200, 302, 600])
    def test_non_error_code_is_refused(self, code: int) -> None:
        with pytest.raises(ValueError, match="4xx or 5xx"):
            Fault.status(code)

    @pytest.mark.parametrize("retry_after", [1.5, True])
    def test_retry_after_must_be_int_or_str(self, retry_after: Any) -> None:
        with pytest.raises(TypeError, match="retry_after"):
            Fault.status(429, retry_after=retry_after)

    def test_negative_retry_after_is_refused(self) -> None:
        with pytest.raises(ValueError, match="retry_after"):
            Fault.status(429, retry_after=-1)

    def test_repr_reads_like_the_call(self) -> None:
        assert repr(Fault.status(503)) == "Fault.status(503)"
        assert repr(Fault.status(429, retry_after=3)) == "Fault.status(429, retry_after='3')"
        assert repr(Fault.delay(0.5, then=Fault.drop())) == "Fault.delay(0.5, then=Fault.drop())"

    def test_faults_are_comparable_values(self) -> None:
        assert Fault.status(503, error_params={"a": 1}) == Fault.status(503, error_params={"a": 1})
        assert Fault.status(503) != Fault.status(502)
        assert hash(Fault.drop()) == hash(Fault.drop())


class TestDropFault:
    async def test_two_drops_reach_an_aiohttp_caller(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.drop(), times=2)

        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get_json(client)

        assert [r.status for r in fake.requests] == [None, None]

    async def test_single_drop_is_retried_by_aiohttp_itself(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        # aiohttp resends an idempotent request once after a disconnect; clients built on
        # it must script two drops to see one.
        fake.script(Fault.drop())

        status, _ = await get_json(client)

        assert status == 200
        assert [r.status for r in fake.requests] == [None, 200]


class TestDelayFault:
    async def test_delay_then_normal_answer(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.delay(0.05))
        started = time.monotonic()

        status, _ = await get_json(client)

        assert status == 200
        assert time.monotonic() - started >= 0.05

    async def test_delay_then_another_fault(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.delay(0.05, then=Fault.status(504)))
        started = time.monotonic()

        status, body = await get_json(client)

        assert (status, body["sys_message"]) == (504, "ERROR_GATEWAY_TIMEOUT")
        assert time.monotonic() - started >= 0.05

    async def test_delayed_request_does_not_hold_up_others(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.delay(0.2))
        finished: list[str] = []

        async def call(name: str) -> None:
            await get_json(client)
            finished.append(name)

        slow = asyncio.create_task(call("slow"))
        assert await fake.wait_for_requests(1)
        await call("fast")
        await slow

        assert finished == ["fast", "slow"]

    async def test_client_timeout_closes_the_connection(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.delay(5), times=None)

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(get_json(client), timeout=0.05)

        assert await fake.wait_connections_closed()
        assert fake.requests[0].status is None

    def test_negative_delay_is_refused(self) -> None:
        with pytest.raises(ValueError, match="seconds >= 0"):
            Fault.delay(-1)


class TestBrokenBodyFaults:
    async def test_malformed_is_200_json_that_does_not_parse(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.malformed())

        async with client.get(CHANNELS) as response:
            status, content_type = response.status, response.headers["Content-Type"]
            raw = await response.read()

        assert (status, content_type) == (200, "application/json; charset=utf-8")
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)

    async def test_truncated_body_is_shorter_than_content_length(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.truncated())

        async with client.get(CHANNELS) as response:
            promised = int(response.headers["Content-Length"])
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()

        assert promised == len(json.dumps(fake.project_channels, separators=(",", ":")))

    async def test_raw_body_is_sent_verbatim(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        raw = b'[{"name": 1, "type": null}]'
        fake.script(Fault.body(200, raw, content_type="text/plain", headers={"X-Odd": "1"}))

        async with client.get(CHANNELS) as response:
            status, headers, body = response.status, response.headers, await response.read()

        assert (status, body) == (200, raw)
        assert (headers["Content-Type"], headers["X-Odd"]) == ("text/plain", "1")

    def test_raw_body_status_must_be_a_final_status(self) -> None:
        with pytest.raises(ValueError, match="200 to 599"):
            Fault.body(101, b"")


class TestRedirectFault:
    async def test_redirect_points_elsewhere(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.redirect())

        async with client.get(CHANNELS, allow_redirects=False) as response:
            status, location = response.status, response.headers["Location"]

        assert (status, location) == (302, "https://evil.example/steal")

    async def test_redirect_status_and_location_can_be_set(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.redirect("/elsewhere", status=308))

        async with client.get(CHANNELS, allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (308, "/elsewhere")

    def test_non_redirect_status_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"Fault\.redirect needs one of"):
            Fault.redirect(status=200)


class TestOversizeFault:
    async def test_content_length_body_is_exactly_the_size_and_valid_json(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.oversize())

        async with client.get(CHANNELS) as response:
            length = response.headers["Content-Length"]
            raw = await response.read()

        assert int(length) == len(raw) == 2 * 1024 * 1024
        assert all(channel["type"] == "sms" for channel in json.loads(raw))

    async def test_chunked_body_has_no_content_length(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.oversize(300_001, chunked=True))

        async with client.get(CHANNELS) as response:
            headers = response.headers
            raw = await response.read()

        assert headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in headers
        assert len(raw) == 300_001
        json.loads(raw)

    async def test_tiny_size_is_still_valid_json(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.oversize(10))

        async with client.get(CHANNELS) as response:
            raw = await response.read()

        assert len(raw) == 10
        assert json.loads(raw) == []

    async def test_client_giving_up_mid_body_leaves_no_connection(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.oversize(16 * 1024 * 1024, chunked=True))

        async with client.get(CHANNELS) as response:
            await response.content.readexactly(1024)
            response.close()

        assert await fake.wait_connections_closed()

    def test_size_below_two_is_refused(self) -> None:
        with pytest.raises(ValueError, match="size_bytes >= 2"):
            Fault.oversize(1)


class TestScripting:
    async def test_fault_applies_times_then_normal_service_resumes(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.status(503), times=2)

        statuses = [(await get_json(client))[0] for _ in range(3)]

        assert statuses == [503, 503, 200]

    async def test_faults_apply_in_the_order_scripted(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.status(503))
        fake.script(Fault.status(429, retry_after=1), times=2)
        fake.script(Fault.status(500))

        statuses = [(await get_json(client))[0] for _ in range(5)]

        assert statuses == [503, 429, 429, 500, 200]

    async def test_forever_fault_lasts_until_cleared(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.status(503), times=None)
        fake.script(Fault.status(500))

        before = [(await get_json(client))[0] for _ in range(3)]
        fake.clear_faults()
        after, _ = await get_json(client)

        assert before == [503, 503, 503]
        assert after == 200

    async def test_session_fault_affects_only_that_session(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.add_session(SESSION_ID)
        fake.add_session(OTHER_SESSION_ID)
        fake.script_session(SESSION_ID, Fault.status(503), times=None)

        faulted = [(await get_json(client, session_id=SESSION_ID))[0] for _ in range(2)]
        other, _ = await get_json(client, session_id=OTHER_SESSION_ID)
        project, _ = await get_json(client)

        assert faulted == [503, 503]
        assert (other, project) == (200, 200)

    async def test_session_fault_comes_before_global_faults(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.add_session(SESSION_ID)
        fake.script(Fault.status(500))
        fake.script_session(SESSION_ID, Fault.status(429))

        statuses = [(await get_json(client, session_id=SESSION_ID))[0] for _ in range(3)]

        assert statuses == [429, 500, 200]

    async def test_unknown_session_can_be_scripted(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script_session(SESSION_ID, Fault.status(410))

        status, _ = await get_json(client, session_id=SESSION_ID)

        assert status == 410

    async def test_faults_come_before_authentication(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.status(502, html=True))

        async with (
            aiohttp.ClientSession(base_url=fake.url) as anonymous,
            anonymous.get(CHANNELS) as response,
        ):
            assert response.status == 502

    @pytest.mark.parametrize("times", [0, -1])
    def test_times_must_be_positive(self, times: int) -> None:
        with pytest.raises(ValueError, match="positive int or None"):
            FakeKodMobi().script(Fault.drop(), times=times)

    def test_session_fault_needs_a_ulid(self) -> None:
        with pytest.raises(ValueError, match="must be a ULID"):
            FakeKodMobi().script_session("abc", Fault.drop())


class TestRecording:
    async def test_request_details_are_recorded(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.add_session(SESSION_ID)
        fake.script_session(SESSION_ID, Fault.status(503))

        await get_json(client, session_id=SESSION_ID, headers={"Accept-Language": "ru"})
        await get_json(client, session_id=SESSION_ID)

        first, second = fake.requests
        assert isinstance(first, RecordedRequest)
        assert (first.method, first.path) == ("GET", CHANNELS)
        assert first.query == {"session_id": SESSION_ID}
        assert first.session_id == SESSION_ID
        assert first.headers["X-API-KEY"] == fake.api_key
        assert first.headers["accept-language"] == "ru"
        assert (first.status, first.fault) == (503, Fault.status(503))
        assert (second.status, second.fault) == (200, None)
        assert first.received_at <= second.received_at
        assert fake.request_count == 2

    async def test_pending_request_is_recorded_on_arrival(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        fake.script(Fault.delay(0.1))

        task = asyncio.create_task(get_json(client))
        assert await fake.wait_for_requests(1)
        pending = fake.requests[0]
        await task

        assert pending.status is None
        assert fake.requests[0].status == 200

    async def test_clear_requests_resets_the_log_and_count(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        await get_json(client)

        fake.clear_requests()

        assert (fake.requests, fake.request_count) == ([], 0)

    async def test_recording_can_be_turned_off_but_counting_stays(self) -> None:
        async with (
            FakeKodMobi(record_requests=False) as fake,
            aiohttp.ClientSession(base_url=fake.url) as session,
        ):
            await get_json(session)
            await get_json(session)

        assert (fake.requests, fake.request_count) == ([], 2)


class TestConnections:
    async def test_open_connections_drop_to_zero_after_client_closes(
        self, fake: FakeKodMobi
    ) -> None:
        async with aiohttp.ClientSession(base_url=fake.url) as session:
            await get_json(session)
            assert fake.open_connections == 1

        assert await fake.wait_connections_closed()
        assert fake.open_connections == 0
        assert fake.total_connections == 1

    async def test_keep_alive_reuses_one_connection(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        await get_json(client)
        await get_json(client)

        assert fake.total_connections == 1

    async def test_closing_the_connection_per_request_opens_new_ones(
        self, fake: FakeKodMobi
    ) -> None:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(base_url=fake.url, connector=connector) as session:
            await get_json(session)
            await get_json(session)

        assert fake.total_connections == 2

    async def test_wait_reports_a_connection_left_open(
        self, fake: FakeKodMobi, client: aiohttp.ClientSession
    ) -> None:
        await get_json(client)

        assert await fake.wait_connections_closed(timeout=0.01) is False


class TestLifecycle:
    async def test_close_cuts_in_flight_requests_and_leaves_nothing_pending(self) -> None:
        fake = FakeKodMobi()
        await fake.start()
        fake.script(Fault.delay(30), times=None)
        async with aiohttp.ClientSession(base_url=fake.url) as session:
            request = asyncio.create_task(get_json(session))
            assert await fake.wait_for_requests(1)
            started = time.monotonic()

            await fake.close()

            assert time.monotonic() - started < 1
            with pytest.raises(aiohttp.ClientError):
                await request
        assert fake.open_connections == 0
        assert asyncio.all_tasks() == {asyncio.current_task()}

    def test_url_needs_a_running_server(self) -> None:
        with pytest.raises(RuntimeError, match="not running"):
            _ = FakeKodMobi().url

    async def test_starting_twice_is_refused(self, fake: FakeKodMobi) -> None:
        with pytest.raises(RuntimeError, match="already running"):
            await fake.start()

    async def test_close_is_idempotent_and_start_works_again(self) -> None:
        fake = FakeKodMobi()
        await fake.start()
        await fake.close()
        await fake.close()

        async with fake:
            assert fake.url.startswith("http://127.0.0.1:")

    async def test_latency_delays_every_answer(self) -> None:
        async with (
            FakeKodMobi(latency=0.03) as fake,
            aiohttp.ClientSession(base_url=fake.url) as session,
        ):
            started = time.monotonic()
            await get_json(session)
            await get_json(session)

        assert time.monotonic() - started >= 0.06

    def test_negative_latency_is_refused(self) -> None:
        with pytest.raises(ValueError, match="latency"):
            FakeKodMobi(latency=-0.1)


class TestInThread:
    def test_serves_sync_code_and_is_scripted_from_the_test_thread(self) -> None:
        with FakeKodMobi.in_thread() as fake:
            fake.script(Fault.status(503))
            first = asyncio.run(fetch_with_new_session(fake.url, fake.api_key))
            second = asyncio.run(fetch_with_new_session(fake.url, fake.api_key))

            assert fake.wait_connections_closed_sync()
            assert [first[0], second[0]] == [503, 200]
            assert fake.request_count == 2

    async def test_serves_another_event_loop(self) -> None:
        with FakeKodMobi.in_thread() as fake:
            status, _ = await fetch_with_new_session(fake.url, fake.api_key)

            assert status == 200
            assert await fake.wait_connections_closed()

    def test_start_failure_reaches_the_caller(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            with (
                pytest.raises(OSError, match="address already in use"),
                FakeKodMobi.in_thread(port=port),
            ):
                pass

    def test_thread_is_gone_after_the_block(self) -> None:
        with FakeKodMobi.in_thread():
            pass

        assert not any(thread.name == "kodmobi-fake" for thread in threading.enumerate())


async def statuses_of(client: aiohttp.ClientSession, count: int, **kwargs: Any) -> list[int]:
    return [(await get_json(client, **kwargs))[0] for _ in range(count)]


TOO_MANY = error_envelope(429, "ERROR_TOO_MANY_REQUESTS", "Too Many Requests")


class TestRateLimit:
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def limited(self, clock: FakeClock) -> AsyncIterator[FakeKodMobi]:
        async with FakeKodMobi(api_keys=["a", "b"], rate_limit=200, burst=3, clock=clock) as fake:
            yield fake

    @pytest.fixture
    async def session(self, limited: FakeKodMobi) -> AsyncIterator[aiohttp.ClientSession]:
        async with aiohttp.ClientSession(base_url=limited.url, headers={"x-api-key": "a"}) as s:
            yield s

    async def test_burst_is_admitted_and_the_excess_gets_429_with_envelope(
        self, session: aiohttp.ClientSession
    ) -> None:
        admitted = await statuses_of(session, 3)
        async with session.get(CHANNELS) as response:
            status, body = response.status, await response.json()
            retry_after = response.headers.get("Retry-After")

        assert admitted == [200, 200, 200]
        assert (status, body, retry_after) == (429, TOO_MANY, "1")

    async def test_refusal_matches_a_scripted_429_in_russian_too(
        self, limited: FakeKodMobi, session: aiohttp.ClientSession
    ) -> None:
        ru = {"Accept-Language": "ru"}
        await statuses_of(session, 3)
        _, limited_body = await get_json(session, headers=ru)
        limited.set_rate_limit(None)
        limited.script(Fault.status(429))
        _, scripted_body = await get_json(session, headers=ru)

        assert limited_body == scripted_body
        assert limited_body["error"] == "Слишком много запросов, повторите позже"

    async def test_bucket_refills_at_the_rate_up_to_the_burst(
        self, clock: FakeClock, session: aiohttp.ClientSession
    ) -> None:
        await statuses_of(session, 4)

        clock.advance(0.005)  # one token at 200/s
        one = await statuses_of(session, 2)
        clock.advance(60)
        capped = await statuses_of(session, 4)

        assert one == [200, 429]
        assert capped == [200, 200, 200, 429]

    async def test_each_key_has_its_own_bucket(self, limited: FakeKodMobi) -> None:
        async with aiohttp.ClientSession(base_url=limited.url) as anonymous:
            a = await statuses_of(anonymous, 4, headers={"x-api-key": "a"})
            b = await statuses_of(anonymous, 4, headers={"x-api-key": "b"})
            wrong = await statuses_of(anonymous, 4, headers={"x-api-key": "wrong"})
            missing = await statuses_of(anonymous, 4)

        assert a == b == [200, 200, 200, 429]
        assert wrong == missing == [401, 401, 401, 429]

    async def test_every_path_and_method_takes_a_token(
        self, limited: FakeKodMobi, session: aiohttp.ClientSession
    ) -> None:
        async with session.get("/elsewhere") as unknown_path:
            pass
        async with session.post(CHANNELS) as wrong_method:
            pass
        await get_json(session)
        async with session.post(CHANNELS) as limited_post:
            limited_body = await limited_post.json()

        assert (unknown_path.status, wrong_method.status) == (404, 405)
        assert (limited_post.status, limited_body) == (429, TOO_MANY)

    async def test_rate_limited_requests_are_recorded_and_use_no_fault(
        self, clock: FakeClock, limited: FakeKodMobi, session: aiohttp.ClientSession
    ) -> None:
        await statuses_of(session, 3)
        limited.script(Fault.status(503))

        refused = await statuses_of(session, 1)
        clock.advance(0.005)
        faulted = await statuses_of(session, 1)

        assert (refused, faulted) == ([429], [503])
        assert [(r.status, r.fault) for r in limited.requests[3:]] == [
            (429, None),
            (503, Fault.status(503)),
        ]

    async def test_limit_changes_while_running(
        self, clock: FakeClock, limited: FakeKodMobi, session: aiohttp.ClientSession
    ) -> None:
        await statuses_of(session, 4)

        limited.set_rate_limit(1000, burst=5)
        clock.advance(0.002)  # two tokens at the new rate, none forgiven
        faster = await statuses_of(session, 3)
        clock.advance(60)
        limited.set_rate_limit(1000, burst=2)
        capped = await statuses_of(session, 3)

        assert faster == [200, 200, 429]
        assert capped == [200, 200, 429]
        assert (limited.rate_limit, limited.burst) == (1000.0, 2.0)

    async def test_turning_the_limit_off_and_on_again_starts_full(
        self, limited: FakeKodMobi, session: aiohttp.ClientSession
    ) -> None:
        await statuses_of(session, 4)

        limited.set_rate_limit(None)
        unlimited = await statuses_of(session, 10)
        off = (limited.rate_limit, limited.burst)
        limited.set_rate_limit(200, burst=2)
        again = await statuses_of(session, 3)

        assert unlimited == [200] * 10
        assert off == (None, None)
        assert again == [200, 200, 429]

    @pytest.mark.parametrize(
        ("retry_after", "advance", "expected"),
        [
            (7, 0.0, "7"),
            (0, 0.0, "0"),
            ("computed", 0.0, "2"),  # a whole token at 0.5/s is 2 s away
            ("computed", 1.2, "1"),  # 0.4 of a token is 0.8 s away, rounded up
            (None, 0.0, None),
        ],
    )
    async def test_retry_after_is_fixed_computed_or_absent(
        self, clock: FakeClock, retry_after: Any, advance: float, expected: str | None
    ) -> None:
        async with (
            FakeKodMobi(rate_limit=0.5, retry_after=retry_after, clock=clock) as fake,
            aiohttp.ClientSession(base_url=fake.url, headers={"x-api-key": fake.api_key}) as s,
        ):
            await get_json(s)
            clock.advance(advance)
            async with s.get(CHANNELS) as response:
                status, header = response.status, response.headers.get("Retry-After")

        assert (status, header) == (429, expected)

    async def test_computed_retry_after_is_at_least_one_second(self, clock: FakeClock) -> None:
        async with (
            FakeKodMobi(rate_limit=200, burst=1, retry_after="computed", clock=clock) as fake,
            aiohttp.ClientSession(base_url=fake.url, headers={"x-api-key": fake.api_key}) as s,
        ):
            await get_json(s)
            async with s.get(CHANNELS) as response:
                header = response.headers.get("Retry-After")

        assert header == "1"

    async def test_real_clock_admits_no_more_than_burst_plus_refill(self) -> None:
        # 200/s refills in milliseconds, so the wall waits here stay tiny.
        async with (
            FakeKodMobi(rate_limit=200, burst=2) as fake,
            aiohttp.ClientSession(base_url=fake.url, headers={"x-api-key": fake.api_key}) as s,
        ):
            started = time.monotonic()
            burst = await asyncio.gather(*(get_json(s) for _ in range(30)))
            elapsed = time.monotonic() - started
            await asyncio.sleep(0.02)
            after_wait = await statuses_of(s, 1)

        admitted = sum(status == 200 for status, _ in burst)
        assert 2 <= admitted <= 2 + 200 * elapsed + 1
        assert {status for status, _ in burst} <= {200, 429}
        assert after_wait == [200]

    def test_works_in_thread_mode(self) -> None:
        clock = FakeClock()
        with FakeKodMobi.in_thread(rate_limit=100, burst=2, clock=clock) as fake:
            before = [asyncio.run(fetch_with_new_session(fake.url, fake.api_key))[0] for _ in "abc"]
            clock.advance(0.01)
            after = asyncio.run(fetch_with_new_session(fake.url, fake.api_key))[0]

        assert before == [200, 200, 429]
        assert after == 200
        assert [r.status for r in fake.requests] == [200, 200, 429, 200]

    def test_default_burst_is_a_tenth_of_the_rate_and_at_least_one(self) -> None:
        assert FakeKodMobi(rate_limit=400).burst == 40.0
        assert FakeKodMobi(rate_limit=5).burst == 1.0
        assert FakeKodMobi().rate_limit is None

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"rate_limit": 0}, "positive number of requests per second"),
            ({"rate_limit": -5}, "positive number"),
            ({"rate_limit": float("inf")}, "positive number"),
            ({"rate_limit": float("nan")}, "positive number"),
            ({"rate_limit": True}, "positive number"),
            ({"rate_limit": 10, "burst": 0.5}, "burst must be a number of requests >= 1"),
            ({"burst": 5}, "needs a rate_limit"),
            ({"rate_limit": 10, "retry_after": -1}, "retry_after must be whole seconds"),
            ({"rate_limit": 10, "retry_after": 1.5}, "retry_after"),
            ({"retry_after": "soon"}, "retry_after"),
        ],
    )
    def test_bad_settings_are_refused(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            FakeKodMobi(**kwargs)


class TestMaxRequestsInWindow:
    async def test_counts_the_busiest_half_open_window(self) -> None:
        clock = FakeClock()
        async with (
            FakeKodMobi(clock=clock) as fake,
            aiohttp.ClientSession(base_url=fake.url, headers={"x-api-key": fake.api_key}) as s,
        ):
            for step in (0.0, 0.1, 0.4, 0.5, 0.05):  # arrivals at 0, .1, .5, 1.0, 1.05
                clock.advance(step)
                await get_json(s)

            assert fake.max_requests_in_window(1.0) == 4  # [0.1, 1.1)
            assert fake.max_requests_in_window(0.5) == 2
            assert fake.max_requests_in_window(10) == 5

    def test_is_zero_without_requests(self) -> None:
        assert FakeKodMobi().max_requests_in_window() == 0

    def test_needs_recorded_requests(self) -> None:
        with pytest.raises(RuntimeError, match="record_requests=True"):
            FakeKodMobi(record_requests=False).max_requests_in_window()

    @pytest.mark.parametrize("seconds", [0, -1.0])
    def test_window_must_be_positive(self, seconds: float) -> None:
        with pytest.raises(ValueError, match="seconds must be > 0"):
            FakeKodMobi().max_requests_in_window(seconds)


class TestPytestPlugin:
    def test_fixture_serves_a_sync_test(self, kodmobi_fake: FakeKodMobi) -> None:
        sid = kodmobi_fake.add_session()
        kodmobi_fake.set_channels(sid, [{"type": "sms"}])

        async def fetch() -> tuple[int, Any]:
            async with aiohttp.ClientSession(
                base_url=kodmobi_fake.url, headers={"x-api-key": kodmobi_fake.api_key}
            ) as session:
                return await get_json(session, session_id=sid)

        status, body = asyncio.run(fetch())

        assert (status, [c["type"] for c in body]) == (200, ["sms"])

    async def test_fixture_serves_an_async_test(self, kodmobi_fake: FakeKodMobi) -> None:
        status, _ = await fetch_with_new_session(kodmobi_fake.url, kodmobi_fake.api_key)

        assert status == 200

    def test_env_fixture_points_the_environment_at_the_fake(
        self, kodmobi_fake_env: FakeKodMobi, kodmobi_fake: FakeKodMobi
    ) -> None:
        assert kodmobi_fake_env is kodmobi_fake
        assert os.environ["KODMOBI_API_KEY"] == kodmobi_fake.api_key
        assert os.environ["KODMOBI_BASE_URL"] == kodmobi_fake.url

    # Starlette warns at import time when httpx2 is not installed; that is not ours to fix.
    @pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
    def test_fixture_serves_a_fastapi_app_under_testclient(
        self, kodmobi_fake_env: FakeKodMobi
    ) -> None:
        from fastapi.testclient import TestClient

        app = FastAPI()

        @app.get("/channels")
        async def channels() -> list[str]:
            _, body = await fetch_with_new_session(
                os.environ["KODMOBI_BASE_URL"], os.environ["KODMOBI_API_KEY"]
            )
            return [channel["type"] for channel in body]

        with TestClient(app) as http:
            response = http.get("/channels")

        assert response.json() == ["whatsapp", "telegram", "sms", "email"]

    def test_loading_the_plugin_does_not_import_the_fake(self) -> None:
        code = (
            "import sys, kodmobi_async._pytest_plugin; "
            "sys.exit('kodmobi_async.testing' in sys.modules)"
        )

        # The interpreter and arguments are ours: nothing untrusted reaches the call.
        result = subprocess.run([sys.executable, "-c", code], check=False)  # noqa: S603

        assert result.returncode == 0
