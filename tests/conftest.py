"""Fixtures shared by the client and batch tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import aioresponses.core
import pytest
from aioresponses import aioresponses as _aioresponses

from kodmobi_async import FakeClock, KodMobiClient, RetryPolicy
from kodmobi_async.testing import FakeKodMobi

# A key distinctive enough that finding it in any output means it leaked.
SECRET_KEY = "sk-LEAKCHECK-5f0e2d9c7b1a"

ClientFactory = Callable[..., KodMobiClient]

_NEEDS_STREAM_WRITER = "stream_writer" in aiohttp.ClientResponse.__init__.__code__.co_varnames


class _SentRequest:
    """What aioresponses-built responses report as the already-sent request."""

    output_size = 0


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer`` argument
    (pnuckowski/aioresponses#289); supply one until a fixed release exists."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER:
            kwargs.setdefault("stream_writer", _SentRequest())
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[_aioresponses]:
    """aioresponses, working with every aiohttp this package supports."""
    monkeypatch.setattr(aioresponses.core, "ClientResponse", _CompatResponse)
    with _aioresponses() as mock:
        yield mock


@pytest.fixture(autouse=True)
def _no_kodmobi_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own environment must not change what a test sees.
    monkeypatch.delenv("KODMOBI_API_KEY", raising=False)
    monkeypatch.delenv("KODMOBI_BASE_URL", raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeKodMobi]:
    """A fake kod.mobi on a loopback port, served by the test's own event loop."""
    async with FakeKodMobi(api_keys=[SECRET_KEY]) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(fake: FakeKodMobi, clock: FakeClock) -> AsyncIterator[ClientFactory]:
    """Build clients pointed at the fake, with the fake clock; all closed at teardown."""
    made: list[KodMobiClient] = []

    def factory(**overrides: Any) -> KodMobiClient:
        options: dict[str, Any] = {
            "api_key": SECRET_KEY,
            "base_url": fake.url,
            "clock": clock,
            "retry": RetryPolicy(jitter=False),
        }
        options.update(overrides)
        client = KodMobiClient(**options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


@pytest.fixture
def session_ids(fake: FakeKodMobi) -> list[str]:
    return fake.add_sessions(3)


@pytest.fixture
def fake_in_thread() -> Iterator[FakeKodMobi]:
    """A fake serving from its own thread, for tests that run their own event loops."""
    with FakeKodMobi.in_thread(api_keys=[SECRET_KEY]) as server:
        yield server
