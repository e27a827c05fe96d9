"""The FastAPI how-to's app, end to end: HTTP in, fake kod.mobi behind, answers checked.

The app runs in the test's event loop through httpx's ASGI transport, with its
lifespan entered by hand (the transport does not run lifespan events); the fake serves
on a loopback port of the same loop. One test uses FastAPI's TestClient instead, which
runs the app in a thread of its own, with the fake in another (``kodmobi_fake_env``).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kodmobi_async import RetryPolicy
from kodmobi_async.testing import FakeKodMobi, Fault, new_session_id

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "examples"))

import fastapi_app

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package for its TestClient and warns when it
    # falls back to httpx; which one is installed is not what these tests are about.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SECRET = "sk-DOCS-LEAKCHECK-9c1f"


@pytest.fixture
async def fake() -> AsyncIterator[FakeKodMobi]:
    async with FakeKodMobi(api_keys=[SECRET]) as server:
        yield server


@asynccontextmanager
async def serve(fake: FakeKodMobi, **client_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it over ASGI; retries off unless overridden."""
    options: dict[str, Any] = {
        "api_key": SECRET,
        "base_url": fake.url,
        "retry": RetryPolicy.disabled(),
    }
    options.update(client_options)
    app = fastapi_app.create_app(**options)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as http,
    ):
        yield http


def channels_of(body: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(channel["type"], channel["is_active"]) for channel in body]


class TestSessionChannels:
    async def test_answers_200_with_the_channels(self, fake: FakeKodMobi) -> None:
        session_id = fake.add_session()
        fake.set_channel_state(session_id, "sms", timeout=42)

        async with serve(fake) as http:
            response = await http.get(f"/sessions/{session_id}/channels")

        assert response.status_code == 200
        body = response.json()
        assert channels_of(body) == [
            ("whatsapp", True),
            ("telegram", False),
            ("sms", True),
            ("email", True),
        ]
        assert body[2] == {
            "name": "SMS",
            "type": "sms",
            "is_active": True,
            "timeout": 42,
            "link": "https://kod.mobi",
        }

    async def test_an_unknown_session_is_404(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            response = await http.get(f"/sessions/{new_session_id()}/channels")

        assert response.status_code == 404
        assert response.json() == {
            "status": 404,
            "code": "session_not_found",
            "detail": "kod.mobi does not know this session; it may have expired",
        }

    async def test_a_malformed_id_is_422_and_never_sent(self, fake: FakeKodMobi) -> None:
        async with serve(fake) as http:
            response = await http.get("/sessions/not-a-session/channels")

        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "invalid_session_id"
        assert "a session id must be a ULID" in body["detail"]
        assert fake.requests == []

    async def test_a_rejected_key_is_502_and_the_key_stays_secret(
        self, fake: FakeKodMobi, caplog: pytest.LogCaptureFixture
    ) -> None:
        wrong_key = "sk-DOCS-WRONG-KEY-4b7e"
        caplog.set_level(logging.DEBUG)

        session_id = fake.add_session()

        async with serve(fake, api_key=wrong_key) as http:
            response = await http.get(f"/sessions/{session_id}/channels")

        assert response.status_code == 502
        assert response.json()["code"] == "upstream_auth_failed"
        assert wrong_key not in response.text
        logged = "\n".join(
            record.getMessage()
            for record in caplog.records
            if record.name in {"fastapi_app", "kodmobi_async"}
        )
        assert "kod.mobi lookup failed: kod.mobi answered 401" in logged
        assert wrong_key not in logged
        assert session_id not in logged  # masked in the SDK's lines, absent from the app's

    async def test_an_outage_is_503(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.status(503), times=None)

        async with serve(fake) as http:
            response = await http.get(f"/sessions/{fake.add_session()}/channels")

        assert response.status_code == 503
        assert response.json()["code"] == "upstream_unavailable"

    async def test_a_dropped_connection_is_503(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.drop(), times=None)

        async with serve(fake) as http:
            response = await http.get(f"/sessions/{fake.add_session()}/channels")

        assert response.status_code == 503

    async def test_rate_limiting_is_503_with_retry_after(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.status(429, retry_after=7), times=None)

        async with serve(fake) as http:
            response = await http.get(f"/sessions/{fake.add_session()}/channels")

        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"

    async def test_a_slow_kodmobi_is_504(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.delay(2.0), times=None)

        async with serve(fake, timeout=0.2) as http:
            response = await http.get(f"/sessions/{fake.add_session()}/channels")

        assert response.status_code == 504
        assert response.json()["code"] == "upstream_timeout"

    async def test_a_broken_answer_is_502(self, fake: FakeKodMobi) -> None:
        fake.script(Fault.malformed(), times=None)

        async with serve(fake) as http:
            response = await http.get(f"/sessions/{fake.add_session()}/channels")

        assert response.status_code == 502
        assert response.json()["code"] == "upstream_error"

    async def test_retries_hide_a_passing_failure(self, fake: FakeKodMobi) -> None:
        session_id = fake.add_session()
        fake.script(Fault.status(503), times=1)

        async with serve(fake, retry=RetryPolicy(initial_wait=0.01)) as http:
            response = await http.get(f"/sessions/{session_id}/channels")

        assert response.status_code == 200
        assert [r.status for r in fake.requests] == [503, 200]


class TestCheckSessions:
    async def test_answers_each_id_of_the_page(self, fake: FakeKodMobi) -> None:
        known = fake.add_sessions(3)
        unknown = new_session_id()

        async with serve(fake) as http:
            response = await http.post(
                "/sessions/check", json={"session_ids": [*known, unknown, "bad-id", known[0]]}
            )

        assert response.status_code == 200
        results = response.json()["results"]
        assert list(results) == [*known, unknown, "bad-id"]  # input order, duplicates once
        for session_id in known:
            assert results[session_id]["problem"] is None
            assert len(results[session_id]["channels"]) == 4
        assert results[unknown] == {
            "channels": None,
            "problem": {
                "status": 404,
                "code": "session_not_found",
                "detail": "kod.mobi does not know this session; it may have expired",
            },
        }
        assert results["bad-id"]["problem"]["code"] == "invalid_session_id"
        assert sorted(r.session_id or "" for r in fake.requests) == sorted([*known, unknown])

    async def test_stays_within_its_concurrency(self, fake: FakeKodMobi) -> None:
        fake.latency = 0.05
        ids = fake.add_sessions(30)

        async with serve(fake) as http:
            response = await http.post("/sessions/check", json={"session_ids": ids})

        assert response.status_code == 200
        assert fake.total_connections <= fastapi_app.PAGE_CONCURRENCY

    @pytest.mark.parametrize("size", [0, fastapi_app.PAGE_SIZE + 1])
    async def test_refuses_a_page_of_the_wrong_size(self, fake: FakeKodMobi, size: int) -> None:
        async with serve(fake) as http:
            response = await http.post(
                "/sessions/check", json={"session_ids": [new_session_id() for _ in range(size)]}
            )

        assert response.status_code == 422  # FastAPI's own validation
        assert fake.requests == []

    async def test_a_rejected_key_fails_the_whole_page(self, fake: FakeKodMobi) -> None:
        ids = fake.add_sessions(5)

        async with serve(fake, api_key="sk-DOCS-WRONG") as http:
            response = await http.post("/sessions/check", json={"session_ids": ids})

        assert response.status_code == 502
        assert response.json()["code"] == "upstream_auth_failed"


class TestLifespan:
    async def test_one_client_for_all_requests_closed_at_shutdown(self, fake: FakeKodMobi) -> None:
        ids = fake.add_sessions(5)

        async with serve(fake) as http:
            for session_id in ids:
                assert (await http.get(f"/sessions/{session_id}/channels")).status_code == 200
            client = http._transport.app.state.kodmobi  # type: ignore[attr-defined]
            assert not client.closed

        assert client.closed
        assert fake.total_connections == 1  # one pooled keep-alive connection
        assert await fake.wait_connections_closed()

    async def test_the_served_app_gives_lookups_a_short_deadline(
        self, fake: FakeKodMobi, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Importing the module built `app` without a key; starting it reads the env.
        monkeypatch.setenv("KODMOBI_API_KEY", SECRET)
        monkeypatch.setenv("KODMOBI_BASE_URL", fake.url)
        app = fastapi_app.app

        async with app.router.lifespan_context(app):
            client = app.state.kodmobi
            assert client.timeout == 3.0
            assert client.retry_policy.attempts == 2
            assert await client.get_session_channels() != []
        assert client.closed


@pytest.fixture
def test_client(kodmobi_fake_env: FakeKodMobi) -> Iterator[TestClient]:
    # The client reads KODMOBI_API_KEY and KODMOBI_BASE_URL, set by the fixture.
    with TestClient(fastapi_app.create_app()) as client:
        yield client


def test_with_fastapis_test_client(kodmobi_fake_env: FakeKodMobi, test_client: TestClient) -> None:
    session_id = kodmobi_fake_env.add_session()

    assert test_client.get(f"/sessions/{session_id}/channels").status_code == 200
    assert test_client.get(f"/sessions/{new_session_id()}/channels").status_code == 404
    assert test_client.get("/sessions/nope/channels").status_code == 422
    check = test_client.post("/sessions/check", json={"session_ids": [session_id]})
    assert check.json()["results"][session_id]["problem"] is None
