"""pytest fixtures that put a fake kod.mobi server behind the code under test.

pytest loads this module in every run of every project that installs kodmobi-async
(through the ``pytest11`` entry point), so it imports nothing heavy at module level and
does not depend on pytest-asyncio: the fake is imported inside the fixtures and runs on
its own event loop in a background thread, which works the same from sync tests,
pytest-asyncio tests of any loop scope, anyio tests and FastAPI's TestClient.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kodmobi_async.testing import FakeKodMobi


@pytest.fixture
def kodmobi_fake() -> Iterator[FakeKodMobi]:
    """Yield a running fake kod.mobi server, fresh for each test.

    Point the client at ``kodmobi_fake.url`` with ``kodmobi_fake.api_key``; add
    sessions and script faults on it as the test needs.

    Yields:
        The fake, serving from a background thread until the test ends.
    """
    # Imported here so that loading the plugin stays cheap (see the module docstring).
    from kodmobi_async.testing import FakeKodMobi

    with FakeKodMobi.in_thread() as fake:
        yield fake


@pytest.fixture
def kodmobi_fake_env(kodmobi_fake: FakeKodMobi, monkeypatch: pytest.MonkeyPatch) -> FakeKodMobi:
    """Point ``KODMOBI_API_KEY`` and ``KODMOBI_BASE_URL`` at the ``kodmobi_fake`` server.

    Code that builds its client from the environment then talks to the fake. The
    variables are restored when the test ends.

    Args:
        kodmobi_fake: The running fake.
        monkeypatch: pytest's monkeypatch fixture.

    Returns:
        The same fake as ``kodmobi_fake``.
    """
    monkeypatch.setenv("KODMOBI_API_KEY", kodmobi_fake.api_key)
    monkeypatch.setenv("KODMOBI_BASE_URL", kodmobi_fake.url)
    return kodmobi_fake
