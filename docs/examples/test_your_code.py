"""Testing code that uses kodmobi-async: a pytest module, runnable as a program.

Installing kodmobi-async registers two pytest fixtures: ``kodmobi_fake``, a fake
kod.mobi server on a loopback port, fresh for each test, and ``kodmobi_fake_env``, the
same with ``KODMOBI_API_KEY`` and ``KODMOBI_BASE_URL`` pointing at it. The async tests
here need pytest-asyncio with ``asyncio_mode = "auto"``.

Run it with ``pytest test_your_code.py``, or ``python test_your_code.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import aioresponses.core
import pytest
from aioresponses import aioresponses as Aioresponses  # noqa: N812 -- a class, named as one

from kodmobi_async import FakeClock, KodMobiClient, NotFoundError, RetryPolicy, ServerError
from kodmobi_async.testing import FakeKodMobi, Fault, new_session_id

# -- the code under test (in your application, not in your tests) -------------------


async def ready_channels(client: KodMobiClient, session_id: str) -> list[str]:
    """The channel types a code can be sent over right now."""
    channels = await client.get_session_channels(session_id)
    return [str(c.type) for c in channels if c.is_active and not c.is_blocked]


async def ready_channels_from_env(session_id: str) -> list[str]:
    """Like :func:`ready_channels`, with a client configured by the environment."""
    async with KodMobiClient() as client:
        return await ready_channels(client, session_id)


# -- tests against the fake server ------------------------------------------------


@pytest.fixture
async def client(kodmobi_fake: FakeKodMobi) -> AsyncIterator[KodMobiClient]:
    """A client for the fake, with retries off: one request per call, no waiting."""
    async with KodMobiClient(
        api_key=kodmobi_fake.api_key,
        base_url=kodmobi_fake.url,
        retry=RetryPolicy.disabled(),
    ) as client:
        yield client


async def test_ready_channels_skip_inactive_and_cooling_down(
    kodmobi_fake: FakeKodMobi, client: KodMobiClient
) -> None:
    session_id = kodmobi_fake.add_session()  # Telegram starts inactive
    kodmobi_fake.set_channel_state(session_id, "sms", timeout=30)

    assert await ready_channels(client, session_id) == ["whatsapp", "email"]


async def test_an_unknown_session_is_not_found(client: KodMobiClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await ready_channels(client, new_session_id())

    assert caught.value.status == 404
    assert caught.value.sys_message == "ERROR_MESSAGE_NOT_FOUND"


async def test_the_request_carries_the_session_and_the_key(
    kodmobi_fake: FakeKodMobi, client: KodMobiClient
) -> None:
    session_id = kodmobi_fake.add_session()

    await ready_channels(client, session_id)

    [request] = kodmobi_fake.requests
    assert (request.method, request.path) == ("GET", "/session/channels")
    assert request.query == {"session_id": session_id}
    assert request.headers["x-api-key"] == kodmobi_fake.api_key


async def test_an_outage_surfaces_as_server_error(
    kodmobi_fake: FakeKodMobi, client: KodMobiClient
) -> None:
    kodmobi_fake.script(Fault.status(503), times=None)  # every request from now on

    with pytest.raises(ServerError) as caught:
        await ready_channels(client, kodmobi_fake.add_session())

    assert caught.value.status == 503
    assert len(kodmobi_fake.requests) == 1  # retries are off


async def test_retries_wait_as_kodmobi_asks(kodmobi_fake: FakeKodMobi) -> None:
    session_id = kodmobi_fake.add_session()
    kodmobi_fake.script_session(session_id, Fault.status(429, retry_after=7), times=1)
    clock = FakeClock()  # sleeping on it takes no time, and is recorded

    async with KodMobiClient(
        api_key=kodmobi_fake.api_key, base_url=kodmobi_fake.url, clock=clock
    ) as client:
        assert await ready_channels(client, session_id) == ["whatsapp", "sms", "email"]

    assert clock.sleeps == [7.0]
    assert [r.status for r in kodmobi_fake.requests] == [429, 200]


def test_code_configured_by_the_environment(kodmobi_fake_env: FakeKodMobi) -> None:
    session_id = kodmobi_fake_env.add_session()

    # A sync test: the fake serves from its own thread, so any event loop can use it.
    assert asyncio.run(ready_channels_from_env(session_id)) == ["whatsapp", "sms", "email"]


# -- tests with aioresponses ---------------------------------------------------------


class _ClientResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 does not pass the ``stream_writer`` aiohttp 3.14 requires
    (pnuckowski/aioresponses#289); supply it until a fixed release is out."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentRequest())
        super().__init__(method, url, **kwargs)


class _SentRequest:
    output_size = 0


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aioresponses]:
    if "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters:
        monkeypatch.setattr(aioresponses.core, "ClientResponse", _ClientResponse)
    with Aioresponses() as mocked:
        yield mocked


async def test_canned_answer_with_aioresponses(mocked: Aioresponses) -> None:
    session_id = new_session_id()
    mocked.get(
        f"https://api.kod.mobi/session/channels?session_id={session_id}",
        payload=[{"name": "SMS", "type": "sms", "is_active": True, "timeout": 0}],
    )

    async with KodMobiClient(api_key="test-key") as client:
        assert await ready_channels(client, session_id) == ["sms"]


def main() -> int:
    """Run this module's tests with pytest; return pytest's exit status."""
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"]
    return subprocess.run(command, check=False).returncode  # noqa: S603 -- our own argv


if __name__ == "__main__":
    sys.exit(main())
